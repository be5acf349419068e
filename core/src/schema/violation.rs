//! What a failed check reports, and the error body the host answers with.

use serde::Serialize;

use super::VALIDATION;
use crate::error::{Code, ErrorBody};

/// One thing wrong with a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer of the offending value in the body (`""` is the body).
    pub path: String,
    /// What is wrong, naming the value (`` `body.name` ``).
    pub message: String,
}

/// What is wrong with a body: at least one [`Violation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// The error body the host answers with: code [`VALIDATION`], the first
    /// problem as the message, all of them in `context.errors`.
    pub fn into_error_body(self) -> ErrorBody {
        let mut message = self
            .0
            .first()
            .map_or_else(|| "invalid body".to_owned(), |v| v.message.clone());
        if self.0.len() > 1 {
            message.push_str(&format!(
                " (and {} more: see `context.errors`)",
                self.0.len() - 1
            ));
        }
        ErrorBody {
            code: Code::Handler(VALIDATION.to_owned()),
            message,
            context: serde_json::json!({ "errors": self.0 }),
            command: None,
        }
    }
}
