//! `pyou gateway`: the HTTP/WebSocket gateway alone, on a RabbitMQ broker.
//! Its API is the commands bound on the broker (read from the management
//! API), so it follows hosts as they come and go.

use parallel_you_gateway::{Gateway, GatewayConfig, SessionStore};

use super::args::store::StoreArgs;
use super::bus::BusArgs;
use super::{AuthArgs, ListenArgs};

/// Arguments of `pyou gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    bus: BusArgs,
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    pub(crate) otlp: super::args::otlp::OtlpArgs,
    /// Where the owners of sessions are kept with `--auth jwt` (opened
    /// only then), so they survive a restart: the hosts' store.
    #[command(flatten)]
    store: StoreArgs,
    /// How long a query waits for a host's answer before it is a 504.
    #[arg(long, env = "PYOU_QUERY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    query_timeout: std::time::Duration,
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let auth = args.auth.auth()?;
    let session_store = match auth.is_on() {
        true => Some(SessionStore(args.store.open().await?)),
        false => None,
    };
    let bus = args.bus.connect_broker("gateway").await?;
    let config = args.listen.config(GatewayConfig {
        query_timeout: args.query_timeout.max(std::time::Duration::from_millis(1)),
        auth,
        session_store,
        ..GatewayConfig::default()
    });
    let gateway = Gateway::start(bus, None, config).await?;
    args.listen.serve(&gateway, "pyou gateway serving").await?;
    eprintln!("pyou stopped");
    Ok(0)
}
