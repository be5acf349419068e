//! Why the gateway refused a request, as typed errors that render as JSON
//! responses saying what to do.

use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::catalog::CommandEntry;

/// A refused request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No command is bound at this path.
    #[error("no command is served at {path}")]
    UnknownCommand {
        /// The path asked for.
        path: String,
        /// What is served.
        known: Vec<CommandEntry>,
    },
    /// The body is not one JSON value, or a header or parameter is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the limit.
    #[error("the body is over the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not all arrive in time.
    #[error("the request body did not arrive within {ms} ms")]
    SlowBody {
        /// The body timeout in milliseconds.
        ms: u64,
    },
    /// The caller is over one of its limits.
    #[error("too many {what}; retry after {retry_after_s} s")]
    TooManyRequests {
        /// Seconds until it may try again.
        retry_after_s: u64,
        /// Which limit.
        what: &'static str,
    },
    /// The gateway is at a limit of its own (not the caller's).
    #[error("{0}; retry in a second")]
    Overloaded(String),
    /// The bus cannot take the command now.
    #[error("the bus is unavailable: {0}; retry later")]
    Unavailable(String),
    /// No valid token (with `--auth jwt`).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this: another subject's session, an internal
    /// or reserved command, or outside the token's scope.
    #[error("{message}")]
    Forbidden {
        /// What was refused and why.
        message: String,
        /// The scope the token would need, when a scope is what is missing.
        missing_scope: Option<String>,
    },
    /// `?wait=` passed without an event.
    #[error("no event arrived within {wait_ms} ms")]
    WaitTimedOut {
        /// The command's correlation id, to match events that come later.
        correlation_id: String,
        /// The command's message id.
        message_id: String,
        /// How long the gateway waited.
        wait_ms: u64,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, body) = match self {
            ApiError::TooManyRequests { retry_after_s, .. } => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(RETRY_AFTER, retry_after_s.to_string())],
                    Json(json!({ "error": message, "retry_after_s": retry_after_s })),
                )
                    .into_response()
            }
            ApiError::Overloaded(_) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(RETRY_AFTER, "1".to_owned())],
                    Json(json!({ "error": message })),
                )
                    .into_response()
            }
            ApiError::UnknownCommand { known, .. } => (
                StatusCode::NOT_FOUND,
                json!({
                    "error": message,
                    "hint": "POST to one of the known commands; GET /api lists them with their body schemas",
                    "known_commands": known,
                }),
            ),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, json!({ "error": message })),
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": message, "limit": limit }),
            ),
            ApiError::SlowBody { .. } => (StatusCode::REQUEST_TIMEOUT, json!({ "error": message })),
            ApiError::Unauthorized(_) => {
                let body = json!({
                    "error": message,
                    "hint": "send a token: `Authorization: Bearer <token>`, or on a WebSocket the `Sec-WebSocket-Protocol` header `bearer, <token>`",
                });
                return (
                    StatusCode::UNAUTHORIZED,
                    [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::Forbidden { missing_scope, .. } => (
                StatusCode::FORBIDDEN,
                match missing_scope {
                    Some(scope) => json!({ "error": message, "missing_scope": scope }),
                    None => json!({ "error": message }),
                },
            ),
            ApiError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": message }))
            }
            ApiError::WaitTimedOut {
                correlation_id,
                message_id,
                ..
            } => (
                StatusCode::GATEWAY_TIMEOUT,
                json!({
                    "error": message,
                    "correlation_id": correlation_id,
                    "message_id": message_id,
                    "hint": "the command was accepted; its events arrive on the session's WebSocket",
                }),
            ),
        };
        (status, Json(body)).into_response()
    }
}
