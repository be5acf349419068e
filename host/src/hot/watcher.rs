//! Watching the handlers folder: debounced file events and periodic
//! rescans, each file brought in step with what serves through a
//! [`HotLoader`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, DebouncedEventKind};
use tokio_util::sync::CancellationToken;

use super::folder::is_component_path;
use super::{HotLoader, HotOutcome};
use crate::runtime::LoadError;

/// How the handlers folder is watched.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// How long a file must be quiet before it is loaded (default 200 ms).
    pub debounce: Duration,
    /// How often the whole folder is compared with what is loaded, in case
    /// a file-system event was missed (default 2 s).
    pub rescan: Duration,
    /// How long a file may stay incomplete before it is reported as
    /// failed (default 10 s).
    pub incomplete_grace: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            debounce: Duration::from_millis(200),
            rescan: Duration::from_secs(2),
            incomplete_grace: Duration::from_secs(10),
        }
    }
}

/// Why a folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {dir}: {reason}")]
pub struct WatchError {
    /// The folder.
    pub dir: PathBuf,
    /// Why.
    pub reason: String,
}

/// A watched folder; watching stops when this is dropped or stopped.
#[derive(Debug)]
pub struct Watching {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Watching {
    /// Stops watching and waits for a load in progress to finish.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl HotLoader {
    /// Watches `dir` (the folder [`crate::Host::load_dir`] loaded) and keeps the
    /// served handlers in step with its `*.wasm` files, as the module docs
    /// describe, until the returned [`Watching`] is stopped or dropped.
    pub fn watch(&self, dir: &Path, config: WatchConfig) -> Result<Watching, WatchError> {
        let fail = |reason: String| WatchError {
            dir: dir.to_owned(),
            reason,
        };
        // Registry entries name files as `dir.join(name)`: events must too,
        // whatever form the watcher reports them in.
        let dir = dir.to_owned();
        let canonical = std::fs::canonicalize(&dir).map_err(|e| fail(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut debouncer = new_debouncer(config.debounce, move |res: DebounceEventResult| {
            let _ = tx.send(res);
        })
        .map_err(|e| fail(e.to_string()))?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| fail(e.to_string()))?;
        let stop = CancellationToken::new();
        let watcher = FolderWatcher {
            loader: self.clone(),
            dir,
            canonical,
            config,
            seen: HashMap::new(),
            incomplete_since: HashMap::new(),
        };
        let task = tokio::spawn(watcher.run(rx, stop.clone(), debouncer));
        Ok(Watching { stop, task })
    }
}

/// Size and modification time of a file (and of its grants file, if any)
/// when it was last loaded or reported: a file whose stamp is unchanged is
/// not looked at again.
type Stamp = (u64, Option<SystemTime>, Option<(u64, Option<SystemTime>)>);

struct FolderWatcher {
    loader: HotLoader,
    dir: PathBuf,
    canonical: PathBuf,
    config: WatchConfig,
    seen: HashMap<PathBuf, Stamp>,
    incomplete_since: HashMap<PathBuf, Instant>,
}

impl FolderWatcher {
    async fn run<D: Send + 'static>(
        mut self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<DebounceEventResult>,
        stop: CancellationToken,
        debouncer: D,
    ) {
        // A first pass catches whatever changed between the folder load
        // and the start of watching.
        self.rescan().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                batch = rx.recv() => match batch {
                    Some(Ok(events)) => {
                        let mut paths: Vec<PathBuf> = events
                            .into_iter()
                            // Still being written: wait for its final event.
                            .filter(|e| e.kind == DebouncedEventKind::Any)
                            .filter_map(|e| self.in_dir(&e.path))
                            .collect();
                        paths.sort();
                        paths.dedup();
                        for path in paths {
                            self.reconcile(&path, true).await;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "file watcher error: rescanning the handlers folder");
                        self.rescan().await;
                    }
                    None => break,
                },
                _ = tokio::time::sleep(self.config.rescan) => self.rescan().await,
            }
        }
        drop(debouncer);
    }

    /// The path as the registry names it (`dir.join(name)`), if it is a
    /// component directly in the watched folder.
    fn in_dir(&self, path: &Path) -> Option<PathBuf> {
        let parent = path.parent()?;
        let same = parent == self.dir
            || parent == self.canonical
            || std::fs::canonicalize(parent).is_ok_and(|p| p == self.canonical);
        let mut path = self.dir.join(path.file_name()?);
        // A grants file stands for its component.
        if path.extension().is_some_and(|e| e == "toml") {
            path = path.with_extension("wasm");
        }
        (same && is_component_path(&path)).then_some(path)
    }

    async fn rescan(&mut self) {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| self.dir.join(e.file_name()))
                .filter(|p| is_component_path(p))
                .collect(),
            Err(err) => {
                tracing::warn!(dir = %self.dir.display(), error = %err, "cannot read the handlers folder");
                return;
            }
        };
        // Files that serve or failed but are gone from the folder.
        let registry = self.loader.host().registry();
        paths.extend(registry.handlers().map(|h| h.file.clone()));
        paths.extend(registry.failures().iter().map(|f| f.file.clone()));
        paths.sort();
        paths.dedup();
        for path in paths {
            self.reconcile(&path, false).await;
        }
    }

    /// Brings one file's handler in step with the file.
    async fn reconcile(&mut self, path: &Path, from_event: bool) {
        let stamp = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {
                let grants = std::fs::metadata(crate::grants::grants_path(path))
                    .ok()
                    .map(|g| (g.len(), g.modified().ok()));
                (m.len(), m.modified().ok(), grants)
            }
            Ok(_) => return,
            Err(_) => {
                self.seen.remove(path);
                self.incomplete_since.remove(path);
                let registry = self.loader.host().registry();
                let known = registry.by_file(path).is_some()
                    || registry.failures().iter().any(|f| f.file == path);
                if known {
                    self.loader.unload_file(path).await;
                }
                return;
            }
        };
        if self.seen.get(path) == Some(&stamp) {
            return;
        }
        // A rescan leaves a file that changed within the debounce period to
        // the event that is on its way.
        if !from_event {
            let fresh = stamp
                .1
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < self.config.debounce);
            if fresh {
                return;
            }
        }
        match self.loader.load_file(path).await {
            HotOutcome::Incomplete(why) => {
                let since = *self
                    .incomplete_since
                    .entry(path.to_owned())
                    .or_insert_with(Instant::now);
                if since.elapsed() >= self.config.incomplete_grace {
                    let err = LoadError {
                        file: path.to_owned(),
                        reason: format!(
                            "the file is incomplete ({why}) and has not changed for {} s",
                            self.config.incomplete_grace.as_secs()
                        ),
                    };
                    self.loader.report_failure(err).await;
                    self.seen.insert(path.to_owned(), stamp);
                    self.incomplete_since.remove(path);
                } else {
                    tracing::debug!(file = %path.display(), %why, "incomplete: retrying");
                }
            }
            _ => {
                self.seen.insert(path.to_owned(), stamp);
                self.incomplete_since.remove(path);
            }
        }
    }
}
