//! The conformance suite every [`Store`] implementation must pass.
//!
//! Call [`run`] from a test with a fresh, empty store; it panics with a
//! message naming the broken rule.

use parallel_you_core::store::{Filter, Store, StoreError};

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

async fn processed_markers(s: &dyn Store) {
    assert_eq!(s.processed("m1").await, Ok(None));
    let events = vec![r#"{"e":1}"#.to_owned(), r#"{"e":2}"#.to_owned()];
    s.record_processed("m1", &events).await.unwrap();
    assert_eq!(s.processed("m1").await, Ok(Some(events.clone())));
    s.record_processed("m1", &[]).await.unwrap();
    assert_eq!(
        s.processed("m1").await,
        Ok(Some(events)),
        "the first record of a command stands"
    );
}
