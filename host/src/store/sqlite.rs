//! The embedded default store: one SQLite file in the data directory.
//!
//! SQLite (bundled, so nothing needs installing) in WAL mode: documents
//! survive the process, and a crash mid-write loses at most the write that
//! was in flight. One thread of its own owns the connection and runs the
//! operations in the order they are sent: a write waiting up to the busy
//! timeout for another process's lock blocks that thread, never a tokio
//! worker.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use parallel_you_core::store::{
    next_version, paged, Backend, Checked, Document, Filter, Scan, StoreError,
};

/// The file name of the store inside a data directory.
pub const FILE_NAME: &str = "pyou.sqlite3";

/// How long a write waits for another process holding the file's write
/// lock before failing `unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An operation for the connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A store in one SQLite file, used as [`Checked<SqliteStore>`].
#[derive(Debug)]
pub struct SqliteStore {
    /// To the thread owning the connection; dropping it ends the thread,
    /// which closes the connection after the operations already sent.
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

fn unavailable(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {err}"))
}

fn stopped() -> StoreError {
    StoreError::Unavailable("sqlite: the store's thread has stopped".to_owned())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir/pyou.sqlite3`.
    pub fn open_dir(data_dir: &Path) -> Result<Checked<Self>, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        Self::open(&data_dir.join(FILE_NAME))
    }

    /// Opens (creating if needed) the store in one file.
    pub fn open(path: &Path) -> Result<Checked<Self>, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        // WAL lets readers in other processes (`pyou handlers`, a second
        // `invoke`) work while one writes; NORMAL sync is durable across
        // process crashes, which is what the embedded store promises.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
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
                 message_id   TEXT PRIMARY KEY,
                 events       TEXT NOT NULL,
                 processed_ms INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )
        .map_err(unavailable)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pyou-sqlite".to_owned())
            .spawn(move || {
                let mut conn = conn;
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("sqlite: cannot start a thread: {e}")))?;
        Ok(Checked::new(SqliteStore {
            jobs,
            path: path.to_owned(),
        }))
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection's thread and waits for its answer.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                // The caller may have stopped waiting; the work is done anyway.
                let _ = answer.send(work(conn));
            }))
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Up to `n` documents of a collection after id `after`, in id order.
fn page(
    conn: &Connection,
    domain: &str,
    collection: &str,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<Document>, StoreError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let row = |row: &rusqlite::Row<'_>| {
        Ok(Document {
            id: row.get(0)?,
            version: to_version(row.get(1)?),
            json: row.get(2)?,
        })
    };
    let docs = match after {
        None => conn
            .prepare_cached(
                "SELECT id, version, json FROM documents
                 WHERE domain = ?1 AND collection = ?2 ORDER BY id LIMIT ?3",
            )
            .and_then(|mut st| {
                st.query_map(params![domain, collection, n], row)?
                    .collect::<Result<Vec<_>, _>>()
            }),
        Some(after) => conn
            .prepare_cached(
                "SELECT id, version, json FROM documents
                 WHERE domain = ?1 AND collection = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
            )
            .and_then(|mut st| {
                st.query_map(params![domain, collection, after, n], row)?
                    .collect::<Result<Vec<_>, _>>()
            }),
    };
    docs.map_err(unavailable)
}

fn upsert(
    conn: &mut Connection,
    domain: &str,
    collection: &str,
    id: &str,
    json: &str,
    expected_version: Option<u64>,
) -> Result<u64, StoreError> {
    // IMMEDIATE takes the write lock before reading the version, so a
    // second process cannot slip a write between the check and the write.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let current: u64 = tx
        .query_row(
            "SELECT version FROM documents WHERE domain = ?1 AND collection = ?2 AND id = ?3",
            params![domain, collection, id],
            |row| row.get::<_, i64>(0),
        )
        .optional()
        .map_err(unavailable)?
        .map_or(0, to_version);
    let version = next_version(current, expected_version)?;
    let now = now_ms();
    tx.execute(
        "INSERT INTO documents (domain, collection, id, version, json, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (domain, collection, id)
         DO UPDATE SET version = excluded.version, json = excluded.json, updated_ms = excluded.updated_ms",
        params![domain, collection, id, i64::try_from(version).unwrap_or(i64::MAX), json, now],
    )
    .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(version)
}

#[allow(dead_code)]
impl SqliteStore {
    async fn upsert(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
        json: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (domain, collection) = (domain.to_owned(), collection.to_owned());
        let (id, json) = (id.to_owned(), json.to_owned());
        self.run(move |conn| upsert(conn, &domain, &collection, &id, &json, expected_version))
            .await
    }

    async fn delete(&self, domain: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        let (domain, collection, id) = (domain.to_owned(), collection.to_owned(), id.to_owned());
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM documents WHERE domain = ?1 AND collection = ?2 AND id = ?3",
                params![domain, collection, id],
            )
            .map(|n| n > 0)
            .map_err(unavailable)
        })
        .await
    }

    async fn clear(&self, domain: &str, collection: &str) -> Result<(), StoreError> {
        let (domain, collection) = (domain.to_owned(), collection.to_owned());
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM documents WHERE domain = ?1 AND collection = ?2",
                params![domain, collection],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn record_processed(
        &self,
        message_id: &str,
        events: &[String],
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(events)
            .map_err(|e| StoreError::Invalid(format!("cannot encode events: {e}")))?;
        let id = message_id.to_owned();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO processed (message_id, events, processed_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (message_id) DO NOTHING",
                params![id, text, now_ms()],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl Backend for SqliteStore {
    // Scaffold for the unit-of-work branch: replaced by the real ones.
    async fn commit(
        &self,
        _commit: &parallel_you_core::store::Commit,
    ) -> Result<parallel_you_core::store::Committed, StoreError> {
        Err(StoreError::Unavailable("commit: not yet".to_owned()))
    }
    async fn unsent(
        &self,
        _now_ms: u64,
        _lease_until_ms: u64,
        _limit: usize,
    ) -> Result<Vec<parallel_you_core::store::Outgoing>, StoreError> {
        Err(StoreError::Unavailable("unsent: not yet".to_owned()))
    }
    async fn mark_sent(&self, _message_id: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("mark_sent: not yet".to_owned()))
    }
    async fn sweep(&self, _before_ms: u64, _limit: usize) -> Result<usize, StoreError> {
        Err(StoreError::Unavailable("sweep: not yet".to_owned()))
    }
    async fn timer(
        &self,
        _id: &str,
    ) -> Result<Option<parallel_you_core::store::TimerRow>, StoreError> {
        Err(StoreError::Unavailable("timer: not yet".to_owned()))
    }
    async fn due_timers(
        &self,
        _now_ms: u64,
        _limit: usize,
    ) -> Result<Vec<parallel_you_core::store::TimerRow>, StoreError> {
        Err(StoreError::Unavailable("due_timers: not yet".to_owned()))
    }
    async fn pending_timers(&self, _domain: &str) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable(
            "pending_timers: not yet".to_owned(),
        ))
    }

    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        let (domain, collection, id) = (domain.to_owned(), collection.to_owned(), id.to_owned());
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT version, json FROM documents WHERE domain = ?1 AND collection = ?2 AND id = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![domain, collection, id], |row| {
                    Ok(Document {
                        id: id.clone(),
                        version: to_version(row.get(0)?),
                        json: row.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError> {
        Ok(paged(filter, move |after, n, _max_bytes| {
            let (domain, collection) = (domain.to_owned(), collection.to_owned());
            self.run(move |conn| page(conn, &domain, &collection, after.as_deref(), n))
        }))
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let id = message_id.to_owned();
        let text: Option<String> = self
            .run(move |conn| {
                conn.query_row(
                    "SELECT events FROM processed WHERE message_id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                StoreError::Unavailable(format!("processed record of {message_id} is corrupt: {e}"))
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::store::Store;

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_waiting_for_the_file_lock_leaves_the_runtime_free() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteStore::open_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        // Another process holding the write lock, as far as SQLite can tell.
        let other = Connection::open(dir.path().join(FILE_NAME)).unwrap_or_else(|e| panic!("{e}"));
        other
            .execute_batch("BEGIN IMMEDIATE")
            .unwrap_or_else(|e| panic!("{e}"));
        let write = tokio::spawn(async move { store.upsert("d", "c", "x", "{}", None).await });
        // On the runtime's only thread: a write blocking it would run to its
        // busy timeout here, and be finished by the time this sleep ends.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!write.is_finished(), "the write did not wait for the lock");
        other
            .execute_batch("COMMIT")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(write.await.ok(), Some(Ok(1)));
    }
}
