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

use super::{Document, Filter, Store, StoreError};
use crate::names::{check_collection, check_document_id};

/// Largest document, in bytes of JSON text.
pub const MAX_DOCUMENT_LEN: usize = 4 * 1024 * 1024;

/// Documents fetched per page by [`paged`] scans.
pub const SCAN_PAGE: usize = 256;

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

    /// The documents of a collection in id order: at least every one
    /// `filter` matches. The backend may use the filter to skip documents,
    /// never to drop one it matches; the caller applies the filter and its
    /// limit, and stops reading once the limit is reached.
    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError>;

    /// See [`Store::upsert`]; `json` is a checked JSON object in compact form.
    async fn upsert(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// See [`Store::delete`].
    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError>;

    /// See [`Store::clear`].
    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError>;

    /// See [`Store::processed`].
    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError>;

    /// See [`Store::record_processed`].
    async fn record_processed(&self, message_id: &str, events: &[String])
        -> Result<(), StoreError>;
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
        // Dropping the scan once the page is full ends it in the backend.
        while let Some(Scanned { doc, value }) = scan.try_next().await? {
            let matches = match &value {
                Some(value) => filter.matches(value),
                None => filter.matches_json(&doc.json),
            };
            if matches {
                out.push(doc);
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
        check_collection(collection)?;
        check_document_id(id)?;
        let json = check_json(json)?;
        self.0
            .upsert(domain, collection, id, &json, expected_version)
            .await
    }

    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        check_collection(collection)?;
        check_document_id(id)?;
        self.0.delete(domain, collection, id).await
    }

    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError> {
        check_collection(collection)?;
        self.0.clear(domain, collection).await
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.0.processed(message_id).await
    }

    async fn record_processed(
        &self,
        message_id: &str,
        events: &[String],
    ) -> Result<(), StoreError> {
        self.0.record_processed(message_id, events).await
    }
}

/// Checks a document body: a JSON object within the size limit. Returns it
/// in compact form.
fn check_json(json: &str) -> Result<String, StoreError> {
    if json.len() > MAX_DOCUMENT_LEN {
        return Err(StoreError::Invalid(format!(
            "document is {} bytes, over the limit of {MAX_DOCUMENT_LEN}",
            json.len()
        )));
    }
    let value: Value = serde_json::from_str(json)
        .map_err(|e| StoreError::Invalid(format!("document is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(StoreError::Invalid(
            "a document must be a JSON object".to_owned(),
        ));
    }
    Ok(value.to_string())
}

/// A scan read page by page, for backends that can fetch "the next `n`
/// documents after id `after`" (`None`: from the start) in id order. No
/// lock or cursor is held between pages; a page shorter than asked for
/// ends the scan. Without conditions the first page is only as large as
/// the limit, which is then all `list` reads.
pub fn paged<'a, F, Fut>(filter: &Filter, mut next: F) -> Scan<'a>
where
    F: FnMut(Option<String>, usize) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Vec<Document>, StoreError>> + Send + 'a,
{
    let page = if filter.conditions().is_empty() {
        filter.limit().clamp(1, SCAN_PAGE)
    } else {
        SCAN_PAGE
    };
    // State: the id to continue after, or `None` once the last page is read.
    let pages = stream::try_unfold(Some(None), move |after: Option<Option<String>>| {
        let fetch = after.map(|after| next(after, page));
        async move {
            let Some(fetch) = fetch else {
                return Ok::<_, StoreError>(None);
            };
            let docs = fetch.await?;
            let more = (docs.len() >= page).then(|| docs.last().map(|d| d.id.clone()));
            Ok(Some((docs, more)))
        }
    });
    pages
        .map_ok(|docs| stream::iter(docs.into_iter().map(|d| Ok(Scanned::from(d)))))
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
