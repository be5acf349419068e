//! The subcommands of `pyou`, one module each.

mod args;
mod build;
mod deploy;
mod dev;
mod dlq;
mod events;
mod gateway;
mod handlers;
mod host;
mod invoke;
mod logging;
mod new;
mod otlp;
mod query;
mod sagas;
mod serve;
mod shutdown;
mod watch;

use clap::{Parser, Subcommand};

// The shared pieces keep their old paths (`super::HostArgs`, `super::bus`),
// so the subcommands did not change when they moved out of this file.
pub(crate) use args::auth::AuthArgs;
pub(crate) use args::bus;
pub(crate) use args::cache::CacheArgs;
pub(crate) use args::handlers::{HandlersDir, WatchArgs};
pub(crate) use args::host::HostArgs;
pub(crate) use args::limits::LimitArgs;
pub(crate) use args::listen::ListenArgs;
pub(crate) use logging::init_tracing;
pub(crate) use otlp::Exporter;
pub(crate) use shutdown::{shutdown_signal, stop_host};

/// Exit status: a command produced an error event, or `pyou` itself failed.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit status: the command line or its input is wrong.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Runs message handlers written as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "pyou", version, about)]
pub(crate) struct Cli {
    /// Log more (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// A `pyou` subcommand.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a new handler or reactor project (Rust, Python or JavaScript)
    /// that builds as it is.
    New(new::Args),
    /// Build a project's component with the right tool for its language.
    Build(build::Args),
    /// Build, deploy into a serving host's folder, and again on every change.
    Dev(dev::Args),
    /// Validate a handler component and place it in a handlers folder
    /// atomically; a serving host watching the folder loads it.
    Deploy(deploy::Args),
    /// List the handler components in a folder (or, with --gateway, those a
    /// running host serves): domain, version, load time, routing keys, or why
    /// a file failed to load.
    Handlers(handlers::Args),
    /// Run one command in-process against the store and print every
    /// resulting event as one JSON line.
    Invoke(invoke::Args),
    /// Run the host and the HTTP/WebSocket gateway in one process (the main job).
    Serve(serve::Args),
    /// Run only the host on a RabbitMQ broker: start several to scale out.
    Host(host::Args),
    /// Run only the HTTP/WebSocket gateway on a RabbitMQ broker; the API
    /// follows the commands bound there.
    Gateway(gateway::Args),
    /// Print a session's events from a running gateway (WebSocket), one JSON line each.
    Watch(watch::Args),
    /// Answer one reactor query in-process against the store, as JSON.
    Query(query::Args),
    /// The events reactors gave up on: list, show, replay or drop them.
    Dlq(dlq::Args),
    /// Saga instances: list them, show one, or retry one left for an operator.
    Sagas(sagas::Args),
    /// Events as the audit trail: tail them live, or query the event log
    /// for everything a command caused.
    Events(events::Args),
}

impl Cli {
    /// Where this process exports its traces, and the `service.name` it
    /// exports them as: only the subcommands that serve export.
    pub(crate) fn otlp(&self) -> anyhow::Result<Option<(String, &'static str)>> {
        let (args, service) = match &self.command {
            Command::Serve(a) => (&a.otlp, "pyou-serve"),
            Command::Host(a) => (&a.otlp, "pyou-host"),
            Command::Gateway(a) => (&a.otlp, "pyou-gateway"),
            _ => return Ok(None),
        };
        Ok(args.traces_url()?.map(|url| (url, service)))
    }
}

impl Command {
    /// Runs the subcommand, returning the process exit status.
    pub(crate) async fn run(self) -> anyhow::Result<u8> {
        match self {
            Command::New(args) => new::run(args).await,
            Command::Build(args) => build::run(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Deploy(args) => deploy::run(args).await,
            Command::Handlers(args) => handlers::run(args).await,
            Command::Invoke(args) => invoke::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Host(args) => host::run(args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Dlq(args) => dlq::run(args).await,
            Command::Sagas(args) => sagas::run(args).await,
            Command::Events(args) => events::run(args).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
