//! The event log in the store: domain `pyou`, collection `event_log`, one
//! document per message (the envelope itself), its id the message's
//! instant and id (`<ms, 13 digits>-<message id>`), so ids sort by time
//! and a message logged twice is one document.

use std::sync::Arc;

use async_trait::async_trait;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::session_history::{After, HistoryError, SessionHistory};
use parallel_you_core::store::{Filter, Store};
use serde_json::json;

use super::{timestamp_ms, LogError, LogSink};

const DOMAIN: &str = "pyou";
const COLLECTION: &str = "event_log";
/// Documents read per page: envelopes of up to 1 MiB each stay under the
/// 16 MiB a `list` answers.
const PAGE: usize = 15;

/// The log in a [`Store`].
#[derive(Clone)]
pub struct StoreLog {
    store: Arc<dyn Store>,
}

impl StoreLog {
    /// The log in `store`, with the indexes its reads use.
    pub async fn open(store: Arc<dyn Store>) -> Result<StoreLog, LogError> {
        for field in [
            "meta.causation_id",
            "meta.correlation_id",
            "meta.session_id",
        ] {
            store
                .ensure_index(DOMAIN, COLLECTION, &[field.to_owned()])
                .await?;
        }
        Ok(StoreLog { store })
    }

    /// The log in `store` as it is, for a measurement of what its
    /// indexes cost.
    #[cfg(test)]
    pub(crate) fn open_unindexed(store: Arc<dyn Store>) -> StoreLog {
        StoreLog { store }
    }

    /// Every document matching `filter` (a JSON object without `$limit`
    /// or `$after`) after the id `after`, page by page, up to `limit`.
    async fn all(
        &self,
        filter: serde_json::Value,
        mut after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        let mut out = Vec::new();
        loop {
            let mut page = filter.clone();
            page["$limit"] = json!(PAGE.min(limit.saturating_sub(out.len()).max(1)));
            if let Some(id) = &after {
                page["$after"] = json!(id);
            }
            let filter = Filter::parse(&page.to_string())?;
            let docs = self.store.list(DOMAIN, COLLECTION, &filter).await?;
            let full = docs.len() >= filter.limit();
            after = docs.last().map(|d| d.id.clone());
            out.extend(
                docs.iter()
                    .filter_map(|d| Envelope::from_json(&d.json, usize::MAX).ok()),
            );
            if !full || out.len() >= limit {
                return Ok(out);
            }
        }
    }
}

/// The document id of a message: time first, so ids sort by time.
fn id_of(message: &Envelope) -> String {
    log_id(timestamp_ms(message), &message.meta.message_id)
}

fn log_id(ms: u64, message_id: &str) -> String {
    format!("{ms:013}-{message_id}")
}

#[async_trait]
impl SessionHistory for StoreLog {
    async fn after(
        &self,
        session: &str,
        after: &After,
        limit: usize,
    ) -> Result<Vec<Envelope>, HistoryError> {
        let from = log_id(after.timestamp_ms, &after.message_id);
        // Commands are logged too; a session's history is what it was sent.
        let filter = json!({ "meta.session_id": session, "meta.kind": "event" });
        self.all(filter, Some(from), limit)
            .await
            .map_err(|e| HistoryError(e.to_string()))
    }
}

#[async_trait]
impl LogSink for StoreLog {
    async fn append(&self, entries: &[Envelope]) -> Result<(), LogError> {
        for message in entries {
            self.store
                .upsert(
                    DOMAIN,
                    COLLECTION,
                    &id_of(message),
                    &message.to_json(),
                    None,
                )
                .await?;
        }
        Ok(())
    }

    async fn sweep(&self, before_ms: u64) -> Result<usize, LogError> {
        let cutoff = format!("{before_ms:013}-");
        let mut deleted = 0;
        loop {
            let filter = Filter::parse(&json!({ "$limit": PAGE }).to_string())?;
            let docs = self.store.list(DOMAIN, COLLECTION, &filter).await?;
            let old: Vec<_> = docs.iter().filter(|d| d.id < cutoff).collect();
            for doc in &old {
                if self.store.delete(DOMAIN, COLLECTION, &doc.id).await? {
                    deleted += 1;
                }
            }
            // Ids sort by time: a page not all old is the end of the old.
            if old.len() < PAGE {
                return Ok(deleted);
            }
        }
    }

    async fn find(
        &self,
        causes: &[String],
        correlation: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        let mut out = Vec::new();
        if let Some(correlation) = correlation {
            out.extend(
                self.all(json!({ "meta.correlation_id": correlation }), None, limit)
                    .await?,
            );
        }
        for cause in causes {
            if out.len() >= limit {
                break;
            }
            let left = limit - out.len();
            out.extend(
                self.all(json!({ "meta.causation_id": cause }), None, left)
                    .await?,
            );
        }
        Ok(out)
    }
}
