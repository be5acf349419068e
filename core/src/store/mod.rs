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
pub mod filter;
pub mod memory;

use async_trait::async_trait;

pub use checked::{paged, Backend, Checked, Scan, Scanned, MAX_DOCUMENT_LEN};
pub use filter::Filter;
pub use memory::MemoryStore;

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

    /// The events recorded for an already processed command, if it was.
    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError>;

    /// Records a command as processed with the events (envelope JSON texts)
    /// it produced. Recording the same id again keeps the first record.
    async fn record_processed(&self, message_id: &str, events: &[String])
        -> Result<(), StoreError>;
}

/// Checks an upsert against the current version (0 when absent), returning
/// the version to write.
pub fn next_version(current: u64, expected: Option<u64>) -> Result<u64, StoreError> {
    match expected {
        Some(v) if v != current => Err(StoreError::Conflict { current }),
        _ => Ok(current + 1),
    }
}
