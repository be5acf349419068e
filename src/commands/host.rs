//! `pyou host`: the host alone, consuming its domains' queues on a RabbitMQ
//! broker. Hosts on one broker compete for each domain's commands, so
//! starting another one is how to scale out.

use super::args::event_log::EventLogArgs;
use super::bus::BusArgs;
use super::{shutdown_signal, stop_host, HostArgs, WatchArgs};

/// Arguments of `pyou host`.
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
    pub(crate) otlp: super::args::otlp::OtlpArgs,
}

/// Runs until SIGINT or SIGTERM, then finishes the commands in flight.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let bus = args.bus.connect_broker("host").await?;
    let host = args.host.open().await?;
    let log = args.event_log.start(&host, bus.as_ref()).await?;
    let serving = host.serve(bus).await?;
    // Each component consumes as soon as it is loaded.
    tokio::select! {
        _ = args.host.bring_online(&host) => {}
        _ = shutdown_signal() => {
            stop_host(serving, None).await;
            if let Some(log) = log {
                log.close().await;
            }
            return Ok(0);
        }
    }
    let watching = args.watch.start(&host, &args.host)?;
    let domains: Vec<String> = host
        .registry()
        .handlers()
        .map(|h| h.manifest.domain.clone())
        .collect();
    // One line on stdout, so scripts and tests know it is consuming.
    println!(
        "pyou host consuming {} domains ({})",
        domains.len(),
        domains.join(", ")
    );
    shutdown_signal().await;
    stop_host(serving, watching).await;
    if let Some(log) = log {
        log.close().await;
    }
    Ok(0)
}
