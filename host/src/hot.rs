//! Hot loading: a watched handlers folder, where a new `.wasm` starts
//! serving, a changed one upgrades, a broken one is reported while the old
//! version keeps serving, and a removed one stops serving, all without a
//! restart and without failing a command.
//!
//! Each change is published as an event of the reserved `handler` domain:
//!
//! | event | body |
//! |---|---|
//! | `handler.loaded` | `{file, domain, version, sha256, routing_keys, load_ms, from_cache}` |
//! | `handler.upgraded` | `{file, domain, old: {version, sha256}, new: {version, sha256}, routing_keys, added_keys, removed_keys, load_ms, from_cache}` |
//! | `handler.load_failed` | `{file, reason, serving: {domain, version, sha256} or null}` |
//! | `handler.unloaded` | `{file, domain, version, sha256, routing_keys}` |
//!
//! A handler's *version* is its manifest's `version` together with the
//! SHA-256 of its file (`sha256`): a rebuild that keeps the manifest version
//! is still a new version.
//!
//! Writers that take several steps (`cp`, editors) are tolerated in two
//! ways: the watcher acts on a file only once it has been quiet for the
//! debounce period, and a file that is visibly incomplete (empty, or a
//! section running past its end) is not reported: it is retried until it
//! is complete, or reported once it has stayed incomplete for
//! [`WatchConfig::incomplete_grace`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, DebouncedEventKind};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::host::Host;
use crate::runtime::{LoadError, LoadedHandler};
use parallel_you_core::envelope::Envelope;

/// Routing key of the event published when a new file starts serving.
pub const LOADED: &str = "handler.loaded";
/// Routing key of the event published when a file's new version replaced its old one.
pub const UPGRADED: &str = "handler.upgraded";
/// Routing key of the event published when a file could not be loaded.
pub const LOAD_FAILED: &str = "handler.load_failed";
/// Routing key of the event published when a removed file stopped serving.
pub const UNLOADED: &str = "handler.unloaded";

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

/// What [`Host::load_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotOutcome {
    /// A new file serves now.
    Loaded {
        /// Its domain.
        domain: String,
    },
    /// A file's new version replaced its old one.
    Upgraded {
        /// Its domain.
        domain: String,
    },
    /// The file has the bytes that serve already: nothing to do.
    Unchanged,
    /// The file is incomplete (still being written?): nothing was loaded
    /// or reported.
    Incomplete(String),
    /// The file failed; its previous version, if any, keeps serving.
    Failed(String),
    /// The file is gone and its handler stopped serving (or never did).
    Removed,
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

/// Why a file cannot be a whole component yet, judged from its framing
/// alone: the 8-byte header, then sections of `id, LEB128 size, payload`.
/// A file cut at a section boundary passes; compiling it then fails, and
/// the next change to the file is loaded again.
pub fn incomplete(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the file is empty".to_owned());
    }
    if bytes.len() < 8 {
        return Some(format!("the file has only {} bytes", bytes.len()));
    }
    if !bytes.starts_with(b"\0asm") {
        // Not wasm at all: compiling says so.
        return None;
    }
    let mut at = 8usize;
    while at < bytes.len() {
        at += 1; // section id
        let mut size: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&b) = bytes.get(at) else {
                return Some("the file ends inside a section header".to_owned());
            };
            at += 1;
            size |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 35 {
                break;
            }
        }
        let end = (at as u64).saturating_add(size);
        if end > bytes.len() as u64 {
            return Some(format!(
                "a section runs to byte {end}, past the end of the file ({} bytes)",
                bytes.len()
            ));
        }
        at = end as usize;
    }
    None
}

/// Whether a path in the folder is a component to load: `*.wasm`, not a
/// hidden file (temporary files of `pyou deploy` and editors start with a
/// dot).
fn is_component_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

fn version_json(h: &LoadedHandler) -> Value {
    json!({ "domain": h.manifest.domain, "version": h.manifest.version, "sha256": h.sha256 })
}

fn event(routing_key: &str, body: &Value) -> Envelope {
    // Serialising a `Value` cannot fail.
    let raw = serde_json::value::to_raw_value(body)
        .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
    Envelope::event(routing_key, raw)
}

fn load_ms(h: &LoadedHandler) -> u64 {
    u64::try_from(h.load_time.as_millis()).unwrap_or(u64::MAX)
}

impl Host {
    /// Loads (or reloads) one component file of the handlers folder:
    /// compiles it off the async workers, validates it, and swaps it in for
    /// its previous version, or reports it as failed while the previous
    /// version keeps serving. A missing file is unloaded. Publishes the
    /// `handler.*` event of what happened when serving.
    pub async fn load_file(self: &Arc<Self>, file: &Path) -> HotOutcome {
        let bytes = match tokio::fs::read(file).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.unload_file(file).await;
                return HotOutcome::Removed;
            }
            Err(e) => {
                let err = LoadError {
                    file: file.to_owned(),
                    reason: format!("cannot read: {e}"),
                };
                return self.report_failure(err).await;
            }
        };
        if let Some(why) = incomplete(&bytes) {
            return HotOutcome::Incomplete(why);
        }
        let serving = self.registry().by_file(file).map(|h| h.sha256.clone());
        let Some(current_sha) = serving else {
            return self.swap_in(file, bytes).await;
        };
        let hashed = tokio::task::spawn_blocking(move || {
            let same = crate::cache::sha256_hex(&bytes) == current_sha;
            (same, bytes)
        })
        .await;
        match hashed {
            Ok((false, bytes)) => self.swap_in(file, bytes).await,
            Ok((true, _)) => {
                // A touch, or a return to the serving bytes after a
                // failed version: the failure no longer applies.
                let _change = self.changes.lock().await;
                let registry = self.registry();
                if registry.failures().iter().any(|f| f.file == file) {
                    self.apply(registry.without_failure(file), Vec::new()).await;
                }
                HotOutcome::Unchanged
            }
            Err(e) => HotOutcome::Failed(format!("hashing the file was cancelled: {e}")),
        }
    }

    async fn swap_in(self: &Arc<Self>, file: &Path, bytes: Vec<u8>) -> HotOutcome {
        // Compiled before taking the change lock: a slow compile holds up
        // neither dispatch nor other changes' bookkeeping.
        let handler = match self.runtime.load_bytes(file, bytes).await {
            Ok(h) => h,
            Err(err) => return self.report_failure(err).await,
        };
        let _change = self.changes.lock().await;
        let registry = self.registry();
        let (next, old) = match registry.replace(handler) {
            Ok(r) => r,
            Err(err) => {
                drop(_change);
                return self.report_failure(err).await;
            }
        };
        let Some(new) = next.by_file(file).cloned() else {
            return HotOutcome::Failed("the handler vanished from the registry".to_owned());
        };
        let keys = new.manifest.routing_keys();
        let (outcome, ev) = match &old {
            None => {
                tracing::info!(file = %file.display(), domain = %new.manifest.domain, version = %new.version_label(), "handler loaded");
                let body = json!({
                    "file": file.display().to_string(),
                    "domain": new.manifest.domain,
                    "version": new.manifest.version,
                    "sha256": new.sha256,
                    "routing_keys": keys,
                    "load_ms": load_ms(&new),
                    "from_cache": new.from_cache,
                });
                (
                    HotOutcome::Loaded {
                        domain: new.manifest.domain.clone(),
                    },
                    event(LOADED, &body),
                )
            }
            Some(old) => {
                let old_keys = old.manifest.routing_keys();
                let added: Vec<&String> = keys.iter().filter(|k| !old_keys.contains(k)).collect();
                let removed: Vec<&String> = old_keys.iter().filter(|k| !keys.contains(k)).collect();
                tracing::info!(file = %file.display(), domain = %new.manifest.domain, old = %old.version_label(), new = %new.version_label(), "handler upgraded");
                let body = json!({
                    "file": file.display().to_string(),
                    "domain": new.manifest.domain,
                    "old": version_json(old),
                    "new": version_json(&new),
                    "routing_keys": keys,
                    "added_keys": added,
                    "removed_keys": removed,
                    "load_ms": load_ms(&new),
                    "from_cache": new.from_cache,
                });
                (
                    HotOutcome::Upgraded {
                        domain: new.manifest.domain.clone(),
                    },
                    event(UPGRADED, &body),
                )
            }
        };
        self.apply(next, vec![ev]).await;
        outcome
    }

    /// Checks that the component in `file` would load into this host's
    /// folder as `as_file`, as a hot load would check it (world, manifest,
    /// key and domain ownership against what is loaded now), without
    /// changing anything. Returns it, and the version it would replace.
    pub async fn check_file(
        &self,
        file: &Path,
        as_file: &Path,
    ) -> Result<(Arc<LoadedHandler>, Option<Arc<LoadedHandler>>), LoadError> {
        let bytes = tokio::fs::read(file).await.map_err(|e| LoadError {
            file: file.to_owned(),
            reason: format!("cannot read: {e}"),
        })?;
        if let Some(why) = incomplete(&bytes) {
            return Err(LoadError {
                file: file.to_owned(),
                reason: format!("not a whole WebAssembly component: {why}"),
            });
        }
        let handler = self.runtime.load_bytes(as_file, bytes).await?;
        let (next, old) = self.registry().replace(handler)?;
        match next.by_file(as_file) {
            Some(new) => Ok((new.clone(), old)),
            None => Err(LoadError {
                file: file.to_owned(),
                reason: "the handler vanished from the registry".to_owned(),
            }),
        }
    }

    /// Records `err` as its file's latest failure (the file's previous
    /// version, if any, keeps serving) and publishes `handler.load_failed`.
    pub async fn report_failure(self: &Arc<Self>, err: LoadError) -> HotOutcome {
        let _change = self.changes.lock().await;
        let registry = self.registry();
        let serving = registry.by_file(&err.file).map(|h| version_json(h));
        tracing::warn!(%err, "handler not loaded");
        let body = json!({
            "file": err.file.display().to_string(),
            "reason": err.reason,
            "serving": serving,
        });
        let reason = err.reason.clone();
        self.apply(registry.with_failure(err), vec![event(LOAD_FAILED, &body)])
            .await;
        HotOutcome::Failed(reason)
    }

    /// Stops serving the handler loaded from `file` (commands already
    /// running finish on it) and publishes `handler.unloaded`.
    pub async fn unload_file(self: &Arc<Self>, file: &Path) -> HotOutcome {
        let _change = self.changes.lock().await;
        let (next, old) = self.registry().without_file(file);
        let events = old
            .iter()
            .map(|h| {
                tracing::info!(file = %file.display(), domain = %h.manifest.domain, "handler unloaded");
                event(
                    UNLOADED,
                    &json!({
                        "file": file.display().to_string(),
                        "domain": h.manifest.domain,
                        "version": h.manifest.version,
                        "sha256": h.sha256,
                        "routing_keys": h.manifest.routing_keys(),
                    }),
                )
            })
            .collect();
        self.apply(next, events).await;
        HotOutcome::Removed
    }

    /// Watches `dir` (the folder [`Host::load_dir`] loaded) and keeps the
    /// served handlers in step with its `*.wasm` files, as the module docs
    /// describe, until the returned [`Watching`] is stopped or dropped.
    pub fn watch(
        self: &Arc<Self>,
        dir: &Path,
        config: WatchConfig,
    ) -> Result<Watching, WatchError> {
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
            host: self.clone(),
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

/// Size and modification time of a file when it was last loaded or
/// reported: a file whose stamp is unchanged is not looked at again.
type Stamp = (u64, Option<SystemTime>);

struct FolderWatcher {
    host: Arc<Host>,
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
        let path = self.dir.join(path.file_name()?);
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
        let registry = self.host.registry();
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
            Ok(m) if m.is_file() => (m.len(), m.modified().ok()),
            Ok(_) => return,
            Err(_) => {
                self.seen.remove(path);
                self.incomplete_since.remove(path);
                let registry = self.host.registry();
                let known = registry.by_file(path).is_some()
                    || registry.failures().iter().any(|f| f.file == path);
                if known {
                    self.host.unload_file(path).await;
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
        match self.host.load_file(path).await {
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
                    self.host.report_failure(err).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_tells_incomplete_files() {
        assert!(incomplete(b"").is_some());
        assert!(incomplete(b"\0asm").is_some());
        // Header alone: complete framing (compiling decides the rest).
        assert!(incomplete(b"\0asm\x0d\0\x01\0").is_none());
        // A section of 5 bytes with only 2 present.
        assert!(incomplete(b"\0asm\x0d\0\x01\0\x01\x05ab").is_some());
        assert!(incomplete(b"\0asm\x0d\0\x01\0\x01\x02ab").is_none());
        // Not wasm: left to the compiler's message.
        assert!(incomplete(b"this is not wasm").is_none());
    }

    #[test]
    fn only_visible_wasm_files_are_components() {
        assert!(is_component_path(Path::new("/h/counter.wasm")));
        assert!(!is_component_path(Path::new("/h/.counter.wasm.tmp1")));
        assert!(!is_component_path(Path::new("/h/.counter.wasm")));
        assert!(!is_component_path(Path::new("/h/notes.txt")));
    }
}
