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

/// One buffered event: its sequence number in the session, its message
/// id (where a client that resumes by id picks up) and its JSON text.
#[derive(Clone)]
pub(crate) struct Buffered {
    pub(crate) seq: u64,
    pub(crate) id: Box<str>,
    pub(crate) text: Arc<str>,
}

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

    /// The cursor of the named client, made if new (where an unnamed
    /// client would start), forgetting the one seen longest ago past
    /// [`MAX_CLIENTS`].
    fn client_cursor(&mut self, client: &str) -> &mut u64 {
        if !self.clients.contains_key(client) && self.clients.len() >= MAX_CLIENTS {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.clients.remove(&oldest);
            }
        }
        let start = self.delivered;
        let entry = self
            .clients
            .entry(client.to_owned())
            .or_insert((start, Instant::now()));
        entry.1 = Instant::now();
        &mut entry.0
    }

    /// Drops the oldest event; its size.
    fn pop_oldest(&mut self) -> usize {
        let len = self.events.pop_front().map_or(0, |e| e.text.len());
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
    /// The buffer does not reach back to where the client says it
    /// stopped (`after`): what it missed before the buffer must come from
    /// the session's history, or a `pyou.gap` must say it is lost.
    pub(crate) before_buffer: bool,
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
        session.events.push_back(Buffered {
            seq,
            id: event.meta.message_id.as_str().into(),
            text,
        });
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
    /// A client this gateway does not know that says which event it saw
    /// last (`after`, a message id) resumes after that event if it is
    /// buffered, else from the oldest buffered one, told that the buffer
    /// does not reach back far enough (`before_buffer`). `None` when the
    /// table is full of live sessions.
    pub(crate) fn attach(
        &self,
        id: &str,
        client: Option<&str>,
        after: Option<&str>,
    ) -> Option<Attached> {
        let mut table = self.inner.lock();
        let existed = table.map.contains_key(id);
        let session = self.session(&mut table, id)?;
        session.connections += 1;
        session.last_active = Instant::now();
        let known = existed && client.is_none_or(|c| session.clients.contains_key(c));
        if let Some(after) = after.filter(|_| !known || client.is_none()) {
            let found = session.events.iter().find(|e| &*e.id == after);
            let before_buffer = found.is_none();
            let cursor = match found {
                Some(e) => e.seq,
                None => session.events.front().map_or(session.next_seq, |e| e.seq) - 1,
            };
            if let Some(client) = client {
                *session.client_cursor(client) = cursor;
            }
            return Some(Attached {
                cursor,
                changed: session.seq_tx.subscribe(),
                before_buffer,
            });
        }
        let cursor = match client {
            None => session.delivered,
            Some(client) => *session.client_cursor(client),
        };
        Some(Attached {
            cursor,
            changed: session.seq_tx.subscribe(),
            before_buffer: false,
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
        let first = s.events.front().map_or(s.next_seq, |e| e.seq);
        Pending {
            missed: first.saturating_sub(cursor + 1),
            events: s
                .events
                .iter()
                .filter(|e| e.seq > cursor)
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
mod tests;
