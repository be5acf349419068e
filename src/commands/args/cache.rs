//! The compilation cache of handler components.

use std::path::PathBuf;

/// Where compiled components are cached.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CacheArgs {
    /// Folder of the compilation cache (default: the user's, shared by every
    /// data folder: `$XDG_CACHE_HOME/parallel-you`, else
    /// `~/.cache/parallel-you`; `cache` in the data folder without a home).
    /// A restart, a new data folder, or a return to a version loaded before
    /// then skips compiling; corrupt entries are detected and recompiled.
    // No `conflicts_with`: --no-cache must win over PYOU_CACHE_DIR in the
    // environment, which clap would count as the flag given.
    #[arg(long, env = "PYOU_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Compile every component afresh; keep nothing on disk (wins over
    /// --cache-dir and PYOU_CACHE_DIR).
    #[arg(long)]
    pub(crate) no_cache: bool,
}

impl CacheArgs {
    /// The cache folder to use, if any, given the data folder.
    pub(crate) fn dir(&self, data: &std::path::Path) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        Some(
            self.cache_dir
                .clone()
                .or_else(user_cache_dir)
                .unwrap_or_else(|| data.join("cache")),
        )
    }
}

/// The user's cache folder for Parallel You, as the XDG base directory
/// rules place it (wasmtime's own cache lives beside it).
fn user_cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|base| base.join("parallel-you"))
}
