//! Durable timers: commands a handler asked to have delivered later.
//!
//! Timers are rows of the store's timer index (due time, domain), so they
//! survive restarts, are shared by every host on a shared store, and what
//! is due is one indexed query however many are pending. A command's
//! timers join its unit of work: scheduled or cancelled only if the command
//! commits. A serving host polls for due timers, sends each one's command
//! on the bus and then deletes it. The command's `message_id` is derived
//! from the timer id, so a timer sent twice (a crash between send and
//! delete, two hosts racing) is one command to the idempotency check, never
//! two; and sealed with the store's key ([`TimerSeal`]), so no client can
//! make one.
//!
//! A reactor's timer is delivered back to that reactor alone, as an event
//! of its own domain put straight in its queue; so is a dead-lettered event
//! an operator replays (`crate::dead_letter`), which rides a timer due at
//! once carrying the original event.
//!
//! Scheduling (the sandbox's `scheduler` import) and firing ([`TimerPump`])
//! read the time from the host's one [`Clock`].

mod clock;
mod pump;
pub mod seal;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use parallel_you_core::envelope::{self, Envelope, Kind, Meta};
use parallel_you_core::names::{check_routing_key, domain_of};
use parallel_you_core::store::{Commit, Filter, Op, Store, StoreError, TimerRow, UnitOfWork};
use parallel_you_core::trace::{self, TraceContext};

pub use clock::{Clock, ManualClock, SystemClock};
pub use pump::TimerPump;
pub use seal::TimerSeal;

/// The reserved domain of the host's own documents; no handler can claim it.
pub const DOMAIN: &str = "pyou";
/// Where hosts before the timer index kept pending timers, as documents of
/// [`DOMAIN`]; [`migrate_legacy`] moves them.
pub const LEGACY_COLLECTION: &str = "timers";
/// The longest delay a handler may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// How often a serving host looks for due timers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Most timers fired per poll.
const BATCH: usize = 256;

/// A pending timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The domain that scheduled it (only it may cancel it).
    pub domain: String,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_ms: u64,
    /// The command to deliver.
    pub routing_key: String,
    /// Its body, JSON text.
    pub body: String,
    /// The session of the command that scheduled it.
    pub session_id: Option<String>,
    /// The reply channel of the command that scheduled it.
    pub reply_channel: Option<String>,
    /// The correlation id of the command that scheduled it.
    pub causation_id: String,
    /// The user the command that scheduled it was sent by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The trace context of the span that scheduled it (the guest's): the
    /// command it delivers continues that trace, as its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` that goes with [`Timer::traceparent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// Delivered to the reactor of `domain` as an event, not sent as a
    /// command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reactor: bool,
    /// For a replayed dead letter: the original event's envelope (JSON),
    /// delivered as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// Whom a timer is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Its command goes to the handler of its routing key.
    Handler,
    /// It comes back to the reactor that scheduled it, as an event.
    Reactor,
}

/// Schedules, in `unit` (of the handler's domain), a timer scheduled by
/// the command `cause`, due `delay_ms` after `clock`'s now; returns its id.
pub async fn schedule(
    unit: &mut UnitOfWork,
    clock: &dyn Clock,
    cause: &Meta,
    delay_ms: u64,
    routing_key: &str,
    body: &str,
) -> Result<String, StoreError> {
    schedule_to(
        unit,
        clock,
        cause,
        delay_ms,
        routing_key,
        body,
        Target::Handler,
    )
    .await
}

/// [`schedule`], delivered to `target`.
pub async fn schedule_to(
    unit: &mut UnitOfWork,
    clock: &dyn Clock,
    cause: &Meta,
    delay_ms: u64,
    routing_key: &str,
    body: &str,
    target: Target,
) -> Result<String, StoreError> {
    let id = envelope::new_id();
    let mut row = timer_row(
        &id,
        unit.domain(),
        clock,
        cause,
        delay_ms,
        routing_key,
        body,
    )?;
    if target == Target::Reactor {
        row.json = retarget(&row.json, None)?;
    }
    unit.schedule(row).await?;
    Ok(id)
}

/// Delivers an event `routing_key` (of `domain`) with `body` to the
/// reactor of `domain` alone, now: a timer due at once, committed to
/// `store` for any serving host's pump to fire, on `session_id` if given.
/// How an operator's tool (`pyou sagas retry`) reaches a reactor without
/// a bus of its own. Returns the timer id.
pub async fn deliver_to_reactor(
    store: &dyn Store,
    clock: &dyn Clock,
    domain: &str,
    routing_key: &str,
    body: &str,
    session_id: Option<&str>,
) -> Result<String, StoreError> {
    let id = envelope::new_id();
    let mut cause = Meta::new(Kind::Command, routing_key);
    if let Some(session) = session_id {
        cause.set_session(session);
    }
    let mut row = timer_row(&id, domain, clock, &cause, 0, routing_key, body)?;
    row.json = retarget(&row.json, None)?;
    store
        .commit(&Commit {
            ops: vec![Op::schedule(row)],
            marker: None,
        })
        .await?;
    Ok(id)
}

/// A timer's JSON `json` made a reactor's, carrying `event` if given.
pub(crate) fn retarget(json: &str, event: Option<String>) -> Result<String, StoreError> {
    let mut timer: Timer = serde_json::from_str(json)
        .map_err(|e| StoreError::Invalid(format!("cannot decode the timer: {e}")))?;
    timer.reactor = true;
    timer.event = event;
    serde_json::to_string(&timer)
        .map_err(|e| StoreError::Invalid(format!("cannot encode the timer: {e}")))
}

/// The checked row of a timer `id` that `domain` asks for.
pub fn timer_row(
    id: &str,
    domain: &str,
    clock: &dyn Clock,
    cause: &Meta,
    delay_ms: u64,
    routing_key: &str,
    body: &str,
) -> Result<TimerRow, StoreError> {
    check_routing_key(routing_key)?;
    if domain_of(routing_key) != domain {
        return Err(StoreError::Invalid(format!(
            "a handler may only schedule commands of its own domain {domain:?}, not {routing_key:?}"
        )));
    }
    if Duration::from_millis(delay_ms) > MAX_DELAY {
        return Err(StoreError::Invalid(format!(
            "a delay of {delay_ms} ms is longer than the limit of {} days",
            MAX_DELAY.as_secs() / 86_400
        )));
    }
    let body = envelope::parse_body(body, envelope::DEFAULT_MAX_BODY, &Default::default())
        .map_err(|e| StoreError::Invalid(e.reason))?;
    let timer = Timer {
        domain: domain.to_owned(),
        due_ms: clock.now_ms().saturating_add(delay_ms),
        routing_key: routing_key.to_owned(),
        body: body.get().to_owned(),
        session_id: cause.session_id.clone(),
        reply_channel: cause.reply_channel.clone(),
        causation_id: cause.correlation_id.clone(),
        user_id: cause.user_id.clone(),
        traceparent: None,
        tracestate: None,
        reactor: false,
        event: None,
    };
    // Scheduled from inside the guest: its span is the current one.
    let trace = trace::onward(&tracing::Span::current(), cause.trace());
    let timer = Timer {
        traceparent: trace.as_ref().map(|t| t.traceparent()),
        tracestate: trace.and_then(|t| t.state),
        ..timer
    };
    let json = serde_json::to_string(&timer)
        .map_err(|e| StoreError::Invalid(format!("cannot encode the timer: {e}")))?;
    Ok(TimerRow {
        id: id.to_owned(),
        domain: timer.domain,
        due_ms: timer.due_ms,
        json,
    })
}

/// Timers due at `now_ms`, earliest first, with their ids.
pub async fn due(store: &dyn Store, now_ms: u64) -> Result<Vec<(String, Timer)>, StoreError> {
    Ok(store
        .due_timers(now_ms, BATCH)
        .await?
        .into_iter()
        .filter_map(|row| {
            let timer = serde_json::from_str::<Timer>(&row.json);
            if let Err(err) = &timer {
                tracing::error!(id = %row.id, error = %err, "unreadable timer skipped");
            }
            timer.ok().map(|t| (row.id, t))
        })
        .collect())
}

/// Deletes a timer that has fired (or cannot).
pub async fn remove(store: &dyn Store, domain: &str, id: &str) -> Result<(), StoreError> {
    let commit = Commit {
        ops: vec![Op::cancel(domain, id)],
        marker: None,
    };
    store.commit(&commit).await.map(|_| ())
}

/// Moves the timers an older host kept as documents into the timer index,
/// a page at a time; returns how many moved. Each one moves in one commit
/// (scheduled, then its document deleted), so a crash midway loses none.
pub async fn migrate_legacy(store: &dyn Store) -> Result<usize, StoreError> {
    let mut moved = 0;
    loop {
        let docs = store
            .list(DOMAIN, LEGACY_COLLECTION, &Filter::all())
            .await?;
        if docs.is_empty() {
            return Ok(moved);
        }
        for doc in docs {
            let mut ops = Vec::with_capacity(2);
            match serde_json::from_str::<Timer>(&doc.json) {
                Ok(timer) => ops.push(Op::schedule(TimerRow {
                    id: doc.id.clone(),
                    domain: timer.domain,
                    due_ms: timer.due_ms,
                    json: doc.json.clone(),
                })),
                Err(err) => {
                    tracing::error!(id = %doc.id, error = %err, "dropping an unreadable timer")
                }
            }
            ops.push(Op::delete(DOMAIN, LEGACY_COLLECTION, &doc.id)?);
            store.commit(&Commit { ops, marker: None }).await?;
            moved += 1;
        }
    }
}

impl Timer {
    /// The event a reactor's timer delivers: the replayed event as it was,
    /// or one of the reactor's own domain whose message id is derived from
    /// the timer id, so delivering it twice is one event.
    pub fn event(&self, id: &str, seal: &TimerSeal) -> Result<Envelope, envelope::EnvelopeError> {
        if let Some(text) = &self.event {
            return Envelope::from_json(text, usize::MAX);
        }
        let mut env = self.command(id, seal)?;
        env.meta.kind = Kind::Event;
        Ok(env)
    }

    /// The command this timer delivers. Its message id is derived from the
    /// timer id, so delivering it twice is one command, and sealed by
    /// `seal`, so only a host of this store can make it.
    pub fn command(&self, id: &str, seal: &TimerSeal) -> Result<Envelope, envelope::EnvelopeError> {
        let body = envelope::parse_body(&self.body, usize::MAX, &Default::default())?;
        Ok(Envelope {
            meta: Meta {
                message_id: seal.message_id(&self.domain, id),
                ..Meta::new(Kind::Command, &self.routing_key)
                    .caused_by(
                        Some(self.causation_id.clone()),
                        self.session_id.clone(),
                        self.reply_channel.clone(),
                    )
                    .on_behalf_of(self.user_id.clone())
                    .traced(TraceContext::read(
                        self.traceparent.as_deref(),
                        self.tracestate.as_deref(),
                    ))
            },
            body,
        })
    }
}
