//! Indexes a component declares in its manifest: made by the host when it
//! loads the component (from a folder or hot), once however often it
//! loads, in SQLite and MongoDB; a bad declaration is a load error.

use std::path::Path;
use std::sync::Arc;

use crate::common::{self, call, cmd, handlers_dir, mongo, test_limits};
use parallel_you_core::Store;
use parallel_you_host::store::SqliteStore;
use parallel_you_host::{Host, HostConfig, HotLoader, HotOutcome};

fn host(store: Arc<dyn Store>) -> Arc<Host> {
    let config = HostConfig {
        limits: test_limits(),
        ..Default::default()
    };
    Arc::new(Host::new(config, store).expect("host starts"))
}

/// The JSON paths each expression index of `documents` covers, in column
/// order (`'$."a"'` for field `a`), by index name.
fn sqlite_indexes(file: &Path) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(file).unwrap();
    let mut st = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents' AND sql IS NOT NULL ORDER BY name")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    rows.map(|r| {
        let (name, sql) = r.unwrap();
        // Each field appears in two expressions (its rank and its key).
        let mut paths: Vec<String> = Vec::new();
        for piece in sql.split("'$.\"").skip(1) {
            let field = piece.split('"').next().unwrap_or_default().to_owned();
            if paths.last() != Some(&field) {
                paths.push(field);
            }
        }
        (name, paths)
    })
    .collect()
}

fn fields(indexes: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = indexes.iter().map(|(_, f)| f.clone()).collect();
    out.sort();
    out
}

fn owned(lists: &[&[&str]]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = lists
        .iter()
        .map(|l| l.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_indexes_are_made_in_sqlite_on_load_and_hot_load_once() {
    let data = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(data.path()).unwrap();
    let file = store.backend().path().to_owned();
    assert!(
        sqlite_indexes(&file).is_empty(),
        "{:?}",
        sqlite_indexes(&file)
    );
    let store: Arc<dyn Store> = Arc::new(store);

    // Hot: the thread handler comes online into a host serving nothing.
    let hot = host(store.clone());
    let folder = handlers_dir(&["thread"]);
    let outcome = HotLoader::new(hot.clone())
        .load_file(&folder.path().join("thread.wasm"))
        .await;
    assert!(matches!(outcome, HotOutcome::Loaded { .. }), "{outcome:?}");
    let thread = owned(&[
        &["saga_id"],
        &["sprint_id"],
        &["state", "archived"],
        &["kind", "archived"],
    ]);
    assert_eq!(fields(&sqlite_indexes(&file)), thread);

    // From a folder, with a reactor (effort) beside it, on the same file:
    // the thread domain's indexes are not made twice, effort's are added.
    let again = host(store.clone());
    let dir = handlers_dir(&["thread", "effort"]);
    again.load_dir(dir.path()).await.unwrap();
    assert!(
        again.registry().failures().is_empty(),
        "{:?}",
        again.registry().failures()
    );
    let mut all = thread.clone();
    all.extend(owned(&[&["thread_id"], &["day"]]));
    all.sort();
    assert_eq!(fields(&sqlite_indexes(&file)), all);

    // The handler serves over them.
    let events = call(&again, cmd("thread.list", r#"{"state":"ready","limit":5}"#)).await;
    assert_eq!(events[0].meta.routing_key, "thread.listed", "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_indexes_are_made_in_mongodb_on_load_once() {
    let Some(uri) = mongo::server_uri("declared_indexes_are_made_in_mongodb_on_load_once") else {
        return;
    };
    let store = Arc::new(mongo::fresh_store(&uri).await);
    let dir = handlers_dir(&["thread", "effort"]);
    for round in 0..2 {
        let host = host(store.clone());
        host.load_dir(dir.path()).await.unwrap();
        assert!(
            host.registry().failures().is_empty(),
            "round {round}: {:?}",
            host.registry().failures()
        );
        let mut names = store
            .backend()
            .index_names("thread", "threads")
            .await
            .unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "_id_",
                "by_kind_archived",
                "by_saga_id",
                "by_sprint_id",
                "by_state_archived",
                "pyou_text"
            ],
            "round {round}"
        );
        let mut runs = store.backend().index_names("effort", "runs").await.unwrap();
        runs.sort();
        assert_eq!(runs, ["_id_", "by_thread_id", "pyou_text"], "round {round}");
    }
    mongo::drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_index_declaration_is_a_load_error_naming_it() {
    let (host, _dir) = common::host_with(&["badindex", "noop"]).await;
    let registry = host.registry();
    let failures = registry.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].file.ends_with("badindex.wasm"),
        "{:?}",
        failures[0]
    );
    assert!(
        failures[0]
            .reason
            .contains("\"things\" needs 1 to 4 fields"),
        "{}",
        failures[0].reason
    );
    assert!(host.registry().route("badindex.ping").is_none());
    let events = call(&host, cmd("noop.ping", "{}")).await;
    assert_eq!(
        events[0].meta.routing_key, "noop.ponged",
        "the others serve"
    );
}
