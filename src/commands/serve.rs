//! `pyou serve`: the host and the gateway in one process, on embedded
//! defaults (in-process bus, SQLite store, the default handlers folder), or
//! on RabbitMQ with `--bus`.

use parallel_you_gateway::{Gateway, GatewayConfig, SessionStore};

use super::args::event_log::EventLogArgs;
use super::bus::BusArgs;
use super::{stop_host, AuthArgs, HostArgs, ListenArgs, WatchArgs};

/// Arguments of `pyou serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    watch: WatchArgs,
    #[command(flatten)]
    bus: BusArgs,
    #[command(flatten)]
    event_log: EventLogArgs,
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    pub(crate) otlp: super::args::otlp::OtlpArgs,
    /// Listen on a non-loopback address without authentication anyway.
    #[arg(long)]
    insecure_no_auth: bool,
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
///
/// Listens first, then brings the components online one by one (a cold
/// compile can take tens of seconds), and prints its one line on stdout
/// (for scripts and tests) once all of them are loaded.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let auth = args.auth.auth()?;
    if !auth.is_on() && !args.listen.listen.ip().is_loopback() && !args.insecure_no_auth {
        anyhow::bail!(
            "refusing to listen on {} without authentication: anyone who can reach it could read and send every session's commands. Use --auth jwt (see README, Security), listen on 127.0.0.1, or pass --insecure-no-auth",
            args.listen.listen
        );
    }
    let host = args.host.open().await?;
    let bus = args.bus.connect("serve").await?;
    let log = args.event_log.start(&host, bus.as_ref()).await?;
    let serving = host.serve(bus.clone()).await?;
    let config = args.listen.config(GatewayConfig {
        auth,
        // Session owners live in the host's store: they survive a restart.
        session_store: Some(SessionStore(host.store().clone())),
        history: args.event_log.history(host.store().clone()).await?,
        ..GatewayConfig::default()
    });
    let gateway = Gateway::start(bus, Some(host.clone()), config).await?;
    let (url, mut server) = args.listen.spawn(&gateway)?;
    eprintln!(
        "pyou: listening on {url}; loading {}",
        args.host.handlers.handlers.display()
    );
    let stopped_early = tokio::select! {
        _ = args.host.bring_online(&host) => None,
        ended = &mut server => Some(ended),
    };
    let watching = match stopped_early {
        Some(ended) => {
            stop_host(serving, None).await;
            close(log).await;
            ended??;
            return Ok(0);
        }
        None => args.watch.start(&host, &args.host)?,
    };
    let commands = gateway.current_commands().await.len();
    println!("pyou serving {commands} commands on {url} (GET /api lists them)");
    let ended = server.await;
    stop_host(serving, watching).await;
    close(log).await;
    ended??;
    Ok(0)
}

/// Writes out what the event log still queues.
async fn close(log: Option<std::sync::Arc<parallel_you_host::event_log::EventLog>>) {
    if let Some(log) = log {
        log.close().await;
    }
}
