//! An in-memory store: for tests and benchmarks; forgets everything on exit.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{next_version, paged, Backend, Checked, Document, Filter, Scan, StoreError};

type Collection = BTreeMap<String, Document>;

/// A store kept in memory, used as [`Checked<MemoryStore>`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    collections: RwLock<HashMap<(String, String), Collection>>,
    processed: RwLock<HashMap<String, Vec<String>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Checked<Self> {
        Checked::new(Self::default())
    }
}

fn key(domain: &str, collection: &str) -> (String, String) {
    (domain.to_owned(), collection.to_owned())
}

#[async_trait]
impl Backend for MemoryStore {
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        let all = self.collections.read();
        Ok(all
            .get(&key(domain, collection))
            .and_then(|c| c.get(id))
            .cloned())
    }

    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError> {
        let key = key(domain, collection);
        // Page by page, so no lock is held while `list` reads.
        Ok(paged(filter, move |after, n| {
            let all = self.collections.read();
            let page = all.get(&key).map_or_else(Vec::new, |docs| {
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                docs.range::<String, _>((from, Bound::Unbounded))
                    .take(n)
                    .map(|(_, d)| d.clone())
                    .collect()
            });
            std::future::ready(Ok(page))
        }))
    }

    async fn upsert(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut all = self.collections.write();
        let docs = all.entry(key(domain, collection)).or_default();
        let current = docs.get(id).map_or(0, |d| d.version);
        let version = next_version(current, expected_version)?;
        docs.insert(
            id.to_owned(),
            Document {
                id: id.to_owned(),
                version,
                json: json.to_owned(),
            },
        );
        Ok(version)
    }

    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        let mut all = self.collections.write();
        Ok(all
            .get_mut(&key(domain, collection))
            .and_then(|c| c.remove(id))
            .is_some())
    }

    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError> {
        self.collections.write().remove(&key(domain, collection));
        Ok(())
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.processed.read().get(message_id).cloned())
    }

    async fn record_processed(
        &self,
        message_id: &str,
        events: &[String],
    ) -> Result<(), StoreError> {
        self.processed
            .write()
            .entry(message_id.to_owned())
            .or_insert_with(|| events.to_vec());
        Ok(())
    }
}
