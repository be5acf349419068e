//! Native tests of what the handler decides before it calls the host:
//! routing, body validation, ids, list filters. (The host imports panic
//! outside wasm; the end-to-end tests in `tests/all/thread.rs` cover the rest.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parallel_you_sdk::{Ctx, Error, Handler, Meta};
use serde_json::{json, Value};

use crate::bodies::{List, Update};
use crate::commands::read::list_filters;
use crate::model::{Action, Energy, Kind, NewThread, Thread};
use crate::quantum::Quantum;
use crate::store::thread_event;
use crate::validate::{check_expected, new_id, with_id, DEFAULT_LIMIT};
use crate::ThreadDomain;

const MESSAGE_ID: &str = "01KAR0000000000000000000AB";

fn ctx(key: &str) -> Ctx {
    Ctx::new(Meta {
        message_id: MESSAGE_ID.into(),
        routing_key: key.into(),
        reply_channel: None,
        correlation_id: "c".into(),
        causation_id: None,
        session_id: None,
        timestamp_ms: 1_700_000_000_000,
        user_id: None,
    })
}

/// Runs a command that must be refused before it touches the store.
fn refused(key: &str, body: &str) -> Error {
    ThreadDomain::router()
        .dispatch(&ctx(key), body)
        .expect_err("refused")
}

#[test]
fn manifest_declares_every_command_with_a_schema() {
    let m = ThreadDomain::router().manifest();
    assert_eq!(m.domain, "thread");
    assert_eq!(m.commands.len(), 24);
    for c in &m.commands {
        assert!(c.routing_key.starts_with("thread."), "{}", c.routing_key);
        let schema: Value = serde_json::from_str(c.body_schema.as_deref().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", c.routing_key));
        assert_eq!(schema["type"], "object", "{}", c.routing_key);
    }
    for e in &m.events {
        assert!(e.starts_with("thread."), "{e}");
    }
    // Every transition's event is declared.
    for a in [
        Action::Start,
        Action::Park,
        Action::Block(String::new()),
        Action::Unblock,
        Action::Complete,
        Action::Archive,
    ] {
        assert!(m.events.iter().any(|e| e == a.event()), "{}", a.event());
    }
}

#[test]
fn bodies_are_validated_before_anything_is_read() {
    let cases = [
        ("thread.saga.create", r#"{}"#),
        ("thread.saga.create", r#"{"title":"   "}"#),
        ("thread.saga.create", r#"{"title":"x","quantum":"5x"}"#),
        ("thread.saga.create", r#"{"title":"x","quantum":"0m"}"#),
        ("thread.saga.create", r#"{"title":"x","quantum":25}"#),
        ("thread.saga.create", r#"{"title":"x","priority":101}"#),
        ("thread.saga.create", r#"{"title":"x","priority":-1}"#),
        ("thread.saga.create", r#"{"title":"x","id":"has space"}"#),
        ("thread.saga.create", r#"{"title":"x","id":""}"#),
        ("thread.saga.create", r#"{"title":"x","tittle":"y"}"#),
        ("thread.story.create", r#"{"title":"no saga"}"#),
        (
            "thread.story.create",
            r#"{"saga_id":"s","title":"x","energy":"frantic"}"#,
        ),
        ("thread.task.create", r#"{"title":"x","quantum":"1h1h"}"#),
        ("thread.update", r#"{"id":"x"}"#),
        ("thread.update", r#"{"id":"x","quantum":"2d"}"#),
        ("thread.update", r#"{"id":"x","title":""}"#),
        ("thread.update", r#"{"id":"","title":"y"}"#),
        ("thread.start", r#"{}"#),
        ("thread.start", r#"{"id":"x","expected_version":-1}"#),
        ("thread.block", r#"{"id":"x"}"#),
        ("thread.block", r#"{"id":"x","reason":"  "}"#),
        ("thread.list", r#"{"archived":"yes"}"#),
        ("thread.list", r#"{"kind":"epic"}"#),
        ("thread.list", r#"{"state":"sleeping"}"#),
        ("thread.list", r#"{"limit":0}"#),
        ("thread.list", r#"{"limit":501}"#),
        ("thread.sprint.create", r#"{"title":""}"#),
        ("thread.sprint.update", r#"{"id":"s"}"#),
        ("thread.sprint.update", r#"{"id":"s","expected_version":3}"#),
        ("thread.sprint.update", r#"{"id":"s","title":""}"#),
        ("thread.sprint.update", r#"{"id":"s","title":"   "}"#),
        ("thread.sprint.update", r#"{"id":"","title":"y"}"#),
        ("thread.sprint.update", r#"{"id":"s","state":"closed"}"#),
        ("thread.sprint.add_story", r#"{"sprint_id":"s"}"#),
        ("thread.sprint.list", r#"{"x":1}"#),
        ("thread.quantum.expire", r#"{"id":"x"}"#),
    ];
    for (key, body) in cases {
        let e = refused(key, body);
        assert_eq!(e.code(), "validation", "{key} {body}: {e}");
    }
    let e = refused("thread.saga.create", r#"{"title":"x","quantum":"30m1h"}"#);
    assert_eq!(e.context().unwrap()["quantum"], "30m1h");
    assert_eq!(refused("thread.nope", "{}").code(), "unknown_routing_key");
}

#[test]
fn ids_come_from_the_message_id_or_the_client() {
    assert_eq!(
        new_id(MESSAGE_ID, "saga", None).unwrap(),
        "saga_01kar0000000000000000000ab"
    );
    assert_eq!(
        new_id("timer-01ABC", "story", None).unwrap(),
        "story_timer-01abc"
    );
    assert_eq!(new_id("m", "task", Some("my-Task_1")).unwrap(), "my-Task_1");
    for bad in ["", "a b", "ä", "a.b", &"x".repeat(65)] {
        assert_eq!(
            new_id("m", "task", Some(bad)).unwrap_err().code(),
            "validation",
            "{bad:?}"
        );
    }
    assert!(new_id("...", "task", None).is_err());
}

fn filters(body: &str) -> (Vec<Value>, usize) {
    let b: List = serde_json::from_str(body).unwrap();
    let (f, limit) = list_filters(&b).unwrap();
    (vec![f], limit)
}

#[test]
fn list_filters_hide_the_archive_unless_asked() {
    let (f, limit) = filters("{}");
    assert_eq!(limit, DEFAULT_LIMIT);
    assert_eq!(f, vec![json!({"archived": false, "$limit": 101})]);
    let (f, _) = filters(r#"{"archived": true, "kind": "story", "limit": 5}"#);
    assert_eq!(
        f,
        vec![json!({"archived": true, "kind": "story", "$limit": 6})]
    );
    let (f, _) = filters(r#"{"archived": "any", "state": "parked", "saga_id": "s1"}"#);
    assert_eq!(
        f,
        vec![json!({"state": "parked", "saga_id": "s1", "$limit": 101})]
    );
    let (f, _) = filters(r#"{"sprint_id": "sp", "archived": false}"#);
    assert_eq!(
        f,
        vec![json!({"sprint_id": "sp", "archived": false, "$limit": 101})]
    );
}

#[test]
fn text_searches_titles_and_notes() {
    let (f, _) = filters(r#"{"text": "  Review ", "kind": "task"}"#);
    assert_eq!(
        f,
        vec![json!({
            "archived": false,
            "kind": "task",
            "$or": [{"title": {"$contains": "Review"}}, {"notes": {"$contains": "Review"}}],
            "$limit": 101
        })]
    );
    let (f, _) = filters(r#"{"text": "   "}"#);
    assert_eq!(
        f,
        vec![json!({"archived": false, "$limit": 101})],
        "blank text filters nothing"
    );
    let (f, _) = filters(r#"{"after": "t-9", "limit": 2}"#);
    assert_eq!(
        f,
        vec![json!({"archived": false, "$after": "t-9", "$limit": 3})]
    );
    let long = json!({ "text": "x".repeat(201) }).to_string();
    let b: List = serde_json::from_str(&long).unwrap();
    assert_eq!(list_filters(&b).unwrap_err().code(), "validation");
}

#[test]
fn update_tells_null_from_absent() {
    let u: Update = serde_json::from_str(r#"{"id":"x","title":"t"}"#).unwrap();
    assert_eq!(u.quantum, None);
    let u: Update = serde_json::from_str(r#"{"id":"x","quantum":null}"#).unwrap();
    assert_eq!(u.quantum, Some(None));
    let u: Update = serde_json::from_str(r#"{"id":"x","quantum":"1h"}"#).unwrap();
    assert_eq!(u.quantum, Some(Some("1h".into())));
}

#[test]
fn conflicts_name_the_current_version() {
    assert!(check_expected("x", None, 3).is_ok());
    assert!(check_expected("x", Some(3), 3).is_ok());
    let e = check_expected("x", Some(2), 3).unwrap_err();
    assert_eq!(e.code(), "conflict");
    assert_eq!(e.context().unwrap()["current_version"], 3);
    assert_eq!(e.context().unwrap()["id"], "x");
    let store_said = with_id(Error::conflict(7), "y");
    assert_eq!(store_said.context().unwrap()["current_version"], 7);
    assert_eq!(store_said.context().unwrap()["id"], "y");
    assert_eq!(with_id(Error::not_found("z"), "y").code(), "not_found");
}

#[test]
fn events_carry_the_version_next_to_the_fields() {
    let t = Thread::new(
        NewThread {
            id: "task_1".into(),
            kind: Kind::Task,
            title: "t".into(),
            notes: String::new(),
            priority: 1,
            quantum: Quantum::default_quantum(),
            quantum_overridden: false,
            energy: Energy::default(),
            saga_id: None,
        },
        0,
    );
    let e = thread_event("thread.task.created", &t, 4).unwrap();
    let body: Value = serde_json::from_str(&e.body).unwrap();
    assert_eq!(body["version"], 4);
    assert_eq!(body["id"], "task_1");
    assert_eq!(body["quantum"], "50m");
    assert_eq!(body["quantum_ms"], 3_000_000);
    assert_eq!(body["state"], "ready");
    assert_eq!(body["energy"], "moderate");
    assert_eq!(body["saga_id"], Value::Null);
    let back: Thread = serde_json::from_value(body).unwrap();
    assert_eq!(back, t, "the stored shape round-trips");
}
