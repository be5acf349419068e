//! `pyou serve`: the host and the gateway in one process, on embedded
//! defaults (in-process bus, SQLite store, the default handlers folder), or
//! on RabbitMQ with `--bus`.

use parallel_you_gateway::{Gateway, GatewayConfig};

use super::bus::BusArgs;
use super::{stop_host, HostArgs, ListenArgs, WatchArgs};

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
    listen: ListenArgs,
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let host = args.host.start().await?;
    let bus = args.bus.connect("serve").await?;
    let serving = host.serve(bus.clone()).await?;
    let watching = args.watch.start(&host, &args.host)?;
    let gateway = Gateway::start(bus, Some(host.clone()), GatewayConfig::default()).await?;
    args.listen.serve(&gateway, "pyou serving").await?;
    stop_host(serving, watching).await;
    Ok(0)
}
