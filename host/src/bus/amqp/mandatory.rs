//! Channels for `mandatory` publishes, each with one message in flight.
//!
//! The broker sends `basic.return` for an unroutable message just before
//! its `basic.ack`, and lapin hands a returned message to whichever
//! confirm of the channel completes next; with several publishes in
//! flight (and acks that cover several tags at once) a return reached the
//! wrong caller: a command nobody was bound to was reported sent and
//! another publish reported unroutable. On a channel of its own a publish
//! is the only one a return can belong to.

use std::sync::Arc;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most mandatory publishes in flight on one connection; more wait for a
/// channel. Commands are small and confirmed in well under a millisecond
/// on a healthy broker, so this is far above what a host or gateway keeps
/// in flight, and far below the broker's channel limit (2047).
const MAX_IN_FLIGHT: usize = 256;

/// The pool of one connection; a new connection gets a new pool.
pub(super) struct MandatoryChannels {
    idle: Mutex<Vec<Channel>>,
    permits: Arc<Semaphore>,
}

impl MandatoryChannels {
    pub(super) fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// A channel with confirms on and nothing in flight: an idle one, or a
    /// new one on `conn`.
    pub(super) async fn take(&self, conn: &Connection) -> Result<Lease<'_>, lapin::Error> {
        // The semaphore is never closed, so this is always a permit.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let idle = {
            let mut idle = self.idle.lock();
            loop {
                match idle.pop() {
                    Some(channel) if channel.status().connected() => break Some(channel),
                    Some(_) => continue,
                    None => break None,
                }
            }
        };
        let channel = match idle {
            Some(channel) => channel,
            None => {
                let channel = conn.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                channel
            }
        };
        Ok(Lease {
            pool: self,
            channel,
            confirmed: false,
            _permit: permit,
        })
    }
}

/// A channel lent for one publish. [`Lease::done`] marks it confirmed so
/// it goes back to the pool; dropped otherwise (an error, a cancelled
/// caller), it closes, since a late confirm or return could still come.
pub(super) struct Lease<'a> {
    pool: &'a MandatoryChannels,
    channel: Channel,
    confirmed: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Lease<'_> {
    pub(super) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The publish was confirmed: nothing is in flight on the channel.
    pub(super) fn done(mut self) {
        self.confirmed = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.confirmed {
            self.pool.idle.lock().push(self.channel.clone());
        }
    }
}
