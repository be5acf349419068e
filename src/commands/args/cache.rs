//! The compilation cache of handler components.

use std::path::PathBuf;

/// Where compiled components are cached.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CacheArgs {
    /// Folder of the compilation cache (default: `cache` in the data folder).
    /// A restart, or a return to a version loaded before, then skips
    /// compiling; corrupt entries are detected and recompiled.
    #[arg(long, env = "PYOU_CACHE_DIR", conflicts_with = "no_cache")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Compile every component afresh; keep nothing on disk.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

impl CacheArgs {
    /// The cache folder to use, if any, given the data folder.
    pub(crate) fn dir(&self, data: &std::path::Path) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        Some(self.cache_dir.clone().unwrap_or_else(|| data.join("cache")))
    }
}
