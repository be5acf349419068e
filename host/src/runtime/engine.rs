//! The engine: pooling allocator, epoch interruption, and the thread that
//! advances epochs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::epoch::EpochTicker;
use super::{Limits, Runtime};
use crate::bindings;
use crate::cache::{CacheError, CompileCache};
use crate::sandbox::Sandbox;
use crate::timers::{Clock, SystemClock};
use crate::warm::WARM_SLOTS;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly runtime: {0}")]
pub struct RuntimeError(String);

impl From<CacheError> for RuntimeError {
    fn from(err: CacheError) -> Self {
        RuntimeError(err.to_string())
    }
}
impl Runtime {
    /// Creates the engine (pooling allocator, epoch interruption) and starts
    /// the thread that advances epochs; it stops when the runtime is dropped.
    pub fn new(limits: Limits) -> Result<Self, RuntimeError> {
        Self::with_cache(limits, None, Arc::new(SystemClock))
    }

    /// Like [`Runtime::new`], keeping compiled code in `cache_dir` (see
    /// [`crate::cache`]) when one is given, and giving sandboxes `clock`
    /// to schedule timers by.
    pub fn with_cache(
        limits: Limits,
        cache_dir: Option<&Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RuntimeError> {
        let cache = cache_dir.map(CompileCache::open).transpose()?.map(Arc::new);
        let err = |e: wasmtime::Error| RuntimeError(format!("{e:#}"));
        let n = limits.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // Room for components from other languages too: interpreters such as
        // CPython and SpiderMonkey bring more core instances and tables than a
        // Rust guest.
        // Parked warm instances (`crate::warm`) hold slots too: reserve room
        // for them on top of the running ones.
        let slots = n + WARM_SLOTS;
        pool.total_component_instances(slots)
            .total_core_instances(slots * 32)
            .total_memories(slots * 4)
            .total_tables(slots * 16)
            .total_stacks(n)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .table_elements(200_000)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20)
            .max_memory_size(limits.memory_ceiling());
        if limits.keep_resident > 0 {
            keep_slots_resident(&mut pool, limits.keep_resident);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Plain `call_async` without the component-model-async machinery:
            // our world has no async functions, and this halves call overhead.
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .cache(cache.as_ref().map(|c| c.wasmtime_cache()));
        // For profiling under valgrind, which cannot reserve the pool's
        // address space (4 GiB per memory slot): bounds-checked memories of
        // the cap's size. Not for serving (guests run slower).
        if std::env::var_os("PYOU_PROFILE_SMALL_VM").is_some() {
            config
                .memory_reservation(limits.memory as u64)
                .memory_guard_size(1 << 16);
        }
        let engine = Engine::new(&config).map_err(err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        // Linked for every component, used only by those that import them:
        // instantiation resolves a component's own imports, so one that
        // imports neither pays nothing for them. What a call may do is the
        // component's grants' decision (`crate::grants`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(err)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut Sandbox| s.config_view())
            .map_err(err)?;
        bindings::Handler::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(err)?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| RuntimeError(format!("cannot start the epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            cache,
            clock,
            linker,
            instances: Arc::new(Semaphore::new(n as usize)),
            limits,
            policies: RwLock::new(HashMap::new()),
            parked: Arc::new(AtomicUsize::new(0)),
            ticker,
        })
    }
}

/// Makes the next fresh instance in a reused pool slot cheap, without
/// sharing anything between commands.
///
/// By default a freed slot's linear memory is `madvise`d away, and the next
/// instance page-faults in every page it touches again: for an interpreter
/// component (CPython, SpiderMonkey: a snapshot of tens of MiB, of which a
/// command touches thousands of pages) that is most of its per-command cost.
/// With the Linux `PAGEMAP_SCAN` ioctl (kernel 6.7+) Wasmtime instead finds
/// the pages the last instance dirtied and copies them back from the
/// component's memory image, up to `keep_resident` bytes, so the slot stays
/// mapped and the next instance starts from the pristine snapshot without
/// faults. Measured in `docs/bench-languages.md`. The price is resident
/// memory: a used slot keeps the pages its instances dirtied (for a Python
/// handler, tens of MiB) instead of returning them to the system. Without
/// the ioctl the defaults stay: keeping memory resident would then mean a
/// `memset` of the whole kept range per command.
fn keep_slots_resident(pool: &mut PoolingAllocationConfig, bytes: usize) {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(bytes)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
}

/// Bytes of a table slot kept resident (and reset page by page) between
/// instances: the interpreters' function tables, tens of thousands of
/// entries.
const TABLE_KEEP_RESIDENT: usize = 4 << 20;
