//! One atomic step: the effects of a command (document writes, timers) and
//! its processed marker, which is also its outbox row.
//!
//! A [`Commit`] is applied by [`Store::commit`](super::Store::commit) in one
//! transaction, or not at all. Its ops run in order, each checked against
//! the state the ops before it left; a version conflict anywhere undoes all
//! of them. A commit with a [`Marker`] whose message id is already recorded
//! applies nothing and answers [`Committed::Duplicate`] with the recorded
//! events, so of two hosts racing on one command exactly one commits.
//!
//! The marker's events are the command's outbox: they are published after
//! the commit and the row is then marked sent. A row left unsent (the host
//! died, the bus was away) is picked up by any host's relay through
//! [`Store::unsent`](super::Store::unsent) once its lease has passed.
//!
//! Ops are built only by the checked constructors here (their variants are
//! `#[non_exhaustive]`), so a backend is never given a bad name or body.

use serde_json::Value;

use super::{StoreError, MAX_DOCUMENT_LEN};
use crate::names::{check_collection, check_document_id};

/// One change a commit applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Writes a document. `expected` as in
    /// [`Store::upsert`](super::Store::upsert), checked against the state the
    /// ops before it left. Outcome: the new version.
    #[non_exhaustive]
    Put {
        /// The document's domain.
        domain: String,
        /// Its collection.
        collection: String,
        /// Its id.
        id: String,
        /// Its body: a JSON object in compact form.
        json: String,
        /// The version it must be at, if any (0: absent).
        expected: Option<u64>,
    },
    /// Deletes a document. Outcome: 1 if it existed, else 0.
    #[non_exhaustive]
    Delete {
        /// The document's domain.
        domain: String,
        /// Its collection.
        collection: String,
        /// Its id.
        id: String,
    },
    /// Deletes every document of a collection. Outcome: how many.
    #[non_exhaustive]
    Clear {
        /// The collection's domain.
        domain: String,
        /// The collection.
        collection: String,
    },
    /// Stores a pending timer. Outcome: 1.
    #[non_exhaustive]
    Schedule(TimerRow),
    /// Deletes a pending timer of `domain` (another domain's is left alone).
    /// Outcome: 1 if it was pending, else 0.
    #[non_exhaustive]
    Cancel {
        /// The domain that scheduled it.
        domain: String,
        /// The timer's id.
        id: String,
    },
}

impl Op {
    /// A checked [`Op::Put`]: names follow [`crate::names`], the body is a
    /// JSON object within [`MAX_DOCUMENT_LEN`] (stored compact).
    pub fn put(
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected: Option<u64>,
    ) -> Result<Op, StoreError> {
        check_collection(collection)?;
        check_document_id(id)?;
        Ok(Op::Put {
            domain: domain.to_owned(),
            collection: collection.to_owned(),
            id: id.to_owned(),
            json: check_json(json)?,
            expected,
        })
    }

    /// A checked [`Op::Delete`].
    pub fn delete(domain: &str, collection: &str, id: &str) -> Result<Op, StoreError> {
        check_collection(collection)?;
        check_document_id(id)?;
        Ok(Op::Delete {
            domain: domain.to_owned(),
            collection: collection.to_owned(),
            id: id.to_owned(),
        })
    }

    /// A checked [`Op::Clear`].
    pub fn clear(domain: &str, collection: &str) -> Result<Op, StoreError> {
        check_collection(collection)?;
        Ok(Op::Clear {
            domain: domain.to_owned(),
            collection: collection.to_owned(),
        })
    }

    /// An [`Op::Schedule`] of `timer`.
    pub fn schedule(timer: TimerRow) -> Op {
        Op::Schedule(timer)
    }

    /// An [`Op::Cancel`] of `domain`'s timer `id`.
    pub fn cancel(domain: &str, id: &str) -> Op {
        Op::Cancel {
            domain: domain.to_owned(),
            id: id.to_owned(),
        }
    }

    /// Bytes this op holds (what a unit of work counts against its budget).
    pub fn size(&self) -> usize {
        match self {
            Op::Put {
                domain,
                collection,
                id,
                json,
                ..
            } => domain.len() + collection.len() + id.len() + json.len(),
            Op::Delete {
                domain,
                collection,
                id,
            } => domain.len() + collection.len() + id.len(),
            Op::Clear { domain, collection } => domain.len() + collection.len(),
            Op::Schedule(t) => t.id.len() + t.domain.len() + t.json.len(),
            Op::Cancel { domain, id } => domain.len() + id.len(),
        }
    }
}

/// A pending timer as a store keeps it: indexed by due time, counted per
/// domain. What it delivers (`json`) is the host's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    /// Its id.
    pub id: String,
    /// The domain that scheduled it.
    pub domain: String,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_ms: u64,
    /// What it delivers, JSON text.
    pub json: String,
}

/// A command's processed marker and outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The command's message id; unique in the store.
    pub message_id: String,
    /// The events it produced (envelope JSON texts), in publishing order.
    pub events: Vec<String>,
    /// When it was processed (retention counts from here), ms since epoch.
    pub at_ms: u64,
    /// Until when the committing host publishes the events itself; a relay
    /// takes the row only after this.
    pub lease_until_ms: u64,
}

/// What [`Store::commit`](super::Store::commit) applies at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commit {
    /// The changes, applied in order.
    pub ops: Vec<Op>,
    /// The marker, for a command's commit; `None` for a bare write.
    pub marker: Option<Marker>,
}

/// How a commit ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Everything was applied; one outcome per op (see [`Op`]).
    Applied(Vec<u64>),
    /// The marker's message id was already recorded: nothing was applied.
    /// The events recorded with it.
    Duplicate(Vec<String>),
}

/// An outbox row a relay has claimed: publish the events, then mark it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The command's message id.
    pub message_id: String,
    /// Its events, in publishing order.
    pub events: Vec<String>,
}

/// Checks a document body: a JSON object within the size limit. Returns it
/// in compact form.
pub(super) fn check_json(json: &str) -> Result<String, StoreError> {
    if json.len() > MAX_DOCUMENT_LEN {
        return Err(StoreError::TooLarge(format!(
            "document is {} bytes, over the limit of {MAX_DOCUMENT_LEN}",
            json.len()
        )));
    }
    let value: Value = serde_json::from_str(json)
        .map_err(|e| StoreError::Invalid(format!("document is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(StoreError::Invalid(
            "a document must be a JSON object".to_owned(),
        ));
    }
    Ok(value.to_string())
}
