//! An in-memory store: for tests and benchmarks; forgets everything on exit.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{
    check_collection, check_id, check_json, next_version, Document, Filter, Store, StoreError,
};

type Collection = BTreeMap<String, Document>;

/// A store kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    collections: RwLock<HashMap<(String, String), Collection>>,
    processed: RwLock<HashMap<String, Vec<String>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn key(domain: &str, collection: &str) -> (String, String) {
    (domain.to_owned(), collection.to_owned())
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        check_collection(collection)?;
        check_id(id)?;
        let all = self.collections.read();
        Ok(all
            .get(&key(domain, collection))
            .and_then(|c| c.get(id))
            .cloned())
    }

    async fn list(
        &self,
        domain: &str,
        collection: &str,
        filter: &Filter,
    ) -> Result<Vec<Document>, StoreError> {
        check_collection(collection)?;
        let all = self.collections.read();
        let Some(docs) = all.get(&key(domain, collection)) else {
            return Ok(Vec::new());
        };
        Ok(docs
            .values()
            .filter(|d| filter.matches_json(&d.json))
            .take(filter.limit())
            .cloned()
            .collect())
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
        check_id(id)?;
        let json = check_json(json)?;
        let mut all = self.collections.write();
        let docs = all.entry(key(domain, collection)).or_default();
        let current = docs.get(id).map_or(0, |d| d.version);
        let version = next_version(current, expected_version)?;
        docs.insert(
            id.to_owned(),
            Document {
                id: id.to_owned(),
                version,
                json,
            },
        );
        Ok(version)
    }

    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        check_collection(collection)?;
        check_id(id)?;
        let mut all = self.collections.write();
        Ok(all
            .get_mut(&key(domain, collection))
            .and_then(|c| c.remove(id))
            .is_some())
    }

    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError> {
        check_collection(collection)?;
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
