//! Where a gateway finds a session's events again when its own buffer
//! cannot serve a reconnecting client: after the gateway restarted, or
//! after it forgot an idle session. The host's event log in the store
//! implements it (`parallel_you_host::event_log::StoreLog`); the gateway
//! depends on this trait only.

use async_trait::async_trait;

use crate::envelope::Envelope;

/// Where a client's stream of its session's events stopped: the last
/// event it was given, by message id and timestamp (the log is ordered by
/// time, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// That event's `meta.message_id`.
    pub message_id: String,
    /// That event's `meta.timestamp`, in milliseconds since the epoch.
    pub timestamp_ms: u64,
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HistoryError(pub String);

/// A session's past events.
#[async_trait]
pub trait SessionHistory: Send + Sync + 'static {
    /// The events of `session` logged after `after`, oldest first, at
    /// most `limit`.
    async fn after(
        &self,
        session: &str,
        after: &After,
        limit: usize,
    ) -> Result<Vec<Envelope>, HistoryError>;
}
