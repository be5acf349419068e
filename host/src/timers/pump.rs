//! The timer pump: while a host serves, sends the command of every due
//! timer on the bus, then deletes the timer.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{due, remove, POLL_INTERVAL};
use crate::host::Host;
use parallel_you_core::bus::{Bus, BusError};
use parallel_you_core::error::{ErrorBody, ErrorCode};
use parallel_you_core::store::StoreError;

/// Fires the due timers of one host's store, by the host's clock.
#[derive(Debug, Clone)]
pub struct TimerPump {
    host: Arc<Host>,
}

impl TimerPump {
    /// The pump of `host`: its store, its clock, its refusals.
    pub fn new(host: Arc<Host>) -> Self {
        TimerPump { host }
    }

    /// Sends the command of every timer that is due on `bus`, then deletes
    /// the timer. A timer whose command nobody serves any more gets an
    /// `unknown_routing_key` error event on its session. Returns how many
    /// fired.
    pub async fn fire_due(&self, bus: &dyn Bus) -> Result<usize, StoreError> {
        let store = self.host.store();
        let due = due(store.as_ref(), self.host.clock().now_ms()).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let seal = self.host.seal().await?;
        let mut fired = 0;
        for (id, timer) in due {
            if timer.reactor {
                match timer.event(&id, seal) {
                    Ok(event) => {
                        if let Err(err) = bus.send_to_reactor(&timer.domain, event).await {
                            // Keep the timer: it fires on a later poll.
                            tracing::warn!(timer = %id, error = %err, "could not deliver a reactor's due timer");
                            continue;
                        }
                    }
                    Err(err) => {
                        tracing::error!(timer = %id, error = %err, "dropping a reactor timer with an invalid event")
                    }
                }
                remove(store.as_ref(), &timer.domain, &id).await?;
                fired += 1;
                continue;
            }
            match timer.command(&id, seal) {
                Ok(cmd) => match bus.send(cmd.clone()).await {
                    Ok(()) => {}
                    Err(BusError::Unroutable { routing_key }) => {
                        let err = ErrorBody::new(
                            ErrorCode::UnknownRoutingKey,
                            format!("the timer {id} fired, but no handler serves {routing_key:?} any more"),
                        );
                        self.host.refuse(&cmd, err, bus).await;
                    }
                    // Keep the timer: it fires on a later poll.
                    Err(err) => {
                        tracing::warn!(timer = %id, error = %err, "could not deliver a due timer");
                        continue;
                    }
                },
                Err(err) => {
                    tracing::error!(timer = %id, error = %err, "dropping a timer with an invalid body")
                }
            }
            remove(store.as_ref(), &timer.domain, &id).await?;
            fired += 1;
        }
        Ok(fired)
    }

    /// Fires due timers every [`POLL_INTERVAL`] until `stop` is cancelled.
    pub(crate) fn spawn(
        self,
        bus: Arc<dyn Bus>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(err) = self.fire_due(bus.as_ref()).await {
                    tracing::warn!(error = %err, "could not fire due timers");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
        })
    }
}
