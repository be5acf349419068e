//! Joining `tracing` spans to the trace context messages carry, through
//! the OpenTelemetry layer when the process has one (`pyou --otlp-endpoint`).
//! Without it every function here does nothing, cheaply, and messages pass
//! the context they were caused by on unchanged.

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{TraceContext, TraceParent};

/// Makes `span` (not yet entered) a child of the span that sent `from`.
/// With no context it stays a root: a new trace, if the span is exported.
pub fn continue_trace(span: &tracing::Span, from: Option<&TraceContext>) {
    let Some(from) = from else { return };
    let state = from
        .state
        .as_deref()
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(from.parent.trace_id),
        SpanId::from_bytes(from.parent.parent_id),
        TraceFlags::new(from.parent.flags),
        true,
        state,
    );
    // Refused only when no layer tracks the span (not exported) or it was
    // already started: then there is nothing to join.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The context of `span` itself, for the messages it sends: `None` unless
/// an OpenTelemetry layer records it.
pub fn current(span: &tracing::Span) -> Option<TraceContext> {
    let cx = span.context();
    let span_ref = cx.span();
    let sc = span_ref.span_context();
    if !sc.is_valid() {
        return None;
    }
    let state = sc.trace_state().header();
    Some(TraceContext {
        parent: TraceParent {
            trace_id: sc.trace_id().to_bytes(),
            parent_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        },
        state: (!state.is_empty()).then_some(state),
    })
}

/// The context the messages `span` sends carry: its own when it is
/// recorded, else `cause`'s unchanged (a process that does not trace
/// passes the trace on).
pub fn onward(span: &tracing::Span, cause: Option<TraceContext>) -> Option<TraceContext> {
    current(span).or(cause)
}

/// Puts `span`'s own context on `messages` when it is recorded: what a
/// host sends is the child of the span that sent it. Otherwise they keep
/// the context of their cause, which [`crate::Envelope::event_for`] gave them.
pub fn stamp(span: &tracing::Span, messages: &mut [crate::Envelope]) {
    if let Some(own) = current(span) {
        for message in messages {
            message.meta.set_trace(Some(own.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_layer_the_context_passes_through() {
        let Some(cause) = TraceContext::read(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("a=b"),
        ) else {
            panic!("valid")
        };
        let span = tracing::info_span!("test");
        continue_trace(&span, Some(&cause));
        assert_eq!(current(&span), None);
        assert_eq!(onward(&span, Some(cause.clone())), Some(cause));
        assert_eq!(onward(&span, None), None);
    }
}

#[cfg(test)]
mod with_a_layer {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn a_span_continues_the_carried_trace_and_sends_its_own_id() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let cause = TraceContext::read(
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                Some("congo=t61rcWkgMzE"),
            );
            let span = tracing::info_span!("command");
            continue_trace(&span, cause.as_ref());
            let Some(own) = current(&span) else {
                panic!("a recorded span has a context")
            };
            assert_eq!(
                own.parent.trace_id_hex(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(own.parent.parent_id_hex(), "00f067aa0ba902b7");
            assert_eq!(own.parent.flags, 1);
            assert_eq!(own.state.as_deref(), Some("congo=t61rcWkgMzE"));
            assert_eq!(onward(&span, cause), Some(own.clone()));
            // A child entered inside it is of the same trace.
            let child = span.in_scope(|| tracing::info_span!("guest"));
            let child = current(&child).map(|c| c.parent);
            assert_eq!(child.map(|c| c.trace_id), Some(own.parent.trace_id));

            // No context carried: a new trace.
            let root = tracing::info_span!("root");
            continue_trace(&root, None);
            let root = current(&root).map(|c| c.parent.trace_id);
            assert!(root.is_some_and(|id| id != own.parent.trace_id));
        });
    }
}
