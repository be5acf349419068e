//! The store conformance suite against every embedded store.

use crate::common::conformance;
use parallel_you_core::store::{Commit, Marker, MemoryStore, Store};
use parallel_you_host::store::SqliteStore;

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    conformance::run(&store).await;
}

#[tokio::test]
async fn sqlite_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        store
            .upsert("d", "c", "a", r#"{"kept":true}"#, Some(0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let marker = Marker {
            message_id: "m1".to_owned(),
            events: vec!["{}".to_owned()],
            at_ms: 1,
            lease_until_ms: 1,
        };
        let commit = Commit {
            ops: Vec::new(),
            marker: Some(marker),
        };
        store
            .commit(&commit)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let doc = store.get("d", "c", "a").await.ok().flatten();
    assert_eq!(
        doc.map(|d| (d.version, d.json)),
        Some((1, r#"{"kept":true}"#.to_owned()))
    );
    assert_eq!(store.processed("m1").await, Ok(Some(vec!["{}".to_owned()])));
}

#[tokio::test]
async fn sqlite_versions_hold_across_two_connections() {
    // Two processes share one file in practice: two connections stand in.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let b = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.upsert("d", "c", "x", "{}", Some(0)).await, Ok(1));
    assert_eq!(
        b.upsert("d", "c", "x", "{}", Some(0)).await,
        Err(parallel_you_core::store::StoreError::Conflict { current: 1 })
    );
}
