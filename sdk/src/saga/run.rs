//! A saga as a reactor: events start instances or answer their requests
//! (found through the `waits` collection), timers come back as the saga's
//! own events, and each change of an instance is written over the version
//! read, its events announced and its commands returned, all in the one
//! unit of work of the event.

use std::collections::BTreeSet;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::def::Saga;
use super::instance::{Held, Instance, Parked, Status, MAX_HELD};
use super::machine::{key_at, Effects, Machine};
use super::queries;
use crate::{topic_matches, CommandToSend, Delivered, Error, Event, Reactor, ReactorCtx};

/// One document per instance, keyed by its id.
pub(crate) const INSTANCES: &str = "instances";
/// Request key → the instance waiting for its answer.
pub(crate) const WAITS: &str = "waits";
/// Instances whose document this version cannot read at all, with why.
pub(crate) const UNREADABLE: &str = "unreadable";
/// Finished instances past their retention deleted per start: more than
/// one, so the sweep outpaces the starts that add instances.
pub const SWEEP_PER_START: u32 = 4;

#[derive(Debug, Serialize, Deserialize)]
struct Wait {
    instance: String,
}

#[derive(Debug, Deserialize)]
struct TimerBody {
    id: String,
    seq: u64,
}

#[derive(Debug, Deserialize)]
struct RetryBody {
    id: String,
}

/// A document id is printable and at most 1 KiB; keys of other shapes
/// cannot be waited for.
fn usable_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 1024 && !key.chars().any(char::is_control)
}

/// Lives as long as the instance it is made in (a fresh one per event),
/// so the few names leaked per event are freed with it.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl Saga {
    /// The reactor that runs this saga: subscribed to its starting and
    /// answering events, handling its timers (`<name>.timer`) and operator
    /// retries (`<name>.retry`), answering the queries `saga_list
    /// {status?, limit?}` and `saga_show {id}`.
    pub fn reactor(self) -> Reactor {
        let (name, version) = (self.name, self.version);
        let saga = Rc::new(self);
        let mut patterns: Vec<&'static str> = Vec::new();
        let machine = Machine {
            saga: &saga,
            now_ms: 0,
        };
        for p in saga
            .starts
            .iter()
            .map(|(p, _)| *p)
            .chain(machine.matchers().map(|m| m.pattern))
        {
            if !patterns.contains(&p) {
                patterns.push(p);
            }
        }
        let mut reactor = Reactor::new(name, version).sends(&saga.sends);
        let s = saga.clone();
        reactor = reactor.on_timer(leak(format!("{name}.timer")), move |ctx, ev| {
            s.on_timer(ctx, ev)
        });
        let s = saga.clone();
        reactor = reactor.on_timer(leak(format!("{name}.retry")), move |ctx, ev| {
            s.on_retry(ctx, ev)
        });
        for p in patterns {
            let s = saga.clone();
            reactor = reactor.on(p, move |ctx, ev| s.on_event(ctx, ev));
        }
        queries::add(reactor)
    }

    fn machine(&self, now_ms: u64) -> Machine<'_> {
        Machine { saga: self, now_ms }
    }

    fn on_event(
        &self,
        ctx: &ReactorCtx,
        ev: Delivered<Value>,
    ) -> Result<Vec<CommandToSend>, Error> {
        let key = ev.routing_key().to_owned();
        for (pattern, start) in &self.starts {
            if topic_matches(pattern, &key) {
                if let Some(data) = start(&ev)? {
                    return self.begin(ctx, &ev, data);
                }
            }
        }
        let machine = self.machine(ev.timestamp_ms());
        let keys: BTreeSet<String> = machine
            .matchers()
            .filter(|m| topic_matches(m.pattern, &key))
            .filter_map(|m| key_at(&ev.body, m.pointer))
            .filter(|k| usable_key(k))
            .collect();
        let waits = ctx.collection::<Wait>(WAITS);
        let mut out = Vec::new();
        for k in keys {
            let Some(wait) = waits.get(&k)? else {
                continue;
            };
            let Some((version, mut inst, mut fx)) =
                self.load(ctx, &wait.value.instance, &machine)?
            else {
                continue;
            };
            if inst.status == Status::Parked {
                hold(&mut inst, &key, &k, &ev.body);
            } else if let Some(outcome) = machine.classify(&inst, &key, &k, &ev.body) {
                merge(&mut fx, machine.answer(&mut inst, outcome, &k, &ev.body)?);
            } else if fx == Effects::default() {
                continue;
            }
            out.extend(self.apply(ctx, Some(version), &mut inst, fx)?);
        }
        Ok(out)
    }

    /// A new instance for the command that caused `ev`; the same command
    /// again (a redelivery, a second event of it) starts nothing.
    fn begin(
        &self,
        ctx: &ReactorCtx,
        ev: &Delivered<Value>,
        data: Value,
    ) -> Result<Vec<CommandToSend>, Error> {
        let id = ev
            .meta
            .causation_id
            .clone()
            .unwrap_or_else(|| ev.meta.message_id.clone());
        if ctx.collection::<Value>(INSTANCES).get(&id)?.is_some() {
            ctx.info(format!("instance {id} already started"));
            return Ok(vec![]);
        }
        let machine = self.machine(ev.timestamp_ms());
        let (mut inst, fx) = machine.start(&id, data, ev.meta.session_id.clone());
        self.sweep(ctx, ev.timestamp_ms())?;
        self.apply(ctx, None, &mut inst, fx)
    }

    /// Deletes up to [`SWEEP_PER_START`] finished instances (completed, or
    /// failed and not stuck) unchanged for longer than the retention,
    /// oldest first. Each is written over the version read before it is
    /// deleted (a WIT `delete` checks no version), so one that changed
    /// meanwhile makes this event conflict and run again instead of
    /// vanishing. A finished instance has no waits left, and its timer was
    /// cancelled: a late timer or answer for it finds nothing, as for any
    /// unknown instance.
    fn sweep(&self, ctx: &ReactorCtx, now_ms: u64) -> Result<(), Error> {
        let retention = u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX);
        let Some(cutoff) = now_ms.checked_sub(retention) else {
            return Ok(());
        };
        let instances = ctx.collection::<Value>(INSTANCES);
        let old = instances.list(json!({
            "status": { "$in": ["completed", "failed"] },
            "stuck": false,
            "started_ms": { "$lt": cutoff },
            "updated_ms": { "$lt": cutoff },
            "$sort": { "started_ms": 1 },
            "$limit": SWEEP_PER_START,
        }))?;
        for doc in old {
            instances.put(&doc.id, &doc.value, Some(doc.version))?;
            instances.delete(&doc.id)?;
        }
        Ok(())
    }

    fn on_timer(
        &self,
        ctx: &ReactorCtx,
        ev: Delivered<TimerBody>,
    ) -> Result<Vec<CommandToSend>, Error> {
        let machine = self.machine(ev.timestamp_ms());
        let Some((version, mut inst, mut fx)) = self.load(ctx, &ev.body.id, &machine)? else {
            return Ok(vec![]);
        };
        if inst.status != Status::Parked {
            merge(&mut fx, machine.timer(&mut inst, ev.body.seq));
        }
        if fx == Effects::default() {
            ctx.debug(format!("stale timer {} of {}", ev.body.seq, inst.id));
            return Ok(vec![]);
        }
        self.apply(ctx, Some(version), &mut inst, fx)
    }

    /// An operator's retry: a parked instance is read again (this version
    /// may migrate it) and resumed; a stuck compensation is tried again.
    /// Anything else is logged and left alone (a refusal would only be
    /// retried and dead-lettered).
    fn on_retry(
        &self,
        ctx: &ReactorCtx,
        ev: Delivered<RetryBody>,
    ) -> Result<Vec<CommandToSend>, Error> {
        let id = &ev.body.id;
        let machine = self.machine(ev.timestamp_ms());
        let unreadable = ctx.collection::<Value>(UNREADABLE);
        let was_unreadable = unreadable.get(id)?.is_some();
        let Some((version, mut inst, mut fx)) = self.load(ctx, id, &machine)? else {
            ctx.warn(format!("retry of {id}: no instance it can read"));
            return Ok(vec![]);
        };
        if was_unreadable {
            unreadable.delete(id)?;
        }
        if inst.status == Status::Parked {
            self.unpark(&machine, &mut inst, &mut fx)?;
        } else {
            match machine.retry(&mut inst) {
                Ok(more) => merge(&mut fx, more),
                Err(e) if fx == Effects::default() && !was_unreadable => {
                    ctx.warn(format!("retry of {id} refused: {}", e.message()));
                    return Ok(vec![]);
                }
                Err(_) => {}
            }
        }
        self.apply(ctx, Some(version), &mut inst, fx)
    }

    /// Reads an instance again from where it was parked: readable now, it
    /// takes up its old status, the answers held meanwhile, and a fresh
    /// timeout for what is still pending.
    fn unpark(
        &self,
        machine: &Machine<'_>,
        inst: &mut Instance,
        fx: &mut Effects,
    ) -> Result<(), Error> {
        let Some(parked) = inst.parked.take() else {
            return Ok(());
        };
        inst.status = parked.from;
        if !self.upgrade(machine, inst, fx) {
            // Parked again, with its held answers kept.
            if let Some(p) = inst.parked.as_mut() {
                p.held = parked.held;
            }
            return Ok(());
        }
        inst.note(
            machine.now_ms,
            "resumed",
            None,
            json!({ "held": parked.held.len() }),
        );
        fx.events.push((
            "resumed",
            json!({ "id": inst.id, "status": inst.status.as_str() }),
        ));
        for h in &parked.held {
            if let Some(outcome) = machine.classify(inst, &h.routing_key, &h.key, &h.body) {
                merge(fx, machine.answer(inst, outcome, &h.key, &h.body)?);
            }
        }
        if inst.timer.is_none() {
            machine.resume(inst, fx);
        }
        Ok(())
    }

    /// The instance `id` and its version, brought to the current schema
    /// (or parked, in the effects): `None` if there is none, or if its
    /// document cannot be read at all (then it is recorded as unreadable
    /// and announced once, its document untouched).
    fn load(
        &self,
        ctx: &ReactorCtx,
        id: &str,
        machine: &Machine<'_>,
    ) -> Result<Option<(u64, Instance, Effects)>, Error> {
        let Some(doc) = ctx.collection::<Value>(INSTANCES).get(id)? else {
            return Ok(None);
        };
        let mut inst: Instance = match serde_json::from_value(doc.value) {
            Ok(inst) => inst,
            Err(e) => {
                let reason = format!(
                    "the instance document cannot be read by {} {}: {e}",
                    self.name, self.version
                );
                let unreadable = ctx.collection::<Value>(UNREADABLE);
                if unreadable.get(id)?.is_none() {
                    unreadable.put(
                        id,
                        &json!({ "id": id, "reason": reason, "at_ms": machine.now_ms }),
                        Some(0),
                    )?;
                    ctx.emit(Event::new(
                        format!("{}.parked", self.name),
                        &json!({ "id": id, "reason": reason }),
                    )?);
                }
                ctx.warn(reason);
                return Ok(None);
            }
        };
        let mut fx = Effects::default();
        if inst.status != Status::Parked {
            self.upgrade(machine, &mut inst, &mut fx);
        }
        Ok(Some((doc.version, inst, fx)))
    }

    /// Brings the state to the current schema version through the
    /// author's migration; false (and the instance parked, its state as it
    /// was) when that cannot be done.
    pub(crate) fn upgrade(
        &self,
        machine: &Machine<'_>,
        inst: &mut Instance,
        fx: &mut Effects,
    ) -> bool {
        let (old, current) = (inst.schema_version, self.state_version);
        if old == current {
            return true;
        }
        let reason = if old > current {
            format!("its state is at schema version {old}, newer than this version's {current}")
        } else {
            match &self.migrate {
                None => format!("its state is at schema version {old}, and this version ({current}) has no migration"),
                Some(migrate) => match migrate(old, inst.data.clone()) {
                    Ok(data) => {
                        inst.data = data;
                        inst.schema_version = current;
                        inst.note(machine.now_ms, "migrated", None, json!({ "from": old, "to": current }));
                        return true;
                    }
                    Err(e) => format!("migrating its state from schema version {old} to {current} failed: {e}"),
                },
            }
        };
        machine.disarm(inst, fx);
        inst.note(machine.now_ms, "parked", None, json!({ "reason": reason }));
        fx.events.push((
            "parked",
            json!({ "id": inst.id, "reason": reason, "schema_version": old, "current_schema_version": current }),
        ));
        inst.parked = Some(Parked {
            reason,
            from: inst.status,
            held: Vec::new(),
        });
        inst.status = Status::Parked;
        false
    }

    /// Carries out what the machine decided, in the event's unit of work.
    fn apply(
        &self,
        ctx: &ReactorCtx,
        version: Option<u64>,
        inst: &mut Instance,
        fx: Effects,
    ) -> Result<Vec<CommandToSend>, Error> {
        for id in &fx.cancel {
            if let Err(e) = ctx.cancel(id) {
                // A stale timer is ignored when it fires.
                ctx.warn(format!("could not cancel timer {id}: {e}"));
            }
        }
        if let Some((delay, seq)) = fx.schedule {
            let id = ctx.schedule(
                delay,
                &format!("{}.timer", self.name),
                &json!({ "id": inst.id, "seq": seq }),
            )?;
            if let Some(t) = inst.timer.as_mut() {
                t.id = Some(id);
            }
        }
        let waits = ctx.collection::<Wait>(WAITS);
        for k in &fx.unwait {
            if waits.get(k)?.is_some_and(|w| w.value.instance == inst.id) {
                waits.delete(k)?;
            }
        }
        for k in &fx.wait {
            if usable_key(k) {
                waits.put(
                    k,
                    &Wait {
                        instance: inst.id.clone(),
                    },
                    None,
                )?;
            }
        }
        ctx.collection::<Instance>(INSTANCES)
            .put(&inst.id, inst, Some(version.unwrap_or(0)))?;
        for (suffix, body) in fx.events {
            ctx.emit(Event::new(format!("{}.{suffix}", self.name), &body)?);
        }
        Ok(fx.commands)
    }
}

/// Keeps an answer for a parked instance (the first [`MAX_HELD`]).
fn hold(inst: &mut Instance, routing_key: &str, key: &str, body: &Value) {
    if let Some(p) = inst.parked.as_mut() {
        if p.held.len() < MAX_HELD {
            p.held.push(Held {
                routing_key: routing_key.to_owned(),
                key: key.to_owned(),
                body: body.clone(),
            });
        }
    }
}

/// `more` after `fx`: its timer replaces any set before.
fn merge(fx: &mut Effects, more: Effects) {
    fx.commands.extend(more.commands);
    fx.events.extend(more.events);
    fx.cancel.extend(more.cancel);
    fx.wait.extend(more.wait);
    fx.unwait.extend(more.unwait);
    if more.schedule.is_some() {
        fx.schedule = more.schedule;
    }
}
