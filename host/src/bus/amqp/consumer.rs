//! The consumers of the domains' commands, and the settling of each command
//! delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use tokio_util::sync::CancellationToken;

use parallel_you_core::bus::{BusError, Delivery, Settle};
use parallel_you_core::envelope::Envelope;

use super::supervisor::{Link, Restart};
use super::topology::{declare_domain, declare_reactor, domain_queue, reactor_queue};
use super::{unavailable, Shared, MAX_MESSAGE};

/// The header of a reactor's event that counts its tries so far.
pub(super) const ATTEMPTS_HEADER: &str = "x-pyou-attempts";

/// How long an unloaded domain's channel stays open for its running
/// commands to settle before it is closed.
const UNLOAD_GRACE: Duration = Duration::from_secs(10);

/// Consumes `queue` on `channel` with manual acks and at most `prefetch`
/// unacknowledged messages.
pub(super) async fn start_consumer(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
) -> lapin::Result<lapin::Consumer> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// One domain's commands, across reconnections, until it is dropped or the
/// bus stops.
///
/// It is polled by the host's own serving task: a delivery goes from
/// lapin's consumer straight to the host, with no task or channel in
/// between (that hop cost a wake-up per command).
pub(super) struct DomainConsumer {
    shared: Arc<Shared>,
    domain: String,
    /// Whether it consumes the domain's reactor event queue, not its
    /// command queue.
    reactor: bool,
    live: Option<LiveConsumer>,
    restart: Restart,
}

/// A consumer on one connection's channel.
struct LiveConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
    generation: u64,
    /// One clone per delivery not yet settled or dropped.
    outstanding: Arc<()>,
}

impl DomainConsumer {
    pub(super) fn new(shared: Arc<Shared>, domain: &str) -> Self {
        DomainConsumer {
            shared,
            domain: domain.to_owned(),
            reactor: false,
            live: None,
            restart: Restart::new(),
        }
    }

    /// The consumer of the reactor `domain`'s event queue.
    pub(super) fn reactor(shared: Arc<Shared>, domain: &str) -> Self {
        let mut consumer = DomainConsumer::new(shared, domain);
        consumer.reactor = true;
        consumer
    }

    /// The next command; `None` once the bus stops.
    pub(super) async fn next(&mut self) -> Option<Delivery> {
        loop {
            let live = match &mut self.live {
                Some(live) => live,
                None => {
                    let link = self
                        .restart
                        .link(&self.shared, std::future::pending())
                        .await?;
                    match self.start(&link).await {
                        Ok(live) => {
                            tracing::debug!(domain = %self.domain, generation = link.generation, "consuming");
                            self.restart.started();
                            self.live.insert(live)
                        }
                        Err(err) => {
                            tracing::warn!(domain = %self.domain, error = %err, retry_in = ?self.restart.retry_in(), "cannot consume; retrying");
                            self.restart.failed(link.generation);
                            continue;
                        }
                    }
                }
            };
            let next = tokio::select! {
                _ = self.shared.stop.cancelled() => return None,
                next = live.consumer.next() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    if self.reactor {
                        return Some(event_delivery(
                            delivery,
                            &live.outstanding,
                            &self.shared,
                            &self.domain,
                        ));
                    }
                    return Some(command_delivery(delivery, &live.outstanding));
                }
                Some(Err(err)) => {
                    tracing::warn!(domain = %self.domain, error = %err, "consumer failed; consuming again");
                }
                // The connection is gone, or the broker cancelled the
                // consumer (its queue was deleted): start again, which
                // declares the queue and its bindings anew.
                None => tracing::info!(domain = %self.domain, "consumer ended; consuming again"),
            }
            self.restart.failed(live.generation);
            self.live = None;
        }
    }

    /// Opens a channel on `link`, declares the domain's queue and bindings
    /// again (the broker may have lost them) and consumes the queue.
    async fn start(&self, link: &Link) -> lapin::Result<LiveConsumer> {
        let channel = link.conn.create_channel().await?;
        let queue = if self.reactor {
            let patterns: Vec<String> = (self.shared.reactors.lock())
                .get(&self.domain)
                .map(|k| k.iter().cloned().collect())
                .unwrap_or_default();
            declare_reactor(&channel, &self.domain, &patterns).await?;
            reactor_queue(&self.domain)
        } else {
            let commands: Vec<_> = (self.shared.bound.lock())
                .get(&self.domain)
                .map(|k| k.values().cloned().collect())
                .unwrap_or_default();
            declare_domain(&channel, &self.domain, &commands).await?;
            domain_queue(&self.domain)
        };
        let consumer = start_consumer(&channel, &queue, self.shared.config.prefetch).await?;
        Ok(LiveConsumer {
            channel,
            consumer,
            generation: link.generation,
            outstanding: Arc::new(()),
        })
    }
}

impl Drop for DomainConsumer {
    fn drop(&mut self) {
        // The domain was unloaded (or its host stopped serving). Its
        // channel must close so the commands it prefetched go back to the
        // queue, but not before the ones still running are settled: closing
        // at once would requeue those too, and run them twice.
        let Some(live) = self.live.take() else {
            return;
        };
        if self.shared.stop.is_cancelled() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(live.close_when_settled(self.shared.stop.clone()));
        }
        // Outside a runtime the channel is dropped, which closes it.
    }
}

impl LiveConsumer {
    /// Stops deliveries, waits (up to [`UNLOAD_GRACE`]) until every
    /// delivery handed out is settled or dropped unrun, then closes the
    /// channel, which puts the unrun ones back in the queue.
    async fn close_when_settled(self, stop: CancellationToken) {
        let _ = self
            .channel
            .basic_cancel(self.consumer.tag(), BasicCancelOptions::default())
            .await;
        let deadline = tokio::time::Instant::now() + UNLOAD_GRACE;
        while Arc::strong_count(&self.outstanding) > 1
            && tokio::time::Instant::now() < deadline
            && !stop.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.channel.close(200, "consumer stopped".into()).await;
    }
}

/// Parses a command delivery; it is settled through `outstanding`'s
/// channel.
fn command_delivery(delivery: lapin::message::Delivery, outstanding: &Arc<()>) -> Delivery {
    parse_delivery(delivery, outstanding, None)
}

/// Parses a reactor's event delivery, with the tries it carries in its
/// [`ATTEMPTS_HEADER`]; a retry republishes it to the reactor's queue with
/// the count, so every host counts the same tries.
fn event_delivery(
    delivery: lapin::message::Delivery,
    outstanding: &Arc<()>,
    shared: &Arc<Shared>,
    domain: &str,
) -> Delivery {
    let attempts = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPTS_HEADER).cloned());
    let attempts = match attempts {
        Some(AMQPValue::LongUInt(n)) => n,
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(0),
        _ => 0,
    };
    let republish = Republish {
        shared: shared.clone(),
        queue: reactor_queue(domain),
    };
    parse_delivery(delivery, outstanding, Some(republish)).with_attempts(attempts)
}

fn parse_delivery(
    delivery: lapin::message::Delivery,
    outstanding: &Arc<()>,
    republish: Option<Republish>,
) -> Delivery {
    let message = std::str::from_utf8(&delivery.data)
        .map_err(|_| "the message is not UTF-8 text".to_owned())
        .map(|text| Envelope::from_json(text, MAX_MESSAGE));
    let message = match message {
        Ok(parsed) => parsed,
        Err(reason) => Err(parallel_you_core::envelope::EnvelopeError {
            reason,
            partial: Default::default(),
        }),
    };
    Delivery::new(
        message,
        Box::new(AmqpSettle(delivery.acker, outstanding.clone(), republish)),
    )
}

/// Where a retried event is republished.
struct Republish {
    shared: Arc<Shared>,
    queue: String,
}

/// Settles a command delivery on its channel. If that channel is gone, the
/// broker has already put the message back in its queue.
struct AmqpSettle(
    lapin::Acker,
    /// Held until the delivery is settled or dropped, so an unloading
    /// consumer knows when none is left running.
    #[allow(dead_code)]
    Arc<()>,
    /// For a reactor's events: where a retry republishes it.
    Option<Republish>,
);

#[async_trait]
impl Settle for AmqpSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.0
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn reject(self: Box<Self>) -> Result<(), BusError> {
        self.0
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn requeue(
        self: Box<Self>,
        _message: Result<Envelope, parallel_you_core::envelope::EnvelopeError>,
    ) -> Result<(), BusError> {
        self.0
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn retry(
        self: Box<Self>,
        message: Result<Envelope, parallel_you_core::envelope::EnvelopeError>,
        tries: u32,
    ) -> Result<(), BusError> {
        let (Some(republish), Ok(event)) = (&self.2, &message) else {
            return self.requeue(message).await;
        };
        // A copy with the count goes back to the queue (confirmed) before
        // the original is acked: a crash between the two leaves two copies,
        // which the reactor's processed marker makes one.
        let mut headers = FieldTable::default();
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(tries));
        let properties = lapin::BasicProperties::default()
            .with_message_id(event.meta.message_id.as_str().into())
            .with_correlation_id(event.meta.correlation_id.as_str().into())
            .with_headers(headers);
        let sent = republish
            .shared
            .publish_raw(
                "",
                &republish.queue,
                event.to_json().as_bytes(),
                properties,
                true,
                &event.meta.routing_key,
            )
            .await;
        match sent {
            Ok(()) => self.ack().await,
            Err(err) => {
                tracing::warn!(error = %err, "could not republish an event to retry; requeueing it without its count");
                self.requeue(message).await
            }
        }
    }
}
