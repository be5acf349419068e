//! The outbox relay: publishes committed events their host did not.
//!
//! A command's events are committed with its effects as its outbox row
//! (see [`parallel_you_core::store::commit`]); the committing host publishes
//! them at once and marks the row sent. A row it could not publish (the
//! bus away, the host killed between commit and publish) stays unsent, and
//! once its lease has passed any serving host's relay claims it, publishes
//! its events in order and marks it sent. An event is published twice only
//! when a host dies between its publisher's confirm and the mark: the same
//! `message_id` twice, which consumers deduplicate.
//!
//! The relay also keeps the inbox bounded: processed markers older than the
//! deduplication window are swept (a duplicate older than that runs again).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::host::{publish_all, Host, OUTBOX_LEASE};
use parallel_you_core::bus::Publisher;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::store::StoreError;

/// How often a serving host looks for unsent outbox rows.
pub const RELAY_INTERVAL: Duration = Duration::from_secs(1);
/// How often a serving host sweeps markers past the deduplication window.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// Outbox rows claimed per look.
const BATCH: usize = 128;
/// Markers deleted per sweep step (each step is one short write).
const SWEEP_BATCH: usize = 1000;

/// Publishes the unsent outbox rows of one host's store and sweeps its old
/// markers.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    host: Arc<Host>,
}

impl OutboxRelay {
    /// The relay of `host`: its store, its clock, its window.
    pub fn new(host: Arc<Host>) -> Self {
        OutboxRelay { host }
    }

    /// Claims the unsent rows whose lease has passed, publishes their
    /// events through `out` in order, and marks each sent once all of its
    /// events went out. Returns how many rows were sent.
    pub async fn relay_once(&self, out: &dyn Publisher) -> Result<usize, StoreError> {
        let store = self.host.store();
        let now = self.host.clock().now_ms();
        let lease = now.saturating_add(OUTBOX_LEASE.as_millis() as u64);
        let rows = store.unsent(now, lease, BATCH).await?;
        let mut sent = 0;
        for row in rows {
            let events: Vec<Envelope> = row
                .events
                .iter()
                .filter_map(|text| match serde_json::from_str(text) {
                    Ok(env) => Some(env),
                    Err(err) => {
                        tracing::error!(message_id = %row.message_id, error = %err, "dropping an unreadable outbox event");
                        None
                    }
                })
                .collect();
            if !publish_all(out, &events).await {
                // The bus is away: the lease brings the row back later.
                break;
            }
            store.mark_sent(&row.message_id).await?;
            sent += 1;
        }
        if sent > 0 {
            tracing::info!(rows = sent, "relayed unsent outbox rows");
        }
        Ok(sent)
    }

    /// Forgets the sent markers processed before the deduplication window;
    /// returns how many.
    pub async fn sweep_once(&self) -> Result<usize, StoreError> {
        let window = self.host.dedup_window().as_millis() as u64;
        let before = self.host.clock().now_ms().saturating_sub(window);
        let mut swept = 0;
        loop {
            let n = self.host.store().sweep(before, SWEEP_BATCH).await?;
            swept += n;
            if n < SWEEP_BATCH {
                return Ok(swept);
            }
        }
    }

    /// Relays every [`RELAY_INTERVAL`] and sweeps every [`SWEEP_INTERVAL`]
    /// (and once at start) until `stop` is cancelled.
    pub(crate) fn spawn(
        self,
        out: Arc<dyn Publisher>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut next_sweep = tokio::time::Instant::now();
            loop {
                if let Err(err) = self.relay_once(out.as_ref()).await {
                    tracing::warn!(error = %err, "could not relay the outbox");
                }
                if tokio::time::Instant::now() >= next_sweep {
                    match self.sweep_once().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            markers = n,
                            "swept markers past the deduplication window"
                        ),
                        Err(err) => tracing::warn!(error = %err, "could not sweep old markers"),
                    }
                    next_sweep = tokio::time::Instant::now() + SWEEP_INTERVAL;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RELAY_INTERVAL) => {}
                }
            }
        })
    }
}
