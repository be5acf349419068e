//! Client sessions: a bounded buffer of each session's events, so a client
//! that reconnects receives what it missed, and waiters for `?wait=`.
//!
//! One pump task reads every event from the bus in publish order and files
//! it under its session (and hands it to anyone waiting for its cause), so
//! each session sees its events in publish order.
//!
//! Every event is also offered on a bounded broadcast feed, for sockets
//! that follow routing-key patterns across sessions (`/ws?follow=`): a
//! shared dashboard sees what other clients change, and `handler.*`
//! events, which belong to no session.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::envelope::Envelope;
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, watch};

/// One buffered event: its sequence number in the session and its JSON text.
pub(crate) type Buffered = (u64, Arc<str>);

struct Session {
    events: VecDeque<Buffered>,
    /// Sequence number of the next event (the first is 1).
    next_seq: u64,
    /// Highest sequence number delivered to a client.
    delivered: u64,
    connections: usize,
    last_active: Instant,
    seq_tx: watch::Sender<u64>,
}

/// What a connecting client gets: where it resumes and how to hear of more.
pub(crate) struct Attached {
    /// Resume after this sequence number.
    pub(crate) cursor: u64,
    /// Changes when the session gets a new event.
    pub(crate) changed: watch::Receiver<u64>,
}

/// Events to send to a client, and how many it can no longer get.
pub(crate) struct Pending {
    pub(crate) missed: u64,
    pub(crate) events: Vec<Buffered>,
}

/// An event on the feed: what a follower filters on, and its JSON text.
pub(crate) struct Fed {
    pub(crate) routing_key: String,
    pub(crate) session_id: Option<String>,
    pub(crate) text: Arc<str>,
}

/// Events the feed holds for a follower that falls behind; past this it
/// is told how many it lost (`pyou.gap`) and reloads.
const FEED_CAPACITY: usize = 1024;

/// Every session's recent events.
pub(crate) struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
    feed: broadcast::Sender<Arc<Fed>>,
    waiters: Mutex<HashMap<String, mpsc::UnboundedSender<Envelope>>>,
    capacity: usize,
    window: Duration,
    max_sessions: usize,
}

impl Sessions {
    pub(crate) fn new(capacity: usize, window: Duration, max_sessions: usize) -> Self {
        Sessions {
            inner: Mutex::new(HashMap::new()),
            feed: broadcast::channel(FEED_CAPACITY).0,
            waiters: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            window,
            max_sessions: max_sessions.max(1),
        }
    }

    fn session<'a>(map: &'a mut HashMap<String, Session>, id: &str) -> &'a mut Session {
        map.entry(id.to_owned()).or_insert_with(|| Session {
            events: VecDeque::new(),
            next_seq: 1,
            delivered: 0,
            connections: 0,
            last_active: Instant::now(),
            seq_tx: watch::channel(0).0,
        })
    }

    /// Files an event: under its session if it has one, and to whoever
    /// waits for the command that caused it.
    pub(crate) fn file(&self, event: &Envelope) {
        if let Some(cause) = &event.meta.causation_id {
            let mut waiters = self.waiters.lock();
            if let Some(tx) = waiters.get(cause) {
                if tx.send(event.clone()).is_err() {
                    waiters.remove(cause);
                }
            }
        }
        let followed = self.feed.receiver_count() > 0;
        if !followed && event.meta.session_id.is_none() {
            return;
        }
        let text: Arc<str> = Arc::from(event.to_json());
        if followed {
            // No follower listening is not an error.
            let _ = self.feed.send(Arc::new(Fed {
                routing_key: event.meta.routing_key.clone(),
                session_id: event.meta.session_id.clone(),
                text: text.clone(),
            }));
        }
        let Some(session_id) = &event.meta.session_id else {
            return;
        };
        let mut map = self.inner.lock();
        if !map.contains_key(session_id) && map.len() >= self.max_sessions {
            Self::evict_idle(&mut map, Duration::ZERO);
            if map.len() >= self.max_sessions {
                tracing::warn!(session_id = %session_id, "too many sessions; event not buffered");
                return;
            }
        }
        let session = Self::session(&mut map, session_id);
        let seq = session.next_seq;
        session.next_seq += 1;
        session.events.push_back((seq, text));
        while session.events.len() > self.capacity {
            session.events.pop_front();
        }
        session.last_active = Instant::now();
        session.seq_tx.send_replace(seq);
    }

    /// A client connects to a session (creating it if new).
    pub(crate) fn attach(&self, id: &str) -> Attached {
        let mut map = self.inner.lock();
        let session = Self::session(&mut map, id);
        session.connections += 1;
        session.last_active = Instant::now();
        Attached {
            cursor: session.delivered,
            changed: session.seq_tx.subscribe(),
        }
    }

    /// A client leaves; the session's events keep being buffered for the
    /// reconnect window.
    pub(crate) fn detach(&self, id: &str) {
        let mut map = self.inner.lock();
        if let Some(s) = map.get_mut(id) {
            s.connections = s.connections.saturating_sub(1);
            s.last_active = Instant::now();
        }
    }

    /// The events after `cursor`, and how many after it were dropped.
    pub(crate) fn pending(&self, id: &str, cursor: u64) -> Pending {
        let map = self.inner.lock();
        let Some(s) = map.get(id) else {
            return Pending {
                missed: 0,
                events: Vec::new(),
            };
        };
        let first = s.events.front().map_or(s.next_seq, |(seq, _)| *seq);
        Pending {
            missed: first.saturating_sub(cursor + 1),
            events: s
                .events
                .iter()
                .filter(|(seq, _)| *seq > cursor)
                .cloned()
                .collect(),
        }
    }

    /// Every event from now on, for a socket that follows patterns.
    pub(crate) fn follow(&self) -> broadcast::Receiver<Arc<Fed>> {
        self.feed.subscribe()
    }

    /// Marks events up to `seq` as delivered.
    pub(crate) fn delivered(&self, id: &str, seq: u64) {
        if let Some(s) = self.inner.lock().get_mut(id) {
            s.delivered = s.delivered.max(seq);
        }
    }

    /// Sessions with at least one client connected.
    pub(crate) fn live(&self) -> usize {
        self.inner
            .lock()
            .values()
            .filter(|s| s.connections > 0)
            .count()
    }

    /// Forgets sessions nobody has used for longer than the window.
    pub(crate) fn collect_idle(&self) {
        Self::evict_idle(&mut self.inner.lock(), self.window);
    }

    fn evict_idle(map: &mut HashMap<String, Session>, idle_for: Duration) {
        map.retain(|_, s| s.connections > 0 || s.last_active.elapsed() < idle_for);
    }

    /// Starts collecting the events caused by the command whose
    /// correlation id is `correlation_id`.
    pub(crate) fn wait_for(&self, correlation_id: &str) -> mpsc::UnboundedReceiver<Envelope> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiters.lock().insert(correlation_id.to_owned(), tx);
        rx
    }

    /// Stops collecting for `correlation_id`.
    pub(crate) fn stop_waiting(&self, correlation_id: &str) {
        self.waiters.lock().remove(correlation_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(session: &str, n: u32) -> Envelope {
        let cmd = Envelope::command("a.b", "{}")
            .map(|c| c.with_session(session))
            .unwrap_or_else(|e| panic!("{e}"));
        let body = serde_json::value::RawValue::from_string(n.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        Envelope::event_for(&cmd.meta, "a.done", body)
    }

    #[test]
    fn replays_what_a_client_missed_and_counts_what_was_dropped() {
        let sessions = Sessions::new(3, Duration::from_secs(60), 10);
        let first = sessions.attach("s");
        assert_eq!(first.cursor, 0);
        sessions.file(&event("s", 1));
        let p = sessions.pending("s", first.cursor);
        assert_eq!((p.missed, p.events.len()), (0, 1));
        sessions.delivered("s", p.events[0].0);
        sessions.detach("s");
        for n in 2..=6 {
            sessions.file(&event("s", n));
        }
        let again = sessions.attach("s");
        assert_eq!(again.cursor, 1);
        let p = sessions.pending("s", again.cursor);
        // Events 2..=6 arrived while away; the buffer kept the last 3.
        assert_eq!(p.missed, 2);
        assert_eq!(
            p.events.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert_eq!(sessions.live(), 1);
    }

    #[test]
    fn the_feed_carries_every_event_once_followed() {
        let sessions = Sessions::new(10, Duration::from_secs(60), 10);
        sessions.file(&event("a", 1));
        let mut feed = sessions.follow();
        sessions.file(&event("b", 2));
        let no_session = Envelope::event_for(
            &parallel_you_core::envelope::Meta::new(parallel_you_core::Kind::Command, "a.b"),
            "handler.loaded",
            serde_json::value::RawValue::from_string("{}".to_owned())
                .unwrap_or_else(|e| panic!("{e}")),
        );
        sessions.file(&no_session);
        let Ok(first) = feed.try_recv() else {
            panic!("nothing fed")
        };
        assert_eq!(first.session_id.as_deref(), Some("b"));
        let Ok(second) = feed.try_recv() else {
            panic!("no second event")
        };
        assert_eq!(
            (second.routing_key.as_str(), second.session_id.as_deref()),
            ("handler.loaded", None)
        );
        assert!(feed.try_recv().is_err());
    }

    #[test]
    fn sessions_are_separate_and_idle_ones_are_forgotten() {
        let sessions = Sessions::new(10, Duration::ZERO, 10);
        sessions.file(&event("a", 1));
        assert!(sessions.pending("b", 0).events.is_empty());
        sessions.collect_idle();
        assert!(sessions.pending("a", 0).events.is_empty());
    }
}
