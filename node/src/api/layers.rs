//! The layers every admin route passes before its handler: SPEC §5's JSON for every error,
//! the bearer's presence, the token (checked before any body is read, so a follower never
//! buffers or forwards a request it cannot authenticate), the source's failure limit, and
//! the body read within its deadline and byte budget.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{bearer, FailureKind};
use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::datadir::token_hash;
use crate::http::ClientAddr;

/// Every error answer is SPEC §5's JSON, including those axum writes itself (a body that is
/// not JSON, a path that does not parse, a method the route does not take).
pub(super) async fn json_errors(req: axum::extract::Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    // The console's pages (issue 16) carry their own HTML errors.
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "no_such_route",
        405 => "method_not_allowed",
        408 => "body_timeout",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "invalid_body",
        _ if status.is_server_error() => "internal",
        _ => "refused",
    };
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        message
    };
    let mut out = (
        status,
        Json(ErrorBody {
            error: ApiError {
                code: code.into(),
                message,
                hint: None,
            },
        }),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != "content-type" && name != "content-length" {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

pub(super) fn client_ip(req: &axum::extract::Request) -> std::net::IpAddr {
    req.extensions()
        .get::<ClientAddr>()
        .map(|a| a.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// 429 for a source that failed to sign in too often lately, before anything is checked.
pub(super) async fn not_limited(
    State(st): State<S>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let ip = client_ip(&req);
    if st.failures.limited(ip, std::time::Instant::now()) {
        return AppError::TooManyFailures(format!(
            "too many failed sign-ins from {ip} in the last {} s; wait, then use a valid token",
            super::auth::WINDOW.as_secs()
        ))
        .into_response();
    }
    next.run(req).await
}

pub(super) async fn require_bearer(req: axum::extract::Request, next: Next) -> Response {
    if bearer(req.headers()).is_none() {
        return AppError::Unauthorized(
            "this route needs `Authorization: Bearer <admin token>`".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Reads the whole body within [`BODY_DEADLINE`], holding its size from the node's
/// [`BODY_BUDGET_KIB`], so neither a trickled upload nor many large ones can pin memory.
pub(super) async fn read_body(
    State(st): State<S>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY_BYTES) {
        return AppError::TooLarge(format!(
            "the request body is {n} bytes; the admin API reads at most {MAX_BODY_BYTES}"
        ))
        .into_response();
    }
    let kib = declared.unwrap_or(MAX_BODY_BYTES).div_ceil(1024).max(1);
    let permits = u32::try_from(kib).unwrap_or(u32::MAX);
    let Ok(Ok(_held)) = tokio::time::timeout(
        Duration::from_secs(10),
        st.body_budget.acquire_many(permits),
    )
    .await
    else {
        return AppError::NoLeader(
            "this node is busy receiving other large requests; retry shortly".into(),
        )
        .into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_BODY_BYTES)).await
        {
            Err(_) => {
                return AppError::BodyTimeout(format!(
                    "the request body did not arrive within {} s",
                    BODY_DEADLINE.as_secs()
                ))
                .into_response()
            }
            Ok(Err(e)) => return AppError::TooLarge(e.to_string()).into_response(),
            Ok(Ok(b)) => b,
        };
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await
}

pub(super) async fn check_token(
    State(st): State<S>,
    mut req: axum::extract::Request,
    next: Next,
) -> Response {
    let Some(hash) = bearer(req.headers()).map(token_hash) else {
        return AppError::Unauthorized(
            "this route needs `Authorization: Bearer <admin token>`".into(),
        )
        .into_response();
    };
    let may_wait = !st
        .failures
        .over_limit(client_ip(&req), std::time::Instant::now());
    match st.token_name(&hash, may_wait).await {
        Some(name) => {
            req.extensions_mut().insert(Actor(name));
            next.run(req).await
        }
        // A valid token always passes; a source that keeps failing is told to wait (and
        // costs nothing more: no body is read, nothing is forwarded).
        None if st
            .failures
            .limited(client_ip(&req), std::time::Instant::now()) =>
        {
            AppError::TooManyFailures(format!(
                "too many failed sign-ins from {} in the last {} s; wait, then use a valid token",
                client_ip(&req),
                super::auth::WINDOW.as_secs()
            ))
            .into_response()
        }
        None => {
            st.failures.record(
                FailureKind::AdminToken,
                client_ip(&req),
                std::time::Instant::now(),
            );
            AppError::Unauthorized("the admin token is not valid for this cluster".into())
                .into_response()
        }
    }
}
