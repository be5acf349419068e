//! Sagas end to end on the in-process bus, with real components: the
//! `trip` test saga (`handlers/testing/trip`, three steps over the
//! `ledger` test handler, each undone by a revert) and the bundled
//! `sprintclose` saga over the `thread` domain. Each scenario ends in its
//! documented state with its event trail asserted: a completed run, a step
//! that fails, a step that never answers, a compensation that fails until
//! an operator's retry, an upgrade and a downgrade mid-saga.

use crate::common;
use crate::reactors::eventually;

use std::sync::Arc;
use std::time::Duration;

use common::{body, serve_on_bus, serve_on_gated_bus, subscribe, OnBus};
use parallel_you_core::bus::{Bus, Subscription};
use parallel_you_core::envelope::Envelope;
use parallel_you_host::timers::{deliver_to_reactor, SystemClock};
use parallel_you_host::HotLoader;
use serde_json::{json, Value};

/// How long any one scenario may take to reach its end.
pub(crate) const WITHIN: Duration = Duration::from_secs(30);

/// Sends `key` with `body` on session `s1`.
pub(crate) async fn send(on: &OnBus, key: &str, body: Value) -> Envelope {
    let cmd = Envelope::command(key, &body.to_string())
        .unwrap()
        .with_session("s1");
    on.bus.send(cmd.clone()).await.unwrap();
    cmd
}

/// The saga's events (routing key minus the saga's name, body) up to and
/// including the first whose key is `<saga>.<last>` and whose body
/// matches `until`, each checked to be on session `s1`.
pub(crate) async fn trail(
    events: &mut Subscription,
    last: &str,
    until: impl Fn(&Value) -> bool,
) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no `{last}` within {WITHIN:?}; saw {seen:#?}"))
            .expect("the subscription ended");
        assert_eq!(ev.meta.session_id.as_deref(), Some("s1"), "{:?}", ev.meta);
        let key = ev
            .meta
            .routing_key
            .split_once('.')
            .map(|(_, k)| k.to_owned())
            .unwrap();
        let b = body(&ev);
        let done = key == last && until(&b);
        seen.push((key, b));
        if done {
            return seen;
        }
    }
}

pub(crate) fn keys(trail: &[(String, Value)]) -> Vec<&str> {
    trail.iter().map(|(k, _)| k.as_str()).collect()
}

/// A ledger record (`tries`, `applied`, `held`, `reverted`).
pub(crate) async fn record(on: &OnBus, key: &str) -> Value {
    let doc = on
        .host
        .store()
        .get("ledger", "records", key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no ledger record {key}"));
    serde_json::from_str(&doc.json).unwrap()
}

pub(crate) async fn show(on: &OnBus, saga: &str, id: &str) -> Value {
    let text = on
        .host
        .query(saga, "saga_show", &json!({ "id": id }).to_string())
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Starts a trip with `plan` (modes of steps a, b, c) as run `run`;
/// returns the instance id (the starting command's correlation id).
pub(crate) async fn trip(on: &OnBus, run: &str, plan: Value) -> String {
    let mut b = plan;
    b["run"] = json!(run);
    send(on, "ledger.begin", b).await.meta.correlation_id
}

// The scenarios below are the saga's, whatever its language: each takes
// a host serving `ledger` and a twin of `trip` (`saga`: the Rust `trip`
// here, the Python `pytrip` in `sagas_polyglot.rs`) and asserts the same
// trail and end state.

/// A run whose three steps complete.
pub(crate) async fn runs_three_steps(on: &OnBus, saga: &str) {
    let mut events = subscribe(on.bus.as_ref(), &format!("session.s1.{saga}.#")).await;
    let id = trip(on, "ok", json!({})).await;
    let t = trail(&mut events, "completed", |_| true).await;
    assert_eq!(
        keys(&t),
        [
            "started",
            "step_completed",
            "step_completed",
            "step_completed",
            "completed"
        ]
    );
    assert_eq!(t[0].1["id"], id.as_str());
    assert_eq!(t[0].1["saga"], saga);
    assert_eq!(t[0].1["steps"], json!(["a", "b", "c"]));
    let steps: Vec<&Value> = t[1..4].iter().map(|(_, b)| &b["step"]).collect();
    assert_eq!(steps, [&json!("a"), &json!("b"), &json!("c")]);
    assert_eq!(t[1].1["keys"], json!(["ok-a"]));
    for step in ["a", "b", "c"] {
        let r = record(on, &format!("ok-{step}")).await;
        assert_eq!(
            (r["applied"].clone(), r["tries"].clone()),
            (json!(true), json!(1)),
            "{step}: {r}"
        );
    }
    let shown = show(on, saga, &id).await;
    let inst = &shown["instance"];
    assert_eq!(inst["status"], "completed");
    assert_eq!(inst["session_id"], "s1");
    assert_eq!(inst["schema_version"], 1);
    assert_eq!(inst["step"], 3);
    assert_eq!(shown["timers"], json!([]));
    assert_eq!(shown["unreadable"], Value::Null);
    let history = history(&shown);
    assert_eq!(history.first().map(String::as_str), Some("started"));
    assert_eq!(history.last().map(String::as_str), Some("completed"));
    assert_eq!(
        shown["compensations"].as_array().unwrap().len(),
        3,
        "what would undo it, last first"
    );
    assert_eq!(
        shown["compensations"][0],
        json!({
            "step": "c",
            "key": "ok-c",
            "command": { "routing_key": "ledger.revert", "body": { "key": "ok-c" } }
        })
    );
    let listed: Value = serde_json::from_str(
        &on.host
            .query(saga, "saga_list", r#"{"status":"completed"}"#)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["instances"][0]["id"], id.as_str());
    assert_eq!(listed["instances"][0]["status"], "completed");
}

/// The `what`s of a shown instance's history.
fn history(shown: &Value) -> Vec<String> {
    shown["instance"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_trip_runs_its_three_steps_and_says_so_on_the_session() {
    let on = serve_on_bus(&["ledger", "trip"]).await;
    runs_three_steps(&on, "trip").await;
    on.serving.shutdown(Duration::from_secs(5)).await;
}

/// A run whose last step is refused: the two before are undone, last first.
pub(crate) async fn undoes_a_failed_step_last_first(on: &OnBus, saga: &str) {
    let mut events = subscribe(on.bus.as_ref(), &format!("session.s1.{saga}.#")).await;
    let id = trip(on, "f", json!({ "c": "fail" })).await;
    let t = trail(&mut events, "failed", |_| true).await;
    assert_eq!(
        keys(&t),
        [
            "started",
            "step_completed",
            "step_completed",
            "step_failed",
            "compensating",
            "compensated",
            "compensated",
            "failed"
        ]
    );
    assert_eq!(t[3].1["step"], "c");
    assert_eq!(t[3].1["key"], "f-c");
    assert_eq!(t[3].1["code"], "refused");
    assert_eq!(
        t[4].1["undo"],
        json!([{"step": "b", "key": "f-b"}, {"step": "a", "key": "f-a"}])
    );
    assert_eq!(t[5].1["key"], "f-b");
    assert_eq!(t[6].1["key"], "f-a");
    let failed = &t[7].1;
    assert_eq!(failed["stuck"], false);
    assert_eq!(failed["failure"]["code"], "refused");
    assert_eq!(failed["failure"]["step"], "c");
    assert_eq!(
        failed["undone"],
        json!([{"step": "b", "key": "f-b"}, {"step": "a", "key": "f-a"}])
    );
    for step in ["a", "b"] {
        let r = record(on, &format!("f-{step}")).await;
        assert_eq!(
            (r["applied"].clone(), r["reverted"].clone()),
            (json!(false), json!(1)),
            "{step}: {r}"
        );
    }
    let shown = show(on, saga, &id).await;
    assert_eq!(shown["instance"]["status"], "failed");
    assert_eq!(shown["instance"]["stuck"], false);
    assert_eq!(shown["compensations"], json!([]), "nothing left to undo");
}

#[tokio::test]
async fn a_failed_step_undoes_the_completed_ones_last_first() {
    let on = serve_on_bus(&["ledger", "trip"]).await;
    undoes_a_failed_step_last_first(&on, "trip").await;
    on.serving.shutdown(Duration::from_secs(5)).await;
}

/// A run whose last step never answers: tried twice, timed out, and undone
/// with the rest (it may have taken effect).
pub(crate) async fn times_out_a_silent_step(on: &OnBus, saga: &str) {
    let mut events = subscribe(on.bus.as_ref(), &format!("session.s1.{saga}.#")).await;
    let id = trip(on, "s", json!({ "c": "silent" })).await;
    let t = trail(&mut events, "failed", |_| true).await;
    assert_eq!(
        keys(&t),
        [
            "started",
            "step_completed",
            "step_completed",
            "step_failed",
            "compensating",
            "compensated",
            "compensated",
            "compensated",
            "failed"
        ]
    );
    assert_eq!(t[3].1["code"], "timeout");
    assert_eq!(t[3].1["attempt"], 2);
    assert_eq!(
        t[4].1["undo"],
        json!([
            {"step": "c", "key": "s-c"},
            {"step": "b", "key": "s-b"},
            {"step": "a", "key": "s-a"}
        ])
    );
    assert_eq!(
        record(on, "s-c").await["tries"],
        2,
        "sent twice: the policy's two tries"
    );
    let history = history(&show(on, saga, &id).await);
    assert!(
        history.contains(&"try_failed".to_owned()) && history.contains(&"resent".to_owned()),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_step_that_never_answers_is_tried_again_then_times_out_and_is_undone() {
    let on = serve_on_bus(&["ledger", "trip"]).await;
    times_out_a_silent_step(&on, "trip").await;
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_waits_for_an_operators_retry() {
    let on = serve_on_bus(&["ledger", "trip"]).await;
    let mut events = subscribe(on.bus.as_ref(), "session.s1.trip.#").await;
    let mut blocked = subscribe(on.bus.as_ref(), "session.s1.ledger.blocked").await;
    block_reverts(&on, &mut blocked, true).await;
    let id = trip(&on, "x", json!({ "c": "fail" })).await;
    let t = trail(&mut events, "failed", |_| true).await;
    assert_eq!(
        keys(&t),
        [
            "started",
            "step_completed",
            "step_completed",
            "step_failed",
            "compensating",
            "failed"
        ]
    );
    let failed = &t[5].1;
    assert_eq!(failed["stuck"], true);
    assert_eq!(failed["undone"], json!([]));
    assert_eq!(
        failed["not_undone"],
        json!([{"step": "b", "key": "x-b"}, {"step": "a", "key": "x-a"}])
    );
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed 2 time(s), last with blocked")
            && reason.contains(&format!("pyou sagas retry {id}")),
        "{reason}"
    );
    let shown = show(&on, "trip", &id).await;
    assert_eq!(
        (
            shown["instance"]["status"].clone(),
            shown["instance"]["stuck"].clone()
        ),
        (json!("failed"), json!(true))
    );
    assert_eq!(
        record(&on, "x-b").await["applied"],
        true,
        "nothing was undone"
    );

    block_reverts(&on, &mut blocked, false).await;
    retry(&on, "trip", &id).await;
    let t = trail(&mut events, "failed", |b| b["stuck"] == false).await;
    assert_eq!(
        keys(&t),
        ["compensating", "compensated", "compensated", "failed"]
    );
    assert_eq!(t[0].1["resumed"], true);
    assert_eq!(
        t[3].1["undone"],
        json!([{"step": "b", "key": "x-b"}, {"step": "a", "key": "x-a"}])
    );
    for step in ["a", "b"] {
        assert_eq!(record(&on, &format!("x-{step}")).await["reverted"], 1);
    }
    on.serving.shutdown(Duration::from_secs(5)).await;
}

/// Whether the saga `trip`'s instance `id` is still stored.
async fn kept(on: &OnBus, id: &str) -> bool {
    on.host
        .store()
        .get("trip", "instances", id)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn finished_instances_past_their_retention_are_swept_by_a_later_start() {
    // `tripsweep`: `trip` keeping a finished instance 500 ms.
    let on = serve_on_bus(&["ledger", "tripsweep"]).await;
    let mut events = subscribe(on.bus.as_ref(), "session.s1.trip.#").await;
    let mut blocked = subscribe(on.bus.as_ref(), "session.s1.ledger.blocked").await;
    let done = trip(&on, "w1", json!({})).await;
    trail(&mut events, "completed", |b| b["id"] == done.as_str()).await;
    let failed = trip(&on, "w2", json!({ "c": "fail" })).await;
    trail(&mut events, "failed", |b| b["id"] == failed.as_str()).await;
    block_reverts(&on, &mut blocked, true).await;
    let stuck = trip(&on, "w3", json!({ "c": "fail" })).await;
    trail(&mut events, "failed", |b| {
        b["id"] == stuck.as_str() && b["stuck"] == true
    })
    .await;
    block_reverts(&on, &mut blocked, false).await;
    for id in [&done, &failed, &stuck] {
        assert!(
            kept(&on, id).await,
            "a start within the retention sweeps nothing"
        );
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let next = trip(&on, "w4", json!({})).await;
    trail(&mut events, "completed", |b| b["id"] == next.as_str()).await;
    assert!(!kept(&on, &done).await, "completed, past its retention");
    assert!(!kept(&on, &failed).await, "failed, past its retention");
    assert!(kept(&on, &stuck).await, "stuck: left for an operator");
    assert!(kept(&on, &next).await);
    let listed: Value =
        serde_json::from_str(&on.host.query("trip", "saga_list", "{}").await.unwrap()).unwrap();
    let ids: Vec<&str> = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [next.as_str(), stuck.as_str()], "newest first");
    on.serving.shutdown(Duration::from_secs(5)).await;
}

/// Makes the ledger refuse reverts (or take them again), once it said so
/// on `blocked` (`session.s1.ledger.blocked`).
async fn block_reverts(on: &OnBus, blocked: &mut Subscription, refuse: bool) {
    send(on, "ledger.block_reverts", json!({ "blocked": refuse })).await;
    tokio::time::timeout(WITHIN, blocked.next())
        .await
        .unwrap()
        .unwrap();
}

/// What `pyou sagas retry` does: the saga's `retry` event, on the
/// instance's session.
pub(crate) async fn retry(on: &OnBus, saga: &str, id: &str) {
    let store = on.host.store().clone();
    let body = json!({ "id": id }).to_string();
    deliver_to_reactor(
        store.as_ref(),
        &SystemClock,
        saga,
        &format!("{saga}.retry"),
        &body,
        Some("s1"),
    )
    .await
    .unwrap();
}

/// Loads the component `name` over the file `file` of the host's folder.
async fn swap(on: &OnBus, file: &str, name: &str) {
    let path = on.handlers.path().join(file);
    std::fs::copy(common::components().join(format!("{name}.wasm")), &path).unwrap();
    let outcome = HotLoader::new(on.host.clone()).load_file(&path).await;
    assert!(format!("{outcome:?}").contains("Upgraded"), "{outcome:?}");
}

async fn held(on: &OnBus, key: &str) {
    let host = on.host.clone();
    let key = key.to_owned();
    eventually("the apply held", || {
        let host = host.clone();
        let key = key.clone();
        async move {
            let doc = host.store().get("ledger", "records", &key).await.unwrap();
            doc.is_some_and(|d| serde_json::from_str::<Value>(&d.json).unwrap()["held"] == true)
        }
    })
    .await;
}

#[tokio::test]
async fn an_instance_in_flight_continues_on_a_new_version_from_its_migrated_state() {
    let on = serve_on_bus(&["ledger", "trip"]).await;
    let mut events = subscribe(on.bus.as_ref(), "session.s1.trip.#").await;
    let id = trip(&on, "u", json!({ "b": "hold" })).await;
    held(&on, "u-b").await;
    assert_eq!(
        show(&on, "trip", &id).await["instance"]["schema_version"],
        1
    );
    swap(&on, "trip.wasm", "trip2").await;
    send(&on, "ledger.release", json!({ "key": "u-b" })).await;
    let t = trail(&mut events, "completed", |_| true).await;
    assert_eq!(
        keys(&t),
        [
            "started",
            "step_completed",
            "step_completed",
            "step_completed",
            "completed"
        ]
    );
    assert_eq!(
        t[4].1["data"]["migrated_from"], 1,
        "completed by 2.0.0 on the migrated state"
    );
    let inst = show(&on, "trip", &id).await["instance"].clone();
    assert_eq!(inst["schema_version"], 2);
    let what: Vec<&str> = inst["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert!(what.contains(&"migrated"), "{what:?}");
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_version_that_cannot_read_an_instance_parks_it_untouched_until_a_retry() {
    let on = serve_on_bus(&["ledger", "trip2"]).await;
    let mut events = subscribe(on.bus.as_ref(), "session.s1.trip.#").await;
    let id = trip(&on, "p", json!({ "b": "hold" })).await;
    held(&on, "p-b").await;
    let before = show(&on, "trip", &id).await["instance"]["data"].clone();
    // Back to 1.0.0, whose schema (1) is older than the instance's (2).
    swap(&on, "trip2.wasm", "trip").await;
    send(&on, "ledger.release", json!({ "key": "p-b" })).await;
    let t = trail(&mut events, "parked", |_| true).await;
    let reason = t.last().unwrap().1["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("schema version 2, newer than this version's 1"),
        "{reason}"
    );
    let inst = show(&on, "trip", &id).await["instance"].clone();
    assert_eq!(inst["status"], "parked");
    assert_eq!(inst["schema_version"], 2);
    assert_eq!(inst["data"], before, "the state is left as it was");
    assert_eq!(
        inst["parked"]["held"].as_array().unwrap().len(),
        1,
        "the answer is kept"
    );

    swap(&on, "trip2.wasm", "trip2").await;
    retry(&on, "trip", &id).await;
    let t = trail(&mut events, "completed", |_| true).await;
    assert_eq!(
        keys(&t),
        ["resumed", "step_completed", "step_completed", "completed"]
    );
    assert_eq!(record(&on, "p-c").await["tries"], 1);
    on.serving.shutdown(Duration::from_secs(5)).await;
}

/// Sends a thread command and waits for its answer (the event `answer`).
async fn thread(on: &OnBus, answers: &mut Subscription, key: &str, b: Value) -> Value {
    let cmd = send(on, key, b).await;
    next_answer_to(answers, &cmd).await
}

/// The body of `cmd`'s answer on `answers`, checked not to be an error.
async fn next_answer_to(answers: &mut Subscription, cmd: &Envelope) -> Value {
    let key = cmd.meta.routing_key.as_str();
    loop {
        let ev = tokio::time::timeout(WITHIN, answers.next())
            .await
            .unwrap()
            .unwrap();
        if ev.meta.causation_id.as_deref() == Some(cmd.meta.correlation_id.as_str()) {
            assert!(
                !ev.meta.routing_key.ends_with(".error"),
                "{key}: {}",
                ev.body.get()
            );
            return body(&ev);
        }
    }
}

/// Saga `v2` with stories `run` (running), `fin` (done) and `todo`
/// (ready), all in sprint `s1`; an empty sprint `s2`.
async fn sprint_with_stories(on: &OnBus, answers: &mut Subscription) {
    thread(
        on,
        answers,
        "thread.saga.create",
        json!({ "id": "v2", "title": "Ship v2" }),
    )
    .await;
    for id in ["run", "fin", "todo"] {
        thread(
            on,
            answers,
            "thread.story.create",
            json!({ "id": id, "saga_id": "v2", "title": id, "quantum": "1h" }),
        )
        .await;
    }
    for id in ["s1", "s2"] {
        thread(
            on,
            answers,
            "thread.sprint.create",
            json!({ "id": id, "title": id }),
        )
        .await;
    }
    for id in ["run", "fin", "todo"] {
        thread(
            on,
            answers,
            "thread.sprint.add_story",
            json!({ "sprint_id": "s1", "story_id": id }),
        )
        .await;
    }
    for id in ["run", "fin"] {
        thread(on, answers, "thread.start", json!({ "id": id })).await;
    }
    thread(on, answers, "thread.complete", json!({ "id": "fin" })).await;
}

async fn get(on: &OnBus, collection: &str, id: &str) -> Value {
    let doc = on
        .host
        .store()
        .get("thread", collection, id)
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str(&doc.json).unwrap()
}

#[tokio::test]
async fn closing_a_sprint_parks_archives_and_moves_its_stories_then_closes_it() {
    let on = serve_on_bus(&["thread", "sprintclose"]).await;
    let mut answers = subscribe(on.bus.as_ref(), "session.s1.thread.#").await;
    sprint_with_stories(&on, &mut answers).await;
    let mut events = subscribe(on.bus.as_ref(), "session.s1.sprintclose.#").await;
    let closing = thread(
        &on,
        &mut answers,
        "thread.sprint.close",
        json!({ "id": "s1", "next_sprint_id": "s2" }),
    )
    .await;
    assert_eq!(closing["state"], "closing");
    let t = trail(&mut events, "completed", |_| true).await;
    assert_eq!(
        keys(&t),
        [
            "started",
            "step_completed",
            "step_completed",
            "step_completed",
            "step_completed",
            "step_completed",
            "completed"
        ]
    );
    let steps: Vec<(&Value, &Value)> = t[1..6]
        .iter()
        .map(|(_, b)| (&b["step"], &b["keys"]))
        .collect();
    assert_eq!(
        steps,
        [
            (&json!("read"), &json!(["s1"])),
            (&json!("park"), &json!(["run"])),
            (&json!("archive"), &json!(["fin"])),
            (&json!("move"), &json!(["run", "todo"])),
            (&json!("close"), &json!(["s1"])),
        ]
    );
    let run = get(&on, "threads", "run").await;
    assert_eq!(
        (
            run["state"].clone(),
            run["sprint_id"].clone(),
            run["timer_id"].clone()
        ),
        (json!("parked"), json!("s2"), Value::Null)
    );
    let fin = get(&on, "threads", "fin").await;
    assert_eq!(
        (fin["archived"].clone(), fin["sprint_id"].clone()),
        (json!(true), json!("s1"))
    );
    assert_eq!(get(&on, "threads", "todo").await["sprint_id"], "s2");
    assert_eq!(get(&on, "sprints", "s1").await["state"], "closed");
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_sprint_close_that_fails_puts_every_story_back_and_reopens_the_sprint() {
    // The saga's moves to s2 are held until s2 is closing too, so they are
    // refused whatever order the host runs the commands in.
    let (on, gate) = serve_on_gated_bus(
        &["thread", "sprintclose", "effort"],
        "thread.sprint.add_story",
    )
    .await;
    let mut answers = subscribe(on.bus.as_ref(), "session.s1.thread.#").await;
    sprint_with_stories(&on, &mut answers).await;
    let before_run = get(&on, "threads", "run").await;
    let mut events = subscribe(on.bus.as_ref(), "session.s1.sprintclose.#").await;
    let first = send(
        &on,
        "thread.sprint.close",
        json!({ "id": "s1", "next_sprint_id": "s2" }),
    )
    .await;
    let closing = next_answer_to(&mut answers, &first).await;
    assert_eq!(closing["state"], "closing", "{closing}");
    let second = thread(
        &on,
        &mut answers,
        "thread.sprint.close",
        json!({ "id": "s2" }),
    )
    .await;
    assert_eq!(second["state"], "closing", "{second}");
    gate.open();
    let t = trail(&mut events, "failed", |b| {
        b["id"] == first.meta.correlation_id.as_str()
    })
    .await;
    let mine: Vec<&(String, Value)> = t
        .iter()
        .filter(|(_, b)| b["id"] == first.meta.correlation_id.as_str())
        .collect();
    let mine_keys: Vec<&str> = mine.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        mine_keys,
        [
            "started",
            "step_completed",
            "step_completed",
            "step_completed",
            "step_failed",
            "compensating",
            "compensated",
            "compensated",
            "compensated",
            "compensated",
            "failed"
        ]
    );
    let failed_step = &mine[4].1;
    assert_eq!(
        (failed_step["step"].clone(), failed_step["code"].clone()),
        (json!("move"), json!("invalid_transition"))
    );
    // The move refused first fails the step; the other one, unanswered
    // then, is undone too (a no-op restore: it was refused as well).
    let other = if failed_step["key"] == "run" {
        "todo"
    } else {
        "run"
    };
    let undone = json!([
        {"step": "move", "key": other},
        {"step": "archive", "key": "fin"},
        {"step": "park", "key": "run"},
        {"step": "read", "key": "s1"},
    ]);
    assert_eq!(mine[5].1["undo"], undone);
    assert_eq!(mine[10].1["undone"], undone);
    let run = get(&on, "threads", "run").await;
    assert_eq!(
        (run["state"].clone(), run["sprint_id"].clone()),
        (json!("running"), json!("s1"))
    );
    assert_eq!(
        run["run"], before_run["run"],
        "the same run, its quantum going on"
    );
    assert_eq!(run["quantum_ends_at"], before_run["quantum_ends_at"]);
    assert!(run["timer_id"].is_string(), "a quantum timer again");
    let fin = get(&on, "threads", "fin").await;
    assert_eq!(
        (fin["archived"].clone(), fin["state"].clone()),
        (json!(false), json!("done"))
    );
    assert_eq!(get(&on, "threads", "todo").await["sprint_id"], "s1");
    let s1 = get(&on, "sprints", "s1").await;
    assert_eq!(s1["state"], "open");
    // Time spent: the park the close made and undid is no end of the run.
    let effort_run = format!("run#{:020}", run["run"].as_u64().unwrap());
    eventually("effort to see the restore", || async {
        on.host
            .store()
            .get("effort", "runs", &effort_run)
            .await
            .unwrap()
            .is_some_and(|d| {
                !serde_json::from_str::<Value>(&d.json).unwrap()["resumed_ms"].is_null()
            })
    })
    .await;
    let spent: Value = serde_json::from_str(
        &on.host
            .query("effort", "by_thread", r#"{"id":"run"}"#)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(spent["runs"], 1, "{spent}");
    assert_eq!(spent["run_list"][0]["run"], run["run"], "{spent}");
    assert_eq!(
        spent["run_list"][0]["ended_by"],
        Value::Null,
        "running again on the same run: {spent}"
    );
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_thread_domains_saga_commands_answer_the_same_when_sent_again() {
    let on = serve_on_bus(&["thread"]).await;
    let mut answers = subscribe(on.bus.as_ref(), "session.s1.thread.#").await;
    sprint_with_stories(&on, &mut answers).await;
    thread(
        &on,
        &mut answers,
        "thread.sprint.close",
        json!({ "id": "s1" }),
    )
    .await;
    let closed = thread(
        &on,
        &mut answers,
        "thread.sprint.mark_closed",
        json!({ "id": "s1" }),
    )
    .await;
    let again = thread(
        &on,
        &mut answers,
        "thread.sprint.mark_closed",
        json!({ "id": "s1" }),
    )
    .await;
    assert_eq!(
        (closed["state"].clone(), again["version"].clone()),
        (json!("closed"), closed["version"].clone())
    );
    let opened = thread(
        &on,
        &mut answers,
        "thread.sprint.reopen",
        json!({ "id": "s1" }),
    )
    .await;
    let again = thread(
        &on,
        &mut answers,
        "thread.sprint.reopen",
        json!({ "id": "s1" }),
    )
    .await;
    assert_eq!(
        (opened["state"].clone(), again["version"].clone()),
        (json!("open"), opened["version"].clone())
    );
    let to = json!({ "id": "fin", "state": "done", "sprint_id": null, "archived": true });
    let restored = thread(&on, &mut answers, "thread.restore", to.clone()).await;
    let again = thread(&on, &mut answers, "thread.restore", to).await;
    assert_eq!(
        (restored["archived"].clone(), restored["sprint_id"].clone()),
        (json!(true), Value::Null)
    );
    assert_eq!(
        again["version"], restored["version"],
        "nothing written the second time"
    );
    on.serving.shutdown(Duration::from_secs(5)).await;
}

/// `ledger` and `saga` served on a fresh in-process bus over `store`,
/// with a deadline long enough for a fresh interpreter instance in a debug
/// build and compiled code kept in the tests' cache (a Python component is
/// 18 MB).
pub(crate) async fn serve_saga(saga: &str, store: Arc<dyn parallel_you_core::Store>) -> OnBus {
    let limits = parallel_you_host::Limits {
        deadline: Duration::from_secs(2),
        ..common::test_limits()
    };
    let cache = common::compile_cache();
    let (host, handlers) = common::host_in(&["ledger", saga], store, limits, Some(&cache)).await;
    common::assert_loaded(&host);
    let bus = Arc::new(parallel_you_core::bus::InProcessBus::new());
    let serving = host
        .serve(bus.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    OnBus {
        host,
        bus,
        serving,
        handlers,
    }
}

/// `pyou sagas list|show|retry` against a serving host's SQLite file: a
/// stuck compensation listed, shown and resumed.
pub(crate) fn pyou_sagas_list_show_and_retry(saga: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn parallel_you_core::Store> =
        Arc::new(parallel_you_host::SqliteStore::open_dir(data.path()).unwrap());
    let on = rt.block_on(serve_saga(saga, store));
    let pyou = |args: &[&str]| {
        let out = common::pyou()
            .arg("sagas")
            .arg("--handlers")
            .arg(on.handlers.path())
            .arg("--data")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut events = rt.block_on(subscribe(on.bus.as_ref(), &format!("session.s1.{saga}.#")));
    let mut blocked = rt.block_on(subscribe(on.bus.as_ref(), "session.s1.ledger.blocked"));
    rt.block_on(block_reverts(&on, &mut blocked, true));
    let stuck = rt.block_on(trip(&on, "cli", json!({ "c": "fail" })));
    let t = rt.block_on(trail(&mut events, "failed", |b| b["stuck"] == true));
    let reason = t.last().unwrap().1["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("failed 2 time(s), last with blocked")
            && reason.contains(&format!("pyou sagas retry {stuck}")),
        "{reason}"
    );
    let done = rt.block_on(trip(&on, "cli2", json!({})));
    rt.block_on(trail(&mut events, "completed", |_| true));

    let (code, out, err) = pyou(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("{stuck}  {saga}  failed (stuck)  step=b")),
        "{out}"
    );
    assert!(out.contains(&format!("{done}  {saga}  completed")), "{out}");
    let (code, out, _) = pyou(&["list", "--status", "failed", "--json"]);
    assert_eq!(code, Some(0));
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["id"], stuck.as_str());
    let (code, out, _) = pyou(&["show", &stuck, "--json"]);
    assert_eq!(code, Some(0));
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["instance"]["stuck"], true);
    assert_eq!(shown["compensations"][0]["key"], "cli-b");
    let (code, _, err) = pyou(&["show", "nobody"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no saga instance"), "{err}");

    rt.block_on(block_reverts(&on, &mut blocked, false));
    let (code, out, err) = pyou(&["retry", &stuck]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("retry sent (it was failed)"), "{out}");
    let t = rt.block_on(trail(&mut events, "failed", |b| b["stuck"] == false));
    assert_eq!(
        keys(&t),
        ["compensating", "compensated", "compensated", "failed"]
    );
    let (_, out, _) = pyou(&["list", "--status", "failed", "--json"]);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["stuck"], false);
    rt.block_on(on.serving.shutdown(Duration::from_secs(5)));
}

#[test]
fn pyou_sagas_lists_shows_and_retries_against_the_embedded_store() {
    pyou_sagas_list_show_and_retry("trip");
}
