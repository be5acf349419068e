//! Failures as events: every way a command can fail becomes an error event
//! with a machine-readable `code`, so a client learns what happened from the
//! same stream that carries success.

use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::envelope::{Envelope, Kind, Meta, PartialMeta};
use crate::names::{check_routing_key, error_key, is_error_code};

/// Machine-readable reasons a command produced no ordinary outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access…).
    Trap,
    /// The guest ran past its wall-clock deadline.
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// The message is not a valid envelope.
    InvalidEnvelope,
    /// No handler is bound to the command's routing key.
    UnknownRoutingKey,
    /// The handler refused the command without saying a more specific code.
    HandlerError,
    /// A write's expected version was stale.
    Conflict,
    /// The handler produced an event the host cannot publish (another
    /// domain's key, invalid JSON, too many or too large).
    InvalidEvent,
    /// A needed service (store, bus) is down; retrying later may succeed.
    Unavailable,
    /// The host is at its concurrency limit; retrying later may succeed.
    Overloaded,
    /// The command's effects are over a limit of the host's (its changes
    /// to the store, its events' total size): nothing of it was kept.
    LimitExceeded,
    /// The sender may not send this command: it is internal (only the
    /// host's timers send it), its domain is the host's, or its session
    /// belongs to another subject.
    Forbidden,
}

impl ErrorCode {
    /// Every host-defined code.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Trap,
        ErrorCode::Timeout,
        ErrorCode::MemoryLimit,
        ErrorCode::InvalidEnvelope,
        ErrorCode::UnknownRoutingKey,
        ErrorCode::HandlerError,
        ErrorCode::Conflict,
        ErrorCode::InvalidEvent,
        ErrorCode::Unavailable,
        ErrorCode::Overloaded,
        ErrorCode::LimitExceeded,
        ErrorCode::Forbidden,
    ];

    /// The host-defined code spelled `text`, if there is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The code as it appears in error event bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Trap => "trap",
            ErrorCode::Timeout => "timeout",
            ErrorCode::MemoryLimit => "memory_limit",
            ErrorCode::InvalidEnvelope => "invalid_envelope",
            ErrorCode::UnknownRoutingKey => "unknown_routing_key",
            ErrorCode::HandlerError => "handler_error",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::Forbidden => "forbidden",
        }
    }

    /// Whether the same command may succeed if delivered again later; such
    /// outcomes are not recorded as processed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Overloaded)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code of an error event: one of the host's, or a handler's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// A code the host defines and acts on.
    Host(ErrorCode),
    /// A handler's own code (`validation`, `not_found`, …).
    Handler(String),
}

impl Code {
    /// The code a handler returned: its own when it follows the grammar
    /// ([`is_error_code`]), and `handler_error` otherwise. A guest's code is
    /// its answer even when it spells one of the host's (`unavailable`,
    /// `overloaded`): it is recorded like any answer and never retried, so a
    /// guest cannot make the host redeliver a command forever. Only the
    /// host's own failures are [transient](Code::is_transient).
    pub fn from_handler(code: String) -> Self {
        if is_error_code(&code) {
            Code::Handler(code)
        } else {
            Code::Host(ErrorCode::HandlerError)
        }
    }

    /// The code as it appears in error event bodies.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Host(c) => c.as_str(),
            Code::Handler(c) => c,
        }
    }

    /// Whether the same command may succeed if delivered again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Code::Host(c) if c.is_transient())
    }
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        Code::Host(code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The body of an error event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    /// `trap`, `timeout`, `conflict`, or a handler's own code.
    pub code: Code,
    /// For humans.
    pub message: String,
    /// Details, e.g. `{"current_version": 3}`; `null` when none.
    pub context: serde_json::Value,
    /// The routing key of the command that failed, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl ErrorBody {
    /// An error body with a host-defined code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code: Code::Host(code),
            message: message.into(),
            context: serde_json::Value::Null,
            command: None,
        }
    }

    /// Adds details.
    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        self.context = context;
        self
    }

    /// The error event answering the command `cause`: routing key
    /// `<domain>.error`, published under the command's reply channel. It is
    /// the command's whole answer, so it is marked `last`.
    pub fn event_for(mut self, cause: &Meta) -> Envelope {
        self.command = Some(cause.routing_key.clone());
        let key = error_key(&cause.routing_key);
        let mut event = Envelope::event_for(cause, &key, self.to_raw());
        event.meta.last = true;
        event
    }

    /// The error event answering a message that was not a valid envelope,
    /// addressed with whatever routing facts could be read from it.
    pub fn event_for_partial(mut self, partial: &PartialMeta) -> Envelope {
        self.command = partial.routing_key.clone();
        let key = partial
            .routing_key
            .as_deref()
            .filter(|k| check_routing_key(k).is_ok())
            .map(error_key)
            .unwrap_or_else(|| "pyou.error".to_owned());
        let mut meta = Meta::new(Kind::Event, &key).caused_by(
            partial.correlation_id.clone(),
            partial.session_id.clone(),
            partial.reply_channel.clone(),
        );
        meta.last = true;
        Envelope {
            meta,
            body: self.to_raw(),
        }
    }

    fn to_raw(&self) -> Box<RawValue> {
        // An ErrorBody is strings and a Value: it always serialises.
        serde_json::value::to_raw_value(self)
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).unwrap_or_default())
    }
}

/// Whether an envelope is an error event, and its code if so: for clients
/// that only have the event (the host carries the [`Code`] it made).
pub fn error_code_of(event: &Envelope) -> Option<String> {
    if event.meta.kind != Kind::Event || !event.meta.routing_key.ends_with(".error") {
        return None;
    }
    let body: serde_json::Value = serde_json::from_str(event.body.get()).ok()?;
    body.get("code")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_event_answers_its_command() {
        let Ok(cmd) = Envelope::command("counter.increment", "{}") else {
            panic!()
        };
        let cmd = cmd.with_session("s1");
        let ev = ErrorBody::new(ErrorCode::Trap, "boom").event_for(&cmd.meta);
        assert_eq!(ev.meta.routing_key, "counter.error");
        assert_eq!(ev.topic(), "session.s1.counter.error");
        assert_eq!(
            ev.meta.causation_id.as_ref(),
            Some(&cmd.meta.correlation_id)
        );
        assert_eq!(error_code_of(&ev).as_deref(), Some("trap"));
    }

    #[test]
    fn handler_codes_are_typed() {
        assert_eq!(
            Code::from_handler("not_found".into()),
            Code::Handler("not_found".into())
        );
        // Spelling a host code does not make a guest's answer the host's.
        for code in ["unavailable", "overloaded", "conflict"] {
            let typed = Code::from_handler(code.into());
            assert_eq!(typed, Code::Handler(code.into()));
            assert!(!typed.is_transient(), "{code}");
            assert_eq!(typed.as_str(), code);
        }
        assert!(Code::Host(ErrorCode::Unavailable).is_transient());
        assert_eq!(
            Code::from_handler("Bad Code".into()),
            Code::Host(ErrorCode::HandlerError)
        );
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn unreadable_message_gets_a_generic_key() {
        let ev = ErrorBody::new(ErrorCode::InvalidEnvelope, "bad")
            .event_for_partial(&PartialMeta::default());
        assert_eq!(ev.meta.routing_key, "pyou.error");
        assert_eq!(error_code_of(&ev).as_deref(), Some("invalid_envelope"));
    }
}
