//! Opt-in instance reuse: a handler's instances may serve more than one
//! command.
//!
//! The default, and the only policy for a handler nobody configured, is
//! [`InstancePolicy::Fresh`]: every command gets a new instance, so nothing a
//! handler keeps in memory survives a command and a crash harms one command.
//! For interpreter components (Python, JavaScript) a fresh instance costs
//! milliseconds where a reused one answers in microseconds
//! (`docs/bench-languages.md`), so a host may trade that isolation for speed
//! per handler with [`InstancePolicy::Warm`]:
//!
//! * after a command that ended normally (events or a handler error) its
//!   instance is parked, up to `max_idle` per handler, and the next command
//!   of that handler takes it instead of instantiating;
//! * an instance whose command trapped, ran past its deadline or hit the
//!   memory cap is **poisoned**: dropped, never reused; the next command
//!   gets a fresh one;
//! * a reloaded handler starts with an empty pool (the pool belongs to the
//!   loaded component).
//!
//! The trade-off, which is why it is opt-in: module-level state (globals,
//! caches, anything the guest keeps in its memory) carries over from one
//! command to the next, **across sessions and clients**. A handler run warm
//! must keep per-command data out of globals, and one that holds secrets of
//! one session in memory must not be run warm. The host resets what it owns
//! (the command, its unit of work, log budget, deadline, emitted events) before
//! each command; captured stderr accumulates up to its cap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::Store;

use crate::sandbox::Sandbox;

/// Idle instances all warm handlers may park at once. The pooling allocator
/// reserves room for them on top of `Limits::max_instances`, so parked
/// instances never starve running commands of slots.
pub(crate) const WARM_SLOTS: u32 = 8;

/// How a handler's commands get their instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstancePolicy {
    /// A new instance per command (the default): full isolation.
    #[default]
    Fresh,
    /// Reuse instances whose last command ended normally, keeping at most
    /// `max_idle` parked (capped by the host-wide reserve of 8). State in
    /// the guest's memory carries over between commands: see the module
    /// documentation.
    Warm {
        /// Most instances kept parked for this handler.
        max_idle: usize,
    },
}

/// An instance with its store, between commands.
pub(crate) struct WarmInstance {
    pub(crate) store: Store<Sandbox>,
    pub(crate) instance: crate::runtime::HandlerInstance,
}

/// The parked instances of one loaded handler.
pub(crate) struct WarmPool {
    idle: Mutex<Vec<WarmInstance>>,
    /// Instances parked by every pool of the runtime.
    parked: Arc<AtomicUsize>,
}

impl WarmPool {
    pub(crate) fn new(parked: Arc<AtomicUsize>) -> Self {
        WarmPool {
            idle: Mutex::new(Vec::new()),
            parked,
        }
    }

    /// A parked instance, if any.
    pub(crate) fn take(&self) -> Option<WarmInstance> {
        let taken = self.idle.lock().pop();
        if taken.is_some() {
            self.parked.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }

    /// Parks a healthy instance, or drops it when this pool holds
    /// `max_idle` already or the runtime's reserve is used up.
    pub(crate) fn park(&self, mut warm: WarmInstance, max_idle: usize) {
        warm.store.data_mut().end_command();
        let mut idle = self.idle.lock();
        if idle.len() >= max_idle {
            return;
        }
        let reserved = self
            .parked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < WARM_SLOTS as usize).then_some(n + 1)
            });
        if reserved.is_ok() {
            idle.push(warm);
        }
    }

    /// Instances parked now.
    pub(crate) fn len(&self) -> usize {
        self.idle.lock().len()
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let n = self.idle.get_mut().len();
        self.parked.fetch_sub(n, Ordering::AcqRel);
    }
}
