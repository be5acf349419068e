//! Creating sagas, stories and tasks.

use parallel_you_sdk::{Ctx, Error, Event};
use serde_json::json;

use crate::bodies::{CreateSaga, CreateWork};
use crate::model::{Energy, Kind, NewThread, State, Thread};
use crate::quantum::Quantum;
use crate::store::{insert, now_ms, require_saga, thread_event, threads};
use crate::validate::{check_notes, check_priority, check_quantum, check_title, new_id};

pub(crate) fn create_saga(ctx: &Ctx, b: CreateSaga) -> Result<Vec<Event>, Error> {
    let title = check_title(&b.title)?;
    let notes = check_notes("notes", &b.notes)?;
    let priority = check_priority(b.priority)?;
    let quantum = match &b.quantum {
        Some(q) => check_quantum(q)?,
        None => Quantum::default_quantum(),
    };
    let id = new_id(&ctx.meta().message_id, "saga", b.id.as_deref())?;
    let saga = Thread::new(
        NewThread {
            id,
            kind: Kind::Saga,
            title,
            notes,
            priority,
            quantum,
            quantum_overridden: false,
            energy: Energy::default(),
            saga_id: None,
        },
        now_ms(ctx),
    );
    let version = insert(&threads(ctx), &saga.id, &saga)?;
    Ok(vec![thread_event("thread.saga.created", &saga, version)?])
}

pub(crate) fn create_story(ctx: &Ctx, b: CreateWork) -> Result<Vec<Event>, Error> {
    if b.saga_id.is_none() {
        return Err(Error::validation(
            "a story belongs to a saga: give its `saga_id` (or create a task instead)",
        ));
    }
    create_work(ctx, Kind::Story, b)
}

pub(crate) fn create_task(ctx: &Ctx, b: CreateWork) -> Result<Vec<Event>, Error> {
    create_work(ctx, Kind::Task, b)
}

fn create_work(ctx: &Ctx, kind: Kind, b: CreateWork) -> Result<Vec<Event>, Error> {
    let title = check_title(&b.title)?;
    let notes = check_notes("notes", &b.notes)?;
    let priority = check_priority(b.priority)?;
    let own = b.quantum.as_deref().map(check_quantum).transpose()?;
    let id = new_id(&ctx.meta().message_id, kind.as_str(), b.id.as_deref())?;
    let inherited = match &b.saga_id {
        Some(saga_id) => {
            let saga = require_saga(ctx, saga_id)?.value;
            if saga.state == State::Done {
                return Err(Error::invalid_transition(format!(
                    "saga `{saga_id}` is done{}: a done saga takes no new stories or tasks",
                    if saga.archived { " and archived" } else { "" },
                ))
                .with_context(json!({
                    "saga_id": saga_id,
                    "current_state": saga.state,
                    "archived": saga.archived,
                })));
            }
            saga.quantum()
        }
        None => Quantum::default_quantum(),
    };
    let overridden = own.is_some();
    let thread = Thread::new(
        NewThread {
            id,
            kind,
            title,
            notes,
            priority,
            quantum: own.unwrap_or(inherited),
            quantum_overridden: overridden,
            energy: b.energy.unwrap_or_default(),
            saga_id: b.saga_id,
        },
        now_ms(ctx),
    );
    let version = insert(&threads(ctx), &thread.id, &thread)?;
    let key = match kind {
        Kind::Story => "thread.story.created",
        _ => "thread.task.created",
    };
    Ok(vec![thread_event(key, &thread, version)?])
}
