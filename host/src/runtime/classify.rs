//! Between the guest's types and the host's: failures to error bodies, and
//! commands to the guest's record.

use std::time::Duration;

use crate::bindings;
use crate::sandbox::Sandbox;
use parallel_you_core::envelope::{parse_timestamp_ms, Envelope};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};

pub(super) fn classify(err: &wasmtime::Error, sandbox: &Sandbox, deadline: Duration) -> ErrorBody {
    if sandbox.memory_denied {
        return ErrorBody::new(ErrorCode::MemoryLimit, format!("{err}"));
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

pub(super) fn handler_error(he: bindings::parallel_you::handler::types::HandlerError) -> ErrorBody {
    let code = Code::from_handler(he.code);
    let context = he
        .context
        .map(|c| serde_json::from_str(&c).unwrap_or(serde_json::Value::String(c)))
        .unwrap_or(serde_json::Value::Null);
    ErrorBody {
        code,
        message: he.message,
        context,
        command: None,
    }
}

pub(super) fn to_wit_command(cmd: &Envelope) -> bindings::parallel_you::handler::types::Command {
    use bindings::parallel_you::handler::types;
    let m = &cmd.meta;
    types::Command {
        meta: types::Meta {
            message_id: m.message_id.clone(),
            routing_key: m.routing_key.clone(),
            reply_channel: m.reply_channel.clone(),
            correlation_id: m.correlation_id.clone(),
            causation_id: m.causation_id.clone(),
            session_id: m.session_id.clone(),
            timestamp_ms: parse_timestamp_ms(&m.timestamp).unwrap_or(0),
        },
        body: cmd.body.get().to_owned(),
    }
}
