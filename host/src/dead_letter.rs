//! Dead letters: the events a reactor gave up on after its retries, kept
//! for an operator to inspect, replay or drop: on RabbitMQ in the broker's
//! dead-letter queue (`bus::amqp`, `AmqpBus::dead_letters`), otherwise in
//! the store, as this module does.
//!
//! A dead letter is a document of the reserved domain [`DOMAIN`]
//! (collection [`COLLECTION`]) whose id is the reactor's marker for that
//! event, so one (reactor, event) has at most one dead letter however often
//! it fails. It keeps the whole event envelope, the reactor, the last error
//! and the number of tries. Every host on a shared store sees the same
//! dead letters.
//!
//! Replaying one commits, in one step, a timer due at once that carries the
//! event back to its reactor's queue (see [`crate::timers`]) and the
//! deletion of the dead letter: a serving host's timer pump delivers it,
//! and the reactor runs it like any event (its marker still absent, since
//! it never committed).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::timers::{Clock, Timer};
use parallel_you_core::envelope::{self, Envelope};
use parallel_you_core::error::ErrorBody;
use parallel_you_core::store::{Commit, Filter, Op, Store, StoreError, TimerRow};

/// The reserved domain dead letters are kept in.
pub const DOMAIN: &str = crate::timers::DOMAIN;
/// Their collection.
pub const COLLECTION: &str = "dead_letters";
/// Routing key of the event announcing a dead letter.
pub const DEAD_LETTERED: &str = "pyou.dead_lettered";

/// One event a reactor gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id (the reactor's marker for the event).
    pub id: String,
    /// The reactor's domain.
    pub reactor: String,
    /// The event's routing key.
    pub routing_key: String,
    /// The event's message id.
    pub message_id: String,
    /// The event's correlation id.
    pub correlation_id: String,
    /// The last failure's code.
    pub code: String,
    /// The last failure's message.
    pub reason: String,
    /// How many times it was tried.
    pub tries: u32,
    /// When it was given up on, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The whole event envelope, JSON.
    pub event: String,
}

/// The id of the processed marker of (`reactor`, event `message_id`), and
/// of its dead letter: a valid message id whatever the lengths of both.
pub fn marker_id(reactor: &str, message_id: &str) -> String {
    format!("rx-{reactor}-{}", digest(&[reactor, message_id]))
}

/// The message id of the `index`-th command a reactor returned for an
/// event: the same every time that event is handled, so a resend after a
/// crash is one command to the receiving handler.
pub fn command_id(reactor: &str, message_id: &str, index: usize) -> String {
    format!("rc-{}", digest(&[reactor, message_id, &index.to_string()]))
}

/// 32 hex digits of the SHA-256 of `parts`, each ended by a NUL.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl DeadLetter {
    /// The dead letter of `event` for `reactor` after `tries`, failing with
    /// `err`.
    pub fn new(reactor: &str, event: &Envelope, err: &ErrorBody, tries: u32, at_ms: u64) -> Self {
        DeadLetter {
            id: marker_id(reactor, &event.meta.message_id),
            reactor: reactor.to_owned(),
            routing_key: event.meta.routing_key.clone(),
            message_id: event.meta.message_id.clone(),
            correlation_id: event.meta.correlation_id.clone(),
            code: err.code.as_str().to_owned(),
            reason: err.message.clone(),
            tries,
            at_ms,
            event: event.to_json(),
        }
    }

    /// The body of its `pyou.dead_lettered` event: everything but the
    /// event itself.
    pub fn announcement(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "reactor": self.reactor,
            "routing_key": self.routing_key,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "code": self.code,
            "reason": self.reason,
            "tries": self.tries,
        })
    }
}

fn decode(json: &str) -> Result<DeadLetter, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Invalid(format!("an unreadable dead letter: {e}")))
}

/// Stores `letter` (replacing an earlier one of the same event).
pub async fn record(store: &dyn Store, letter: &DeadLetter) -> Result<(), StoreError> {
    let json = serde_json::to_string(letter)
        .map_err(|e| StoreError::Invalid(format!("cannot encode the dead letter: {e}")))?;
    let op = Op::put(DOMAIN, COLLECTION, &letter.id, &json, None)?;
    store
        .commit(&Commit {
            ops: vec![op],
            marker: None,
        })
        .await
        .map(drop)
}

/// Up to `limit` dead letters (at most the store's page), by id.
pub async fn list(store: &dyn Store, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    let filter = Filter::parse(&format!(r#"{{"$limit": {}}}"#, limit.max(1)))?;
    store
        .list(DOMAIN, COLLECTION, &filter)
        .await?
        .iter()
        .map(|d| decode(&d.json))
        .collect()
}

/// The dead letter `id`, if there is one.
pub async fn show(store: &dyn Store, id: &str) -> Result<Option<DeadLetter>, StoreError> {
    store
        .get(DOMAIN, COLLECTION, id)
        .await?
        .map(|d| decode(&d.json))
        .transpose()
}

/// Sends the dead letter `id` back to its reactor (through a timer due now,
/// fired by any serving host) and deletes it, in one commit. Returns it, or
/// `None` if there is no such dead letter.
pub async fn replay(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
) -> Result<Option<DeadLetter>, StoreError> {
    let Some(doc) = store.get(DOMAIN, COLLECTION, id).await? else {
        return Ok(None);
    };
    let letter = decode(&doc.json)?;
    let timer = Timer {
        domain: letter.reactor.clone(),
        due_ms: clock.now_ms(),
        routing_key: letter.routing_key.clone(),
        body: "{}".to_owned(),
        session_id: None,
        reply_channel: None,
        causation_id: letter.correlation_id.clone(),
        user_id: None,
        // The event replayed carries its own.
        traceparent: None,
        tracestate: None,
        reactor: true,
        event: Some(letter.event.clone()),
    };
    let json = serde_json::to_string(&timer)
        .map_err(|e| StoreError::Invalid(format!("cannot encode the timer: {e}")))?;
    let row = TimerRow {
        id: envelope::new_id(),
        domain: timer.domain,
        due_ms: timer.due_ms,
        json,
    };
    // Versioned: a concurrent replay or drop of the same letter conflicts
    // instead of sending the event twice.
    let delete = Op::put(DOMAIN, COLLECTION, id, "{}", Some(doc.version))?;
    let gone = Op::delete(DOMAIN, COLLECTION, id)?;
    store
        .commit(&Commit {
            ops: vec![delete, gone, Op::schedule(row)],
            marker: None,
        })
        .await?;
    Ok(Some(letter))
}

/// Deletes the dead letter `id`; true if it existed.
pub async fn drop_letter(store: &dyn Store, id: &str) -> Result<bool, StoreError> {
    if store.get(DOMAIN, COLLECTION, id).await?.is_none() {
        return Ok(false);
    }
    store
        .commit(&Commit {
            ops: vec![Op::delete(DOMAIN, COLLECTION, id)?],
            marker: None,
        })
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::names::check_message_id;

    #[test]
    fn derived_ids_are_stable_distinct_and_valid() {
        let long = "x".repeat(128);
        let domain = "d".repeat(48);
        let m = marker_id(&domain, &long);
        assert_eq!(m, marker_id(&domain, &long));
        assert_ne!(m, marker_id(&domain, "y"));
        assert_eq!(check_message_id("message_id", &m), Ok(()));
        let c0 = command_id("tally", "e1", 0);
        assert_eq!(c0, command_id("tally", "e1", 0));
        assert_ne!(c0, command_id("tally", "e1", 1));
        assert_ne!(c0, command_id("other", "e1", 0));
        assert_eq!(check_message_id("message_id", &c0), Ok(()));
    }
}
