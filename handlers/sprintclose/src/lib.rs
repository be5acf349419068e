//! `sprintclose`, a Parallel You saga (`parallel_you_sdk::saga`): closing
//! a sprint.
//!
//! `thread.sprint.close {id, next_sprint_id?}` puts the sprint in
//! `closing` and its `thread.sprint.closing` event starts an instance
//! (keyed by that command). Its steps:
//!
//! 1. `read`: `thread.sprint.get`, keeping each story as it was (undone by
//!    `thread.sprint.reopen`, which runs last when anything fails);
//! 2. `park`: `thread.park` each running story (its quantum timer is
//!    cancelled by the park), over the version read;
//! 3. `archive`: `thread.archive` each done story that is not archived;
//! 4. `move`: each unfinished story to the next sprint
//!    (`thread.sprint.add_story`) or to the backlog
//!    (`thread.sprint.remove_story`);
//! 5. `close`: `thread.sprint.mark_closed`.
//!
//! Parks, archives and moves are undone by `thread.restore` with the story
//! as it was read, last first. A story changed meanwhile fails its step
//! with `conflict` (the writes are over the version read); a step without
//! all its answers in 10 s is tried again once, then fails with `timeout`.
//!
//! The state is at schema version 1 (the SDK's default); a version that
//! changes its shape raises it and adds a `migrate`.

use std::time::Duration;

use parallel_you_sdk::saga::{Request, Retry, Saga, Step};
use parallel_you_sdk::{export_reactor, CommandToSend, Error, EventReactor, Reactor};
use serde_json::{json, Value};

struct SprintClose;

/// How long a step waits for all its answers, each try.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

const RETRY: Retry = Retry {
    max_attempts: 2,
    first_backoff: Duration::from_millis(500),
    max_backoff: Duration::from_secs(5),
    on: &["timeout", "unavailable"],
};

impl EventReactor for SprintClose {
    fn reactor() -> Reactor {
        saga().reactor()
    }
}

export_reactor!(SprintClose);

pub(crate) fn saga() -> Saga {
    Saga::new("sprintclose", env!("CARGO_PKG_VERSION"))
        .starts_on("thread.sprint.closing", |ev| {
            Ok(Some(json!({
                "sprint_id": ev.body["id"],
                "next_sprint_id": ev.body["next_sprint_id"],
            })))
        })
        .step(
            Step::new("read", |s| {
                Ok(vec![Request::new(
                    sprint_of(s)?,
                    "thread.sprint.get",
                    &json!({ "id": sprint_of(s)? }),
                )?])
            })
            .completes_on("thread.sprint.got", "/sprint/id")
            .fails_on("thread.error", "/context/sprint_id")
            .records(|s, _, got| {
                s["stories"] = Value::Array(
                    got["stories"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(as_read)
                        .collect(),
                );
                Ok(())
            })
            .compensate(
                |_, key| {
                    CommandToSend::new("thread.sprint.reopen", &json!({ "id": key })).map(Some)
                },
                "thread.sprint.reopened",
                "/id",
            )
            .timeout(STEP_TIMEOUT)
            .retry(RETRY),
        )
        .step(story_step(
            "park",
            |st| st["state"] == "running",
            |s, st| Request::new(id_of(st)?, "thread.park", &versioned(s, st)?),
        ))
        .step(story_step(
            "archive",
            |st| st["state"] == "done" && st["archived"] != true,
            |s, st| Request::new(id_of(st)?, "thread.archive", &versioned(s, st)?),
        ))
        .step(story_step(
            "move",
            |st| st["state"] != "done",
            |s, st| {
                let mut body = versioned(s, st)?;
                let id = body["id"].take();
                body["story_id"] = id;
                if let Some(o) = body.as_object_mut() {
                    o.remove("id");
                }
                let (key, sprint) = match s["next_sprint_id"].as_str() {
                    Some(next) => ("thread.sprint.add_story", json!(next)),
                    None => ("thread.sprint.remove_story", s["sprint_id"].clone()),
                };
                body["sprint_id"] = sprint;
                Request::new(id_of(st)?, key, &body)
            },
        ))
        .step(
            Step::new("close", |s| {
                Ok(vec![Request::new(
                    sprint_of(s)?,
                    "thread.sprint.mark_closed",
                    &json!({ "id": sprint_of(s)? }),
                )?])
            })
            .completes_on("thread.sprint.closed", "/id")
            .fails_on("thread.error", "/context/sprint_id")
            .timeout(STEP_TIMEOUT)
            .retry(RETRY),
        )
        .sends(&[
            "thread.sprint.get",
            "thread.sprint.reopen",
            "thread.park",
            "thread.archive",
            "thread.sprint.add_story",
            "thread.sprint.remove_story",
            "thread.sprint.mark_closed",
            "thread.restore",
        ])
}

/// A step over the stories read that `pick` selects, each sent as `make`
/// says, undone by restoring the story as read. Each answer's version is
/// kept, so the next step writes over it.
fn story_step(
    name: &'static str,
    pick: fn(&Value) -> bool,
    make: fn(&Value, &Value) -> Result<Request, Error>,
) -> Step {
    Step::new(name, move |s| {
        s["stories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|st| pick(st))
            .map(|st| make(s, st))
            .collect()
    })
    .completes_on(done_event(name), "/id")
    .completes_on(also_done(name), "/id")
    .fails_on("thread.error", "/context/id")
    .fails_on("thread.error", "/context/story_id")
    .records(|s, key, answer| {
        s["versions"][key] = answer["version"].clone();
        Ok(())
    })
    .compensate(restore, "thread.restored", "/id")
    .timeout(STEP_TIMEOUT)
    .retry(RETRY)
}

fn done_event(step: &str) -> &'static str {
    match step {
        "park" => "thread.parked",
        "archive" => "thread.archived",
        _ => "thread.sprint.story_added",
    }
}

fn also_done(step: &str) -> &'static str {
    match step {
        "move" => "thread.sprint.story_removed",
        other => done_event(other),
    }
}

/// `thread.restore` of the story `key` as it was read.
fn restore(s: &Value, key: &str) -> Result<Option<CommandToSend>, Error> {
    let Some(st) = stories(s).find(|st| st["id"] == key) else {
        return Ok(None);
    };
    CommandToSend::new(
        "thread.restore",
        &json!({
            "id": key,
            "state": st["state"],
            "sprint_id": st["sprint_id"],
            "archived": st["archived"],
            "blocked_reason": st["blocked_reason"],
            "quantum_ends_at": st["quantum_ends_at"],
        }),
    )
    .map(Some)
}

/// `{id, expected_version}` of a story: the version its last answer in
/// this instance had, or the one read (0: not known, so none).
fn versioned(s: &Value, st: &Value) -> Result<Value, Error> {
    let id = id_of(st)?;
    let version = s["versions"][id]
        .as_u64()
        .or_else(|| st["version"].as_u64())
        .unwrap_or(0);
    let mut body = json!({ "id": id });
    if version > 0 {
        body["expected_version"] = json!(version);
    }
    Ok(body)
}

/// What is kept of a story read: enough to send the steps and to put it
/// back.
fn as_read(st: &Value) -> Value {
    json!({
        "id": st["id"],
        "version": st["version"],
        "state": st["state"],
        "sprint_id": st["sprint_id"],
        "archived": st["archived"],
        "blocked_reason": st["blocked_reason"],
        "quantum_ends_at": st["quantum_ends_at"],
    })
}

fn stories(s: &Value) -> impl Iterator<Item = &Value> {
    s["stories"].as_array().into_iter().flatten()
}

fn id_of(st: &Value) -> Result<&str, Error> {
    st["id"]
        .as_str()
        .ok_or_else(|| Error::validation("a story read without an `id`"))
}

fn sprint_of(s: &Value) -> Result<&str, Error> {
    s["sprint_id"]
        .as_str()
        .ok_or_else(|| Error::validation("the instance has no `sprint_id`"))
}

#[cfg(test)]
mod tests;
