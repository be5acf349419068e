//! Pooled read-only connections for point reads on the caller's thread.
//!
//! In WAL mode a read transaction never waits for the writer: it reads the
//! last commit and the writer appends meanwhile. So a point read (one row
//! by its key, microseconds of work) can run right where it is asked for,
//! and skip the two thread wake-ups of a trip to the writer's thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sql_error;
use parallel_you_core::store::StoreError;

/// Idle connections kept; more are opened under load and closed after.
const KEPT: usize = 8;

/// How long a read may wait: only a crash recovery or an exclusive lock
/// another program took holds a WAL reader up, and this runs on an async
/// worker, so it fails fast (`unavailable`, retried) rather than stall it.
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// The pool; connections are opened on first use, after the writer made
/// the file and its schema.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle connection (or a new one) and returns it to
    /// the pool.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let answer = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < KEPT {
            idle.push(conn);
        }
        answer
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", self.path.display()))
        })?;
        conn.busy_timeout(READ_BUSY_TIMEOUT).map_err(sql_error)?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, FILE_NAME};
    use parallel_you_core::store::{Commit, Marker, Store};

    #[tokio::test]
    async fn a_point_read_sees_the_last_commit_of_the_writer() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.get("d", "c", "x").await, Ok(None));
        for v in 1..=3 {
            let json = format!(r#"{{"v":{v}}}"#);
            assert_eq!(store.upsert("d", "c", "x", &json, None).await, Ok(v));
            let doc = store.get("d", "c", "x").await.ok().flatten();
            assert_eq!(doc.map(|d| (d.version, d.json)), Some((v, json)));
        }
        let marker = Marker {
            message_id: "m1".to_owned(),
            events: vec!["{}".to_owned()],
            at_ms: 1,
            lease_until_ms: 1,
        };
        let commit = Commit {
            ops: Vec::new(),
            marker: Some(marker),
        };
        assert!(store.commit(&commit).await.is_ok());
        assert_eq!(store.processed("m1").await, Ok(Some(vec!["{}".to_owned()])));
        assert!(dir.path().join(FILE_NAME).exists());
    }

    #[tokio::test]
    async fn rows_marked_sent_behind_are_never_claimed_by_this_process() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..50 {
            let marker = Marker {
                message_id: format!("m{i}"),
                events: vec!["{}".to_owned()],
                at_ms: 1,
                lease_until_ms: 1,
            };
            let commit = Commit {
                ops: Vec::new(),
                marker: Some(marker),
            };
            assert!(store.commit(&commit).await.is_ok());
        }
        for i in 0..40 {
            assert_eq!(store.mark_sent(&format!("m{i}")).await, Ok(()));
        }
        // Claimed right after: the marks were queued first, so only the ten
        // unmarked rows are left.
        let rows = store.unsent(10, 20, 100).await.unwrap_or_default();
        let mut ids: Vec<String> = rows.into_iter().map(|r| r.message_id).collect();
        ids.sort();
        let mut expected: Vec<String> = (40..50).map(|i| format!("m{i}")).collect();
        expected.sort();
        assert_eq!(ids, expected);
    }
}
