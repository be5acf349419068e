//! Closing a sprint: `thread.sprint.close` starts it (open → closing, the
//! `sprintclose` saga then settles the stories), `thread.sprint.mark_closed`
//! ends it (closing → closed) and `thread.sprint.reopen` undoes it
//! (closing or closed → open). The last two are idempotent: asked again,
//! they answer the same event and write nothing, so a saga may resend them.

use parallel_you_sdk::{Ctx, Doc, Error, Event};
use serde_json::json;

use crate::bodies::{CloseSprint, Get};
use crate::model::{Sprint, SprintState};
use crate::store::{now, require_sprint, sprints, versioned};
use crate::validate::check_expected;

pub(crate) fn close(ctx: &Ctx, b: CloseSprint) -> Result<Vec<Event>, Error> {
    let doc = require_sprint(ctx, &b.id)?;
    check_expected(&b.id, b.expected_version, doc.version)?;
    if doc.value.state != SprintState::Open {
        return Err(refusal(&doc.value, "close", "open"));
    }
    if let Some(next) = &b.next_sprint_id {
        if next == &b.id {
            return Err(
                Error::validation("`next_sprint_id` must name another sprint")
                    .with_context(json!({ "id": b.id, "next_sprint_id": next })),
            );
        }
        let next_doc = require_sprint(ctx, next)?;
        if next_doc.value.state != SprintState::Open {
            return Err(Error::invalid_transition(format!(
                "sprint `{next}` is {}: unfinished stories go to an open sprint",
                next_doc.value.state.as_str()
            ))
            .with_context(
                json!({ "next_sprint_id": next, "current_state": next_doc.value.state }),
            ));
        }
    }
    let mut next = doc.value.clone();
    next.state = SprintState::Closing;
    next.next_sprint_id = b.next_sprint_id;
    save(ctx, "thread.sprint.closing", &doc, next)
}

pub(crate) fn mark_closed(ctx: &Ctx, b: Get) -> Result<Vec<Event>, Error> {
    let doc = require_sprint(ctx, &b.id)?;
    match doc.value.state {
        SprintState::Closed => unchanged("thread.sprint.closed", &doc),
        SprintState::Open => Err(refusal(&doc.value, "mark closed", "closing")),
        SprintState::Closing => {
            let mut next = doc.value.clone();
            next.state = SprintState::Closed;
            next.closed_at = Some(now(ctx));
            save(ctx, "thread.sprint.closed", &doc, next)
        }
    }
}

pub(crate) fn reopen(ctx: &Ctx, b: Get) -> Result<Vec<Event>, Error> {
    let doc = require_sprint(ctx, &b.id)?;
    if doc.value.state == SprintState::Open {
        return unchanged("thread.sprint.reopened", &doc);
    }
    let mut next = doc.value.clone();
    next.state = SprintState::Open;
    next.next_sprint_id = None;
    next.closed_at = None;
    save(ctx, "thread.sprint.reopened", &doc, next)
}

/// Writes `next` over the version read and answers it as `key`.
fn save(ctx: &Ctx, key: &str, doc: &Doc<Sprint>, mut next: Sprint) -> Result<Vec<Event>, Error> {
    next.updated_at = now(ctx);
    let version = sprints(ctx)
        .put(&next.id, &next, Some(doc.version))
        .map_err(|e| crate::validate::with_id(e, &next.id))?;
    ctx.info(format!(
        "sprint {}: {} -> {}",
        next.id,
        doc.value.state.as_str(),
        next.state.as_str()
    ));
    Ok(vec![Event::new(key, &versioned(&next, version))?])
}

fn unchanged(key: &str, doc: &Doc<Sprint>) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new(key, &versioned(&doc.value, doc.version))?])
}

fn refusal(sprint: &Sprint, verb: &str, from: &str) -> Error {
    Error::invalid_transition(format!(
        "cannot {verb} sprint `{}`: it is {}; {verb} is allowed from {from}",
        sprint.id,
        sprint.state.as_str()
    ))
    .with_context(json!({ "sprint_id": sprint.id, "current_state": sprint.state }))
}
