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
//! - [`PROCESSED`]: the processed markers, which are also the outbox:
//!   `{_id: message_id, events: [envelope JSON…], at, lease_until_ms, sent}`
//!   (see `outbox`).
//! - [`TIMERS`]: the pending timers, `{_id, domain, due_ms, json}` (see
//!   `timers`).
//!
//! Neither host collection can collide with a domain's: those all start
//! with [`DOCS_PREFIX`].
//!
//! A commit of several ops, or of a command's marker, is one multi-document
//! transaction (see `commit`); a lone write is atomic by itself and skips
//! it. Every failure to reach the server is [`StoreError::Unavailable`]; the
//! driver reconnects by itself once the server is back.
//!
//! Bodies become BSON in `bson`; `list` filters become server queries in
//! `query`.

mod bson;
mod commit;
mod outbox;
mod put;
mod query;
mod sorted;
mod timers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::TryStreamExt;
use mongodb::bson::{doc, Document as BsonDocument};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use parallel_you_core::store::{
    paged, Backend, Checked, Commit, Committed, Document, Filter, Outgoing, Scan, Scanned,
    StoreError, TimerRow,
};

pub use bson::MAX_BSON_DEPTH;
use bson::{from_stored, TEXT_FLAG};
use query::{conditions, to_query};

/// The database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "pyou";
/// How long an operation waits for a reachable server before failing with
/// `unavailable`, unless the URI sets `serverSelectionTimeoutMS`. The
/// driver's own default (30 s) is longer than a command's deadline, which
/// would turn an outage into `timeout` outcomes recorded as final.
pub const DEFAULT_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// The server's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;
/// Server error codes that mean the request itself is unacceptable.
const INVALID_CODES: [i32; 1] = [2];
/// Server error codes that mean a document or a transaction is larger than
/// the server takes (BSONObjectTooLarge, an update's or an upsert's result
/// too large, TransactionTooLarge, TransactionTooLargeForCache).
const TOO_LARGE_CODES: [i32; 5] = [10334, 17419, 17420, 257, 334];

/// The collection of processed-command markers and their outbox rows.
pub const PROCESSED: &str = "processed";
/// The collection of pending timers.
pub const TIMERS: &str = "timers";
/// The prefix of every domain collection's name.
pub const DOCS_PREFIX: &str = "docs.";

/// A store in a MongoDB database, used as [`Checked<MongoStore>`].
#[derive(Debug, Clone)]
pub struct MongoStore {
    db: Database,
    processed: Collection<BsonDocument>,
    timers: Collection<BsonDocument>,
    /// Document collections (by MongoDB name) this store made the
    /// [`TEXT_INDEX`] on, which a filtered page then reads in two indexed
    /// queries instead of one `$or` (see [`MongoStore::page_split`]).
    text_indexed: Arc<parking_lot::RwLock<std::collections::HashSet<String>>>,
}

/// The sparse index on the flag of bodies kept as text, made with each
/// declared index; named apart from `by_<fields>`, which a field `text`
/// would take.
const TEXT_INDEX: &str = "pyou_text";

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

/// Maps a driver error: a document or transaction over the server's size
/// limits is `too_large`, a refused request `invalid`, anything else (no
/// server, a dropped connection, a server fault) `unavailable`.
fn store_error(err: &mongodb::error::Error) -> StoreError {
    match (server_code(err), err.kind.as_ref()) {
        (Some(code), _) if TOO_LARGE_CODES.contains(&code) => {
            StoreError::TooLarge(format!("mongodb refused the write as too large: {err}"))
        }
        (Some(code), _) if INVALID_CODES.contains(&code) => {
            StoreError::Invalid(format!("mongodb refused the request: {err}"))
        }
        // The driver measures a document against the server's
        // `maxBsonObjectSize` before sending it.
        (None, ErrorKind::InvalidArgument { message, .. })
            if message.contains("must be within") =>
        {
            StoreError::TooLarge(format!("mongodb: {message}"))
        }
        _ => unavailable(err),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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
            timers: db.collection(TIMERS),
            db,
            text_indexed: Arc::default(),
        };
        store.ensure_indexes().await?;
        Ok(Checked::new(store))
    }

    /// The database this store lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The names of the indexes MongoDB keeps on `domain`'s `collection`
    /// (`_id_`, `by_<fields>` for each one
    /// [`parallel_you_core::store::Store::ensure_index`] made, and with them
    /// `pyou_text`), for operators checking what a
    /// component's manifest asked.
    pub async fn index_names(
        &self,
        domain: &str,
        collection: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.docs(domain, collection)?
            .list_index_names()
            .await
            .map_err(|e| store_error(&e))
    }

    /// Creates the indexes beyond `_id`, so every poll is an indexed query
    /// whatever the number of rows: the relay's for unsent outbox rows
    /// oldest first (markers of older hosts have no `sent` and are not
    /// unsent), the timer pump's for due timers, and the per-domain count
    /// of pending timers. Creating an index that exists with the same keys
    /// and options is a no-op, so every host does this at start-up.
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let index = |keys: BsonDocument, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_owned()).build())
                .build()
        };
        self.processed
            .create_index(index(doc! {"sent": 1, "at": 1, "_id": 1}, "unsent"))
            .await
            .map_err(|e| store_error(&e))?;
        self.timers
            .create_indexes([
                index(doc! {"due_ms": 1, "_id": 1}, "due_ms"),
                index(doc! {"domain": 1}, "domain"),
            ])
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

    /// One page of a scan: up to `n` documents after id `after` matching
    /// `query`, in id order, stopping once they hold `max_bytes` of JSON.
    /// `widest` is the largest body the scan has seen: the cursor's batches
    /// are sized from it, so a page of big documents fetches about
    /// `max_bytes` and one document rather than a full batch (the first
    /// page, before any size is known, is bounded by the server's 16 MiB
    /// per batch).
    /// Like [`MongoStore::page`] for the query `conditions` OR a body
    /// kept as text, as two queries merged by id: a page of each (both in
    /// id order) holds the first `n` of their union, and no document is
    /// in both (a text body has no `body` fields to match).
    async fn page_split(
        coll: Collection<BsonDocument>,
        conditions: BsonDocument,
        after: Option<String>,
        n: usize,
        max_bytes: usize,
        widest: Arc<AtomicUsize>,
    ) -> Result<Vec<Scanned>, StoreError> {
        let (matched, texts) = futures::try_join!(
            Self::page(
                coll.clone(),
                conditions,
                after.clone(),
                n,
                max_bytes,
                widest.clone()
            ),
            Self::page(coll, doc! {TEXT_FLAG: true}, after, n, max_bytes, widest),
        )?;
        if texts.is_empty() {
            return Ok(matched);
        }
        let mut merged: Vec<Scanned> = matched.into_iter().chain(texts).collect();
        merged.sort_by(|a, b| a.doc.id.cmp(&b.doc.id));
        let mut bytes = 0usize;
        let mut page = Vec::new();
        for scanned in merged {
            if page.len() == n || (!page.is_empty() && bytes >= max_bytes) {
                break;
            }
            bytes = bytes.saturating_add(scanned.doc.json.len());
            page.push(scanned);
        }
        Ok(page)
    }

    async fn page(
        coll: Collection<BsonDocument>,
        query: BsonDocument,
        after: Option<String>,
        n: usize,
        max_bytes: usize,
        widest: Arc<AtomicUsize>,
    ) -> Result<Vec<Scanned>, StoreError> {
        let query = match after {
            None => query,
            Some(after) if query.is_empty() => doc! {"_id": {"$gt": after}},
            Some(after) => doc! {"$and": [query, {"_id": {"$gt": after}}]},
        };
        let batch = match widest.load(Ordering::Relaxed) {
            0 => n,
            w => (max_bytes / w).clamp(1, n),
        };
        let mut cursor = coll
            .find(query)
            .sort(doc! {"_id": 1})
            .limit(i64::try_from(n).unwrap_or(i64::MAX))
            .batch_size(u32::try_from(batch).unwrap_or(u32::MAX))
            .await
            .map_err(|e| store_error(&e))?;
        let mut page = Vec::new();
        let mut bytes = 0usize;
        // Dropping the cursor at a page's end closes it on the server.
        while page.len() < n && bytes < max_bytes {
            let Some(stored) = cursor.try_next().await.map_err(|e| store_error(&e))? else {
                break;
            };
            let (doc, value) = from_stored(stored)?;
            bytes = bytes.saturating_add(doc.json.len());
            widest.fetch_max(doc.json.len(), Ordering::Relaxed);
            page.push(Scanned {
                doc,
                value: Some(value),
            });
        }
        Ok(page)
    }
}

#[async_trait]
impl Backend for MongoStore {
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
        let query = to_query(filter);
        // With the text flag indexed, the `$or` of `to_query` becomes two
        // queries each an index can serve: a server may plan none for an
        // `$or` (SecantusDB never does; MongoDB only when every branch has
        // an index), which made a selective page a collection scan.
        let split = conditions(filter).filter(|_| self.text_indexed.read().contains(coll.name()));
        let widest = Arc::new(AtomicUsize::new(0));
        let sort = filter.sort();
        Ok(paged(
            filter,
            true,
            move |after, n, max_bytes| -> BoxFuture<'a, Result<Vec<Scanned>, StoreError>> {
                let (coll, query) = (coll.clone(), query.clone());
                match (sort, &split) {
                    (Some(sort), _) => Box::pin(async move {
                        sorted::page(&coll, &query, filter, sort, after, n, max_bytes).await
                    }),
                    (None, Some(conditions)) => Box::pin(Self::page_split(
                        coll,
                        conditions.clone(),
                        after.map(|p| p.id),
                        n,
                        max_bytes,
                        widest.clone(),
                    )),
                    (None, None) => Box::pin(Self::page(
                        coll,
                        query,
                        after.map(|p| p.id),
                        n,
                        max_bytes,
                        widest.clone(),
                    )),
                }
            },
        ))
    }

    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError> {
        self.commit_all(commit).await
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.marker_events(message_id).await
    }

    async fn unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        self.claim_unsent(now_ms, lease_until_ms, limit).await
    }

    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError> {
        self.set_sent(message_id).await
    }

    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.sweep_sent(before_ms, limit).await
    }

    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError> {
        self.find_timer(id).await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError> {
        self.find_due(now_ms, limit).await
    }

    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError> {
        self.count_pending(domain).await
    }

    async fn ensure_index(
        &self,
        domain: &str,
        collection: &str,
        fields: &[Vec<String>],
    ) -> Result<(), StoreError> {
        // The collection is the domain's own, so the keys need no prefix;
        // `_id` last, for equal keys in id order (the order of `list`).
        let mut keys = BsonDocument::new();
        for field in fields {
            keys.insert(format!("body.{}", field.join(".")), 1);
        }
        keys.insert("_id", 1);
        let name = fields
            .iter()
            .map(|f| f.join("."))
            .collect::<Vec<_>>()
            .join("_");
        let index = IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().name(format!("by_{name}")).build())
            .build();
        let text = IndexModel::builder()
            .keys(doc! {TEXT_FLAG: 1})
            .options(
                IndexOptions::builder()
                    .name(TEXT_INDEX.to_owned())
                    .sparse(true)
                    .build(),
            )
            .build();
        let coll = self.docs(domain, collection)?;
        coll.create_indexes([index, text])
            .await
            .map_err(|e| store_error(&e))?;
        self.text_indexed.write().insert(coll.name().to_owned());
        Ok(())
    }
}
