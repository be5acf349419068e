//! The RabbitMQ bus: several hosts and gateways on one broker.
//!
//! Topology (wire-compatible with the seed system's services):
//! - topic exchange [`COMMANDS_EXCHANGE`]; one durable queue per domain
//!   ([`domain_queue`]), bound with each exact routing key the domain's
//!   handler declares. The bindings are the API: [`AmqpBus::bindings`] reads
//!   them back from the management HTTP API.
//! - topic exchange [`EVENTS_EXCHANGE`]; an event goes out under its topic
//!   (`<reply_channel>.<routing_key>`). Each subscription is its own durable
//!   queue that expires a while after its consumer is gone, so a subscriber
//!   keeps receiving across a broker restart.
//! - fanout exchange and queue [`DEAD_LETTER`] for messages that are not
//!   valid envelopes.
//!
//! Every message is persistent and every publish waits for the broker's
//! confirm; commands are published `mandatory`, so one nobody is bound to
//! comes back as [`BusError::Unroutable`]. Consumers ack manually, with a
//! bounded prefetch. When the connection drops, one supervisor reconnects
//! with backoff, declares the topology again, replays the bindings made so
//! far, and every consumer and subscription resumes on the new connection;
//! meanwhile publishing fails fast with [`BusError::Unavailable`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use parallel_you_core::bus::{
    Binding, Bus, BusError, Deliveries, Delivery, Publisher, Settle, Subscription,
};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::names::{check_pattern, check_routing_key};

/// The topic exchange commands are published to.
pub const COMMANDS_EXCHANGE: &str = "parallel_you.commands";
/// The topic exchange events are published to.
pub const EVENTS_EXCHANGE: &str = "parallel_you.events";
/// The dead-letter exchange, and the queue bound to it.
pub const DEAD_LETTER: &str = "parallel_you.dead_letter";
/// Largest message the bus parses; the host applies its own body limit.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long a subscription's queue outlives its last consumer.
const SUBSCRIPTION_EXPIRY_MS: i64 = 10 * 60 * 1000;
/// Events a subscription's queue holds before the oldest are dropped.
const SUBSCRIPTION_MAX_LENGTH: i64 = 100_000;
/// First and longest wait between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// How long an unloaded domain's channel stays open for its running
/// commands to settle before it is closed.
const UNLOAD_GRACE: Duration = Duration::from_secs(10);
/// How long a caller of [`AmqpBus::connect`] waits for the first connection.
const FIRST_CONNECT: Duration = Duration::from_secs(30);

/// The queue holding a domain's commands.
pub fn domain_queue(domain: &str) -> String {
    format!("{COMMANDS_EXCHANGE}.{domain}")
}

/// Settings of an [`AmqpBus`].
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// The broker, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The management HTTP API, for [`Bus::bindings`]; default
    /// `http://<AMQP host>:15672` with the AMQP URL's credentials.
    pub management_url: Option<String>,
    /// Unacknowledged commands one consumer holds at most.
    pub prefetch: u16,
    /// Shown in the broker's connection list.
    pub connection_name: String,
}

impl AmqpConfig {
    /// Defaults for `url`: prefetch 256, management API on port 15672.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpConfig {
            url: url.into(),
            management_url: None,
            prefetch: 256,
            connection_name: format!("pyou-{}", std::process::id()),
        }
    }
}

/// A live connection: its publishing channel (confirms on) and a number
/// that changes at each reconnection.
#[derive(Clone)]
struct Link {
    conn: Arc<Connection>,
    /// In an `Arc` because every publish clones the link, and a lapin
    /// `Channel` is some fifteen `Arc`s.
    publish: Arc<Channel>,
    generation: u64,
}

struct Shared {
    config: AmqpConfig,
    uri: AMQPUri,
    management: Management,
    link: watch::Sender<Option<Link>>,
    /// Every binding made through this bus, replayed after a reconnection.
    bound: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The queues of live subscriptions, deleted by [`AmqpBus::close`].
    subscriptions: Mutex<BTreeSet<String>>,
    stop: CancellationToken,
}

/// The RabbitMQ bus. Cheap to clone; the connection closes when the last
/// clone is dropped.
#[derive(Clone)]
pub struct AmqpBus {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("broker", &redact(&self.shared.uri))
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl AmqpBus {
    /// Connects to the broker and declares the topology. Waits up to 30 s
    /// for the first connection, so a wrong URL or a broker that is down is
    /// an error at start-up; later losses are reconnected in the background.
    pub async fn connect(config: AmqpConfig) -> Result<Self, BusError> {
        let uri: AMQPUri = config.url.parse().map_err(|err: String| {
            BusError::Invalid(format!(
                "{err}: expected amqp://user:password@host:port/vhost"
            ))
        })?;
        let management = Management::new(&uri, config.management_url.as_deref())?;
        let (link, mut link_rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            config,
            uri,
            management,
            link,
            bound: Mutex::new(BTreeMap::new()),
            subscriptions: Mutex::new(BTreeSet::new()),
            stop: stop.clone(),
        });
        let (first_tx, mut first_rx) = mpsc::channel(1);
        tokio::spawn(supervise(shared.clone(), first_tx));
        let first = tokio::time::timeout(FIRST_CONNECT, async {
            tokio::select! {
                up = link_rx.wait_for(Option::is_some) => up.map(|_| ()).map_err(|_| {
                    BusError::Unavailable("the bus stopped".to_owned())
                }),
                err = first_rx.recv() => Err(BusError::Unavailable(
                    err.unwrap_or_else(|| "the bus stopped".to_owned()),
                )),
            }
        })
        .await;
        let bus = AmqpBus {
            shared,
            _guard: Arc::new(stop.drop_guard()),
        };
        match first {
            Ok(Ok(())) => Ok(bus),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(BusError::Unavailable(format!(
                "no connection to {} after {FIRST_CONNECT:?}",
                redact(&bus.shared.uri)
            ))),
        }
    }

    /// Whether the connection to the broker is up now.
    pub fn is_connected(&self) -> bool {
        self.shared.link.borrow().is_some()
    }

    /// How many times the bus has connected (1 until the first loss).
    pub fn generation(&self) -> u64 {
        self.shared
            .link
            .borrow()
            .as_ref()
            .map_or(0, |link| link.generation)
    }

    /// Closes the connection; consumers and subscriptions end, and the
    /// subscriptions' queues are deleted (a process that stops cleanly
    /// leaves nothing on the broker collecting events).
    pub async fn close(&self) {
        self.shared.stop.cancel();
        let link = self.shared.link.borrow().clone();
        if let Some(link) = link {
            let queues: Vec<String> = std::mem::take(&mut *self.shared.subscriptions.lock())
                .into_iter()
                .collect();
            if let Ok(channel) = link.conn.create_channel().await {
                for queue in queues {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                }
            }
            let _ = link.conn.close(200, "pyou is stopping".into()).await;
        }
    }

    fn link(&self) -> Result<Link, BusError> {
        self.shared.link.borrow().clone().ok_or_else(|| {
            BusError::Unavailable(format!(
                "the connection to RabbitMQ at {} is down; reconnecting",
                redact(&self.shared.uri)
            ))
        })
    }

    async fn publish_to(
        &self,
        exchange: &str,
        topic: &str,
        envelope: &Envelope,
        mandatory: bool,
    ) -> Result<(), BusError> {
        let link = self.link()?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(envelope.meta.message_id.as_str().into())
            .with_correlation_id(envelope.meta.correlation_id.as_str().into());
        let confirm = link
            .publish
            .basic_publish(
                exchange.into(),
                topic.into(),
                BasicPublishOptions {
                    mandatory,
                    ..BasicPublishOptions::default()
                },
                envelope.to_json().as_bytes(),
                properties,
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BusError::Unroutable {
                routing_key: envelope.meta.routing_key.clone(),
            }),
            Confirmation::Nack(_) => Err(BusError::Unavailable(
                "the broker refused the message (nack); retry later".to_owned(),
            )),
        }
    }
}

#[async_trait]
impl Publisher for AmqpBus {
    async fn publish(&self, event: Envelope) -> Result<(), BusError> {
        self.publish_to(EVENTS_EXCHANGE, &event.topic(), &event, false)
            .await
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn send(&self, command: Envelope) -> Result<(), BusError> {
        check_routing_key(&command.meta.routing_key)?;
        self.publish_to(COMMANDS_EXCHANGE, &command.meta.routing_key, &command, true)
            .await
    }

    async fn bind(&self, domain: &str, keys: &[String]) -> Result<(), BusError> {
        for key in keys {
            check_routing_key(key)?;
        }
        self.shared
            .bound
            .lock()
            .entry(domain.to_owned())
            .or_default()
            .extend(keys.iter().cloned());
        // While the broker is away the intent is kept and applied on
        // reconnection; the host need not retry.
        let Ok(link) = self.link() else {
            return Ok(());
        };
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        declare_domain(&channel, domain, keys)
            .await
            .map_err(unavailable)?;
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    async fn unbind(&self, domain: &str, keys: &[String]) -> Result<(), BusError> {
        if keys.is_empty() {
            return Ok(());
        }
        if let Some(bound) = self.shared.bound.lock().get_mut(domain) {
            for key in keys {
                bound.remove(key);
            }
        }
        let link = self.link()?;
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        let queue = domain_queue(domain);
        for key in keys {
            channel
                .queue_unbind(
                    queue.as_str().into(),
                    COMMANDS_EXCHANGE.into(),
                    key.as_str().into(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    async fn consume(&self, domain: &str) -> Result<Deliveries, BusError> {
        let consumer = DomainConsumer::new(self.shared.clone(), domain);
        Ok(Deliveries::new(futures::stream::unfold(
            consumer,
            |mut consumer| async move { consumer.next().await.map(|d| (d, consumer)) },
        )))
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = format!(
            "{EVENTS_EXCHANGE}.subscriber.{}",
            parallel_you_core::envelope::new_id()
        );
        // Declared and bound before returning, so no event published after
        // `subscribe` returns is missed.
        let link = self.link()?;
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        declare_subscription(&channel, &queue, pattern)
            .await
            .map_err(unavailable)?;
        let _ = channel.close(200, "done".into()).await;
        self.shared.subscriptions.lock().insert(queue.clone());
        tokio::spawn(subscribe_events(
            self.shared.clone(),
            queue,
            pattern.to_owned(),
            tx,
        ));
        Ok(Subscription::new(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        )))
    }

    async fn bindings(&self) -> Result<Vec<Binding>, BusError> {
        // While the broker is away (or still booting after a restart) its
        // management API may answer with a partial list: better no answer.
        self.link()?;
        self.shared.management.bindings().await
    }
}

/// Keeps one connection up: connects with backoff, declares the topology,
/// replays the bindings, publishes the link, and starts over when the
/// connection fails.
async fn supervise(shared: Arc<Shared>, first_error: mpsc::Sender<String>) {
    let mut generation = 0;
    let mut backoff = BACKOFF.0;
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        match open(&shared, generation + 1).await {
            Ok((link, mut events)) => {
                generation += 1;
                backoff = BACKOFF.0;
                tracing::info!(generation, broker = %redact(&shared.uri), "connected to RabbitMQ");
                let conn = link.conn.clone();
                shared.link.send_replace(Some(link));
                // Lapin reports a lost connection as an event; the status
                // poll catches a close that raised none.
                loop {
                    tokio::select! {
                        _ = shared.stop.cancelled() => break,
                        event = events.next() => match event {
                            Some(lapin::Event::Error(err)) => {
                                tracing::warn!(error = %err, "RabbitMQ connection error");
                                break;
                            }
                            Some(_) => {}
                            None => break,
                        },
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                            if !conn.status().connected() {
                                break;
                            }
                        }
                    }
                }
                shared.link.send_replace(None);
                if !shared.stop.is_cancelled() {
                    tracing::warn!("lost the connection to RabbitMQ; reconnecting");
                }
            }
            Err(err) => {
                if generation == 0 {
                    // Tell `connect` why, but keep trying: it decides when
                    // to give up.
                    let _ = first_error.try_send(err.clone());
                }
                tracing::warn!(error = %err, retry_in = ?backoff, "cannot connect to RabbitMQ");
                tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
    shared.link.send_replace(None);
}

type Events = std::pin::Pin<Box<dyn futures::Stream<Item = lapin::Event> + Send>>;

async fn open(shared: &Shared, generation: u64) -> Result<(Link, Events), String> {
    let properties = ConnectionProperties::default()
        .with_connection_name(shared.config.connection_name.as_str().into());
    let conn = Connection::connect_uri(shared.uri.clone(), properties)
        .await
        .map_err(|err| format!("cannot connect to {}: {err}", redact(&shared.uri)))?;
    let events: Events = Box::pin(conn.events_listener());
    let setup = async {
        let channel = conn.create_channel().await?;
        declare_topology(&channel).await?;
        let bound = shared.bound.lock().clone();
        for (domain, keys) in &bound {
            let keys: Vec<String> = keys.iter().cloned().collect();
            declare_domain(&channel, domain, &keys).await?;
        }
        let _ = channel.close(200, "done".into()).await;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok::<_, lapin::Error>(publish)
    };
    match setup.await {
        Ok(publish) => Ok((
            Link {
                conn: Arc::new(conn),
                publish: Arc::new(publish),
                generation,
            },
            events,
        )),
        Err(err) => {
            let _ = conn.close(200, "setup failed".into()).await;
            Err(format!("cannot declare the topology: {err}"))
        }
    }
}

async fn declare_topology(channel: &Channel) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [COMMANDS_EXCHANGE, EVENTS_EXCHANGE] {
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .exchange_declare(
            DEAD_LETTER.into(),
            lapin::ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            DEAD_LETTER.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            DEAD_LETTER.into(),
            DEAD_LETTER.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Declares the domain's queue (dead-lettering to [`DEAD_LETTER`]) and
/// binds `keys` to it. Both are idempotent.
async fn declare_domain(channel: &Channel, domain: &str, keys: &[String]) -> lapin::Result<()> {
    let queue = domain_queue(domain);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER.into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await?;
    for key in keys {
        channel
            .queue_bind(
                queue.as_str().into(),
                COMMANDS_EXCHANGE.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Waits for a live connection newer than `after`; `None` when the bus
/// stops or `gone` (the receiver went away) completes first.
async fn next_link(
    shared: &Shared,
    after: u64,
    gone: impl std::future::Future<Output = ()>,
) -> Option<Link> {
    let mut rx = shared.link.subscribe();
    tokio::select! {
        _ = shared.stop.cancelled() => None,
        _ = gone => None,
        link = rx.wait_for(|l| l.as_ref().is_some_and(|l| l.generation > after)) => {
            link.ok().and_then(|l| l.clone())
        }
    }
}

/// When a consumer (of a domain's commands or of a subscription) starts
/// again: on the first live connection; after one ended or could not
/// start, at once on a newer connection, or on the same one after a
/// growing backoff. The connection may be fine and the failure the
/// queue's (deleted by an operator, say); starting again declares it anew.
struct Restart {
    /// The connection generation on which the last consumer ended or could
    /// not start, if it did.
    failed: Option<u64>,
    /// How long to wait before trying again on that same connection.
    backoff: Duration,
}

impl Restart {
    fn new() -> Self {
        Restart {
            failed: None,
            backoff: BACKOFF.0,
        }
    }

    /// The connection to start on; `None` when the bus stops or `gone`
    /// completes first.
    async fn link(
        &mut self,
        shared: &Shared,
        gone: impl std::future::Future<Output = ()>,
    ) -> Option<Link> {
        tokio::pin!(gone);
        let Some(failed) = self.failed else {
            return next_link(shared, 0, gone).await;
        };
        let backoff = self.backoff;
        self.backoff = (backoff * 2).min(BACKOFF.1);
        tokio::select! {
            link = next_link(shared, failed, gone.as_mut()) => return link,
            _ = tokio::time::sleep(backoff) => {}
        }
        next_link(shared, 0, gone).await
    }

    /// A consumer started.
    fn started(&mut self) {
        self.failed = None;
        self.backoff = BACKOFF.0;
    }

    /// The consumer on connection `generation` ended or could not start.
    fn failed(&mut self, generation: u64) {
        self.failed = Some(generation);
    }

    /// How long the next attempt on the same connection waits.
    fn retry_in(&self) -> Duration {
        self.backoff
    }
}

/// Consumes `queue` on `channel` with manual acks and at most `prefetch`
/// unacknowledged messages.
async fn start_consumer(
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
struct DomainConsumer {
    shared: Arc<Shared>,
    domain: String,
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
    fn new(shared: Arc<Shared>, domain: &str) -> Self {
        DomainConsumer {
            shared,
            domain: domain.to_owned(),
            live: None,
            restart: Restart::new(),
        }
    }

    /// The next command; `None` once the bus stops.
    async fn next(&mut self) -> Option<Delivery> {
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
                Some(Ok(delivery)) => return Some(command_delivery(delivery, &live.outstanding)),
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
        let keys: Vec<String> = self
            .shared
            .bound
            .lock()
            .get(&self.domain)
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        declare_domain(&channel, &self.domain, &keys).await?;
        let queue = domain_queue(&self.domain);
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
        Box::new(AmqpSettle(delivery.acker, outstanding.clone())),
    )
}

/// Feeds the events matching `pattern` to `tx`, across reconnections (and
/// a deletion of its queue), until `tx`'s receiver is dropped or the bus
/// stops.
async fn subscribe_events(
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

/// Declares a subscription's queue (durable, expiring once unused, bounded)
/// and binds it to `pattern` on [`EVENTS_EXCHANGE`]. Idempotent.
async fn declare_subscription(channel: &Channel, queue: &str, pattern: &str) -> lapin::Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(SUBSCRIPTION_EXPIRY_MS),
    );
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(SUBSCRIPTION_MAX_LENGTH),
    );
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            EVENTS_EXCHANGE.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Settles a command delivery on its channel. If that channel is gone, the
/// broker has already put the message back in its queue.
struct AmqpSettle(
    lapin::Acker,
    /// Held until the delivery is settled or dropped, so an unloading
    /// consumer knows when none is left running.
    #[allow(dead_code)]
    Arc<()>,
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
}

/// The broker's management HTTP API.
struct Management {
    client: reqwest::Client,
    base: String,
    vhost: String,
    user: String,
    password: String,
}

impl Management {
    fn new(uri: &AMQPUri, url: Option<&str>) -> Result<Self, BusError> {
        let base = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}:15672", uri.authority.host),
        };
        if !base.starts_with("http://") {
            return Err(BusError::Invalid(format!(
                "management URL {base:?}: only http:// is supported"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|err| BusError::Invalid(format!("HTTP client: {err}")))?;
        Ok(Management {
            client,
            base,
            vhost: uri.vhost.clone(),
            user: uri.authority.userinfo.username.clone(),
            password: uri.authority.userinfo.password.clone(),
        })
    }

    /// The command bindings: `parallel_you.commands` → a domain queue.
    async fn bindings(&self) -> Result<Vec<Binding>, BusError> {
        #[derive(serde::Deserialize)]
        struct Row {
            source: String,
            destination: String,
            destination_type: String,
            routing_key: String,
        }
        let url = format!(
            "{}/api/exchanges/{}/{COMMANDS_EXCHANGE}/bindings/source",
            self.base,
            percent_encode(&self.vhost)
        );
        let fail = |err: String| {
            BusError::Unavailable(format!(
                "cannot read the bindings from the RabbitMQ management API at {}: {err} \
                 (is the rabbitmq_management plugin on? set --management-url)",
                self.base
            ))
        };
        let response = self
            .client
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|err| fail(err.to_string()))?;
        // A 404 (no such exchange) also fails: this bus declares the
        // exchange on connecting, so its absence means a broker still
        // recovering its definitions, not an empty API.
        let response = response
            .error_for_status()
            .map_err(|err| fail(err.to_string()))?;
        let rows: Vec<Row> = response.json().await.map_err(|err| fail(err.to_string()))?;
        let prefix = format!("{COMMANDS_EXCHANGE}.");
        let mut bindings: Vec<Binding> = rows
            .into_iter()
            .filter(|r| r.source == COMMANDS_EXCHANGE && r.destination_type == "queue")
            .filter_map(|r| {
                let domain = r.destination.strip_prefix(&prefix)?.to_owned();
                Some(Binding {
                    routing_key: r.routing_key,
                    domain,
                })
            })
            .collect();
        bindings.sort();
        bindings.dedup();
        Ok(bindings)
    }
}

/// Percent-encodes a vhost for a URL path (`/` → `%2F`).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The broker's address without its password, for logs and errors.
fn redact(uri: &AMQPUri) -> String {
    format!(
        "amqp://{}@{}:{}/{}",
        uri.authority.userinfo.username,
        uri.authority.host,
        uri.authority.port,
        percent_encode(&uri.vhost)
    )
}

fn unavailable(err: lapin::Error) -> BusError {
    BusError::Unavailable(format!("RabbitMQ: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhosts_are_encoded_for_the_management_api() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("prod"), "prod");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_password_never_shows() {
        let uri: AMQPUri = "amqp://user:secret@127.0.0.1:5673/%2f".parse().unwrap();
        let shown = redact(&uri);
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(shown, "amqp://user@127.0.0.1:5673/%2F");
    }

    #[test]
    fn management_defaults_to_the_broker_host() {
        let uri: AMQPUri = "amqp://u:p@10.0.0.7:5672/%2f".parse().unwrap();
        let m = Management::new(&uri, None).unwrap();
        assert_eq!(m.base, "http://10.0.0.7:15672");
        assert_eq!((m.user.as_str(), m.password.as_str()), ("u", "p"));
        assert!(Management::new(&uri, Some("https://x")).is_err());
    }
}
