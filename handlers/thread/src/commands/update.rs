//! Changing a thread's fields, and a saga's quantum reaching the children
//! that follow it.

use parallel_you_sdk::{Ctx, Error, Event};
use serde_json::json;

use crate::bodies::Update;
use crate::model::{Kind, Thread};
use crate::quantum::Quantum;
use crate::store::{
    now, require_saga, require_thread, save, thread_event, threads, ATTEMPTS, MAX_CHILDREN,
};
use crate::validate::{
    check_expected, check_notes, check_priority, check_quantum, check_ref, check_title,
};

pub(crate) fn update(ctx: &Ctx, b: Update) -> Result<Vec<Event>, Error> {
    check_ref("id", &b.id)?;
    if b.title.is_none()
        && b.notes.is_none()
        && b.priority.is_none()
        && b.quantum.is_none()
        && b.energy.is_none()
    {
        return Err(Error::validation(
            "nothing to update: give `title`, `notes`, `priority`, `quantum` or `energy`",
        ));
    }
    let title = b.title.as_deref().map(check_title).transpose()?;
    let notes = b
        .notes
        .as_deref()
        .map(|n| check_notes("notes", n))
        .transpose()?;
    let priority = b.priority.map(|p| check_priority(Some(p))).transpose()?;
    let own_quantum = match &b.quantum {
        Some(Some(q)) => Some(check_quantum(q)?),
        _ => None,
    };

    let doc = require_thread(ctx, &b.id)?;
    check_expected(&b.id, b.expected_version, doc.version)?;
    let mut next = doc.value.clone();
    if let Some(title) = title {
        next.title = title;
    }
    if let Some(notes) = notes {
        next.notes = notes;
    }
    if let Some(priority) = priority {
        next.priority = priority;
    }
    if let Some(energy) = b.energy {
        if next.kind == Kind::Saga {
            return Err(Error::validation(
                "a saga has no energy band: set it on its stories and tasks",
            ));
        }
        next.energy = Some(energy);
    }
    match (&b.quantum, own_quantum) {
        (_, Some(q)) => next.set_quantum(&q, true),
        // `null`: back to following the saga (or the default).
        (Some(None), None) => {
            let q = match (&next.saga_id, next.kind) {
                (Some(saga_id), Kind::Story | Kind::Task) => {
                    require_saga(ctx, saga_id)?.value.quantum()
                }
                _ => Quantum::default_quantum(),
            };
            next.set_quantum(&q, false);
        }
        _ => {}
    }
    next.updated_at = now(ctx);
    let version = save(ctx, &next, doc.version)?;
    let mut events = vec![thread_event("thread.updated", &next, version)?];
    if next.kind == Kind::Saga && b.quantum.is_some() {
        events.extend(follow_saga(ctx, &next)?);
    }
    Ok(events)
}

/// Gives the saga's quantum to each of its children that does not set its
/// own; one `thread.updated` per child changed.
fn follow_saga(ctx: &Ctx, saga: &Thread) -> Result<Vec<Event>, Error> {
    let q = saga.quantum();
    let children = threads(ctx).list(json!({
        "saga_id": saga.id,
        "quantum_overridden": false,
        "$limit": MAX_CHILDREN,
    }))?;
    let mut events = Vec::new();
    for mut doc in children {
        for attempt in 1..=ATTEMPTS {
            let child = &doc.value;
            if child.quantum_overridden != Some(false) || child.quantum_ms == q.ms {
                break;
            }
            let mut next = child.clone();
            next.set_quantum(&q, false);
            next.updated_at = saga.updated_at.clone();
            match save(ctx, &next, doc.version) {
                Ok(version) => {
                    events.push(thread_event("thread.updated", &next, version)?);
                    break;
                }
                // The child changed meanwhile: look again.
                Err(e) if e.code() == "conflict" && attempt < ATTEMPTS => {
                    match threads(ctx).get(&doc.id)? {
                        Some(fresh) => doc = fresh,
                        None => break,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(events)
}
