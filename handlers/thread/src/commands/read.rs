//! Reading one thread and listing threads.

use parallel_you_sdk::{Ctx, Doc, Error, Event};
use serde_json::{json, Map, Value};

use crate::bodies::{Archived, Get, List};
use crate::model::Thread;
use crate::store::{require_thread, thread_event, threads, versioned_all};
use crate::validate::{check_ref, DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT_CHARS};

pub(crate) fn get(ctx: &Ctx, b: Get) -> Result<Vec<Event>, Error> {
    let doc = require_thread(ctx, &b.id)?;
    Ok(vec![thread_event("thread.got", &doc.value, doc.version)?])
}

/// The store filter a `thread.list` runs (text searches titles and notes
/// with `$or`) and the most threads shown. Threads are listed by id; a
/// page continues `$after` the id the previous answer gave as `next`.
pub(crate) fn list_filters(b: &List) -> Result<(Value, usize), Error> {
    let limit = b.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::validation(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let mut base = Map::new();
    if let Some(kind) = b.kind {
        base.insert("kind".into(), json!(kind));
    }
    if let Some(state) = b.state {
        base.insert("state".into(), json!(state));
    }
    match b.archived {
        Archived::Hide => {
            base.insert("archived".into(), json!(false));
        }
        Archived::Only => {
            base.insert("archived".into(), json!(true));
        }
        Archived::Any => {}
    }
    if let Some(saga_id) = &b.saga_id {
        check_ref("saga_id", saga_id)?;
        base.insert("saga_id".into(), json!(saga_id));
    }
    if let Some(sprint_id) = &b.sprint_id {
        check_ref("sprint_id", sprint_id)?;
        base.insert("sprint_id".into(), json!(sprint_id));
    }
    if let Some(after) = &b.after {
        check_ref("after", after)?;
        base.insert("$after".into(), json!(after));
    }
    // One more than shown, to tell whether there are more.
    base.insert("$limit".into(), json!(limit + 1));
    let text = b.text.as_deref().map(str::trim).unwrap_or_default();
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::validation(format!(
            "`text` must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    if !text.is_empty() {
        base.insert(
            "$or".into(),
            json!([
                { "title": { "$contains": text } },
                { "notes": { "$contains": text } },
            ]),
        );
    }
    Ok((Value::Object(base), limit))
}

pub(crate) fn list(ctx: &Ctx, b: List) -> Result<Vec<Event>, Error> {
    let (filter, limit) = list_filters(&b)?;
    let found: Vec<Doc<Thread>> = threads(ctx).list(filter)?;
    let more = found.len() > limit;
    let page = &found[..found.len().min(limit)];
    // The id to pass as `after` for the next page; null on the last.
    let next = if more {
        page.last().map(|d| d.id.clone())
    } else {
        None
    };
    let shown = versioned_all(page.iter());
    Ok(vec![Event::new(
        "thread.listed",
        &json!({ "threads": shown, "count": shown.len(), "more": more, "next": next }),
    )?])
}
