//! The document of one saga instance: where it is, what it waits for,
//! what it would undo, its pending timer and its history. Its format is
//! shared with the Python helper and written down once, in
//! `docs/saga-state.md`: a change here is a change there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CommandToSend;

/// Most history entries an instance keeps (the oldest are dropped, and
/// counted in `history_dropped`).
pub const MAX_HISTORY: usize = 200;

/// Most answers held for a parked instance, replayed when it resumes.
pub const MAX_HELD: usize = 100;

/// Where an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running its steps forward.
    Running,
    /// A step failed: undoing the completed ones, last first.
    Compensating,
    /// Every step completed.
    Completed,
    /// A step failed; what could be undone was (`stuck`: a compensation
    /// failed too, and waits for an operator's retry).
    Failed,
    /// Its state could not be read by this version: left as it was.
    Parked,
}

impl Status {
    /// As in the documents and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Parked => "parked",
        }
    }
}

/// A command as the instance keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cmd {
    /// Its routing key.
    pub routing_key: String,
    /// Its body.
    pub body: Value,
}

impl Cmd {
    pub(crate) fn of(c: &CommandToSend) -> Self {
        Cmd {
            routing_key: c.routing_key.clone(),
            body: serde_json::from_str(&c.body).unwrap_or(Value::Null),
        }
    }

    pub(crate) fn to_send(&self) -> CommandToSend {
        CommandToSend::raw(self.routing_key.clone(), self.body.to_string())
    }
}

/// A request that completed, with what would undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// The step it belonged to.
    pub step: String,
    /// Its key.
    pub key: String,
    /// Its compensating command, if it has one.
    pub compensation: Option<Cmd>,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The step.
    pub step: String,
    /// The request that failed, if one did (not for a step that could not
    /// make its requests).
    pub key: Option<String>,
    /// The error code (`timeout` for no answer).
    pub code: String,
    /// For humans.
    pub message: String,
}

/// What the pending timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The current try ran out of time.
    Timeout,
    /// The wait before the next try is over.
    Resend,
}

/// The instance's one pending timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    /// The scheduler's id (to cancel it), once scheduled.
    pub id: Option<String>,
    /// What it is for.
    pub kind: TimerKind,
    /// Its number: a timer whose number is not the instance's latest is
    /// stale and ignored.
    pub seq: u64,
    /// When it is due, ms since the Unix epoch.
    pub due_ms: u64,
}

/// An answer that arrived while the instance was parked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The event's routing key.
    pub routing_key: String,
    /// The request key it answers.
    pub key: String,
    /// The event's body.
    pub body: Value,
}

/// Why an instance is parked, and what it was doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    /// For humans.
    pub reason: String,
    /// The status it had.
    pub from: Status,
    /// Answers that came meanwhile, in order.
    #[serde(default)]
    pub held: Vec<Held>,
}

/// One line of an instance's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The transition: `started`, `step_completed`, `compensated`, ….
    pub what: String,
    /// The step, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Details.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// One saga instance, as stored in the saga domain's `instances`
/// collection under its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The id: the correlation of the command that started it.
    pub id: String,
    /// The saga's name.
    pub saga: String,
    /// The schema version `data` is written in.
    pub schema_version: u32,
    /// Where it is.
    pub status: Status,
    /// The index of the current step (the number of steps once completed).
    pub step: usize,
    /// Its name, while there is one.
    pub step_name: Option<String>,
    /// The try of the current step or compensation (1-based).
    pub attempt: u32,
    /// Requests sent and not answered yet, by key.
    pub pending: BTreeMap<String, Cmd>,
    /// The author's state.
    pub data: Value,
    /// Completed requests with their compensations, in completion order.
    pub done: Vec<Done>,
    /// Compensations that ran, in the order they ran.
    pub undone: Vec<Done>,
    /// Why it failed, once a step did.
    pub failure: Option<Failure>,
    /// Set with `failed` when a compensation could not be done: an
    /// operator's retry resumes it.
    pub stuck: bool,
    /// The pending timer.
    pub timer: Option<Timer>,
    /// The number of the latest timer.
    pub seq: u64,
    /// The session of the command that started it.
    pub session_id: Option<String>,
    /// Set while parked.
    pub parked: Option<Parked>,
    /// When it started and last changed, ms since the Unix epoch.
    pub started_ms: u64,
    /// See `started_ms`.
    pub updated_ms: u64,
    /// What happened, oldest first (at most [`MAX_HISTORY`]).
    pub history: Vec<Entry>,
    /// Entries dropped from the front of `history`.
    pub history_dropped: u64,
}

impl Instance {
    /// Adds a history entry, dropping the oldest past [`MAX_HISTORY`].
    pub(crate) fn note(&mut self, at_ms: u64, what: &str, step: Option<&str>, detail: Value) {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
            self.history_dropped += 1;
        }
        self.history.push(Entry {
            at_ms,
            what: what.to_owned(),
            step: step.map(str::to_owned),
            detail,
        });
    }

    /// The completed requests with a compensation, as `{step, key}`.
    pub(crate) fn to_undo(&self) -> Vec<Value> {
        self.done
            .iter()
            .rev()
            .filter(|d| d.compensation.is_some())
            .map(|d| serde_json::json!({ "step": d.step, "key": d.key }))
            .collect()
    }

    /// What was undone, as `{step, key}`.
    pub(crate) fn undone_list(&self) -> Vec<Value> {
        self.undone
            .iter()
            .map(|d| serde_json::json!({ "step": d.step, "key": d.key }))
            .collect()
    }
}
