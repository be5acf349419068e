//! A commit: its ops and its marker in one write transaction.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{decode_events, now_ms, sql_error, to_sql, to_u64};
use parallel_you_core::store::{next_version, Commit, Committed, Op, StoreError};

/// Applies `commit` or nothing. IMMEDIATE takes the file's write lock
/// before the first read, so between the marker check, each version check
/// and the writes no other process can write: of two hosts committing one
/// marker, the second sees the first's row and gets `Duplicate`.
pub(super) fn commit(conn: &mut Connection, commit: &Commit) -> Result<Committed, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    if let Some(marker) = &commit.marker {
        let recorded: Option<String> = tx
            .query_row(
                "SELECT events FROM processed WHERE message_id = ?1",
                params![marker.message_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        if let Some(text) = recorded {
            // Dropping `tx` rolls back; nothing was written anyway.
            return decode_events(&marker.message_id, &text).map(Committed::Duplicate);
        }
    }
    let mut outcomes = Vec::with_capacity(commit.ops.len());
    for op in &commit.ops {
        // An error drops `tx` unfinished, which rolls back the ops before.
        outcomes.push(apply(&tx, op)?);
    }
    if let Some(marker) = &commit.marker {
        let events = serde_json::to_string(&marker.events)
            .map_err(|e| StoreError::Invalid(format!("cannot encode events: {e}")))?;
        tx.execute(
            "INSERT INTO processed (message_id, events, processed_ms, lease_until_ms, sent)
             VALUES (?1, ?2, ?3, ?4, 0)",
            params![
                marker.message_id,
                events,
                to_sql(marker.at_ms),
                to_sql(marker.lease_until_ms)
            ],
        )
        .map_err(sql_error)?;
    }
    if commit.marker.is_some() {
        // The crash tests' point between the transaction's writes and its
        // commit.
        crate::faults::reached(crate::faults::Point::MidCommit);
    }
    tx.commit().map_err(sql_error)?;
    Ok(Committed::Applied(outcomes))
}

/// Applies one op inside the commit's transaction; its outcome (see [`Op`]).
fn apply(tx: &Transaction<'_>, op: &Op) -> Result<u64, StoreError> {
    match op {
        Op::Put {
            domain,
            collection,
            id,
            json,
            expected,
            ..
        } => {
            let current = tx
                .prepare_cached(
                    "SELECT version FROM documents
                     WHERE domain = ?1 AND collection = ?2 AND id = ?3",
                )
                .and_then(|mut st| {
                    st.query_row(params![domain, collection, id], |row| row.get::<_, i64>(0))
                        .optional()
                })
                .map_err(sql_error)?
                .map_or(0, to_u64);
            let version = next_version(current, *expected)?;
            tx.prepare_cached(
                "INSERT INTO documents (domain, collection, id, version, json, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (domain, collection, id)
                 DO UPDATE SET version = excluded.version, json = excluded.json,
                               updated_ms = excluded.updated_ms",
            )
            .and_then(|mut st| {
                st.execute(params![domain, collection, id, to_sql(version), json, now_ms()])
            })
            .map_err(sql_error)?;
            Ok(version)
        }
        Op::Delete {
            domain,
            collection,
            id,
            ..
        } => changed(tx.execute(
            "DELETE FROM documents WHERE domain = ?1 AND collection = ?2 AND id = ?3",
            params![domain, collection, id],
        )),
        Op::Clear {
            domain, collection, ..
        } => changed(tx.execute(
            "DELETE FROM documents WHERE domain = ?1 AND collection = ?2",
            params![domain, collection],
        )),
        // Braces: a `#[non_exhaustive]` tuple variant has no tuple pattern here.
        Op::Schedule { 0: timer, .. } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO timers (id, domain, due_ms, json) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    timer.id,
                    timer.domain,
                    to_sql(timer.due_ms),
                    timer.json
                ])
            })
            .map_err(sql_error)?;
            Ok(1)
        }
        Op::Cancel { domain, id, .. } => changed(tx.execute(
            "DELETE FROM timers WHERE id = ?1 AND domain = ?2",
            params![id, domain],
        )),
    }
}

/// The rows a statement changed, as an outcome.
fn changed(n: rusqlite::Result<usize>) -> Result<u64, StoreError> {
    n.map(|n| u64::try_from(n).unwrap_or(u64::MAX))
        .map_err(sql_error)
}
