#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use parallel_you_sdk::{Error, EventReactor};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::day::{day_of, is_day, split};
use crate::model::{human, EndReason, Fact, MAX_RUN_MS};
use crate::queries::{by_day, by_saga, by_sprint, by_thread};
use crate::record::{record, Docs};

mod resume;

const MIN: u64 = 60_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

/// The store's contract in a map: versions checked like the host's, and
/// the filters the read model uses (equality, `$gte`/`$lte`, `$limit`).
#[derive(Default)]
struct Mem(RefCell<BTreeMap<(String, String), (Value, u64)>>);

impl Docs for Mem {
    fn read<T: DeserializeOwned>(&self, coll: &str, id: &str) -> Result<Option<(T, u64)>, Error> {
        let docs = self.0.borrow();
        Ok(docs
            .get(&(coll.to_owned(), id.to_owned()))
            .map(|(v, n)| (serde_json::from_value(v.clone()).unwrap(), *n)))
    }

    fn write<T: Serialize>(
        &self,
        coll: &str,
        id: &str,
        value: &T,
        version: u64,
    ) -> Result<(), Error> {
        let mut docs = self.0.borrow_mut();
        let key = (coll.to_owned(), id.to_owned());
        let current = docs.get(&key).map_or(0, |(_, n)| *n);
        if current != version {
            return Err(Error::conflict(current));
        }
        docs.insert(key, (serde_json::to_value(value).unwrap(), current + 1));
        Ok(())
    }

    fn find<T: DeserializeOwned>(
        &self,
        coll: &str,
        filter: Value,
    ) -> Result<Vec<(String, T)>, Error> {
        let filter = filter.as_object().unwrap().clone();
        let limit = filter
            .get("$limit")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let matches = |doc: &Value| {
            filter
                .iter()
                .filter(|(k, _)| *k != "$limit")
                .all(|(k, want)| {
                    let have = &doc[k.as_str()];
                    match want.as_object() {
                        Some(ops) => ops.iter().all(|(op, v)| {
                            let (h, v) = (have.as_str().unwrap(), v.as_str().unwrap());
                            match op.as_str() {
                                "$gte" => h >= v,
                                "$lte" => h <= v,
                                _ => panic!("operator {op} not in this fake"),
                            }
                        }),
                        None => have == want,
                    }
                })
        };
        Ok(self
            .0
            .borrow()
            .iter()
            .filter(|((c, _), (v, _))| c == coll && matches(v))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|((_, id), (v, _))| (id.clone(), serde_json::from_value(v.clone()).unwrap()))
            .collect())
    }
}

impl Mem {
    /// Everything but the version numbers: what two histories must agree on.
    fn snapshot(&self) -> BTreeMap<(String, String), Value> {
        self.0
            .borrow()
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// Every document but the runs (whose facts may differ by order).
    fn totals(&self) -> Vec<((String, String), Value)> {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| k.0 != "runs")
            .collect()
    }

    fn total(&self, id: &str) -> u64 {
        self.0.borrow()[&("totals".to_owned(), id.to_owned())].0["ms"]
            .as_u64()
            .unwrap()
    }
}

fn thread(id: &str, run: u64, state: &str) -> crate::model::ThreadEvent {
    serde_json::from_value(json!({
        "id": id, "run": run, "state": state, "saga_id": "s1", "sprint_id": "sp1",
        "energy": "deep", "kind": "story", "title": "t", "version": 3,
    }))
    .unwrap()
}

/// (fact, at) of one run of `t1`: started at T0, quantum out after 25
/// minutes, blocked at 40, parked (after an unblock) at 55.
fn history() -> Vec<(Fact, u64)> {
    vec![
        (Fact::Started, T0),
        (Fact::Expired, T0 + 25 * MIN),
        (Fact::Ended(EndReason::Blocked), T0 + 40 * MIN),
        (Fact::Ended(EndReason::Parked), T0 + 55 * MIN),
    ]
}

fn apply(store: &Mem, events: &[(Fact, u64)]) {
    for (fact, at) in events {
        let state = if *fact == Fact::Started {
            "running"
        } else {
            "parked"
        };
        record(store, &thread("t1", 1, state), *fact, *at).unwrap();
    }
}

#[test]
fn a_run_counts_from_start_to_its_first_end() {
    let store = Mem::default();
    let h = history();
    apply(&store, &h[..1]);
    assert_eq!(
        store.total("thread:t1"),
        0,
        "an open run counts nothing yet"
    );
    apply(&store, &h[1..2]);
    assert_eq!(
        store.total("thread:t1"),
        25 * MIN,
        "counted up to the expiry"
    );
    apply(&store, &h[2..]);
    for id in ["thread:t1", "saga:s1", "sprint:sp1", "energy:deep"] {
        assert_eq!(store.total(id), 40 * MIN, "{id}");
    }
    let s = store.snapshot();
    assert_eq!(s[&("totals".into(), "thread:t1".into())]["runs"], 1);
    assert_eq!(s[&("totals".into(), "thread:t1".into())]["saga_id"], "s1");
    let day = &s[&("days".into(), "2023-11-14".into())];
    assert_eq!(day["ms"], 40 * MIN);
    assert_eq!(day["by_energy"], json!({"deep": 40 * MIN}));
}

#[test]
fn duplicates_change_nothing() {
    let once = Mem::default();
    apply(&once, &history());
    let twice = Mem::default();
    let h = history();
    let doubled: Vec<_> = h
        .iter()
        .flat_map(|e| [*e, *e])
        .chain(h.iter().copied())
        .collect();
    apply(&twice, &doubled);
    assert_eq!(once.snapshot(), twice.snapshot());
}

#[test]
fn any_order_gives_the_same_totals() {
    let in_order = Mem::default();
    apply(&in_order, &history());
    let want = in_order.totals();
    let h = history();
    for order in orders_of_four() {
        let store = Mem::default();
        apply(&store, &order.map(|i| h[i]));
        assert_eq!(store.totals(), want, "order {order:?}");
        assert_eq!(store.total("thread:t1"), 40 * MIN, "order {order:?}");
    }
}

/// All 24 orders of four events, as indexes.
fn orders_of_four() -> impl Iterator<Item = [usize; 4]> {
    (0..4usize.pow(4))
        .map(|n| [n / 64, n / 16 % 4, n / 4 % 4, n % 4])
        .filter(|order| (0..4).all(|i| order.contains(&i)))
}

#[test]
fn runs_add_up_and_stray_events_are_ignored() {
    let store = Mem::default();
    apply(&store, &history());
    // A second run, completed after 10 minutes.
    record(
        &store,
        &thread("t1", 2, "running"),
        Fact::Started,
        T0 + 60 * MIN,
    )
    .unwrap();
    record(
        &store,
        &thread("t1", 2, "done"),
        Fact::Ended(EndReason::Completed),
        T0 + 70 * MIN,
    )
    .unwrap();
    assert_eq!(store.total("thread:t1"), 50 * MIN);
    assert_eq!(
        store.snapshot()[&("totals".into(), "thread:t1".into())]["runs"],
        2
    );
    let before = store.snapshot();
    // Parked from `ready` before any start; a deleted thread that was not
    // running; a deletion of the already completed run.
    assert_eq!(
        record(
            &store,
            &thread("t9", 0, "parked"),
            Fact::Ended(EndReason::Parked),
            T0
        )
        .unwrap(),
        None
    );
    assert_eq!(
        record(
            &store,
            &thread("t1", 2, "done"),
            Fact::Ended(EndReason::Deleted),
            T0 + 99 * MIN
        )
        .unwrap(),
        None
    );
    assert_eq!(before, store.snapshot());
    // A running thread deleted: its run ends there.
    record(&store, &thread("t2", 1, "running"), Fact::Started, T0).unwrap();
    record(
        &store,
        &thread("t2", 1, "running"),
        Fact::Ended(EndReason::Deleted),
        T0 + 5 * MIN,
    )
    .unwrap();
    assert_eq!(store.total("thread:t2"), 5 * MIN);
}

#[test]
fn a_forgotten_run_counts_at_most_a_month() {
    let store = Mem::default();
    record(&store, &thread("t1", 1, "running"), Fact::Started, T0).unwrap();
    record(
        &store,
        &thread("t1", 1, "done"),
        Fact::Ended(EndReason::Completed),
        T0 + 400 * 86_400_000,
    )
    .unwrap();
    assert_eq!(store.total("thread:t1"), MAX_RUN_MS);
    let days = store.snapshot().keys().filter(|k| k.0 == "days").count();
    assert_eq!(days, 32, "31 days from 22:13 touch 32 dates");
}

#[test]
fn bad_ids_are_refused() {
    let store = Mem::default();
    let mut t = thread("t1", 1, "running");
    t.id = "a/b".into();
    let err = record(&store, &t, Fact::Started, T0).unwrap_err();
    assert_eq!(err.code(), "validation");
    let mut t = thread("t1", 1, "running");
    t.saga_id = Some("x".repeat(129));
    assert_eq!(
        record(&store, &t, Fact::Started, T0).unwrap_err().code(),
        "validation"
    );
    assert!(store.snapshot().is_empty());
    // An unknown energy band is kept as `other`, never as a new document name.
    let mut t = thread("t3", 1, "running");
    t.energy = Some("x".repeat(1000));
    record(&store, &t, Fact::Started, T0).unwrap();
    record(&store, &t, Fact::Ended(EndReason::Parked), T0 + MIN).unwrap();
    assert_eq!(store.total("energy:other"), MIN);
}

fn params<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[test]
fn queries() {
    let store = Mem::default();
    apply(&store, &history());
    let mut other = thread("t2", 1, "running");
    other.energy = Some("light".into());
    other.sprint_id = None;
    record(&store, &other, Fact::Started, T0 + 2 * 86_400_000).unwrap();
    // 22:13:20 to 00:13:20: across a midnight.
    record(
        &store,
        &other,
        Fact::Ended(EndReason::Parked),
        T0 + 2 * 86_400_000 + 120 * MIN,
    )
    .unwrap();

    let t = by_thread(&store, params(json!({"id": "t1"}))).unwrap();
    assert_eq!(t["ms"], 40 * MIN);
    assert_eq!(t["human"], "40m 00s");
    assert_eq!(t["runs"], 1);
    assert_eq!(t["run_list"][0]["ended_by"], "blocked");
    assert_eq!(t["run_list"][0]["quantum_expired_ms"], T0 + 25 * MIN);

    let s = by_saga(&store, params(json!({"id": "s1"}))).unwrap();
    assert_eq!(s["saga_id"], "s1");
    assert_eq!(s["ms"], 160 * MIN);
    assert_eq!(s["human"], "2h 40m");
    assert_eq!(s["threads"][0]["id"], "t2", "most time first");
    assert_eq!(
        s["by_energy"],
        json!({"deep": 40 * MIN, "light": 120 * MIN})
    );

    let sp = by_sprint(&store, params(json!({"id": "sp1"}))).unwrap();
    assert_eq!(sp["ms"], 40 * MIN);
    assert_eq!(sp["threads"].as_array().unwrap().len(), 1);

    let all = by_day(&store, params(json!({}))).unwrap();
    assert_eq!(all["ms"], 160 * MIN);
    let days: Vec<_> = all["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["day"].clone())
        .collect();
    assert_eq!(days, ["2023-11-14", "2023-11-16", "2023-11-17"]);
    assert_eq!(all["days"][1]["ms"], (106 * 60 + 40) * 1000);
    assert_eq!(all["days"][2]["ms"], (13 * 60 + 20) * 1000);
    let later = by_day(&store, params(json!({"from": "2023-11-16"}))).unwrap();
    assert_eq!(later["ms"], 120 * MIN);
    assert_eq!(later["by_energy"], json!({"light": 120 * MIN}));
    let first = by_day(
        &store,
        params(json!({"from": "2023-11-14", "to": "2023-11-14"})),
    )
    .unwrap();
    assert_eq!(first["ms"], 40 * MIN);

    let err = by_day(
        &store,
        params(json!({"from": "2023-11-16", "to": "2023-11-14"})),
    )
    .unwrap_err();
    assert_eq!(err.code(), "validation");
    let err = by_day(&store, params(json!({"to": "yesterday"}))).unwrap_err();
    assert_eq!(err.code(), "validation");
    let err = by_thread(&store, params(json!({"id": "nope"}))).unwrap_err();
    assert_eq!(err.code(), "not_found");
    let err = by_saga(&store, params(json!({"id": "../x"}))).unwrap_err();
    assert_eq!(err.code(), "validation");
}

#[test]
fn the_reactor_routes_events_and_params() {
    let r = crate::Effort::reactor();
    let m = r.manifest();
    assert_eq!(m.domain, "effort");
    assert_eq!(
        m.subscribes,
        [
            "thread.started",
            "thread.quantum.expired",
            "thread.parked",
            "thread.blocked",
            "thread.completed",
            "thread.deleted",
            "thread.restored"
        ]
    );
    assert!(m.sends.is_empty());
    let names: Vec<_> = m.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["by_thread", "by_saga", "by_sprint", "by_day"]);
    for q in &m.queries {
        let schema: Value = serde_json::from_str(q.params_schema.as_deref().unwrap()).unwrap();
        assert_eq!(schema["type"], "object", "{}", q.name);
    }
    assert_eq!(m.indexes.len(), 2);
    // Parameters are checked before any store call.
    let err = r
        .answer("by_thread", r#"{"id": "t1", "extra": 1}"#)
        .unwrap_err();
    assert_eq!(err.code(), "validation");
    let err = r.answer("by_day", r#"{"from": 20231114}"#).unwrap_err();
    assert_eq!(err.code(), "validation");
    let err = r.answer("by_week", "{}").unwrap_err();
    assert_eq!(err.code(), "not_found");
}

#[test]
fn days() {
    assert_eq!(day_of(0), "1970-01-01");
    assert_eq!(day_of(T0), "2023-11-14");
    assert_eq!(day_of(951_782_400_000), "2000-02-29");
    assert_eq!(day_of(4_102_444_799_999), "2099-12-31");
    assert!(is_day("2024-02-29"));
    for bad in [
        "2024-2-29",
        "2024-13-01",
        "2024-00-10",
        "2024-01-32",
        "20240101",
        "2024-01-0x",
        "",
    ] {
        assert!(!is_day(bad), "{bad}");
    }
    assert_eq!(split(T0, T0), []);
    assert_eq!(split(T0, T0 + MIN), [("2023-11-14".to_owned(), MIN)]);
    let midnight = 1_700_006_400_000;
    assert_eq!(
        split(midnight - MIN, midnight + 2 * MIN),
        [
            ("2023-11-14".to_owned(), MIN),
            ("2023-11-15".to_owned(), 2 * MIN)
        ]
    );
    assert_eq!(human(0), "0s");
    assert_eq!(human(45_000), "45s");
    assert_eq!(human(750_000), "12m 30s");
    assert_eq!(human(3_900_000), "1h 05m");
}

#[test]
fn a_run_counts_for_the_sprint_it_was_spent_in() {
    let store = Mem::default();
    apply(&store, &history());
    // The story moves to sprint sp2, then runs for 10 minutes.
    let mut moved = thread("t1", 2, "running");
    moved.sprint_id = Some("sp2".into());
    record(&store, &moved, Fact::Started, T0 + 60 * MIN).unwrap();
    record(
        &store,
        &moved,
        Fact::Ended(EndReason::Parked),
        T0 + 70 * MIN,
    )
    .unwrap();
    let sp1 = by_sprint(&store, params(json!({"id": "sp1"}))).unwrap();
    let sp2 = by_sprint(&store, params(json!({"id": "sp2"}))).unwrap();
    assert_eq!(sp1["ms"], 40 * MIN);
    assert_eq!(
        sp1["threads"],
        json!([{"id": "t1", "ms": 40 * MIN, "human": "40m 00s"}])
    );
    assert_eq!(sp2["ms"], 10 * MIN);
    assert_eq!(sp2["threads"][0]["ms"], 10 * MIN);
    assert_eq!(sp2["by_energy"], json!({"deep": 10 * MIN}));
    let saga = by_saga(&store, params(json!({"id": "s1"}))).unwrap();
    assert_eq!(saga["ms"], 50 * MIN);
    assert_eq!(
        saga["threads"],
        json!([{"id": "t1", "ms": 50 * MIN, "human": "50m 00s"}])
    );
    // The thread's own total follows it to its latest sprint.
    let t = by_thread(&store, params(json!({"id": "t1"}))).unwrap();
    assert_eq!(
        (t["ms"].clone(), t["sprint_id"].clone()),
        (json!(50 * MIN), json!("sp2"))
    );
}
