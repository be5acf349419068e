//! Processed markers, which are also the outbox, in [`super::PROCESSED`]:
//! `{_id: message_id, events, at, lease_until_ms, sent}`. `at` is a BSON
//! date, as the markers of older hosts have it, so one range query sweeps
//! both; their markers have no `sent` either and count as sent (those
//! hosts published their events themselves), so the unsent are always
//! asked for as `sent: false`.

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document as BsonDocument};
use mongodb::options::ReturnDocument;

use parallel_you_core::store::{Marker, Outgoing, StoreError};

use super::{store_error, to_i64, MongoStore};

/// The latest date stored, 9999-12-31T23:59:59.999Z: servers written over
/// other languages' date types (SecantusDB's Python) refuse later ones,
/// and a cut past it sweeps everything anyway.
const LATEST_MS: i64 = 253_402_300_799_999;

/// A time in ms since the epoch as a BSON date every server takes.
fn date(ms: u64) -> DateTime {
    DateTime::from_millis(to_i64(ms).min(LATEST_MS))
}

/// A marker as it is stored, unsent.
pub(super) fn to_stored(marker: &Marker) -> BsonDocument {
    doc! {
        "_id": marker.message_id.as_str(),
        "events": &marker.events,
        "at": date(marker.at_ms),
        "lease_until_ms": to_i64(marker.lease_until_ms),
        "sent": false,
    }
}

/// The events of a stored marker.
fn events_of(stored: &BsonDocument) -> Result<Vec<String>, StoreError> {
    let events = match stored.get("events") {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|b| b.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    events.ok_or_else(|| {
        let id = stored.get_str("_id").unwrap_or("?");
        StoreError::Unavailable(format!("mongodb: processed record of {id} is corrupt"))
    })
}

fn id_of(stored: &BsonDocument) -> Option<Bson> {
    stored.get("_id").cloned()
}

impl MongoStore {
    pub(super) async fn marker_events(
        &self,
        message_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let found = self
            .processed
            .find_one(doc! {"_id": message_id})
            .await
            .map_err(|e| store_error(&e))?;
        found.as_ref().map(events_of).transpose()
    }

    /// Finds the candidates oldest first, then claims each with an update
    /// on the same condition, so of two relays claiming at once each row
    /// goes to one.
    pub(super) async fn claim_unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let claimable = doc! {"sent": false, "lease_until_ms": {"$lte": to_i64(now_ms)}};
        let candidates: Vec<BsonDocument> = self
            .processed
            .find(claimable.clone())
            .sort(doc! {"sent": 1, "at": 1, "_id": 1})
            .projection(doc! {"_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| store_error(&e))?
            .try_collect()
            .await
            .map_err(|e| store_error(&e))?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for id in candidates.iter().filter_map(id_of) {
            let mut condition = claimable.clone();
            condition.insert("_id", id);
            let row = self
                .processed
                .find_one_and_update(
                    condition,
                    doc! {"$set": {"lease_until_ms": to_i64(lease_until_ms)}},
                )
                .return_document(ReturnDocument::After)
                .projection(doc! {"events": 1})
                .await
                .map_err(|e| store_error(&e))?;
            // None: another relay claimed it, or it was sent, meanwhile.
            if let Some(row) = row {
                claimed.push(Outgoing {
                    message_id: row.get_str("_id").unwrap_or_default().to_owned(),
                    events: events_of(&row)?,
                });
            }
        }
        Ok(claimed)
    }

    pub(super) async fn set_sent(&self, message_id: &str) -> Result<(), StoreError> {
        self.processed
            .update_one(doc! {"_id": message_id}, doc! {"$set": {"sent": true}})
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    /// Deletes by id what one query found, so at most `limit` go.
    pub(super) async fn sweep_sent(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let old: Vec<BsonDocument> = self
            .processed
            .find(doc! {
                "sent": {"$ne": false},
                "at": {"$lt": date(before_ms)},
            })
            .projection(doc! {"_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| store_error(&e))?
            .try_collect()
            .await
            .map_err(|e| store_error(&e))?;
        let ids: Vec<Bson> = old.iter().filter_map(id_of).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let res = self
            .processed
            .delete_many(doc! {"_id": {"$in": ids}})
            .await
            .map_err(|e| store_error(&e))?;
        Ok(usize::try_from(res.deleted_count).unwrap_or(usize::MAX))
    }
}
