//! `pyou gateway`: the HTTP/WebSocket gateway alone, on a RabbitMQ broker.
//! Its API is the commands bound on the broker (read from the management
//! API), so it follows hosts as they come and go.

use parallel_you_gateway::{Gateway, GatewayConfig};

use super::bus::BusArgs;
use super::{shutdown_signal, ListenArgs, GRACE};

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
    let (listener, tls) = args.listen.bind()?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let commands = gateway.commands().len();
    // One line on stdout, so scripts and tests can find the port.
    println!("pyou gateway serving {commands} commands on {scheme}://{addr} (GET /api lists them)");
    gateway
        .serve(listener, tls, shutdown_signal(), GRACE)
        .await?;
    eprintln!("pyou stopped");
    Ok(0)
}
