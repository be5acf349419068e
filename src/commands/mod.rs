//! The subcommands of `pyou`, one module each.

mod bus;
mod deploy;
mod gateway;
mod handlers;
mod host;
mod invoke;
mod serve;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use parallel_you_core::store::Store;
use parallel_you_host::store::{MongoStore, SqliteStore};

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
}

impl Command {
    /// Runs the subcommand, returning the process exit status.
    pub(crate) async fn run(self) -> anyhow::Result<u8> {
        match self {
            Command::Deploy(args) => deploy::run(args).await,
            Command::Handlers(args) => handlers::run(args).await,
            Command::Invoke(args) => invoke::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Host(args) => host::run(args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Watch(args) => watch::run(args).await,
        }
    }
}

/// How long shutdown waits for commands and requests in flight.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Stops watching the handlers folder, then lets the commands in flight
/// finish (up to [`GRACE`]).
pub(crate) async fn stop_host(
    serving: parallel_you_host::host::Serving,
    watching: Option<parallel_you_host::Watching>,
) {
    if let Some(watching) = watching {
        watching.stop().await;
    }
    if !serving.shutdown(GRACE).await {
        eprintln!("warning: some commands were still running after {GRACE:?}");
    }
    eprintln!("pyou stopped");
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

/// What a subcommand that runs handlers needs: the handlers, the store and
/// the sandbox limits.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HostArgs {
    #[command(flatten)]
    pub(crate) handlers: HandlersDir,
    #[command(flatten)]
    pub(crate) data: StoreArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

impl HostArgs {
    /// A host over the embedded store with the handlers loaded; files that
    /// failed to load are reported on stderr.
    pub(crate) async fn start(&self) -> anyhow::Result<std::sync::Arc<parallel_you_host::Host>> {
        use anyhow::Context as _;
        let store = self.data.open().await?;
        let host = std::sync::Arc::new(parallel_you_host::Host::with_cache(
            self.limits.host_config(),
            store,
            self.cache.dir(&self.data.data).as_deref(),
        )?);
        host.load_dir(&self.handlers.handlers)
            .await
            .with_context(|| {
                format!(
                    "loading the handlers in {}",
                    self.handlers.handlers.display()
                )
            })?;
        for failure in host.registry().failures() {
            eprintln!("warning: {failure}");
        }
        Ok(host)
    }
}

/// Whether a serving host follows its handlers folder.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WatchArgs {
    /// Do not watch the handlers folder: serve what it holds at start only.
    /// (By default a `.wasm` file added, replaced or removed there is
    /// loaded, upgraded or unloaded while serving.)
    #[arg(long)]
    pub(crate) no_watch: bool,
}

impl WatchArgs {
    /// Starts watching the host's handlers folder, unless `--no-watch`.
    pub(crate) fn start(
        &self,
        host: &std::sync::Arc<parallel_you_host::Host>,
        args: &HostArgs,
    ) -> anyhow::Result<Option<parallel_you_host::Watching>> {
        if self.no_watch {
            return Ok(None);
        }
        let watching = parallel_you_host::HotLoader::new(host.clone()).watch(
            &args.handlers.handlers,
            parallel_you_host::WatchConfig::default(),
        )?;
        Ok(Some(watching))
    }
}

/// Where the gateway listens, and its TLS files.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ListenArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "PYOU_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// PEM certificate chain: serve HTTPS and WSS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
}

impl ListenArgs {
    /// Binds the listener; returns it with the TLS files, if any.
    pub(crate) fn bind(
        &self,
    ) -> anyhow::Result<(
        std::net::TcpListener,
        Option<parallel_you_gateway::TlsFiles>,
    )> {
        use anyhow::Context as _;
        let listener = std::net::TcpListener::bind(self.listen)
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(parallel_you_gateway::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok((listener, tls))
    }
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
