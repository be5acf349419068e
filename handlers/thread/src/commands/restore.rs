//! `thread.restore`: puts a story or task back as it was (state, sprint,
//! archived flag, block reason), as a saga's compensation does. Restoring
//! what is already there writes nothing and answers the same event, so it
//! may be sent again.

use std::time::Duration;

use parallel_you_sdk::{Ctx, Error, Event};
use serde_json::json;

use crate::bodies::Restore;
use crate::model::{Kind, State};
use crate::store::{
    cancel_timer, now, now_ms, require_sprint, require_thread, save, thread_event, EXPIRE,
};
use crate::time::parse_rfc3339;

pub(crate) fn restore(ctx: &Ctx, b: Restore) -> Result<Vec<Event>, Error> {
    let doc = require_thread(ctx, &b.id)?;
    let old = &doc.value;
    if old.kind == Kind::Saga || b.state == State::Active {
        return Err(Error::validation(format!(
            "`{}` is a saga (or `active` was asked for): only stories and tasks are restored",
            b.id
        ))
        .with_context(json!({ "id": b.id, "kind": old.kind })));
    }
    if let Some(sprint) = &b.sprint_id {
        require_sprint(ctx, sprint)?;
    }
    let blocked_reason = match (b.state, b.blocked_reason) {
        (State::Blocked, Some(r)) => Some(crate::model::check_reason(&r)?),
        (State::Blocked, None) => {
            return Err(Error::validation(
                "restoring `blocked` needs its `blocked_reason`",
            ))
        }
        (_, _) => None,
    };
    let same = old.state == b.state
        && old.sprint_id == b.sprint_id
        && old.archived == b.archived
        && old.blocked_reason == blocked_reason;
    if same {
        return Ok(vec![thread_event("thread.restored", old, doc.version)?]);
    }
    let now_ms = now_ms(ctx);
    let mut next = old.clone();
    next.state = b.state;
    next.sprint_id = b.sprint_id;
    next.blocked_reason = blocked_reason;
    next.archived_at = match (old.archived, b.archived) {
        (_, false) => None,
        (true, true) => old.archived_at.clone(),
        (false, true) => Some(now(ctx)),
    };
    next.archived = b.archived;
    if b.state == State::Done && next.completed_at.is_none() {
        next.completed_at = Some(now(ctx));
    }
    if b.state != State::Done {
        next.completed_at = None;
    }
    next.updated_at = now(ctx);
    // Back to running: its quantum runs on to where it ended, on the same
    // run (a time already past fires at once).
    let timer = if b.state == State::Running && old.state != State::Running {
        let ends = b
            .quantum_ends_at
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or_else(|| now_ms.saturating_add(old.quantum_ms));
        let timer = ctx.schedule(
            Duration::from_millis(ends.saturating_sub(now_ms)),
            EXPIRE,
            &json!({ "id": b.id, "run": next.run }),
        )?;
        next.timer_id = Some(timer.clone());
        next.quantum_ends_at = Some(crate::time::rfc3339(ends));
        Some(timer)
    } else {
        None
    };
    if b.state != State::Running {
        next.timer_id = None;
        next.quantum_ends_at = None;
    }
    let version = match save(ctx, &next, doc.version) {
        Ok(v) => v,
        Err(e) => {
            if let Some(t) = &timer {
                cancel_timer(ctx, t);
            }
            return Err(e);
        }
    };
    if old.state == State::Running && next.state != State::Running {
        if let Some(t) = &old.timer_id {
            cancel_timer(ctx, t);
        }
    }
    ctx.info(format!(
        "restore {}: {} -> {} (version {version})",
        b.id,
        old.state.as_str(),
        next.state.as_str()
    ));
    Ok(vec![thread_event("thread.restored", &next, version)?])
}
