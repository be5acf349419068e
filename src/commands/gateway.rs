//! `pyou gateway`: the HTTP/WebSocket gateway alone, on a RabbitMQ broker.
//! Its API is the commands bound on the broker (read from the management
//! API), so it follows hosts as they come and go.

use parallel_you_gateway::{Gateway, GatewayConfig};

use super::bus::BusArgs;
use super::ListenArgs;

/// Arguments of `pyou gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    bus: BusArgs,
    #[command(flatten)]
    listen: ListenArgs,
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let bus = args.bus.connect_broker("gateway").await?;
    let gateway = Gateway::start(bus, None, GatewayConfig::default()).await?;
    args.listen.serve(&gateway, "pyou gateway serving").await?;
    eprintln!("pyou stopped");
    Ok(0)
}
