//! The `timers` table: pending timers by id, due time and domain.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{sql_error, to_sql, to_u64};
use parallel_you_core::store::{StoreError, TimerRow};

fn timer_row(row: &Row<'_>) -> rusqlite::Result<TimerRow> {
    Ok(TimerRow {
        id: row.get(0)?,
        domain: row.get(1)?,
        due_ms: to_u64(row.get(2)?),
        json: row.get(3)?,
    })
}

/// The pending timer `id`.
pub(super) fn timer(conn: &Connection, id: &str) -> Result<Option<TimerRow>, StoreError> {
    conn.prepare_cached("SELECT id, domain, due_ms, json FROM timers WHERE id = ?1")
        .and_then(|mut st| st.query_row(params![id], timer_row).optional())
        .map_err(sql_error)
}

/// Up to `limit` timers due at `now_ms`, earliest first, off the due index
/// (which, the table being keyed by id, is ordered by due time then id).
pub(super) fn due(
    conn: &Connection,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<TimerRow>, StoreError> {
    conn.prepare_cached(
        "SELECT id, domain, due_ms, json FROM timers
         WHERE due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2",
    )
    .and_then(|mut st| {
        st.query_map(params![to_sql(now_ms), to_sql(limit)], timer_row)?
            .collect()
    })
    .map_err(sql_error)
}

/// How many timers `domain` has pending, counted on the domain index.
pub(super) fn pending(conn: &Connection, domain: &str) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT COUNT(*) FROM timers WHERE domain = ?1")
        .and_then(|mut st| st.query_row(params![domain], |row| row.get::<_, i64>(0)))
        .map(to_u64)
        .map_err(sql_error)
}
