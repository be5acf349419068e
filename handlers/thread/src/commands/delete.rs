//! Deleting threads, a saga's children with it on `cascade`.

use parallel_you_sdk::{Ctx, Error, Event};
use serde_json::{json, Value};

use crate::bodies::Delete;
use crate::model::{Kind, State};
use crate::store::{cancel_timer, now, require_thread, threads, versioned, MAX_CHILDREN};
use crate::validate::check_expected;

pub(crate) fn delete(ctx: &Ctx, b: Delete) -> Result<Vec<Event>, Error> {
    let doc = require_thread(ctx, &b.id)?;
    // The store's delete takes no expected version: this check is as good
    // as the read it is based on.
    check_expected(&b.id, b.expected_version, doc.version)?;
    let mut doomed = Vec::new();
    if doc.value.kind == Kind::Saga {
        let children = threads(ctx).list(json!({ "saga_id": b.id, "$limit": MAX_CHILDREN }))?;
        if !children.is_empty() && !b.cascade {
            let ids: Vec<&str> = children.iter().map(|d| d.id.as_str()).take(20).collect();
            return Err(Error::new(
                "has_children",
                format!(
                    "saga `{}` has {} stories or tasks: delete them first, or send `\"cascade\": true` to delete them with it",
                    b.id,
                    children.len()
                ),
            )
            .with_context(json!({ "id": b.id, "children": children.len(), "child_ids": ids })));
        }
        doomed = children;
    }
    // Children first: if this stops half-way, the saga is still there to
    // delete again.
    doomed.push(doc);
    let deleted_at = now(ctx);
    let mut events = Vec::new();
    for d in doomed {
        if threads(ctx).delete(&d.id)? {
            if let (State::Running, Some(timer)) = (d.value.state, &d.value.timer_id) {
                cancel_timer(ctx, timer);
            }
            let mut body = serde_json::to_value(versioned(&d.value, d.version))?;
            if let Value::Object(map) = &mut body {
                map.insert("deleted_at".into(), Value::String(deleted_at.clone()));
            }
            events.push(Event::new("thread.deleted", &body)?);
        }
    }
    Ok(events)
}
