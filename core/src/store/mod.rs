//! Document stores: where handlers keep state between commands, and where the
//! host records which commands it has already processed.
//!
//! Every store holds JSON documents under (domain, collection, id) with a
//! version for optimistic concurrency, and passes the one conformance
//! suite (`tests/all/store`). The domain is never chosen by a guest: the host passes the domain
//! of the component's manifest, so one domain cannot reach another's data.
//!
//! A backend only stores ([`Backend`]); [`Checked`] checks every request
//! before it reaches one, and is what each backend's constructor returns.

pub mod checked;
pub mod commit;
pub mod filter;
pub mod memory;
pub mod unit;

use async_trait::async_trait;

pub use checked::{
    index_paths, paged, Backend, Checked, Scan, Scanned, MAX_DOCUMENT_LEN, MAX_INDEX_FIELDS,
};
pub use commit::{Commit, Committed, Marker, Op, Outgoing, TimerRow};
pub use filter::Filter;
pub use memory::MemoryStore;
pub use unit::{UnitLimits, UnitOfWork};

use crate::names::NameError;

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its id within its collection.
    pub id: String,
    /// Starts at 1, grows by one with every write.
    pub version: u64,
    /// The document as JSON text.
    pub json: String,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The expected version did not match.
    #[error("version conflict: the document is at version {current} (0: it does not exist)")]
    Conflict {
        /// The current version; 0 when the document does not exist.
        current: u64,
    },
    /// No such document.
    #[error("no such document")]
    NotFound,
    /// The request is malformed (bad name, bad JSON, bad filter).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request is over a size limit (a document, a list's answer, a
    /// command's budget): permanent, never worth retrying.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The store cannot be reached or failed; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<NameError> for StoreError {
    fn from(err: NameError) -> Self {
        StoreError::Invalid(err.0)
    }
}

/// A document store. See the module docs for the rules every one follows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The document `id` of `domain`'s `collection`.
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError>;

    /// The documents of a collection matching `filter`, ordered by id.
    async fn list(
        &self,
        domain: &str,
        collection: &str,
        filter: &Filter,
    ) -> Result<Vec<Document>, StoreError>;

    /// Writes a document, returning its new version.
    ///
    /// `expected_version`: `None` writes unconditionally, `Some(0)` only
    /// creates, `Some(v)` only replaces version `v`; otherwise
    /// [`StoreError::Conflict`] with the current version.
    async fn upsert(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Deletes a document; true if it existed.
    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes every document of a collection.
    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError>;

    /// Applies `commit` atomically: every op and the marker, or nothing.
    /// See [`commit`] for the rules. A version conflict is
    /// [`StoreError::Conflict`] with the current version of the document
    /// that conflicted; a marker already recorded is
    /// [`Committed::Duplicate`].
    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError>;

    /// The events recorded for an already processed command, if it was.
    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError>;

    /// Claims up to `limit` outbox rows not yet sent whose lease has passed
    /// at `now_ms`, oldest first, extending their lease to
    /// `lease_until_ms` so no other relay takes them meanwhile.
    async fn unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError>;

    /// Marks a command's outbox row sent.
    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError>;

    /// Forgets up to `limit` sent markers processed before `before_ms`;
    /// returns how many. Unsent rows are kept whatever their age.
    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError>;

    /// The pending timer `id`, if there is one.
    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError>;

    /// Up to `limit` timers due at `now_ms`, earliest first: an indexed
    /// query, whatever the number of pending timers.
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError>;

    /// How many timers `domain` has pending.
    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError>;

    /// Makes sure the store keeps an index on `fields` (field paths as in
    /// a filter, `a.b`) of `domain`'s `collection`, so `list` filters and
    /// sorts over them read only what they return. Idempotent and cheap
    /// when the index exists (called whenever a component loads); an index
    /// never changes what `list` answers. A store without indexes (memory)
    /// does nothing.
    async fn ensure_index(
        &self,
        domain: &str,
        collection: &str,
        fields: &[String],
    ) -> Result<(), StoreError>;
}

/// Checks an upsert against the current version (0 when absent), returning
/// the version to write.
pub fn next_version(current: u64, expected: Option<u64>) -> Result<u64, StoreError> {
    match expected {
        Some(v) if v != current => Err(StoreError::Conflict { current }),
        _ => Ok(current + 1),
    }
}
