//! The embedded default store: one SQLite file in the data directory.
//!
//! SQLite (bundled, so nothing needs installing) in WAL mode: documents
//! survive the process, and a crash mid-write loses at most the write that
//! was in flight. One thread of its own owns the connection and runs the
//! operations in the order they are sent: a write waiting up to the busy
//! timeout for another process's lock blocks that thread, never a tokio
//! worker. A commit is one write transaction (`commit.rs`); the processed
//! markers are the outbox too (`outbox.rs`); timers have a table of their
//! own (`timers.rs`).
//!
//! Point reads (a document, a marker, a timer) skip that thread: in WAL mode
//! a reader never waits for a writer, so they run on the caller's thread on
//! a pooled read-only connection (`readers.rs`). The hop to the writer's
//! thread and back is most of a small operation's cost on a busy machine.
//! Marking outbox rows sent is written behind: the caller does not wait,
//! and the rows marked meanwhile share one transaction.

mod commit;
mod documents;
mod outbox;
mod query;
mod readers;
mod schema;
mod timers;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

use parallel_you_core::store::{
    paged, Backend, Checked, Commit, Committed, Document, Filter, Outgoing, Scan, Scanned,
    StoreError, TimerRow,
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
    /// Connections for point reads on the caller's thread.
    readers: readers::Readers,
    /// Outbox rows to mark sent by the next flush on the connection's thread.
    sent: Arc<Mutex<Vec<String>>>,
    path: PathBuf,
}

/// A SQLite failure as a store error: a value or statement over SQLite's
/// limits is permanent (`TooLarge`); anything else (busy, locked, I/O) may
/// pass, so it is `Unavailable`.
fn sql_error(err: rusqlite::Error) -> StoreError {
    let too_big = match &err {
        rusqlite::Error::SqliteFailure(e, _) => e.code == ErrorCode::TooBig,
        _ => false,
    } || err.to_string().contains("string or blob too big");
    if too_big {
        StoreError::TooLarge(format!("sqlite: {err}"))
    } else {
        StoreError::Unavailable(format!("sqlite: {err}"))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("sqlite: the store's thread has stopped".to_owned())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| to_sql(d.as_millis()))
}

/// A count or time as SQLite's integer; past its range, its largest (so
/// "before u64::MAX" means "before any time").
fn to_sql<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A stored integer as a count, version or time; never negative in this
/// file, 0 if it were.
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A marker's events, stored as one JSON array text.
fn decode_events(message_id: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Unavailable(format!("processed record of {message_id} is corrupt: {e}"))
    })
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

    /// Opens (creating if needed) the store in one file, bringing a file
    /// made by an earlier version up to date.
    pub fn open(path: &Path) -> Result<Checked<Self>, StoreError> {
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        // WAL lets readers in other processes (`pyou handlers`, a second
        // `invoke`) work while one writes; NORMAL sync is durable across
        // process crashes, which is what the embedded store promises.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;",
        )
        .map_err(sql_error)?;
        schema::ensure(&mut conn)?;
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
            readers: readers::Readers::new(path),
            sent: Arc::default(),
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

#[async_trait]
impl Backend for SqliteStore {
    async fn get(
        &self,
        domain: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>, StoreError> {
        self.readers
            .read(|conn| documents::get(conn, domain, collection, id))
    }

    async fn scan<'a>(
        &'a self,
        domain: &'a str,
        collection: &'a str,
        filter: &'a Filter,
    ) -> Result<Scan<'a>, StoreError> {
        Ok(paged(filter, true, move |after, n, max_bytes| {
            let (domain, collection) = (domain.to_owned(), collection.to_owned());
            // Copied onto the connection's thread, which owns what it runs.
            let filter = filter.clone();
            let page = self.run(move |conn| {
                documents::page(
                    conn,
                    &domain,
                    &collection,
                    &filter,
                    after.as_ref(),
                    n,
                    max_bytes,
                )
            });
            async move { Ok(page.await?.into_iter().map(Scanned::from).collect()) }
        }))
    }

    async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError> {
        // Copied once onto the connection's thread, which owns what it runs.
        let commit = commit.clone();
        self.run(move |conn| commit::commit(conn, &commit)).await
    }

    async fn processed(&self, message_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.readers
            .read(|conn| outbox::processed(conn, message_id))
    }

    async fn unsent(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        self.run(move |conn| outbox::unsent(conn, now_ms, lease_until_ms, limit))
            .await
    }

    /// Written behind: queued for the connection's thread, which marks
    /// every row queued by then in one transaction. A row whose mark is
    /// lost (a crash first) is relayed again after its lease, with the same
    /// message ids. Jobs run in order, so this process's own relay never
    /// claims a row it has already marked.
    async fn mark_sent(&self, message_id: &str) -> Result<(), StoreError> {
        let first = {
            let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
            sent.push(message_id.to_owned());
            sent.len() == 1
        };
        if first {
            let sent = self.sent.clone();
            self.jobs
                .send(Box::new(move |conn| {
                    let ids = std::mem::take(&mut *sent.lock().unwrap_or_else(PoisonError::into_inner));
                    if let Err(err) = outbox::mark_sent(conn, &ids) {
                        tracing::warn!(error = %err, rows = ids.len(), "could not mark outbox rows sent");
                    }
                }))
                .map_err(|_| stopped())?;
        }
        Ok(())
    }

    async fn sweep(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.run(move |conn| outbox::sweep(conn, before_ms, limit))
            .await
    }

    async fn timer(&self, id: &str) -> Result<Option<TimerRow>, StoreError> {
        self.readers.read(|conn| timers::timer(conn, id))
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRow>, StoreError> {
        self.run(move |conn| timers::due(conn, now_ms, limit)).await
    }

    async fn pending_timers(&self, domain: &str) -> Result<u64, StoreError> {
        self.readers.read(|conn| timers::pending(conn, domain))
    }

    async fn ensure_index(
        &self,
        _domain: &str,
        _collection: &str,
        fields: &[Vec<String>],
    ) -> Result<(), StoreError> {
        let fields = fields.to_vec();
        self.run(move |conn| documents::ensure_index(conn, &fields))
            .await
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
