//! Argument groups shared by several subcommands, one file per group.

pub(crate) mod auth;
pub(crate) mod bus;
pub(crate) mod cache;
pub(crate) mod checkout;
pub(crate) mod credentials;
pub(crate) mod event_log;
pub(crate) mod handlers;
pub(crate) mod host;
pub(crate) mod limits;
pub(crate) mod listen;
pub(crate) mod otlp;
pub(crate) mod store;
