//! Where the gateway's commands join a trace: the W3C `traceparent` and
//! `tracestate` headers of a request (HTTP, or a WebSocket's upgrade), and
//! the producer span a command is sent in. A header that does not parse
//! is ignored, never an error: the command then starts a new trace.

use axum::http::HeaderMap;
use parallel_you_core::envelope::Meta;
use parallel_you_core::names::domain_of;
use parallel_you_core::trace::TraceContext;
use parallel_you_core::Publisher;

/// The trace context a request's headers carry, if valid.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    TraceContext::read(header("traceparent"), header("tracestate"))
}

/// The span of sending one command that came `via` `http` or `ws`, with OpenTelemetry's messaging conventions for a
/// producer.
pub(crate) fn producer_span(via: &'static str, meta: &Meta, bus: &dyn Publisher) -> tracing::Span {
    parallel_you_core::messaging_span!(
        "command",
        "producer",
        "send",
        format_args!("send {}", meta.routing_key),
        bus.messaging_system(),
        meta,
        domain_of(&meta.routing_key),
        pyou.via = via,
        routing_key = %meta.routing_key,
        session_id = meta.session_id.as_deref().unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_header_is_no_context() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers), None);
        headers.insert(
            "traceparent",
            "00-nope".parse().unwrap_or_else(|_| panic!()),
        );
        assert_eq!(from_headers(&headers), None);
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", good.parse().unwrap_or_else(|_| panic!()));
        headers.insert("tracestate", "a=b".parse().unwrap_or_else(|_| panic!()));
        let ctx = from_headers(&headers);
        assert_eq!(
            ctx.as_ref().map(TraceContext::traceparent).as_deref(),
            Some(good)
        );
        assert_eq!(ctx.and_then(|c| c.state).as_deref(), Some("a=b"));
    }
}
