//! The one mapping from what went wrong to an HTTP answer: 4xx carry their message and hint,
//! 5xx are logged here and answered generically.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::dto::{ApiError, ErrorBody};
use crate::bundle::{AssembleError, ExportError, FormatError, OpenError};
use crate::inventory::Refusal;

#[derive(Debug)]
pub enum AppError {
    /// 401: no token, or not a valid one.
    Unauthorized(String),
    /// 400: the request itself is malformed.
    BadRequest {
        code: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// 404: no such route or resource.
    NotFound {
        code: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// 409: the request conflicts with what the inventory holds (checked before proposing).
    Conflict {
        code: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// 422: a server this node called on the operator's behalf (a webhook receiver)
    /// failed. Not 502: clients read 502 as "the cluster is unreachable".
    Upstream {
        code: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// 413: a body, a bundle or a Raft entry over its bound.
    TooLarge(String),
    /// 408: the body did not arrive within its deadline.
    BodyTimeout(String),
    /// 429: this source failed to sign in too often lately.
    TooManyFailures(String),
    /// 422: the files do not make a valid bundle.
    Invalid { code: &'static str, message: String },
    /// 404 / 409: the inventory's rules refused the change.
    Refused(Refusal),
    /// 503: no leader known, or leadership changed mid-request; retry.
    NoLeader(String),
    /// 504: the cluster did not answer within the deadline.
    Timeout(String),
    /// 504: a change was sent towards the leader but no answer says whether it committed
    /// (leader lost or unreachable mid-request). Never retried by the node: repeating an
    /// import or removal that did commit would report the wrong outcome.
    Indeterminate(String),
    /// 409: the change needs a request version some member cannot apply yet.
    UpgradeRequired(String),
    /// 500: this node is broken; details go to the log only.
    Internal(String),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
            hint: None,
        }
    }
}

impl From<FormatError> for AppError {
    fn from(e: FormatError) -> Self {
        AppError::Invalid {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<AssembleError> for AppError {
    fn from(e: AssembleError) -> Self {
        AppError::Invalid {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<ExportError> for AppError {
    fn from(e: ExportError) -> Self {
        AppError::bad_request(e.code(), e.to_string())
    }
}

impl From<OpenError> for AppError {
    fn from(e: OpenError) -> Self {
        AppError::Internal(format!("sealed bundle did not open: {e}"))
    }
}

impl From<crate::bundle::SealError> for AppError {
    fn from(e: crate::bundle::SealError) -> Self {
        AppError::Internal(format!("a sealed secret did not open: {e}"))
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        AppError::Refused(r)
    }
}

impl From<crate::issuing::IssuingError> for AppError {
    fn from(e: crate::issuing::IssuingError) -> Self {
        match e {
            crate::issuing::IssuingError::BadInput(message) => AppError::BadRequest {
                code: "invalid_input",
                message,
                hint: None,
            },
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl AppError {
    /// What the client is told: the status, the stable code, the message and the hint. The
    /// API sends them as JSON, the web console as a page.
    pub fn parts(self) -> (StatusCode, &'static str, String, Option<String>) {
        match self {
            AppError::Unauthorized(m) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                m,
                Some("pass --token-file with a token from DATA/admin.token, or run `certraft-node admin-token` on a node".into()),
            ),
            AppError::BadRequest {
                code,
                message,
                hint,
            } => (StatusCode::BAD_REQUEST, code, message, hint),
            AppError::NotFound {
                code,
                message,
                hint,
            } => (StatusCode::NOT_FOUND, code, message, hint),
            AppError::Conflict {
                code,
                message,
                hint,
            } => (StatusCode::CONFLICT, code, message, hint),
            AppError::Upstream {
                code,
                message,
                hint,
            } => (StatusCode::UNPROCESSABLE_ENTITY, code, message, hint),
            AppError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                m,
                Some("split the work into smaller requests (fewer files, a smaller backup)".into()),
            ),
            AppError::BodyTimeout(m) => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                m,
                Some("send the request again over a faster link".into()),
            ),
            AppError::TooManyFailures(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                m,
                None,
            ),
            AppError::Invalid { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message, Some("`certraft inspect FILE...` shows what the files contain".into()))
            }
            AppError::Refused(r) => {
                let status = match r {
                    Refusal::NotFound { .. }
                    | Refusal::CsrNotFound { .. }
                    | Refusal::NotifyNotFound { .. }
                    | Refusal::NotManaged { .. } => StatusCode::NOT_FOUND,
                    Refusal::JoinTokenInvalid => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::CONFLICT,
                };
                (status, r.code(), r.to_string(), None)
            }
            AppError::UpgradeRequired(m) => (
                StatusCode::CONFLICT,
                "upgrade_required",
                m,
                Some("upgrade certraft-node on the members named (or remove them from the cluster), then retry; `certraft cluster status` lists the members".into()),
            ),
            AppError::NoLeader(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                m,
                Some("a majority of voters must be up; check `certraft cluster status` and retry".into()),
            ),
            AppError::Timeout(m) => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                m,
                Some("the cluster did not answer in time; check `certraft cluster status` and retry".into()),
            ),
            AppError::Indeterminate(m) => (
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                m,
                Some("the change may or may not have been made: look (e.g. `certraft cert show NAME`, `certraft cluster status`) before repeating it".into()),
            ),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering an admin request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "this node failed to handle the request; see its log".into(),
                    None,
                )
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, hint) = self.parts();
        let body = ErrorBody {
            error: ApiError {
                code: code.to_string(),
                message,
                hint,
            },
        };
        (status, Json(body)).into_response()
    }
}
