//! `pyou serve`: the host and the gateway in one process, on embedded
//! defaults (in-process bus, SQLite store unless `--store` names MongoDB,
//! the default handlers folder).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parallel_you_gateway::{Gateway, GatewayConfig, TlsFiles};
use parallel_you_host::{Bus, Host, InProcessBus};

use super::{HandlersDir, LimitArgs, StoreArgs};

/// How long shutdown waits for commands and requests in flight.
const GRACE: Duration = Duration::from_secs(10);

/// Arguments of `pyou serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    handlers: HandlersDir,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "PYOU_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PEM certificate chain: serve HTTPS and WSS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let store = args.store.open().await?;
    let host = Arc::new(Host::new(args.limits.host_config(), store)?);
    host.load_dir(&args.handlers.handlers)
        .await
        .with_context(|| "loading the handlers")?;
    for failure in host.registry().failures() {
        eprintln!("warning: {failure}");
    }
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await?;
    let gateway = Gateway::start(bus, Some(host.clone()), GatewayConfig::default()).await?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let commands = gateway.commands().len();
    // One line on stdout, so scripts and tests can find the port.
    println!("pyou serving {commands} commands on {scheme}://{addr} (GET /api lists them)");
    gateway
        .serve(listener, tls, shutdown_signal(), GRACE)
        .await?;
    let finished = serving.shutdown(GRACE).await;
    if !finished {
        eprintln!("warning: some commands were still running after {GRACE:?}");
    }
    eprintln!("pyou stopped");
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
