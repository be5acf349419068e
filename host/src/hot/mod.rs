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
//! Reactors load, upgrade and unload the same way: `handler.loaded` and
//! `handler.upgraded` also carry `kind` (`handler` or `reactor`) and, for a
//! reactor, `reactor: {subscribes, sends, queries}` (queries with their
//! params schemas: what a gateway needs to serve them).
//!
//! A handler's *version* is its manifest's `version` together with the
//! SHA-256 of its file (`sha256`): a rebuild that keeps the manifest version
//! is still a new version. A change of its grants file (`<name>.toml`,
//! `crate::grants`) reloads it the same way.
//!
//! Writers that take several steps (`cp`, editors) are tolerated in two
//! ways: the watcher acts on a file only once it has been quiet for the
//! debounce period, and a file that is visibly incomplete (empty, or a
//! section running past its end) is not reported: it is retried until it
//! is complete, or reported once it has stayed incomplete for
//! [`WatchConfig::incomplete_grace`].

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::host::Host;
use crate::runtime::{LoadError, LoadedHandler};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::host_info::public_file_name;

mod folder;
mod framing;
mod watcher;

pub use folder::{component_files, Progress};
pub use framing::incomplete;
pub use watcher::{WatchConfig, WatchError, Watching};

/// Routing key of the event published when a new file starts serving.
pub const LOADED: &str = "handler.loaded";
/// Routing key of the event published when a file's new version replaced its old one.
pub const UPGRADED: &str = "handler.upgraded";
/// Routing key of the event published when a file could not be loaded.
pub const LOAD_FAILED: &str = "handler.load_failed";
/// Routing key of the event published when a removed file stopped serving.
pub const UNLOADED: &str = "handler.unloaded";

/// What [`HotLoader::load_file`] did.
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

/// Hot loading for one host: loads, upgrades, reports and unloads single
/// files of its handlers folder, and watches that folder. It changes the
/// host only through `Host::compile` and `Host::begin_change`.
#[derive(Debug, Clone)]
pub struct HotLoader {
    host: Arc<Host>,
}

impl HotLoader {
    /// Hot loading for `host`.
    pub fn new(host: Arc<Host>) -> Self {
        HotLoader { host }
    }

    /// The host it loads into.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Loads (or reloads) one component file of the handlers folder:
    /// compiles it off the async workers, validates it, and swaps it in for
    /// its previous version, or reports it as failed while the previous
    /// version keeps serving. A missing file is unloaded. Publishes the
    /// `handler.*` event of what happened when serving.
    pub async fn load_file(&self, file: &Path) -> HotOutcome {
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
        let serving = self
            .host
            .registry()
            .by_file(file)
            .map(|h| (h.sha256.clone(), h.grants.digest.clone()));
        let Some((current_sha, current_grants)) = serving else {
            return self.swap_in(file, bytes).await;
        };
        // Changed grants make a new version of the same bytes.
        if crate::grants::Grants::digest_of(file).await != current_grants {
            return self.swap_in(file, bytes).await;
        }
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
                let change = self.host.begin_change().await;
                let registry = change.registry();
                if registry.failures().iter().any(|f| f.file == file) {
                    change
                        .commit(registry.without_failure(file), Vec::new())
                        .await;
                }
                HotOutcome::Unchanged
            }
            Err(e) => HotOutcome::Failed(format!("hashing the file was cancelled: {e}")),
        }
    }

    async fn swap_in(&self, file: &Path, bytes: Vec<u8>) -> HotOutcome {
        // Compiled before taking the change lock: a slow compile holds up
        // neither dispatch nor other changes' bookkeeping.
        let handler = match self.host.compile(file, bytes).await {
            Ok(h) => h,
            Err(err) => return self.report_failure(err).await,
        };
        // Its indexes exist before its first command: a new version that
        // filters on a new field never runs a scan it declared away.
        if let Err(err) = self.host.ensure_indexes(&handler).await {
            return self.report_failure(err).await;
        }
        let change = self.host.begin_change().await;
        let registry = change.registry();
        let (next, old) = match registry.replace(handler) {
            Ok(r) => r,
            Err(err) => {
                drop(change);
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
                    "file": public_file_name(file),
                    "domain": new.manifest.domain,
                    "version": new.manifest.version,
                    "sha256": new.sha256,
                    "routing_keys": keys,
                    "load_ms": load_ms(&new),
                    "from_cache": new.from_cache,
                    "kind": new.manifest.kind(),
                    "reactor": new.manifest.reactor,
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
                    "file": public_file_name(file),
                    "domain": new.manifest.domain,
                    "old": version_json(old),
                    "new": version_json(&new),
                    "routing_keys": keys,
                    "added_keys": added,
                    "removed_keys": removed,
                    "load_ms": load_ms(&new),
                    "from_cache": new.from_cache,
                    "kind": new.manifest.kind(),
                    "reactor": new.manifest.reactor,
                });
                (
                    HotOutcome::Upgraded {
                        domain: new.manifest.domain.clone(),
                    },
                    event(UPGRADED, &body),
                )
            }
        };
        change.commit(next, vec![ev]).await;
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
        let handler = self.host.compile(as_file, bytes).await?;
        let (next, old) = self.host.registry().replace(handler)?;
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
    pub async fn report_failure(&self, err: LoadError) -> HotOutcome {
        let change = self.host.begin_change().await;
        let registry = change.registry();
        // The watcher may see one write as several changes: the same
        // failure of the same file is reported once.
        if registry
            .failures()
            .iter()
            .any(|f| f.file == err.file && f.reason == err.reason)
        {
            return HotOutcome::Failed(err.reason);
        }
        let serving = registry.by_file(&err.file).map(|h| version_json(h));
        tracing::warn!(%err, "handler not loaded");
        let body = json!({
            "file": public_file_name(&err.file),
            "reason": err.reason,
            "serving": serving,
        });
        let reason = err.reason.clone();
        change
            .commit(registry.with_failure(err), vec![event(LOAD_FAILED, &body)])
            .await;
        HotOutcome::Failed(reason)
    }

    /// Stops serving the handler loaded from `file` (commands already
    /// running finish on it) and publishes `handler.unloaded`.
    pub async fn unload_file(&self, file: &Path) -> HotOutcome {
        let change = self.host.begin_change().await;
        let (next, old) = change.registry().without_file(file);
        let events = old
            .iter()
            .map(|h| {
                tracing::info!(file = %file.display(), domain = %h.manifest.domain, "handler unloaded");
                event(
                    UNLOADED,
                    &json!({
                        "file": public_file_name(file),
                        "domain": h.manifest.domain,
                        "version": h.manifest.version,
                        "sha256": h.sha256,
                        "routing_keys": h.manifest.routing_keys(),
                    }),
                )
            })
            .collect();
        change.commit(next, events).await;
        HotOutcome::Removed
    }
}
