//! W3C trace context across the bus: the `traceparent` and `tracestate`
//! a message carries in its meta, so one trace runs from the HTTP request
//! through every host, guest, event and reactor it causes.
//!
//! What is carried is checked only for size where a message is validated
//! ([`check_fields`]): a trace header that does not parse costs no command,
//! it is ignored, and the trace starts anew where it was ([`TraceContext::read`]).
//! The spans themselves are `tracing` spans; [`span`] joins them to the
//! context carried (and is a no-op when no OpenTelemetry layer is installed).

pub mod span;

use std::fmt;

pub use span::{continue_trace, current, onward, stamp};

/// An `info` span named `$name` for one message with OpenTelemetry's
/// messaging conventions (`otel.kind` `$kind`, operation `$op`, over the
/// bus whose `messaging_system()` is `$system`), the message's ids and
/// the domain `$domain`, plus any further `tracing` fields. Written once
/// for the gateway's producer spans and the host's consumer spans.
#[macro_export]
macro_rules! messaging_span {
    ($name:literal, $kind:literal, $op:literal, $otel_name:expr, $system:expr, $meta:expr, $domain:expr $(, $($field:tt)+)?) => {{
        let meta: &$crate::envelope::Meta = $meta;
        ::tracing::info_span!(
            $name,
            otel.name = %$otel_name,
            otel.kind = $kind,
            messaging.system = $system,
            messaging.operation.type = $op,
            messaging.destination.name = %meta.routing_key,
            messaging.message.id = %meta.message_id,
            messaging.message.conversation_id = %meta.correlation_id,
            pyou.domain = %$domain,
            pyou.routing_key = %meta.routing_key,
            correlation_id = %meta.correlation_id
            $(, $($field)+)?
        )
    }};
}

/// Longest `traceparent` a message may carry, in bytes (version 00 is 55;
/// later versions may append fields).
pub const MAX_TRACEPARENT_LEN: usize = 128;
/// Longest `tracestate`, in bytes: the W3C's 32 members fit in it, and
/// every message a command causes copies it.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// A parsed `traceparent`: `00-<trace id>-<parent id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace every span of it shares (never all zeros).
    pub trace_id: [u8; 16],
    /// The span that sent the message (never all zeros).
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header as the W3C Trace Context says a
    /// receiver does: version `ff` and all-zero ids are invalid, a later
    /// version than 00 is read for its first four fields. `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 55 || b.len() > MAX_TRACEPARENT_LEN {
            return None;
        }
        let version = hex_byte(&b[0..2])?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, out) in trace_id.iter_mut().enumerate() {
            *out = hex_byte(&b[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, out) in parent_id.iter_mut().enumerate() {
            *out = hex_byte(&b[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&b[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id as 32 lowercase hex digits, as trace viewers show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The parent (span) id as 16 lowercase hex digits.
    pub fn parent_id_hex(&self) -> String {
        hex(&self.parent_id)
    }
}

impl fmt::Display for TraceParent {
    /// Always version 00, the one this host speaks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.parent_id),
            self.flags
        )
    }
}

/// The trace context of a message: where it sits in a trace, and the
/// vendors' opaque `tracestate` that travels with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// Trace and parent span.
    pub parent: TraceParent,
    /// The `tracestate` as received (only if it is within
    /// [`MAX_TRACESTATE_LEN`] printable bytes).
    pub state: Option<String>,
}

impl TraceContext {
    /// The context of two header values, `None` unless `traceparent`
    /// parses; a `tracestate` that is too long or not printable is
    /// dropped, as the W3C lets a receiver do.
    pub fn read(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let parent = TraceParent::parse(traceparent?.trim())?;
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && is_printable(s, MAX_TRACESTATE_LEN))
            .map(str::to_owned);
        Some(TraceContext { parent, state })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        self.parent.to_string()
    }
}

/// Checks the trace fields a message carries for size and characters
/// only (see the module docs): `Err` says which field is wrong.
pub fn check_fields(traceparent: Option<&str>, tracestate: Option<&str>) -> Result<(), String> {
    if let Some(p) = traceparent {
        if !is_printable(p, MAX_TRACEPARENT_LEN) {
            return Err(format!(
                "meta.traceparent must be at most {MAX_TRACEPARENT_LEN} printable ASCII characters"
            ));
        }
    }
    if let Some(s) = tracestate {
        if !is_printable(s, MAX_TRACESTATE_LEN) {
            return Err(format!(
                "meta.tracestate must be at most {MAX_TRACESTATE_LEN} printable ASCII characters"
            ));
        }
    }
    Ok(())
}

fn is_printable(s: &str, max: usize) -> bool {
    s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Two lowercase hex digits (the W3C allows no uppercase).
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_back_a_traceparent() {
        let Some(tp) = TraceParent::parse(GOOD) else {
            panic!("{GOOD} is valid")
        };
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id_hex(), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), GOOD);
    }

    #[test]
    fn refuses_what_the_w3c_calls_invalid() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version is read for the fields it shares with 00.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(TraceParent::parse(later).is_some());
        assert_eq!(TraceParent::parse(&format!("{}x", &later[..55])), None);
    }

    #[test]
    fn a_bad_tracestate_is_dropped_not_the_context() {
        let long = "k=".to_owned() + &"v".repeat(MAX_TRACESTATE_LEN);
        let ctx = TraceContext::read(Some(GOOD), Some(&long));
        assert_eq!(ctx.map(|c| c.state), Some(None));
        let ctx = TraceContext::read(Some(GOOD), Some("congo=t61rcWkgMzE"));
        assert_eq!(
            ctx.and_then(|c| c.state).as_deref(),
            Some("congo=t61rcWkgMzE")
        );
        assert_eq!(TraceContext::read(Some("junk"), Some("a=b")), None);
        assert_eq!(TraceContext::read(None, Some("a=b")), None);
    }

    #[test]
    fn fields_are_bounded() {
        assert!(check_fields(Some(GOOD), Some("a=b")).is_ok());
        assert!(check_fields(Some("not one, but short"), None).is_ok());
        assert!(check_fields(Some(&"0".repeat(MAX_TRACEPARENT_LEN + 1)), None).is_err());
        assert!(check_fields(None, Some("a=\u{7}")).is_err());
    }
}
