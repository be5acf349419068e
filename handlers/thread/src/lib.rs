//! The Parallel You thread domain (DESIGN §8): sagas, stories and tasks,
//! their state machine, quantum timers and sprints.
//!
//! A *thread* is a saga (long-running parent), a story (a work packet under
//! a saga) or a task (top-level or under a saga). Stories and tasks move
//! `ready → running → done`, with `parked` and `blocked` (with a reason)
//! reachable from `ready` and `running`; `start` resumes a parked thread,
//! `unblock` makes a blocked one `ready` again. Sagas are `active` until
//! completed (once every child is done). A done thread can be archived.
//!
//! Starting a story or task schedules `thread.quantum.expire {id, run}`
//! after its quantum; parking, blocking, completing or deleting it cancels
//! that timer, and a timer that still fires is ignored unless the thread is
//! running on the same run under that very timer.
//!
//! Every change answers a past-tense event whose body is the full new state
//! of the thread (or sprint) with its store `version`; refusals are error
//! events (`validation`, `not_found`, `invalid_transition`, `conflict`,
//! `has_children`). `docs/thread-domain.md` has the table of commands.
//!
//! Threads live in the `threads` collection, sprints in `sprints`; a story
//! points to its sprint with `sprint_id`.

mod model;
mod quantum;
mod schema;
mod time;

use std::collections::BTreeMap;
use std::time::Duration;

use parallel_you_sdk::{export_handler, Ctx, Doc, Error, Event, Handler, Router};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use model::{Action, Energy, Kind, NewThread, Sprint, State, Thread};
use quantum::Quantum;

const THREADS: &str = "threads";
const SPRINTS: &str = "sprints";
/// The command the quantum timer delivers.
const EXPIRE: &str = "thread.quantum.expire";

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// Longest notes (and sprint goal), in characters.
const MAX_NOTES_CHARS: usize = 10_000;
/// Highest priority number.
const MAX_PRIORITY: u32 = 100;
/// Default priority.
const DEFAULT_PRIORITY: u32 = 1;
/// Longest client-chosen id.
const MAX_ID_CHARS: usize = 64;
/// Default and largest number of threads one `thread.list` returns.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
/// Longest free-text filter.
const MAX_TEXT_CHARS: usize = 200;
/// Most children a saga's cascades (quantum, delete) reach.
const MAX_CHILDREN: usize = 10_000;
/// Attempts at a write that lost a race to another writer, where retrying
/// on the newer version is safe (following a saga's quantum, expiring).
const ATTEMPTS: usize = 5;

struct ThreadDomain;

impl Handler for ThreadDomain {
    fn router() -> Router {
        Router::new("thread", env!("CARGO_PKG_VERSION"))
            .command("thread.saga.create", "Create a saga", create_saga)
            .schema(schema::SAGA_CREATE)
            .command(
                "thread.story.create",
                "Create a story under a saga",
                create_story,
            )
            .schema(schema::STORY_CREATE)
            .command(
                "thread.task.create",
                "Create a task, top-level or under a saga",
                create_task,
            )
            .schema(schema::TASK_CREATE)
            .command(
                "thread.update",
                "Change a thread's title, notes, priority, quantum or energy band",
                update,
            )
            .schema(schema::UPDATE)
            .command(
                "thread.start",
                "Start (or resume) a story or task: ready|parked → running",
                start,
            )
            .schema(schema::TARGET)
            .command(
                "thread.park",
                "Put a story or task aside: ready|running → parked",
                park,
            )
            .schema(schema::TARGET)
            .command(
                "thread.block",
                "Mark a story or task blocked, with a reason: ready|running → blocked",
                block,
            )
            .schema(schema::BLOCK)
            .command(
                "thread.unblock",
                "Unblock a story or task: blocked → ready",
                unblock,
            )
            .schema(schema::TARGET)
            .command(
                "thread.complete",
                "Finish a story or task (running → done) or a saga whose children are all done",
                complete,
            )
            .schema(schema::TARGET)
            .command(
                "thread.archive",
                "Archive a done thread (hidden from default listings)",
                archive,
            )
            .schema(schema::TARGET)
            .command(
                "thread.delete",
                "Delete a thread; a saga with children only with `cascade`",
                delete,
            )
            .schema(schema::DELETE)
            .command("thread.get", "Read one thread", get)
            .schema(schema::GET)
            .command(
                "thread.list",
                "List threads by text, kind, state, saga, sprint (archived hidden unless asked)",
                list,
            )
            .schema(schema::LIST)
            .command(
                EXPIRE,
                "Internal: delivered by a started thread's quantum timer",
                expire,
            )
            .schema(schema::EXPIRE)
            .command("thread.sprint.create", "Create a sprint", create_sprint)
            .schema(schema::SPRINT_CREATE)
            .command(
                "thread.sprint.add_story",
                "Plan a story in a sprint (moving it from any other)",
                add_story,
            )
            .schema(schema::SPRINT_STORY)
            .command(
                "thread.sprint.remove_story",
                "Take a story out of a sprint",
                remove_story,
            )
            .schema(schema::SPRINT_STORY)
            .command(
                "thread.sprint.get",
                "A sprint with its stories and the quantum planned vs. done",
                get_sprint,
            )
            .schema(schema::GET)
            .command("thread.sprint.list", "List every sprint", list_sprints)
            .schema(schema::EMPTY)
            .emits(&[
                "thread.saga.created",
                "thread.story.created",
                "thread.task.created",
                "thread.updated",
                "thread.started",
                "thread.parked",
                "thread.blocked",
                "thread.unblocked",
                "thread.completed",
                "thread.archived",
                "thread.deleted",
                "thread.got",
                "thread.listed",
                "thread.quantum.expired",
                "thread.sprint.created",
                "thread.sprint.story_added",
                "thread.sprint.story_removed",
                "thread.sprint.got",
                "thread.sprint.listed",
            ])
    }
}

export_handler!(ThreadDomain);

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSaga {
    id: Option<String>,
    title: String,
    #[serde(default)]
    notes: String,
    priority: Option<u32>,
    quantum: Option<String>,
}

/// `thread.story.create` and `thread.task.create`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWork {
    id: Option<String>,
    saga_id: Option<String>,
    title: String,
    #[serde(default)]
    notes: String,
    priority: Option<u32>,
    quantum: Option<String>,
    energy: Option<Energy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    id: String,
    title: Option<String>,
    notes: Option<String>,
    priority: Option<u32>,
    /// Absent: unchanged; `null`: follow the saga again (or the default);
    /// a string: the thread's own quantum.
    #[serde(default, deserialize_with = "present")]
    quantum: Option<Option<String>>,
    energy: Option<Energy>,
    expected_version: Option<u64>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`,
/// through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    id: String,
    expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    id: String,
    reason: String,
    expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    id: String,
    #[serde(default)]
    cascade: bool,
    expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct List {
    text: Option<String>,
    kind: Option<Kind>,
    state: Option<State>,
    #[serde(default)]
    archived: Archived,
    saga_id: Option<String>,
    sprint_id: Option<String>,
    limit: Option<usize>,
}

/// Which threads `thread.list` shows by their archived flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Archived {
    /// `false` (the default): only threads that are not archived.
    #[default]
    Hide,
    /// `true`: only the archive.
    Only,
    /// `"any"`: both.
    Any,
}

impl<'de> Deserialize<'de> for Archived {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(false) => Ok(Archived::Hide),
            Value::Bool(true) => Ok(Archived::Only),
            Value::String(s) if s == "any" => Ok(Archived::Any),
            other => Err(serde::de::Error::custom(format!(
                "`archived` must be false (the default: hide archived threads), true (only archived ones) or \"any\", not {other}"
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expire {
    id: String,
    run: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSprint {
    id: Option<String>,
    title: String,
    #[serde(default)]
    goal: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SprintStory {
    sprint_id: String,
    story_id: String,
    /// The story's version.
    expected_version: Option<u64>,
}

// ---------------------------------------------------------------------------
// Validation (pure)
// ---------------------------------------------------------------------------

fn check_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::validation("`title` must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::validation(format!(
            "`title` must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.to_owned())
}

fn check_notes(field: &str, notes: &str) -> Result<String, Error> {
    if notes.chars().count() > MAX_NOTES_CHARS {
        return Err(Error::validation(format!(
            "`{field}` must be at most {MAX_NOTES_CHARS} characters"
        )));
    }
    Ok(notes.to_owned())
}

fn check_priority(priority: Option<u32>) -> Result<u32, Error> {
    let p = priority.unwrap_or(DEFAULT_PRIORITY);
    if p > MAX_PRIORITY {
        return Err(Error::validation(format!(
            "`priority` must be between 0 and {MAX_PRIORITY}, not {p}"
        )));
    }
    Ok(p)
}

fn check_quantum(text: &str) -> Result<Quantum, Error> {
    quantum::parse(text).map_err(|m| Error::validation(m).with_context(json!({ "quantum": text })))
}

/// An id naming an existing document: not empty, no longer than the store
/// allows.
fn check_ref(field: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "`{field}` must be 1 to 256 bytes without control characters"
        )));
    }
    Ok(())
}

/// The id of a new document: the client's own (`[A-Za-z0-9_-]`, at most 64
/// characters) or `<prefix>_<message id>`, lowercase. Message ids are
/// unique ULIDs, so generated ids are unique, sort by creation time and
/// stay the same when a command is redelivered.
fn new_id(message_id: &str, prefix: &str, requested: Option<&str>) -> Result<String, Error> {
    if let Some(id) = requested {
        let ok = !id.is_empty()
            && id.len() <= MAX_ID_CHARS
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(Error::validation(format!(
                "`id` must be 1 to {MAX_ID_CHARS} characters of [A-Za-z0-9_-]"
            ))
            .with_context(json!({ "id": id })));
        }
        return Ok(id.to_owned());
    }
    let suffix: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .take(200)
        .collect();
    if suffix.is_empty() {
        return Err(Error::validation(
            "the command's message id has no usable characters: pass an `id`",
        ));
    }
    Ok(format!("{prefix}_{suffix}"))
}

fn check_expected(id: &str, expected: Option<u64>, current: u64) -> Result<(), Error> {
    match expected {
        Some(v) if v != current => Err(conflict(id, current)),
        _ => Ok(()),
    }
}

fn conflict(id: &str, current: u64) -> Error {
    Error::new(
        "conflict",
        format!("`{id}` has changed: it is at version {current}; read it again and retry"),
    )
    .with_context(json!({ "id": id, "current_version": current }))
}

/// A store conflict, reworded with the id it concerns.
fn with_id(e: Error, id: &str) -> Error {
    if e.code() == "conflict" {
        let current = e
            .context()
            .and_then(|c| c["current_version"].as_u64())
            .unwrap_or(0);
        conflict(id, current)
    } else {
        e
    }
}

// ---------------------------------------------------------------------------
// Store and events
// ---------------------------------------------------------------------------

/// A document as events carry it: its fields plus its store version.
#[derive(Serialize)]
struct Versioned<'a, T> {
    #[serde(flatten)]
    value: &'a T,
    version: u64,
}

fn versioned<T: Serialize>(value: &T, version: u64) -> Versioned<'_, T> {
    Versioned { value, version }
}

fn thread_event(key: &str, thread: &Thread, version: u64) -> Result<Event, Error> {
    Event::new(key, &versioned(thread, version))
}

fn threads(ctx: &Ctx) -> parallel_you_sdk::Collection<'static, Thread> {
    ctx.collection(THREADS)
}

fn sprints(ctx: &Ctx) -> parallel_you_sdk::Collection<'static, Sprint> {
    ctx.collection(SPRINTS)
}

fn require_thread(ctx: &Ctx, id: &str) -> Result<Doc<Thread>, Error> {
    check_ref("id", id)?;
    threads(ctx).get(id)?.ok_or_else(|| {
        Error::not_found(format!("no thread `{id}`")).with_context(json!({ "id": id }))
    })
}

fn require_saga(ctx: &Ctx, id: &str) -> Result<Doc<Thread>, Error> {
    check_ref("saga_id", id)?;
    let doc = threads(ctx).get(id)?.ok_or_else(|| {
        Error::not_found(format!("no saga `{id}`")).with_context(json!({ "saga_id": id }))
    })?;
    if doc.value.kind != Kind::Saga {
        return Err(Error::validation(format!(
            "`{id}` is a {}, not a saga",
            doc.value.kind.as_str()
        ))
        .with_context(json!({ "saga_id": id, "kind": doc.value.kind })));
    }
    Ok(doc)
}

fn require_sprint(ctx: &Ctx, id: &str) -> Result<Doc<Sprint>, Error> {
    check_ref("sprint_id", id)?;
    sprints(ctx).get(id)?.ok_or_else(|| {
        Error::not_found(format!("no sprint `{id}`")).with_context(json!({ "sprint_id": id }))
    })
}

/// Replaces version `expected` of the thread; a concurrent writer makes it
/// fail with `conflict`.
fn save(ctx: &Ctx, thread: &Thread, expected: u64) -> Result<u64, Error> {
    threads(ctx)
        .put(&thread.id, thread, Some(expected))
        .map_err(|e| with_id(e, &thread.id))
}

/// Creates a document; an existing id is a `conflict`.
fn insert<T: Serialize>(
    coll: &parallel_you_sdk::Collection<'_, T>,
    id: &str,
    value: &T,
) -> Result<u64, Error> {
    coll.put(id, value, Some(0)).map_err(|e| {
        if e.code() == "conflict" {
            Error::new("conflict", format!("`{id}` already exists"))
                .with_context(json!({ "id": id, "current_version": e.context().and_then(|c| c["current_version"].as_u64()) }))
        } else {
            e
        }
    })
}

/// Cancels a quantum timer that is no longer wanted. A timer that cannot
/// be cancelled is harmless (the expiry checks the run and timer id), so a
/// failure is only logged.
fn cancel_timer(ctx: &Ctx, timer_id: &str) {
    match ctx.cancel(timer_id) {
        Ok(_) => {}
        Err(e) => ctx.warn(format!("could not cancel timer {timer_id}: {e}")),
    }
}

fn now_ms(ctx: &Ctx) -> u64 {
    ctx.meta().timestamp_ms
}

fn now(ctx: &Ctx) -> String {
    time::rfc3339(now_ms(ctx))
}

// ---------------------------------------------------------------------------
// Creating
// ---------------------------------------------------------------------------

fn create_saga(ctx: &Ctx, b: CreateSaga) -> Result<Vec<Event>, Error> {
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

fn create_story(ctx: &Ctx, b: CreateWork) -> Result<Vec<Event>, Error> {
    if b.saga_id.is_none() {
        return Err(Error::validation(
            "a story belongs to a saga: give its `saga_id` (or create a task instead)",
        ));
    }
    create_work(ctx, Kind::Story, b)
}

fn create_task(ctx: &Ctx, b: CreateWork) -> Result<Vec<Event>, Error> {
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

// ---------------------------------------------------------------------------
// Updating
// ---------------------------------------------------------------------------

fn update(ctx: &Ctx, b: Update) -> Result<Vec<Event>, Error> {
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

// ---------------------------------------------------------------------------
// State changes
// ---------------------------------------------------------------------------

fn start(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Start)
}

fn park(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Park)
}

fn block(ctx: &Ctx, b: Block) -> Result<Vec<Event>, Error> {
    let reason = model::check_reason(&b.reason)?;
    transition(ctx, &b.id, b.expected_version, Action::Block(reason))
}

fn unblock(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Unblock)
}

fn complete(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
    transition(ctx, &b.id, b.expected_version, Action::Complete)
}

fn archive(ctx: &Ctx, b: Target) -> Result<Vec<Event>, Error> {
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
fn expire(ctx: &Ctx, b: Expire) -> Result<Vec<Event>, Error> {
    check_ref("id", &b.id)?;
    // A timer's command has the message id `timer-<timer id>`.
    let fired_by = ctx.meta().message_id.strip_prefix("timer-");
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

// ---------------------------------------------------------------------------
// Deleting
// ---------------------------------------------------------------------------

fn delete(ctx: &Ctx, b: Delete) -> Result<Vec<Event>, Error> {
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

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

fn get(ctx: &Ctx, b: Get) -> Result<Vec<Event>, Error> {
    let doc = require_thread(ctx, &b.id)?;
    Ok(vec![thread_event("thread.got", &doc.value, doc.version)?])
}

/// The store filters a `thread.list` runs (two when there is text: one
/// over titles, one over notes, merged by id) and the most threads shown.
fn list_filters(b: &List) -> Result<(Vec<Value>, usize), Error> {
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
    // One more than shown, to tell whether there are more.
    base.insert("$limit".into(), json!(limit + 1));
    let text = b.text.as_deref().map(str::trim).unwrap_or_default();
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::validation(format!(
            "`text` must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    if text.is_empty() {
        return Ok((vec![Value::Object(base)], limit));
    }
    let filters = ["title", "notes"]
        .into_iter()
        .map(|field| {
            let mut f = base.clone();
            f.insert(field.into(), json!({ "$contains": text }));
            Value::Object(f)
        })
        .collect();
    Ok((filters, limit))
}

fn list(ctx: &Ctx, b: List) -> Result<Vec<Event>, Error> {
    let (filters, limit) = list_filters(&b)?;
    let mut found: BTreeMap<String, Doc<Thread>> = BTreeMap::new();
    for filter in filters {
        for doc in threads(ctx).list(filter)? {
            found.entry(doc.id.clone()).or_insert(doc);
        }
    }
    let more = found.len() > limit;
    let shown: Vec<_> = found
        .values()
        .take(limit)
        .map(|d| versioned(&d.value, d.version))
        .collect();
    Ok(vec![Event::new(
        "thread.listed",
        &json!({ "threads": shown, "count": shown.len(), "more": more }),
    )?])
}

// ---------------------------------------------------------------------------
// Sprints
// ---------------------------------------------------------------------------

fn create_sprint(ctx: &Ctx, b: CreateSprint) -> Result<Vec<Event>, Error> {
    let title = check_title(&b.title)?;
    let goal = check_notes("goal", &b.goal)?;
    let id = new_id(&ctx.meta().message_id, "sprint", b.id.as_deref())?;
    let now = now(ctx);
    let sprint = Sprint {
        id,
        title,
        goal,
        created_at: now.clone(),
        updated_at: now,
    };
    let version = insert(&sprints(ctx), &sprint.id, &sprint)?;
    Ok(vec![Event::new(
        "thread.sprint.created",
        &versioned(&sprint, version),
    )?])
}

fn require_story(ctx: &Ctx, id: &str) -> Result<Doc<Thread>, Error> {
    check_ref("story_id", id)?;
    let doc = threads(ctx).get(id)?.ok_or_else(|| {
        Error::not_found(format!("no story `{id}`")).with_context(json!({ "story_id": id }))
    })?;
    if doc.value.kind != Kind::Story {
        return Err(Error::validation(format!(
            "`{id}` is a {}: only stories are planned in sprints",
            doc.value.kind.as_str()
        ))
        .with_context(json!({ "story_id": id, "kind": doc.value.kind })));
    }
    Ok(doc)
}

fn add_story(ctx: &Ctx, b: SprintStory) -> Result<Vec<Event>, Error> {
    let sprint = require_sprint(ctx, &b.sprint_id)?;
    let doc = require_story(ctx, &b.story_id)?;
    check_expected(&b.story_id, b.expected_version, doc.version)?;
    let story = &doc.value;
    if story.archived {
        return Err(Error::invalid_transition(format!(
            "story `{}` is archived: archived stories are not planned",
            story.id
        ))
        .with_context(
            json!({ "story_id": story.id, "current_state": story.state, "archived": true }),
        ));
    }
    if story.sprint_id.as_deref() == Some(sprint.id.as_str()) {
        return Err(Error::invalid_transition(format!(
            "story `{}` is already in sprint `{}`",
            story.id, sprint.id
        ))
        .with_context(json!({ "story_id": story.id, "sprint_id": sprint.id })));
    }
    let mut next = story.clone();
    next.sprint_id = Some(sprint.id.clone());
    next.updated_at = now(ctx);
    let version = save(ctx, &next, doc.version)?;
    Ok(vec![thread_event(
        "thread.sprint.story_added",
        &next,
        version,
    )?])
}

fn remove_story(ctx: &Ctx, b: SprintStory) -> Result<Vec<Event>, Error> {
    let sprint = require_sprint(ctx, &b.sprint_id)?;
    let doc = require_story(ctx, &b.story_id)?;
    check_expected(&b.story_id, b.expected_version, doc.version)?;
    if doc.value.sprint_id.as_deref() != Some(sprint.id.as_str()) {
        return Err(Error::not_found(format!(
            "story `{}` is not in sprint `{}`",
            doc.id, sprint.id
        ))
        .with_context(json!({
            "story_id": doc.id,
            "sprint_id": sprint.id,
            "story_sprint_id": doc.value.sprint_id,
        })));
    }
    let mut next = doc.value.clone();
    next.sprint_id = None;
    next.updated_at = now(ctx);
    let version = save(ctx, &next, doc.version)?;
    Ok(vec![thread_event(
        "thread.sprint.story_removed",
        &next,
        version,
    )?])
}

fn get_sprint(ctx: &Ctx, b: Get) -> Result<Vec<Event>, Error> {
    let sprint = require_sprint(ctx, &b.id)?;
    let stories = threads(ctx).list(json!({ "sprint_id": sprint.id, "$limit": MAX_CHILDREN }))?;
    let totals = model::sprint_totals(stories.iter().map(|d| &d.value));
    let shown: Vec<_> = stories
        .iter()
        .map(|d| versioned(&d.value, d.version))
        .collect();
    Ok(vec![Event::new(
        "thread.sprint.got",
        &json!({
            "sprint": versioned(&sprint.value, sprint.version),
            "stories": shown,
            "totals": totals,
        }),
    )?])
}

fn list_sprints(ctx: &Ctx, _b: Empty) -> Result<Vec<Event>, Error> {
    let all = sprints(ctx).list(json!({}))?;
    let shown: Vec<_> = all.iter().map(|d| versioned(&d.value, d.version)).collect();
    Ok(vec![Event::new(
        "thread.sprint.listed",
        &json!({ "sprints": shown, "count": shown.len() }),
    )?])
}

#[cfg(test)]
mod tests;
