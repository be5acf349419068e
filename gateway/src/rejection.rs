//! Why the gateway refused a request, as typed errors that render as JSON
//! responses saying what to do.

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
