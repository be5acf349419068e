//! State changes (start, park, block, unblock, complete, archive) and the
//! quantum timer that a start schedules.

use std::time::Duration;

use parallel_you_sdk::{Ctx, Error, Event};
use serde_json::json;

use crate::bodies::{Block, Expire, Target};
use crate::model::{self, Action, Kind, State, Thread};
use crate::store::{
    cancel_timer, now, now_ms, require_thread, save, thread_event, threads, ATTEMPTS, EXPIRE,
};
use crate::validate::{check_expected, check_ref};

pub(crate) fn start(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Start)
}

pub(crate) fn park(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Park)
}

pub(crate) fn block(ctx: &Ctx, b: Block) -> Result<Vec<Event>, Error> {
    let reason = model::check_reason(&b.reason)?;
    transition(ctx, &b.id, b.expected_version, Action::Block(reason))
}

pub(crate) fn unblock(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Unblock)
}

pub(crate) fn complete(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Complete)
}

pub(crate) fn archive(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Archive)
}

/// Applies `action` to the thread `id`, writing over the version read: of
/// two concurrent commands on one thread, the second one's write is refused
/// with `conflict`.
fn transition(
    ctx: &Ctx,
    id: &str,
    expected: Option<u64>,
    action: Action,
) -> Result<Vec<Event>, Error> {
    let doc = require_thread(ctx, id)?;
    check_expected(id, expected, doc.version)?;
    let old = &doc.value;
    let mut next = model::apply(old, &action, now_ms(ctx))?;
    if old.kind == Kind::Saga && action == Action::Complete {
        check_children_done(ctx, old)?;
    }
    // The timer is scheduled before the write so that its id is stored with
    // the run it belongs to; if the write loses, the timer is cancelled.
    let timer = if action == Action::Start {
        let timer = ctx.schedule(
            Duration::from_millis(next.quantum_ms),
            EXPIRE,
            &json!({ "id": id, "run": next.run }),
        )?;
        next.timer_id = Some(timer.clone());
        Some(timer)
    } else {
        None
    };
    let version = match save(ctx, &next, doc.version) {
        Ok(v) => v,
        Err(e) => {
            if let Some(timer) = &timer {
                cancel_timer(ctx, timer);
            }
            return Err(e);
        }
    };
    if old.state == State::Running && next.state != State::Running {
        if let Some(timer) = &old.timer_id {
            cancel_timer(ctx, timer);
        }
    }
    ctx.info(format!(
        "{} {id}: {} -> {} (version {version})",
        action.verb(),
        old.state.as_str(),
        next.state.as_str()
    ));
    Ok(vec![thread_event(action.event(), &next, version)?])
}

/// A saga completes only when every one of its children is done.
fn check_children_done(ctx: &Ctx, saga: &Thread) -> Result<(), Error> {
    let open = threads(ctx).list(json!({
        "saga_id": saga.id,
        "state": { "$ne": "done" },
        "$limit": 20,
    }))?;
    if open.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = open.iter().map(|d| d.id.as_str()).collect();
    let more = if ids.len() >= 20 { ", …" } else { "" };
    Err(Error::invalid_transition(format!(
        "cannot complete saga `{}`: it is active, and not all of its stories and tasks are done (open: {}{more})",
        saga.id,
        ids.join(", ")
    ))
    .with_context(json!({
        "id": saga.id,
        "kind": "saga",
        "command": "complete",
        "current_state": saga.state,
        "open_children": ids,
    })))
}

/// A timer of a started thread fired: if the thread is still running on
/// the run that timer was set for, its quantum has run out.
pub(crate) fn expire(ctx: &Ctx, b: Expire) -> Result<Vec<Event>, Error> {
    check_ref("id", &b.id)?;
    let fired_by = ctx.fired_by_timer();
    for attempt in 1..=ATTEMPTS {
        let Some(doc) = threads(ctx).get(&b.id)? else {
            ctx.info(format!("quantum timer for {} ignored: it is gone", b.id));
            return Ok(vec![]);
        };
        let t = &doc.value;
        let current = t.state == State::Running
            && t.run == b.run
            && fired_by.is_some()
            && t.timer_id.as_deref() == fired_by;
        if !current {
            ctx.info(format!(
                "stale quantum timer for {} (run {}) ignored: it is {} on run {}",
                b.id,
                b.run,
                t.state.as_str(),
                t.run
            ));
            return Ok(vec![]);
        }
        let mut next = t.clone();
        next.timer_id = None;
        next.quantum_expired_at = Some(now(ctx));
        next.updated_at = now(ctx);
        match save(ctx, &next, doc.version) {
            Ok(version) => {
                return Ok(vec![thread_event(
                    "thread.quantum.expired",
                    &next,
                    version,
                )?])
            }
            // Another change (a note, say) got in first: look again.
            Err(e) if e.code() == "conflict" && attempt < ATTEMPTS => {}
            Err(e) => return Err(e),
        }
    }
    Ok(vec![])
}
