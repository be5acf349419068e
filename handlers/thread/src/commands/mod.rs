//! The thread commands, one module per kind of change.

pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod lifecycle;
pub(crate) mod read;
pub(crate) mod restore;
pub(crate) mod update;
