//! A unit of work: one command's view of its domain's store while it runs.
//!
//! The guest's writes, deletes and timers go to an overlay, not the store:
//! reads see the committed store with the command's own changes on top
//! (read-your-writes; `list` merges them), versions are checked at call
//! time against that view (so a handler sees a conflict where it always
//! did), and the changes are kept as [`Op`]s in call order. The host turns
//! them into one [`Commit`](super::Commit) with the command's marker once
//! the guest has returned, where every version is checked again; a command
//! that fails commits none of them.
//!
//! Everything a unit holds is bounded ([`UnitLimits`]); past a bound the
//! call fails [`StoreError::TooLarge`] with the limit in the message, and the guest
//! decides what to answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::filter::DEFAULT_MAX_BYTES;
use super::{next_version, Document, Filter, Op, Store, StoreError, TimerRow};

/// What one unit of work may hold and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitLimits {
    /// Most changes (writes, deletes, clears, timers) per command.
    pub max_ops: usize,
    /// Most bytes of changes (document bodies, timer bodies) per command.
    pub max_write_bytes: usize,
    /// Most bytes of documents `get` and `list` return per command.
    pub max_read_bytes: usize,
    /// Most timers one domain may have pending.
    pub max_pending_timers: u64,
}

impl Default for UnitLimits {
    fn default() -> Self {
        UnitLimits {
            max_ops: 1000,
            max_write_bytes: 32 * 1024 * 1024,
            max_read_bytes: 64 * 1024 * 1024,
            max_pending_timers: 10_000,
        }
    }
}

/// One command's changes to its domain, not yet committed.
pub struct UnitOfWork {
    store: Arc<dyn Store>,
    domain: Arc<str>,
    limits: UnitLimits,
    ops: Vec<Op>,
    /// (collection, id) → the document as this command left it (`None`:
    /// deleted).
    docs: HashMap<(String, String), Option<Document>>,
    /// Collections this command cleared: their committed documents are gone
    /// from its view.
    cleared: HashSet<String>,
    /// Timers scheduled by this command and still pending in its view.
    scheduled: HashSet<String>,
    /// Committed timers this command cancelled.
    cancelled: HashSet<String>,
    /// The domain's pending timers in the store, once asked.
    pending_base: Option<u64>,
    write_bytes: usize,
    read_bytes: usize,
}

impl std::fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("domain", &self.domain)
            .field("ops", &self.ops.len())
            .field("write_bytes", &self.write_bytes)
            .field("read_bytes", &self.read_bytes)
            .finish_non_exhaustive()
    }
}

impl UnitOfWork {
    /// An empty unit over `domain`'s part of `store`.
    pub fn new(store: Arc<dyn Store>, domain: Arc<str>, limits: UnitLimits) -> Self {
        UnitOfWork {
            store,
            domain,
            limits,
            ops: Vec::new(),
            docs: HashMap::new(),
            cleared: HashSet::new(),
            scheduled: HashSet::new(),
            cancelled: HashSet::new(),
            pending_base: None,
            write_bytes: 0,
            read_bytes: 0,
        }
    }

    /// The domain this unit works in.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The changes so far, in call order; the unit is left empty.
    pub fn take_ops(&mut self) -> Vec<Op> {
        self.docs.clear();
        self.cleared.clear();
        self.scheduled.clear();
        self.cancelled.clear();
        self.pending_base = None;
        self.write_bytes = 0;
        self.read_bytes = 0;
        std::mem::take(&mut self.ops)
    }

    /// The document as this command sees it.
    pub async fn get(
        &mut self,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        let doc = self.current(collection, id).await?;
        if let Some(doc) = &doc {
            self.read(doc.json.len())?;
        }
        Ok(doc)
    }

    /// The documents matching `filter` as this command sees them, in id
    /// order: the committed ones it has not touched, and its own.
    pub async fn list(
        &mut self,
        collection: &str,
        filter: &Filter,
    ) -> Result<Vec<Document>, StoreError> {
        let left = self.limits.max_read_bytes.saturating_sub(self.read_bytes);
        let touched: HashSet<&str> = self
            .docs
            .keys()
            .filter(|(c, _)| c == collection)
            .map(|(_, id)| id.as_str())
            .collect();
        let mut docs = if self.cleared.contains(collection) {
            Vec::new()
        } else {
            // Ask for enough to make up for the documents dropped below.
            let committed = filter
                .clone()
                .with_limit(filter.limit() + touched.len())
                .with_max_bytes(left.min(filter.max_bytes()).min(DEFAULT_MAX_BYTES));
            self.store
                .list(&self.domain, collection, &committed)
                .await
                .map_err(|e| self.over_budget(e, left))?
                .into_iter()
                .filter(|d| !touched.contains(d.id.as_str()))
                .collect()
        };
        docs.extend(
            self.docs
                .iter()
                .filter(|((c, _), _)| c == collection)
                .filter_map(|(_, d)| d.as_ref())
                .filter(|d| filter.matches_json(&d.json))
                .cloned(),
        );
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        docs.truncate(filter.limit());
        let bytes = docs.iter().map(|d| d.json.len()).sum();
        self.read(bytes)?;
        Ok(docs)
    }

    /// Writes a document in this command's view; its new version there.
    pub async fn upsert(
        &mut self,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let op = Op::put(&self.domain, collection, id, json, expected_version)?;
        self.room_for(&op)?;
        let current = self.current(collection, id).await?.map_or(0, |d| d.version);
        let version = next_version(current, expected_version)?;
        let json = match &op {
            Op::Put { json, .. } => json.clone(),
            _ => String::new(),
        };
        let doc = Document {
            id: id.to_owned(),
            version,
            json,
        };
        self.docs
            .insert((collection.to_owned(), id.to_owned()), Some(doc));
        self.push(op);
        Ok(version)
    }

    /// Deletes a document in this command's view; true if it was there.
    pub async fn delete(&mut self, collection: &str, id: &str) -> Result<bool, StoreError> {
        let op = Op::delete(&self.domain, collection, id)?;
        self.room_for(&op)?;
        let existed = self.current(collection, id).await?.is_some();
        self.docs
            .insert((collection.to_owned(), id.to_owned()), None);
        self.push(op);
        Ok(existed)
    }

    /// Empties a collection in this command's view.
    pub async fn clear(&mut self, collection: &str) -> Result<(), StoreError> {
        let op = Op::clear(&self.domain, collection)?;
        self.room_for(&op)?;
        self.docs.retain(|(c, _), _| c != collection);
        self.cleared.insert(collection.to_owned());
        self.push(op);
        Ok(())
    }

    /// Schedules `timer` (of this unit's domain), within the domain's cap
    /// on pending timers.
    pub async fn schedule(&mut self, timer: TimerRow) -> Result<(), StoreError> {
        if timer.domain != *self.domain {
            return Err(StoreError::Invalid(format!(
                "a timer of {:?} cannot be scheduled by {:?}",
                timer.domain, self.domain
            )));
        }
        let op = Op::schedule(timer);
        self.room_for(&op)?;
        let base = match self.pending_base {
            Some(n) => n,
            None => {
                let n = self.store.pending_timers(&self.domain).await?;
                self.pending_base = Some(n);
                n
            }
        };
        let pending =
            (base + self.scheduled.len() as u64).saturating_sub(self.cancelled.len() as u64);
        if pending >= self.limits.max_pending_timers {
            return Err(StoreError::TooLarge(format!(
                "the domain {:?} has {pending} timers pending, the limit is {}; cancel some first",
                self.domain, self.limits.max_pending_timers
            )));
        }
        if let Op::Schedule(t) = &op {
            self.scheduled.insert(t.id.clone());
        }
        self.push(op);
        Ok(())
    }

    /// Cancels a pending timer of this unit's domain; true if it was
    /// pending. Another domain's timer is treated as absent.
    pub async fn cancel(&mut self, id: &str) -> Result<bool, StoreError> {
        let op = Op::cancel(&self.domain, id);
        if self.scheduled.contains(id) {
            self.room_for(&op)?;
            self.scheduled.remove(id);
            self.push(op);
            return Ok(true);
        }
        if self.cancelled.contains(id) {
            return Ok(false);
        }
        let pending = self.store.timer(id).await?;
        if pending.is_none_or(|t| t.domain != *self.domain) {
            return Ok(false);
        }
        self.room_for(&op)?;
        self.cancelled.insert(id.to_owned());
        self.push(op);
        Ok(true)
    }

    /// The document as this command left it, or as committed.
    async fn current(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        if let Some(doc) = self.docs.get(&(collection.to_owned(), id.to_owned())) {
            return Ok(doc.clone());
        }
        if self.cleared.contains(collection) {
            return Ok(None);
        }
        self.store.get(&self.domain, collection, id).await
    }

    fn room_for(&self, op: &Op) -> Result<(), StoreError> {
        if self.ops.len() >= self.limits.max_ops {
            return Err(StoreError::TooLarge(format!(
                "a command may make at most {} changes to the store",
                self.limits.max_ops
            )));
        }
        if self.write_bytes.saturating_add(op.size()) > self.limits.max_write_bytes {
            return Err(StoreError::TooLarge(format!(
                "a command may write at most {} bytes to the store",
                self.limits.max_write_bytes
            )));
        }
        Ok(())
    }

    fn push(&mut self, op: Op) {
        self.write_bytes += op.size();
        self.ops.push(op);
    }

    fn read(&mut self, bytes: usize) -> Result<(), StoreError> {
        let total = self.read_bytes.saturating_add(bytes);
        if total > self.limits.max_read_bytes {
            return Err(StoreError::TooLarge(format!(
                "a command may read at most {} bytes from the store",
                self.limits.max_read_bytes
            )));
        }
        self.read_bytes = total;
        Ok(())
    }

    /// A list refused for its size, said in terms of what is left of the
    /// command's read budget when that was the tighter bound.
    fn over_budget(&self, err: StoreError, left: usize) -> StoreError {
        match err {
            StoreError::TooLarge(_) if left < DEFAULT_MAX_BYTES => StoreError::TooLarge(format!(
                "this list would pass the command's read budget of {} bytes ({left} left)",
                self.limits.max_read_bytes
            )),
            other => other,
        }
    }
}
