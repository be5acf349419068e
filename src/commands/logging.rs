//! Where `pyou` logs, and how much.

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
