//! The Parallel You host: loads WebAssembly command handlers, runs each
//! command in a fresh sandboxed instance, and moves commands and events over
//! a bus, with documents kept in a store.
//!
//! Follow one command through the crate in this order: [`envelope`] (its
//! shape), [`bus`] (how it arrives), [`host`] (dispatch and idempotency),
//! [`runtime`] (the sandboxed call), [`sandbox`](crate::runtime) imports, and
//! [`error`] (how failures become events).

mod bindings;
pub mod bus;
pub mod cache;
pub mod envelope;
pub mod error;
pub mod host;
pub mod hot;
pub mod metrics;
pub mod registry;
pub mod runtime;
mod sandbox;
pub mod store;
pub mod timers;
pub mod warm;

pub use bus::{Bus, InProcessBus, Publisher};
pub use envelope::{Envelope, Meta};
pub use error::{ErrorBody, ErrorCode};
pub use host::{Host, HostConfig};
pub use hot::{HotOutcome, WatchConfig, Watching};
pub use runtime::{Limits, LoadError, Manifest};
pub use store::{MemoryStore, SqliteStore, Store};
pub use warm::InstancePolicy;
