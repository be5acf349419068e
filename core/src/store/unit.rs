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

use super::filter::{Position, DEFAULT_MAX_BYTES};
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

    /// The documents matching `filter` as this command sees them, in the
    /// filter's order from after its `$after`: the committed ones it has
    /// not touched, and its own.
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
                .filter(|d| {
                    filter.matches_json(&d.json)
                        && filter.is_after_cursor(&filter.position_json(&d.id, &d.json))
                })
                .cloned(),
        );
        // The committed page and the command's own documents, merged in
        // the filter's order (by id unless it sorts).
        let mut keyed: Vec<(Position, Document)> = docs
            .into_iter()
            .map(|d| (filter.position_json(&d.id, &d.json), d))
            .collect();
        keyed.sort_by(|a, b| filter.order(&a.0, &b.0));
        let mut docs: Vec<Document> = keyed.into_iter().map(|(_, d)| d).collect();
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

#[cfg(test)]
mod tests {
    use super::super::{Commit, MemoryStore};
    use super::*;

    fn unit(store: &Arc<dyn Store>) -> UnitOfWork {
        UnitOfWork::new(store.clone(), Arc::from("d"), UnitLimits::default())
    }

    fn ids(docs: &[Document]) -> Vec<&str> {
        docs.iter().map(|d| d.id.as_str()).collect()
    }

    async fn commit(store: &Arc<dyn Store>, unit: &mut UnitOfWork) {
        let commit = Commit {
            ops: unit.take_ops(),
            marker: None,
        };
        assert!(store.commit(&commit).await.is_ok());
    }

    #[tokio::test]
    async fn reads_see_the_commands_own_writes_and_the_store_sees_none() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        assert_eq!(store.upsert("d", "c", "a", r#"{"n":1}"#, None).await, Ok(1));
        let mut u = unit(&store);
        assert_eq!(u.upsert("c", "a", r#"{"n":2}"#, Some(1)).await, Ok(2));
        assert_eq!(u.upsert("c", "b", r#"{"n":1}"#, Some(0)).await, Ok(1));
        assert_eq!(
            u.get("c", "a").await.map(|d| d.map(|d| d.json)),
            Ok(Some(r#"{"n":2}"#.to_owned()))
        );
        assert_eq!(
            u.upsert("c", "a", "{}", Some(1)).await,
            Err(StoreError::Conflict { current: 2 }),
            "versions are checked against the command's own view"
        );
        assert_eq!(
            store.get("d", "c", "b").await,
            Ok(None),
            "nothing reaches the store"
        );
        assert_eq!(u.delete("c", "a").await, Ok(true));
        assert_eq!(u.get("c", "a").await, Ok(None));
        assert_eq!(
            store.get("d", "c", "a").await.map(|d| d.map(|d| d.version)),
            Ok(Some(1))
        );
        commit(&store, &mut u).await;
        assert_eq!(store.get("d", "c", "a").await, Ok(None));
        assert_eq!(
            store.get("d", "c", "b").await.map(|d| d.map(|d| d.version)),
            Ok(Some(1))
        );
    }

    #[tokio::test]
    async fn list_merges_the_commands_changes_in_id_order() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for id in ["a", "b", "c", "d"] {
            assert!(store.upsert("d", "c", id, r#"{"k":1}"#, None).await.is_ok());
        }
        let mut u = unit(&store);
        assert!(u.delete("c", "b").await.is_ok());
        assert!(u.upsert("c", "bb", r#"{"k":1}"#, None).await.is_ok());
        assert!(u.upsert("c", "c", r#"{"k":2}"#, None).await.is_ok());
        let k1 = Filter::parse(r#"{"k":1}"#).unwrap_or_else(|e| panic!("{e}"));
        let listed = u.list("c", &k1).await.unwrap_or_default();
        assert_eq!(ids(&listed), vec!["a", "bb", "d"]);
        let two = Filter::parse(r#"{"k":1,"$limit":2}"#).unwrap_or_else(|e| panic!("{e}"));
        let listed = u.list("c", &two).await.unwrap_or_default();
        assert_eq!(
            ids(&listed),
            vec!["a", "bb"],
            "the limit counts the merged view"
        );
        assert!(u.clear("c").await.is_ok());
        assert!(u.upsert("c", "z", r#"{"k":1}"#, None).await.is_ok());
        let listed = u.list("c", &k1).await.unwrap_or_default();
        assert_eq!(
            ids(&listed),
            vec!["z"],
            "a clear hides the committed documents"
        );
        assert_eq!(u.get("c", "a").await, Ok(None));
        commit(&store, &mut u).await;
        let all = store
            .list("d", "c", &Filter::all())
            .await
            .unwrap_or_default();
        assert_eq!(ids(&all), vec!["z"]);
    }

    #[tokio::test]
    async fn a_unit_is_bounded_in_changes_and_bytes() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let limits = UnitLimits {
            max_ops: 3,
            max_write_bytes: 40,
            max_read_bytes: 30,
            max_pending_timers: 1,
        };
        let mut u = UnitOfWork::new(store.clone(), Arc::from("d"), limits);
        assert!(u.upsert("c", "a", r#"{"n":1}"#, None).await.is_ok());
        let big = format!(r#"{{"s":"{}"}}"#, "x".repeat(40));
        assert!(matches!(
            u.upsert("c", "b", &big, None).await,
            Err(StoreError::TooLarge(_))
        ));
        assert!(u.upsert("c", "b", "{}", None).await.is_ok());
        assert!(u.delete("c", "x").await.is_ok());
        assert!(
            matches!(u.delete("c", "y").await, Err(StoreError::TooLarge(m)) if m.contains("at most 3 changes"))
        );
        assert!(store.upsert("d", "r", "r", &big, None).await.is_ok());
        assert!(
            matches!(u.get("r", "r").await, Err(StoreError::TooLarge(_))),
            "past the read budget"
        );
        let timer = |id: &str| TimerRow {
            id: id.to_owned(),
            domain: "d".to_owned(),
            due_ms: 1,
            json: "{}".to_owned(),
        };
        let mut t = UnitOfWork::new(store.clone(), Arc::from("d"), limits);
        assert_eq!(t.schedule(timer("t1")).await, Ok(()));
        assert!(
            matches!(t.schedule(timer("t2")).await, Err(StoreError::TooLarge(m)) if m.contains("limit is 1"))
        );
        assert_eq!(
            t.cancel("t1").await,
            Ok(true),
            "a timer of this unit cancels in it"
        );
        assert_eq!(t.schedule(timer("t2")).await, Ok(()), "and frees its place");
        let other = TimerRow {
            domain: "e".to_owned(),
            ..timer("t3")
        };
        assert!(matches!(
            t.schedule(other).await,
            Err(StoreError::Invalid(_))
        ));
    }
}
