//! The sandbox limits applied to every command.

use std::time::Duration;

use wasmtime::PoolingAllocationConfig;

/// Sandbox limits applied to every command.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time a command may run (default 5 s).
    pub deadline: Duration,
    /// Largest linear memory a guest may grow to, in bytes (default 64 MiB).
    pub memory: usize,
    /// Most instances alive at once; further commands wait (default 64).
    pub max_instances: u32,
    /// Most events one command may produce (default 1000).
    pub max_events: usize,
    /// Largest event body in bytes (default 1 MiB).
    pub max_event_body: usize,
    /// Most bytes of event bodies one command may produce in all, emitted
    /// and returned (default 16 MiB): what the host holds and records for
    /// one command.
    pub max_event_bytes: usize,
    /// Largest error event body in bytes (default 64 KiB, never more than
    /// `max_event_body`): an error is read by people, and a handler that
    /// echoes a 1 MiB input into its message would otherwise have every
    /// session buffer and processed record hold a megabyte per failure.
    pub max_error_body: usize,
    /// Bytes of each linear memory kept mapped between instances and reset
    /// with `memset` (only the pages a guest touched, found with Linux's
    /// `PAGEMAP_SCAN`) instead of being unmapped with `madvise` and faulted
    /// in again by the next instance. Default: the memory cap (64 MiB)
    /// where the kernel has `PAGEMAP_SCAN` (Linux 6.7+), else 0 (plain
    /// `madvise`). Costs resident memory: pages a pool slot touched stay
    /// mapped while the slot is warm.
    pub keep_resident: usize,
    /// The longest deadline a component's grants may give it (default
    /// 60 s; `--max-deadline-ms`).
    pub max_deadline: Duration,
    /// The largest memory cap a component's grants may give it, in bytes
    /// (default: `memory`; `--max-memory-mib`). Each pool slot reserves
    /// address space for this much.
    pub max_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(5),
            memory: 64 * 1024 * 1024,
            max_instances: 64,
            max_events: 1000,
            max_event_body: 1024 * 1024,
            max_event_bytes: 16 * 1024 * 1024,
            max_error_body: 64 * 1024,
            keep_resident: if PoolingAllocationConfig::is_pagemap_scan_available() {
                64 * 1024 * 1024
            } else {
                0
            },
            max_deadline: Duration::from_secs(60),
            max_memory: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The room an error event's body has.
    pub(crate) fn error_body(&self) -> usize {
        self.max_error_body.min(self.max_event_body)
    }

    /// The largest memory any instance may have: the grants' ceiling, and
    /// never below the default cap.
    pub fn memory_ceiling(&self) -> usize {
        self.max_memory.max(self.memory)
    }
}
