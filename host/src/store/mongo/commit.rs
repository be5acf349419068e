//! [`Backend::commit`](parallel_you_core::store::Backend::commit) on
//! MongoDB.
//!
//! A commit with a marker, or with more than one op, is one multi-document
//! transaction (snapshot reads, majority and journaled writes): the marker
//! is inserted first, so the unique `_id` of [`super::PROCESSED`] decides
//! between two hosts racing on one command (the loser's insert conflicts,
//! or finds the marker, and it answers `Duplicate` with nothing applied),
//! then the ops in order. In a transaction a put reads the version and
//! writes conditionally on it; a write conflict with another transaction
//! aborts this one and the whole transaction runs again, a bounded number
//! of times, as the driver's documentation recommends.
//!
//! A lone op without a marker is one single-document write (or one
//! `delete_many`), atomic by itself, and skips the transaction. How a put
//! checks its version either way is in `put`.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::error::{
    Error, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::{Acknowledgment, ReadConcern, WriteConcern};
use mongodb::ClientSession;

use parallel_you_core::store::{Commit, Committed, Op, StoreError};

use super::bson::Body;
use super::put::{put_alone, put_in};
use super::{is_duplicate_key, outbox, server_code, store_error, timers, unavailable, MongoStore};

/// Runs of a transaction that conflicted with a concurrent one.
const TRANSACTION_ATTEMPTS: u32 = 5;
/// The pause before the second run; it doubles with each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Attempts of a `commitTransaction` whose outcome the driver could not
/// learn (the spec says it is safe to send again).
const COMMIT_ATTEMPTS: usize = 5;
/// The server's write conflict error.
const WRITE_CONFLICT: i32 = 112;

/// Why a transaction ended without committing.
pub(super) enum Abort {
    /// For good: the commit answers this.
    Fail(StoreError),
    /// Conflicted with a concurrent transaction: run it again.
    Retry(String),
    /// The marker is already recorded.
    Duplicate,
}

impl From<StoreError> for Abort {
    fn from(err: StoreError) -> Self {
        Abort::Fail(err)
    }
}

/// What a driver error means inside a transaction.
pub(super) fn abort_for(err: &Error) -> Abort {
    // No server to talk to: another run would only wait as long again.
    if matches!(err.kind.as_ref(), ErrorKind::ServerSelection { .. }) {
        return Abort::Fail(unavailable(err));
    }
    let mapped = store_error(err);
    if matches!(mapped, StoreError::TooLarge(_)) {
        return Abort::Fail(mapped);
    }
    // A duplicate key on a put's insert: the document was created since
    // this transaction read it as absent.
    if err.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || matches!(
            server_code(err),
            Some(WRITE_CONFLICT | super::DUPLICATE_KEY)
        )
    {
        return Abort::Retry(err.to_string());
    }
    Abort::Fail(mapped)
}

/// A lone op's failure: the store's answer, or the driver's error to map.
enum OpError {
    Store(StoreError),
    Driver(Error),
}

impl From<StoreError> for OpError {
    fn from(err: StoreError) -> Self {
        OpError::Store(err)
    }
}

impl From<Error> for OpError {
    fn from(err: Error) -> Self {
        OpError::Driver(err)
    }
}

/// Runs a driver action in `session`'s transaction, if there is one.
macro_rules! in_session {
    ($session:expr, $action:expr) => {
        match $session {
            Some(session) => $action.session(session).await,
            None => $action.await,
        }
    };
}

impl MongoStore {
    pub(super) async fn commit_all(&self, commit: &Commit) -> Result<Committed, StoreError> {
        if commit.marker.is_none() {
            match commit.ops.as_slice() {
                [] => return Ok(Committed::Applied(Vec::new())),
                [op] => return self.alone(op).await.map(|n| Committed::Applied(vec![n])),
                _ => {}
            }
        }
        let mut session = self
            .db
            .client()
            .start_session()
            .await
            .map_err(|e| store_error(&e))?;
        let mut last = String::new();
        for attempt in 0..TRANSACTION_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE * 2u32.pow(attempt - 1)).await;
            }
            match self.transaction(&mut session, commit).await {
                Ok(outcomes) => return Ok(Committed::Applied(outcomes)),
                Err(Abort::Fail(err)) => return Err(err),
                Err(Abort::Retry(why)) => last = why,
                Err(Abort::Duplicate) => {
                    let id = commit.marker.as_ref().map_or("", |m| m.message_id.as_str());
                    match self.marker_events(id).await? {
                        Some(events) => return Ok(Committed::Duplicate(events)),
                        None => last = format!("the marker of {id} was there, then gone"),
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "mongodb: the commit conflicted with concurrent ones {TRANSACTION_ATTEMPTS} times; \
             the last time: {last}"
        )))
    }

    /// One run of a commit's transaction.
    async fn transaction(
        &self,
        session: &mut ClientSession,
        commit: &Commit,
    ) -> Result<Vec<u64>, Abort> {
        let durable = WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .build();
        session
            .start_transaction()
            .read_concern(ReadConcern::snapshot())
            .write_concern(durable)
            .await
            .map_err(|e| abort_for(&e))?;
        match self.apply_all(session, commit).await {
            Ok(outcomes) => {
                finish(session).await?;
                Ok(outcomes)
            }
            Err(abort) => {
                // The driver ignores the server's answer to an abort (the
                // server may have aborted it already); the error here is
                // only "nothing to abort".
                if let Err(err) = session.abort_transaction().await {
                    tracing::debug!(error = %err, "abort of a failed transaction");
                }
                Err(abort)
            }
        }
    }

    async fn apply_all(
        &self,
        session: &mut ClientSession,
        commit: &Commit,
    ) -> Result<Vec<u64>, Abort> {
        if let Some(marker) = &commit.marker {
            let insert = self
                .processed
                .insert_one(outbox::to_stored(marker))
                .session(&mut *session)
                .await;
            if let Err(err) = insert {
                return Err(if is_duplicate_key(&err) {
                    Abort::Duplicate
                } else {
                    abort_for(&err)
                });
            }
        }
        let mut outcomes = Vec::with_capacity(commit.ops.len());
        for op in &commit.ops {
            let outcome = match op {
                Op::Put {
                    domain,
                    collection,
                    id,
                    json,
                    expected,
                    ..
                } => {
                    let coll = self.docs(domain, collection)?;
                    put_in(session, &coll, id, &Body::of(json)?, *expected).await?
                }
                other => match self.simple(other, Some(&mut *session)).await {
                    Ok(n) => n,
                    Err(OpError::Store(err)) => return Err(Abort::Fail(err)),
                    Err(OpError::Driver(err)) => return Err(abort_for(&err)),
                },
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// A lone op, outside any transaction.
    async fn alone(&self, op: &Op) -> Result<u64, StoreError> {
        if let Op::Put {
            domain,
            collection,
            id,
            json,
            expected,
            ..
        } = op
        {
            let coll = self.docs(domain, collection)?;
            return put_alone(&coll, id, &Body::of(json)?, *expected).await;
        }
        match self.simple(op, None).await {
            Ok(n) => Ok(n),
            Err(OpError::Store(err)) => Err(err),
            Err(OpError::Driver(err)) => Err(store_error(&err)),
        }
    }

    /// An op other than a put: one driver action, in `session` if given.
    async fn simple(&self, op: &Op, session: Option<&mut ClientSession>) -> Result<u64, OpError> {
        Ok(match op {
            Op::Put { .. } => {
                return Err(OpError::Store(StoreError::Invalid(
                    "a put is not a simple op".to_owned(),
                )))
            }
            Op::Delete {
                domain,
                collection,
                id,
                ..
            } => {
                let coll = self.docs(domain, collection)?;
                in_session!(session, coll.delete_one(doc! {"_id": id}))?.deleted_count
            }
            Op::Clear {
                domain, collection, ..
            } => {
                let coll = self.docs(domain, collection)?;
                in_session!(session, coll.delete_many(doc! {}))?.deleted_count
            }
            Op::Schedule { 0: timer, .. } => {
                let stored = timers::to_stored(timer);
                let replace = self
                    .timers
                    .replace_one(doc! {"_id": timer.id.as_str()}, stored)
                    .upsert(true);
                in_session!(session, replace)?;
                1
            }
            Op::Cancel { domain, id, .. } => {
                let cancel = self.timers.delete_one(doc! {"_id": id, "domain": domain});
                in_session!(session, cancel)?.deleted_count
            }
        })
    }
}

/// Commits the transaction, sending the commit again while its outcome is
/// unknown.
async fn finish(session: &mut ClientSession) -> Result<(), Abort> {
    // The crash tests' point between the transaction's writes and its commit.
    crate::faults::reached(crate::faults::Point::MidCommit);
    let mut last = None;
    for _ in 0..COMMIT_ATTEMPTS {
        match session.commit_transaction().await {
            Ok(()) => return Ok(()),
            Err(err) if err.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => last = Some(err),
            Err(err) => return Err(abort_for(&err)),
        }
    }
    Err(Abort::Fail(StoreError::Unavailable(format!(
        "mongodb: the outcome of the commit stayed unknown: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))))
}
