//! The subcommands of `pyou`, one module each.

mod handlers;
mod invoke;
mod serve;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use parallel_you_host::store::{MongoStore, SqliteStore, Store};

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
    /// List the handler components in a folder: domain, version, routing keys,
    /// or why a file failed to load.
    Handlers(handlers::Args),
    /// Run one command in-process against the store and print every
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

/// Where documents are kept: the embedded store in a folder, or MongoDB.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// Folder of the embedded store.
    #[arg(long = "data", env = "PYOU_DATA", default_value = "data")]
    pub(crate) data: PathBuf,
    /// The store: `sqlite` (the embedded store in --data) or a MongoDB URI
    /// (`mongodb://…`, `mongodb+srv://…`; its path names the database,
    /// default `pyou`). Without it: MongoDB at `MONGO_URI` when
    /// `PARALLEL_YOU_REPO=mongo`, else sqlite.
    #[arg(long = "store", env = "PYOU_STORE", value_name = "sqlite|URI")]
    pub(crate) store: Option<String>,
}

/// The store a command line selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreChoice {
    /// The embedded SQLite store in the data folder.
    Sqlite,
    /// MongoDB at this URI.
    Mongo(String),
}

impl StoreArgs {
    /// Which store the flags and the environment select.
    pub(crate) fn choice(&self) -> anyhow::Result<StoreChoice> {
        store_choice(
            self.store.as_deref(),
            std::env::var("PARALLEL_YOU_REPO").ok().as_deref(),
            std::env::var("MONGO_URI").ok(),
        )
    }

    /// Opens (or connects to) the selected store.
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self.choice()? {
            StoreChoice::Sqlite => Arc::new(SqliteStore::open_dir(&self.data)?),
            StoreChoice::Mongo(uri) => Arc::new(
                MongoStore::connect(&uri, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("the MongoDB store: {e}"))?,
            ),
        })
    }
}

/// `--store` wins; then `PARALLEL_YOU_REPO` (`mongo` takes `MONGO_URI`);
/// then the embedded store.
pub(crate) fn store_choice(
    flag: Option<&str>,
    repo: Option<&str>,
    mongo_uri: Option<String>,
) -> anyhow::Result<StoreChoice> {
    let is_mongo_uri = |s: &str| s.starts_with("mongodb://") || s.starts_with("mongodb+srv://");
    match flag.map(str::trim).filter(|s| !s.is_empty()) {
        Some("sqlite") => return Ok(StoreChoice::Sqlite),
        Some(uri) if is_mongo_uri(uri) => return Ok(StoreChoice::Mongo(uri.to_owned())),
        Some(other) => anyhow::bail!(
            "--store {other:?}: give `sqlite` or a MongoDB URI (mongodb://… or mongodb+srv://…)"
        ),
        None => {}
    }
    match repo.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("sqlite") => Ok(StoreChoice::Sqlite),
        Some("mongo") => match mongo_uri.filter(|u| is_mongo_uri(u.trim())) {
            Some(uri) => Ok(StoreChoice::Mongo(uri.trim().to_owned())),
            None => anyhow::bail!(
                "PARALLEL_YOU_REPO=mongo needs MONGO_URI set to a MongoDB URI (mongodb://…)"
            ),
        },
        Some(other) => {
            anyhow::bail!("PARALLEL_YOU_REPO={other:?}: use `mongo`, `sqlite`, or leave it unset")
        }
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

    use super::{store_choice, StoreChoice};

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn store_is_chosen_by_flag_then_environment() {
        let uri = "mongodb://127.0.0.1:27017/app";
        let mongo = || StoreChoice::Mongo(uri.to_owned());
        let pick =
            |flag, repo, env: Option<&str>| store_choice(flag, repo, env.map(str::to_owned)).ok();
        assert_eq!(pick(None, None, Some(uri)), Some(StoreChoice::Sqlite));
        assert_eq!(pick(Some(uri), None, None), Some(mongo()));
        assert_eq!(pick(None, Some("mongo"), Some(uri)), Some(mongo()));
        assert_eq!(
            pick(Some("sqlite"), Some("mongo"), Some(uri)),
            Some(StoreChoice::Sqlite)
        );
        assert_eq!(
            pick(None, Some("mongo"), None),
            None,
            "mongo without MONGO_URI"
        );
        assert_eq!(pick(Some("postgres://x"), None, None), None);
        assert_eq!(pick(None, Some("redis"), None), None);
    }
}
