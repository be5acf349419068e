//! Pending timers in their own collection, [`super::TIMERS`]:
//! `{_id: id, domain, due_ms, json}`, indexed by `(due_ms, _id)` for the
//! pump's poll and by `domain` for the per-domain count.

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document as BsonDocument};

use parallel_you_core::store::{StoreError, TimerRow};

use super::{store_error, to_i64, MongoStore};

/// A timer as it is stored.
pub(super) fn to_stored(timer: &TimerRow) -> BsonDocument {
    doc! {
        "_id": timer.id.as_str(),
        "domain": timer.domain.as_str(),
        "due_ms": to_i64(timer.due_ms),
        "json": timer.json.as_str(),
    }
}

fn from_stored(stored: &BsonDocument) -> Result<TimerRow, StoreError> {
    let text = |key: &str| match stored.get(key) {
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    };
    let due_ms = match stored.get("due_ms") {
        Some(Bson::Int64(v)) => u64::try_from(*v).ok(),
        Some(Bson::Int32(v)) => u64::try_from(*v).ok(),
        _ => None,
    };
    match (text("_id"), text("domain"), due_ms, text("json")) {
        (Some(id), Some(domain), Some(due_ms), Some(json)) => Ok(TimerRow {
            id,
            domain,
            due_ms,
            json,
        }),
        _ => Err(StoreError::Unavailable(format!(
            "mongodb: a stored timer is corrupt: {stored}"
        ))),
    }
}

impl MongoStore {
    pub(super) async fn find_timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError> {
        let found = self
            .timers
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| store_error(&e))?;
        found.as_ref().map(from_stored).transpose()
    }

    pub(super) async fn find_due(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<TimerRow>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stored: Vec<BsonDocument> = self
            .timers
            .find(doc! {"due_ms": {"$lte": to_i64(now_ms)}})
            .sort(doc! {"due_ms": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| store_error(&e))?
            .try_collect()
            .await
            .map_err(|e| store_error(&e))?;
        stored.iter().map(from_stored).collect()
    }

    pub(super) async fn count_pending(&self, domain: &str) -> Result<u64, StoreError> {
        self.timers
            .count_documents(doc! {"domain": domain})
            .await
            .map_err(|e| store_error(&e))
    }
}
