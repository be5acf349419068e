//! Building and reading the events a command publishes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Event};

impl Event {
    /// An event whose body is `body` serialised as JSON.
    ///
    /// The routing key must be in the handler's own domain; the host fills in
    /// the event's ids, causation, session and timestamp.
    pub fn new(routing_key: impl Into<String>, body: &impl Serialize) -> Result<Self, Error> {
        Ok(Self {
            routing_key: routing_key.into(),
            body: serde_json::to_string(body)?,
        })
    }

    /// An event whose body is already JSON text (not checked here).
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
