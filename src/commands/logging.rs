//! Where `pyou` logs, and how much; and, with `--otlp-endpoint`, where its
//! spans are exported.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use super::otlp::Exporter;

/// Logs to stderr, so stdout stays machine-readable; exports spans too
/// when `exporter` is given (its own filter: the level of the log lines
/// leaves the spans alone).
pub(crate) fn init_tracing(verbose: u8, exporter: Option<&Exporter>) {
    let default = match verbose {
        0 => "warn,handler=info",
        1 => "debug,wasmtime=info,cranelift=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let Some(exporter) = exporter else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(exporter.layer())
        .init();
}
