//! What a subcommand that runs handlers needs, and how it starts a host.

use super::cache::CacheArgs;
use super::handlers::HandlersDir;
use super::limits::LimitArgs;
use super::store::StoreArgs;

/// What a subcommand that runs handlers needs: the handlers, the store and
/// the sandbox limits.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HostArgs {
    #[command(flatten)]
    pub(crate) handlers: HandlersDir,
    #[command(flatten)]
    pub(crate) data: StoreArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

impl HostArgs {
    /// A host over the embedded store with the handlers loaded; files that
    /// failed to load are reported on stderr.
    pub(crate) async fn start(&self) -> anyhow::Result<std::sync::Arc<parallel_you_host::Host>> {
        use anyhow::Context as _;
        let store = self.data.open().await?;
        let host = std::sync::Arc::new(parallel_you_host::Host::with_cache(
            self.limits.host_config(),
            store,
            self.cache.dir(&self.data.data).as_deref(),
        )?);
        host.load_dir(&self.handlers.handlers)
            .await
            .with_context(|| {
                format!(
                    "loading the handlers in {}",
                    self.handlers.handlers.display()
                )
            })?;
        for failure in host.registry().failures() {
            eprintln!("warning: {failure}");
        }
        Ok(host)
    }
}
