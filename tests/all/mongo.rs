//! The MongoDB store against a real wire-protocol server (see
//! `tests/common/mongo.rs` for where the server comes from): the shared
//! conformance suite, concurrency done by the server, filters answering
//! like the embedded store, outages and restarts, a crash before a
//! command's commit, two hosts racing to commit one command, and `pyou`
//! processes sharing one database.

use crate::common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{conformance, queries};
use common::faulty::Faulty;
use common::mongo::{drop_db, fresh_db, fresh_store, server_uri, uri_with_db, OwnServer};
use common::{call, cmd, handlers_dir, host_with_store, last_error};
use parallel_you_core::store::{
    Commit, Committed, Document, Filter, Marker, MemoryStore, Op, Store, StoreError,
};
use parallel_you_host::host::record_id;
use parallel_you_host::store::MongoStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_conforms() {
    let Some(uri) = server_uri("mongo_store_conforms") else {
        return;
    };
    let store = fresh_store(&uri).await;
    conformance::run(&store).await;
    drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_answers_queries() {
    let Some(uri) = server_uri("mongo_store_answers_queries") else {
        return;
    };
    let store = Arc::new(fresh_store(&uri).await);
    queries::run(store.clone()).await;
    drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_versioned_writes_exactly_one_wins() {
    let Some(uri) = server_uri("concurrent_versioned_writes_exactly_one_wins") else {
        return;
    };
    // Two clients with their own connections stand in for two hosts.
    let db = fresh_db();
    let a = MongoStore::connect(&uri, Some(&db)).await.unwrap();
    let b = MongoStore::connect(&uri, Some(&db)).await.unwrap();
    for round in 0..20_u64 {
        let id = format!("doc-{round}");
        // Creating: the unique `_id` lets exactly one insert through.
        let (ra, rb) = tokio::join!(
            a.upsert("d", "c", &id, r#"{"by":"a"}"#, Some(0)),
            b.upsert("d", "c", &id, r#"{"by":"b"}"#, Some(0)),
        );
        let mut results = [ra, rb];
        results.sort_by_key(Result::is_err);
        assert_eq!(
            results,
            [Ok(1), Err(StoreError::Conflict { current: 1 })],
            "round {round}: two creates of one id"
        );
        // Replacing one version: the `{_id, version}` filter lets one through.
        let (ra, rb) = tokio::join!(
            a.upsert("d", "c", &id, r#"{"by":"a"}"#, Some(1)),
            b.upsert("d", "c", &id, r#"{"by":"b"}"#, Some(1)),
        );
        let winner = if ra.is_ok() { "a" } else { "b" };
        let mut results = [ra, rb];
        results.sort_by_key(Result::is_err);
        assert_eq!(
            results,
            [Ok(2), Err(StoreError::Conflict { current: 2 })],
            "round {round}: two writes of version 1"
        );
        let doc = a.get("d", "c", &id).await.unwrap().unwrap();
        assert_eq!(
            doc.json,
            format!(r#"{{"by":"{winner}"}}"#),
            "the winner's write is stored"
        );
    }
    drop_db(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unconditional_writes_each_get_a_version() {
    let Some(uri) = server_uri("concurrent_unconditional_writes_each_get_a_version") else {
        return;
    };
    let db = fresh_db();
    let a = Arc::new(MongoStore::connect(&uri, Some(&db)).await.unwrap());
    let b = Arc::new(MongoStore::connect(&uri, Some(&db)).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .upsert("d", "c", "hot", &format!(r#"{{"i":{i}}}"#), None)
                .await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=20).collect::<Vec<u64>>(),
        "no two writes share a version"
    );
    drop_db(&a).await;
}

/// Documents that MongoDB's own query rules would treat differently from
/// the store's filter language, and the filters that tell them apart.
const TRICKY_DOCS: &[(&str, &str)] = &[
    (
        "a",
        r#"{"n":1,"s":"Kelvin \u212a","tags":["x","y"],"o":{"p":1,"q":2}}"#,
    ),
    (
        "b",
        r#"{"n":1.0,"s":"\u0130stanbul","tags":"x","o":{"q":2,"p":1}}"#,
    ),
    ("c", r#"{"n":null,"s":"plain","arr":[{"p":1},{"p":2}]}"#),
    ("d", r#"{"s":"MiXeD case","n":9007199254740993}"#),
    ("e", r#"{"n":18446744073709551615,"s":"too big for BSON"}"#),
    ("f", r#"{"$odd":"key","n":2,"s":"text body"}"#),
    ("g", r#"{"n":[1,2],"s":["kelvin"],"tags":[]}"#),
    ("h", r#"{"n":-0.0,"s":"","nested":{"deep":{"x":true}}}"#),
];

const TRICKY_FILTERS: &[&str] = &[
    "{}",
    r#"{"n":1}"#,
    r#"{"n":1.0}"#,
    r#"{"n":null}"#,
    r#"{"n":{"$ne":1}}"#,
    r#"{"n":{"$ne":null}}"#,
    r#"{"n":{"$in":[1,2,null]}}"#,
    r#"{"n":{"$exists":false}}"#,
    r#"{"n":{"$exists":true}}"#,
    r#"{"n":{"$gt":0}}"#,
    r#"{"n":{"$lte":1}}"#,
    r#"{"n":{"$gte":9007199254740992}}"#,
    r#"{"n":{"$lt":0.5}}"#,
    r#"{"n":[1,2]}"#,
    r#"{"tags":"x"}"#,
    r#"{"tags":{"$ne":"x"}}"#,
    r#"{"tags":{"$in":["y"]}}"#,
    r#"{"tags":[]}"#,
    r#"{"o":{"p":1,"q":2}}"#,
    r#"{"o.p":1}"#,
    r#"{"arr.p":1}"#,
    r#"{"arr.p":{"$exists":false}}"#,
    r#"{"arr.0.p":1}"#,
    r#"{"s":{"$contains":"k"}}"#,
    r#"{"s":{"$contains":"KELVIN"}}"#,
    r#"{"s":{"$contains":"i"}}"#,
    r#"{"s":{"$contains":"is"}}"#,
    r#"{"s":{"$contains":"stanbul"}}"#,
    r#"{"s":{"$contains":""}}"#,
    r#"{"s":{"$contains":"e c"}}"#,
    r#"{"s":{"$contains":"."}}"#,
    r#"{"s":{"$gte":"M"}}"#,
    r#"{"s":{"$lt":"p"}}"#,
    r#"{"s":{"$gt":1}}"#,
    r#"{"nested.deep.x":true}"#,
    r#"{"nested.deep":{"$exists":true}}"#,
    r#"{"$odd":{"$exists":true}}"#,
    r#"{"n":{"$gte":1},"$limit":2}"#,
    r#"{"s":{"$ne":"plain"},"$limit":3}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_answer_like_the_embedded_store() {
    let Some(uri) = server_uri("filters_answer_like_the_embedded_store") else {
        return;
    };
    let mongo = fresh_store(&uri).await;
    let memory = MemoryStore::new();
    for (id, json) in TRICKY_DOCS {
        assert_eq!(
            mongo.upsert("d", "c", id, json, Some(0)).await,
            Ok(1),
            "{id}"
        );
        memory.upsert("d", "c", id, json, Some(0)).await.unwrap();
        let stored = mongo.get("d", "c", id).await.unwrap().unwrap();
        let want = memory.get("d", "c", id).await.unwrap().unwrap();
        let parse = |d: &Document| serde_json::from_str::<serde_json::Value>(&d.json).unwrap();
        assert_eq!(parse(&stored), parse(&want), "{id} reads back as written");
    }
    for text in TRICKY_FILTERS {
        // `$ne` on a missing `$odd` key and the like are refused the same way
        // by both: the filter is parsed once, before either store sees it.
        let Ok(filter) = Filter::parse(text) else {
            continue;
        };
        let ids = |docs: Vec<Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
        let got = ids(mongo.list("d", "c", &filter).await.unwrap());
        let want = ids(memory.list("d", "c", &filter).await.unwrap());
        assert_eq!(got, want, "filter {text}");
    }
    drop_db(&mongo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_past_one_batch_and_stops_at_the_limit() {
    let Some(uri) = server_uri("list_pages_past_one_batch_and_stops_at_the_limit") else {
        return;
    };
    let store = fresh_store(&uri).await;
    for i in 0..600 {
        let json = format!(r#"{{"i":{i},"even":{}}}"#, i % 2 == 0);
        store
            .upsert("d", "c", &format!("k{i:04}"), &json, None)
            .await
            .unwrap();
    }
    let list = |f: &str| {
        let filter = Filter::parse(f).unwrap();
        let store = &store;
        async move { store.list("d", "c", &filter).await.unwrap() }
    };
    assert_eq!(list("{}").await.len(), 600);
    let odd = list(r#"{"even":{"$ne":true}}"#).await;
    assert_eq!(odd.len(), 300, "a condition left to the store's own check");
    assert_eq!(odd.last().map(|d| d.id.as_str()), Some("k0599"));
    let some = list(r#"{"i":{"$gte":100},"$limit":250}"#).await;
    assert_eq!(some.len(), 250);
    assert_eq!(some[0].id, "k0100");
    drop_db(&store).await;
}

/// Waits (bounded) until the store answers again.
async fn until_available(store: &dyn Store) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        match store.get("d", "c", "probe").await {
            Err(StoreError::Unavailable(_)) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_unavailable_and_the_store_reconnects_after_a_restart() {
    let Some(mut server) =
        OwnServer::start("outage_is_unavailable_and_the_store_reconnects_after_a_restart")
    else {
        return;
    };
    let store = Arc::new(
        MongoStore::connect(&server.uri(), Some("restart"))
            .await
            .unwrap(),
    );
    let (host, _handlers) = host_with_store(&["counter"], store.clone()).await;
    let first = call(&host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    assert_eq!(last_error(&first), None, "{first:?}");
    store
        .upsert("d", "c", "kept", r#"{"v":1}"#, Some(0))
        .await
        .unwrap();

    server.stop();
    let started = Instant::now();
    let down = store.get("d", "c", "kept").await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an outage fails fast, not after the driver's 30 s default"
    );
    assert!(matches!(
        store.upsert("d", "c", "kept", "{}", Some(1)).await,
        Err(StoreError::Unavailable(_))
    ));
    // A command meanwhile: an `unavailable` error event, and not recorded
    // as processed, so its redelivery runs it.
    let during = cmd("counter.increment", r#"{"name":"n"}"#);
    let events = call(&host, during.clone()).await;
    assert_eq!(
        last_error(&events).as_deref(),
        Some("unavailable"),
        "{events:?}"
    );

    server.run();
    until_available(store.as_ref()).await.unwrap();
    let doc = store.get("d", "c", "kept").await.unwrap();
    assert_eq!(
        doc.map(|d| (d.version, d.json)),
        Some((1, r#"{"v":1}"#.to_owned())),
        "documents survive the server's restart"
    );
    let again = call(&host, during).await;
    assert_eq!(
        last_error(&again),
        None,
        "the redelivered command runs: {again:?}"
    );
    let value = call(&host, cmd("counter.get", r#"{"name":"n"}"#)).await;
    assert_eq!(common::body(&value[0])["value"], 2);
    drop_db(&store).await;
    server.stop();
}

fn texts(events: &[parallel_you_core::Envelope]) -> Vec<String> {
    events
        .iter()
        .map(parallel_you_core::Envelope::to_json)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_to_another_host_neither_loses_nor_repeats_a_recorded_command() {
    let Some(uri) =
        server_uri("redelivery_to_another_host_neither_loses_nor_repeats_a_recorded_command")
    else {
        return;
    };
    let db = fresh_db();
    let a: Arc<dyn Store> = Arc::new(MongoStore::connect(&uri, Some(&db)).await.unwrap());
    let b = Arc::new(MongoStore::connect(&uri, Some(&db)).await.unwrap());
    let (host_a, _ha) = host_with_store(&["counter"], a.clone()).await;
    let (host_b, _hb) = host_with_store(&["counter"], b.clone()).await;
    let value = |host: Arc<parallel_you_host::Host>| async move {
        let ev = call(&host, cmd("counter.get", r#"{"name":"once"}"#)).await;
        common::body(&ev[0])["value"].clone()
    };

    // Processed by A, redelivered to B: B republishes A's events.
    let command = cmd("counter.increment", r#"{"name":"once"}"#);
    let first = call(&host_a, command.clone()).await;
    let second = call(&host_b, command).await;
    assert_eq!(last_error(&first), None, "{first:?}");
    assert_eq!(
        texts(&first),
        texts(&second),
        "the second host republishes the recorded events"
    );
    assert_eq!(value(host_b.clone()).await, 1, "applied once");

    // The crash window: A ran the command and died before its commit.
    // Writes and marker are one transaction, so nothing of it is kept.
    // (A store whose marked commits never reach the server.)
    let crashed = Faulty::new(a.clone());
    crashed.fail_next(usize::MAX);
    let (host_crash, _hc) = host_with_store(&["counter"], crashed).await;
    let command = cmd("counter.increment", r#"{"name":"once"}"#);
    let lost = call(&host_crash, command.clone()).await;
    assert_eq!(
        last_error(&lost).as_deref(),
        Some("unavailable"),
        "{lost:?}"
    );
    assert_eq!(
        value(host_b.clone()).await,
        1,
        "a command whose commit failed leaves nothing"
    );
    assert_eq!(
        b.processed(&record_id(&command.meta, false)).await,
        Ok(None)
    );
    // Redelivered to B: applied exactly once.
    let redelivered = call(&host_b, command.clone()).await;
    assert_eq!(last_error(&redelivered), None, "{redelivered:?}");
    assert_eq!(
        value(host_b.clone()).await,
        2,
        "exactly once: the redelivered command is applied once"
    );
    let replay = call(&host_a, command).await;
    assert_eq!(
        texts(&replay),
        texts(&redelivered),
        "a replay on A republishes B's recorded events"
    );
    assert_eq!(value(host_b.clone()).await, 2, "the replay applies nothing");
    drop_db(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commits_of_one_marker_apply_once() {
    let Some(uri) = server_uri("racing_commits_of_one_marker_apply_once") else {
        return;
    };
    // Two clients with their own connections stand in for two hosts that
    // both ran one command.
    let db = fresh_db();
    let a = Arc::new(MongoStore::connect(&uri, Some(&db)).await.unwrap());
    let b = Arc::new(MongoStore::connect(&uri, Some(&db)).await.unwrap());
    for round in 0..30_u64 {
        let event = format!(r#"{{"round":{round}}}"#);
        let commit = Commit {
            ops: vec![
                Op::put("d", "c", "hot", &event, None).unwrap(),
                Op::put("d", "c", &format!("r{round}"), "{}", Some(0)).unwrap(),
            ],
            marker: Some(Marker {
                message_id: format!("race-{round}"),
                events: vec![event.clone()],
                at_ms: round,
                lease_until_ms: round,
            }),
        };
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [a.clone(), b.clone()].map(|store| {
            let (commit, start) = (commit.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.commit(&commit).await
            })
        });
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results.sort_by_key(|r| !matches!(r, Ok(Committed::Applied(_))));
        assert_eq!(
            results,
            [
                Ok(Committed::Applied(vec![round + 1, 1])),
                Ok(Committed::Duplicate(vec![event])),
            ],
            "round {round}: one commit applies, the other is a duplicate"
        );
    }
    let hot = a.get("d", "c", "hot").await.unwrap().unwrap();
    assert_eq!(hot.version, 30, "each round's put applied once");
    drop_db(&a).await;
}

fn pyou(handlers: &Path, args: &[&str], envs: &[(&str, &str)], stdin: &str) -> std::process::Child {
    let mut child = common::pyou()
        .args(args)
        .arg("--handlers")
        .arg(handlers)
        .envs(envs.iter().copied())
        .env_remove("PYOU_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("pyou runs: {e}"));
    if let Some(mut input) = child.stdin.take() {
        std::io::Write::write_all(&mut input, stdin.as_bytes()).unwrap();
    }
    child
}

fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pyou_processes_race_on_one_document() {
    let Some(uri) = server_uri("two_pyou_processes_race_on_one_document") else {
        return;
    };
    let db = fresh_db();
    let db_uri = uri_with_db(&uri, &db);
    let handlers = handlers_dir(&["counter"]);
    let h = handlers.path();
    let store = MongoStore::connect(&uri, Some(&db)).await.unwrap();
    store
        .upsert("counter", "counters", "race", r#"{"value":10}"#, Some(0))
        .await
        .unwrap();
    let no_data = tempfile::tempdir().unwrap();
    let data = no_data.path().to_str().unwrap();
    let increment = r#"{"name":"race","by":1,"expected_version":1}"#;
    // One process selects the store by flag, the other by environment.
    let by_flag = pyou(
        h,
        &[
            "invoke",
            "--data",
            data,
            "--store",
            &db_uri,
            "counter.increment",
            "-",
        ],
        &[],
        increment,
    );
    let by_env = pyou(
        h,
        &["invoke", "--data", data, "counter.increment", "-"],
        &[("PARALLEL_YOU_REPO", "mongo"), ("MONGO_URI", &db_uri)],
        increment,
    );
    let outs = [by_flag, by_env].map(|c| c.wait_with_output().unwrap());
    let mut codes: Vec<String> = outs
        .iter()
        .map(|o| {
            let ev = events(o);
            assert_eq!(ev.len(), 1, "{}", String::from_utf8_lossy(&o.stderr));
            ev[0]["meta"]["routing_key"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
                + ":"
                + ev[0]["body"]["code"].as_str().unwrap_or("ok")
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["counter.error:conflict", "counter.incremented:ok"],
        "exactly one of two racing writers wins"
    );
    let doc = store
        .get("counter", "counters", "race")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((doc.version, doc.json.as_str()), (2, r#"{"value":11}"#));
    // The folder may hold the compile cache (`<data>/cache`), never the
    // embedded store.
    assert!(
        !no_data.path().join("pyou.sqlite3").exists(),
        "the embedded store was not touched"
    );

    let bad = pyou(
        h,
        &["invoke", "--store", "nosuch://x", "counter.get", "{}"],
        &[],
        "",
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--store"));
    drop_db(&store).await;
}
