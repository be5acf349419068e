//! Between the guest's types and the host's: failures to error bodies (cut
//! to fit the error body cap), and commands to the guest's record.

use std::time::Duration;

use crate::bindings;
use crate::sandbox::Sandbox;
use parallel_you_core::envelope::{parse_timestamp_ms, Envelope};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::json_depth::{nesting_depth, MAX_JSON_DEPTH};

/// Appended to an error message that was cut to fit the error body cap.
pub(crate) const TRUNCATED_NOTE: &str = "… (truncated)";
/// Room left in an error body for its code and the command's routing key.
const ERROR_BODY_MARGIN: usize = 1024;

pub(super) fn classify(err: &wasmtime::Error, sandbox: &Sandbox, deadline: Duration) -> ErrorBody {
    if let Some(err) = &sandbox.events_exceeded {
        return err.clone();
    }
    if sandbox.memory_denied {
        // Its own cap (a grant may set one), not the trap's backtrace.
        let cap = sandbox.memory_cap();
        return ErrorBody::new(
            ErrorCode::MemoryLimit,
            format!(
                "the handler tried to grow its memory past its cap of {} MiB ({cap} bytes)",
                cap >> 20
            ),
        );
    }
    if sandbox.timed_out {
        return ErrorBody::new(
            ErrorCode::Timeout,
            format!(
                "the handler ran past its deadline of {} ms and was stopped",
                deadline.as_millis()
            ),
        );
    }
    let stderr = sandbox.stderr_text();
    let detail = format!("{err:?}");
    let message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("the handler trapped: {trap}"),
        None => format!("the handler failed: {err}"),
    };
    let mut context = serde_json::Map::new();
    if !stderr.is_empty() {
        context.insert("stderr".into(), stderr.into());
    }
    context.insert("backtrace".into(), detail.into());
    ErrorBody::new(ErrorCode::Trap, message).with_context(serde_json::Value::Object(context))
}

/// The guest's failure as an error body. Its code is its answer, except
/// `unavailable` passed on from a store call that failed so during this
/// command (`store_unavailable`): that outage is the host's, and transient.
pub(super) fn handler_error(
    he: bindings::parallel_you::handler::types::HandlerError,
    store_unavailable: bool,
) -> ErrorBody {
    let code = match Code::from_handler(he.code) {
        Code::Handler(c) if store_unavailable && c == ErrorCode::Unavailable.as_str() => {
            Code::Host(ErrorCode::Unavailable)
        }
        code => code,
    };
    // Context nested past the body limit stays text: as a value it would
    // make the error event itself too deep.
    let context = he
        .context
        .map(|c| {
            if nesting_depth(&c) > MAX_JSON_DEPTH {
                return serde_json::Value::String(c);
            }
            serde_json::from_str(&c).unwrap_or(serde_json::Value::String(c))
        })
        .unwrap_or(serde_json::Value::Null);
    ErrorBody {
        code,
        message: he.message,
        context,
        command: None,
    }
}

/// `body` cut to fit an event body of `max` bytes: the message and the
/// context get half the room each. A cut message ends with
/// [`TRUNCATED_NOTE`]; a cut context becomes
/// `{"truncated": true, "bytes": <its size>, "head": "<its start>"}`.
pub(crate) fn bounded(mut body: ErrorBody, max: usize) -> ErrorBody {
    let room = max.saturating_sub(ERROR_BODY_MARGIN);
    let mut share = room / 2;
    loop {
        body.message = cut_message(body.message, share);
        body.context = cut_context(body.context, share);
        let size = serde_json::to_string(&body).map_or(usize::MAX, |t| t.len());
        // Escapes (`\u0000` for a control byte) can make the JSON up to six
        // times the text: halve the shares until it fits.
        if size <= room || share == 0 {
            return body;
        }
        share /= 2;
    }
}

fn cut_message(message: String, share: usize) -> String {
    if message.len() <= share {
        return message;
    }
    let mut cut = share.saturating_sub(TRUNCATED_NOTE.len());
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{TRUNCATED_NOTE}", &message[..cut])
}

fn cut_context(context: serde_json::Value, share: usize) -> serde_json::Value {
    let text = context.to_string();
    if text.len() <= share {
        return context;
    }
    let mut cut = share / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    serde_json::json!({
        "truncated": true,
        "bytes": text.len(),
        "head": &text[..cut],
    })
}

pub(super) fn to_wit_command(cmd: &Envelope) -> bindings::parallel_you::handler::types::Command {
    bindings::parallel_you::handler::types::Command {
        meta: to_wit_meta(cmd),
        body: cmd.body.get().to_owned(),
    }
}

/// An event as a reactor receives it.
pub(super) fn to_wit_event(
    event: &Envelope,
) -> bindings::reactor::parallel_you::handler::reactor_types::DeliveredEvent {
    bindings::reactor::parallel_you::handler::reactor_types::DeliveredEvent {
        meta: to_wit_meta(event),
        body: event.body.get().to_owned(),
    }
}

fn to_wit_meta(env: &Envelope) -> bindings::parallel_you::handler::types::Meta {
    let m = &env.meta;
    bindings::parallel_you::handler::types::Meta {
        message_id: m.message_id.clone(),
        routing_key: m.routing_key.clone(),
        reply_channel: m.reply_channel.clone(),
        correlation_id: m.correlation_id.clone(),
        causation_id: m.causation_id.clone(),
        session_id: m.session_id.clone(),
        timestamp_ms: parse_timestamp_ms(&m.timestamp).unwrap_or(0),
        user_id: m.user_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_bodies_fit_and_say_they_were_cut() {
        let max = 10_000;
        let shapes = [
            ("é".repeat(50_000), serde_json::Value::Null),
            (
                "x".repeat(10),
                serde_json::json!({ "blob": "y".repeat(50_000) }),
            ),
            (
                "\u{1}".repeat(50_000),
                serde_json::json!(["\u{0}".repeat(50_000)]),
            ),
            ("fine".to_owned(), serde_json::json!({ "small": 1 })),
        ];
        for (message, context) in shapes {
            let body =
                ErrorBody::new(ErrorCode::Trap, message.clone()).with_context(context.clone());
            let out = bounded(body, max);
            let size = serde_json::to_string(&out).map_or(usize::MAX, |t| t.len());
            assert!(size <= max - ERROR_BODY_MARGIN, "{size}");
            if message.len() > max {
                assert!(out.message.ends_with(TRUNCATED_NOTE), "{}", out.message);
            } else {
                assert_eq!(out.message, message);
            }
            if context.to_string().len() > max {
                assert_eq!(out.context["truncated"], true);
            } else {
                assert_eq!(out.context, context);
            }
        }
    }
}
