//! Counters and latency histograms of a host, rendered in the Prometheus
//! text format.

use std::collections::BTreeMap;
use std::time::Duration;

use parallel_you_core::error::ErrorCode;
use parallel_you_core::prometheus::TextWriter;
use parking_lot::Mutex;

/// Distinct handler codes that get their own `pyou_errors_total` label;
/// handlers invent codes freely, and each label is a series kept forever.
pub const MAX_HANDLER_CODES: usize = 64;
/// The label of the errors whose handler code came past
/// [`MAX_HANDLER_CODES`].
pub const OTHER_CODE: &str = "other";

/// Upper bounds of the dispatch latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS.len()];
        }
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Inner {
    commands: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    /// Labels in `errors` that are handler codes (not the host's, not
    /// [`OTHER_CODE`]).
    handler_codes: usize,
    latency: BTreeMap<String, Histogram>,
    replays: u64,
    /// Per reactor domain (bounded by the loaded reactors): events it
    /// handled, failed tries retried, events dead-lettered.
    reactors: BTreeMap<String, ReactorCounts>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ReactorCounts {
    events: u64,
    retries: u64,
    dead_letters: u64,
}

impl Inner {
    /// Counts an error event under its code: the host's codes and the first
    /// [`MAX_HANDLER_CODES`] handler codes seen are labels of their own,
    /// later handler codes count under [`OTHER_CODE`].
    fn error(&mut self, code: &str) {
        if let Some(n) = self.errors.get_mut(code) {
            *n += 1;
            return;
        }
        let label = if ErrorCode::parse(code).is_some() || code == OTHER_CODE {
            code
        } else if self.handler_codes < MAX_HANDLER_CODES {
            self.handler_codes += 1;
            code
        } else {
            OTHER_CODE
        };
        *self.errors.entry(label.to_owned()).or_default() += 1;
    }
}

/// What a host has done since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one command run to its end.
    pub fn command(&self, routing_key: &str, took: Duration, error_code: Option<&str>) {
        let mut inner = self.inner.lock();
        // Keys are allocated once per routing key, not once per command.
        match inner.commands.get_mut(routing_key) {
            Some(n) => *n += 1,
            None => {
                inner.commands.insert(routing_key.to_owned(), 1);
            }
        }
        match inner.latency.get_mut(routing_key) {
            Some(h) => h.observe(took.as_secs_f64()),
            None => inner
                .latency
                .entry(routing_key.to_owned())
                .or_default()
                .observe(took.as_secs_f64()),
        }
        if let Some(code) = error_code {
            inner.error(code);
        }
    }

    /// Records a command refused before it ran (invalid, unknown key…).
    pub fn refused(&self, error_code: &str) {
        self.inner.lock().error(error_code);
    }

    /// Records a redelivered command answered from its record.
    pub fn replayed(&self) {
        self.inner.lock().replays += 1;
    }

    /// Records one event the reactor `domain` handled to its commit (or
    /// found already handled).
    pub fn reactor_event(&self, domain: &str) {
        self.reactor(domain, |c| c.events += 1);
    }

    /// Records one failed try of a reactor's event that will be retried.
    pub fn reactor_retry(&self, domain: &str) {
        self.reactor(domain, |c| c.retries += 1);
    }

    /// Records one event a reactor gave up on (dead-lettered).
    pub fn dead_lettered(&self, domain: &str) {
        self.reactor(domain, |c| c.dead_letters += 1);
    }

    fn reactor(&self, domain: &str, f: impl FnOnce(&mut ReactorCounts)) {
        let mut inner = self.inner.lock();
        match inner.reactors.get_mut(domain) {
            Some(c) => f(c),
            None => f(inner.reactors.entry(domain.to_owned()).or_default()),
        }
    }

    /// Events handled, retries and dead letters of the reactor `domain`.
    pub fn reactor_counts(&self, domain: &str) -> (u64, u64, u64) {
        self.inner
            .lock()
            .reactors
            .get(domain)
            .map_or((0, 0, 0), |c| (c.events, c.retries, c.dead_letters))
    }

    /// Commands run for a routing key.
    pub fn commands_for(&self, routing_key: &str) -> u64 {
        self.inner
            .lock()
            .commands
            .get(routing_key)
            .copied()
            .unwrap_or(0)
    }

    /// Error events by code label (a handler code past the first
    /// [`MAX_HANDLER_CODES`] counts under [`OTHER_CODE`]).
    pub fn errors_for(&self, code: &str) -> u64 {
        self.inner.lock().errors.get(code).copied().unwrap_or(0)
    }

    /// Appends the metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let inner = self.inner.lock();
        let mut w = TextWriter::new(out);
        w.family(
            "pyou_commands_total",
            "counter",
            "Commands run, by routing key.",
        );
        for (key, n) in &inner.commands {
            w.sample("pyou_commands_total", &[("routing_key", key)], n);
        }
        w.family(
            "pyou_errors_total",
            "counter",
            "Error events, by code (handler codes past the first 64 as \"other\").",
        );
        for (code, n) in &inner.errors {
            w.sample("pyou_errors_total", &[("code", code)], n);
        }
        w.family(
            "pyou_replayed_total",
            "counter",
            "Redelivered commands answered from their record.",
        )
        .sample("pyou_replayed_total", &[], inner.replays);
        for (name, help, pick) in [
            (
                "pyou_reactor_events_total",
                "Events a reactor handled, by reactor.",
                (|c: &ReactorCounts| c.events) as fn(&ReactorCounts) -> u64,
            ),
            (
                "pyou_reactor_retries_total",
                "Failed tries of reactor events that were retried, by reactor.",
                |c| c.retries,
            ),
            (
                "pyou_dead_letters_total",
                "Reactor events given up on and dead-lettered, by reactor.",
                |c| c.dead_letters,
            ),
        ] {
            w.family(name, "counter", help);
            for (domain, c) in &inner.reactors {
                w.sample(name, &[("reactor", domain)], pick(c));
            }
        }
        w.family(
            "pyou_dispatch_seconds",
            "histogram",
            "Time from taking a command to its events being published.",
        );
        for (key, h) in &inner.latency {
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                let le = bound.to_string();
                w.sample(
                    "pyou_dispatch_seconds_bucket",
                    &[("routing_key", key), ("le", &le)],
                    n,
                );
            }
            w.sample(
                "pyou_dispatch_seconds_bucket",
                &[("routing_key", key), ("le", "+Inf")],
                h.count,
            );
            w.sample("pyou_dispatch_seconds_sum", &[("routing_key", key)], h.sum);
            w.sample(
                "pyou_dispatch_seconds_count",
                &[("routing_key", key)],
                h.count,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.command("a.b", Duration::from_micros(70), None);
        m.command("a.b", Duration::from_millis(3), Some("trap"));
        m.refused("invalid_envelope");
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("pyou_commands_total{routing_key=\"a.b\"} 2"),
            "{out}"
        );
        assert!(out.contains("pyou_errors_total{code=\"trap\"} 1"));
        assert!(out.contains("pyou_errors_total{code=\"invalid_envelope\"} 1"));
        assert!(out.contains("pyou_dispatch_seconds_bucket{routing_key=\"a.b\",le=\"0.0001\"} 1"));
        assert!(out.contains("pyou_dispatch_seconds_bucket{routing_key=\"a.b\",le=\"+Inf\"} 2"));
        assert!(out.contains("pyou_dispatch_seconds_count{routing_key=\"a.b\"} 2"));
    }

    #[test]
    fn handler_codes_past_the_cap_count_as_other() {
        let m = Metrics::default();
        for i in 0..MAX_HANDLER_CODES + 100 {
            m.command("a.b", Duration::from_micros(1), Some(&format!("code_{i}")));
        }
        // Codes seen before the cap keep their label; host codes always do.
        m.command("a.b", Duration::from_micros(1), Some("code_0"));
        m.command("a.b", Duration::from_micros(1), Some("unavailable"));
        m.refused("invalid_envelope");
        assert_eq!(m.errors_for("code_0"), 2);
        assert_eq!(m.errors_for(&format!("code_{}", MAX_HANDLER_CODES - 1)), 1);
        assert_eq!(m.errors_for(&format!("code_{MAX_HANDLER_CODES}")), 0);
        assert_eq!(m.errors_for(OTHER_CODE), 100);
        assert_eq!(m.errors_for("unavailable"), 1);
        assert_eq!(m.errors_for("invalid_envelope"), 1);
        let mut out = String::new();
        m.render(&mut out);
        let labels = out
            .lines()
            .filter(|l| l.starts_with("pyou_errors_total{"))
            .count();
        assert_eq!(labels, MAX_HANDLER_CODES + 3, "{out}");
    }
}
