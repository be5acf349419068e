//! The one place store requests are checked: [`Checked`] turns a
//! [`Backend`], which only stores, into a [`Store`].
//!
//! Every backend's public constructor returns its `Checked` form, and a
//! backend is not a [`Store`] by itself, so no caller can reach one without
//! the checks: collection names and document ids follow [`crate::names`],
//! bodies are JSON objects within [`MAX_DOCUMENT_LEN`], and `list` applies
//! its filter and limit here, whatever the backend did with them.

use std::future::Future;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::Value;

use super::filter::Position;
use super::{Commit, Committed, Document, Filter, Op, Outgoing, Store, StoreError, TimerRow};
use crate::names::{check_collection, check_document_id, is_token};

/// Largest document, in bytes of JSON text.
pub const MAX_DOCUMENT_LEN: usize = 4 * 1024 * 1024;

/// Documents fetched per page by [`paged`] scans.
pub const SCAN_PAGE: usize = 256;

/// Bytes of JSON a [`paged`] scan holds per page at most (plus one
/// document), whatever the documents' sizes.
pub const SCAN_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// One document a scan offers `list`, with its body already parsed when the
/// backend had it as a value anyway (so it is not parsed again).
#[derive(Debug, Clone)]
pub struct Scanned {
    /// The document.
    pub doc: Document,
    /// Its body, if the backend has it parsed.
    pub value: Option<Value>,
}

impl From<Document> for Scanned {
    fn from(doc: Document) -> Self {
        Scanned { doc, value: None }
    }
}

/// The documents a scan offers, in id order.
pub type Scan<'a> = BoxStream<'a, Result<Scanned, StoreError>>;

/// A storage backend: what it is given has already been checked by
/// [`Checked`], through which alone it is used. The rules of each method are
/// those of the [`Store`] method of the same name.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// See [`Store::get`].
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError>;

    /// The documents of a collection in the filter's order (by id, or by
    /// its `$sort`; see [`crate::store::filter::order`]), from after its
    /// `$after`: at least every one `filter` matches. The backend may use
    /// the filter to skip documents, never to drop one it matches; the
    /// caller applies the filter, the cursor and the limit, and stops
    /// reading once the limit is reached.
    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError>;

    /// See [`Store::commit`]; its ops were checked when they were built.
    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError>;

    /// See [`Store::processed`].
    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError>;

    /// See [`Store::unsent`].
    async fn unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError>;

    /// See [`Store::mark_sent`].
    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError>;

    /// See [`Store::sweep`].
    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError>;

    /// See [`Store::timer`].
    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError>;

    /// See [`Store::due_timers`].
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError>;

    /// See [`Store::pending_timers`].
    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError>;

    /// See [`Store::ensure_index`]; each field is a checked path of
    /// [`crate::names::is_token`] segments. Nothing by default.
    async fn ensure_index(
        &self,
        _domain: &str,
        _collection: &str,
        _fields: &[Vec<String>],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Most fields one index may hold.
pub const MAX_INDEX_FIELDS: usize = 4;

/// Checks an index declaration (a collection name and 1 to
/// [`MAX_INDEX_FIELDS`] field paths of [`is_token`] segments joined by
/// `.`), returning each field split into its path.
pub fn index_paths(collection: &str, fields: &[String]) -> Result<Vec<Vec<String>>, StoreError> {
    check_collection(collection)?;
    if fields.is_empty() || fields.len() > MAX_INDEX_FIELDS {
        return Err(StoreError::Invalid(format!(
            "an index of {collection:?} needs 1 to {MAX_INDEX_FIELDS} fields"
        )));
    }
    fields
        .iter()
        .map(|f| {
            let path: Vec<String> = f.split('.').map(str::to_owned).collect();
            if path.iter().all(|seg| is_token(seg)) {
                Ok(path)
            } else {
                Err(StoreError::Invalid(format!(
                    "index field {f:?} of {collection:?} must be dot-separated names of [A-Za-z0-9_-]"
                )))
            }
        })
        .collect()
}

/// A backend with its requests checked: the [`Store`] every backend is
/// used as.
#[derive(Debug)]
pub struct Checked<B>(B);

impl<B: Backend> Checked<B> {
    /// Wraps a backend; backends call this from their constructors.
    pub fn new(backend: B) -> Self {
        Checked(backend)
    }

    /// The backend, for what it offers beyond storing (its file, its
    /// database).
    pub fn backend(&self) -> &B {
        &self.0
    }
}

#[async_trait]
impl<B: Backend> Store for Checked<B> {
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        check_collection(collection)?;
        check_document_id(id)?;
        self.0.get(domain, collection, id).await
    }

    async fn list(
        &self,
        domain: &str,
        collection: &str,
        filter: &Filter,
    ) -> Result<Vec<Document>, StoreError> {
        check_collection(collection)?;
        let mut scan = self.0.scan(domain, collection, filter).await?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut last: Option<Position> = None;
        // Dropping the scan once the page is full ends it in the backend.
        while let Some(Scanned { doc, value }) = scan.try_next().await? {
            let parsed = match value {
                Some(value) => Some(value),
                None if filter.clauses().is_empty() && filter.sort().is_none() => None,
                None => serde_json::from_str::<Value>(&doc.json).ok(),
            };
            let (matches, position) = match &parsed {
                Some(value) => (filter.matches(value), filter.position(&doc.id, value)),
                None => (
                    filter.clauses().is_empty(),
                    filter.position_json(&doc.id, &doc.json),
                ),
            };
            // The backend's order is checked, not trusted: a document
            // before the cursor or not after the last one kept (a
            // duplicate) is left out rather than answered twice.
            let in_order = filter.is_after_cursor(&position)
                && last
                    .as_ref()
                    .is_none_or(|l| filter.order(l, &position) == std::cmp::Ordering::Less);
            if matches && in_order {
                bytes = bytes.saturating_add(doc.json.len());
                if bytes > filter.max_bytes() {
                    return Err(StoreError::TooLarge(format!(
                        "the documents this list matches come to more than {} bytes; \
                         narrow the filter or lower its $limit",
                        filter.max_bytes()
                    )));
                }
                out.push(doc);
                last = Some(position);
                if out.len() >= filter.limit() {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn upsert(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let op = Op::put(domain, collection, id, json, expected_version)?;
        self.one(op).await
    }

    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        let op = Op::delete(domain, collection, id)?;
        Ok(self.one(op).await? > 0)
    }

    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError> {
        let op = Op::clear(domain, collection)?;
        self.one(op).await.map(|_| ())
    }

    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError> {
        self.0.commit(commit).await
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.0.processed(message_id).await
    }

    async fn unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        self.0.unsent(now_ms, lease_until_ms, limit).await
    }

    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError> {
        self.0.mark_sent(message_id).await
    }

    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.0.sweep(before_ms, limit).await
    }

    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError> {
        self.0.timer(id).await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError> {
        self.0.due_timers(now_ms, limit).await
    }

    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError> {
        self.0.pending_timers(domain).await
    }

    async fn ensure_index(
        &self,
        domain: &str,
        collection: &str,
        fields: &[String],
    ) -> Result<(), StoreError> {
        let paths = index_paths(collection, fields)?;
        self.0.ensure_index(domain, collection, &paths).await
    }
}

impl<B: Backend> Checked<B> {
    /// Commits one op on its own; its outcome.
    async fn one(&self, op: Op) -> Result<u64, StoreError> {
        let commit = Commit {
            ops: vec![op],
            marker: None,
        };
        match self.0.commit(&commit).await? {
            Committed::Applied(outcomes) => Ok(outcomes.first().copied().unwrap_or(0)),
            // Only a marker can be a duplicate, and there is none.
            Committed::Duplicate(_) => Err(StoreError::Unavailable(
                "the store answered a bare write as a duplicate".to_owned(),
            )),
        }
    }
}

/// A scan read page by page, for backends that can fetch "the next `n`
/// documents after position `after`" (`None`: from the start) in the
/// filter's order, stopping a page early once it holds `max_bytes` of JSON
/// (it always holds at least one document). No lock or cursor is held
/// between pages; a page shorter than asked for, in both count and bytes,
/// ends the scan. The first page starts after the filter's `$after`.
///
/// `narrowed`: the backend's pages hold (nearly) only matching documents,
/// so the first page need be no larger than the limit; otherwise, with
/// conditions, pages are [`SCAN_PAGE`] documents.
pub fn paged<'a, F, Fut>(filter: &'a Filter, narrowed: bool, mut next: F) -> Scan<'a>
where
    F: FnMut(Option<Position>, usize, usize) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Vec<Scanned>, StoreError>> + Send + 'a,
{
    let page = if narrowed || filter.clauses().is_empty() {
        filter.limit().clamp(1, SCAN_PAGE)
    } else {
        SCAN_PAGE
    };
    let max_bytes = filter.max_bytes().min(SCAN_PAGE_BYTES);
    // State: the position to continue after, or `None` once the last page
    // is read.
    let start = Some(filter.after().cloned());
    let pages = stream::try_unfold(start, move |after: Option<Option<Position>>| {
        let fetch = after.map(|after| next(after, page, max_bytes));
        async move {
            let Some(fetch) = fetch else {
                return Ok::<_, StoreError>(None);
            };
            let docs = fetch.await?;
            let bytes: usize = docs.iter().map(|d| d.doc.json.len()).sum();
            let full = docs.len() >= page || bytes >= max_bytes;
            let more = full.then(|| {
                docs.last().map(|d| match &d.value {
                    Some(value) => filter.position(&d.doc.id, value),
                    None => filter.position_json(&d.doc.id, &d.doc.json),
                })
            });
            Ok(Some((docs, more)))
        }
    });
    pages
        .map_ok(|docs| stream::iter(docs.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::super::{MemoryStore, Store};
    use super::*;

    fn f(text: &str) -> Filter {
        match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[tokio::test]
    async fn list_reads_past_one_page() {
        let store = MemoryStore::new();
        let n = SCAN_PAGE * 2 + 3;
        for i in 0..n {
            let json = format!(r#"{{"even":{}}}"#, i % 2 == 0);
            let id = format!("{i:04}");
            assert_eq!(store.upsert("d", "c", &id, &json, None).await, Ok(1));
        }
        let ids = |docs: Vec<Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
        let all = ids(store
            .list("d", "c", &Filter::all())
            .await
            .unwrap_or_default());
        let expected: Vec<String> = (0..n).map(|i| format!("{i:04}")).collect();
        assert_eq!(all, expected);
        let even = ids(store
            .list("d", "c", &f(r#"{"even":true,"$limit":200}"#))
            .await
            .unwrap_or_default());
        assert_eq!(even.len(), 200);
        assert_eq!(even.last().map(String::as_str), Some("0398"));
        let two = store.list("d", "c", &f(r#"{"$limit":2}"#)).await;
        assert_eq!(two.map(ids), Ok(vec!["0000".to_owned(), "0001".to_owned()]));
    }
}
