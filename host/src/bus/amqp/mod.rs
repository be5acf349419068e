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
//! - one durable queue per reactor ([`reactor_queue`]) on [`EVENTS_EXCHANGE`],
//!   bound with each of its patterns after any topic prefix (`#.thread.*`),
//!   consumed by competing hosts like a domain's commands; a reactor's
//!   timers and replays go to it straight (the default exchange).
//! - fanout exchange and queue [`DEAD_LETTER`] for messages that are not
//!   valid envelopes.
//! - topic exchange [`QUERIES_EXCHANGE`]; one query queue per reactor,
//!   bound with `<domain>.<query>` for each query it answers (summary and
//!   params schema in the binding's arguments), consumed by competing
//!   hosts; the answer goes to the asking gateway's own reply queue.
//! - durable queue [`REACTOR_DEAD_LETTERS`]: the events reactors gave up
//!   on, each a dead-letter document (see [`crate::dead_letter`]), managed
//!   by `pyou dlq --bus amqp://…` through [`AmqpBus::dead_letters`] and
//!   its siblings.
//!
//! Every message is persistent and every publish waits for the broker's
//! confirm; commands are published `mandatory`, so one nobody is bound to
//! comes back as [`BusError::Unroutable`] (each on a channel with nothing
//! else in flight, so the return reaches its own sender: `mandatory`). Consumers ack manually, with a
//! bounded prefetch. When the connection drops, one supervisor reconnects
//! with backoff, declares the topology again, replays the bindings made so
//! far, and every consumer and subscription resumes on the new connection;
//! meanwhile publishing fails fast with [`BusError::Unavailable`].

mod commands;
mod consumer;
mod dead_letters;
mod management;
mod mandatory;
mod queries;
mod subscription;
mod supervisor;
mod topology;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Confirmation};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use parallel_you_core::bus::{
    Binding, Bus, BusError, Deliveries, Publisher, QueryRequests, QueryRoute, Subscription,
};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::ErrorBody;
use parallel_you_core::host_info::{CommandInfo, QueryInfo};
use parallel_you_core::names::{check_event_pattern, check_pattern, check_routing_key};

use consumer::DomainConsumer;
use management::{percent_encode, Management};
use subscription::subscribe_events;
use supervisor::{supervise, Link};
use topology::{declare_reactor, declare_subscription, reactor_binding};
pub use topology::{
    domain_queue, query_queue, reactor_queue, COMMANDS_EXCHANGE, DEAD_LETTER, EVENTS_EXCHANGE,
    QUERIES_EXCHANGE, REACTOR_DEAD_LETTERS,
};

/// Largest message the bus parses; the host applies its own body limit.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long a caller of [`AmqpBus::connect`] waits for the first connection.
const FIRST_CONNECT: Duration = Duration::from_secs(30);

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
    /// Whether this process declares the dead-letter exchange and queues
    /// (hosts do); a gateway leaves them alone, so its broker user needs no
    /// permission on them.
    pub declares_dead_letters: bool,
}

impl AmqpConfig {
    /// Defaults for `url`: prefetch 256, management API on port 15672.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpConfig {
            url: url.into(),
            management_url: None,
            prefetch: 256,
            connection_name: format!("pyou-{}", std::process::id()),
            declares_dead_letters: true,
        }
    }
}

struct Shared {
    config: AmqpConfig,
    uri: AMQPUri,
    management: Management,
    link: watch::Sender<Option<Link>>,
    /// Every command bound through this bus, by domain and routing key,
    /// bound again after a reconnection.
    bound: Mutex<BTreeMap<String, BTreeMap<String, CommandInfo>>>,
    /// Every reactor pattern bound through this bus, likewise.
    reactors: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Every reactor's queries bound through this bus, declared again by
    /// their consumers on a new connection.
    queries: Mutex<BTreeMap<String, Vec<QueryInfo>>>,
    /// Where this process's query answers arrive (see `queries`).
    replies: tokio::sync::Mutex<Option<queries::Replies>>,
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
            // The parser may quote the URL, password and all: never pass
            // that on.
            let err = if err.contains(config.url.as_str()) {
                "not a valid AMQP URL".to_owned()
            } else {
                err
            };
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
            reactors: Mutex::new(BTreeMap::new()),
            queries: Mutex::new(BTreeMap::new()),
            replies: tokio::sync::Mutex::new(None),
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
        self.shared.link()
    }

    async fn publish_to(
        &self,
        exchange: &str,
        topic: &str,
        envelope: &Envelope,
        mandatory: bool,
    ) -> Result<(), BusError> {
        let properties = BasicProperties::default()
            .with_message_id(envelope.meta.message_id.as_str().into())
            .with_correlation_id(envelope.meta.correlation_id.as_str().into());
        self.publish_raw(
            exchange,
            topic,
            envelope.to_json().as_bytes(),
            properties,
            mandatory,
            &envelope.meta.routing_key,
        )
        .await
    }

    async fn publish_raw(
        &self,
        exchange: &str,
        topic: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
        routing_key: &str,
    ) -> Result<(), BusError> {
        self.shared
            .publish_raw(exchange, topic, body, properties, mandatory, routing_key)
            .await
    }
}

impl Shared {
    fn link(&self) -> Result<Link, BusError> {
        self.link.borrow().clone().ok_or_else(|| {
            BusError::Unavailable(format!(
                "the connection to RabbitMQ at {} is down; reconnecting",
                redact(&self.uri)
            ))
        })
    }

    /// Publishes `body` persistent, as JSON, and waits for the broker's
    /// confirm; `routing_key` names the message in an `Unroutable` error.
    async fn publish_raw(
        &self,
        exchange: &str,
        topic: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
        routing_key: &str,
    ) -> Result<(), BusError> {
        let link = self.link()?;
        let properties = properties
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        // A return is handed to the channel's next confirm, so a mandatory
        // publish gets a channel of its own (see `mandatory`).
        let lease = match mandatory {
            true => Some(link.mandatory.take(&link.conn).await.map_err(unavailable)?),
            false => None,
        };
        let channel = lease
            .as_ref()
            .map_or(&*link.publish, |lease| lease.channel());
        let confirm = channel
            .basic_publish(exchange.into(), topic.into(), options, body, properties)
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        if let Some(lease) = lease {
            lease.done();
        }
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BusError::Unroutable {
                routing_key: routing_key.to_owned(),
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

    async fn send_command(&self, command: Envelope) -> Result<(), BusError> {
        self.send(command).await
    }

    fn messaging_system(&self) -> &'static str {
        "rabbitmq"
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn send(&self, command: Envelope) -> Result<(), BusError> {
        check_routing_key(&command.meta.routing_key)?;
        self.publish_to(COMMANDS_EXCHANGE, &command.meta.routing_key, &command, true)
            .await
    }

    async fn bind(&self, domain: &str, commands: &[CommandInfo]) -> Result<(), BusError> {
        commands::bind(&self.shared, domain, commands).await
    }

    async fn unbind(&self, domain: &str, keys: &[String]) -> Result<(), BusError> {
        commands::unbind(&self.shared, domain, keys).await
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

    async fn bind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        for p in patterns {
            check_event_pattern(p)?;
        }
        self.shared
            .reactors
            .lock()
            .entry(domain.to_owned())
            .or_default()
            .extend(patterns.iter().cloned());
        // As for `bind`: the intent is applied on reconnection.
        let Ok(link) = self.link() else {
            return Ok(());
        };
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        declare_reactor(&channel, domain, patterns)
            .await
            .map_err(unavailable)?;
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    async fn unbind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        if patterns.is_empty() {
            return Ok(());
        }
        if let Some(bound) = self.shared.reactors.lock().get_mut(domain) {
            for p in patterns {
                bound.remove(p);
            }
        }
        let link = self.link()?;
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        let queue = reactor_queue(domain);
        for p in patterns {
            channel
                .queue_unbind(
                    queue.as_str().into(),
                    EVENTS_EXCHANGE.into(),
                    reactor_binding(p).as_str().into(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    async fn consume_reactor(&self, domain: &str) -> Result<Deliveries, BusError> {
        let consumer = DomainConsumer::reactor(self.shared.clone(), domain);
        Ok(Deliveries::new(futures::stream::unfold(
            consumer,
            |mut consumer| async move { consumer.next().await.map(|d| (d, consumer)) },
        )))
    }

    async fn send_to_reactor(&self, domain: &str, event: Envelope) -> Result<(), BusError> {
        // The default exchange routes by queue name: to this reactor alone.
        self.publish_to("", &reactor_queue(domain), &event, true)
            .await
    }

    async fn keep_dead_letter(&self, domain: &str, id: &str, json: &str) -> Result<bool, BusError> {
        dead_letters::keep(self, domain, id, json).await?;
        Ok(true)
    }

    async fn bind_queries(&self, domain: &str, queries: &[QueryInfo]) -> Result<bool, BusError> {
        queries::bind(&self.shared, domain, queries).await?;
        Ok(true)
    }

    async fn consume_queries(&self, domain: &str) -> Result<QueryRequests, BusError> {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(queries::consume(self.shared.clone(), domain.to_owned(), tx));
        Ok(QueryRequests::new(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
        )))
    }

    async fn ask(
        &self,
        domain: &str,
        name: &str,
        params: &str,
        timeout: Duration,
    ) -> Result<String, ErrorBody> {
        queries::ask(&self.shared, domain, name, params, timeout).await
    }

    async fn query_routes(&self) -> Result<Vec<QueryRoute>, BusError> {
        self.link()?;
        queries::routes(&self.shared).await
    }
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
    fn the_password_never_shows() {
        let uri: AMQPUri = "amqp://user:secret@127.0.0.1:5673/%2f".parse().unwrap();
        let shown = redact(&uri);
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(shown, "amqp://user@127.0.0.1:5673/%2F");
    }
}
