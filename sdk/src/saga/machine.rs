//! The state machine of one instance, pure: each input (a start, an
//! answer, a timer, an operator's retry) changes the instance and says
//! what to do (commands to send, events to announce, the timer to set or
//! cancel, the keys to wait on). No host calls, so it is tested natively.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::def::{Matcher, Saga, Step, MAX_REQUESTS};
use super::instance::{Cmd, Done, Failure, Instance, Status, Timer, TimerKind};
use crate::{topic_matches, CommandToSend, Error};

/// What one input asks the runner to do, in this order: cancel, wait and
/// unwait, write the instance, emit, send, schedule.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Effects {
    /// Commands to send.
    pub(crate) commands: Vec<CommandToSend>,
    /// Events to announce: the suffix after `<saga>.`, and the body.
    pub(crate) events: Vec<(&'static str, Value)>,
    /// A timer to set: after this delay, with this number.
    pub(crate) schedule: Option<(Duration, u64)>,
    /// Timer ids to cancel.
    pub(crate) cancel: Vec<String>,
    /// Keys whose answers now belong to this instance.
    pub(crate) wait: Vec<String>,
    /// Keys no longer waited for.
    pub(crate) unwait: Vec<String>,
}

/// Whether an answer says its request succeeded or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Failed,
}

/// One saga definition at one moment.
pub(crate) struct Machine<'a> {
    pub(crate) saga: &'a Saga,
    pub(crate) now_ms: u64,
}

impl Machine<'_> {
    /// A new instance `id` with `data`, started on `session_id`, and what
    /// its first step does.
    pub(crate) fn start(
        &self,
        id: &str,
        data: Value,
        session_id: Option<String>,
    ) -> (Instance, Effects) {
        let mut inst = Instance {
            id: id.to_owned(),
            saga: self.saga.name.to_owned(),
            schema_version: self.saga.state_version,
            status: Status::Running,
            step: 0,
            step_name: None,
            attempt: 1,
            pending: BTreeMap::new(),
            data,
            done: Vec::new(),
            undone: Vec::new(),
            failure: None,
            stuck: false,
            timer: None,
            seq: 0,
            session_id,
            parked: None,
            started_ms: self.now_ms,
            updated_ms: self.now_ms,
            history: Vec::new(),
            history_dropped: 0,
        };
        let mut fx = Effects::default();
        inst.note(self.now_ms, "started", None, Value::Null);
        fx.events.push((
            "started",
            json!({
                "id": inst.id,
                "saga": inst.saga,
                "steps": self.saga.steps.iter().map(|s| s.name).collect::<Vec<_>>(),
                "data": inst.data,
            }),
        ));
        self.enter(&mut inst, 0, &mut fx);
        (inst, fx)
    }

    /// Which way an event answers the instance's current request `key`,
    /// if it does: its routing key must match the current step's (or,
    /// compensating, the undone step's) matchers for that key, and an
    /// error event that names its command must name the request's.
    pub(crate) fn classify(
        &self,
        inst: &Instance,
        routing_key: &str,
        key: &str,
        body: &Value,
    ) -> Option<Outcome> {
        let pending = inst.pending.get(key)?;
        let step = self.current_step(inst)?;
        let ok = match inst.status {
            Status::Running => &step.completes,
            Status::Compensating => &step.undone,
            _ => return None,
        };
        if answers(ok, routing_key, key, body) {
            return Some(Outcome::Completed);
        }
        let names_other = body
            .get("command")
            .and_then(Value::as_str)
            .is_some_and(|c| c != pending.routing_key);
        if !names_other && answers(&step.fails, routing_key, key, body) {
            return Some(Outcome::Failed);
        }
        None
    }

    /// An answer to request `key` (already [`classify`](Self::classify)ed).
    pub(crate) fn answer(
        &self,
        inst: &mut Instance,
        outcome: Outcome,
        key: &str,
        body: &Value,
    ) -> Result<Effects, Error> {
        let mut fx = Effects::default();
        inst.updated_ms = self.now_ms;
        match (inst.status, outcome) {
            (Status::Running, Outcome::Completed) => self.completed(inst, key, body, &mut fx)?,
            (Status::Compensating, Outcome::Completed) => self.undid(inst, key, &mut fx),
            (Status::Running | Status::Compensating, Outcome::Failed) => {
                let code = body.get("code").and_then(Value::as_str).unwrap_or("error");
                let message = body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the request failed");
                self.failed_try(inst, Some(key), code, message, &mut fx);
            }
            _ => {}
        }
        Ok(fx)
    }

    /// The instance's timer `seq` fired (a stale one changes nothing).
    pub(crate) fn timer(&self, inst: &mut Instance, seq: u64) -> Effects {
        let mut fx = Effects::default();
        let Some(timer) = inst.timer.clone().filter(|t| t.seq == seq) else {
            return fx;
        };
        inst.timer = None;
        inst.updated_ms = self.now_ms;
        match timer.kind {
            TimerKind::Resend => self.resend(inst, &mut fx),
            TimerKind::Timeout => {
                let timeout = self.current_step(inst).map(|s| s.timeout);
                let message = format!(
                    "no answer to {} within {} ms (try {})",
                    pending_keys(inst),
                    timeout.unwrap_or_default().as_millis(),
                    inst.attempt
                );
                let key = inst.pending.keys().next().cloned();
                self.failed_try(inst, key.as_deref(), "timeout", &message, &mut fx);
            }
        }
        fx
    }

    /// An operator asked to resume: a stuck compensation is tried again
    /// from its first try. Anything else is refused with why.
    pub(crate) fn retry(&self, inst: &mut Instance) -> Result<Effects, Error> {
        if !(inst.status == Status::Failed && inst.stuck) {
            return Err(Error::invalid_transition(format!(
                "instance `{}` is {}{}: only a failed instance whose compensation could not be done is retried",
                inst.id,
                inst.status.as_str(),
                if inst.stuck { " (stuck)" } else { "" }
            )));
        }
        let mut fx = Effects::default();
        inst.status = Status::Compensating;
        inst.stuck = false;
        inst.attempt = 1;
        inst.updated_ms = self.now_ms;
        inst.note(
            self.now_ms,
            "retried",
            inst.step_name.clone().as_deref(),
            Value::Null,
        );
        fx.events.push((
            "compensating",
            json!({ "id": inst.id, "resumed": true, "undo": inst.to_undo() }),
        ));
        self.send_pending(inst, &mut fx);
        Ok(fx)
    }

    /// After a park: what is still pending gets a fresh timeout (its
    /// requests may still be answered; the timeout tries them again).
    pub(crate) fn resume(&self, inst: &mut Instance, fx: &mut Effects) {
        if matches!(inst.status, Status::Running | Status::Compensating) && !inst.pending.is_empty()
        {
            let timeout = self
                .current_step(inst)
                .map(|s| s.timeout)
                .unwrap_or_default();
            self.arm(inst, timeout, TimerKind::Timeout, fx);
        }
    }

    /// The step an instance is on: forward, the current one; compensating,
    /// the one whose request is being undone.
    pub(crate) fn current_step(&self, inst: &Instance) -> Option<&Step> {
        let name = inst.step_name.as_deref()?;
        self.saga.steps.iter().find(|s| s.name == name)
    }

    /// Starts step `index` (or completes the instance past the last).
    /// Steps with nothing to send complete at once.
    fn enter(&self, inst: &mut Instance, mut index: usize, fx: &mut Effects) {
        loop {
            let Some(step) = self.saga.steps.get(index) else {
                self.finish(inst, fx);
                return;
            };
            inst.step = index;
            inst.step_name = Some(step.name.to_owned());
            inst.attempt = 1;
            let requests = match (step.send)(&inst.data) {
                Ok(r) if r.len() > MAX_REQUESTS => Err(Error::new(
                    "limit_exceeded",
                    format!(
                        "step `{}` made {} requests, more than the {MAX_REQUESTS} one step may send",
                        step.name,
                        r.len()
                    ),
                )),
                other => other,
            };
            let requests = match requests {
                Ok(r) => r,
                Err(e) => {
                    self.fail_step(inst, None, e.code(), e.message(), fx);
                    return;
                }
            };
            if requests.is_empty() {
                inst.note(
                    self.now_ms,
                    "step_completed",
                    Some(step.name),
                    json!({ "requests": 0 }),
                );
                fx.events.push((
                    "step_completed",
                    json!({ "id": inst.id, "step": step.name, "keys": [] }),
                ));
                index += 1;
                continue;
            }
            let mut pending = BTreeMap::new();
            for r in &requests {
                if pending.insert(r.key.clone(), Cmd::of(&r.command)).is_some() {
                    let message =
                        format!("step `{}` made two requests keyed `{}`", step.name, r.key);
                    self.fail_step(inst, Some(&r.key), "validation", &message, fx);
                    return;
                }
            }
            inst.pending = pending;
            inst.note(
                self.now_ms,
                "step_started",
                Some(step.name),
                json!({ "keys": inst.pending.keys().collect::<Vec<_>>() }),
            );
            self.send_pending(inst, fx);
            return;
        }
    }

    /// Sends every pending request (one try) and sets the try's timeout.
    fn send_pending(&self, inst: &mut Instance, fx: &mut Effects) {
        for (key, cmd) in &inst.pending {
            fx.commands.push(cmd.to_send());
            fx.wait.push(key.clone());
        }
        let timeout = self
            .current_step(inst)
            .map(|s| s.timeout)
            .unwrap_or_default();
        self.arm(inst, timeout, TimerKind::Timeout, fx);
    }

    fn resend(&self, inst: &mut Instance, fx: &mut Effects) {
        if inst.pending.is_empty() {
            return;
        }
        inst.attempt += 1;
        inst.note(
            self.now_ms,
            "resent",
            inst.step_name.clone().as_deref(),
            json!({ "attempt": inst.attempt, "keys": inst.pending.keys().collect::<Vec<_>>() }),
        );
        self.send_pending(inst, fx);
    }

    /// Replaces the pending timer with a new one.
    fn arm(&self, inst: &mut Instance, delay: Duration, kind: TimerKind, fx: &mut Effects) {
        self.disarm(inst, fx);
        inst.seq += 1;
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        inst.timer = Some(Timer {
            id: None,
            kind,
            seq: inst.seq,
            due_ms: self.now_ms.saturating_add(delay_ms),
        });
        fx.schedule = Some((delay, inst.seq));
    }

    /// Cancels the pending timer, if any.
    pub(crate) fn disarm(&self, inst: &mut Instance, fx: &mut Effects) {
        if let Some(id) = inst.timer.take().and_then(|t| t.id) {
            fx.cancel.push(id);
        }
        fx.schedule = None;
    }

    fn completed(
        &self,
        inst: &mut Instance,
        key: &str,
        body: &Value,
        fx: &mut Effects,
    ) -> Result<(), Error> {
        let Some(step) = self.current_step(inst) else {
            return Ok(());
        };
        if inst.pending.remove(key).is_none() {
            return Ok(());
        }
        fx.unwait.push(key.to_owned());
        if let Some(record) = &step.record {
            record(&mut inst.data, key, body)?;
        }
        let compensation = match &step.undo {
            Some(undo) => undo(&inst.data, key)?.map(|c| Cmd::of(&c)),
            None => None,
        };
        inst.done.push(Done {
            step: step.name.to_owned(),
            key: key.to_owned(),
            compensation,
        });
        if !inst.pending.is_empty() {
            return Ok(());
        }
        self.disarm(inst, fx);
        // In key order: answers come in any order.
        let mut keys: Vec<String> = inst
            .done
            .iter()
            .filter(|d| d.step == step.name)
            .map(|d| d.key.clone())
            .collect();
        keys.sort();
        inst.note(
            self.now_ms,
            "step_completed",
            Some(step.name),
            json!({ "keys": keys, "attempt": inst.attempt }),
        );
        fx.events.push((
            "step_completed",
            json!({ "id": inst.id, "step": step.name, "keys": keys }),
        ));
        let next = inst.step + 1;
        self.enter(inst, next, fx);
        Ok(())
    }

    /// One try of the current step or compensation failed: try again after
    /// the backoff if the policy allows, else fail the step (forward) or
    /// leave the instance stuck (compensating).
    fn failed_try(
        &self,
        inst: &mut Instance,
        key: Option<&str>,
        code: &str,
        message: &str,
        fx: &mut Effects,
    ) {
        let Some(step) = self.current_step(inst) else {
            return;
        };
        let compensating = inst.status == Status::Compensating;
        let detail =
            json!({ "key": key, "code": code, "message": message, "attempt": inst.attempt });
        if step.retry.again(code, inst.attempt, compensating) {
            inst.note(self.now_ms, "try_failed", Some(step.name), detail);
            let backoff = step.retry.backoff(inst.attempt);
            self.arm(inst, backoff, TimerKind::Resend, fx);
            return;
        }
        if compensating {
            self.stuck(inst, key, code, message, fx);
        } else {
            self.fail_step(inst, key, code, message, fx);
        }
    }

    /// The current step failed for good: announce it and undo what the
    /// completed requests did, last first.
    fn fail_step(
        &self,
        inst: &mut Instance,
        key: Option<&str>,
        code: &str,
        message: &str,
        fx: &mut Effects,
    ) {
        let step = inst.step_name.clone().unwrap_or_default();
        self.disarm(inst, fx);
        // The requests still unanswered may yet take effect (a timeout
        // says nothing of what happened): they are undone too, first. The
        // one refused in so many words is not. So a compensation must be
        // harmless where its request did nothing.
        let uncertain: Vec<(String, Option<Cmd>)> = match self.current_step(inst) {
            Some(s) => inst
                .pending
                .keys()
                .filter(|k| code == "timeout" || Some(k.as_str()) != key)
                .map(|k| {
                    let undo = s
                        .undo
                        .as_ref()
                        .and_then(|u| u(&inst.data, k).ok().flatten());
                    (k.clone(), undo.map(|c| Cmd::of(&c)))
                })
                .collect(),
            None => Vec::new(),
        };
        fx.unwait
            .extend(std::mem::take(&mut inst.pending).into_keys());
        for (k, compensation) in uncertain {
            inst.done.push(Done {
                step: step.clone(),
                key: k,
                compensation,
            });
        }
        let failure = Failure {
            step: step.clone(),
            key: key.map(str::to_owned),
            code: code.to_owned(),
            message: message.to_owned(),
        };
        inst.note(self.now_ms, "step_failed", Some(&step), json!(failure));
        fx.events.push((
            "step_failed",
            json!({ "id": inst.id, "step": step, "key": key, "code": code, "message": message, "attempt": inst.attempt }),
        ));
        inst.failure = Some(failure);
        inst.status = Status::Compensating;
        // Requests with nothing to undo stay in `done`'s history only.
        inst.done.retain(|d| d.compensation.is_some());
        let undo = inst.to_undo();
        inst.note(self.now_ms, "compensating", None, json!({ "undo": undo }));
        fx.events.push((
            "compensating",
            json!({ "id": inst.id, "failed_step": step, "undo": undo }),
        ));
        self.next_compensation(inst, fx);
    }

    /// Sends the compensation of the last completed request, or ends the
    /// instance `failed` when none is left.
    fn next_compensation(&self, inst: &mut Instance, fx: &mut Effects) {
        let Some(last) = inst.done.last() else {
            self.disarm(inst, fx);
            inst.status = Status::Failed;
            inst.step_name = None;
            let failure = inst.failure.clone();
            let undone = inst.undone_list();
            inst.note(self.now_ms, "failed", None, json!({ "undone": undone }));
            fx.events.push((
                "failed",
                json!({ "id": inst.id, "failure": failure, "undone": undone, "stuck": false }),
            ));
            return;
        };
        let (step, key) = (last.step.clone(), last.key.clone());
        let Some(cmd) = last.compensation.clone() else {
            return;
        };
        inst.step_name = Some(step);
        inst.attempt = 1;
        inst.pending = BTreeMap::from([(key, cmd)]);
        self.send_pending(inst, fx);
    }

    fn undid(&self, inst: &mut Instance, key: &str, fx: &mut Effects) {
        if inst.pending.remove(key).is_none() {
            return;
        }
        fx.unwait.push(key.to_owned());
        self.disarm(inst, fx);
        if let Some(pos) = inst.done.iter().rposition(|d| d.key == key) {
            let done = inst.done.remove(pos);
            inst.note(
                self.now_ms,
                "compensated",
                Some(&done.step),
                json!({ "key": key, "attempt": inst.attempt }),
            );
            fx.events.push((
                "compensated",
                json!({ "id": inst.id, "step": done.step, "key": key }),
            ));
            inst.undone.push(done);
        }
        self.next_compensation(inst, fx);
    }

    /// A compensation failed every try: the instance is `failed` and
    /// stuck, its compensation still pending for an operator's retry.
    fn stuck(
        &self,
        inst: &mut Instance,
        key: Option<&str>,
        code: &str,
        message: &str,
        fx: &mut Effects,
    ) {
        self.disarm(inst, fx);
        inst.status = Status::Failed;
        inst.stuck = true;
        let step = inst.step_name.clone();
        let reason = format!(
            "the compensation of {} in step `{}` failed {} time(s), last with {code}: {message}; `pyou sagas retry {}` tries it again",
            key.unwrap_or("?"),
            step.as_deref().unwrap_or("?"),
            inst.attempt,
            inst.id
        );
        let undone = inst.undone_list();
        let not_undone = inst.to_undo();
        inst.note(
            self.now_ms,
            "failed",
            step.as_deref(),
            json!({ "stuck": true, "reason": reason }),
        );
        fx.events.push((
            "failed",
            json!({
                "id": inst.id,
                "failure": inst.failure,
                "undone": undone,
                "not_undone": not_undone,
                "stuck": true,
                "reason": reason,
            }),
        ));
    }

    fn finish(&self, inst: &mut Instance, fx: &mut Effects) {
        self.disarm(inst, fx);
        inst.status = Status::Completed;
        inst.step = self.saga.steps.len();
        inst.step_name = None;
        inst.note(self.now_ms, "completed", None, Value::Null);
        fx.events.push((
            "completed",
            json!({ "id": inst.id, "saga": inst.saga, "data": inst.data }),
        ));
    }

    /// Every matcher of every step, for the subscriptions.
    pub(crate) fn matchers(&self) -> impl Iterator<Item = &Matcher> {
        self.saga
            .steps
            .iter()
            .flat_map(|s| s.completes.iter().chain(&s.fails).chain(&s.undone))
    }
}

/// Whether an event of `routing_key` matches one of `matchers` for `key`.
fn answers(matchers: &[Matcher], routing_key: &str, key: &str, body: &Value) -> bool {
    matchers.iter().any(|m| {
        topic_matches(m.pattern, routing_key) && key_at(body, m.pointer).as_deref() == Some(key)
    })
}

/// The key at `pointer` in `body`: a string, or a number as text.
pub(crate) fn key_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn pending_keys(inst: &Instance) -> String {
    let keys: Vec<&str> = inst.pending.keys().map(String::as_str).collect();
    format!("`{}`", keys.join("`, `"))
}
