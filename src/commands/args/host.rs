//! What a subcommand that runs handlers needs, and how it starts a host.

use super::cache::CacheArgs;
use super::handlers::HandlersDir;
use super::limits::LimitArgs;
use super::store::StoreArgs;

use std::sync::Arc;

use parallel_you_core::names;
use parallel_you_host::hot::{component_files, Progress};
use parallel_you_host::{Host, HotLoader, HotOutcome};

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
    /// A host over the store, with no handler loaded yet.
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<Host>> {
        let store = self.data.open().await?;
        Ok(Arc::new(Host::with_cache(
            self.limits.host_config(),
            store,
            self.cache.dir(&self.data.data).as_deref(),
        )?))
    }

    /// Loads the handlers folder into a host that already serves, smallest
    /// component first, each serving as soon as it is ready; one line per
    /// component on stderr (and one when a compile is slow). Returns how
    /// many components serve.
    pub(crate) async fn bring_online(&self, host: &Arc<Host>) -> usize {
        let loader = HotLoader::new(host.clone());
        loader
            .bring_online(&self.handlers.handlers, &mut report)
            .await;
        host.registry().handlers().count()
    }

    /// A host with only the component that serves `routing_key` loaded
    /// (all of them when none does): the file named after its domain is
    /// tried first, then the others, smallest first.
    pub(crate) async fn start_for(&self, routing_key: &str) -> anyhow::Result<Arc<Host>> {
        self.start_until(names::domain_of(routing_key), |host| {
            host.registry().route(routing_key).is_some()
        })
        .await
    }

    /// A host with only the component of `domain` loaded (a handler or a
    /// reactor), found as [`HostArgs::start_for`] finds a key's.
    pub(crate) async fn start_for_domain(&self, domain: &str) -> anyhow::Result<Arc<Host>> {
        self.start_until(domain, |host| {
            host.registry()
                .handlers()
                .any(|h| h.manifest.domain == domain)
        })
        .await
    }

    /// Loads `<domain>.wasm`, then the other files smallest first, until
    /// `done` says the host has what it needs.
    async fn start_until(
        &self,
        domain: &str,
        done: impl Fn(&Host) -> bool,
    ) -> anyhow::Result<Arc<Host>> {
        use anyhow::Context as _;
        let host = self.open().await?;
        let dir = &self.handlers.handlers;
        let mut files = component_files(dir)
            .with_context(|| format!("reading the handlers folder {}", dir.display()))?;
        let named = format!("{domain}.wasm");
        // A stable sort keeps the others smallest first.
        files.sort_by_key(|(path, _)| path.file_name().is_none_or(|n| *n != *named));
        let loader = HotLoader::new(host.clone());
        for (file, _) in files {
            warn_unloaded(&file, &loader.load_file(&file).await);
            if done(&host) {
                break;
            }
        }
        Ok(host)
    }
}

/// One line of [`HostArgs::bring_online`]'s progress on stderr.
fn report(step: Progress<'_>) {
    let name = |file: &std::path::Path| {
        file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    match step {
        Progress::Slow { file, bytes } => {
            eprintln!("pyou: compiling {} ({})…", name(file), size(bytes));
        }
        Progress::Done {
            file,
            outcome,
            elapsed,
        } => match outcome {
            HotOutcome::Loaded { domain } | HotOutcome::Upgraded { domain } => eprintln!(
                "pyou: {} serves {domain} ({:.1} s)",
                name(file),
                elapsed.as_secs_f64()
            ),
            other => warn_unloaded(file, other),
        },
    }
}

/// A warning on stderr for a file that did not load.
fn warn_unloaded(file: &std::path::Path, outcome: &HotOutcome) {
    match outcome {
        HotOutcome::Failed(reason) => eprintln!("warning: {}: {reason}", file.display()),
        HotOutcome::Incomplete(why) => {
            eprintln!(
                "warning: {}: not loaded, incomplete ({why})",
                file.display()
            )
        }
        _ => {}
    }
}

/// A file size for people: `137 KiB`, `18.4 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}
