//! The `processed` table as inbox and outbox: markers, the relay's claims,
//! and the sweep of old sent ones.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{decode_events, sql_error, to_sql};
use parallel_you_core::store::{Outgoing, StoreError};

/// The events recorded for `message_id`, if it was processed.
pub(super) fn processed(
    conn: &Connection,
    message_id: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT events FROM processed WHERE message_id = ?1")
        .and_then(|mut st| {
            st.query_row(params![message_id], |row| row.get(0))
                .optional()
        })
        .map_err(sql_error)?;
    text.map(|t| decode_events(message_id, &t)).transpose()
}

/// Claims up to `limit` unsent rows whose lease has passed, oldest first.
/// The select and the update share one write transaction, so two relays
/// (two processes) never claim one row at once.
pub(super) fn unsent(
    conn: &mut Connection,
    now_ms: u64,
    lease_until_ms: u64,
    limit: usize,
) -> Result<Vec<Outgoing>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let rows: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT message_id, events FROM processed
             WHERE sent = 0 AND lease_until_ms <= ?1
             ORDER BY processed_ms, message_id LIMIT ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![to_sql(now_ms), to_sql(limit)], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(sql_error)?;
    let mut out = Vec::with_capacity(rows.len());
    {
        let mut lease = tx
            .prepare_cached("UPDATE processed SET lease_until_ms = ?1 WHERE message_id = ?2")
            .map_err(sql_error)?;
        for (message_id, events) in rows {
            lease
                .execute(params![to_sql(lease_until_ms), message_id])
                .map_err(sql_error)?;
            let events = decode_events(&message_id, &events)?;
            out.push(Outgoing { message_id, events });
        }
    }
    tx.commit().map_err(sql_error)?;
    Ok(out)
}

/// Marks rows sent, in one transaction; a missing one is no error.
pub(super) fn mark_sent(conn: &mut Connection, message_ids: &[String]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    {
        let mut mark = tx
            .prepare_cached("UPDATE processed SET sent = 1 WHERE message_id = ?1")
            .map_err(sql_error)?;
        for id in message_ids {
            mark.execute(params![id]).map_err(sql_error)?;
        }
    }
    tx.commit().map_err(sql_error)
}

/// Deletes up to `limit` sent rows processed before `before_ms`.
pub(super) fn sweep(conn: &Connection, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "DELETE FROM processed WHERE message_id IN (
             SELECT message_id FROM processed
             WHERE sent = 1 AND processed_ms < ?1 LIMIT ?2)",
    )
    .and_then(|mut st| st.execute(params![to_sql(before_ms), to_sql(limit)]))
    .map_err(sql_error)
}
