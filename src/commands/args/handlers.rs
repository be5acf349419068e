//! The handlers folder, and whether a serving host follows it.

use std::path::PathBuf;

use super::host::HostArgs;

/// Where the handler components are: the folder the setup command fills.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HandlersDir {
    /// Folder of handler components (`*.wasm`).
    #[arg(
        long = "handlers",
        env = "PYOU_HANDLERS",
        default_value = "handlers/dist"
    )]
    pub(crate) handlers: PathBuf,
}

/// Whether a serving host follows its handlers folder.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WatchArgs {
    /// Do not watch the handlers folder: serve what it holds at start only.
    /// (By default a `.wasm` file added, replaced or removed there is
    /// loaded, upgraded or unloaded while serving.)
    #[arg(long)]
    pub(crate) no_watch: bool,
}

impl WatchArgs {
    /// Starts watching the host's handlers folder, unless `--no-watch`.
    pub(crate) fn start(
        &self,
        host: &std::sync::Arc<parallel_you_host::Host>,
        args: &HostArgs,
    ) -> anyhow::Result<Option<parallel_you_host::Watching>> {
        if self.no_watch {
            return Ok(None);
        }
        let watching = parallel_you_host::HotLoader::new(host.clone()).watch(
            &args.handlers.handlers,
            parallel_you_host::WatchConfig::default(),
        )?;
        Ok(Some(watching))
    }
}
