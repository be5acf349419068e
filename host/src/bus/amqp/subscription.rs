//! Event subscriptions: each its own queue on the events exchange, fed to
//! the subscriber across reconnections.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::BasicAckOptions;
use tokio::sync::mpsc;

use parallel_you_core::envelope::Envelope;

use super::consumer::start_consumer;
use super::supervisor::Restart;
use super::topology::declare_subscription;
use super::{Shared, MAX_MESSAGE};

/// Feeds the events matching `pattern` to `tx`, across reconnections (and
/// a deletion of its queue), until `tx`'s receiver is dropped or the bus
/// stops.
pub(super) async fn subscribe_events(
    shared: Arc<Shared>,
    queue: String,
    pattern: String,
    tx: mpsc::UnboundedSender<Envelope>,
) {
    let mut restart = Restart::new();
    while let Some(link) = restart.link(&shared, tx.closed()).await {
        let started = async {
            let channel = link.conn.create_channel().await?;
            declare_subscription(&channel, &queue, &pattern).await?;
            let consumer = start_consumer(&channel, &queue, 1000).await?;
            Ok::<_, lapin::Error>((channel, consumer))
        };
        let (channel, mut consumer) = match started.await {
            Ok(started) => {
                restart.started();
                started
            }
            Err(err) => {
                tracing::warn!(pattern = %pattern, error = %err, retry_in = ?restart.retry_in(), "cannot subscribe; retrying");
                restart.failed(link.generation);
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = tx.closed() => {
                    // Nobody listens any more: the queue can go now.
                    let _ = channel
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                    shared.subscriptions.lock().remove(&queue);
                    return;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let parsed = std::str::from_utf8(&delivery.data)
                            .ok()
                            .and_then(|text| Envelope::from_json(text, MAX_MESSAGE).ok());
                        // Acked once handed over: the subscriber's own
                        // buffer is the next hop.
                        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                        match parsed {
                            Some(event) => {
                                if tx.send(event).is_err() {
                                    return;
                                }
                            }
                            None => tracing::warn!(
                                topic = %delivery.routing_key,
                                "dropping an event that is not a valid envelope"
                            ),
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(pattern = %pattern, error = %err, "subscription failed; subscribing again");
                        break;
                    }
                    // The connection is gone, or the broker cancelled the
                    // consumer (its queue was deleted).
                    None => break,
                },
            }
        }
        restart.failed(link.generation);
    }
}
