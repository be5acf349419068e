//! The file's tables, created or brought up to date when a store opens.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::sql_error;
use parallel_you_core::store::StoreError;

/// Every table and index this version uses. `processed` holds the inbox
/// (processed markers) and the outbox (their events until sent).
const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS documents (
        domain     TEXT NOT NULL,
        collection TEXT NOT NULL,
        id         TEXT NOT NULL,
        version    INTEGER NOT NULL,
        json       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (domain, collection, id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS processed (
        message_id     TEXT PRIMARY KEY,
        events         TEXT NOT NULL,
        processed_ms   INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL DEFAULT 0,
        sent           INTEGER NOT NULL DEFAULT 1
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS timers (
        id     TEXT PRIMARY KEY,
        domain TEXT NOT NULL,
        due_ms INTEGER NOT NULL,
        json   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS timers_due ON timers (due_ms);
    CREATE INDEX IF NOT EXISTS timers_domain ON timers (domain);";

/// Columns the outbox added to `processed`, for files made before it. A
/// marker written then counts as sent: its events were published by the
/// host that wrote it, before the marker.
const OUTBOX_COLUMNS: [(&str, &str); 2] = [
    ("lease_until_ms", "INTEGER NOT NULL DEFAULT 0"),
    ("sent", "INTEGER NOT NULL DEFAULT 1"),
];

/// The relay's query (unsent, oldest first) and the sweep's (sent, older
/// than a cut) both walk this index. Created after the columns it names.
const OUTBOX_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS processed_outbox ON processed (sent, processed_ms);";

/// Creates what is missing. Idempotent; one write transaction, so two
/// processes opening an old file at once do not both add a column.
pub(super) fn ensure(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    tx.execute_batch(TABLES).map_err(sql_error)?;
    for (column, decl) in OUTBOX_COLUMNS {
        let present = tx
            .query_row(
                "SELECT 1 FROM pragma_table_info('processed') WHERE name = ?1",
                [column],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql_error)?
            .is_some();
        if !present {
            tx.execute_batch(&format!("ALTER TABLE processed ADD COLUMN {column} {decl}"))
                .map_err(sql_error)?;
        }
    }
    tx.execute_batch(OUTBOX_INDEX).map_err(sql_error)?;
    tx.commit().map_err(sql_error)
}
