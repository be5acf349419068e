//! The event log: the audit trail of what happened. Every event on the bus,
//! and every command a host runs, appended to the store (domain `pyou`,
//! collection `event_log`) or to a folder of daily JSON-lines files, kept
//! for a retention window, and read back as the trail of one command
//! ([`trail`]): everything it caused, in order, across domains and
//! reactors.
//!
//! Commands are logged because they are the links of the chain: an event
//! carries its command's correlation id as its causation id, and a command
//! a reactor sends carries the event's. Appends go through a bounded queue
//! to one writer task, so a slow log slows the publishers down (it never
//! grows without bound) and a store outage costs log entries, not
//! commands; the writer says how many it dropped.

mod files;
mod in_store;
mod trail;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parallel_you_core::bus::{Bus, BusError, Publisher};
use parallel_you_core::envelope::Envelope;
use tokio::sync::mpsc;

pub use files::FileLog;
pub use in_store::StoreLog;
pub use trail::{trail, Trail, MAX_TRAIL};

/// Entries waiting for the writer at most: past this, appends wait.
const QUEUE: usize = 4096;
/// Entries the writer appends in one go at most.
const BATCH: usize = 256;
/// How often entries past the retention window are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed.
    #[error("the event log in the store: {0}")]
    Store(#[from] parallel_you_core::store::StoreError),
    /// A file of the log could not be read or written.
    #[error("the event log file {path}: {err}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        err: std::io::Error,
    },
}

/// Where log entries are kept.
#[async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// Appends `entries` (an entry logged twice, as a redelivered command
    /// is, may be kept twice: readers drop repeats by message id).
    async fn append(&self, entries: &[Envelope]) -> Result<(), LogError>;
    /// Deletes what was logged before `before_ms`; returns how many.
    async fn sweep(&self, before_ms: u64) -> Result<usize, LogError>;
    /// The messages whose causation id is one of `causes`, or (with
    /// `correlation`) whose correlation id is it; at most `limit`.
    async fn find(
        &self,
        causes: &[String],
        correlation: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError>;
}

/// The log a serving host appends to.
pub struct EventLog {
    /// Gone once closed.
    tx: parking_lot::Mutex<Option<mpsc::Sender<Envelope>>>,
    dropped: Arc<AtomicU64>,
    writer: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    follower: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    /// Starts the writer over `sink`, deleting entries older than
    /// `retention` now and every ten minutes.
    pub fn start(sink: Arc<dyn LogSink>, retention: Duration) -> Arc<EventLog> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write(sink, rx, retention, dropped.clone()));
        Arc::new(EventLog {
            tx: parking_lot::Mutex::new(Some(tx)),
            dropped,
            writer: parking_lot::Mutex::new(Some(writer)),
            follower: parking_lot::Mutex::new(None),
        })
    }

    /// Appends one message (waits while the queue is full). After
    /// [`EventLog::close`] it counts as dropped.
    pub async fn record(&self, message: &Envelope) {
        let tx = self.tx.lock().clone();
        let sent = match tx {
            Some(tx) => tx.send(message.clone()).await.is_ok(),
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Logs every event published on `bus` from now on (subscribed before
    /// this returns, so nothing published after is missed).
    pub async fn follow(self: &Arc<Self>, bus: &dyn Bus) -> Result<(), BusError> {
        let mut events = bus.subscribe("#").await?;
        let log = self.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                log.record(&event).await;
            }
        });
        if let Some(old) = self.follower.lock().replace(task) {
            old.abort();
        }
        Ok(())
    }

    /// Entries that could not be kept so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops following the bus and writes out what is queued (appends
    /// still waiting finish first).
    pub async fn close(&self) {
        if let Some(follower) = self.follower.lock().take() {
            follower.abort();
        }
        drop(self.tx.lock().take());
        let writer = self.writer.lock().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

/// The log as a publisher: what the host hands every command it runs to.
#[async_trait]
impl Publisher for EventLog {
    async fn publish(&self, message: Envelope) -> Result<(), BusError> {
        self.record(&message).await;
        Ok(())
    }
}

/// The writer: batches of what is queued, a few tries each, and the sweep.
async fn write(
    sink: Arc<dyn LogSink>,
    mut rx: mpsc::Receiver<Envelope>,
    retention: Duration,
    dropped: Arc<AtomicU64>,
) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            got = rx.recv_many(&mut batch, BATCH) => {
                if got == 0 {
                    return;
                }
                append(sink.as_ref(), &batch, &dropped).await;
                batch.clear();
            }
            _ = sweep.tick() => {
                let before = now_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
                match sink.sweep(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "event log: entries past the retention deleted"),
                    Err(err) => tracing::warn!(error = %err, "event log: the sweep failed; trying again later"),
                }
            }
        }
    }
}

async fn append(sink: &dyn LogSink, batch: &[Envelope], dropped: &AtomicU64) {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=4 {
        match sink.append(batch).await {
            Ok(()) => return,
            Err(err) if attempt == 4 => {
                let lost =
                    dropped.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                tracing::error!(error = %err, lost, "event log: entries could not be kept");
            }
            Err(err) => {
                tracing::warn!(error = %err, "event log: append failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 4;
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The instant a message was made, in ms (0 if unreadable: validated
/// envelopes always have one).
pub(crate) fn timestamp_ms(message: &Envelope) -> u64 {
    parallel_you_core::envelope::parse_timestamp_ms(&message.meta.timestamp).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use parallel_you_core::MemoryStore;

    fn message(key: &str, timestamp: &str) -> Envelope {
        let mut e = Envelope::command(key, "{}").unwrap();
        e.meta.timestamp = timestamp.to_owned();
        e
    }

    #[tokio::test]
    async fn the_store_log_forgets_what_is_past_the_retention_only() {
        let log = StoreLog::open(Arc::new(MemoryStore::new())).await.unwrap();
        let old = message("a.old", "2001-01-01T00:00:00.000Z");
        let new = message("a.new", "2026-12-01T00:00:00.000Z");
        log.append(&[old.clone(), new.clone(), new.clone()])
            .await
            .unwrap();
        let cutoff = timestamp_ms(&new) - 1;
        assert_eq!(log.sweep(cutoff).await.unwrap(), 1);
        let left = log
            .find(&[], Some(&new.meta.correlation_id), 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 1, "logged twice, kept once");
        assert!(log
            .find(&[], Some(&old.meta.correlation_id), 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_sessions_history_is_its_events_after_a_position_in_order() {
        use parallel_you_core::session_history::{After, SessionHistory};
        let log = StoreLog::open(Arc::new(MemoryStore::new())).await.unwrap();
        let cmd = Envelope::command("a.b", "{}").unwrap().with_session("s1");
        let event = |n: u32, ts: &str| {
            let body = serde_json::value::RawValue::from_string(n.to_string()).unwrap();
            let mut e = Envelope::event_for(&cmd.meta, "a.done", body);
            e.meta.timestamp = ts.to_owned();
            e
        };
        let one = event(1, "2026-12-01T00:00:00.001Z");
        let two = event(2, "2026-12-01T00:00:00.002Z");
        let three = event(3, "2026-12-01T00:00:00.003Z");
        let other = Envelope::command("a.b", "{}").unwrap().with_session("s2");
        let theirs = Envelope::event_for(
            &other.meta,
            "a.done",
            serde_json::value::RawValue::from_string("9".into()).unwrap(),
        );
        // Logged out of order, with the command and another session's event.
        log.append(&[three.clone(), cmd.clone(), one.clone(), theirs, two.clone()])
            .await
            .unwrap();
        let after = |e: &Envelope| After {
            message_id: e.meta.message_id.clone(),
            timestamp_ms: timestamp_ms(e),
        };
        let ids = |list: Vec<Envelope>| -> Vec<String> {
            list.into_iter().map(|e| e.meta.message_id).collect()
        };
        let got = log.after("s1", &after(&one), 10).await.unwrap();
        assert_eq!(
            ids(got),
            [two.meta.message_id.clone(), three.meta.message_id.clone()]
        );
        let got = log.after("s1", &after(&one), 1).await.unwrap();
        assert_eq!(ids(got), std::slice::from_ref(&two.meta.message_id));
        assert!(log
            .after("s1", &after(&three), 10)
            .await
            .unwrap()
            .is_empty());
        assert!(log.after("s3", &after(&one), 10).await.unwrap().is_empty());
    }

    /// What the session index (for replays after a restart) costs each
    /// logged event on SQLite: printed, not asserted (BENCHMARKS.md).
    #[tokio::test]
    #[ignore = "a measurement: cargo test -p parallel-you-host session_index_cost -- --ignored --nocapture"]
    async fn session_index_cost() {
        const N: usize = 2000;
        let cmd = Envelope::command("a.b", "{}").unwrap().with_session("s1");
        let events: Vec<Envelope> = (0..N)
            .map(|n| {
                let body = serde_json::value::RawValue::from_string(format!("{{\"n\":{n}}}"));
                Envelope::event_for(&cmd.meta, "a.done", body.unwrap())
            })
            .collect();
        for fields in [
            &["meta.causation_id", "meta.correlation_id"][..],
            &[
                "meta.causation_id",
                "meta.correlation_id",
                "meta.session_id",
            ][..],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn parallel_you_core::store::Store> =
                Arc::new(crate::SqliteStore::open(&dir.path().join("s.db")).unwrap());
            for f in fields {
                store
                    .ensure_index("pyou", "event_log", &[(*f).to_owned()])
                    .await
                    .unwrap();
            }
            let log = StoreLog::open_unindexed(store);
            let started = std::time::Instant::now();
            for batch in events.chunks(BATCH) {
                log.append(batch).await.unwrap();
            }
            let per = started.elapsed() / N as u32;
            eprintln!(
                "event_log append, {} indexes: {per:?} per event",
                fields.len()
            );
        }
    }

    #[tokio::test]
    async fn the_file_log_forgets_whole_days_past_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path()).unwrap();
        let old_day = dir.path().join("events-2001-01-01.jsonl");
        std::fs::write(
            &old_day,
            format!("{}\n", message("a.old", "2001-01-01T00:00:00.000Z")),
        )
        .unwrap();
        let new = message("a.new", "2026-12-01T00:00:00.000Z");
        log.append(std::slice::from_ref(&new)).await.unwrap();
        assert_eq!(log.sweep(now_ms() - 7 * 24 * 3600 * 1000).await.unwrap(), 1);
        assert!(!old_day.exists());
        let found = log
            .find(&[], Some(&new.meta.correlation_id), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "today's file is kept");
    }

    #[tokio::test]
    async fn a_closed_log_has_written_what_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(FileLog::open(dir.path()).unwrap());
        let log = EventLog::start(sink.clone(), Duration::from_secs(3600));
        let recorded = message("a.b", "2026-12-01T00:00:00.000Z");
        for _ in 0..3 {
            log.record(&recorded).await;
        }
        log.close().await;
        let found = sink
            .find(&[], Some(&recorded.meta.correlation_id), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 3);
        log.record(&recorded).await;
        assert_eq!(log.dropped(), 1, "after close, counted as dropped");
    }
}
