//! Every end-to-end test in one binary (as wasmtime's `tests/all` does):
//! one link of the host instead of one per file, one build of the guest
//! components per run (`common::components`), and shared helpers in
//! `common`. Each module is named for what it tests; run one with
//! `cargo test --test all thread::`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod amqp;
mod amqp_returns;
mod auth;
mod bounds;
mod broker_users;
mod budgets;
mod bus;
mod catalog_amqp;
mod cli;
mod common;
mod crash;
mod dashboard;
mod dashboard_auth;
mod dispatch;
mod effects;
mod envelopes;
mod events;
mod gateway;
mod gateway_limits;
mod gateway_sessions;
mod grants;
mod grants_https;
mod grants_reactors;
mod hot;
mod indexes;
mod languages;
mod loading;
mod mongo;
mod reactors;
mod reactors_amqp;
mod reactors_processes;
mod sagas;
mod sagas_amqp;
mod sagas_polyglot;
mod sandbox;
mod scaffold;
mod schema;
mod session_replay;
mod store;
mod thread;
mod timers;
mod traces;
