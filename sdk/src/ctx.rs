//! The context a component's function runs in: the message's meta, the
//! store, timers, logging, and (for command handlers) early events.
//!
//! One [`Ctx`] type serves the three kinds of function, told apart by a
//! marker type so that each has exactly the powers it has: a command
//! function and a reactor's event function may emit events of their own
//! domain ([`Ctx::emit`], [`ReactorCtx::emit`]: a reactor that does imports
//! `emitter` too), and a query has no message and no writes.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;

use crate::bindings::parallel_you::handler::{emitter, log, scheduler};
use crate::{Collection, Error, Event, Level, Meta};

/// Marker: the context of a command handler's function (the default).
#[derive(Debug, Clone, Copy)]
pub enum ForCommand {}

/// Marker: the context of a reactor's event function.
#[derive(Debug, Clone, Copy)]
pub enum ForEvent {}

/// Marker: the context of a reactor's query function.
#[derive(Debug, Clone, Copy)]
pub enum ForQuery {}

/// What a reactor's event function can use: the event's meta, the domain's
/// store, timers and logging.
pub type ReactorCtx = Ctx<ForEvent>;

/// What a reactor's query function can use: the domain's store (read-only:
/// the host fails any write with `invalid`) and logging.
pub type QueryCtx = Ctx<ForQuery>;

/// Which markers carry a message (and so meta and timers).
pub trait CtxKind: sealed::Sealed {
    /// `Meta` for functions that answer a message, `()` for queries.
    type Meta: fmt::Debug + Clone;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ForCommand {}
    impl Sealed for super::ForEvent {}
    impl Sealed for super::ForQuery {}
}

impl CtxKind for ForCommand {
    type Meta = Meta;
}
impl CtxKind for ForEvent {
    type Meta = Meta;
}
impl CtxKind for ForQuery {
    type Meta = ();
}

/// What a function can use. `Ctx` alone (a command function's) has the
/// command's meta, the domain's store, early events, timers and logging;
/// [`ReactorCtx`] and [`QueryCtx`] have what reactors' functions may use.
pub struct Ctx<K: CtxKind = ForCommand> {
    meta: K::Meta,
    kind: PhantomData<K>,
}

impl<K: CtxKind> fmt::Debug for Ctx<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx").field("meta", &self.meta).finish()
    }
}

impl<K: CtxKind> Clone for Ctx<K> {
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            kind: PhantomData,
        }
    }
}

impl Ctx {
    /// A context for a command with this meta. The SDK builds it; it is
    /// public so that handlers can unit-test their functions.
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            kind: PhantomData,
        }
    }

    /// Adds an event to the command's output, as it goes: published when
    /// the command commits, before the returned events, and never if the
    /// command fails (`wit/handler.wit`, interface `emitter`).
    pub fn emit(&self, event: Event) {
        emitter::emit(&event);
    }
}

impl ReactorCtx {
    /// A context for an event with this meta. The SDK builds it; it is
    /// public so that reactors can unit-test their functions.
    pub fn for_event(meta: Meta) -> Self {
        Self {
            meta,
            kind: PhantomData,
        }
    }

    /// Announces an event of the reactor's own domain (a workflow's
    /// progress, say), published with the event's session and reply
    /// channel and its correlation id as causation id when the event
    /// commits, before the commands it returns, and never if it fails.
    ///
    /// The host counts these against the same caps as a command's events;
    /// one it refuses (another domain's key, a body that is not JSON or is
    /// too large) fails the event. The `emitter` interface of
    /// `wit/handler.wit`, imported by world `reactor` (`wit/reactor.wit`).
    pub fn emit(&self, event: Event) {
        emitter::emit(&event);
    }
}

impl QueryCtx {
    /// A context for a query. The SDK builds it; it is public so that
    /// reactors can unit-test their queries.
    pub fn for_query() -> Self {
        Self {
            meta: (),
            kind: PhantomData,
        }
    }
}

impl<K: CtxKind<Meta = Meta>> Ctx<K> {
    /// The message's meta: message id, routing key, correlation id, session
    /// id, timestamp…
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The message's full routing key, e.g. `counter.increment`.
    pub fn routing_key(&self) -> &str {
        &self.meta.routing_key
    }

    /// Who sent the command: the subject of the token the gateway
    /// verified (a timer's command and a reactor's carry the user of the
    /// message that caused them). `None` without authentication.
    pub fn user_id(&self) -> Option<&str> {
        self.meta.user_id.as_deref()
    }

    /// The id of the timer (as [`Ctx::schedule`] returned it) whose
    /// command this is, or `None` when no timer sent it. The host seals
    /// timer message ids, so a client cannot pass its command off as a
    /// timer's.
    pub fn fired_by_timer(&self) -> Option<&str> {
        let rest = self.meta.message_id.strip_prefix("timer-")?;
        Some(rest.rsplit_once('.').map_or(rest, |(id, _mac)| id))
    }

    /// Has `routing_key` (of this component's own domain) with `body`
    /// delivered after `delay`, surviving host restarts: to a handler as
    /// the command `routing_key`, with this command's session and reply
    /// channel and its correlation id as causation id; to a reactor as an
    /// event of its own, to itself only. Returns the timer id, for
    /// [`Ctx::cancel`].
    pub fn schedule(
        &self,
        delay: std::time::Duration,
        routing_key: &str,
        body: &impl Serialize,
    ) -> Result<String, Error> {
        let body = serde_json::to_string(body)?;
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        Ok(scheduler::schedule(delay_ms, routing_key, &body)?)
    }

    /// Cancels a timer of this domain; true if it was still pending.
    pub fn cancel(&self, timer_id: &str) -> Result<bool, Error> {
        Ok(scheduler::cancel(timer_id)?)
    }
}

impl<K: CtxKind> Ctx<K> {
    /// Typed access to one collection of the domain's document store.
    pub fn collection<'a, T>(&self, name: &'a str) -> Collection<'a, T> {
        Collection::new(name)
    }

    /// Writes a line to the host's log, tagged with the component's domain
    /// and the message's correlation id.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        log::log(level, message.as_ref());
    }

    /// Logs at level trace.
    pub fn trace(&self, message: impl AsRef<str>) {
        self.log(Level::Trace, message);
    }

    /// Logs at level debug.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at level info.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at level warn.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at level error.
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }
}
