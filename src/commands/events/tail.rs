//! `pyou events tail`: live events, from a RabbitMQ broker (`--bus`) or a
//! gateway's WebSocket (`/ws?follow=`).

use std::collections::HashSet;

use futures::StreamExt as _;
use parallel_you_core::bus::topic_matches;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::names::{check_event_pattern, check_session_id};
use parallel_you_core::Bus as _;
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use tokio_tungstenite::tungstenite::Message;

use super::super::{shutdown_signal, EXIT_USAGE};

/// Arguments of `pyou events tail`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou events tail --pattern 'thread.*'\n  \
    pyou events tail --session demo --url ws://127.0.0.1:8080\n  \
    pyou events tail --bus amqp://guest:guest@127.0.0.1:5672/%2f --correlation 01KAR…")]
pub(crate) struct Args {
    /// Only this session's events.
    #[arg(long)]
    session: Option<String>,
    /// Only the events a command with this correlation id caused directly
    /// (or this event itself), and, when they carry a trace (see README,
    /// Traces), every later event of that trace: what reactors' commands
    /// caused. Without traces `pyou events query` follows reactors.
    #[arg(long)]
    correlation: Option<String>,
    /// Only events whose routing key matches (`*` one segment, `#` any;
    /// repeatable, up to 16; default: every event).
    #[arg(long = "pattern", value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Read from this RabbitMQ broker (its events exchange) instead of a
    /// gateway.
    #[arg(long = "bus", env = "PYOU_BUS")]
    bus: Option<String>,
    /// The gateway to read from (its WebSocket), without --bus.
    #[arg(long, env = "PYOU_URL", default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<usize>,
}

/// Most traces one `--correlation` follows (a command's events share one;
/// a client reusing its trace for many commands makes more).
const MAX_FOLLOWED: usize = 1024;

/// The traces `--correlation` follows: those its direct events carry.
#[derive(Debug, Default)]
struct Followed(HashSet<[u8; 16]>);

impl Args {
    fn wants(&self, event: &Envelope, followed: &mut Followed) -> bool {
        let m = &event.meta;
        // Before the other filters: a direct event they leave out still
        // names the trace to follow.
        let caused = self.correlation.as_ref().is_none_or(|c| {
            let trace = m.trace().map(|t| t.parent.trace_id);
            if m.causation_id.as_ref() == Some(c) || &m.correlation_id == c {
                if let Some(id) = trace.filter(|_| followed.0.len() < MAX_FOLLOWED) {
                    followed.0.insert(id);
                }
                return true;
            }
            trace.is_some_and(|id| followed.0.contains(&id))
        });
        caused
            && (self.patterns.is_empty()
                || self
                    .patterns
                    .iter()
                    .any(|p| topic_matches(p, &m.routing_key)))
            && self
                .session
                .as_ref()
                .is_none_or(|s| m.session_id.as_ref() == Some(s))
    }
}

/// Prints what matches until Ctrl-C, the source closing, or `--count`.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(session) = &args.session {
        if let Err(err) = check_session_id(session) {
            eprintln!("error: --session: {err}");
            return Ok(EXIT_USAGE);
        }
    }
    if args.patterns.len() > 16 {
        eprintln!("error: at most 16 --pattern");
        return Ok(EXIT_USAGE);
    }
    for pattern in &args.patterns {
        if let Err(err) = check_event_pattern(pattern) {
            eprintln!("error: --pattern {pattern:?}: {err}");
            return Ok(EXIT_USAGE);
        }
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut printed = 0;
    let mut followed = Followed::default();
    let mut print = |event: &Envelope| {
        if args.wants(event, &mut followed) {
            println!("{event}");
            printed += 1;
        }
        args.count.is_some_and(|n| printed >= n)
    };
    match args.bus.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            let mut config = AmqpConfig::new(url);
            config.connection_name = format!("pyou events tail (pid {})", std::process::id());
            let bus = AmqpBus::connect(config)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to RabbitMQ (--bus): {e}"))?;
            // Events go out under `<reply channel>.<routing key>`: a session
            // narrows the binding, patterns are matched here on the key.
            let binding = match &args.session {
                Some(s) => format!("{}.#", parallel_you_core::names::session_channel(s)),
                None => "#".to_owned(),
            };
            let mut events = bus.subscribe(&binding).await?;
            eprintln!("pyou: tailing the events on {}", redact(url));
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    event = events.next() => match event {
                        Some(event) => if print(&event) { break },
                        None => break,
                    },
                }
            }
            bus.close().await;
        }
        None => {
            let session = match &args.session {
                Some(s) => s.clone(),
                None => format!(
                    "tail-{}",
                    parallel_you_core::envelope::new_id().to_lowercase()
                ),
            };
            let mut url = format!("{}/ws?session={session}", args.url.trim_end_matches('/'));
            // Its own session's events come anyway; other sessions' (and
            // none's) through the follow feed.
            if args.session.is_none() || !args.patterns.is_empty() {
                let follow = if args.patterns.is_empty() {
                    "#".to_owned()
                } else {
                    args.patterns.join(",")
                };
                url.push_str(&format!("&follow={follow}"));
            }
            let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| {
                anyhow::anyhow!("cannot connect to {url}: {e} (is `pyou serve` or `pyou gateway` running there?)")
            })?;
            eprintln!("pyou: tailing the events of {}", args.url);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    msg = socket.next() => match msg {
                        Some(Ok(Message::Text(text))) => {
                            if let Ok(event) = Envelope::from_json(text.as_str(), usize::MAX) {
                                if print(&event) { break }
                            }
                        }
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Ok(_)) => {}
                        Some(Err(err)) => anyhow::bail!("the WebSocket of {}: {err}", args.url),
                    },
                }
            }
        }
    }
    Ok(0)
}

/// A broker URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::envelope::{Kind, Meta};
    use parallel_you_core::trace::TraceContext;

    fn event(key: &str, causation: &str, trace: Option<&str>) -> Envelope {
        let trace = trace.map(|t| format!("00-{t}-00f067aa0ba902b7-01"));
        let meta = Meta::new(Kind::Event, key)
            .caused_by(Some(causation.to_owned()), None, None)
            .traced(TraceContext::read(trace.as_deref(), None));
        let body = serde_json::value::RawValue::from_string("{}".to_owned());
        Envelope {
            meta,
            body: body.unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn correlation_follows_the_trace_of_its_direct_events() {
        let args = Args {
            session: None,
            correlation: Some("C1".to_owned()),
            patterns: vec!["counter.*".to_owned()],
            bus: None,
            url: String::new(),
            count: None,
        };
        let (t1, t2) = (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "5bf92f3577b34da6a3ce929d0e0e4736",
        );
        let mut followed = Followed::default();
        let mut wants = |e: &Envelope| args.wants(e, &mut followed);
        // A reactor's command's event before C1's: not yet followed.
        assert!(!wants(&event("counter.incremented", "C0", Some(t1))));
        // C1's own event is left out by the pattern, but names its trace.
        assert!(!wants(&event("noop.ponged", "C1", Some(t1))));
        // What the reactor's command (correlation C2) caused, in that trace.
        assert!(wants(&event("counter.incremented", "C2", Some(t1))));
        // Another trace, or none: not C1's.
        assert!(!wants(&event("counter.incremented", "C3", Some(t2))));
        assert!(!wants(&event("counter.incremented", "C3", None)));
        // A direct event without a trace still matches.
        assert!(wants(&event("counter.reset", "C1", None)));
    }
}
