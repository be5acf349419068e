//! A store that fails or is meddled with on cue, around a real one: for the
//! tests of what a command keeps when its commit does not go through.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use std::sync::Mutex;

use parallel_you_core::store::{
    Commit, Committed, Document, Filter, Outgoing, Store, StoreError, TimerRow,
};

/// A write another command makes just before the next command's commit.
pub struct Meddle {
    pub collection: String,
    pub id: String,
    pub json: String,
    /// Before how many marked commits it writes (then it is spent).
    pub times: usize,
}

/// Wraps `inner`; see the fields for the cues.
pub struct Faulty {
    pub inner: Arc<dyn Store>,
    /// Commits with a marker that fail `unavailable` before this many have.
    pub failing_commits: AtomicUsize,
    /// How many commits with a marker were attempted.
    pub commits: AtomicUsize,
    /// Written to the commit's domain right before the next marked commit.
    pub meddle: Mutex<Option<Meddle>>,
    /// A document id whose next `rendezvous_reads` reads wait for each
    /// other, so two commands surely read the same version before either
    /// writes.
    pub rendezvous: Mutex<Option<String>>,
    pub rendezvous_reads: AtomicUsize,
    barrier: tokio::sync::Barrier,
}

impl Faulty {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            failing_commits: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
            meddle: Mutex::new(None),
            rendezvous: Mutex::new(None),
            rendezvous_reads: AtomicUsize::new(0),
            barrier: tokio::sync::Barrier::new(2),
        })
    }

    /// The next `n` marked commits fail `unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failing_commits.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for Faulty {
    async fn get(&self, d: &str, c: &str, id: &str) -> Result<Option<Document>, StoreError> {
        let doc = self.inner.get(d, c, id).await;
        let gated = self
            .rendezvous
            .lock()
            .ok()
            .is_some_and(|g| g.as_deref() == Some(id));
        if gated
            && self
                .rendezvous_reads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            // Bounded: past the timeout the test sees no race and fails.
            let wait = self.barrier.wait();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(400), wait).await;
        }
        doc
    }
    async fn list(&self, d: &str, c: &str, f: &Filter) -> Result<Vec<Document>, StoreError> {
        self.inner.list(d, c, f).await
    }
    async fn upsert(
        &self,
        d: &str,
        c: &str,
        id: &str,
        json: &str,
        v: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.upsert(d, c, id, json, v).await
    }
    async fn delete(&self, d: &str, c: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete(d, c, id).await
    }
    async fn clear(&self, d: &str, c: &str) -> Result<(), StoreError> {
        self.inner.clear(d, c).await
    }
    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError> {
        if commit.marker.is_some() {
            self.commits.fetch_add(1, Ordering::SeqCst);
            let failing =
                self.failing_commits
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if failing.is_ok() {
                return Err(StoreError::Unavailable(
                    "the store is away (test)".to_owned(),
                ));
            }
            let meddle = self.meddle.lock().ok().and_then(|mut slot| {
                let m = slot.as_mut()?;
                m.times = m.times.saturating_sub(1);
                let write = (m.collection.clone(), m.id.clone(), m.json.clone());
                if m.times == 0 {
                    *slot = None;
                }
                Some(write)
            });
            if let Some((collection, id, json)) = meddle {
                let domain = commit.ops.iter().find_map(|op| match op {
                    parallel_you_core::store::Op::Put { domain, .. } => Some(domain.clone()),
                    _ => None,
                });
                if let Some(domain) = domain {
                    self.inner
                        .upsert(&domain, &collection, &id, &json, None)
                        .await?;
                }
            }
        }
        self.inner.commit(commit).await
    }
    async fn processed(&self, m: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.inner.processed(m).await
    }
    async fn unsent(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        self.inner.unsent(now, lease, limit).await
    }
    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError> {
        self.inner.mark_sent(message_id).await
    }
    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.inner.sweep(before_ms, limit).await
    }
    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError> {
        self.inner.timer(id).await
    }
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError> {
        self.inner.due_timers(now_ms, limit).await
    }
    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError> {
        self.inner.pending_timers(domain).await
    }

    async fn ensure_index(
        &self,
        domain: &str,
        collection: &str,
        fields: &[String],
    ) -> Result<(), StoreError> {
        self.inner.ensure_index(domain, collection, fields).await
    }
}
