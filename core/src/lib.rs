//! What every part of Parallel You shares, and nothing heavy: the
//! [`envelope`] every message has, the grammar of every [`names`] kind,
//! the [`error`] codes failures become, the [`bus`] and [`store`]
//! contracts (with the in-process bus and the in-memory store), and the
//! [`host_info`] a gateway reads from a host beside it, the W3C
//! [`trace`] context messages carry, and the [`session_history`] a
//! gateway replays a session from after a restart.
//!
//! The host (`parallel-you-host`) implements the WebAssembly side and the
//! RabbitMQ, SQLite and MongoDB backends on top of this crate; the gateway
//! (`parallel-you-gateway`) needs only this crate.

#![deny(missing_docs)]

pub mod bus;
pub mod envelope;
pub mod error;
pub mod host_info;
pub mod json_depth;
pub mod names;
pub mod prometheus;
pub mod schema;
pub mod session_history;
pub mod store;
pub mod trace;

pub use bus::{Bus, InProcessBus, Publisher};
pub use envelope::{Envelope, Kind, Meta};
pub use error::{Code, ErrorBody, ErrorCode};
pub use host_info::{CommandInfo, HandlerStatus, HostInfo};
pub use store::{MemoryStore, Store};
