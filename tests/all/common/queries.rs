//! The query part of the store conformance suite: every filter operator,
//! `$or`, `$sort` both ways over fields of every type, and `$after` paging
//! to the end, on the store directly and through a unit of work holding
//! writes of its own.
//!
//! The oracle is the filter's own definition ([`Filter::matches`] and
//! [`Filter::order`] over every document), checked itself against literal
//! answers for a few cases; each store must answer exactly the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use parallel_you_core::store::filter::field;
use parallel_you_core::store::{Document, Filter, Store, UnitLimits, UnitOfWork};
use serde_json::{json, Value};

const COLLECTION: &str = "q";

fn filter(json: &str) -> Filter {
    Filter::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Documents whose `v`, `a.b` and `s` are of every type the order knows,
/// with equal keys to break by id.
fn dataset() -> Vec<(String, Value)> {
    let vs = [
        json!(null),
        json!(3),
        json!(3.0),
        json!(-1.5),
        json!(10),
        json!(9007199254740993_i64),
        json!(9007199254740992.0),
        json!("apple"),
        json!("Apple"),
        json!("banana"),
        json!("\u{212A}elvin"),
        json!("é"),
        json!(""),
        json!(true),
        json!(false),
        json!([1, 2]),
        json!([]),
        json!({"x": 1}),
        json!({}),
        json!(3),
        json!("apple"),
    ];
    let mut docs = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        let mut doc = json!({"v": v, "n": i, "even": i % 2 == 0});
        match i % 4 {
            0 => doc["a"] = json!({"b": i % 3}),
            1 => doc["a"] = json!([{"b": 1}]),
            2 => doc["a"] = json!({"b": format!("s{}", i % 5)}),
            _ => {}
        }
        if i % 5 == 0 {
            doc["s"] = json!("Kite");
        }
        docs.push((format!("d{i:02}"), doc));
    }
    // Missing fields, in several ids.
    for i in 0..3 {
        docs.push((format!("m{i}"), json!({"n": 100 + i, "even": true})));
    }
    // A number past i64 (kept as text by MongoDB) with a sortable `v`.
    docs.push((
        "t0".to_owned(),
        json!({"v": 4, "big": 18446744073709551615_u64, "n": 200}),
    ));
    docs
}

const FILTERS: &[&str] = &[
    "{}",
    r#"{"v":3}"#,
    r#"{"v":3.0}"#,
    r#"{"v":"apple"}"#,
    r#"{"v":true}"#,
    r#"{"v":null}"#,
    r#"{"v":[1,2]}"#,
    r#"{"v":{"x":1}}"#,
    r#"{"v":{"$eq":{}}}"#,
    r#"{"v":{"$ne":3}}"#,
    r#"{"v":{"$ne":"apple"}}"#,
    r#"{"v":{"$ne":false}}"#,
    r#"{"v":{"$ne":null}}"#,
    r#"{"v":{"$in":[3,"banana",false,null]}}"#,
    r#"{"v":{"$in":[]}}"#,
    r#"{"v":{"$exists":true}}"#,
    r#"{"v":{"$exists":false}}"#,
    r#"{"a.b":{"$exists":true}}"#,
    r#"{"a.b":{"$exists":false}}"#,
    r#"{"v":{"$contains":"PP"}}"#,
    r#"{"v":{"$contains":"kel"}}"#,
    r#"{"v":{"$contains":"É"}}"#,
    r#"{"v":{"$contains":""}}"#,
    r#"{"s":{"$contains":"kit"}}"#,
    r#"{"v":{"$lt":3}}"#,
    r#"{"v":{"$lte":3}}"#,
    r#"{"v":{"$gt":3}}"#,
    r#"{"v":{"$gte":9007199254740992.0}}"#,
    r#"{"v":{"$gt":9007199254740992}}"#,
    r#"{"v":{"$lt":"b"}}"#,
    r#"{"v":{"$gte":"apple"}}"#,
    r#"{"a.b":1}"#,
    r#"{"a.b":{"$gte":"s"}}"#,
    r#"{"even":true,"v":{"$exists":true}}"#,
    r#"{"$or":[{"v":3},{"v":"banana"}]}"#,
    r#"{"$or":[{"v":{"$lt":0}},{"a.b":{"$exists":false},"even":true}]}"#,
    r#"{"even":false,"$or":[{"v":{"$gte":"a"}},{"$or":[{"n":{"$lte":2}},{"s":"Kite"}]}]}"#,
    r#"{"$or":[{"big":{"$exists":true}},{"v":10}]}"#,
];

const SORTS: &[&str] = &[
    "",
    r#""$sort":{"v":1}"#,
    r#""$sort":{"v":-1}"#,
    r#""$sort":{"a.b":1}"#,
    r#""$sort":{"a.b":-1}"#,
    r#""$sort":{"n":-1}"#,
];

/// The filter with a sort, a limit and a cursor added.
fn with(base: &str, sort: &str, limit: Option<usize>, after: Option<&Value>) -> Filter {
    let mut map = match serde_json::from_str::<Value>(base) {
        Ok(Value::Object(map)) => map,
        _ => panic!("{base} is not an object"),
    };
    if !sort.is_empty() {
        let extra: Value = serde_json::from_str(&format!("{{{sort}}}")).expect("sort parses");
        map.extend(extra.as_object().cloned().unwrap_or_default());
    }
    if let Some(limit) = limit {
        map.insert("$limit".into(), json!(limit));
    }
    if let Some(after) = after {
        map.insert("$after".into(), after.clone());
    }
    filter(&Value::Object(map).to_string())
}

/// What `list` must answer over `docs`: the filter's own definition.
fn oracle(docs: &BTreeMap<String, Value>, f: &Filter) -> Vec<String> {
    let mut found: Vec<_> = docs
        .iter()
        .filter(|(_, v)| f.matches(v))
        .map(|(id, v)| f.position(id, v))
        .filter(|p| f.is_after_cursor(p))
        .collect();
    found.sort_by(|a, b| f.order(a, b));
    found.into_iter().take(f.limit()).map(|p| p.id).collect()
}

/// The `$after` a caller passes to continue after `doc`.
fn cursor_after(doc: &Document, sort: &str) -> Value {
    let path: Option<Vec<String>> = sort
        .split('"')
        .nth(3)
        .map(|p| p.split('.').map(str::to_owned).collect());
    match path {
        None => json!(doc.id),
        Some(path) => {
            let body: Value = serde_json::from_str(&doc.json).expect("stored JSON");
            match field(&body, &path) {
                Some(v) => json!({"value": v, "id": doc.id}),
                None => json!({"id": doc.id}),
            }
        }
    }
}

fn ids(docs: &[Document]) -> Vec<String> {
    docs.iter().map(|d| d.id.clone()).collect()
}

/// Runs the query rules against `store`, which must hold no documents of
/// domain `d`, collection `q`.
pub async fn run(store: Arc<dyn Store>) {
    let docs: BTreeMap<String, Value> = dataset().into_iter().collect();
    for (id, body) in &docs {
        store
            .upsert("d", COLLECTION, id, &body.to_string(), Some(0))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    oracle_agrees_with_literals(&docs);
    answers_every_filter(store.as_ref(), &docs).await;
    // Indexes change how a store answers (SQLite's plans, MongoDB's split
    // of the text bodies' `$or`), never what.
    for fields in [&["v"][..], &["s", "n"][..]] {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        store
            .ensure_index("d", COLLECTION, &fields)
            .await
            .unwrap_or_else(|e| panic!("index {fields:?}: {e}"));
    }
    answers_every_filter(store.as_ref(), &docs).await;
    unit_pages_over_its_own_writes(store.clone(), &docs).await;
    store.clear("d", COLLECTION).await.expect("clear");
}

/// Every filter with every sort, whole and page by page, as the oracle.
async fn answers_every_filter(store: &dyn Store, docs: &BTreeMap<String, Value>) {
    for base in FILTERS {
        for sort in SORTS {
            let f = with(base, sort, None, None);
            let got = store.list("d", COLLECTION, &f).await;
            let got = got.unwrap_or_else(|e| panic!("{base} {sort}: {e}"));
            assert_eq!(ids(&got), oracle(docs, &f), "filter {base} {sort}");
            pages_to_the_end(store, docs, base, sort).await;
        }
    }
}

/// The oracle's answers for a few cases, written out.
fn oracle_agrees_with_literals(docs: &BTreeMap<String, Value>) {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"v":3}"#, &["d01", "d19"]),
        (r#"{"v":{"$in":[3.0,true]}}"#, &["d02", "d13"]),
        (
            r#"{"v":{"$gte":"apple"}}"#,
            &["d07", "d09", "d10", "d11", "d20"],
        ),
        (r#"{"v":{"$contains":"kel"}}"#, &["d10"]),
        (
            r#"{"v":{"$lte":3},"$sort":{"v":1}}"#,
            &["d03", "d01", "d02", "d19"],
        ),
        (
            r#"{"$or":[{"v":true},{"v":false},{"v":""}],"$sort":{"v":-1}}"#,
            &["d13", "d14", "d12"],
        ),
        (
            r#"{"n":{"$gte":17},"$sort":{"v":1}}"#,
            &["m0", "m1", "m2", "d19", "t0", "d20", "d17", "d18"],
        ),
    ];
    for (f, want) in cases {
        assert_eq!(oracle(docs, &filter(f)), *want, "oracle for {f}");
    }
}

/// Pages of 4 through the answer with `$after`: together exactly the
/// whole answer, in order, with no duplicate or gap.
async fn pages_to_the_end(s: &dyn Store, docs: &BTreeMap<String, Value>, base: &str, sort: &str) {
    let want = oracle(docs, &with(base, sort, None, None));
    let mut got = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..=want.len() {
        let f = with(base, sort, Some(4), after.as_ref());
        let page = s.list("d", COLLECTION, &f).await;
        let page = page.unwrap_or_else(|e| panic!("{base} {sort} after {after:?}: {e}"));
        got.extend(ids(&page));
        match page.last() {
            Some(last) if page.len() == 4 => after = Some(cursor_after(last, sort)),
            _ => break,
        }
    }
    assert_eq!(got, want, "pages of {base} {sort}");
}

/// Paging through a unit of work that wrote, deleted and re-keyed
/// documents: its own view, page by page, with nothing twice or missed.
async fn unit_pages_over_its_own_writes(store: Arc<dyn Store>, docs: &BTreeMap<String, Value>) {
    let mut unit = UnitOfWork::new(store, Arc::from("d"), UnitLimits::default());
    let mut view = docs.clone();
    let writes = [
        ("d00", Some(json!({"v": 2.5, "n": 0, "even": true}))),
        ("d05", None),
        ("d07", Some(json!({"v": "zebra", "n": 7}))),
        ("c1", Some(json!({"v": 3, "n": 50, "even": false}))),
        ("e9", Some(json!({"n": 51}))),
        ("m1", None),
        ("zz", Some(json!({"v": false, "n": 52}))),
    ];
    for (id, body) in writes {
        match body {
            Some(body) => {
                unit.upsert(COLLECTION, id, &body.to_string(), None)
                    .await
                    .unwrap_or_else(|e| panic!("{id}: {e}"));
                view.insert(id.to_owned(), body);
            }
            None => {
                unit.delete(COLLECTION, id).await.expect("delete");
                view.remove(id);
            }
        }
    }
    for base in [
        "{}",
        r#"{"v":{"$exists":true}}"#,
        r#"{"$or":[{"v":3},{"even":true}]}"#,
    ] {
        for sort in SORTS {
            let want = oracle(&view, &with(base, sort, None, None));
            let mut got = Vec::new();
            let mut after: Option<Value> = None;
            for _ in 0..=want.len() {
                let f = with(base, sort, Some(3), after.as_ref());
                let page = unit.list(COLLECTION, &f).await;
                let page = page.unwrap_or_else(|e| panic!("unit {base} {sort}: {e}"));
                got.extend(ids(&page));
                match page.last() {
                    Some(last) if page.len() == 3 => after = Some(cursor_after(last, sort)),
                    _ => break,
                }
            }
            assert_eq!(got, want, "unit pages of {base} {sort}");
        }
    }
}
