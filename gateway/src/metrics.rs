//! The gateway's own counters, rendered with the host's for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// What the gateway has done.
#[derive(Debug, Default)]
pub(crate) struct GatewayMetrics {
    accepted: Mutex<BTreeMap<String, u64>>,
    delivered: AtomicU64,
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

    pub(crate) fn render(&self, live_sessions: usize, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP pyou_gateway_commands_accepted_total Commands put on the bus by the gateway, by routing key.");
        let _ = writeln!(out, "# TYPE pyou_gateway_commands_accepted_total counter");
        for (key, n) in self.accepted.lock().iter() {
            let _ = writeln!(
                out,
                "pyou_gateway_commands_accepted_total{{routing_key=\"{key}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pyou_gateway_events_delivered_total Events sent to WebSocket clients."
        );
        let _ = writeln!(out, "# TYPE pyou_gateway_events_delivered_total counter");
        let _ = writeln!(
            out,
            "pyou_gateway_events_delivered_total {}",
            self.delivered.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP pyou_gateway_websocket_sessions Sessions with a WebSocket client connected."
        );
        let _ = writeln!(out, "# TYPE pyou_gateway_websocket_sessions gauge");
        let _ = writeln!(out, "pyou_gateway_websocket_sessions {live_sessions}");
    }
}
