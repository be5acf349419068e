//! The host: takes commands, runs them in their handler's sandbox, and
//! publishes what comes out, exactly once per `message_id`.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::bus::{Bus, BusError, Publisher};
use crate::envelope::{Envelope, EnvelopeError, Kind};
use crate::error::{error_code_of, ErrorBody, ErrorCode};
use crate::registry::{HandlerStatus, Registry};
use crate::runtime::{Limits, LoadError, Runtime, RuntimeError};
use crate::store::Store;

/// Settings of a host.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Sandbox limits.
    pub limits: Limits,
    /// Largest command body accepted, in bytes (0: the default, 1 MiB).
    pub max_body: usize,
}

/// Runs commands against loaded handlers.
pub struct Host {
    runtime: Runtime,
    registry: RwLock<Arc<Registry>>,
    store: Arc<dyn Store>,
    max_body: usize,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host with no handlers yet, keeping state in `store`.
    pub fn new(config: HostConfig, store: Arc<dyn Store>) -> Result<Self, RuntimeError> {
        let max_body = if config.max_body == 0 {
            crate::envelope::DEFAULT_MAX_BODY
        } else {
            config.max_body
        };
        Ok(Host {
            runtime: Runtime::new(config.limits)?,
            registry: RwLock::new(Arc::new(Registry::default())),
            store,
            max_body,
        })
    }

    /// Loads every component in `dir`, replacing the handlers loaded so far.
    /// Files that fail are reported by [`Host::status`]; only an unreadable
    /// folder is an error.
    pub async fn load_dir(&self, dir: &Path) -> Result<(), LoadError> {
        let registry = Registry::load_dir(&self.runtime, dir).await?;
        *self.registry.write() = Arc::new(registry);
        Ok(())
    }

    /// The handlers currently loaded.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().clone()
    }

    /// Every loaded component and every file that failed, by file.
    pub fn status(&self) -> Vec<HandlerStatus> {
        self.registry().status()
    }

    /// The document store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Handles a message given as envelope JSON text; an invalid one gets an
    /// `invalid_envelope` error event addressed with what could be read.
    pub async fn dispatch_json(&self, text: &str, out: Arc<dyn Publisher>) -> Vec<Envelope> {
        match Envelope::from_json(text, self.max_body) {
            Ok(cmd) => self.dispatch(cmd, out).await,
            Err(err) => self.reject(err, out.as_ref()).await,
        }
    }

    /// Publishes the `invalid_envelope` error event for a message that is
    /// not a valid envelope, and returns it.
    pub async fn reject(&self, err: EnvelopeError, out: &dyn Publisher) -> Vec<Envelope> {
        let event = ErrorBody::new(ErrorCode::InvalidEnvelope, err.reason.clone())
            .event_for_partial(&err.partial);
        publish_all(out, std::slice::from_ref(&event)).await;
        vec![event]
    }

    /// Handles one command: runs it in a fresh sandbox of the handler bound
    /// to its routing key and publishes its events (events it emits while
    /// running first, then those it returns) or one error event through
    /// `out`. A command whose `message_id` was already processed is not run
    /// again: its recorded events are published once more. Returns the
    /// events published.
    pub async fn dispatch(&self, cmd: Envelope, out: Arc<dyn Publisher>) -> Vec<Envelope> {
        let span = tracing::info_span!(
            "command",
            otel.kind = "consumer",
            messaging.operation = "process",
            messaging.destination = %cmd.meta.routing_key,
            messaging.message.id = %cmd.meta.message_id,
            correlation_id = %cmd.meta.correlation_id,
            session_id = cmd.meta.session_id.as_deref().unwrap_or(""),
        );
        self.dispatch_inner(cmd, out).instrument(span).await
    }

    async fn dispatch_inner(&self, cmd: Envelope, out: Arc<dyn Publisher>) -> Vec<Envelope> {
        if let Err(err) = cmd.validate(self.max_body) {
            return self.reject(err, out.as_ref()).await;
        }
        if cmd.meta.kind != Kind::Command {
            let err = ErrorBody::new(
                ErrorCode::InvalidEnvelope,
                "meta.kind is \"event\": only commands can be dispatched",
            );
            return self.fail(&cmd, err, out.as_ref()).await;
        }
        match self.store.processed(&cmd.meta.message_id).await {
            Ok(Some(recorded)) => {
                tracing::info!("already processed: republishing its recorded events");
                let events: Vec<Envelope> = recorded
                    .iter()
                    .filter_map(|text| serde_json::from_str(text).ok())
                    .collect();
                publish_all(out.as_ref(), &events).await;
                return events;
            }
            Ok(None) => {}
            Err(err) => {
                let err = ErrorBody::new(ErrorCode::Unavailable, err.to_string());
                return self.fail(&cmd, err, out.as_ref()).await;
            }
        }
        let Some(handler) = self.registry().route(&cmd.meta.routing_key).cloned() else {
            let err = ErrorBody::new(
                ErrorCode::UnknownRoutingKey,
                format!(
                    "no handler serves {:?}; `pyou handlers` lists the routing keys that are served",
                    cmd.meta.routing_key
                ),
            );
            return self.fail(&cmd, err, out.as_ref()).await;
        };
        let outcome = self
            .runtime
            .run(&handler, &cmd, self.store.clone(), out.clone())
            .await;
        let (tail, transient) = match outcome.result {
            Ok(events) => (events, false),
            Err(err) => {
                let transient = ErrorCode::Unavailable.as_str() == err.code
                    || ErrorCode::Overloaded.as_str() == err.code;
                (vec![err.event_for(&cmd.meta)], transient)
            }
        };
        if let Some(code) = tail.last().and_then(error_code_of) {
            tracing::warn!(code = %code, "command failed");
        }
        if !transient {
            // Recorded before the returned events are published: a crash in
            // between republishes them on redelivery instead of losing them.
            let record: Vec<String> = outcome
                .emitted
                .iter()
                .chain(&tail)
                .map(Envelope::to_json)
                .collect();
            if let Err(err) = self
                .store
                .record_processed(&cmd.meta.message_id, &record)
                .await
            {
                tracing::error!(error = %err, "could not record the command as processed");
            }
        }
        publish_all(out.as_ref(), &tail).await;
        let mut all = outcome.emitted;
        all.extend(tail);
        all
    }

    async fn fail(&self, cmd: &Envelope, err: ErrorBody, out: &dyn Publisher) -> Vec<Envelope> {
        let event = err.event_for(&cmd.meta);
        tracing::warn!(code = ?error_code_of(&event), "command refused");
        publish_all(out, std::slice::from_ref(&event)).await;
        vec![event]
    }

    /// Binds every loaded handler's routing keys on `bus` and consumes their
    /// domain queues until the returned [`Serving`] is stopped. Commands run
    /// concurrently, up to the runtime's instance limit.
    pub async fn serve(self: &Arc<Self>, bus: Arc<dyn Bus>) -> Result<Serving, BusError> {
        let registry = self.registry();
        let mut tasks = JoinSet::new();
        for handler in registry.handlers() {
            let domain = handler.manifest.domain.clone();
            bus.bind(&domain, &handler.manifest.routing_keys()).await?;
            let mut deliveries = bus.consume(&domain).await?;
            let host = self.clone();
            let bus = bus.clone();
            tasks.spawn(async move {
                let mut running = JoinSet::new();
                while let Some(delivery) = deliveries.next().await {
                    let host = host.clone();
                    let bus = bus.clone();
                    running.spawn(async move {
                        let publisher: Arc<dyn Publisher> = bus.clone();
                        match &delivery.message {
                            Ok(cmd) => {
                                host.dispatch(cmd.clone(), publisher).await;
                            }
                            Err(err) => {
                                host.reject(err.clone(), publisher.as_ref()).await;
                            }
                        }
                        if let Err(err) = delivery.ack().await {
                            tracing::warn!(error = %err, "could not acknowledge a command");
                        }
                    });
                    // Reap finished commands so the set does not grow.
                    while running.try_join_next().is_some() {}
                }
                while running.join_next().await.is_some() {}
            });
        }
        let host = self.clone();
        tasks.spawn(async move {
            loop {
                if let Err(err) = host.fire_due_timers(bus.as_ref()).await {
                    tracing::warn!(error = %err, "could not fire due timers");
                }
                tokio::time::sleep(crate::timers::POLL_INTERVAL).await;
            }
        });
        Ok(Serving { tasks })
    }

    /// Sends the command of every timer that is due on `bus`, then deletes
    /// the timer. A timer whose command nobody serves any more gets an
    /// `unknown_routing_key` error event on its session. Returns how many
    /// fired.
    pub async fn fire_due_timers(&self, bus: &dyn Bus) -> Result<usize, crate::store::StoreError> {
        let due = crate::timers::due(self.store.as_ref(), crate::timers::now_ms()).await?;
        let mut fired = 0;
        for (id, timer) in due {
            match timer.command(&id) {
                Ok(cmd) => match bus.send(cmd.clone()).await {
                    Ok(()) => {}
                    Err(BusError::Unroutable { routing_key }) => {
                        let err = ErrorBody::new(
                            ErrorCode::UnknownRoutingKey,
                            format!("the timer {id} fired, but no handler serves {routing_key:?} any more"),
                        );
                        self.fail(&cmd, err, bus).await;
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
            self.store
                .delete(crate::timers::DOMAIN, crate::timers::COLLECTION, &id)
                .await?;
            fired += 1;
        }
        Ok(fired)
    }
}

/// The consumer loops of a serving host.
#[derive(Debug)]
pub struct Serving {
    tasks: JoinSet<()>,
}

impl Serving {
    /// Stops consuming; commands in flight are cancelled.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

async fn publish_all(out: &dyn Publisher, events: &[Envelope]) {
    for event in events {
        if let Err(err) = out.publish(event.clone()).await {
            tracing::error!(error = %err, routing_key = %event.meta.routing_key, "could not publish an event");
        }
    }
}
