//! The domain's collections, reads that must find something, writes that
//! name what they conflict with, and the events that carry documents.

use parallel_you_sdk::{Collection, Ctx, Doc, Error, Event};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::model::{Kind, Sprint, Thread};
use crate::time;
use crate::validate::{check_ref, current_version, with_id};

/// The collection of every thread (sagas, stories and tasks).
pub(crate) const THREADS: &str = "threads";
const SPRINTS: &str = "sprints";
/// The command the quantum timer delivers.
pub(crate) const EXPIRE: &str = "thread.quantum.expire";
/// Most children a saga's cascades (quantum, delete) reach.
pub(crate) const MAX_CHILDREN: usize = 10_000;
/// Attempts at a write that lost a race to another writer, where retrying
/// on the newer version is safe (following a saga's quantum, expiring).
pub(crate) const ATTEMPTS: usize = 5;

/// A document as events carry it: its fields plus its store version.
#[derive(Serialize)]
pub(crate) struct Versioned<'a, T> {
    #[serde(flatten)]
    value: &'a T,
    version: u64,
}

pub(crate) fn versioned<T: Serialize>(value: &T, version: u64) -> Versioned<'_, T> {
    Versioned { value, version }
}

/// Documents as a listing event carries them.
pub(crate) fn versioned_all<'a, T: Serialize + 'a>(
    docs: impl IntoIterator<Item = &'a Doc<T>>,
) -> Vec<Versioned<'a, T>> {
    docs.into_iter()
        .map(|d| versioned(&d.value, d.version))
        .collect()
}

pub(crate) fn thread_event(key: &str, thread: &Thread, version: u64) -> Result<Event, Error> {
    Event::new(key, &versioned(thread, version))
}

pub(crate) fn threads(ctx: &Ctx) -> Collection<'static, Thread> {
    ctx.collection(THREADS)
}

pub(crate) fn sprints(ctx: &Ctx) -> Collection<'static, Sprint> {
    ctx.collection(SPRINTS)
}

/// The document `id` of `coll`, which the body names in `field`; a missing
/// one is `not_found` ("no <noun> `id`").
fn require<T: DeserializeOwned>(
    coll: Collection<'_, T>,
    field: &str,
    noun: &str,
    id: &str,
) -> Result<Doc<T>, Error> {
    check_ref(field, id)?;
    coll.get(id)?.ok_or_else(|| {
        Error::not_found(format!("no {noun} `{id}`")).with_context(json!({ field: id }))
    })
}

pub(crate) fn require_thread(ctx: &Ctx, id: &str) -> Result<Doc<Thread>, Error> {
    require(threads(ctx), "id", "thread", id)
}

pub(crate) fn require_sprint(ctx: &Ctx, id: &str) -> Result<Doc<Sprint>, Error> {
    require(sprints(ctx), "sprint_id", "sprint", id)
}

/// The thread `id`, which must be a `kind` (the body names it in `field`);
/// `why` ends the refusal of a thread of another kind.
pub(crate) fn require_kind(
    ctx: &Ctx,
    kind: Kind,
    field: &str,
    id: &str,
    why: &str,
) -> Result<Doc<Thread>, Error> {
    let doc = require(threads(ctx), field, kind.as_str(), id)?;
    if doc.value.kind != kind {
        return Err(
            Error::validation(format!("`{id}` is a {}{why}", doc.value.kind.as_str()))
                .with_context(json!({ field: id, "kind": doc.value.kind })),
        );
    }
    Ok(doc)
}

pub(crate) fn require_saga(ctx: &Ctx, id: &str) -> Result<Doc<Thread>, Error> {
    require_kind(ctx, Kind::Saga, "saga_id", id, ", not a saga")
}

/// Replaces version `expected` of the thread; a concurrent writer makes it
/// fail with `conflict`.
pub(crate) fn save(ctx: &Ctx, thread: &Thread, expected: u64) -> Result<u64, Error> {
    threads(ctx)
        .put(&thread.id, thread, Some(expected))
        .map_err(|e| with_id(e, &thread.id))
}

/// Creates a document; an existing id is a `conflict`.
pub(crate) fn insert<T: Serialize>(
    coll: &Collection<'_, T>,
    id: &str,
    value: &T,
) -> Result<u64, Error> {
    coll.put(id, value, Some(0)).map_err(|e| {
        if e.code() == "conflict" {
            Error::new("conflict", format!("`{id}` already exists"))
                .with_context(json!({ "id": id, "current_version": current_version(&e) }))
        } else {
            e
        }
    })
}

/// Cancels a quantum timer that is no longer wanted. A timer that cannot
/// be cancelled is harmless (the expiry checks the run and timer id), so a
/// failure is only logged.
pub(crate) fn cancel_timer(ctx: &Ctx, timer_id: &str) {
    match ctx.cancel(timer_id) {
        Ok(_) => {}
        Err(e) => ctx.warn(format!("could not cancel timer {timer_id}: {e}")),
    }
}

pub(crate) fn now_ms(ctx: &Ctx) -> u64 {
    ctx.meta().timestamp_ms
}

pub(crate) fn now(ctx: &Ctx) -> String {
    time::rfc3339(now_ms(ctx))
}
