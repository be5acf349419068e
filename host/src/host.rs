//! The host: takes commands, runs them in their handler's sandbox, and
//! publishes what comes out, exactly once per `message_id`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::runtime::{Limits, LoadError, LoadedHandler, Runtime, RuntimeError};
use crate::timers::{Clock, SystemClock, TimerPump};
use crate::warm::InstancePolicy;
use parallel_you_core::bus::{Bus, BusError, Publisher};
use parallel_you_core::envelope::{Envelope, EnvelopeError, Kind};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::host_info::HandlerStatus;
use parallel_you_core::host_info::{CommandInfo, HostInfo};
use parallel_you_core::store::Store;

/// How long a command that failed for a passing reason waits before it goes
/// back to its queue.
const RETRY_DELAY: Duration = Duration::from_secs(1);

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
    /// Held while a registry change is worked out, swapped in and bound on
    /// the bus, so changes (folder loads, hot loads) apply one at a time.
    changes: tokio::sync::Mutex<()>,
    store: Arc<dyn Store>,
    /// What timers are scheduled and fired by.
    clock: Arc<dyn Clock>,
    max_body: usize,
    metrics: Metrics,
    serving: tokio::sync::Mutex<Option<ServeState>>,
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
        Self::with_cache(config, store, None)
    }

    /// Like [`Host::new`], keeping compiled components in `cache_dir` so a
    /// restart, or a return to a version loaded before, skips compilation
    /// (see [`crate::cache`]).
    pub fn with_cache(
        config: HostConfig,
        store: Arc<dyn Store>,
        cache_dir: Option<&Path>,
    ) -> Result<Self, RuntimeError> {
        Self::with_clock(config, store, cache_dir, Arc::new(SystemClock))
    }

    /// Like [`Host::with_cache`], scheduling and firing timers by `clock`
    /// instead of the system clock (a [`crate::timers::ManualClock`] lets
    /// a test move time).
    pub fn with_clock(
        config: HostConfig,
        store: Arc<dyn Store>,
        cache_dir: Option<&Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RuntimeError> {
        let max_body = if config.max_body == 0 {
            parallel_you_core::envelope::DEFAULT_MAX_BODY
        } else {
            config.max_body
        };
        Ok(Host {
            runtime: Runtime::with_cache(config.limits, cache_dir, clock.clone())?,
            registry: RwLock::new(Arc::new(Registry::default())),
            changes: tokio::sync::Mutex::new(()),
            store,
            clock,
            max_body,
            metrics: Metrics::default(),
            serving: tokio::sync::Mutex::new(None),
        })
    }

    /// Loads every component in `dir`, replacing the handlers loaded so far.
    /// Files that fail are reported by [`Host::status`]; only an unreadable
    /// folder is an error.
    /// When the host is serving, routing keys are bound and unbound to match.
    pub async fn load_dir(self: &Arc<Self>, dir: &Path) -> Result<(), LoadError> {
        let registry = Registry::load_dir(&self.runtime, dir).await?;
        self.begin_change().await.commit(registry, Vec::new()).await;
        Ok(())
    }

    /// Compiles, links and validates the component `bytes` read from
    /// `file`, without changing what serves.
    pub(crate) async fn compile(
        &self,
        file: &Path,
        bytes: Vec<u8>,
    ) -> Result<LoadedHandler, LoadError> {
        self.runtime.load_bytes(file, bytes).await
    }

    /// Starts a change of the registry: waits for the change before it to
    /// be committed, then holds off others until this one is committed or
    /// dropped.
    pub(crate) async fn begin_change(self: &Arc<Self>) -> RegistryChange<'_> {
        RegistryChange {
            host: self,
            _turn: self.changes.lock().await,
        }
    }

    /// Swaps `registry` in, then (when serving) makes the bus bindings match
    /// it and publishes `events`. Called through [`RegistryChange::commit`].
    ///
    /// Swapping first is what makes an upgrade atomic for commands: one
    /// already routed holds its handler (an `Arc`) until it finishes; every
    /// command routed after the swap gets the new one. Keys are bound after
    /// the swap, so no command reaches a key the registry does not know yet.
    async fn apply(self: &Arc<Self>, registry: Registry, events: Vec<Envelope>) {
        *self.registry.write() = Arc::new(registry);
        let mut serving = self.serving.lock().await;
        if let Some(state) = serving.as_mut() {
            if let Err(err) = self.sync_bindings(state).await {
                tracing::error!(error = %err, "could not update the bus bindings");
            }
            publish_all(state.bus.as_ref(), &events).await;
        }
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

    /// The clock its timers are scheduled and fired by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// What this host has done so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Opts the handler of `domain` in or out of instance reuse; every
    /// handler starts with [`InstancePolicy::Fresh`]. See [`crate::warm`]
    /// for what reuse trades away.
    pub fn set_instance_policy(&self, domain: &str, policy: InstancePolicy) {
        self.runtime.set_instance_policy(domain, policy);
    }

    /// Instances of the handler of `domain` parked for reuse now.
    pub fn parked_instances(&self, domain: &str) -> usize {
        self.registry()
            .handlers()
            .find(|h| h.manifest.domain == domain)
            .map_or(0, |h| self.runtime.parked_instances(h))
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
        self.metrics.refused(ErrorCode::InvalidEnvelope.as_str());
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
        self.handle(&cmd, out).await.events
    }

    /// [`Host::dispatch`], also saying whether the command should be
    /// retried.
    async fn handle(&self, cmd: &Envelope, out: Arc<dyn Publisher>) -> Handled {
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

    async fn dispatch_inner(&self, cmd: &Envelope, out: Arc<dyn Publisher>) -> Handled {
        if let Err(err) = cmd.validate(self.max_body) {
            return Handled::done(self.reject(err, out.as_ref()).await);
        }
        if cmd.meta.kind != Kind::Command {
            let err = ErrorBody::new(
                ErrorCode::InvalidEnvelope,
                "meta.kind is \"event\": only commands can be dispatched",
            );
            return self.fail(cmd, err, out.as_ref()).await;
        }
        match self.store.processed(&cmd.meta.message_id).await {
            Ok(Some(recorded)) => {
                tracing::info!("already processed: republishing its recorded events");
                self.metrics.replayed();
                let events: Vec<Envelope> = recorded
                    .iter()
                    .filter_map(|text| serde_json::from_str(text).ok())
                    .collect();
                let published = publish_all(out.as_ref(), &events).await;
                return Handled {
                    events,
                    retry: !published,
                };
            }
            Ok(None) => {}
            Err(err) => {
                let err = ErrorBody::new(ErrorCode::Unavailable, err.to_string());
                let mut handled = self.fail(cmd, err, out.as_ref()).await;
                handled.retry = true;
                return handled;
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
            return self.fail(cmd, err, out.as_ref()).await;
        };
        let started = Instant::now();
        let outcome = self
            .runtime
            .run(&handler, cmd, self.store.clone(), out.clone())
            .await;
        let (tail, code) = match outcome.result {
            Ok(events) => (events, None),
            Err(err) => {
                let code = err.code.clone();
                tracing::warn!(code = %code, "command failed");
                (vec![err.event_for(&cmd.meta)], Some(code))
            }
        };
        let transient = code.as_ref().is_some_and(Code::is_transient);
        let mut retry = transient;
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
                retry = true;
            }
        }
        // Emitted events went out while the handler ran; any that failed
        // are in the record, and the retry republishes them.
        let published = outcome.published && publish_all(out.as_ref(), &tail).await;
        self.metrics.command(
            &cmd.meta.routing_key,
            started.elapsed(),
            code.as_ref().map(Code::as_str),
        );
        let mut events = outcome.emitted;
        events.extend(tail);
        Handled {
            events,
            retry: retry || !published,
        }
    }

    /// Refuses `cmd` with `err`, as dispatch refuses a command it cannot
    /// run: counted, logged, and the error event published through `out`.
    pub(crate) async fn refuse(&self, cmd: &Envelope, err: ErrorBody, out: &dyn Publisher) {
        self.fail(cmd, err, out).await;
    }

    async fn fail(&self, cmd: &Envelope, err: ErrorBody, out: &dyn Publisher) -> Handled {
        self.metrics.refused(err.code.as_str());
        tracing::warn!(code = %err.code, "command refused");
        let event = err.event_for(&cmd.meta);
        let published = publish_all(out, std::slice::from_ref(&event)).await;
        Handled {
            events: vec![event],
            retry: !published,
        }
    }

    /// Binds every loaded handler's routing keys on `bus`, consumes their
    /// domain queues and fires due timers (a [`TimerPump`]), until [`Serving::shutdown`].
    /// Handlers loaded later with [`Host::load_dir`] are bound (and dropped
    /// ones unbound) as they change. At most `4 × max_instances` commands
    /// are taken from the bus at once: the rest wait in their queues.
    pub async fn serve(self: &Arc<Self>, bus: Arc<dyn Bus>) -> Result<Serving, BusError> {
        let mut serving = self.serving.lock().await;
        if serving.is_some() {
            return Err(BusError::Invalid("this host is already serving".to_owned()));
        }
        let stop = CancellationToken::new();
        let inflight = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(
            4 * self.runtime.limits().max_instances.max(1) as usize,
        ));
        let mut state = ServeState {
            bus: bus.clone(),
            stop: stop.clone(),
            inflight: inflight.clone(),
            permits,
            domains: BTreeMap::new(),
        };
        self.sync_bindings(&mut state).await?;
        *serving = Some(state);
        drop(serving);
        let timers = TimerPump::new(self.clone()).spawn(bus, stop.clone());
        Ok(Serving {
            host: self.clone(),
            stop,
            inflight,
            timers,
        })
    }

    /// Makes the bus bindings and consumers match the registry.
    async fn sync_bindings(self: &Arc<Self>, state: &mut ServeState) -> Result<(), BusError> {
        let registry = self.registry();
        let wanted: BTreeMap<String, Vec<String>> = registry
            .handlers()
            .map(|h| (h.manifest.domain.clone(), h.manifest.routing_keys()))
            .collect();
        let gone: Vec<String> = state
            .domains
            .keys()
            .filter(|d| !wanted.contains_key(*d))
            .cloned()
            .collect();
        for domain in gone {
            if let Some(old) = state.domains.remove(&domain) {
                state.bus.unbind(&domain, &old.keys).await?;
                old.stop.cancel();
                tracing::info!(domain = %domain, "unbound");
            }
        }
        for (domain, keys) in wanted {
            if let Some(current) = state.domains.get_mut(&domain) {
                let dropped: Vec<String> = current
                    .keys
                    .iter()
                    .filter(|k| !keys.contains(k))
                    .cloned()
                    .collect();
                state.bus.unbind(&domain, &dropped).await?;
                state.bus.bind(&domain, &keys).await?;
                current.keys = keys;
                continue;
            }
            state.bus.bind(&domain, &keys).await?;
            let deliveries = state.bus.consume(&domain).await?;
            let stop = state.stop.child_token();
            tokio::spawn(
                self.clone()
                    .consume(deliveries, state.clone_for_consumer(stop.clone())),
            );
            tracing::info!(domain = %domain, keys = ?keys, "bound");
            state.domains.insert(domain, DomainState { keys, stop });
        }
        Ok(())
    }

    async fn consume(
        self: Arc<Self>,
        mut deliveries: parallel_you_core::bus::Deliveries,
        ctx: ConsumerCtx,
    ) {
        loop {
            let permit = tokio::select! {
                _ = ctx.stop.cancelled() => break,
                p = ctx.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let delivery = tokio::select! {
                _ = ctx.stop.cancelled() => break,
                d = deliveries.next() => match d {
                    Some(d) => d,
                    None => break,
                },
            };
            let host = self.clone();
            let bus = ctx.bus.clone();
            ctx.inflight.spawn(async move {
                let publisher: Arc<dyn Publisher> = bus;
                let settled = match &delivery.message {
                    Ok(cmd) => {
                        let handled = host.handle(cmd, publisher).await;
                        if handled.retry {
                            // A passing failure (store or bus away): back to
                            // the queue after a pause, not in a hot loop.
                            tokio::time::sleep(RETRY_DELAY).await;
                            delivery.requeue().await
                        } else {
                            delivery.ack().await
                        }
                    }
                    Err(err) => {
                        // Not an envelope: retrying cannot help. Dead-letter
                        // it, after telling whoever can be told.
                        host.reject(err.clone(), publisher.as_ref()).await;
                        delivery.reject().await
                    }
                };
                if let Err(err) = settled {
                    // The broker redelivers what was not settled.
                    tracing::warn!(error = %err, "could not settle a command");
                }
                drop(permit);
            });
        }
    }
}

/// A registry change in progress (see `Host::begin_change`): the registry
/// it starts from, and the one way to apply it.
pub(crate) struct RegistryChange<'a> {
    host: &'a Arc<Host>,
    _turn: tokio::sync::MutexGuard<'a, ()>,
}

impl RegistryChange<'_> {
    /// The handlers loaded now, which no other change can alter meanwhile.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.host.registry()
    }

    /// Swaps `registry` in, binds it on the bus when serving and publishes
    /// `events`; the next change may then begin.
    pub(crate) async fn commit(self, registry: Registry, events: Vec<Envelope>) {
        self.host.apply(registry, events).await;
    }
}

impl HostInfo for Host {
    fn command(&self, routing_key: &str) -> Option<CommandInfo> {
        let registry = self.registry();
        let handler = registry.route(routing_key)?;
        handler
            .manifest
            .commands
            .iter()
            .find(|c| c.routing_key == routing_key)
            .cloned()
    }

    fn status(&self) -> Vec<HandlerStatus> {
        Host::status(self)
    }

    fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out);
    }
}

/// What a serving host keeps about its bus.
struct ServeState {
    bus: Arc<dyn Bus>,
    stop: CancellationToken,
    inflight: TaskTracker,
    permits: Arc<Semaphore>,
    domains: BTreeMap<String, DomainState>,
}

struct DomainState {
    keys: Vec<String>,
    stop: CancellationToken,
}

struct ConsumerCtx {
    bus: Arc<dyn Bus>,
    stop: CancellationToken,
    inflight: TaskTracker,
    permits: Arc<Semaphore>,
}

impl ServeState {
    fn clone_for_consumer(&self, stop: CancellationToken) -> ConsumerCtx {
        ConsumerCtx {
            bus: self.bus.clone(),
            stop,
            inflight: self.inflight.clone(),
            permits: self.permits.clone(),
        }
    }
}

/// A serving host: stop it with [`Serving::shutdown`] (or [`Serving::stop`]).
#[derive(Debug)]
pub struct Serving {
    host: Arc<Host>,
    stop: CancellationToken,
    inflight: TaskTracker,
    timers: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Stops taking commands and firing timers, then waits up to `grace`
    /// for the commands in flight to finish. Returns whether they all did.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.stop.cancel();
        self.timers.abort();
        self.inflight.close();
        let finished = tokio::time::timeout(grace, self.inflight.wait())
            .await
            .is_ok();
        *self.host.serving.lock().await = None;
        finished
    }

    /// Stops taking commands and firing timers without waiting.
    pub fn stop(self) {
        self.stop.cancel();
        self.timers.abort();
        self.inflight.close();
        if let Ok(mut serving) = self.host.serving.try_lock() {
            *serving = None;
        }
    }
}

/// Publishes `events` in order; returns whether all of them went out.
async fn publish_all(out: &dyn Publisher, events: &[Envelope]) -> bool {
    let mut all = true;
    for event in events {
        if let Err(err) = out.publish(event.clone()).await {
            tracing::error!(error = %err, routing_key = %event.meta.routing_key, "could not publish an event");
            all = false;
        }
    }
    all
}

/// What became of one command.
struct Handled {
    /// The events published (or attempted).
    events: Vec<Envelope>,
    /// The command did not finish for a passing reason: requeue it.
    retry: bool,
}

impl Handled {
    fn done(events: Vec<Envelope>) -> Self {
        Handled {
            events,
            retry: false,
        }
    }
}
