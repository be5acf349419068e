//! Native tests of the saga's declaration: what each step sends from the
//! stories read, and what undoes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::saga;

fn state() -> Value {
    json!({
        "sprint_id": "s1",
        "next_sprint_id": "s2",
        "stories": [
            { "id": "run", "version": 4, "state": "running", "sprint_id": "s1", "archived": false, "blocked_reason": null, "quantum_ends_at": "2026-12-01T10:00:00.000Z" },
            { "id": "fin", "version": 7, "state": "done", "sprint_id": "s1", "archived": false, "blocked_reason": null, "quantum_ends_at": null },
            { "id": "old", "version": 9, "state": "done", "sprint_id": "s1", "archived": true, "blocked_reason": null, "quantum_ends_at": null },
            { "id": "wait", "version": 2, "state": "blocked", "sprint_id": "s1", "archived": false, "blocked_reason": "review", "quantum_ends_at": null },
        ],
        "versions": { "run": 5 },
    })
}

fn sent(step: &str, s: &Value) -> Vec<(String, String, Value)> {
    let saga = saga();
    let requests = saga.step_named(step).unwrap().requests(s).unwrap();
    requests
        .into_iter()
        .map(|r| {
            (
                r.key,
                r.command.routing_key.clone(),
                r.command.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_steps_follow_the_stories_read() {
    let s = state();
    assert_eq!(
        sent("read", &s),
        [(
            "s1".into(),
            "thread.sprint.get".into(),
            json!({ "id": "s1" })
        )]
    );
    assert_eq!(
        sent("park", &s),
        [(
            "run".into(),
            "thread.park".into(),
            json!({ "id": "run", "expected_version": 5 })
        )]
    );
    assert_eq!(
        sent("archive", &s),
        [(
            "fin".into(),
            "thread.archive".into(),
            json!({ "id": "fin", "expected_version": 7 })
        )]
    );
    assert_eq!(
        sent("move", &s),
        [
            (
                "run".into(),
                "thread.sprint.add_story".into(),
                json!({ "story_id": "run", "sprint_id": "s2", "expected_version": 5 })
            ),
            (
                "wait".into(),
                "thread.sprint.add_story".into(),
                json!({ "story_id": "wait", "sprint_id": "s2", "expected_version": 2 })
            ),
        ]
    );
    let mut backlog = state();
    backlog["next_sprint_id"] = Value::Null;
    assert_eq!(sent("move", &backlog)[1].1, "thread.sprint.remove_story");
    assert_eq!(sent("move", &backlog)[1].2["sprint_id"], "s1");
    assert_eq!(
        sent("close", &s),
        [(
            "s1".into(),
            "thread.sprint.mark_closed".into(),
            json!({ "id": "s1" })
        )]
    );
}

#[test]
fn a_story_is_restored_as_it_was_read() {
    let saga = saga();
    let undo = saga
        .step_named("park")
        .unwrap()
        .compensation(&state(), "run")
        .unwrap()
        .unwrap();
    assert_eq!(undo.routing_key, "thread.restore");
    assert_eq!(
        undo.parse::<Value>().unwrap(),
        json!({ "id": "run", "state": "running", "sprint_id": "s1", "archived": false, "blocked_reason": null, "quantum_ends_at": "2026-12-01T10:00:00.000Z" })
    );
    let reopen = saga
        .step_named("read")
        .unwrap()
        .compensation(&state(), "s1")
        .unwrap()
        .unwrap();
    assert_eq!(reopen.routing_key, "thread.sprint.reopen");
    assert!(saga
        .step_named("close")
        .unwrap()
        .compensation(&state(), "s1")
        .unwrap()
        .is_none());
}

#[test]
fn its_manifest_subscribes_to_the_answers_and_declares_what_it_sends() {
    let m = saga().reactor().manifest();
    assert_eq!(m.domain, "sprintclose");
    assert_eq!(m.subscribes[0], "thread.sprint.closing");
    for key in [
        "thread.sprint.got",
        "thread.parked",
        "thread.archived",
        "thread.restored",
        "thread.error",
        "thread.sprint.closed",
    ] {
        assert!(m.subscribes.contains(&key.to_owned()), "{key}");
    }
    assert_eq!(m.sends.len(), 8);
}
