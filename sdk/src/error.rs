//! The error a command function returns, and how store, JSON and host
//! errors map to it.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::{HandlerError, StoreError};

/// Why a command was refused: becomes the `handler-error` the host turns
/// into an error event.
///
/// `code` is machine-readable snake_case (`validation`, `not_found`,
/// `invalid_transition`, `conflict`, …); `message` is for humans; `context`
/// is optional JSON with details.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    code: Cow<'static, str>,
    message: String,
    context: Option<Value>,
}

impl Error {
    /// An error with any `code` (snake_case) and a message for humans.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            context: None,
        }
    }

    /// Attaches JSON details (replacing any already attached).
    #[must_use]
    pub fn with_context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    /// Code `validation`: the command's body is wrong.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("validation", message)
    }

    /// Code `not_found`: what the command refers to does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("not_found", message)
    }

    /// Code `invalid_transition`: the command is not allowed in the current
    /// state.
    pub fn invalid_transition(message: impl Into<String>) -> Self {
        Self::new("invalid_transition", message)
    }

    /// Code `conflict`, context `{"current_version": current_version}`: an
    /// expected version did not match (0 means the document does not exist).
    pub fn conflict(current_version: u64) -> Self {
        Self::new(
            "conflict",
            format!("version conflict: the current version is {current_version}"),
        )
        .with_context(serde_json::json!({ "current_version": current_version }))
    }

    /// Code `handler_error`: nothing more specific fits.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("handler_error", message)
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message for humans.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON details, if any.
    pub fn context(&self) -> Option<&Value> {
        self.context.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    /// `conflict(n)` → `conflict` with context `{"current_version": n}`;
    /// `not-found` → `not_found`; `invalid` → `invalid_request`;
    /// `unavailable` → `unavailable`.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(current) => Self::conflict(current),
            StoreError::NotFound => Self::not_found("document not found"),
            StoreError::Invalid(m) => Self::new("invalid_request", m),
            StoreError::Unavailable(m) => Self::new("unavailable", m),
        }
    }
}

impl From<serde_json::Error> for Error {
    /// Code `handler_error`: JSON the handler itself produced or stored does
    /// not (de)serialise. Command bodies are checked by the
    /// [`Router`](crate::Router), which reports code `validation` instead.
    fn from(e: serde_json::Error) -> Self {
        Self::internal(format!("JSON: {e}"))
    }
}

impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        HandlerError {
            code: e.code.into_owned(),
            message: e.message,
            context: e.context.map(|c| c.to_string()),
        }
    }
}
