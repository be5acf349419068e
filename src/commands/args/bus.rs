//! Which bus a subcommand runs on: in-process, or RabbitMQ.

use std::sync::Arc;

use anyhow::Context as _;

use super::credentials::read_url_file;
use parallel_you_core::{Bus, InProcessBus};
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};

/// Bus selection, shared by `serve`, `host` and `gateway`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BusArgs {
    /// RabbitMQ broker, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`
    /// (`RABBITMQ_URL` also works). Without it, one process runs everything
    /// on the in-process bus. With a password, prefer the environment or
    /// --bus-file: a command line is visible to every user of the machine.
    #[arg(long = "bus", env = "PYOU_BUS")]
    pub(crate) bus: Option<String>,
    /// A file holding the broker URL (credentials included), instead of
    /// --bus.
    #[arg(
        long = "bus-file",
        env = "PYOU_BUS_FILE",
        value_name = "FILE",
        conflicts_with = "bus"
    )]
    pub(crate) bus_file: Option<std::path::PathBuf>,
    /// RabbitMQ management API, read for the bound commands (default
    /// `http://<broker host>:15672`, with the broker URL's credentials).
    #[arg(long, env = "PYOU_MANAGEMENT_URL")]
    pub(crate) management_url: Option<String>,
    /// Unacknowledged commands a host holds per domain at most.
    #[arg(long, env = "PYOU_PREFETCH", default_value_t = 256)]
    pub(crate) prefetch: u16,
}

impl BusArgs {
    /// The broker URL, from `--bus`, `PYOU_BUS`, `--bus-file`,
    /// `PYOU_BUS_FILE` or `RABBITMQ_URL`.
    pub(crate) fn url(&self) -> anyhow::Result<Option<String>> {
        if let Some(file) = &self.bus_file {
            return read_url_file(file, "--bus-file").map(Some);
        }
        Ok(self
            .bus
            .clone()
            .or_else(|| std::env::var("RABBITMQ_URL").ok())
            .filter(|url| !url.is_empty()))
    }

    /// Connects to the selected bus. `role` names the process in the
    /// broker's connection list.
    pub(crate) async fn connect(&self, role: &str) -> anyhow::Result<Arc<dyn Bus>> {
        let Some(url) = self.url()? else {
            return Ok(Arc::new(InProcessBus::new()));
        };
        let mut config = AmqpConfig::new(url);
        config.management_url = self.management_url.clone();
        config.prefetch = self.prefetch.max(1);
        config.connection_name = format!("pyou {role} (pid {})", std::process::id());
        // A gateway only sends commands and reads events: the dead-letter
        // topology is the hosts' (and its user may not touch it).
        config.declares_dead_letters = role != "gateway";
        let bus = AmqpBus::connect(config)
            .await
            .context("connecting to RabbitMQ (--bus)")?;
        Ok(Arc::new(bus))
    }

    /// Connects to RabbitMQ; `role` only makes sense with a broker.
    pub(crate) async fn connect_broker(&self, role: &str) -> anyhow::Result<Arc<dyn Bus>> {
        if self.url()?.is_none() {
            anyhow::bail!(
                "`pyou {role}` shares a RabbitMQ broker with other processes: give it \
                 --bus amqp://… (or PYOU_BUS / RABBITMQ_URL); to run everything in one \
                 process, use `pyou serve`"
            );
        }
        self.connect(role).await
    }
}
