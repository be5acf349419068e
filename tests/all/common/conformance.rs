//! The conformance suite every [`Store`] implementation must pass.
//!
//! Call [`run`] from a test with a fresh, empty store; it panics with a
//! message naming the broken rule.

use parallel_you_core::store::{
    Commit, Committed, Filter, Marker, Op, Store, StoreError, TimerRow,
};

fn filter(json: &str) -> Filter {
    Filter::parse(json).expect("test filter parses")
}

/// Runs every rule against `store`, which must start empty.
pub async fn run(store: &dyn Store) {
    versions_and_conflicts(store).await;
    get_missing_and_delete(store).await;
    list_filters_and_order(store).await;
    clear_one_collection(store).await;
    domain_isolation(store).await;
    invalid_requests(store).await;
    processed_markers(store).await;
    commits_are_atomic(store).await;
    outbox_rows(store).await;
    timers_indexed_by_due_time(store).await;
    list_byte_bound(store).await;
}

async fn versions_and_conflicts(s: &dyn Store) {
    let v1 = s.upsert("d", "c", "a", r#"{"n":1}"#, Some(0)).await;
    assert_eq!(v1, Ok(1), "create with expected version 0 gives version 1");
    assert_eq!(
        s.upsert("d", "c", "a", r#"{"n":2}"#, Some(0)).await,
        Err(StoreError::Conflict { current: 1 }),
        "create over an existing id is a conflict carrying the current version"
    );
    assert_eq!(s.upsert("d", "c", "a", r#"{"n":2}"#, Some(1)).await, Ok(2));
    assert_eq!(
        s.upsert("d", "c", "a", r#"{"n":3}"#, Some(1)).await,
        Err(StoreError::Conflict { current: 2 }),
        "a stale expected version is a conflict"
    );
    assert_eq!(
        s.upsert("d", "c", "zz", "{}", Some(4)).await,
        Err(StoreError::Conflict { current: 0 }),
        "expecting a version of a missing document is a conflict at 0"
    );
    assert_eq!(
        s.upsert("d", "c", "a", r#"{"n":3}"#, None).await,
        Ok(3),
        "no expected version writes unconditionally"
    );
    let doc = s
        .get("d", "c", "a")
        .await
        .unwrap()
        .expect("document a exists");
    assert_eq!(doc.version, 3);
    let body: serde_json::Value = serde_json::from_str(&doc.json).unwrap();
    assert_eq!(body, serde_json::json!({"n": 3}), "the last write wins");
    assert_eq!(s.upsert("d", "c", "b", "{}", None).await, Ok(1));
    s.clear("d", "c").await.unwrap();
}

async fn get_missing_and_delete(s: &dyn Store) {
    assert_eq!(s.get("d", "c", "nope").await, Ok(None));
    assert_eq!(s.delete("d", "c", "nope").await, Ok(false));
    s.upsert("d", "c", "x", "{}", None).await.unwrap();
    assert_eq!(s.delete("d", "c", "x").await, Ok(true));
    assert_eq!(s.get("d", "c", "x").await, Ok(None));
    assert_eq!(
        s.upsert("d", "c", "x", "{}", Some(0)).await,
        Ok(1),
        "a deleted id can be created again, starting over at version 1"
    );
    s.clear("d", "c").await.unwrap();
}

async fn list_filters_and_order(s: &dyn Store) {
    let docs = [
        (
            "t3",
            r#"{"kind":"story","state":"ready","title":"Write docs","tags":{"p":1},"due":300}"#,
        ),
        (
            "t1",
            r#"{"kind":"saga","state":"ready","title":"Ship v1","due":100}"#,
        ),
        (
            "t2",
            r#"{"kind":"story","state":"done","title":"Fix the README","archived":true,"due":200.5}"#,
        ),
    ];
    for (id, json) in docs {
        s.upsert("d", "threads", id, json, Some(0)).await.unwrap();
    }
    let ids = |v: Vec<parallel_you_core::store::Document>| {
        v.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    let all = s.list("d", "threads", &filter("{}")).await.unwrap();
    assert_eq!(ids(all), ["t1", "t2", "t3"], "list is ordered by id");
    let cases = [
        (r#"{"kind":"story"}"#, vec!["t2", "t3"]),
        (r#"{"kind":"story","state":"ready"}"#, vec!["t3"]),
        (r#"{"state":{"$ne":"done"}}"#, vec!["t1", "t3"]),
        (r#"{"state":{"$in":["done","parked"]}}"#, vec!["t2"]),
        (r#"{"archived":{"$exists":false}}"#, vec!["t1", "t3"]),
        (r#"{"archived":{"$ne":true}}"#, vec!["t1", "t3"]),
        (r#"{"title":{"$contains":"readme"}}"#, vec!["t2"]),
        (r#"{"tags.p":1}"#, vec!["t3"]),
        (r#"{"$limit":2}"#, vec!["t1", "t2"]),
        (r#"{"kind":"task"}"#, vec![]),
        (r#"{"due":{"$lte":200.5}}"#, vec!["t1", "t2"]),
        (r#"{"due":{"$lt":200.5}}"#, vec!["t1"]),
        (r#"{"due":{"$gt":100}}"#, vec!["t2", "t3"]),
        (r#"{"due":{"$gte":300},"kind":"story"}"#, vec!["t3"]),
        (r#"{"title":{"$gte":"X"}}"#, vec![]),
        (r#"{"title":{"$gte":"S"}}"#, vec!["t1", "t3"]),
    ];
    for (f, want) in cases {
        let got = ids(s.list("d", "threads", &filter(f)).await.unwrap());
        assert_eq!(got, want, "filter {f}");
    }
    assert_eq!(s.list("d", "empty", &filter("{}")).await, Ok(vec![]));
    s.clear("d", "threads").await.unwrap();
}

async fn clear_one_collection(s: &dyn Store) {
    s.upsert("d", "one", "a", "{}", None).await.unwrap();
    s.upsert("d", "two", "a", "{}", None).await.unwrap();
    s.clear("d", "one").await.unwrap();
    assert_eq!(s.get("d", "one", "a").await, Ok(None));
    assert!(
        s.get("d", "two", "a").await.unwrap().is_some(),
        "clear touches only its collection"
    );
    s.clear("d", "two").await.unwrap();
}

async fn domain_isolation(s: &dyn Store) {
    s.upsert("thread", "threads", "secret", r#"{"x":1}"#, None)
        .await
        .unwrap();
    assert_eq!(
        s.get("notes", "threads", "secret").await,
        Ok(None),
        "one domain cannot read another's document"
    );
    assert_eq!(
        s.list("notes", "threads", &filter("{}")).await,
        Ok(vec![]),
        "one domain cannot list another's documents"
    );
    assert_eq!(s.delete("notes", "threads", "secret").await, Ok(false));
    s.clear("notes", "threads").await.unwrap();
    assert_eq!(
        s.upsert("notes", "threads", "secret", "{}", Some(0)).await,
        Ok(1),
        "the same id in another domain is another document"
    );
    let theirs = s.get("thread", "threads", "secret").await.unwrap();
    assert_eq!(
        theirs.map(|d| (d.version, d.json)),
        Some((1, r#"{"x":1}"#.to_owned())),
        "another domain's writes and clears leave a document alone"
    );
    s.clear("thread", "threads").await.unwrap();
    s.clear("notes", "threads").await.unwrap();
}

async fn invalid_requests(s: &dyn Store) {
    let invalid = |r: Result<u64, StoreError>| matches!(r, Err(StoreError::Invalid(_)));
    assert!(invalid(s.upsert("d", "c", "a", "not json", None).await));
    assert!(
        invalid(s.upsert("d", "c", "a", "[1,2]", None).await),
        "documents are objects"
    );
    assert!(invalid(s.upsert("d", "bad name!", "a", "{}", None).await));
    assert!(invalid(s.upsert("d", "c", "", "{}", None).await));
    assert!(matches!(
        s.get("d", "", "a").await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.get("d", "c", "a").await,
        Ok(None),
        "refused writes store nothing"
    );
}

fn marker(id: &str, events: &[&str], at_ms: u64, lease_until_ms: u64) -> Marker {
    Marker {
        message_id: id.to_owned(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        at_ms,
        lease_until_ms,
    }
}

fn put(collection: &str, id: &str, json: &str, expected: Option<u64>) -> Op {
    Op::put("d", collection, id, json, expected).expect("test op is valid")
}

fn timer(id: &str, domain: &str, due_ms: u64) -> TimerRow {
    TimerRow {
        id: id.to_owned(),
        domain: domain.to_owned(),
        due_ms,
        json: format!(r#"{{"t":"{id}"}}"#),
    }
}

async fn body(s: &dyn Store, collection: &str, id: &str) -> Option<(u64, serde_json::Value)> {
    s.get("d", collection, id)
        .await
        .expect("get answers")
        .map(|d| {
            (
                d.version,
                serde_json::from_str(&d.json).expect("stored JSON"),
            )
        })
}

async fn processed_markers(s: &dyn Store) {
    assert_eq!(s.processed("m1").await, Ok(None));
    let first = Commit {
        ops: vec![put("m", "a", r#"{"n":1}"#, Some(0))],
        marker: Some(marker("m1", &[r#"{"e":1}"#, r#"{"e":2}"#], 1_000, 1_000)),
    };
    assert_eq!(s.commit(&first).await, Ok(Committed::Applied(vec![1])));
    let events = vec![r#"{"e":1}"#.to_owned(), r#"{"e":2}"#.to_owned()];
    assert_eq!(s.processed("m1").await, Ok(Some(events.clone())));
    let again = Commit {
        ops: vec![put("m", "a", r#"{"n":2}"#, None)],
        marker: Some(marker("m1", &[], 2_000, 2_000)),
    };
    assert_eq!(
        s.commit(&again).await,
        Ok(Committed::Duplicate(events.clone())),
        "a marker already recorded is a duplicate, with the first record's events"
    );
    assert_eq!(
        body(s, "m", "a").await,
        Some((1, serde_json::json!({"n": 1}))),
        "a duplicate commit applies none of its ops"
    );
    assert_eq!(s.processed("m1").await, Ok(Some(events)));
    s.mark_sent("m1").await.unwrap();
    s.clear("d", "m").await.unwrap();
}

async fn commits_are_atomic(s: &dyn Store) {
    let applied = s
        .commit(&Commit {
            ops: vec![
                put("u", "a", r#"{"n":1}"#, Some(0)),
                put("u", "a", r#"{"n":2}"#, Some(1)),
                put("u", "b", r#"{"n":1}"#, None),
                Op::delete("d", "u", "b").unwrap(),
                Op::delete("d", "u", "b").unwrap(),
            ],
            marker: Some(marker("u1", &["{}"], 1_000, 1_000)),
        })
        .await;
    assert_eq!(
        applied,
        Ok(Committed::Applied(vec![1, 2, 1, 1, 0])),
        "ops apply in order, each on what the ones before it left"
    );
    assert_eq!(
        body(s, "u", "a").await,
        Some((2, serde_json::json!({"n": 2})))
    );
    assert_eq!(body(s, "u", "b").await, None);
    let conflicted = s
        .commit(&Commit {
            ops: vec![
                put("u", "c", r#"{"n":1}"#, None),
                Op::schedule(timer("tu", "d", 5)),
                put("u", "a", r#"{"n":3}"#, Some(1)),
            ],
            marker: Some(marker("u2", &["{}"], 1_000, 1_000)),
        })
        .await;
    assert_eq!(
        conflicted,
        Err(StoreError::Conflict { current: 2 }),
        "a stale version anywhere is a conflict with the current version"
    );
    assert_eq!(
        body(s, "u", "c").await,
        None,
        "a conflict undoes the ops before it"
    );
    assert_eq!(
        s.timer("tu").await,
        Ok(None),
        "a conflict undoes the timers too"
    );
    assert_eq!(
        s.processed("u2").await,
        Ok(None),
        "a conflict records no marker"
    );
    s.mark_sent("u1").await.unwrap();
    let cleared = s
        .commit(&Commit {
            ops: vec![
                put("u", "x", "{}", None),
                Op::clear("d", "u").unwrap(),
                put("u", "y", r#"{"after":true}"#, Some(0)),
            ],
            marker: None,
        })
        .await;
    assert_eq!(cleared, Ok(Committed::Applied(vec![1, 2, 1])));
    let left: Vec<String> = s
        .list("d", "u", &Filter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        left,
        vec!["y".to_owned()],
        "a clear in a commit is ordered with its writes"
    );
    s.clear("d", "u").await.unwrap();
}

async fn outbox_rows(s: &dyn Store) {
    for (id, at) in [("o1", 10), ("o2", 20), ("o3", 30)] {
        let c = Commit {
            ops: vec![],
            marker: Some(marker(id, &[&format!(r#"{{"of":"{id}"}}"#)], at, at + 100)),
        };
        assert!(matches!(s.commit(&c).await, Ok(Committed::Applied(_))));
    }
    assert_eq!(
        s.unsent(50, 1_000, 10).await,
        Ok(vec![]),
        "no row is handed out while its committing host holds the lease"
    );
    s.mark_sent("o2").await.unwrap();
    let claimed = s.unsent(200, 1_000, 10).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|o| o.message_id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["o1", "o3"],
        "unsent rows, oldest first, sent ones skipped"
    );
    assert_eq!(claimed[0].events, vec![r#"{"of":"o1"}"#.to_owned()]);
    assert_eq!(
        s.unsent(500, 2_000, 10).await,
        Ok(vec![]),
        "a claimed row is leased to its relay"
    );
    let reclaimed = s.unsent(1_000, 2_000, 1).await.unwrap();
    assert_eq!(reclaimed.len(), 1, "the limit holds");
    assert_eq!(
        reclaimed[0].message_id, "o1",
        "a lapsed lease frees the row"
    );
    s.mark_sent("o1").await.unwrap();
    s.mark_sent("o3").await.unwrap();
    s.mark_sent("never-committed").await.unwrap();
    assert_eq!(s.unsent(10_000, 20_000, 10).await, Ok(vec![]));
    let unsent_old = Commit {
        ops: vec![],
        marker: Some(marker("o4", &["{}"], 5, 5)),
    };
    assert!(s.commit(&unsent_old).await.is_ok());
    assert_eq!(
        s.sweep(25, 100).await,
        Ok(2),
        "sent markers older than the cut go"
    );
    assert_eq!(s.processed("o1").await, Ok(None));
    assert_eq!(s.processed("o2").await, Ok(None));
    assert!(
        s.processed("o3").await.unwrap().is_some(),
        "newer ones stay"
    );
    assert!(
        s.processed("o4").await.unwrap().is_some(),
        "an unsent row is never swept"
    );
    let claimed = s.unsent(10_000, 20_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.mark_sent("o4").await.unwrap();
    assert_eq!(
        s.sweep(u64::MAX, 100).await,
        Ok(4),
        "o3, o4 and the markers of the rules before"
    );
}

async fn timers_indexed_by_due_time(s: &dyn Store) {
    let ops = vec![
        Op::schedule(timer("t3", "d", 300)),
        Op::schedule(timer("t1", "d", 100)),
        Op::schedule(timer("t2", "e", 200)),
        Op::schedule(timer("t4", "d", 400)),
    ];
    assert!(s.commit(&Commit { ops, marker: None }).await.is_ok());
    assert_eq!(s.pending_timers("d").await, Ok(3));
    assert_eq!(s.pending_timers("e").await, Ok(1));
    assert_eq!(s.pending_timers("nobody").await, Ok(0));
    let due: Vec<String> = s
        .due_timers(300, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(due, vec!["t1", "t2", "t3"], "due ones only, earliest first");
    assert_eq!(s.due_timers(300, 2).await.map(|t| t.len()), Ok(2));
    assert_eq!(s.timer("t2").await, Ok(Some(timer("t2", "e", 200))));
    let cancels = Commit {
        ops: vec![
            Op::cancel("d", "t2"),
            Op::cancel("e", "t2"),
            Op::cancel("d", "t9"),
        ],
        marker: None,
    };
    assert_eq!(
        s.commit(&cancels).await,
        Ok(Committed::Applied(vec![0, 1, 0])),
        "only the scheduling domain cancels a timer"
    );
    assert_eq!(s.timer("t2").await, Ok(None));
    let rest = Commit {
        ops: vec![
            Op::cancel("d", "t1"),
            Op::cancel("d", "t3"),
            Op::cancel("d", "t4"),
        ],
        marker: None,
    };
    assert_eq!(s.commit(&rest).await, Ok(Committed::Applied(vec![1, 1, 1])));
    assert_eq!(s.due_timers(u64::MAX, 10).await, Ok(vec![]));
    assert_eq!(s.pending_timers("d").await, Ok(0));
}

async fn list_byte_bound(s: &dyn Store) {
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
    for i in 0..20 {
        s.upsert("d", "big", &format!("{i:02}"), &big, None)
            .await
            .unwrap();
    }
    let ten = Filter::all().with_max_bytes(big.len() * 10);
    let r = s.list("d", "big", &ten).await;
    assert!(
        matches!(r, Err(StoreError::TooLarge(_))),
        "a list matching more bytes than its bound fails: {r:?}"
    );
    let limited = filter(r#"{"$limit":10}"#).with_max_bytes(big.len() * 10);
    assert_eq!(s.list("d", "big", &limited).await.map(|d| d.len()), Ok(10));
    let all = Filter::all().with_max_bytes(big.len() * 20);
    assert_eq!(s.list("d", "big", &all).await.map(|d| d.len()), Ok(20));
    s.clear("d", "big").await.unwrap();
}
