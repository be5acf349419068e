//! The on-disk cache of compiled components, and why its entries are
//! checked before wasmtime may read them.
//!
//! Compilation goes through wasmtime's own compilation cache (its `cache`
//! feature): an entry is keyed by a SHA-256 of the engine's compilation
//! settings, wasmtime's version and the component's bytes, so a changed
//! engine configuration or a changed component simply misses, and an entry
//! written by another wasmtime version is refused by wasmtime's own
//! compatibility check and recompiled.
//!
//! What wasmtime does not check is the entry's integrity: a cache file is
//! zstd-compressed machine code without a checksum, and a flipped byte could
//! decompress into different code that would then run. So this module
//! records a SHA-256 of every entry it saw wasmtime write (under `sums/`,
//! next to wasmtime's own `wasmtime/` folder), and before each compile it
//! deletes every entry it has no record of and every entry of this
//! component whose bytes no longer match the record. A deleted entry is a
//! miss: the component is compiled again and the entry rewritten. Compiles
//! are serialised by a lock, so the files an entry adds are known.
//!
//! Several processes may share a cache folder (`pyou serve`, `pyou deploy`
//! and `pyou handlers` use the same default): a compile holds an exclusive
//! lock on `<dir>/lock` as well, so the entries written during it are its
//! own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Why the compilation cache could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the compilation cache in {dir}: {reason}")]
pub struct CacheError {
    /// The cache folder.
    pub dir: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// A cache folder with integrity records; see the module docs.
pub(crate) struct CompileCache {
    /// Wasmtime's own cache folder (`<dir>/wasmtime`).
    wasmtime_dir: PathBuf,
    /// Our records (`<dir>/sums`), outside wasmtime's folder: its cleanup
    /// deletes files it does not recognise.
    sums_dir: PathBuf,
    /// Wasmtime's handle, for its hit and miss counters.
    cache: wasmtime::Cache,
    /// Held for the whole check, compile and record sequence, by threads of
    /// this process ...
    lock: Mutex<()>,
    /// ... and, through an exclusive file lock, by other processes.
    lock_file: std::fs::File,
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.wasmtime_dir)
            .finish_non_exhaustive()
    }
}

/// How one compilation went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompileInfo {
    /// Whether the compiled code came from the cache.
    pub(crate) cached: bool,
}

/// Size and modification time: enough to see that wasmtime (re)wrote a file.
type Stamp = (u64, Option<SystemTime>);

impl CompileCache {
    /// Opens (creating it if needed) the cache folder `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, CacheError> {
        let fail = |reason: String| CacheError {
            dir: dir.to_owned(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        // Wasmtime wants an absolute path.
        let dir = std::fs::canonicalize(dir).map_err(|e| fail(e.to_string()))?;
        let wasmtime_dir = dir.join("wasmtime");
        let sums_dir = dir.join("sums");
        std::fs::create_dir_all(&sums_dir).map_err(|e| fail(e.to_string()))?;
        let mut config = wasmtime::CacheConfig::new();
        config
            .with_directory(&wasmtime_dir)
            // Wasmtime recompresses popular entries in the background; that
            // rewrites them and would void their records.
            .with_optimized_compression_usage_counter_threshold(u64::MAX);
        let cache = wasmtime::Cache::new(config).map_err(|e| fail(format!("{e:#}")))?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| fail(e.to_string()))?;
        Ok(CompileCache {
            wasmtime_dir,
            sums_dir,
            cache,
            lock: Mutex::new(()),
            lock_file,
        })
    }

    /// The handle to put in the engine's `Config`.
    pub(crate) fn wasmtime_cache(&self) -> wasmtime::Cache {
        self.cache.clone()
    }

    /// Runs `compile` (blocking) for a component whose bytes hash to
    /// `content` (hex SHA-256), with untrusted entries removed first and the
    /// entries it writes recorded after.
    pub(crate) fn compile<T>(
        &self,
        content: &str,
        compile: impl FnOnce() -> T,
    ) -> (T, CompileInfo) {
        let _guard = self.lock.lock();
        // Without the file lock (a file system that refuses it) another
        // process may interleave: its entries then lack records and are
        // recompiled later, never trusted.
        let locked = self.lock_file.lock().is_ok();
        self.drop_untrusted(content);
        let before = self.entries();
        let hits = self.cache.cache_hits();
        let out = compile();
        let cached = self.cache.cache_hits() > hits;
        for (path, stamp) in self.entries() {
            if before.get(&path) != Some(&stamp) {
                self.record(&path, content);
            }
        }
        if locked {
            let _ = self.lock_file.unlock();
        }
        (out, CompileInfo { cached })
    }

    /// Every entry file wasmtime has written: `modules/<compiler>/<hash>`,
    /// without the `.stats` and `.wip-*` files around them.
    fn entries(&self) -> BTreeMap<PathBuf, Stamp> {
        let mut out = BTreeMap::new();
        let Ok(compilers) = std::fs::read_dir(self.wasmtime_dir.join("modules")) else {
            return out;
        };
        for compiler in compilers.flatten() {
            let Ok(files) = std::fs::read_dir(compiler.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_some() {
                    continue;
                }
                if let Ok(meta) = file.metadata() {
                    if meta.is_file() {
                        out.insert(path, (meta.len(), meta.modified().ok()));
                    }
                }
            }
        }
        out
    }

    /// Where the record of an entry file lives.
    fn record_path(&self, entry: &Path) -> Option<PathBuf> {
        let name = entry.file_name()?;
        let compiler = entry.parent()?.file_name()?;
        Some(self.sums_dir.join(compiler).join(name))
    }

    fn record(&self, entry: &Path, content: &str) {
        let (Some(record), Some(sum)) = (self.record_path(entry), file_sha256(entry)) else {
            return;
        };
        let text = format!("{sum} {content}\n");
        let written = record
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&record, text));
        if let Err(err) = written {
            // Without a record the entry is deleted before the next compile:
            // a cost, not a risk.
            tracing::warn!(file = %record.display(), error = %err, "could not record a cache entry");
        }
    }

    /// Deletes entries with no record, and entries of `content` whose bytes
    /// differ from their record.
    fn drop_untrusted(&self, content: &str) {
        for entry in self.entries().into_keys() {
            let record = self
                .record_path(&entry)
                .and_then(|p| std::fs::read_to_string(p).ok());
            let keep = match record.as_deref().and_then(|r| r.trim().split_once(' ')) {
                None => false,
                Some((_, of)) if of != content => true,
                Some((sum, _)) => file_sha256(&entry).as_deref() == Some(sum),
            };
            if !keep {
                tracing::warn!(file = %entry.display(), "compilation cache entry not on record or corrupt: deleting it, the component is compiled again");
                if let Err(err) = std::fs::remove_file(&entry) {
                    tracing::warn!(file = %entry.display(), error = %err, "could not delete a cache entry");
                }
                if let Some(record) = self.record_path(&entry) {
                    let _ = std::fs::remove_file(record);
                }
            }
        }
    }
}

/// Hex SHA-256 of bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn file_sha256(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| sha256_hex(&b))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
