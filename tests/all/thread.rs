//! The thread domain end to end: the real `thread.wasm` component in a
//! real host, over the in-memory store, the in-process bus, and the SQLite
//! store across a restart.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faulty::Faulty;
use common::{body, call, cmd, components, host_with_store};
use parallel_you_core::bus::{Bus, InProcessBus, Subscription};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;
use parallel_you_core::store::{MemoryStore, Store};
use parallel_you_host::host::Serving;
use parallel_you_host::store::SqliteStore;
use parallel_you_host::Host;
use serde_json::{json, Value};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The thread domain loaded in a host of its own, driven as a client
/// drives it: commands in, events out.
struct App {
    host: Arc<Host>,
    store: Arc<dyn Store>,
    _dir: TempDir,
}

impl App {
    /// Over a fresh in-memory store.
    async fn start() -> Self {
        Self::over(Arc::new(MemoryStore::new())).await
    }

    async fn over(store: Arc<dyn Store>) -> Self {
        let (host, _dir) = host_with_store(&["thread"], store.clone()).await;
        Self { host, store, _dir }
    }

    /// Sends a command that must succeed; returns its events as (key, body).
    async fn run(&self, key: &str, b: Value) -> Vec<(String, Value)> {
        self.run_env(cmd(key, &b.to_string())).await
    }

    async fn run_env(&self, c: Envelope) -> Vec<(String, Value)> {
        let key = c.meta.routing_key.clone();
        let events = call(&self.host, c).await;
        assert!(!events.is_empty(), "{key}: no event");
        for e in &events {
            assert_eq!(error_code_of(e), None, "{key} failed: {}", e.body.get());
        }
        events
            .iter()
            .map(|e| (e.meta.routing_key.clone(), body(e)))
            .collect()
    }

    /// Sends a command that must answer exactly one event `expect`; returns
    /// its body.
    async fn one(&self, key: &str, b: Value, expect: &str) -> Value {
        let mut events = self.run(key, b).await;
        assert_eq!(events.len(), 1, "{key}: {events:?}");
        let (got, body) = events.remove(0);
        assert_eq!(got, expect, "{key}");
        body
    }

    /// Sends a command that must be refused with `code`; returns the error
    /// body.
    async fn refused(&self, key: &str, b: Value, code: &str) -> Value {
        let events = call(&self.host, cmd(key, &b.to_string())).await;
        assert_eq!(events.len(), 1, "{key} {b}: {events:?}");
        let e = &events[0];
        assert_eq!(
            e.meta.routing_key,
            "thread.error",
            "{key} {b}: {}",
            e.body.get()
        );
        let err = body(e);
        assert_eq!(err["code"], code, "{key} {b}: {err}");
        err
    }

    /// `thread.<command>` on the thread `id` (with a reason for `block`),
    /// answered by its past-tense event; returns the thread it shows.
    async fn act(&self, command: &str, id: &Value) -> Value {
        let event = format!("thread.{}", past(command));
        self.one(&format!("thread.{command}"), body_for(command, id), &event)
            .await
    }

    /// `thread.<command>` on the thread `id`, refused with `code`.
    async fn refuse(&self, command: &str, id: &Value, code: &str) -> Value {
        self.refused(&format!("thread.{command}"), body_for(command, id), code)
            .await
    }

    async fn saga(&self, b: Value) -> Value {
        self.one("thread.saga.create", b, "thread.saga.created")
            .await
    }

    async fn story(&self, b: Value) -> Value {
        self.one("thread.story.create", b, "thread.story.created")
            .await
    }

    async fn task(&self, b: Value) -> Value {
        self.one("thread.task.create", b, "thread.task.created")
            .await
    }

    async fn get(&self, id: &Value) -> Value {
        self.one("thread.get", json!({ "id": id }), "thread.got")
            .await
    }

    /// Ids of the threads a `thread.list` returns, in its order.
    async fn listed(&self, filter: Value) -> Vec<String> {
        let b = self.one("thread.list", filter, "thread.listed").await;
        let threads = b["threads"].as_array().unwrap();
        assert_eq!(b["count"], threads.len());
        threads
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `thread.sprint.<command>` with `b`, answered by `event`.
    async fn sprint(&self, command: &str, b: Value, event: &str) -> Value {
        let key = format!("thread.sprint.{command}");
        self.one(&key, b, &format!("thread.sprint.{event}")).await
    }

    async fn pending_timers(&self) -> usize {
        self.store
            .due_timers(u64::MAX, usize::MAX)
            .await
            .unwrap()
            .len()
    }

    /// Serves the host on an in-process bus and watches session `session`
    /// (subscribed before serving, so nothing the start fires is missed).
    async fn serve(&self, session: &str) -> Watch {
        let bus = Arc::new(InProcessBus::new());
        let sub = bus
            .subscribe(&format!("session.{session}.#"))
            .await
            .unwrap();
        let serving = self.host.serve(bus.clone()).await.unwrap();
        Watch { sub, serving }
    }
}

/// The past tense a transition's event is named with.
fn past(command: &str) -> &str {
    match command {
        "start" => "started",
        "park" => "parked",
        "block" => "blocked",
        "unblock" => "unblocked",
        "complete" => "completed",
        "archive" => "archived",
        other => panic!("no transition `{other}`"),
    }
}

fn body_for(command: &str, id: &Value) -> Value {
    if command == "block" {
        json!({"id": id, "reason": "waiting"})
    } else {
        json!({"id": id})
    }
}

/// A command on the thread `id`, sent in session `session`.
fn in_session(key: &str, id: &Value, session: &str) -> Envelope {
    cmd(key, &json!({ "id": id }).to_string()).with_session(session)
}

/// Sorted ids of threads, or of ids given as JSON strings.
fn ids(items: &[&Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|t| t.get("id").unwrap_or(t).as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A serving host and the events of one session.
struct Watch {
    sub: Subscription,
    serving: Serving,
}

impl Watch {
    async fn next(&mut self, within: Duration) -> Option<Envelope> {
        tokio::time::timeout(within, self.sub.next())
            .await
            .ok()
            .flatten()
    }

    /// The next event with routing key `key`; the events skipped on the
    /// way are pushed to `skipped`.
    async fn next_keyed(
        &mut self,
        key: &str,
        within: Duration,
        skipped: &mut Vec<Envelope>,
    ) -> Option<Envelope> {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let e = self.next(left).await?;
            if e.meta.routing_key == key {
                return Some(e);
            }
            skipped.push(e);
        }
    }

    /// Asserts that nothing more arrives within `quiet`.
    async fn assert_quiet(&mut self, quiet: Duration, what: &str) {
        if let Some(e) = self.next(quiet).await {
            panic!("{what}: {} {}", e.meta.routing_key, e.body.get());
        }
    }

    fn stop(self) {
        self.serving.stop();
    }
}

// ---------------------------------------------------------------------------
// The life of a saga
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_life_of_a_saga_with_two_stories() {
    let app = App::start().await;
    let c = cmd(
        "thread.saga.create",
        r#"{"title":"Ship v1","quantum":"1h"}"#,
    )
    .with_session("me");
    let created = call(&app.host, c.clone()).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].meta.routing_key, "thread.saga.created");
    assert_eq!(
        created[0].meta.causation_id.as_ref(),
        Some(&c.meta.correlation_id)
    );
    assert_eq!(created[0].topic(), "session.me.thread.saga.created");
    let s = body(&created[0]);
    assert_eq!(s["kind"], "saga");
    assert_eq!(s["state"], "active");
    assert_eq!(s["priority"], 1);
    assert_eq!(s["version"], 1);
    assert_eq!(s["archived"], false);
    let saga_id = s["id"].clone();

    let a = app
        .story(json!({"saga_id": saga_id, "title": "Write the README", "notes": "Cover install and the CLI", "energy": "deep"}))
        .await;
    assert_eq!(a["state"], "ready");
    assert_eq!(a["energy"], "deep");
    assert_eq!(a["saga_id"], saga_id);
    let b = app
        .story(json!({"saga_id": saga_id, "title": "Tag the release", "priority": 2}))
        .await;
    assert_eq!(b["energy"], "moderate");
    assert_eq!(b["priority"], 2);
    let (a_id, b_id) = (a["id"].clone(), b["id"].clone());

    // Start, park, restart.
    let started = app.act("start", &a_id).await;
    assert_eq!(started["state"], "running");
    assert_eq!(started["run"], 1);
    assert_eq!(started["version"], 2);
    assert!(started["timer_id"].is_string());
    assert!(started["quantum_ends_at"].is_string());
    let parked = app.act("park", &a_id).await;
    assert_eq!(parked["state"], "parked");
    assert_eq!(parked["timer_id"], Value::Null);
    let restarted = app.act("start", &a_id).await;
    assert_eq!(restarted["run"], 2);
    assert_ne!(restarted["timer_id"], started["timer_id"]);

    // Block (from running) and unblock.
    let blocked = app
        .one(
            "thread.block",
            json!({"id": a_id, "reason": "waiting for the logo"}),
            "thread.blocked",
        )
        .await;
    assert_eq!(blocked["state"], "blocked");
    assert_eq!(blocked["blocked_reason"], "waiting for the logo");
    let unblocked = app.act("unblock", &a_id).await;
    assert_eq!(unblocked["state"], "ready");
    assert_eq!(unblocked["blocked_reason"], Value::Null);

    // The saga cannot be completed while a story is open.
    let err = app.refuse("complete", &saga_id, "invalid_transition").await;
    assert_eq!(err["context"]["current_state"], "active");
    let open = err["context"]["open_children"].as_array().unwrap();
    assert_eq!(open.len(), 2, "{err}");

    // Complete both stories, then the saga.
    app.act("start", &a_id).await;
    let done = app.act("complete", &a_id).await;
    assert_eq!(done["state"], "done");
    assert_eq!(done["run"], 3);
    assert!(done["completed_at"].is_string());
    app.act("start", &b_id).await;
    app.act("complete", &b_id).await;
    let saga_done = app.act("complete", &saga_id).await;
    assert_eq!(saga_done["state"], "done");

    // Archive one story and the saga.
    let archived = app.act("archive", &a_id).await;
    assert_eq!(archived["archived"], true);
    assert!(archived["archived_at"].is_string());
    assert_eq!(archived["state"], "done");
    app.act("archive", &saga_id).await;
    let got = app.get(&a_id).await;
    assert_eq!(
        got, archived,
        "thread.got shows the state the last event showed"
    );

    // Listings: archived hidden by default, the archive on demand.
    let all = ids(&[&saga_id, &a_id, &b_id]);
    assert_eq!(app.listed(json!({})).await, vec![b_id.as_str().unwrap()]);
    let archive = sorted(app.listed(json!({"archived": true})).await);
    assert_eq!(archive, ids(&[&saga_id, &a_id]));
    let any = sorted(app.listed(json!({"archived": "any"})).await);
    assert_eq!(any, all);
    assert_eq!(
        app.listed(json!({"saga_id": saga_id, "archived": "any", "kind": "story"}))
            .await,
        ids(&[&a_id, &b_id]),
    );
    assert_eq!(
        app.listed(json!({"state": "done", "kind": "saga", "archived": "any"}))
            .await,
        vec![saga_id.as_str().unwrap()]
    );

    // Free text, case-insensitive, over titles and notes.
    assert_eq!(
        app.listed(json!({"text": "readme", "archived": "any"}))
            .await,
        vec![a_id.as_str().unwrap()],
        "a title match"
    );
    assert_eq!(
        app.listed(json!({"text": "THE CLI", "archived": "any"}))
            .await,
        vec![a_id.as_str().unwrap()],
        "a notes match"
    );
    assert!(
        app.listed(json!({"text": "readme"})).await.is_empty(),
        "the archived match stays hidden"
    );
    let both = sorted(
        app.listed(json!({"text": "e", "archived": "any", "kind": "story"}))
            .await,
    );
    assert_eq!(
        both,
        ids(&[&a_id, &b_id]),
        "a thread matching twice is listed once"
    );
    let page = app
        .one(
            "thread.list",
            json!({"archived": "any", "limit": 2}),
            "thread.listed",
        )
        .await;
    assert_eq!(page["count"], 2);
    assert_eq!(page["more"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_listing_pages_with_next_on_the_indexed_store() {
    let data = tempfile::tempdir().unwrap();
    let app = App::over(Arc::new(SqliteStore::open_dir(data.path()).unwrap())).await;
    let mut blocked = Vec::new();
    for i in 0..7 {
        let t = app.task(json!({"title": format!("task {i}")})).await;
        if i % 3 != 1 {
            app.one(
                "thread.block",
                json!({"id": t["id"], "reason": "waiting"}),
                "thread.blocked",
            )
            .await;
            blocked.push(t["id"].as_str().unwrap().to_owned());
        }
    }
    blocked.sort();
    let mut seen = Vec::new();
    let mut after = Value::Null;
    for page in 0.. {
        assert!(page < 5, "paging does not end: {seen:?}");
        let mut filter = json!({"state": "blocked", "limit": 2});
        if !after.is_null() {
            filter["after"] = after.clone();
        }
        let b = app.one("thread.list", filter, "thread.listed").await;
        let ids: Vec<String> = b["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        seen.extend(ids.clone());
        assert_eq!(b["more"], !b["next"].is_null(), "{b}");
        if b["next"].is_null() {
            break;
        }
        assert_eq!(b["next"].as_str(), ids.last().map(String::as_str), "{b}");
        after = b["next"].clone();
    }
    assert_eq!(seen, blocked, "each blocked thread once, in id order");
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

const COMMANDS: [&str; 6] = ["start", "park", "block", "unblock", "complete", "archive"];

/// Drives a fresh task to `state` (plus `archived`) with real commands.
async fn task_in(app: &App, state: &str) -> Value {
    let t = app.task(json!({"title": format!("a {state} task")})).await;
    let id = t["id"].clone();
    let path: &[&str] = match state {
        "ready" => &[],
        "running" => &["start"],
        "parked" => &["park"],
        "blocked" => &["block"],
        "done" => &["start", "complete"],
        "archived" => &["start", "complete", "archive"],
        _ => unreachable!(),
    };
    for step in path {
        app.act(step, &id).await;
    }
    id
}

#[tokio::test]
async fn every_refused_transition_is_invalid_transition() {
    let app = App::start().await;
    let allowed = |state: &str, command: &str| {
        matches!(
            (state, command),
            ("ready", "start" | "park" | "block")
                | ("running", "park" | "block" | "complete")
                | ("parked", "start")
                | ("blocked", "unblock")
                | ("done", "archive")
        )
    };
    let mut refusals = 0;
    for state in ["ready", "running", "parked", "blocked", "done", "archived"] {
        for command in COMMANDS {
            let id = task_in(&app, state).await;
            let before = app.get(&id).await;
            if allowed(state, command) {
                app.act(command, &id).await;
                continue;
            }
            let err = app.refuse(command, &id, "invalid_transition").await;
            let current = if state == "archived" { "done" } else { state };
            assert_eq!(
                err["context"]["current_state"], current,
                "{command} from {state}: {err}"
            );
            assert_eq!(err["context"]["command"], command);
            let message = err["message"].as_str().unwrap();
            assert!(message.contains(&format!("it is {current}")), "{message}");
            assert_eq!(app.get(&id).await, before, "a refusal changes nothing");
            refusals += 1;
        }
    }
    assert_eq!(refusals, 36 - 9, "every pair but the nine allowed ones");

    // Sagas are not worked on directly, and archive only when done.
    let s = app.saga(json!({"title": "s"})).await;
    for command in ["start", "park", "block", "unblock", "archive"] {
        let err = app.refuse(command, &s["id"], "invalid_transition").await;
        assert_eq!(err["context"]["current_state"], "active", "{command}");
    }
    app.act("complete", &s["id"]).await;
    let err = app.refuse("complete", &s["id"], "invalid_transition").await;
    assert_eq!(err["context"]["current_state"], "done");
    // A done saga takes no new stories.
    let err = app
        .refused(
            "thread.story.create",
            json!({"saga_id": s["id"], "title": "late"}),
            "invalid_transition",
        )
        .await;
    assert_eq!(err["context"]["current_state"], "done");
}

#[tokio::test]
async fn missing_and_malformed_things_are_refused() {
    let app = App::start().await;
    let nope = json!("nope");
    for command in COMMANDS {
        let err = app.refuse(command, &nope, "not_found").await;
        assert_eq!(err["context"]["id"], "nope");
    }
    let t = app.task(json!({"title": "a task"})).await;
    let s = app.saga(json!({"title": "s"})).await;
    for (key, b, code) in [
        ("thread.get", json!({"id": "nope"}), "not_found"),
        ("thread.delete", json!({"id": "nope"}), "not_found"),
        (
            "thread.update",
            json!({"id": "nope", "title": "x"}),
            "not_found",
        ),
        (
            "thread.story.create",
            json!({"saga_id": "nope", "title": "x"}),
            "not_found",
        ),
        (
            "thread.story.create",
            json!({"saga_id": t["id"], "title": "under a task"}),
            "validation",
        ),
        (
            "thread.story.create",
            json!({"title": "orphan"}),
            "validation",
        ),
        (
            "thread.saga.create",
            json!({"title": "x", "quantum": "soon"}),
            "validation",
        ),
        (
            "thread.block",
            json!({"id": t["id"], "reason": " "}),
            "validation",
        ),
        ("thread.update", json!({"id": t["id"]}), "validation"),
        ("thread.list", json!({"archived": "maybe"}), "validation"),
        (
            "thread.update",
            json!({"id": s["id"], "energy": "deep"}),
            "validation",
        ),
    ] {
        app.refused(key, b, code).await;
    }
}

#[tokio::test]
async fn ids_come_from_the_message_id_or_the_client() {
    let app = App::start().await;
    let c = cmd("thread.saga.create", r#"{"title":"Ship v1"}"#);
    let events = app.run_env(c.clone()).await;
    let id = events[0].1["id"].as_str().unwrap().to_owned();
    assert_eq!(id, format!("saga_{}", c.meta.message_id.to_lowercase()));
    assert_eq!(events[0].1["quantum"], "50m", "the default quantum");
    // A redelivered command is not run again: still one saga.
    app.run_env(c).await;
    assert_eq!(app.listed(json!({"kind": "saga"})).await, vec![id]);

    let mine = app.saga(json!({"id": "ship-v2", "title": "Ship v2"})).await;
    assert_eq!(mine["id"], "ship-v2");
    let err = app
        .refused(
            "thread.task.create",
            json!({"id": "ship-v2", "title": "taken"}),
            "conflict",
        )
        .await;
    assert_eq!(err["context"]["current_version"], 1);
    let t = app.task(json!({"title": "t"})).await;
    assert!(t["id"].as_str().unwrap().starts_with("task_"));
}

// ---------------------------------------------------------------------------
// Quantum inheritance
// ---------------------------------------------------------------------------

/// The quantum a thread shows and whether it is the thread's own.
fn quantum_of(t: &Value) -> (&Value, &Value) {
    (&t["quantum"], &t["quantum_overridden"])
}

#[tokio::test]
async fn quantum_is_inherited_unless_overridden() {
    let app = App::start().await;
    let s = app.saga(json!({"title": "s", "quantum": "1h"})).await;
    let sid = s["id"].clone();
    let follows = app.story(json!({"saga_id": sid, "title": "follows"})).await;
    assert_eq!(quantum_of(&follows), (&json!("1h"), &json!(false)));
    assert_eq!(follows["quantum_ms"], 3_600_000);
    let own = app
        .story(json!({"saga_id": sid, "title": "own", "quantum": "25m"}))
        .await;
    assert_eq!(quantum_of(&own), (&json!("25m"), &json!(true)));
    let sub_task = app
        .task(json!({"saga_id": sid, "title": "a task under the saga"}))
        .await;
    assert_eq!(sub_task["quantum"], "1h");
    let lone = app.task(json!({"title": "top-level"})).await;
    assert_eq!(quantum_of(&lone), (&json!("50m"), &json!(false)));
    let canonical = app
        .task(json!({"title": "canonical", "quantum": "90m"}))
        .await;
    assert_eq!(canonical["quantum"], "1h30m");

    // Changing the saga's quantum changes its followers, not the others.
    let events = app
        .run("thread.update", json!({"id": sid, "quantum": "1h30m"}))
        .await;
    assert!(
        events.iter().all(|(k, _)| k == "thread.updated"),
        "{events:?}"
    );
    let changed: Vec<&Value> = events.iter().map(|(_, b)| b).collect();
    assert_eq!(changed[0]["id"], sid, "the saga first");
    assert_eq!(changed[0]["quantum"], "1h30m");
    assert_eq!(ids(&changed[1..]), ids(&[&follows["id"], &sub_task["id"]]));
    for child in &changed[1..] {
        assert_eq!(child["quantum"], "1h30m");
        assert_eq!(child["quantum_ms"], 5_400_000);
        assert_eq!(child["quantum_overridden"], false);
        assert_eq!(child["version"], 2);
    }
    assert_eq!(app.get(&own["id"]).await["quantum"], "25m");
    assert_eq!(app.get(&own["id"]).await["version"], 1, "untouched");
    assert_eq!(app.get(&lone["id"]).await["quantum"], "50m");

    // `null` goes back to following the saga; a quantum of its own overrides.
    let update = |id: &Value, quantum: Value| json!({"id": id, "quantum": quantum});
    let back = app
        .one(
            "thread.update",
            update(&own["id"], Value::Null),
            "thread.updated",
        )
        .await;
    assert_eq!(quantum_of(&back), (&json!("1h30m"), &json!(false)));
    let over = app
        .one(
            "thread.update",
            update(&follows["id"], json!("45m")),
            "thread.updated",
        )
        .await;
    assert_eq!(quantum_of(&over), (&json!("45m"), &json!(true)));
    let events = app.run("thread.update", update(&sid, json!("2h"))).await;
    let mut followers: Vec<&Value> = events.iter().skip(1).map(|(_, b)| b).collect();
    followers.sort_by_key(|b| b["id"].as_str().unwrap().to_owned());
    assert_eq!(ids(&followers), ids(&[&own["id"], &sub_task["id"]]));
    assert_eq!(app.get(&follows["id"]).await["quantum"], "45m");

    // Bad quanta are validation errors, and change nothing.
    for bad in ["", "1x", "30m1h", "0m", "25h", "1h 30m"] {
        let err = app
            .refused("thread.update", update(&sid, json!(bad)), "validation")
            .await;
        // The handler names the quantum in `context.quantum`; the host's
        // schema check (its pattern), by pointer in `context.errors`.
        let named =
            err["context"]["quantum"] == bad || err["context"]["errors"][0]["path"] == "/quantum";
        assert!(named, "{bad}: {err}");
    }
    app.refused(
        "thread.story.create",
        json!({"saga_id": sid, "title": "x", "quantum": "fast"}),
        "validation",
    )
    .await;
    assert_eq!(app.get(&sid).await["quantum"], "2h");

    // Other fields.
    let upd = app
        .one(
            "thread.update",
            json!({"id": lone["id"], "title": "renamed", "notes": "n", "priority": 3, "energy": "light"}),
            "thread.updated",
        )
        .await;
    assert_eq!(
        (
            &upd["title"],
            &upd["notes"],
            &upd["priority"],
            &upd["energy"]
        ),
        (&json!("renamed"), &json!("n"), &json!(3), &json!("light"))
    );
}

// ---------------------------------------------------------------------------
// Optimistic concurrency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let app = App::start().await;
    let t = app.task(json!({"title": "t"})).await;
    let id = t["id"].clone();
    assert_eq!(t["version"], 1);
    let v2 = app
        .one(
            "thread.update",
            json!({"id": id, "notes": "x", "expected_version": 1}),
            "thread.updated",
        )
        .await;
    assert_eq!(v2["version"], 2);
    for (key, b) in [
        (
            "thread.update",
            json!({"id": id, "notes": "y", "expected_version": 1}),
        ),
        ("thread.start", json!({"id": id, "expected_version": 1})),
        (
            "thread.block",
            json!({"id": id, "reason": "r", "expected_version": 1}),
        ),
        ("thread.delete", json!({"id": id, "expected_version": 1})),
    ] {
        let err = app.refused(key, b, "conflict").await;
        assert_eq!(err["context"]["current_version"], 2, "{key}");
    }
    let started = app
        .one(
            "thread.start",
            json!({"id": id, "expected_version": 2}),
            "thread.started",
        )
        .await;
    assert_eq!(started["version"], 3);
    assert_eq!(app.get(&id).await["notes"], "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_starts_do_not_both_succeed() {
    let store = Faulty::new(Arc::new(MemoryStore::new()));
    *store.rendezvous.lock().unwrap() = Some("race".into());
    let app = App::over(store.clone()).await;
    let s = app.saga(json!({"title": "s"})).await;
    app.story(json!({"id": "race", "saga_id": s["id"], "title": "raced"}))
        .await;
    store.rendezvous_reads.store(2, Ordering::SeqCst);
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let host = app.host.clone();
            tokio::spawn(async move { call(&host, cmd("thread.start", r#"{"id":"race"}"#)).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for s in starts {
        let events = s.await.unwrap();
        assert_eq!(events.len(), 1);
        outcomes
            .push(error_code_of(&events[0]).unwrap_or_else(|| events[0].meta.routing_key.clone()));
    }
    outcomes.sort();
    // Both read version 1; one write must lose. The loser says `conflict`
    // when the winner committed before its write, and `invalid_transition`
    // when it wrote first, was overtaken at the commit and ran again on the
    // running thread: both are right, and which depends on timing.
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[1], "thread.started", "{outcomes:?}");
    assert!(
        ["conflict", "invalid_transition"].contains(&outcomes[0].as_str()),
        "{outcomes:?}"
    );
    let got = app.get(&json!("race")).await;
    assert_eq!(
        (got["run"].as_u64(), got["version"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        app.pending_timers().await,
        1,
        "the loser cancelled its timer"
    );
}

// ---------------------------------------------------------------------------
// Quantum timers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_short_quantum_expires_once() {
    let app = App::start().await;
    let mut session = app.serve("q1").await;
    let s = app.saga(json!({"title": "s", "quantum": "300ms"})).await;
    let st = app
        .story(json!({"saga_id": s["id"], "title": "quick"}))
        .await;
    assert_eq!(st["quantum"], "300ms");
    let began = Instant::now();
    let started = app
        .run_env(in_session("thread.start", &st["id"], "q1"))
        .await;
    assert_eq!(app.pending_timers().await, 1);
    let expired = session
        .next_keyed(
            "thread.quantum.expired",
            Duration::from_secs(5),
            &mut Vec::new(),
        )
        .await
        .expect("the quantum expires");
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "early: {:?}",
        began.elapsed()
    );
    assert_eq!(expired.meta.session_id.as_deref(), Some("q1"));
    let b = body(&expired);
    assert_eq!(b["id"], st["id"]);
    assert_eq!(b["run"], 1);
    assert_eq!(
        b["state"], "running",
        "the thread keeps running past its quantum"
    );
    assert_eq!(b["timer_id"], Value::Null);
    assert!(b["quantum_expired_at"].is_string());
    assert_eq!(b["version"], started[0].1["version"].as_u64().unwrap() + 1);
    session
        .assert_quiet(Duration::from_millis(700), "expired twice")
        .await;
    assert_eq!(app.pending_timers().await, 0);
    // Completing after the expiry is fine.
    app.act("complete", &st["id"]).await;
    session.stop();
}

#[tokio::test]
async fn completing_parking_or_restarting_cancels_the_quantum() {
    let app = App::start().await;
    let mut session = app.serve("q2").await;
    let s = app.saga(json!({"title": "s"})).await;
    let done = app
        .story(json!({"saga_id": s["id"], "title": "done fast", "quantum": "300ms"}))
        .await;
    let parked = app
        .task(json!({"title": "parked", "quantum": "300ms"}))
        .await;
    let again = app
        .task(json!({"title": "restarted", "quantum": "400ms"}))
        .await;

    for (command, t) in [
        ("start", &done),
        ("complete", &done),
        ("start", &parked),
        ("park", &parked),
        ("start", &again),
        ("park", &again),
        ("start", &again),
    ] {
        let key = format!("thread.{command}");
        app.run_env(in_session(&key, &t["id"], "q2")).await;
    }
    assert_eq!(
        app.pending_timers().await,
        1,
        "only the current run's timer is left"
    );

    // Everything the session sees from here: one expiry, of the second run
    // (the cancelled timers were due before it), then nothing.
    let mut before = Vec::new();
    let expired = session
        .next_keyed(
            "thread.quantum.expired",
            Duration::from_secs(5),
            &mut before,
        )
        .await
        .expect("the current run's quantum expires");
    assert!(
        before
            .iter()
            .all(|e| e.meta.routing_key != "thread.quantum.expired"),
        "{before:?}"
    );
    let expiry = body(&expired);
    assert_eq!(expiry["id"], again["id"]);
    assert_eq!(expiry["run"], 2);
    session
        .assert_quiet(Duration::from_millis(1000), "a cancelled quantum expired")
        .await;
    assert_eq!(app.pending_timers().await, 0);
    session.stop();
}

#[tokio::test]
async fn only_the_timer_of_the_current_run_expires_a_quantum() {
    let app = App::start().await;
    let t = app.task(json!({"title": "t"})).await;
    let started = app.act("start", &t["id"]).await;
    // A client sending the timer's command, even with the right run and
    // the timer's id, is not the timer: the command is internal, and
    // refused.
    let expire = |b: Value| cmd("thread.quantum.expire", &b.to_string());
    let mut forged = expire(json!({"id": t["id"], "run": 1}));
    for message_id in [
        forged.meta.message_id.clone(),
        format!("timer-{}", started["timer_id"].as_str().unwrap()),
    ] {
        forged.meta.message_id = message_id;
        let events = call(&app.host, forged.clone()).await;
        assert_eq!(
            error_code_of(&events[0]).as_deref(),
            Some("forbidden"),
            "{events:?}"
        );
    }
    assert_eq!(app.get(&t["id"]).await, started, "unchanged");
}

#[tokio::test]
async fn a_quantum_timer_survives_a_host_restart() {
    let data = tempfile::tempdir().unwrap();
    let sqlite = || -> Arc<dyn Store> { Arc::new(SqliteStore::open_dir(data.path()).unwrap()) };
    let id;
    {
        let app = App::over(sqlite()).await;
        let t = app
            .task(json!({"title": "survivor", "quantum": "300ms"}))
            .await;
        id = t["id"].clone();
        // Started by a host that is not serving, then gone.
        app.run_env(in_session("thread.start", &id, "r1")).await;
    }
    // Real time: the quantum runs out while no host is up.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let app = App::over(sqlite()).await;
    assert_eq!(app.pending_timers().await, 1, "the timer is on disk");
    let mut session = app.serve("r1").await;
    let expired = session
        .next(Duration::from_secs(5))
        .await
        .expect("fires after the restart");
    assert_eq!(expired.meta.routing_key, "thread.quantum.expired");
    assert_eq!(body(&expired)["id"], id);
    assert_eq!(body(&expired)["run"], 1);
    session
        .assert_quiet(Duration::from_millis(500), "fired twice")
        .await;
    assert_eq!(app.pending_timers().await, 0);
    session.stop();
}

// ---------------------------------------------------------------------------
// Deleting
// ---------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_saga_with_children_needs_cascade() {
    let app = App::start().await;
    let s = app.saga(json!({"title": "s"})).await;
    let a = app.story(json!({"saga_id": s["id"], "title": "a"})).await;
    let b = app.task(json!({"saga_id": s["id"], "title": "b"})).await;
    app.act("start", &a["id"]).await;
    assert_eq!(app.pending_timers().await, 1);

    let err = app
        .refused("thread.delete", json!({"id": s["id"]}), "has_children")
        .await;
    assert_eq!(err["context"]["children"], 2);
    app.get(&s["id"]).await;

    let events = app
        .run("thread.delete", json!({"id": s["id"], "cascade": true}))
        .await;
    assert!(
        events.iter().all(|(k, _)| k == "thread.deleted"),
        "{events:?}"
    );
    let gone: Vec<&Value> = events.iter().map(|(_, b)| b).collect();
    assert_eq!(gone.last().unwrap()["id"], s["id"], "the saga last");
    assert_eq!(ids(&gone), ids(&[&s["id"], &a["id"], &b["id"]]));
    assert!(gone.iter().all(|g| g["deleted_at"].is_string()));
    assert_eq!(
        app.pending_timers().await,
        0,
        "the running story's timer is cancelled"
    );
    for id in [&s["id"], &a["id"], &b["id"]] {
        app.refused("thread.get", json!({"id": id}), "not_found")
            .await;
    }

    let lone = app.task(json!({"title": "lone"})).await;
    let deleted = app
        .one(
            "thread.delete",
            json!({"id": lone["id"], "expected_version": 1}),
            "thread.deleted",
        )
        .await;
    assert_eq!(deleted["title"], "lone");
    assert!(app.listed(json!({"archived": "any"})).await.is_empty());
}

// ---------------------------------------------------------------------------
// Sprints
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_sprint_plans_stories_and_sums_their_quanta() {
    let app = App::start().await;
    let s = app.saga(json!({"title": "s", "quantum": "1h"})).await;
    let a = app
        .story(json!({"saga_id": s["id"], "title": "a", "quantum": "25m"}))
        .await;
    let b = app.story(json!({"saga_id": s["id"], "title": "b"})).await;
    let t = app.task(json!({"title": "not a story"})).await;
    let sprint = app
        .sprint(
            "create",
            json!({"title": "Week 48", "goal": "ship"}),
            "created",
        )
        .await;
    assert!(sprint["id"].as_str().unwrap().starts_with("sprint_"));
    assert_eq!(sprint["version"], 1);
    let sp = sprint["id"].clone();
    let plan = |story: &Value| json!({"sprint_id": sp, "story_id": story["id"]});

    for story in [&a, &b] {
        let added = app.sprint("add_story", plan(story), "story_added").await;
        assert_eq!(added["sprint_id"], sp);
        assert_eq!(added["id"], story["id"]);
    }
    for (b, code) in [
        (plan(&a), "invalid_transition"),
        (plan(&t), "validation"),
        (
            json!({"sprint_id": "nope", "story_id": a["id"]}),
            "not_found",
        ),
    ] {
        app.refused("thread.sprint.add_story", b, code).await;
    }
    let err = app
        .refused(
            "thread.sprint.add_story",
            json!({"sprint_id": sp, "story_id": b["id"], "expected_version": 1}),
            "conflict",
        )
        .await;
    assert_eq!(err["context"]["current_version"], 2);

    app.act("start", &a["id"]).await;
    app.act("complete", &a["id"]).await;
    let report = app.sprint("get", json!({"id": sp}), "got").await;
    assert_eq!(report["sprint"]["title"], "Week 48");
    let mut states: Vec<(&str, &str)> = report["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["title"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    states.sort();
    assert_eq!(states, [("a", "done"), ("b", "ready")]);
    assert_eq!(
        report["totals"],
        json!({"stories": 2, "stories_done": 1, "planned_ms": 5_100_000, "done_ms": 1_500_000, "planned": "1h25m", "done": "25m"})
    );
    assert_eq!(
        app.listed(json!({"sprint_id": sp})).await,
        ids(&[&a["id"], &b["id"]])
    );

    let removed = app.sprint("remove_story", plan(&b), "story_removed").await;
    assert_eq!(removed["sprint_id"], Value::Null);
    app.refused("thread.sprint.remove_story", plan(&b), "not_found")
        .await;
    let report = app.sprint("get", json!({"id": sp}), "got").await;
    assert_eq!(report["totals"]["stories"], 1);
    assert_eq!(report["totals"]["planned"], "25m");
    let all = app.sprint("list", json!({}), "listed").await;
    assert_eq!(all["count"], 1);
    assert_eq!(all["sprints"][0]["id"], sp);

    // Edited over the version read: what is given changes, the rest stays.
    let edited = app
        .sprint(
            "update",
            json!({"id": sp, "title": "Week 49", "expected_version": 1}),
            "updated",
        )
        .await;
    assert_eq!(
        (&edited["title"], &edited["goal"], &edited["version"]),
        (&json!("Week 49"), &json!("ship"), &json!(2))
    );
    let err = app
        .refused(
            "thread.sprint.update",
            json!({"id": sp, "goal": "later", "expected_version": 1}),
            "conflict",
        )
        .await;
    assert_eq!(err["context"]["current_version"], 2);
    for (b, code) in [
        (json!({"id": sp}), "validation"),
        (json!({"id": sp, "title": "  "}), "validation"),
        (json!({"id": "nope", "goal": "x"}), "not_found"),
    ] {
        app.refused("thread.sprint.update", b, code).await;
    }
    let closing = app.sprint("close", json!({"id": sp}), "closing").await;
    assert_eq!(closing["state"], "closing");
    let goal = app
        .sprint("update", json!({"id": sp, "goal": "wrap up"}), "updated")
        .await;
    assert_eq!(
        (&goal["goal"], &goal["state"]),
        (&json!("wrap up"), &json!("closing"))
    );
}

// ---------------------------------------------------------------------------
// Bundling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_handler_is_bundled_and_loaded_by_default() {
    components(); // builds, and installs the bundled handlers
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers/dist");
    let host = Arc::new(Host::new(Default::default(), Arc::new(MemoryStore::new())).unwrap());
    host.load_dir(&dist).await.unwrap();
    let registry = host.registry();
    let thread = registry
        .route("thread.saga.create")
        .expect("thread is bundled");
    assert_eq!(thread.manifest.domain, "thread");
    assert!(registry.route("thread.quantum.expire").is_some());
    assert!(thread
        .manifest
        .commands
        .iter()
        .all(|c| c.body_schema.is_some()));
}
