//! The wasmtime side: one engine, components compiled once, and a fresh
//! sandboxed instance per command.
//!
//! `engine.rs` builds the engine and its epoch thread, `load.rs` compiles
//! and validates components (their manifest, `manifest.rs`), `call.rs` runs
//! one command under the [`Limits`], `react.rs` one reactor event or query,
//! `classify.rs` turns failures into error bodies, and `compat.rs` drives
//! handlers built against an earlier 0.1.x contract.

mod call;
mod classify;
mod compat;
mod engine;
mod epoch;
mod limits;
mod load;
mod manifest;
mod react;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::Engine;

use crate::cache::CompileCache;
use crate::sandbox::{OutputLimits, Sandbox};
use crate::timers::Clock;
use crate::warm::InstancePolicy;

pub(crate) use compat::HandlerInstance;
pub use engine::RuntimeError;
pub use limits::Limits;
pub use load::{LoadError, LoadedHandler};
pub use manifest::{IndexInfo, Manifest};
pub(crate) use react::Wanted;

/// The engine, the linker and the limits shared by all handlers.
pub struct Runtime {
    engine: Engine,
    /// Compiled code on disk, when enabled.
    cache: Option<Arc<CompileCache>>,
    /// What sandboxes schedule timers by.
    clock: Arc<dyn Clock>,
    linker: Linker<Sandbox>,
    limits: Limits,
    instances: Arc<Semaphore>,
    /// Handlers (by domain) whose instances are reused; all others get a
    /// fresh instance per command.
    policies: RwLock<HashMap<String, InstancePolicy>>,
    /// Instances parked by all warm pools.
    parked: Arc<AtomicUsize>,
    /// Advances the epoch while a call runs.
    ticker: epoch::EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sets how the commands of `domain` get their instance (see
    /// [`crate::warm`]); applies to the handler loaded for it now and later.
    pub fn set_instance_policy(&self, domain: &str, policy: InstancePolicy) {
        let mut policies = self.policies.write();
        match policy {
            InstancePolicy::Fresh => policies.remove(domain),
            warm => policies.insert(domain.to_owned(), warm),
        };
    }

    /// How the commands of `domain` get their instance.
    pub fn instance_policy(&self, domain: &str) -> InstancePolicy {
        self.policies
            .read()
            .get(domain)
            .copied()
            .unwrap_or_default()
    }
    /// How the commands of `handler` get their instance: as set for its
    /// domain, else as its grants say, else fresh.
    pub(crate) fn policy_of(&self, handler: &LoadedHandler) -> InstancePolicy {
        match self.policies.read().get(&*handler.domain) {
            Some(policy) => *policy,
            None => handler.grants.instances.unwrap_or_default(),
        }
    }

    /// Instances of `handler` parked for reuse now.
    pub fn parked_instances(&self, handler: &LoadedHandler) -> usize {
        handler.warm.len()
    }
    fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_events: self.limits.max_events,
            max_event_bytes: self.limits.max_event_bytes,
            max_event_body: self.limits.max_event_body,
        }
    }
}
