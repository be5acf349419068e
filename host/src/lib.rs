//! The Parallel You host: loads WebAssembly command handlers, runs each
//! command in a fresh sandboxed instance, and moves commands and events over
//! a bus, with documents kept in a store.
//!
//! The shared parts (envelope, names, error codes, the bus and store
//! contracts) live in `parallel-you-core`. Follow one command through this
//! crate in this order: [`host`] (dispatch and idempotency), [`runtime`]
//! (the sandboxed call) and the sandbox's imports, then [`bus`] and
//! [`store`] for the backends beside the core's in-process ones.

mod bindings;
pub mod bus;
pub mod cache;
pub mod dead_letter;
pub mod event_log;
pub mod faults;
pub mod grants;
pub mod host;
pub mod hot;
pub mod metrics;
pub mod outbox;
pub mod registry;
pub mod runtime;
mod sandbox;
pub mod store;
pub mod timers;
pub mod warm;

pub use host::{Host, HostConfig, ReactorConfig, RetryPolicy, DEFAULT_DEDUP_WINDOW};
pub use hot::{HotLoader, HotOutcome, WatchConfig, Watching};
pub use runtime::{Limits, LoadError, Manifest};
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use warm::InstancePolicy;
