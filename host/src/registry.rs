//! Which handler serves which routing key, loaded from a folder; the
//! reactors loaded beside them (a domain belongs to one component of
//! either kind).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parallel_you_core::host_info::HandlerStatus;

use crate::runtime::{LoadError, LoadedHandler, Runtime};

/// The handlers loaded from one folder, and the files that failed.
///
/// A registry is a snapshot: the host swaps in a new one for every change
/// (copying it is cheap: it holds `Arc`s), so a command routed through one
/// snapshot keeps its handler for its whole run.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    by_file: BTreeMap<PathBuf, Arc<LoadedHandler>>,
    by_domain: BTreeMap<String, Arc<LoadedHandler>>,
    by_key: BTreeMap<String, Arc<LoadedHandler>>,
    failures: Vec<LoadError>,
}

impl Registry {
    /// Loads every `*.wasm` file in `dir`, in file-name order. A file that
    /// fails, or claims a domain an earlier file already has, is recorded as
    /// a failure naming it; the others still load.
    pub async fn load_dir(runtime: &Runtime, dir: &Path) -> Result<Self, LoadError> {
        let mut files = wasm_files(dir).map_err(|e| LoadError {
            file: dir.to_owned(),
            reason: format!("cannot read the handlers folder: {e}"),
        })?;
        files.sort();
        let mut registry = Registry::default();
        for file in files {
            match runtime.load(&file).await {
                Ok(handler) => registry.insert(handler),
                Err(err) => {
                    tracing::warn!(%err, "handler not loaded");
                    registry.failures.push(err);
                }
            }
        }
        Ok(registry)
    }

    /// Adds a handler, unless its domain is taken (then records a failure).
    pub fn insert(&mut self, handler: LoadedHandler) {
        let domain = handler.manifest.domain.clone();
        if let Some(existing) = self.by_domain.get(&domain) {
            let err = LoadError {
                file: handler.file.clone(),
                reason: format!(
                    "its domain {domain:?} is already served by {}; two components cannot share a domain",
                    existing.file.display()
                ),
            };
            tracing::warn!(%err, "handler not loaded");
            self.failures.push(err);
            return;
        }
        let handler = Arc::new(handler);
        self.by_file.insert(handler.file.clone(), handler.clone());
        for key in handler.manifest.routing_keys() {
            self.by_key.insert(key, handler.clone());
        }
        tracing::info!(
            domain = %domain,
            version = %handler.manifest.version,
            file = %handler.file.display(),
            "handler loaded"
        );
        self.by_domain.insert(domain, handler);
    }

    /// A new registry with `handler` serving for its file, in place of
    /// the version that served before (returned). Fails, leaving this one
    /// as it is, when another file's component already has its domain.
    pub fn replace(
        &self,
        handler: LoadedHandler,
    ) -> Result<(Registry, Option<Arc<LoadedHandler>>), LoadError> {
        let domain = &handler.manifest.domain;
        if let Some(other) = self.by_domain.get(domain) {
            if other.file != handler.file {
                return Err(LoadError {
                    file: handler.file.clone(),
                    reason: format!(
                        "its domain {domain:?} is already served by {}; two components cannot share a domain",
                        other.file.display()
                    ),
                });
            }
        }
        let (mut next, old) = self.without_file(&handler.file);
        next.insert(handler);
        Ok((next, old))
    }

    /// A new registry without the file's handler (returned) and failure.
    pub fn without_file(&self, file: &Path) -> (Registry, Option<Arc<LoadedHandler>>) {
        let mut next = self.clone();
        next.failures.retain(|f| f.file != file);
        let old = next.by_file.remove(file);
        if let Some(old) = &old {
            next.by_domain.remove(&old.manifest.domain);
            next.by_key.retain(|_, h| !Arc::ptr_eq(h, old));
        }
        (next, old)
    }

    /// A new registry recording `err` as its file's latest failure; the
    /// file's handler, if one serves, keeps serving.
    pub fn with_failure(&self, err: LoadError) -> Registry {
        let mut next = self.clone();
        next.failures.retain(|f| f.file != err.file);
        let at = next.failures.partition_point(|f| f.file < err.file);
        next.failures.insert(at, err);
        next
    }

    /// A new registry without the file's failure, if it has one.
    pub fn without_failure(&self, file: &Path) -> Registry {
        let mut next = self.clone();
        next.failures.retain(|f| f.file != file);
        next
    }

    /// The handler loaded from `file`.
    pub fn by_file(&self, file: &Path) -> Option<&Arc<LoadedHandler>> {
        self.by_file.get(file)
    }

    /// The handler bound to a routing key.
    pub fn route(&self, routing_key: &str) -> Option<&Arc<LoadedHandler>> {
        self.by_key.get(routing_key)
    }

    /// Loaded handlers, by domain.
    pub fn handlers(&self) -> impl Iterator<Item = &Arc<LoadedHandler>> {
        self.by_domain.values()
    }

    /// Files that failed to load.
    pub fn failures(&self) -> &[LoadError] {
        &self.failures
    }

    /// Every loaded component and every failure, one line per file,
    /// ordered by file.
    pub fn status(&self) -> Vec<HandlerStatus> {
        let mut out: BTreeMap<String, HandlerStatus> = self
            .handlers()
            .map(|h| {
                let file = h.file.display().to_string();
                let status = HandlerStatus {
                    file: file.clone(),
                    domain: Some(h.manifest.domain.clone()),
                    version: Some(h.manifest.version.clone()),
                    sha256: Some(h.sha256.clone()),
                    loaded_at: Some(parallel_you_core::envelope::rfc3339(h.loaded_at)),
                    load_ms: Some(u64::try_from(h.load_time.as_millis()).unwrap_or(u64::MAX)),
                    from_cache: Some(h.from_cache),
                    routing_keys: h.manifest.routing_keys(),
                    kind: Some(h.manifest.kind().to_owned()),
                    reactor: h.manifest.reactor.clone(),
                    grants: h.grants.info(),
                    error: None,
                };
                (file, status)
            })
            .collect();
        for f in &self.failures {
            let file = f.file.display().to_string();
            out.entry(file.clone())
                .or_insert_with(|| HandlerStatus {
                    file,
                    domain: None,
                    version: None,
                    sha256: None,
                    loaded_at: None,
                    load_ms: None,
                    from_cache: None,
                    routing_keys: Vec::new(),
                    kind: None,
                    reactor: None,
                    grants: None,
                    error: None,
                })
                .error = Some(f.reason.clone());
        }
        out.into_values().collect()
    }
}

fn wasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            out.push(path);
        }
    }
    Ok(out)
}
