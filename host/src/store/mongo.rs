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

use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, DateTime, Document as BsonDocument};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::{Map, Number, Value};

use parallel_you_core::store::filter::Condition;
use parallel_you_core::store::{Backend, Checked, Document, Filter, Scan, Scanned, StoreError};

/// The database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "pyou";
/// Deepest body nesting stored as BSON (the server allows 100 levels, and
/// the stored document wraps the body in one more).
pub const MAX_BSON_DEPTH: usize = 64;
/// How long an operation waits for a reachable server before failing with
/// `unavailable`, unless the URI sets `serverSelectionTimeoutMS`. The
/// driver's own default (30 s) is longer than a command's deadline, which
/// would turn an outage into `timeout` outcomes recorded as final.
pub const DEFAULT_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Most documents fetched per round trip while `list` checks them.
const LIST_BATCH: u32 = 256;
/// Bodies whose BSON would be larger are kept as JSON text: the server's
/// limit is 16 MiB for the whole document.
const MAX_BSON_BODY: usize = 15 * 1024 * 1024;
/// Attempts of a write that races a concurrent create or delete of its id.
const WRITE_ATTEMPTS: usize = 4;
/// The server's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;
/// Server error codes that mean the request itself is unacceptable.
const INVALID_CODES: [i32; 4] = [2, 10334, 17419, 17420];

/// Set (to `true`) on documents whose body is kept as JSON text.
const TEXT_FLAG: &str = "text";

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
        let timers = self.docs(crate::timers::DOMAIN, crate::timers::COLLECTION)?;
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

fn version_of(doc: &BsonDocument) -> u64 {
    match doc.get("version") {
        Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Double(v)) if *v >= 1.0 => *v as u64,
        _ => 0,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A body as it is stored: BSON when that is faithful, else JSON text.
#[derive(Debug, Clone)]
enum Body {
    Bson(BsonDocument),
    Text(String),
}

impl Body {
    fn of(json: &str) -> Result<Body, StoreError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| StoreError::Invalid(format!("document is not valid JSON: {e}")))?;
        let Value::Object(map) = &value else {
            return Err(StoreError::Invalid(
                "a document must be a JSON object".to_owned(),
            ));
        };
        let Some(doc) = object_to_bson(map, 0) else {
            return Ok(Body::Text(json.to_owned()));
        };
        // BSON can be ~9× the JSON (arrays of small numbers): measure only
        // when the JSON is large enough for that to matter.
        if json.len() * 10 > MAX_BSON_BODY {
            let mut bytes = Vec::new();
            if doc.to_writer(&mut bytes).is_err() || bytes.len() > MAX_BSON_BODY {
                return Ok(Body::Text(json.to_owned()));
            }
        }
        Ok(Body::Bson(doc))
    }

    /// The fields holding this body, and those of the other kind of body
    /// (which a write must remove).
    fn fields(&self) -> (BsonDocument, BsonDocument) {
        match self {
            Body::Bson(b) => (doc! {"body": b.clone()}, doc! {"json": "", TEXT_FLAG: ""}),
            Body::Text(t) => (
                doc! {"json": t.as_str(), TEXT_FLAG: true},
                doc! {"body": ""},
            ),
        }
    }

    /// A new stored document with this body, at version 1.
    fn created(&self, id: &str, now: DateTime) -> BsonDocument {
        let mut stored = doc! {"_id": id, "version": 1_i64, "created": now, "updated": now};
        stored.extend(self.fields().0);
        stored
    }

    /// The `$set` and `$unset` of an update writing this body.
    fn update(&self, version: Option<i64>, now: DateTime) -> BsonDocument {
        let (mut set, unset) = self.fields();
        set.insert("updated", now);
        if let Some(v) = version {
            set.insert("version", v);
        }
        doc! {"$set": set, "$unset": unset}
    }
}

fn key_fits_bson(key: &str) -> bool {
    !key.starts_with('$') && !key.contains(['.', '\0'])
}

fn object_to_bson(map: &Map<String, Value>, depth: usize) -> Option<BsonDocument> {
    if depth >= MAX_BSON_DEPTH {
        return None;
    }
    let mut doc = BsonDocument::new();
    for (k, v) in map {
        if !key_fits_bson(k) {
            return None;
        }
        doc.insert(k.clone(), value_to_bson(v, depth + 1)?);
    }
    Some(doc)
}

/// A JSON value as BSON, or `None` when BSON cannot hold it faithfully.
fn value_to_bson(v: &Value, depth: usize) -> Option<Bson> {
    Some(match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => number_to_bson(n)?,
        Value::String(s) => {
            if s.contains('\0') {
                // BSON strings may hold NUL, but a stored body with one
                // could not be matched by a regex; keep such a body as text.
                return None;
            }
            Bson::String(s.clone())
        }
        Value::Array(items) => {
            if depth >= MAX_BSON_DEPTH {
                return None;
            }
            Bson::Array(
                items
                    .iter()
                    .map(|i| value_to_bson(i, depth + 1))
                    .collect::<Option<Vec<_>>>()?,
            )
        }
        Value::Object(map) => Bson::Document(object_to_bson(map, depth)?),
    })
}

fn number_to_bson(n: &Number) -> Option<Bson> {
    if let Some(i) = n.as_i64() {
        Some(Bson::Int64(i))
    } else if n.is_u64() {
        // Above i64::MAX: a double would round it.
        None
    } else {
        n.as_f64().map(Bson::Double)
    }
}

/// BSON back to JSON. Only what [`value_to_bson`] writes is expected; a
/// value of another type, put there by other tools, is given as its text.
fn bson_to_value(b: Bson) -> Value {
    match b {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(i) => Value::from(i),
        Bson::Int64(i) => Value::from(i),
        Bson::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s),
        Bson::Array(items) => Value::Array(items.into_iter().map(bson_to_value).collect()),
        Bson::Document(d) => {
            Value::Object(d.into_iter().map(|(k, v)| (k, bson_to_value(v))).collect())
        }
        other => Value::String(other.to_string()),
    }
}

/// A stored document as the store's [`Document`] and its body as a value.
fn from_stored(mut stored: BsonDocument) -> Result<(Document, Value), StoreError> {
    let id = match stored.remove("_id") {
        Some(Bson::String(id)) => id,
        other => {
            return Err(StoreError::Unavailable(format!(
                "mongodb: a stored document has a non-string _id {other:?}"
            )))
        }
    };
    let version = version_of(&stored);
    let (value, json) = match (stored.remove("body"), stored.remove("json")) {
        (Some(Bson::Document(body)), _) => {
            let value = bson_to_value(Bson::Document(body));
            let json = value.to_string();
            (value, json)
        }
        (_, Some(Bson::String(text))) => {
            let value = serde_json::from_str(&text).map_err(|e| {
                StoreError::Unavailable(format!("mongodb: document {id:?} is corrupt: {e}"))
            })?;
            (value, text)
        }
        _ => {
            return Err(StoreError::Unavailable(format!(
                "mongodb: document {id:?} has no body"
            )))
        }
    };
    Ok((Document { id, version, json }, value))
}

/// The largest integer magnitude below which `f64` and `i64` comparisons
/// agree exactly (2^53).
const EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

/// The server-side query for a filter: every document the filter matches
/// matches it too (it may match more), so the filter's own check after
/// fetching makes the result exact. Conditions whose MongoDB meaning could
/// exclude a matching document (arrays match element-wise, `1` equals
/// `1.0`, a dotted path walks into arrays, …) are left out or widened.
fn to_query(filter: &Filter) -> BsonDocument {
    let mut all: Vec<Bson> = Vec::new();
    for (path, cond) in filter.conditions() {
        if path.iter().any(|seg| seg.contains('\0')) {
            continue;
        }
        let field = format!("body.{}", path.join("."));
        let single = path.len() == 1;
        let clause = match cond {
            Condition::Eq(v) => exact_bson(v).map(|b| doc! {&field: {"$eq": b}}),
            Condition::In(vs) => vs
                .iter()
                .map(exact_bson)
                .collect::<Option<Vec<_>>>()
                .map(|bs| doc! {&field: {"$in": bs}}),
            Condition::Ne(v @ (Value::String(_) | Value::Bool(_))) if single => {
                exact_bson(v).map(|b| {
                    doc! {"$or": [{&field: {"$ne": b}}, {&field: {"$type": "array"}}]}
                })
            }
            Condition::Ne(_) => None,
            Condition::Exists(true) => Some(doc! {&field: {"$exists": true}}),
            Condition::Exists(false) if single => Some(doc! {&field: {"$exists": false}}),
            Condition::Exists(false) => None,
            Condition::Contains(text) => {
                contains_regex(text).map(|re| doc! {&field: {"$regex": re}})
            }
            Condition::Cmp(ord, or_equal, v) => cmp_bson(v).map(|b| {
                let op = match (ord, or_equal) {
                    (std::cmp::Ordering::Less, false) => "$lt",
                    (std::cmp::Ordering::Less, true) => "$lte",
                    (_, false) => "$gt",
                    (_, true) => "$gte",
                };
                doc! {&field: {op: b}}
            }),
        };
        if let Some(clause) = clause {
            all.push(Bson::Document(clause));
        }
    }
    if all.is_empty() {
        return BsonDocument::new();
    }
    // Bodies kept as text are always fetched: the server cannot look inside.
    doc! {"$or": [{"$and": all}, {TEXT_FLAG: true}]}
}

/// A filter value as BSON when MongoDB equality on it is implied by JSON
/// equality: not for objects (MongoDB compares their keys in order).
fn exact_bson(v: &Value) -> Option<Bson> {
    match v {
        Value::Object(_) => None,
        Value::Array(items) => Some(Bson::Array(
            items.iter().map(exact_bson).collect::<Option<Vec<_>>>()?,
        )),
        Value::String(s) if s.contains('\0') => None,
        other => value_to_bson(other, 0),
    }
}

/// A bound of `$lt`… as BSON when MongoDB's order agrees with the filter's:
/// strings (both compare UTF-8 bytes) and numbers small enough that the
/// filter's `f64` fallback is exact.
fn cmp_bson(v: &Value) -> Option<Bson> {
    match v {
        Value::String(s) if !s.contains('\0') => Some(Bson::String(s.clone())),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f.abs() < EXACT_F64_INT {
                number_to_bson(n)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A regex matching every string whose lowercase contains `text` (already
/// lowercase), for ASCII `text` only. Each letter becomes a class of its
/// cases plus the two non-ASCII letters whose lowercase is ASCII (`K`
/// KELVIN SIGN, `İ`), so the server never misses what `to_lowercase` finds;
/// no `i` option, whose Unicode rules differ between servers.
fn contains_regex(text: &str) -> Option<String> {
    if !text.is_ascii() || text.contains('\0') {
        return None;
    }
    let mut re = String::with_capacity(text.len() * 4);
    for c in text.chars() {
        match c {
            'k' => re.push_str("[kK\u{212A}]"),
            'i' => re.push_str("[iI\u{130}]"),
            c if c.is_ascii_lowercase() => {
                re.push('[');
                re.push(c);
                re.push(c.to_ascii_uppercase());
                re.push(']');
            }
            c if c.is_ascii_alphanumeric() => re.push(c),
            c => {
                // A backslash before a non-alphanumeric character is a
                // literal in every regex dialect.
                re.push('\\');
                re.push(c);
            }
        }
    }
    Some(re)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn f(text: &str) -> Filter {
        match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn bodies_bson_cannot_hold_stay_text() {
        for json in [
            r#"{"n":18446744073709551615}"#,
            r#"{"$set":1}"#,
            r#"{"a":{"b.c":1}}"#,
            r#"{"s":"nul\u0000"}"#,
        ] {
            assert!(matches!(Body::of(json), Ok(Body::Text(_))), "{json}");
        }
        let deep = format!("{}1{}", r#"{"a":"#.repeat(70), "}".repeat(70));
        assert!(matches!(Body::of(&deep), Ok(Body::Text(_))));
        assert!(matches!(
            Body::of(r#"{"n":-3,"f":2.5,"a":[1,"x",null,true,{"k":{}}]}"#),
            Ok(Body::Bson(_))
        ));
    }

    #[test]
    fn bson_round_trips_json() {
        let json = r#"{"a":[1,"x",null,true,{"k":{}}],"f":2.5,"n":-3,"z":1.0}"#;
        let Ok(Body::Bson(doc)) = Body::of(json) else {
            panic!("not bson")
        };
        assert_eq!(bson_to_value(Bson::Document(doc)).to_string(), json);
    }

    #[test]
    fn queries_leave_out_what_mongodb_means_differently() {
        assert_eq!(to_query(&f("{}")), doc! {});
        assert_eq!(to_query(&f(r#"{"a.b":{"$ne":1}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"a":{"$eq":{"x":1}}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"a.b":{"$exists":false}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"t":{"$contains":"é"}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"n":{"$lt":9007199254740993}}"#)), doc! {});
        assert_eq!(
            to_query(&f(r#"{"kind":"story"}"#)),
            doc! {"$or": [{"$and": [{"body.kind": {"$eq": "story"}}]}, {TEXT_FLAG: true}]}
        );
    }

    #[test]
    fn contains_regex_covers_unicode_lowercase() {
        assert_eq!(
            contains_regex("ik 1.").as_deref(),
            Some("[iI\u{130}][kK\u{212A}]\\ 1\\.")
        );
        assert_eq!(contains_regex("ß"), None);
    }
}
