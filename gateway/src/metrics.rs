//! The gateway's own counters, rendered with the host's for `GET /metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parallel_you_core::prometheus::TextWriter;
use parking_lot::Mutex;

use crate::connections::ConnectionCap;
use crate::sessions::Sessions;

/// What the gateway has done.
#[derive(Debug, Default)]
pub(crate) struct GatewayMetrics {
    accepted: Mutex<BTreeMap<String, u64>>,
    delivered: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
}

impl GatewayMetrics {
    pub(crate) fn accepted(&self, routing_key: &str) {
        *self
            .accepted
            .lock()
            .entry(routing_key.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn forbidden(&self) {
        self.forbidden.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(
        &self,
        sessions: &Sessions,
        connections: &ConnectionCap,
        out: &mut String,
    ) {
        let mut w = TextWriter::new(out);
        w.family(
            "pyou_gateway_commands_accepted_total",
            "counter",
            "Commands put on the bus by the gateway, by routing key.",
        );
        for (key, n) in self.accepted.lock().iter() {
            w.sample(
                "pyou_gateway_commands_accepted_total",
                &[("routing_key", key)],
                n,
            );
        }
        w.family(
            "pyou_gateway_events_delivered_total",
            "counter",
            "Events sent to WebSocket clients.",
        )
        .sample(
            "pyou_gateway_events_delivered_total",
            &[],
            self.delivered.load(Ordering::Relaxed),
        );
        w.family(
            "pyou_gateway_unauthorized_total",
            "counter",
            "Requests refused for a missing or invalid token (401).",
        )
        .sample(
            "pyou_gateway_unauthorized_total",
            &[],
            self.unauthorized.load(Ordering::Relaxed),
        );
        w.family(
            "pyou_gateway_forbidden_total",
            "counter",
            "Commands, queries and sessions refused to their caller (403 or a forbidden error event).",
        )
        .sample(
            "pyou_gateway_forbidden_total",
            &[],
            self.forbidden.load(Ordering::Relaxed),
        );
        w.family(
            "pyou_gateway_websocket_sessions",
            "gauge",
            "Sessions with a WebSocket client connected.",
        )
        .sample("pyou_gateway_websocket_sessions", &[], sessions.live());
        w.family(
            "pyou_gateway_session_buffer_bytes",
            "gauge",
            "Bytes of events buffered for sessions' reconnects.",
        )
        .sample(
            "pyou_gateway_session_buffer_bytes",
            &[],
            sessions.buffered_bytes(),
        );
        let shed = &sessions.shed;
        w.family(
            "pyou_gateway_sessions_shed_total",
            "counter",
            "What the session buffers let go of early: idle sessions evicted to make room, events refused with every session live, events trimmed to keep the bytes bound.",
        );
        for (what, n) in [
            ("session_evicted", &shed.evicted),
            ("event_refused", &shed.refused),
            ("event_trimmed", &shed.trimmed),
        ] {
            w.sample(
                "pyou_gateway_sessions_shed_total",
                &[("what", what)],
                n.load(Ordering::Relaxed),
            );
        }
        w.family(
            "pyou_gateway_connections",
            "gauge",
            "Client connections open now (WebSockets included).",
        )
        .sample("pyou_gateway_connections", &[], connections.open());
        w.family(
            "pyou_gateway_connections_max",
            "gauge",
            "The cap on open client connections.",
        )
        .sample("pyou_gateway_connections_max", &[], connections.max());
        w.family(
            "pyou_gateway_connections_refused_total",
            "counter",
            "Connections closed at once because the cap was reached.",
        )
        .sample(
            "pyou_gateway_connections_refused_total",
            &[],
            connections.refused(),
        );
    }
}
