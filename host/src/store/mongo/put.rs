//! A put's version check, in a commit's transaction or on its own.
//!
//! On its own, optimistic concurrency is done by the server, never
//! read-then-write: creating is an insert that the unique `_id` index
//! refuses for an existing id; replacing version `v` is an update whose
//! filter is `{_id, version: v}`. Only after a refusal is the current
//! version read, to report it. In a transaction, a refused write aborts the
//! whole transaction on the server, so the version is read first, from the
//! transaction's snapshot, and the write is conditional on it.

use mongodb::bson::{doc, DateTime, Document as BsonDocument};
use mongodb::options::ReturnDocument;
use mongodb::{ClientSession, Collection};

use parallel_you_core::store::{next_version, StoreError};

use super::bson::{version_of, Body};
use super::commit::{abort_for, Abort};
use super::{is_duplicate_key, store_error, to_i64};

/// Attempts of a lone write that races a concurrent create or delete of
/// its id.
const WRITE_ATTEMPTS: usize = 4;

/// A put in a transaction: the snapshot's version decides, and the write is
/// conditional on it, so a concurrent change is a write conflict (run
/// again), never a lost update.
pub(super) async fn put_in(
    session: &mut ClientSession,
    coll: &Collection<BsonDocument>,
    id: &str,
    body: &Body,
    expected: Option<u64>,
) -> Result<u64, Abort> {
    let found = coll
        .find_one(doc! {"_id": id})
        .projection(doc! {"version": 1})
        .session(&mut *session)
        .await
        .map_err(|e| abort_for(&e))?;
    let current = found.map_or(0, |d| version_of(&d));
    let next = next_version(current, expected)?;
    let now = DateTime::now();
    if current == 0 {
        coll.insert_one(body.created(id, now))
            .session(&mut *session)
            .await
            .map_err(|e| abort_for(&e))?;
        return Ok(1);
    }
    let res = coll
        .update_one(
            doc! {"_id": id, "version": to_i64(current)},
            body.update(Some(to_i64(next)), now),
        )
        .session(&mut *session)
        .await
        .map_err(|e| abort_for(&e))?;
    if res.matched_count != 1 {
        return Err(Abort::Retry(format!(
            "document {id:?} changed under the transaction"
        )));
    }
    Ok(next)
}

/// A lone put, its version checked by the server.
pub(super) async fn put_alone(
    coll: &Collection<BsonDocument>,
    id: &str,
    body: &Body,
    expected_version: Option<u64>,
) -> Result<u64, StoreError> {
    for _ in 0..WRITE_ATTEMPTS {
        let now = DateTime::now();
        match expected_version {
            Some(0) => match coll.insert_one(body.created(id, now)).await {
                Ok(_) => return Ok(1),
                Err(e) if is_duplicate_key(&e) => {
                    let current = current_version(coll, id).await?;
                    // Deleted again since: try the create once more.
                    if current != 0 {
                        return Err(StoreError::Conflict { current });
                    }
                }
                Err(e) => return Err(store_error(&e)),
            },
            Some(expected) => {
                let next = expected.saturating_add(1);
                let res = coll
                    .update_one(
                        doc! {"_id": id, "version": to_i64(expected)},
                        body.update(Some(to_i64(next)), now),
                    )
                    .await
                    .map_err(|e| store_error(&e))?;
                if res.matched_count == 1 {
                    return Ok(next);
                }
                let current = current_version(coll, id).await?;
                // Deleted and recreated back to `expected` since: retry.
                if current != expected {
                    return Err(StoreError::Conflict { current });
                }
            }
            None => {
                // An update of the existing document, else a create; not
                // one upsert, so a create racing another create is the
                // `_id` index's duplicate key, never a lost answer.
                let mut update = body.update(None, now);
                update.insert("$inc", doc! {"version": 1_i64});
                let updated = coll
                    .find_one_and_update(doc! {"_id": id}, update)
                    .return_document(ReturnDocument::After)
                    .projection(doc! {"version": 1})
                    .await
                    .map_err(|e| store_error(&e))?;
                if let Some(stored) = updated {
                    return Ok(version_of(&stored));
                }
                match coll.insert_one(body.created(id, now)).await {
                    Ok(_) => return Ok(1),
                    // Created meanwhile: update it on the next attempt.
                    Err(e) if is_duplicate_key(&e) => {}
                    Err(e) => return Err(store_error(&e)),
                }
            }
        }
    }
    Err(StoreError::Unavailable(format!(
        "mongodb: document {id:?} kept changing under {WRITE_ATTEMPTS} attempts to write it"
    )))
}

/// The current version of a document, 0 when absent.
async fn current_version(coll: &Collection<BsonDocument>, id: &str) -> Result<u64, StoreError> {
    let found = coll
        .find_one(doc! {"_id": id})
        .projection(doc! {"version": 1})
        .await
        .map_err(|e| store_error(&e))?;
    Ok(found.map_or(0, |d| version_of(&d)))
}
