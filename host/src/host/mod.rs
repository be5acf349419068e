//! The host: takes commands, runs them in their handler's sandbox, and
//! publishes what comes out, exactly once per `message_id`.
//!
//! This module holds the [`Host`] itself: its settings, constructors and
//! accessors, and the one way its registry changes. The path of one command
//! is in `dispatch`; taking commands from a bus (and stopping) is in `serve`.

mod dedup;
mod dispatch;
mod react;
mod reactors;
mod serve;

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::runtime::{Limits, LoadError, LoadedHandler, Runtime, RuntimeError};
use crate::timers::{Clock, SystemClock, TimerSeal};
use crate::warm::InstancePolicy;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::host_info::HandlerStatus;
use parallel_you_core::host_info::{CommandInfo, HostInfo};
use parallel_you_core::store::{Store, StoreError};

pub use dedup::record_id;
pub(crate) use dispatch::{publish_all, OUTBOX_LEASE};
pub use react::{Reacted, ReactorConfig, DEFAULT_MAX_COMMANDS};
use serve::ServeState;
pub use serve::{RetryPolicy, Serving};

/// Settings of a host.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Sandbox limits.
    pub limits: Limits,
    /// Largest command body accepted, in bytes (0: the default, 1 MiB).
    pub max_body: usize,
    /// How long processed markers are kept to recognise a redelivered
    /// command (zero: the default, [`DEFAULT_DEDUP_WINDOW`]). A duplicate
    /// older than this runs again.
    pub dedup_window: std::time::Duration,
    /// How commands failing for a passing reason are retried.
    pub retry: RetryPolicy,
    /// How reactors' events are retried, and how many commands one may send.
    pub reactors: ReactorConfig,
}

/// How long processed markers are kept unless configured: NServiceBus's
/// default of 7 days.
pub const DEFAULT_DEDUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

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
    dedup_window: std::time::Duration,
    retry: RetryPolicy,
    reactors: ReactorConfig,
    metrics: Metrics,
    /// Tries of the commands failing for a passing reason.
    retries: serve::Retries,
    serving: tokio::sync::Mutex<Option<ServeState>>,
    /// Makes and checks timer message ids; its key is read from the store
    /// on first use.
    seal: tokio::sync::OnceCell<TimerSeal>,
    /// Where every command this host runs is logged, if anywhere (the
    /// event log, [`crate::event_log`]).
    command_log: std::sync::OnceLock<Arc<dyn parallel_you_core::bus::Publisher>>,
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
            dedup_window: if config.dedup_window.is_zero() {
                DEFAULT_DEDUP_WINDOW
            } else {
                config.dedup_window
            },
            retry: config.retry,
            reactors: ReactorConfig {
                max_commands: if config.reactors.max_commands == 0 {
                    DEFAULT_MAX_COMMANDS
                } else {
                    config.reactors.max_commands
                },
                ..config.reactors
            },
            metrics: Metrics::default(),
            retries: serve::Retries::default(),
            serving: tokio::sync::Mutex::new(None),
            seal: tokio::sync::OnceCell::new(),
            command_log: std::sync::OnceLock::new(),
        })
    }

    /// Hands every command this host runs from now on (each delivery of
    /// it) to `log` before it runs. Once: false if a log was set already.
    pub fn log_commands(&self, log: Arc<dyn parallel_you_core::bus::Publisher>) -> bool {
        self.command_log.set(log).is_ok()
    }

    /// Loads every component in `dir`, replacing the handlers loaded so far.
    /// Files that fail are reported by [`Host::status`]; only an unreadable
    /// folder is an error.
    /// When the host is serving, routing keys are bound and unbound to match.
    pub async fn load_dir(self: &Arc<Self>, dir: &Path) -> Result<(), LoadError> {
        let mut registry = Registry::load_dir(&self.runtime, dir).await?;
        let loaded: Vec<Arc<LoadedHandler>> = registry.handlers().cloned().collect();
        for handler in loaded {
            if let Err(err) = self.ensure_indexes(&handler).await {
                tracing::warn!(%err, "handler not loaded");
                registry = registry.without_file(&handler.file).0.with_failure(err);
            }
        }
        self.begin_change().await.commit(registry, Vec::new()).await;
        Ok(())
    }

    /// Makes the store keep every index `handler`'s manifest declares
    /// (creating only the missing ones), before it serves: a component
    /// whose indexes cannot be made does not come online.
    pub(crate) async fn ensure_indexes(&self, handler: &LoadedHandler) -> Result<(), LoadError> {
        let domain = &handler.manifest.domain;
        for index in &handler.manifest.indexes {
            self.store
                .ensure_index(domain, &index.collection, &index.fields)
                .await
                .map_err(|e| LoadError {
                    file: handler.file.clone(),
                    reason: format!(
                        "its index of {:?} on {:?} could not be made: {e}",
                        index.collection, index.fields
                    ),
                })?;
        }
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

    /// The seal of this host's timer message ids (its key from the store,
    /// read or made on first use).
    pub async fn seal(&self) -> Result<&TimerSeal, StoreError> {
        self.seal
            .get_or_try_init(|| TimerSeal::open(self.store.as_ref()))
            .await
    }

    /// How long processed markers are kept.
    pub fn dedup_window(&self) -> std::time::Duration {
        self.dedup_window
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

    fn query<'a>(
        &'a self,
        domain: &'a str,
        name: &'a str,
        params: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<String, parallel_you_core::ErrorBody>> {
        Box::pin(Host::query(self, domain, name, params))
    }
}
