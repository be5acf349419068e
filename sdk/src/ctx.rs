//! The context a command function runs in: its meta, the store, early
//! events, timers and logging.

use serde::Serialize;

use crate::bindings::parallel_you::handler::{emitter, log, scheduler};
use crate::{Collection, Error, Event, Level, Meta};

/// What a command function can use: the command's meta, the domain's store,
/// early events and logging.
#[derive(Debug, Clone)]
pub struct Ctx {
    meta: Meta,
}

impl Ctx {
    /// A context for a command with this meta. The SDK builds it; it is
    /// public so that handlers can unit-test their functions.
    pub fn new(meta: Meta) -> Self {
        Self { meta }
    }

    /// The command's meta: message id, routing key, correlation id, session
    /// id, timestamp…
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The command's full routing key, e.g. `counter.increment`.
    pub fn routing_key(&self) -> &str {
        &self.meta.routing_key
    }

    /// Typed access to one collection of the domain's document store.
    pub fn collection<'a, T>(&self, name: &'a str) -> Collection<'a, T> {
        Collection::new(name)
    }

    /// Adds an event to the command's output, as it goes: published when
    /// the command commits, before the returned events, and never if the
    /// command fails (`wit/handler.wit`, interface `emitter`).
    pub fn emit(&self, event: Event) {
        emitter::emit(&event);
    }

    /// Has the command `routing_key` (of this handler's own domain) with
    /// `body` delivered after `delay`, surviving host restarts. The command
    /// arrives with this command's session and reply channel, and this
    /// command's correlation id as its causation id. Returns the timer id,
    /// for [`Ctx::cancel`].
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

    /// Writes a line to the host's log, tagged with the handler's domain and
    /// the command's correlation id.
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
