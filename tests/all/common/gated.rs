//! A bus that holds back the commands of one routing key until the test
//! opens its gate, around a real in-process bus: for the tests that need
//! another command to land first, whatever the scheduling.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use parallel_you_core::bus::{
    Binding, Bus, BusError, Deliveries, InProcessBus, Publisher, QueryRequests, QueryRoute,
    Subscription,
};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::ErrorBody;
use parallel_you_core::host_info::{CommandInfo, QueryInfo};

/// Commands sent with routing key `held` wait until [`Gated::open`].
pub struct Gated {
    inner: Arc<InProcessBus>,
    held: String,
    open: watch::Sender<bool>,
}

impl Gated {
    pub fn new(inner: Arc<InProcessBus>, held: &str) -> Arc<Self> {
        Arc::new(Gated {
            inner,
            held: held.to_owned(),
            open: watch::Sender::new(false),
        })
    }

    /// Lets the held commands through, and every later one.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    async fn pass(&self, command: &Envelope) {
        if command.meta.routing_key == self.held {
            let mut open = self.open.subscribe();
            // The sender lives as long as `self`: `wait_for` cannot fail.
            let _ = open.wait_for(|o| *o).await;
        }
    }
}

#[async_trait]
impl Publisher for Gated {
    async fn publish(&self, event: Envelope) -> Result<(), BusError> {
        self.inner.publish(event).await
    }

    async fn send_command(&self, command: Envelope) -> Result<(), BusError> {
        self.pass(&command).await;
        self.inner.send_command(command).await
    }
}

#[async_trait]
impl Bus for Gated {
    async fn send(&self, command: Envelope) -> Result<(), BusError> {
        self.pass(&command).await;
        self.inner.send(command).await
    }

    async fn bind(&self, domain: &str, commands: &[CommandInfo]) -> Result<(), BusError> {
        self.inner.bind(domain, commands).await
    }

    async fn unbind(&self, domain: &str, keys: &[String]) -> Result<(), BusError> {
        self.inner.unbind(domain, keys).await
    }

    async fn consume(&self, domain: &str) -> Result<Deliveries, BusError> {
        self.inner.consume(domain).await
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        self.inner.subscribe(pattern).await
    }

    async fn bindings(&self) -> Result<Vec<Binding>, BusError> {
        self.inner.bindings().await
    }

    async fn bind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        self.inner.bind_reactor(domain, patterns).await
    }

    async fn unbind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        self.inner.unbind_reactor(domain, patterns).await
    }

    async fn consume_reactor(&self, domain: &str) -> Result<Deliveries, BusError> {
        self.inner.consume_reactor(domain).await
    }

    async fn send_to_reactor(&self, domain: &str, event: Envelope) -> Result<(), BusError> {
        self.inner.send_to_reactor(domain, event).await
    }

    async fn keep_dead_letter(&self, domain: &str, id: &str, json: &str) -> Result<bool, BusError> {
        self.inner.keep_dead_letter(domain, id, json).await
    }

    async fn bind_queries(&self, domain: &str, queries: &[QueryInfo]) -> Result<bool, BusError> {
        self.inner.bind_queries(domain, queries).await
    }

    async fn consume_queries(&self, domain: &str) -> Result<QueryRequests, BusError> {
        self.inner.consume_queries(domain).await
    }

    async fn ask(
        &self,
        domain: &str,
        name: &str,
        params: &str,
        timeout: Duration,
    ) -> Result<String, ErrorBody> {
        self.inner.ask(domain, name, params, timeout).await
    }

    async fn query_routes(&self) -> Result<Vec<QueryRoute>, BusError> {
        self.inner.query_routes().await
    }
}
