//! The subcommands of `pyou`, one module each.

mod deploy;
mod handlers;
mod invoke;
mod serve;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Validate a handler component and place it in a handlers folder
    /// atomically; a serving host watching the folder loads it.
    Deploy(deploy::Args),
    /// List the handler components in a folder (or, with --gateway, those a
    /// running host serves): domain, version, load time, routing keys, or why
    /// a file failed to load.
    Handlers(handlers::Args),
    /// Run one command in-process against the embedded store and print every
    /// resulting event as one JSON line.
    Invoke(invoke::Args),
    /// Run the host and the HTTP/WebSocket gateway in one process (the main job).
    Serve(serve::Args),
    /// Print a session's events from a running gateway (WebSocket), one JSON line each.
    Watch(watch::Args),
}

impl Command {
    /// Runs the subcommand, returning the process exit status.
    pub(crate) async fn run(self) -> anyhow::Result<u8> {
        match self {
            Command::Deploy(args) => deploy::run(args).await,
            Command::Handlers(args) => handlers::run(args).await,
            Command::Invoke(args) => invoke::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Watch(args) => watch::run(args).await,
        }
    }
}

/// Where the handler components are: the folder the setup command fills.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HandlersDir {
    /// Folder of handler components (`*.wasm`).
    #[arg(
        long = "handlers",
        env = "PYOU_HANDLERS",
        default_value = "handlers/dist"
    )]
    pub(crate) handlers: PathBuf,
}

/// Where the embedded store keeps its file.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DataDir {
    /// Folder of the embedded store.
    #[arg(long = "data", env = "PYOU_DATA", default_value = "data")]
    pub(crate) data: PathBuf,
}

/// Where compiled components are cached.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CacheArgs {
    /// Folder of the compilation cache (default: `cache` in the data folder).
    /// A restart, or a return to a version loaded before, then skips
    /// compiling; corrupt entries are detected and recompiled.
    #[arg(long, env = "PYOU_CACHE_DIR", conflicts_with = "no_cache")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Compile every component afresh; keep nothing on disk.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

impl CacheArgs {
    /// The cache folder to use, if any, given the data folder.
    pub(crate) fn dir(&self, data: &std::path::Path) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        Some(self.cache_dir.clone().unwrap_or_else(|| data.join("cache")))
    }
}

/// Sandbox limits, shared by every subcommand that runs handlers.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LimitArgs {
    /// Wall-clock deadline of one command, in milliseconds.
    #[arg(long, env = "PYOU_DEADLINE_MS", default_value_t = 5000)]
    pub(crate) deadline_ms: u64,
    /// Memory cap of one command's instance, in MiB.
    #[arg(long, env = "PYOU_MEMORY_MIB", default_value_t = 64)]
    pub(crate) memory_mib: usize,
}

impl LimitArgs {
    /// The host configuration these flags describe.
    pub(crate) fn host_config(&self) -> parallel_you_host::HostConfig {
        parallel_you_host::HostConfig {
            limits: parallel_you_host::Limits {
                deadline: std::time::Duration::from_millis(self.deadline_ms.max(1)),
                memory: self.memory_mib.max(1) * 1024 * 1024,
                ..Default::default()
            },
            max_body: 0,
        }
    }
}

/// Logs to stderr, so stdout stays machine-readable.
pub(crate) fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,handler=info",
        1 => "debug,wasmtime=info,cranelift=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
