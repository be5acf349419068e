//! What a reactor's event function receives and returns.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{CommandToSend, Error, Meta};

/// An event delivered to a reactor: its meta and its body decoded as `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered<T> {
    /// The meta its publisher gave it (message id, routing key,
    /// correlation id, session, timestamp…).
    pub meta: Meta,
    /// The decoded body.
    pub body: T,
}

impl<T> Delivered<T> {
    /// The event's routing key, e.g. `thread.started`.
    pub fn routing_key(&self) -> &str {
        &self.meta.routing_key
    }

    /// When the event was created, in milliseconds since the Unix epoch:
    /// the same for every delivery of it, so a read model keyed on it stays
    /// the same when an event is delivered twice.
    pub fn timestamp_ms(&self) -> u64 {
        self.meta.timestamp_ms
    }

    /// The user whose command caused the event (see
    /// [`Ctx::user_id`](crate::Ctx::user_id)); `None` without
    /// authentication.
    pub fn user_id(&self) -> Option<&str> {
        self.meta.user_id.as_deref()
    }

    /// The event's message id (a ULID), the same for every delivery.
    pub fn message_id(&self) -> &str {
        &self.meta.message_id
    }
}

impl CommandToSend {
    /// A command whose body is `body` serialised as JSON. Its routing key
    /// must be listed in the reactor's [`sends`](crate::Reactor::sends);
    /// the host fills in its meta from the event that caused it.
    pub fn new(routing_key: impl Into<String>, body: &impl Serialize) -> Result<Self, Error> {
        Ok(Self {
            routing_key: routing_key.into(),
            body: serde_json::to_string(body)?,
        })
    }

    /// A command whose body is already JSON text (not checked here).
    pub fn raw(routing_key: impl Into<String>, json: impl Into<String>) -> Self {
        Self {
            routing_key: routing_key.into(),
            body: json.into(),
        }
    }

    /// The body parsed as `T` (handy in tests).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_str(&self.body)?)
    }
}
