//! The epoch ticker: advances the engine's epoch while guests run, and
//! sleeps while none does.
//!
//! Deadlines are checked, and busy guests yield to the executor, at every
//! tick ([`EPOCH_TICK`]). Ticking while nothing runs would cost an idle
//! host ~500 wake-ups a second, so the thread parks until a call starts
//! ([`EpochTicker::running`]); a guest's first tick then comes within one
//! period, as it would anyway.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while a guest runs. Short slices keep a
/// looping guest from delaying the runtime's timers and I/O.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(2);
/// How long the parked thread sleeps before checking that its engine
/// still exists (so it ends soon after the engine is dropped).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The ticker of one engine.
#[derive(Debug)]
pub(super) struct EpochTicker {
    active: Arc<AtomicUsize>,
    thread: std::thread::Thread,
}

/// A call in progress: the ticker runs while one exists.
pub(super) struct Running<'a>(&'a EpochTicker);

impl EpochTicker {
    /// Starts the ticker thread of `engine`; it ends once the engine is
    /// dropped.
    pub(super) fn start(engine: &Engine) -> std::io::Result<Self> {
        let weak = engine.weak();
        let active = Arc::new(AtomicUsize::new(0));
        let seen = active.clone();
        let handle = std::thread::Builder::new()
            .name("pyou-epoch".into())
            .spawn(move || {
                loop {
                    if seen.load(Ordering::Acquire) == 0 {
                        std::thread::park_timeout(IDLE_CHECK);
                        if weak.upgrade().is_none() {
                            break;
                        }
                        continue;
                    }
                    // Sleep first: a call that woke the thread gets a whole
                    // tick before its first yield, instead of being
                    // interrupted at once (a yield costs a fiber switch and
                    // a trip through the executor).
                    std::thread::sleep(EPOCH_TICK);
                    let Some(engine) = weak.upgrade() else { break };
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            active,
            thread: handle.thread().clone(),
        })
    }

    /// Marks a call as running until the guard is dropped.
    pub(super) fn running(&self) -> Running<'_> {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Running(self)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}
