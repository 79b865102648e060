//! Leader routing: a route runs on the leader; a follower proxies it there (marked
//! `x-certraft-forwarded`, so a request hops at most once) and retries only what certainly
//! did nothing (`decide`).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AppError;
use super::server::*;

/// Runs the route here on the leader, or proxies it to the leader.
pub(super) async fn on_leader(
    State(st): State<S>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let deadline = Instant::now() + st.timeout;
    let me = st.node_id;
    let (leader, node) = match st.leader(deadline).await {
        Ok(l) => l,
        Err(e) => return not_proposed(e.into_response()),
    };
    if leader == me {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return not_proposed(
            AppError::NoLeader(format!(
                "node {me} is not the leader (node {leader} is); the forwarding node retries"
            ))
            .into_response(),
        );
    }
    // Inside the nested `/api/v1` router the URI has lost its prefix; forward the original.
    let original = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.clone())
        .unwrap_or_else(|| req.uri().clone());
    // `read_body` has already read the body (within its deadline and budget).
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return AppError::TooLarge(e.to_string()).into_response(),
    };
    let path = original
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut target = node;
    let mut leading = leader;
    // The address whose last connect failed: the next try waits until it accepts one, or
    // until another node leads, whichever comes first.
    let mut unreachable: Option<String> = None;
    loop {
        // A node that has just joined knows the leader's id before the membership naming its
        // address has reached it: wait for that within the deadline, as for a 503.
        match target.clone() {
            None if Instant::now() >= deadline => {
                return AppError::NoLeader(format!("leader {leading} has no known address"))
                    .into_response()
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
            Some(info)
                if unreachable.as_deref() == Some(info.admin_addr.as_str())
                    && !reachable_while_leading(&st, leading, &info.admin_addr).await => {}
            // Retried only when the request certainly did nothing: it never reached the
            // leader, or the leader refused it before proposing (a read is always safe).
            Some(info) => {
                let result = forward(
                    &st,
                    &parts.method,
                    &parts.headers,
                    &info.admin_addr,
                    &path,
                    body.clone(),
                )
                .await;
                let attempt = match &result {
                    Ok(resp) => Attempt::Answered {
                        unavailable: resp.status() == StatusCode::SERVICE_UNAVAILABLE,
                        not_proposed: resp.headers().contains_key(NOT_PROPOSED),
                    },
                    Err(Forward::NotSent(_)) => Attempt::NotSent,
                    Err(Forward::Unanswered(_)) => Attempt::Unanswered,
                };
                let read = parts.method == Method::GET;
                match decide(attempt, read, Instant::now() < deadline) {
                    Step::Answer => {
                        return match result {
                            Ok(resp) => resp,
                            Err(Forward::NotSent(e) | Forward::Unanswered(e)) => e.into_response(),
                        }
                    }
                    Step::RetrySoon => {
                        unreachable = None;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Step::RetryWhenReachable => unreachable = Some(info.admin_addr.clone()),
                }
            }
        }
        if Instant::now() >= deadline {
            return AppError::NoLeader(format!(
                "the leader (node {leading}) could not be reached within {:?}",
                st.timeout
            ))
            .into_response();
        }
        match st.leader(deadline).await {
            // Elected while forwarding: run the request here.
            Ok((id, _)) if id == me => {
                return next
                    .run(axum::extract::Request::from_parts(parts, Body::from(body)))
                    .await
            }
            Ok((id, n)) => {
                leading = id;
                target = n;
            }
            Err(e) => return e.into_response(),
        }
    }
}

/// After a connect to the leader's `addr` failed: whether it accepts a TCP connection now
/// (within the peers' connect timeout; a refusal is answered after up to 100 ms, so the
/// caller does not spin). Gives up at once, answering false, when another
/// node becomes leader meanwhile, so a dead leader's successor is used the moment it is
/// known. Sends nothing: the request is only ever written by [`forward`].
pub(super) async fn reachable_while_leading(st: &AppState, leader: u64, addr: &str) -> bool {
    let mut rx = st.raft.metrics();
    let connect = tokio::time::timeout(PEER_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr));
    let reached = tokio::select! {
        r = connect => matches!(r, Ok(Ok(_))),
        _ = rx.wait_for(|m| m.current_leader != Some(leader)) => return false,
    };
    if !reached {
        // Refused at once (a stopped process on a live host): ask again shortly.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = rx.wait_for(|m| m.current_leader != Some(leader)) => {}
        }
    }
    reached
}

/// How long a forwarding node tries to connect to the leader. A dead leader's address often
/// answers nothing at all (no RST from a host that is gone).
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Marks a refusal given before anything was proposed: the forwarding node may retry it.
pub(super) const NOT_PROPOSED: &str = "x-certraft-not-proposed";

pub(super) fn not_proposed(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(NOT_PROPOSED, HeaderValue::from_static("1"));
    resp
}

/// What one forwarding attempt came to, as far as the retry decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// The leader answered; `unavailable` is a 503, `not_proposed` says it refused before
    /// proposing anything.
    Answered {
        unavailable: bool,
        not_proposed: bool,
    },
    /// No connection: the leader never saw the request.
    NotSent,
    /// Sent, but no complete answer: it may have been carried out.
    Unanswered,
}

/// What to do next with a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Give the client this answer (or this failure).
    Answer,
    /// Ask again after a short pause (the leader may change meanwhile).
    RetrySoon,
    /// Ask again once the leader's address accepts a connection, or another node leads.
    RetryWhenReachable,
}

/// The retry rule, in one place: a request is sent again only when it certainly did nothing
/// (never sent, or refused before anything was proposed) or is a read, and only while time
/// is left. A write that may have been carried out is never repeated: its failure is the
/// answer (`outcome_unknown`), since repeating an import that did commit would report the
/// wrong outcome.
pub(super) fn decide(attempt: Attempt, read: bool, time_left: bool) -> Step {
    if !time_left {
        return Step::Answer;
    }
    match attempt {
        Attempt::Answered {
            unavailable: true,
            not_proposed,
        } if not_proposed || read => Step::RetrySoon,
        Attempt::Answered { .. } => Step::Answer,
        Attempt::NotSent => Step::RetryWhenReachable,
        Attempt::Unanswered if read => Step::RetrySoon,
        Attempt::Unanswered => Step::Answer,
    }
}

/// How forwarding to the leader failed.
pub(super) enum Forward {
    /// No connection: the leader never saw the request.
    NotSent(AppError),
    /// Sent, but no (complete) answer: it may have been carried out.
    Unanswered(AppError),
}

pub(super) async fn forward(
    st: &AppState,
    method: &Method,
    headers: &HeaderMap,
    admin_addr: &str,
    path: &str,
    body: Bytes,
) -> Result<Response, Forward> {
    let url = format!("https://{admin_addr}{path}");
    let mut req = st
        .peers
        .request(method.clone(), &url)
        .header(FORWARDED, st.node_id.to_string())
        // A route that generates a key may take its turn in the key lane, then seconds.
        .timeout(if super::server::generates_keys(method, path) {
            super::server::KEYGEN_DEADLINE
        } else {
            st.timeout
        })
        .body(body);
    // `cookie`: the web console's session (issue 16), checked again on the leader.
    for name in ["authorization", "content-type", "accept", "cookie"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let unanswered = |e: reqwest::Error| {
        Forward::Unanswered(AppError::Indeterminate(format!(
            "the leader at {admin_addr} did not answer: {e}"
        )))
    };
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() {
            Forward::NotSent(AppError::NoLeader(format!(
                "cannot reach the leader at {admin_addr}: {e}"
            )))
        } else {
            unanswered(e)
        }
    })?;
    let status = resp.status();
    // The console's redirects, downloads and its session cookie go back to the browser as they came.
    let kept: Vec<(&str, HeaderValue)> = [
        "content-type",
        "content-disposition",
        "location",
        "set-cookie",
    ]
    .into_iter()
    .flat_map(|name| {
        resp.headers()
            .get_all(name)
            .iter()
            .map(move |v| (name, v.clone()))
    })
    .collect();
    let refused_early = resp.headers().contains_key(NOT_PROPOSED);
    let bytes = resp.bytes().await.map_err(unanswered)?;
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    for (name, v) in kept {
        out.headers_mut().append(name, v);
    }
    if refused_early {
        out = not_proposed(out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The retry rule as a table: (attempt, read, time left) → step.
    #[test]
    fn only_what_certainly_did_nothing_is_retried() {
        let answered = |unavailable, not_proposed| Attempt::Answered {
            unavailable,
            not_proposed,
        };
        use Step::*;
        let table = [
            // A 503 before proposing: retried, read or write.
            (answered(true, true), false, true, RetrySoon),
            (answered(true, true), true, true, RetrySoon),
            // A 503 that may have followed a proposal: a read is retried, a write answered.
            (answered(true, false), true, true, RetrySoon),
            (answered(true, false), false, true, Answer),
            // Any other answer is the answer.
            (answered(false, false), false, true, Answer),
            (answered(false, true), true, true, Answer),
            // Never sent: retried once the leader is reachable again.
            (Attempt::NotSent, false, true, RetryWhenReachable),
            (Attempt::NotSent, true, true, RetryWhenReachable),
            // Sent without an answer: a read again, a write is outcome_unknown.
            (Attempt::Unanswered, true, true, RetrySoon),
            (Attempt::Unanswered, false, true, Answer),
            // Out of time: whatever happened is the answer.
            (answered(true, true), false, false, Answer),
            (Attempt::NotSent, false, false, Answer),
            (Attempt::Unanswered, true, false, Answer),
        ];
        for (attempt, read, time_left, want) in table {
            assert_eq!(
                decide(attempt, read, time_left),
                want,
                "{attempt:?} read={read} time_left={time_left}"
            );
        }
    }
}
