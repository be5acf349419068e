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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::envelope::Envelope;
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, watch};

/// One buffered event: its sequence number in the session and its JSON text.
pub(crate) type Buffered = (u64, Arc<str>);

/// Named clients (`/ws?client=`) whose cursors one session keeps; past
/// it the one seen longest ago is forgotten (and starts over like a new
/// client if it comes back).
const MAX_CLIENTS: usize = 32;

/// How much the sessions may buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Events per session.
    pub(crate) events: usize,
    /// Bytes of event text per session.
    pub(crate) bytes: usize,
    /// Bytes of event text across all sessions.
    pub(crate) total_bytes: usize,
    /// How long an idle session is kept.
    pub(crate) window: Duration,
    /// Sessions at once.
    pub(crate) sessions: usize,
}

struct Session {
    events: VecDeque<Buffered>,
    /// Bytes of `events`' texts.
    bytes: usize,
    /// Sequence number of the next event (the first is 1).
    next_seq: u64,
    /// Highest sequence number delivered to any client: where a client
    /// that names none (or is new) resumes.
    delivered: u64,
    /// Highest sequence number delivered to each named client, and when
    /// it was last attached or served.
    clients: HashMap<String, (u64, Instant)>,
    connections: usize,
    last_active: Instant,
    seq_tx: watch::Sender<u64>,
}

impl Session {
    fn new() -> Self {
        Session {
            events: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            delivered: 0,
            clients: HashMap::new(),
            connections: 0,
            last_active: Instant::now(),
            seq_tx: watch::channel(0).0,
        }
    }

    /// Drops the oldest event; its size.
    fn pop_oldest(&mut self) -> usize {
        let len = self.events.pop_front().map_or(0, |(_, text)| text.len());
        self.bytes -= len;
        len
    }
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

/// What the buffers let go of early, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Shed {
    /// Idle sessions forgotten before their window ran out, to make room.
    pub(crate) evicted: AtomicU64,
    /// Events not buffered because every session was live and the table
    /// full.
    pub(crate) refused: AtomicU64,
    /// Buffered events dropped to keep the bytes of all sessions in bound.
    pub(crate) trimmed: AtomicU64,
}

struct Table {
    map: HashMap<String, Session>,
    /// Bytes buffered across all sessions.
    bytes: usize,
}

/// Every session's recent events.
pub(crate) struct Sessions {
    inner: Mutex<Table>,
    feed: broadcast::Sender<Arc<Fed>>,
    waiters: Mutex<HashMap<String, mpsc::UnboundedSender<Envelope>>>,
    limits: Limits,
    pub(crate) shed: Shed,
}

impl Sessions {
    pub(crate) fn new(limits: Limits) -> Self {
        Sessions {
            inner: Mutex::new(Table {
                map: HashMap::new(),
                bytes: 0,
            }),
            feed: broadcast::channel(FEED_CAPACITY).0,
            waiters: Mutex::new(HashMap::new()),
            limits: Limits {
                events: limits.events.max(1),
                sessions: limits.sessions.max(1),
                ..limits
            },
            shed: Shed::default(),
        }
    }

    /// The session `id`, made if new: when the table is full, the idle
    /// session used longest ago makes room; `None` when every one is live.
    fn session<'a>(&self, table: &'a mut Table, id: &str) -> Option<&'a mut Session> {
        if !table.map.contains_key(id) && table.map.len() >= self.limits.sessions {
            let oldest = table
                .map
                .iter()
                .filter(|(_, s)| s.connections == 0)
                .min_by_key(|(_, s)| s.last_active)
                .map(|(k, _)| k.clone())?;
            if let Some(gone) = table.map.remove(&oldest) {
                table.bytes -= gone.bytes;
            }
            self.shed.evicted.fetch_add(1, Ordering::Relaxed);
        }
        Some(table.map.entry(id.to_owned()).or_insert_with(Session::new))
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
        let mut guard = self.inner.lock();
        let table = &mut *guard;
        let len = text.len();
        let Some(session) = self.session(table, session_id) else {
            self.shed.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(session_id = %session_id, "every session is live and the table full; event not buffered");
            return;
        };
        let seq = session.next_seq;
        session.next_seq += 1;
        session.events.push_back((seq, text));
        session.bytes += len;
        let mut freed = 0;
        // The newest event always stays, however large: a live client
        // still gets it.
        while session.events.len() > 1
            && (session.events.len() > self.limits.events || session.bytes > self.limits.bytes)
        {
            freed += session.pop_oldest();
        }
        session.last_active = Instant::now();
        session.seq_tx.send_replace(seq);
        table.bytes = table.bytes + len - freed;
        if table.bytes > self.limits.total_bytes {
            self.trim_to_budget(table, session_id);
        }
    }

    /// Brings the bytes of all sessions back under budget: idle sessions
    /// go first, oldest first; then the oldest events of `filing`.
    fn trim_to_budget(&self, table: &mut Table, filing: &str) {
        let mut idle: Vec<(Instant, String)> = table
            .map
            .iter()
            .filter(|(k, s)| s.connections == 0 && k.as_str() != filing)
            .map(|(k, s)| (s.last_active, k.clone()))
            .collect();
        idle.sort();
        for (_, id) in idle {
            if table.bytes <= self.limits.total_bytes {
                return;
            }
            if let Some(gone) = table.map.remove(&id) {
                table.bytes -= gone.bytes;
                self.shed.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(session) = table.map.get_mut(filing) {
            while table.bytes > self.limits.total_bytes && session.events.len() > 1 {
                table.bytes -= session.pop_oldest();
                self.shed.trimmed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A client connects to a session (creating it if new). A client that
    /// names itself (`client`) resumes after what was delivered to it; one
    /// that does not (or is new), after what was delivered to any client.
    /// `None` when the table is full of live sessions.
    pub(crate) fn attach(&self, id: &str, client: Option<&str>) -> Option<Attached> {
        let mut table = self.inner.lock();
        let session = self.session(&mut table, id)?;
        session.connections += 1;
        session.last_active = Instant::now();
        let cursor = match client {
            None => session.delivered,
            Some(client) => {
                if !session.clients.contains_key(client) && session.clients.len() >= MAX_CLIENTS {
                    let oldest = session
                        .clients
                        .iter()
                        .min_by_key(|(_, (_, seen))| *seen)
                        .map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        session.clients.remove(&oldest);
                    }
                }
                // A client new to the session starts where an unnamed
                // one would.
                let start = session.delivered;
                let entry = session
                    .clients
                    .entry(client.to_owned())
                    .or_insert((start, Instant::now()));
                entry.1 = Instant::now();
                entry.0
            }
        };
        Some(Attached {
            cursor,
            changed: session.seq_tx.subscribe(),
        })
    }

    /// A client leaves; the session's events keep being buffered for the
    /// reconnect window.
    pub(crate) fn detach(&self, id: &str) {
        let mut table = self.inner.lock();
        if let Some(s) = table.map.get_mut(id) {
            s.connections = s.connections.saturating_sub(1);
            s.last_active = Instant::now();
        }
    }

    /// The events after `cursor`, and how many after it were dropped.
    pub(crate) fn pending(&self, id: &str, cursor: u64) -> Pending {
        let table = self.inner.lock();
        let Some(s) = table.map.get(id) else {
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

    /// Marks events up to `seq` as delivered (to `client`, if named).
    pub(crate) fn delivered(&self, id: &str, client: Option<&str>, seq: u64) {
        let mut table = self.inner.lock();
        let Some(s) = table.map.get_mut(id) else {
            return;
        };
        s.delivered = s.delivered.max(seq);
        if let Some((cursor, seen)) = client.and_then(|c| s.clients.get_mut(c)) {
            *cursor = (*cursor).max(seq);
            *seen = Instant::now();
        }
    }

    /// Sessions with at least one client connected.
    pub(crate) fn live(&self) -> usize {
        self.inner
            .lock()
            .map
            .values()
            .filter(|s| s.connections > 0)
            .count()
    }

    /// Bytes of event text buffered across all sessions.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Forgets sessions nobody has used for longer than the window.
    pub(crate) fn collect_idle(&self) {
        let mut table = self.inner.lock();
        let window = self.limits.window;
        let mut freed = 0;
        table.map.retain(|_, s| {
            let keep = s.connections > 0 || s.last_active.elapsed() < window;
            if !keep {
                freed += s.bytes;
            }
            keep
        });
        table.bytes -= freed;
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

    fn limits(events: usize, window: Duration, sessions: usize) -> Limits {
        Limits {
            events,
            bytes: usize::MAX,
            total_bytes: usize::MAX,
            window,
            sessions,
        }
    }

    fn attach(sessions: &Sessions, id: &str, client: Option<&str>) -> Attached {
        sessions
            .attach(id, client)
            .unwrap_or_else(|| panic!("{id} refused"))
    }

    fn seqs(p: &Pending) -> Vec<u64> {
        p.events.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn replays_what_a_client_missed_and_counts_what_was_dropped() {
        let sessions = Sessions::new(limits(3, Duration::from_secs(60), 10));
        let first = attach(&sessions, "s", None);
        assert_eq!(first.cursor, 0);
        sessions.file(&event("s", 1));
        let p = sessions.pending("s", first.cursor);
        assert_eq!((p.missed, p.events.len()), (0, 1));
        sessions.delivered("s", None, p.events[0].0);
        sessions.detach("s");
        for n in 2..=6 {
            sessions.file(&event("s", n));
        }
        let again = attach(&sessions, "s", None);
        assert_eq!(again.cursor, 1);
        let p = sessions.pending("s", again.cursor);
        // Events 2..=6 arrived while away; the buffer kept the last 3.
        assert_eq!(p.missed, 2);
        assert_eq!(seqs(&p), [4, 5, 6]);
        assert_eq!(sessions.live(), 1);
    }

    #[test]
    fn a_named_client_resumes_from_its_own_cursor_whoever_came_between() {
        let sessions = Sessions::new(limits(100, Duration::from_secs(60), 10));
        attach(&sessions, "s", Some("tab-a"));
        sessions.file(&event("s", 1));
        sessions.delivered("s", Some("tab-a"), 1);
        sessions.detach("s");
        for n in 2..=4 {
            sessions.file(&event("s", n));
        }
        // A second tab attaches and is served everything meanwhile.
        let b = attach(&sessions, "s", Some("tab-b"));
        assert_eq!(b.cursor, 1);
        sessions.delivered("s", Some("tab-b"), 4);
        sessions.detach("s");
        // The first tab still gets what it missed: 2, 3 and 4.
        let a = attach(&sessions, "s", Some("tab-a"));
        assert_eq!(seqs(&sessions.pending("s", a.cursor)), [2, 3, 4]);
        // An unnamed client resumes after what anyone was given.
        assert_eq!(attach(&sessions, "s", None).cursor, 4);
    }

    #[test]
    fn a_full_table_evicts_the_oldest_idle_session_only() {
        let sessions = Sessions::new(limits(10, Duration::from_secs(60), 3));
        for id in ["old", "mid", "new"] {
            sessions.file(&event(id, 1));
            std::thread::sleep(Duration::from_millis(2));
        }
        sessions.file(&event("fourth", 1));
        assert!(
            sessions.pending("old", 0).events.is_empty(),
            "oldest evicted"
        );
        for id in ["mid", "new", "fourth"] {
            assert_eq!(sessions.pending(id, 0).events.len(), 1, "{id} kept");
        }
        assert_eq!(sessions.shed.evicted.load(Ordering::Relaxed), 1);
        // With every session live, a new one is refused, and says so.
        for id in ["mid", "new", "fourth"] {
            attach(&sessions, id, None);
        }
        assert!(sessions.attach("fifth", None).is_none());
        sessions.file(&event("fifth", 1));
        assert_eq!(sessions.shed.refused.load(Ordering::Relaxed), 1);
        assert!(sessions.pending("mid", 0).events.len() == 1);
    }

    #[test]
    fn buffers_are_bounded_in_bytes_per_session_and_in_all() {
        let one = event("a", 1).to_json().len();
        let sessions = Sessions::new(Limits {
            events: 1000,
            bytes: one * 3,
            total_bytes: one * 5,
            window: Duration::from_secs(60),
            sessions: 100,
        });
        // Single digits: every event the same size.
        for n in 1..=9 {
            sessions.file(&event("a", n));
        }
        assert_eq!(seqs(&sessions.pending("a", 0)).len(), 3);
        assert_eq!(sessions.buffered_bytes(), one * 3);
        // Another session's events push the idle one out of the budget.
        sessions.file(&event("b", 1));
        sessions.file(&event("b", 2));
        assert_eq!(sessions.buffered_bytes(), one * 5);
        sessions.file(&event("b", 3));
        assert!(sessions.pending("a", 0).events.is_empty(), "idle a evicted");
        assert_eq!(sessions.buffered_bytes(), one * 3);
        // A live session over the budget loses its own oldest events.
        attach(&sessions, "b", None);
        attach(&sessions, "c", None);
        for n in 1..=4 {
            sessions.file(&event("c", n));
        }
        assert!(sessions.buffered_bytes() <= one * 5);
        assert!(sessions.shed.trimmed.load(Ordering::Relaxed) > 0);
        // An event over every bound is still buffered alone, for a live
        // client.
        let huge = Sessions::new(Limits {
            bytes: 1,
            total_bytes: 1,
            ..limits(10, Duration::from_secs(60), 10)
        });
        huge.file(&event("h", 1));
        assert_eq!(huge.pending("h", 0).events.len(), 1);
    }

    #[test]
    fn the_feed_carries_every_event_once_followed() {
        let sessions = Sessions::new(limits(10, Duration::from_secs(60), 10));
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
        let sessions = Sessions::new(limits(10, Duration::ZERO, 10));
        sessions.file(&event("a", 1));
        assert!(sessions.pending("b", 0).events.is_empty());
        sessions.collect_idle();
        assert!(sessions.pending("a", 0).events.is_empty());
    }
}
