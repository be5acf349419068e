//! An in-memory store: for tests and benchmarks; forgets everything on exit.
//!
//! Everything sits behind one lock, so a commit is atomic by holding it:
//! its ops are applied in order with an undo log, and rolled back at the
//! first conflict.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::filter::Position;
use super::{
    next_version, paged, Backend, Checked, Commit, Committed, Document, Filter, Op, Outgoing, Scan,
    Scanned, StoreError, TimerRow,
};

type Collection = BTreeMap<String, Document>;
type Key = (String, String);

/// A store kept in memory, used as [`Checked<MemoryStore>`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    collections: HashMap<Key, Collection>,
    processed: HashMap<String, Row>,
    /// Unsent outbox rows by (processed at, message id): oldest first.
    unsent: BTreeSet<(u64, String)>,
    timers: HashMap<String, TimerRow>,
    /// Pending timers by (due, id): what is due is a range.
    due: BTreeSet<(u64, String)>,
}

#[derive(Debug)]
struct Row {
    events: Vec<String>,
    at_ms: u64,
    lease_until_ms: u64,
    sent: bool,
}

/// How to undo one applied op.
enum Undo {
    Doc(Key, String, Option<Document>),
    Collection(Key, Option<Collection>),
    Timer(String, Option<TimerRow>),
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Checked<Self> {
        Checked::new(Self::default())
    }
}

fn key(domain: &str, collection: &str) -> Key {
    (domain.to_owned(), collection.to_owned())
}

impl State {
    fn apply(&mut self, op: &Op, undo: &mut Vec<Undo>) -> Result<u64, StoreError> {
        match op {
            Op::Put {
                domain,
                collection,
                id,
                json,
                expected,
            } => {
                let k = key(domain, collection);
                let docs = self.collections.entry(k.clone()).or_default();
                let current = docs.get(id).map_or(0, |d| d.version);
                let version = next_version(current, *expected)?;
                let old = docs.insert(
                    id.clone(),
                    Document {
                        id: id.clone(),
                        version,
                        json: json.clone(),
                    },
                );
                undo.push(Undo::Doc(k, id.clone(), old));
                Ok(version)
            }
            Op::Delete {
                domain,
                collection,
                id,
            } => {
                let k = key(domain, collection);
                let old = self.collections.get_mut(&k).and_then(|c| c.remove(id));
                let existed = old.is_some();
                undo.push(Undo::Doc(k, id.clone(), old));
                Ok(u64::from(existed))
            }
            Op::Clear { domain, collection } => {
                let k = key(domain, collection);
                let old = self.collections.remove(&k);
                let n = old.as_ref().map_or(0, |c| c.len() as u64);
                undo.push(Undo::Collection(k, old));
                Ok(n)
            }
            Op::Schedule(timer) => {
                let old = self.insert_timer(timer.clone());
                undo.push(Undo::Timer(timer.id.clone(), old));
                Ok(1)
            }
            Op::Cancel { domain, id } => {
                if self.timers.get(id).is_some_and(|t| &t.domain == domain) {
                    let old = self.remove_timer(id);
                    undo.push(Undo::Timer(id.clone(), old));
                    Ok(1)
                } else {
                    Ok(0)
                }
            }
        }
    }

    fn insert_timer(&mut self, timer: TimerRow) -> Option<TimerRow> {
        let old = self.remove_timer(&timer.id);
        self.due.insert((timer.due_ms, timer.id.clone()));
        self.timers.insert(timer.id.clone(), timer);
        old
    }

    fn remove_timer(&mut self, id: &str) -> Option<TimerRow> {
        let old = self.timers.remove(id)?;
        self.due.remove(&(old.due_ms, old.id.clone()));
        Some(old)
    }

    fn undo(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Doc(k, id, old) => {
                    let docs = self.collections.entry(k).or_default();
                    match old {
                        Some(doc) => docs.insert(id, doc),
                        None => docs.remove(&id),
                    };
                }
                Undo::Collection(k, old) => match old {
                    Some(docs) => {
                        self.collections.insert(k, docs);
                    }
                    None => {
                        self.collections.remove(&k);
                    }
                },
                Undo::Timer(id, old) => {
                    self.remove_timer(&id);
                    if let Some(timer) = old {
                        self.insert_timer(timer);
                    }
                }
            }
        }
    }
}

/// Up to `n` documents after id `after`, in id order, within `max_bytes`
/// (and one document).
fn by_id(
    docs: Option<&Collection>,
    after: Option<Position>,
    n: usize,
    max_bytes: usize,
) -> Vec<Scanned> {
    let mut page = Vec::new();
    let mut bytes = 0;
    if let Some(docs) = docs {
        let from = after.map_or(Bound::Unbounded, |p| Bound::Excluded(p.id));
        for (_, doc) in docs.range::<String, _>((from, Bound::Unbounded)) {
            if page.len() >= n || (bytes >= max_bytes && !page.is_empty()) {
                break;
            }
            bytes += doc.json.len();
            page.push(Scanned::from(doc.clone()));
        }
    }
    page
}

/// The matching documents after `after` in the filter's `$sort` order:
/// every matching document is sorted for each page, which is what a store
/// without indexes can do.
fn sorted(
    docs: Option<&Collection>,
    filter: &Filter,
    after: Option<&Position>,
    n: usize,
    max_bytes: usize,
) -> Vec<Scanned> {
    let mut found: Vec<(Position, Scanned)> = docs
        .into_iter()
        .flat_map(|docs| docs.values())
        .filter_map(|doc| {
            let value = serde_json::from_str::<serde_json::Value>(&doc.json).ok()?;
            if !filter.matches(&value) {
                return None;
            }
            let position = filter.position(&doc.id, &value);
            let past = after.is_none_or(|a| filter.order(a, &position) == Ordering::Less);
            past.then(|| {
                let scanned = Scanned {
                    doc: doc.clone(),
                    value: Some(value),
                };
                (position, scanned)
            })
        })
        .collect();
    found.sort_by(|a, b| filter.order(&a.0, &b.0));
    let mut page = Vec::new();
    let mut bytes = 0;
    for (_, scanned) in found {
        if page.len() >= n || (bytes >= max_bytes && !page.is_empty()) {
            break;
        }
        bytes += scanned.doc.json.len();
        page.push(scanned);
    }
    page
}

#[async_trait]
impl Backend for MemoryStore {
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        let state = self.state.read();
        Ok(state
            .collections
            .get(&key(domain, collection))
            .and_then(|c| c.get(id))
            .cloned())
    }

    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError> {
        let key = key(domain, collection);
        // Page by page, so no lock is held while `list` reads.
        Ok(paged(
            filter,
            filter.sort().is_some(),
            move |after, n, max_bytes| {
                let state = self.state.read();
                let docs = state.collections.get(&key);
                let page = match filter.sort() {
                    None => by_id(docs, after, n, max_bytes),
                    Some(_) => sorted(docs, filter, after.as_ref(), n, max_bytes),
                };
                std::future::ready(Ok(page))
            },
        ))
    }

    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError> {
        let mut state = self.state.write();
        if let Some(marker) = &commit.marker {
            if let Some(row) = state.processed.get(&marker.message_id) {
                return Ok(Committed::Duplicate(row.events.clone()));
            }
        }
        let mut undo = Vec::new();
        let mut outcomes = Vec::with_capacity(commit.ops.len());
        for op in &commit.ops {
            match state.apply(op, &mut undo) {
                Ok(n) => outcomes.push(n),
                Err(err) => {
                    state.undo(undo);
                    return Err(err);
                }
            }
        }
        if let Some(marker) = &commit.marker {
            state
                .unsent
                .insert((marker.at_ms, marker.message_id.clone()));
            state.processed.insert(
                marker.message_id.clone(),
                Row {
                    events: marker.events.clone(),
                    at_ms: marker.at_ms,
                    lease_until_ms: marker.lease_until_ms,
                    sent: false,
                },
            );
        }
        Ok(Committed::Applied(outcomes))
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self
            .state
            .read()
            .processed
            .get(message_id)
            .map(|r| r.events.clone()))
    }

    async fn unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        let mut state = self.state.write();
        let state = &mut *state;
        let mut out = Vec::new();
        for (_, id) in &state.unsent {
            if out.len() >= limit {
                break;
            }
            let Some(row) = state.processed.get_mut(id) else {
                continue;
            };
            if row.lease_until_ms <= now_ms {
                row.lease_until_ms = lease_until_ms;
                out.push(Outgoing {
                    message_id: id.clone(),
                    events: row.events.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError> {
        let mut state = self.state.write();
        if let Some(row) = state.processed.get_mut(message_id) {
            if !row.sent {
                row.sent = true;
                let at = row.at_ms;
                state.unsent.remove(&(at, message_id.to_owned()));
            }
        }
        Ok(())
    }

    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        let mut state = self.state.write();
        let old: Vec<String> = state
            .processed
            .iter()
            .filter(|(_, r)| r.sent && r.at_ms < before_ms)
            .map(|(id, _)| id.clone())
            .take(limit)
            .collect();
        for id in &old {
            state.processed.remove(id);
        }
        Ok(old.len())
    }

    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError> {
        Ok(self.state.read().timers.get(id).cloned())
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError> {
        let state = self.state.read();
        Ok(state
            .due
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .take(limit)
            .filter_map(|(_, id)| state.timers.get(id).cloned())
            .collect())
    }

    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError> {
        let state = self.state.read();
        Ok(state.timers.values().filter(|t| t.domain == domain).count() as u64)
    }
}
