//! Where the gateway listens, and its TLS files.

use std::path::PathBuf;

use crate::commands::shutdown::{shutdown_signal, GRACE};

/// Where the gateway listens, and its TLS files.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ListenArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "PYOU_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// PEM certificate chain: serve HTTPS and WSS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Commands and queries per second one client (its token subject, else
    /// its IP address) may send
    /// over HTTP, in bursts of twice that; 429 past it. 0: unlimited.
    #[arg(long, env = "PYOU_RATE_LIMIT", default_value_t = 10_000)]
    pub(crate) rate_limit: u32,
}

impl ListenArgs {
    /// `config` with the limits given on the command line.
    pub(crate) fn config(
        &self,
        config: parallel_you_gateway::GatewayConfig,
    ) -> parallel_you_gateway::GatewayConfig {
        let rate_limit = (self.rate_limit > 0).then(|| parallel_you_gateway::Rate {
            per_second: self.rate_limit,
            burst: self.rate_limit.saturating_mul(2),
        });
        parallel_you_gateway::GatewayConfig {
            rate_limit,
            ..config
        }
    }

    /// Binds the listener; returns it with the TLS files, if any.
    fn bind(
        &self,
    ) -> anyhow::Result<(
        std::net::TcpListener,
        Option<parallel_you_gateway::TlsFiles>,
    )> {
        use anyhow::Context as _;
        let listener = std::net::TcpListener::bind(self.listen)
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(parallel_you_gateway::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok((listener, tls))
    }

    /// Binds, and serves `gateway` in a task of its own until SIGINT or
    /// SIGTERM; returns the URL it serves at and the task.
    pub(crate) fn spawn(
        &self,
        gateway: &std::sync::Arc<parallel_you_gateway::Gateway>,
    ) -> anyhow::Result<(String, tokio::task::JoinHandle<anyhow::Result<()>>)> {
        let (listener, tls) = self.bind()?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let gateway = gateway.clone();
        let task = tokio::spawn(async move {
            gateway
                .serve(listener, tls, shutdown_signal(), GRACE)
                .await?;
            Ok(())
        });
        Ok((format!("{scheme}://{addr}"), task))
    }

    /// Binds, prints one line on stdout (so scripts and tests can find the
    /// port), then serves `gateway` until SIGINT or SIGTERM. `serving` starts
    /// the line: it says which process this is.
    pub(crate) async fn serve(
        &self,
        gateway: &std::sync::Arc<parallel_you_gateway::Gateway>,
        serving: &str,
    ) -> anyhow::Result<()> {
        let (listener, tls) = self.bind()?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let commands = gateway.commands().len();
        println!("{serving} {commands} commands on {scheme}://{addr} (GET /api lists them)");
        gateway
            .serve(listener, tls, shutdown_signal(), GRACE)
            .await?;
        Ok(())
    }
}
