//! The domain's documents and its state machine: pure code, no host calls,
//! so it is unit-tested natively.

use parallel_you_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::quantum::Quantum;
use crate::time::rfc3339;

/// What a thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// Long-running parent of stories and tasks.
    Saga,
    /// A work packet under a saga.
    Story,
    /// A piece of work, top-level or under a saga.
    Task,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Saga => "saga",
            Kind::Story => "story",
            Kind::Task => "task",
        }
    }
}

/// Where a thread is in its life.
///
/// Stories and tasks: `ready` → `running` → `done`, with `parked` and
/// `blocked` reachable from `ready` and `running`. Sagas: `active` → `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// A saga that is still open.
    Active,
    /// Not started, or unblocked.
    Ready,
    /// Being worked on; its quantum timer runs.
    Running,
    /// Put aside; start it again to resume.
    Parked,
    /// Waiting on something outside (the reason says what).
    Blocked,
    /// Finished; can be archived.
    Done,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Ready => "ready",
            State::Running => "running",
            State::Parked => "parked",
            State::Blocked => "blocked",
            State::Done => "done",
        }
    }
}

/// How demanding a story or task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Energy {
    /// Needs deep focus.
    Deep,
    /// The default.
    #[default]
    Moderate,
    /// Can be done when tired.
    Light,
}

/// A saga, story or task, as stored in the `threads` collection. Events
/// carry it with its store `version` added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Thread {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) title: String,
    pub(crate) notes: String,
    pub(crate) priority: u32,
    /// Canonical quantum text, e.g. `1h30m`.
    pub(crate) quantum: String,
    pub(crate) quantum_ms: u64,
    /// Stories and tasks: whether the quantum is the thread's own (true) or
    /// follows its saga's (false). Sagas: null.
    pub(crate) quantum_overridden: Option<bool>,
    /// Stories and tasks; null for sagas.
    pub(crate) energy: Option<Energy>,
    /// The parent saga of a story (always) or a task (if any).
    pub(crate) saga_id: Option<String>,
    /// The sprint a story is planned in, if any.
    pub(crate) sprint_id: Option<String>,
    pub(crate) state: State,
    pub(crate) blocked_reason: Option<String>,
    /// How many times it was started; the quantum timer carries the run it
    /// was set for, so a stale timer is recognised.
    pub(crate) run: u64,
    /// The pending quantum timer of the current run.
    pub(crate) timer_id: Option<String>,
    /// When the current (or last) run started.
    pub(crate) started_at: Option<String>,
    /// When the current run's quantum runs out (running threads only).
    pub(crate) quantum_ends_at: Option<String>,
    /// When the current run's quantum ran out, if it did.
    pub(crate) quantum_expired_at: Option<String>,
    pub(crate) completed_at: Option<String>,
    pub(crate) archived: bool,
    pub(crate) archived_at: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// What a new thread is made of (validated by the caller).
#[derive(Debug, Clone)]
pub(crate) struct NewThread {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) title: String,
    pub(crate) notes: String,
    pub(crate) priority: u32,
    pub(crate) quantum: Quantum,
    pub(crate) quantum_overridden: bool,
    pub(crate) energy: Energy,
    pub(crate) saga_id: Option<String>,
}

impl Thread {
    /// A fresh thread: sagas `active`, stories and tasks `ready`.
    pub(crate) fn new(n: NewThread, now_ms: u64) -> Self {
        let now = rfc3339(now_ms);
        let saga = n.kind == Kind::Saga;
        Thread {
            id: n.id,
            kind: n.kind,
            title: n.title,
            notes: n.notes,
            priority: n.priority,
            quantum: n.quantum.text,
            quantum_ms: n.quantum.ms,
            quantum_overridden: (!saga).then_some(n.quantum_overridden),
            energy: (!saga).then_some(n.energy),
            saga_id: if saga { None } else { n.saga_id },
            sprint_id: None,
            state: if saga { State::Active } else { State::Ready },
            blocked_reason: None,
            run: 0,
            timer_id: None,
            started_at: None,
            quantum_ends_at: None,
            quantum_expired_at: None,
            completed_at: None,
            archived: false,
            archived_at: None,
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// The thread's quantum.
    pub(crate) fn quantum(&self) -> Quantum {
        Quantum {
            text: self.quantum.clone(),
            ms: self.quantum_ms,
        }
    }

    /// Sets the quantum (and whether it is the thread's own).
    pub(crate) fn set_quantum(&mut self, q: &Quantum, overridden: bool) {
        self.quantum = q.text.clone();
        self.quantum_ms = q.ms;
        if self.kind != Kind::Saga {
            self.quantum_overridden = Some(overridden);
        }
    }
}

/// A change of state a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Start,
    Park,
    Block(String),
    Unblock,
    Complete,
    Archive,
}

impl Action {
    /// The command's verb, as in `thread.<verb>`.
    pub(crate) fn verb(&self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Park => "park",
            Action::Block(_) => "block",
            Action::Unblock => "unblock",
            Action::Complete => "complete",
            Action::Archive => "archive",
        }
    }

    /// The event a successful transition emits.
    pub(crate) fn event(&self) -> &'static str {
        match self {
            Action::Start => "thread.started",
            Action::Park => "thread.parked",
            Action::Block(_) => "thread.blocked",
            Action::Unblock => "thread.unblocked",
            Action::Complete => "thread.completed",
            Action::Archive => "thread.archived",
        }
    }
}

/// The states `action` may be applied in, for a thread of `kind`.
pub(crate) fn allowed_from(kind: Kind, action: &Action) -> &'static [State] {
    use State::{Active, Blocked, Done, Parked, Ready, Running};
    match (kind, action) {
        (Kind::Saga, Action::Complete) => &[Active],
        (Kind::Saga, Action::Archive) => &[Done],
        (Kind::Saga, _) => &[],
        (_, Action::Start) => &[Ready, Parked],
        (_, Action::Park | Action::Block(_)) => &[Ready, Running],
        (_, Action::Unblock) => &[Blocked],
        (_, Action::Complete) => &[Running],
        (_, Action::Archive) => &[Done],
    }
}

/// The longest block reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 1000;

/// A block reason, trimmed: not empty, at most [`MAX_REASON_CHARS`].
pub(crate) fn check_reason(reason: &str) -> Result<String, Error> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::validation(
            "`reason` must say why the thread is blocked",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::validation(format!(
            "`reason` must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(reason.to_owned())
}

/// The thread after `action`, at `now_ms`, or why not.
///
/// Starting increments `run` and sets when the quantum ends; the caller
/// schedules the timer and stores its id in `timer_id`. Leaving `running`
/// clears `timer_id`; the caller cancels the timer it named.
pub(crate) fn apply(thread: &Thread, action: &Action, now_ms: u64) -> Result<Thread, Error> {
    let allowed = allowed_from(thread.kind, action);
    if !allowed.contains(&thread.state) {
        return Err(refusal(thread, action, allowed));
    }
    if *action == Action::Archive && thread.archived {
        return Err(Error::invalid_transition(format!(
            "cannot archive {} `{}`: it is done and already archived",
            thread.kind.as_str(),
            thread.id
        ))
        .with_context(json!({
            "id": thread.id,
            "kind": thread.kind,
            "command": "archive",
            "current_state": thread.state,
            "archived": true,
        })));
    }
    let now = rfc3339(now_ms);
    let mut next = thread.clone();
    next.updated_at = now.clone();
    let leaving_run = thread.state == State::Running;
    match action {
        Action::Start => {
            next.state = State::Running;
            next.run = thread.run.saturating_add(1);
            next.started_at = Some(now);
            next.quantum_ends_at = Some(rfc3339(now_ms.saturating_add(thread.quantum_ms)));
            next.quantum_expired_at = None;
        }
        Action::Park => next.state = State::Parked,
        Action::Block(reason) => {
            next.state = State::Blocked;
            next.blocked_reason = Some(check_reason(reason)?);
        }
        Action::Unblock => {
            next.state = State::Ready;
            next.blocked_reason = None;
        }
        Action::Complete => {
            next.state = State::Done;
            next.completed_at = Some(now);
        }
        Action::Archive => {
            next.archived = true;
            next.archived_at = Some(now);
        }
    }
    if leaving_run && next.state != State::Running {
        next.timer_id = None;
        next.quantum_ends_at = None;
    }
    Ok(next)
}

/// The `invalid_transition` error for `action` on `thread`, naming its
/// current state.
fn refusal(thread: &Thread, action: &Action, allowed: &[State]) -> Error {
    let verb = action.verb();
    let kind = thread.kind.as_str();
    let state = thread.state.as_str();
    let why = if allowed.is_empty() {
        format!("a saga is not worked on directly: {verb} its stories and tasks instead")
    } else {
        let from: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        format!("{verb} is allowed from {}", from.join(" or "))
    };
    let reason = match &thread.blocked_reason {
        Some(r) if thread.state == State::Blocked => format!(" ({r})"),
        _ => String::new(),
    };
    Error::invalid_transition(format!(
        "cannot {verb} {kind} `{}`: it is {state}{reason}; {why}",
        thread.id
    ))
    .with_context(json!({
        "id": thread.id,
        "kind": thread.kind,
        "command": verb,
        "current_state": thread.state,
        "allowed_from": allowed,
    }))
}

/// A sprint, as stored in the `sprints` collection. Its stories point to
/// it with their `sprint_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sprint {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) goal: String,
    /// Sprints written before closing existed read as open.
    #[serde(default)]
    pub(crate) state: SprintState,
    /// While closing: where its unfinished stories go (`None`: the backlog).
    #[serde(default)]
    pub(crate) next_sprint_id: Option<String>,
    #[serde(default)]
    pub(crate) closed_at: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// Where a sprint is: `open` → `closing` (the `sprintclose` saga is
/// settling its stories) → `closed`; `reopen` goes back to `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SprintState {
    #[default]
    Open,
    Closing,
    Closed,
}

impl SprintState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SprintState::Open => "open",
            SprintState::Closing => "closing",
            SprintState::Closed => "closed",
        }
    }
}

/// Totals of a sprint's stories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SprintTotals {
    /// How many stories the sprint holds.
    pub(crate) stories: usize,
    /// How many of them are done.
    pub(crate) stories_done: usize,
    /// Sum of every story's quantum.
    pub(crate) planned_ms: u64,
    /// Sum of the done stories' quanta.
    pub(crate) done_ms: u64,
    /// `planned_ms` as quantum text, e.g. `3h20m`.
    pub(crate) planned: String,
    /// `done_ms` as quantum text.
    pub(crate) done: String,
}

/// Quantum planned (every story) vs. done (stories in state `done`).
pub(crate) fn sprint_totals<'a>(stories: impl IntoIterator<Item = &'a Thread>) -> SprintTotals {
    let mut t = SprintTotals {
        stories: 0,
        stories_done: 0,
        planned_ms: 0,
        done_ms: 0,
        planned: String::new(),
        done: String::new(),
    };
    for s in stories {
        t.stories += 1;
        t.planned_ms = t.planned_ms.saturating_add(s.quantum_ms);
        if s.state == State::Done {
            t.stories_done += 1;
            t.done_ms = t.done_ms.saturating_add(s.quantum_ms);
        }
    }
    t.planned = crate::quantum::format(t.planned_ms);
    t.done = crate::quantum::format(t.done_ms);
    t
}

#[cfg(test)]
mod tests;
