//! Buses: commands in, events out.
//!
//! A command goes to exactly one consumer of the queue its routing key is
//! bound to; an event goes to every subscriber whose topic pattern matches
//! its topic (`<reply_channel>.<routing_key>`, or the routing key alone).
//! Patterns follow AMQP topic exchanges: `*` is one segment, `#` zero or
//! more. The in-process bus and the RabbitMQ bus have these same semantics.
//!
//! A reactor has a queue of its own on the events side: every event whose
//! routing key matches one of its patterns goes to it, consumed by
//! competing hosts and settled like a command ([`Bus::consume_reactor`]).

pub mod in_process;
pub mod query;
mod topic;

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};

use crate::envelope::{Envelope, EnvelopeError};
use crate::error::ErrorBody;
use crate::host_info::{CommandInfo, QueryInfo};
use crate::names::NameError;

pub use in_process::InProcessBus;
pub use query::{QueryReply, QueryRequest, QueryRequests, QueryRoute};
pub use topic::topic_matches;

/// Why a bus operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// No queue is bound to the command's routing key.
    #[error("no handler is bound to routing key {routing_key:?}")]
    Unroutable {
        /// The routing key nobody handles.
        routing_key: String,
    },
    /// The pattern or key is not valid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The bus cannot be reached; retrying later may work.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

impl From<NameError> for BusError {
    fn from(err: NameError) -> Self {
        BusError::Invalid(err.0)
    }
}

/// Something events can be published to: a bus, or a collector in tests and
/// `pyou invoke`.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one event.
    async fn publish(&self, event: Envelope) -> Result<(), BusError>;

    /// Sends one command a reactor asked for. A bus routes it like
    /// [`Bus::send`]; the default, for collectors, keeps it with the events.
    async fn send_command(&self, command: Envelope) -> Result<(), BusError> {
        self.publish(command).await
    }

    /// What carries the messages, as OpenTelemetry's `messaging.system`
    /// names it on the spans of the commands and events taken from it.
    fn messaging_system(&self) -> &'static str {
        "in_process"
    }
}

/// A bound command routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The routing key, e.g. `thread.start`.
    pub routing_key: String,
    /// The domain whose queue it is bound to.
    pub domain: String,
    /// What the handler's manifest says of the command (summary, body
    /// schema, whether it is internal), as the host bound it: so a gateway
    /// with no host in its process lists and refuses commands as one with
    /// a host does. `None` for a key bound without it (by hand, or by a
    /// host of an older version).
    pub info: Option<CommandInfo>,
}

/// A message bus. See the module docs for the semantics.
#[async_trait]
pub trait Bus: Publisher + 'static {
    /// Sends a command to the queue bound to its routing key, or fails with
    /// [`BusError::Unroutable`] when there is none.
    async fn send(&self, command: Envelope) -> Result<(), BusError>;

    /// Creates the domain's command queue if needed and binds each of
    /// `commands`' routing keys to it, with what the manifest says of it
    /// (read back by [`Bus::bindings`]). Binding a key again replaces that.
    async fn bind(&self, domain: &str, commands: &[CommandInfo]) -> Result<(), BusError>;

    /// Removes bindings; commands already queued stay queued.
    async fn unbind(&self, domain: &str, keys: &[String]) -> Result<(), BusError>;

    /// Consumes the domain's command queue. Several consumers of one domain
    /// compete: each command goes to one of them.
    async fn consume(&self, domain: &str) -> Result<Deliveries, BusError>;

    /// Subscribes to the events whose topic matches `pattern`.
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError>;

    /// The command routing keys currently bound, ordered by key.
    async fn bindings(&self) -> Result<Vec<Binding>, BusError>;

    /// Creates the event queue of the reactor `domain` if needed and binds
    /// `patterns` (over event routing keys, see [`topic_matches`]) to it.
    /// A bus may deliver a reactor more than its patterns match (RabbitMQ
    /// matches on the event's topic, which carries its reply channel): the
    /// consumer checks each event's routing key.
    async fn bind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        let _ = (domain, patterns);
        Err(no_reactors())
    }

    /// Removes patterns from a reactor's queue; events already queued stay.
    async fn unbind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        let _ = (domain, patterns);
        Err(no_reactors())
    }

    /// Consumes the reactor's event queue; several consumers compete.
    async fn consume_reactor(&self, domain: &str) -> Result<Deliveries, BusError> {
        let _ = domain;
        Err(no_reactors())
    }

    /// Puts `event` in the reactor's queue alone (its own timers, a
    /// dead-lettered event replayed), whatever its patterns.
    async fn send_to_reactor(&self, domain: &str, event: Envelope) -> Result<(), BusError> {
        let _ = (domain, event);
        Err(no_reactors())
    }

    /// Keeps the dead letter `id` of the reactor `domain` (its JSON
    /// document, the event inside) on the bus, if this bus keeps dead
    /// letters itself: RabbitMQ does, in a durable queue. `Ok(false)` (the
    /// default): it does not, and the host keeps it in its store.
    async fn keep_dead_letter(&self, domain: &str, id: &str, json: &str) -> Result<bool, BusError> {
        let _ = (domain, id, json);
        Ok(false)
    }

    /// Binds the reactor `domain`'s `queries` on the bus (replacing what
    /// was bound for it before), for hosts to answer gateways elsewhere
    /// (see [`query`]). `Ok(false)` (the default): this bus carries no
    /// queries; a gateway answers them from a host in its own process.
    async fn bind_queries(&self, domain: &str, queries: &[QueryInfo]) -> Result<bool, BusError> {
        let _ = (domain, queries);
        Ok(false)
    }

    /// The query requests for the reactor `domain`, competing with other
    /// hosts that serve it.
    async fn consume_queries(&self, domain: &str) -> Result<QueryRequests, BusError> {
        let _ = domain;
        Err(no_queries())
    }

    /// Asks a host serving the reactor `domain` its query `name` with
    /// `params` (a JSON object's text), waiting up to `timeout`: its JSON
    /// answer, or the error the host answered, `not_found` when no host
    /// binds that query, `timeout` when none answered in time.
    async fn ask(
        &self,
        domain: &str,
        name: &str,
        params: &str,
        timeout: std::time::Duration,
    ) -> Result<String, ErrorBody> {
        let _ = (domain, name, params, timeout);
        Err(ErrorBody::new(
            crate::error::ErrorCode::Unavailable,
            no_queries().to_string(),
        ))
    }

    /// The queries bound on the bus, by domain and name (none on a bus
    /// that carries no queries).
    async fn query_routes(&self) -> Result<Vec<QueryRoute>, BusError> {
        Ok(Vec::new())
    }
}

fn no_queries() -> BusError {
    BusError::Invalid("this bus does not carry queries".to_owned())
}

fn no_reactors() -> BusError {
    BusError::Invalid("this bus does not carry reactors' event queues".to_owned())
}

/// Settles a delivery with the bus that made it.
#[async_trait]
pub trait Settle: Send {
    /// The command is done: its events are published and its effects stored.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// The message cannot be processed; it goes to the dead-letter queue.
    async fn reject(self: Box<Self>) -> Result<(), BusError>;
    /// The command could not be finished for a passing reason (the store or
    /// the bus was unavailable): it goes back to its queue to be retried.
    /// `message` is the delivery's own, for buses that must send it again
    /// themselves.
    async fn requeue(
        self: Box<Self>,
        message: Result<Envelope, EnvelopeError>,
    ) -> Result<(), BusError>;
    /// Like [`Settle::requeue`], counting `tries` so far with the message
    /// where the bus can (RabbitMQ: a header on a copy republished to the
    /// same queue, see [`Delivery::attempts`]), so every host sees one
    /// count. The default requeues and counts nothing.
    async fn retry(
        self: Box<Self>,
        message: Result<Envelope, EnvelopeError>,
        tries: u32,
    ) -> Result<(), BusError> {
        let _ = tries;
        self.requeue(message).await
    }
}

/// One command taken from a queue, to be settled once handled.
pub struct Delivery {
    /// The command, or why the message is not a valid envelope.
    pub message: Result<Envelope, EnvelopeError>,
    settle: Box<dyn Settle>,
    attempts: u32,
}

impl Delivery {
    /// A delivery settled through `settle`.
    pub fn new(message: Result<Envelope, EnvelopeError>, settle: Box<dyn Settle>) -> Self {
        Delivery {
            message,
            settle,
            attempts: 0,
        }
    }

    /// The same, tried `attempts` times before (as the bus carried it).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// How many times the message was tried before this delivery, as far
    /// as the bus carries it (0 on a bus that does not).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Puts the message back to be tried again, `tries` tries counted so
    /// far (see [`Settle::retry`]).
    pub async fn retry(self, tries: u32) -> Result<(), BusError> {
        self.settle.retry(self.message, tries).await
    }

    /// Acknowledges the delivery.
    pub async fn ack(self) -> Result<(), BusError> {
        self.settle.ack().await
    }

    /// Rejects the delivery (dead-letters it).
    pub async fn reject(self) -> Result<(), BusError> {
        self.settle.reject().await
    }

    /// Puts the delivery back in its queue, to be delivered again.
    pub async fn requeue(self) -> Result<(), BusError> {
        self.settle.requeue(self.message).await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// A stream of command deliveries from one domain queue.
pub struct Deliveries(Pin<Box<dyn Stream<Item = Delivery> + Send>>);

impl Deliveries {
    /// Wraps a stream.
    pub fn new(stream: impl Stream<Item = Delivery> + Send + 'static) -> Self {
        Deliveries(Box::pin(stream))
    }

    /// The next delivery; `None` when the queue is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.0.next().await
    }
}

/// A stream of events matching one pattern.
pub struct Subscription(Pin<Box<dyn Stream<Item = Envelope> + Send>>);

impl Subscription {
    /// Wraps a stream.
    pub fn new(stream: impl Stream<Item = Envelope> + Send + 'static) -> Self {
        Subscription(Box::pin(stream))
    }

    /// The next event; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<Envelope> {
        self.0.next().await
    }
}

/// A publisher that keeps what it is given, in order: for `pyou invoke` and
/// tests.
#[derive(Debug, Default)]
pub struct Collector {
    events: parking_lot::Mutex<Vec<Envelope>>,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes everything collected so far.
    pub fn take(&self) -> Vec<Envelope> {
        std::mem::take(&mut *self.events.lock())
    }
}

#[async_trait]
impl Publisher for Collector {
    async fn publish(&self, event: Envelope) -> Result<(), BusError> {
        self.events.lock().push(event);
        Ok(())
    }
}
