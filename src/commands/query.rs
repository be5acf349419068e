//! `pyou query`: one reactor query, in-process against the store, or with
//! `--bus amqp://…` asked on the broker of a `pyou host` that serves the
//! reactor.

use anyhow::Context as _;
use parallel_you_core::Bus as _;
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};

use super::{HostArgs, EXIT_FAILURE};

/// Arguments of `pyou query`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou query effort by_saga '{\"id\":\"s1\"}'\n  \
    pyou query tally counts\n  \
    pyou query tally counts --bus amqp://guest:guest@127.0.0.1:5672/%2f")]
pub(crate) struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// Ask a host serving the reactor on this RabbitMQ broker instead of
    /// running the query here.
    #[arg(long = "bus", env = "PYOU_BUS")]
    bus: Option<String>,
    /// How long to wait for a host's answer (with `--bus`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// The reactor's domain, e.g. `effort`.
    domain: String,
    /// The query's name, e.g. `by_saga`.
    name: String,
    /// Its parameters, a JSON object (default `{}`).
    #[arg(default_value = "{}")]
    params: String,
}

/// Prints the answer's JSON, or the error body on stderr (exit 1).
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let answered = match args.bus.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            let mut config = AmqpConfig::new(url);
            config.connection_name = format!("pyou query (pid {})", std::process::id());
            let bus = AmqpBus::connect(config)
                .await
                .context("connecting to RabbitMQ (--bus)")?;
            let answered = bus
                .ask(&args.domain, &args.name, &args.params, args.timeout)
                .await;
            bus.close().await;
            answered
        }
        None => {
            let host = args.host.start_for_domain(&args.domain).await?;
            host.query(&args.domain, &args.name, &args.params).await
        }
    };
    match answered {
        Ok(answer) => {
            println!("{answer}");
            Ok(0)
        }
        Err(err) => {
            eprintln!("{}", serde_json::to_string(&err)?);
            Ok(EXIT_FAILURE)
        }
    }
}
