//! The MongoDB store: the shared store of hosts that scale out.
//!
//! Layout, in one database (the URI's, else [`DEFAULT_DATABASE`]):
//! - `docs.<domain>.<collection>`: one MongoDB collection per domain and
//!   collection, each document `{_id, version, body, created, updated}` with
//!   the JSON body as a BSON document, so `list` filters run on the server.
//!   A body BSON cannot hold faithfully (an integer above `i64::MAX`, a key
//!   starting with `$` or holding `.` or NUL, nesting past
//!   [`MAX_BSON_DEPTH`], a string with NUL, or a BSON size near the 16 MiB
//!   limit) is kept as JSON text in `json` instead, flagged `text: true`,
//!   and `list` always fetches such documents so its own check decides.
//! - `processed`: `{_id: message_id, events: [envelope JSON…], at}`.
//! - Timers are documents of the reserved domain (`docs.pyou.timers`).
//!
//! Optimistic concurrency is done by the server, never read-then-write:
//! creating is an insert that the unique `_id` index refuses for an existing
//! id; replacing version `v` is an update whose filter is `{_id, version: v}`.
//! Only after a refusal is the current version read, to report it.
//!
//! A command's domain writes and its processed marker are **not** one
//! transaction: each write is atomic on its own and the host records the
//! marker after the handler's last write (see [`crate::host`]). A crash in
//! between loses no effect; the redelivered command runs again against the
//! stored state. A transaction would have to stay open across the guest's
//! whole run while its emitted events are already on the bus, and MongoDB
//! aborts a transaction at its first write conflict, where this store's
//! contract is a `conflict` the handler can read past and retry.
//!
//! Every failure to reach the server is [`StoreError::Unavailable`]; the
//! driver reconnects by itself once the server is back.
//!
//! Bodies become BSON in `bson`; `list` filters become server queries in
//! `query`.

mod bson;
mod query;

use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, DateTime, Document as BsonDocument};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};

use parallel_you_core::store::{Backend, Checked, Document, Filter, Scan, Scanned, StoreError};

pub use bson::MAX_BSON_DEPTH;
use bson::{from_stored, version_of, Body, TEXT_FLAG};
use query::to_query;

/// The database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "pyou";
/// How long an operation waits for a reachable server before failing with
/// `unavailable`, unless the URI sets `serverSelectionTimeoutMS`. The
/// driver's own default (30 s) is longer than a command's deadline, which
/// would turn an outage into `timeout` outcomes recorded as final.
pub const DEFAULT_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Most documents fetched per round trip while `list` checks them.
const LIST_BATCH: u32 = 256;
/// Attempts of a write that races a concurrent create or delete of its id.
const WRITE_ATTEMPTS: usize = 4;
/// The server's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;
/// Server error codes that mean the request itself is unacceptable.
const INVALID_CODES: [i32; 4] = [2, 10334, 17419, 17420];

/// The collection of processed-command markers.
pub const PROCESSED: &str = "processed";
/// The prefix of every domain collection's name.
pub const DOCS_PREFIX: &str = "docs.";

/// A store in a MongoDB database, used as [`Checked<MongoStore>`].
#[derive(Debug, Clone)]
pub struct MongoStore {
    db: Database,
    processed: Collection<BsonDocument>,
}

fn unavailable(err: &mongodb::error::Error) -> StoreError {
    StoreError::Unavailable(format!("mongodb: {err}"))
}

/// The server's code for a failed command or write, if it sent one.
fn server_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Command(e) => Some(e.code),
        _ => None,
    }
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    server_code(err) == Some(DUPLICATE_KEY)
}

/// Maps a driver error: a refused request is `invalid`, anything else
/// (no server, a dropped connection, a server fault) `unavailable`.
fn store_error(err: &mongodb::error::Error) -> StoreError {
    match server_code(err) {
        Some(code) if INVALID_CODES.contains(&code) => {
            StoreError::Invalid(format!("mongodb refused the request: {err}"))
        }
        _ => unavailable(err),
    }
}

impl MongoStore {
    /// Connects to the server of `uri` (`mongodb://…` or `mongodb+srv://…`),
    /// using `database`, else the URI's database, else [`DEFAULT_DATABASE`].
    /// Checks that the server answers and creates the indexes the store
    /// needs (idempotently), so a wrong URI fails here, not on the first
    /// command.
    pub async fn connect(uri: &str, database: Option<&str>) -> Result<Checked<Self>, StoreError> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Invalid(format!("MongoDB URI: {e}")))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(DEFAULT_SELECTION_TIMEOUT);
        }
        if options.connect_timeout.is_none() {
            options.connect_timeout = Some(DEFAULT_SELECTION_TIMEOUT);
        }
        if options.app_name.is_none() {
            options.app_name = Some("pyou".to_owned());
        }
        let name = database
            .map(str::to_owned)
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options)
            .map_err(|e| StoreError::Invalid(format!("MongoDB URI: {e}")))?;
        let db = client.database(&name);
        db.run_command(doc! {"ping": 1})
            .await
            .map_err(|e| StoreError::Unavailable(format!("mongodb: cannot reach {name}: {e}")))?;
        let store = MongoStore {
            processed: db.collection(PROCESSED),
            db,
        };
        store.ensure_indexes().await?;
        Ok(Checked::new(store))
    }

    /// The database this store lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Creates the indexes beyond `_id`: every host polls for due timers,
    /// so they are found by their due time, and the text-body flag is
    /// indexed (sparse: only flagged documents are in it) so the poll's
    /// `$or` needs no collection scan. Uniqueness needs no index of its
    /// own: ids are `_id`, which the server keeps unique in every
    /// collection. Creating an index that exists with the same keys and
    /// options is a no-op, so every host does this at start-up.
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let timers = self.docs(crate::timers::DOMAIN, crate::timers::LEGACY_COLLECTION)?;
        let due = IndexModel::builder()
            .keys(doc! {"body.due_ms": 1})
            .options(IndexOptions::builder().name("due_ms".to_owned()).build())
            .build();
        let text = IndexModel::builder()
            .keys(doc! {TEXT_FLAG: 1})
            .options(
                IndexOptions::builder()
                    .name("text_body".to_owned())
                    .sparse(true)
                    .build(),
            )
            .build();
        timers
            .create_indexes([due, text])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    /// The MongoDB collection of a domain's collection.
    fn docs(&self, domain: &str, collection: &str) -> Result<Collection<BsonDocument>, StoreError> {
        // Collection names may not hold `$` or NUL; `.` is fine because
        // collection names cannot hold one, so the last `.` splits the two.
        if domain.is_empty() || domain.contains(['$', '\0']) {
            return Err(StoreError::Invalid(format!(
                "domain {domain:?} cannot name a MongoDB collection"
            )));
        }
        Ok(self
            .db
            .collection(&format!("{DOCS_PREFIX}{domain}.{collection}")))
    }

    /// The current version of a document, 0 when absent.
    async fn current_version(
        &self,
        coll: &Collection<BsonDocument>,
        id: &str,
    ) -> Result<u64, StoreError> {
        let found = coll
            .find_one(doc! {"_id": id})
            .projection(doc! {"version": 1})
            .await
            .map_err(|e| store_error(&e))?;
        Ok(found.map_or(0, |d| version_of(&d)))
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
#[allow(dead_code)]
impl MongoStore {
    async fn upsert(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let coll = self.docs(domain, collection)?;
        let body = Body::of(json)?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = DateTime::now();
            match expected_version {
                Some(0) => {
                    match coll.insert_one(body.created(id, now)).await {
                        Ok(_) => return Ok(1),
                        Err(e) if is_duplicate_key(&e) => {
                            let current = self.current_version(&coll, id).await?;
                            // Deleted again since: try the create once more.
                            if current != 0 {
                                return Err(StoreError::Conflict { current });
                            }
                        }
                        Err(e) => return Err(store_error(&e)),
                    }
                }
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
                    let current = self.current_version(&coll, id).await?;
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

    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        let coll = self.docs(domain, collection)?;
        let res = coll
            .delete_one(doc! {"_id": id})
            .await
            .map_err(|e| store_error(&e))?;
        Ok(res.deleted_count > 0)
    }

    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError> {
        let coll = self.docs(domain, collection)?;
        coll.delete_many(doc! {})
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn record_processed(
        &self,
        message_id: &str,
        events: &[String],
    ) -> Result<(), StoreError> {
        let marker = doc! {"_id": message_id, "events": events, "at": DateTime::now()};
        match self.processed.insert_one(marker).await {
            // The first record of a command stands.
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(store_error(&e)),
        }
    }
}

#[async_trait]
impl Backend for MongoStore {
    // Scaffold for the unit-of-work branch: replaced by the real ones.
    async fn commit(
        &self,
        _commit: &parallel_you_core::store::Commit,
    ) -> Result<parallel_you_core::store::Committed, StoreError> {
        Err(StoreError::Unavailable("commit: not yet".to_owned()))
    }
    async fn unsent(
        &self,
        _now_ms: u64,
        _lease_until_ms: u64,
        _limit: usize,
    ) -> Result<Vec<parallel_you_core::store::Outgoing>, StoreError> {
        Err(StoreError::Unavailable("unsent: not yet".to_owned()))
    }
    async fn mark_sent(&self, _message_id: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("mark_sent: not yet".to_owned()))
    }
    async fn sweep(&self, _before_ms: u64, _limit: usize) -> Result<usize, StoreError> {
        Err(StoreError::Unavailable("sweep: not yet".to_owned()))
    }
    async fn timer(
        &self,
        _id: &str,
    ) -> Result<Option<parallel_you_core::store::TimerRow>, StoreError> {
        Err(StoreError::Unavailable("timer: not yet".to_owned()))
    }
    async fn due_timers(
        &self,
        _now_ms: u64,
        _limit: usize,
    ) -> Result<Vec<parallel_you_core::store::TimerRow>, StoreError> {
        Err(StoreError::Unavailable("due_timers: not yet".to_owned()))
    }
    async fn pending_timers(&self, _domain: &str) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable(
            "pending_timers: not yet".to_owned(),
        ))
    }

    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        let coll = self.docs(domain, collection)?;
        let found = coll
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| store_error(&e))?;
        found
            .map(|d| from_stored(d).map(|(doc, _)| doc))
            .transpose()
    }

    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError> {
        let coll = self.docs(domain, collection)?;
        let limit = filter.limit();
        let query = to_query(filter);
        let mut find = coll.find(query).sort(doc! {"_id": 1});
        if filter.conditions().is_empty() {
            find = find.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let batch = u32::try_from(limit).unwrap_or(LIST_BATCH).min(LIST_BATCH);
        let cursor = find.batch_size(batch).await.map_err(|e| store_error(&e))?;
        // Dropping the cursor once `list` has its page ends it on the server.
        Ok(cursor
            .map_err(|e| store_error(&e))
            .and_then(|stored| {
                std::future::ready(from_stored(stored).map(|(doc, value)| Scanned {
                    doc,
                    value: Some(value),
                }))
            })
            .boxed())
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let found = self
            .processed
            .find_one(doc! {"_id": message_id})
            .await
            .map_err(|e| store_error(&e))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let events = match found.get("events") {
            Some(Bson::Array(items)) => items
                .iter()
                .map(|b| b.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        events.map(Some).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "mongodb: processed record of {message_id} is corrupt"
            ))
        })
    }
}
