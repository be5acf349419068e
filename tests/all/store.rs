//! The store conformance suite against every embedded store.

use std::sync::Arc;

use crate::common::{conformance, queries};
use parallel_you_core::store::{Commit, Committed, Marker, MemoryStore, Op, Store};
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
async fn memory_store_answers_queries() {
    queries::run(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn sqlite_store_answers_queries() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    queries::run(Arc::new(store)).await;
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

#[tokio::test]
async fn sqlite_opens_a_data_folder_of_the_old_schema() {
    // A file as hosts before the outbox left it: `processed` without the
    // lease and sent columns, a marker recorded by such a host.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let old = rusqlite::Connection::open(dir.path().join("pyou.sqlite3"))
            .unwrap_or_else(|e| panic!("{e}"));
        old.execute_batch(
            r#"CREATE TABLE processed (
                   message_id   TEXT PRIMARY KEY,
                   events       TEXT NOT NULL,
                   processed_ms INTEGER NOT NULL
               ) WITHOUT ROWID;
               INSERT INTO processed VALUES ('old', '["{}"]', 1);"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for _ in 0..2 {
        // Opened twice: bringing the schema up to date is idempotent.
        let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.processed("old").await,
            Ok(Some(vec!["{}".to_owned()]))
        );
        assert_eq!(
            store.unsent(u64::MAX, u64::MAX, 10).await,
            Ok(vec![]),
            "a marker of the old schema was published by its host: not the relay's"
        );
        let duplicate = Commit {
            ops: vec![Op::put("d", "c", "x", "{}", None).unwrap_or_else(|e| panic!("{e}"))],
            marker: Some(Marker {
                message_id: "old".to_owned(),
                events: Vec::new(),
                at_ms: 2,
                lease_until_ms: 2,
            }),
        };
        assert_eq!(
            store.commit(&duplicate).await,
            Ok(Committed::Duplicate(vec!["{}".to_owned()]))
        );
        assert_eq!(store.get("d", "c", "x").await, Ok(None));
    }
    let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.sweep(u64::MAX, 10).await,
        Ok(1),
        "old markers are swept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_marker_commits_once_across_two_connections() {
    // Two hosts on one file racing on one command: the marker decides.
    const ROUNDS: u64 = 50;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = Arc::new(SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let b = Arc::new(SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    for round in 0..ROUNDS {
        let commit = || Commit {
            // Unconditional, so only the marker can stop a second apply.
            ops: vec![
                Op::put("d", "c", "n", &format!(r#"{{"round":{round}}}"#), None)
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            marker: Some(Marker {
                message_id: format!("m{round}"),
                events: vec![format!(r#"{{"round":{round}}}"#)],
                at_ms: round,
                lease_until_ms: round,
            }),
        };
        let (ca, cb) = (commit(), commit());
        let (sa, sb) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { sa.commit(&ca).await });
        let tb = tokio::spawn(async move { sb.commit(&cb).await });
        let results = [ta.await.ok(), tb.await.ok()];
        let applied = results
            .iter()
            .filter(|r| matches!(r, Some(Ok(Committed::Applied(_)))))
            .count();
        let duplicate = results
            .iter()
            .filter(|r| matches!(r, Some(Ok(Committed::Duplicate(_)))))
            .count();
        assert_eq!(
            (applied, duplicate),
            (1, 1),
            "round {round}: one applies, the other is a duplicate: {results:?}"
        );
    }
    let doc = a.get("d", "c", "n").await.ok().flatten();
    assert_eq!(
        doc.map(|d| d.version),
        Some(ROUNDS),
        "the put applied exactly once per round"
    );
}
