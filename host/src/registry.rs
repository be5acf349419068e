//! Which handler serves which routing key, loaded from a folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::runtime::{LoadError, LoadedHandler, Runtime};

/// The handlers loaded from one folder, and the files that failed.
#[derive(Debug, Default)]
pub struct Registry {
    by_domain: BTreeMap<String, Arc<LoadedHandler>>,
    by_key: BTreeMap<String, Arc<LoadedHandler>>,
    failures: Vec<LoadError>,
}

/// One line of `pyou handlers`: a loaded component or a file that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerStatus {
    /// The component file.
    pub file: String,
    /// Its domain, when loaded.
    pub domain: Option<String>,
    /// Its version, when loaded.
    pub version: Option<String>,
    /// The routing keys it serves (empty when it failed).
    pub routing_keys: Vec<String>,
    /// Why it failed to load, if it did.
    pub error: Option<String>,
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

    /// Every loaded component and every failure, ordered by file.
    pub fn status(&self) -> Vec<HandlerStatus> {
        let mut out: Vec<HandlerStatus> = self
            .handlers()
            .map(|h| HandlerStatus {
                file: h.file.display().to_string(),
                domain: Some(h.manifest.domain.clone()),
                version: Some(h.manifest.version.clone()),
                routing_keys: h.manifest.routing_keys(),
                error: None,
            })
            .chain(self.failures.iter().map(|f| HandlerStatus {
                file: f.file.display().to_string(),
                domain: None,
                version: None,
                routing_keys: Vec::new(),
                error: Some(f.reason.clone()),
            }))
            .collect();
        out.sort_by(|a, b| a.file.cmp(&b.file));
        out
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
