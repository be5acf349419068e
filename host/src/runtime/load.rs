//! Compiling, linking and validating a component.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::Component;

use super::call::Slot;
use super::compat::{AnyHandlerPre, AnyReactorPre, Contract};
use super::manifest::{validate_manifest, validate_reactor_manifest, Manifest};
use super::Runtime;
use crate::bindings;
use crate::cache::sha256_hex;
use crate::grants::Grants;
use crate::sandbox::Sandbox;
use crate::warm::WarmPool;
use parallel_you_core::error::ErrorBody;
use parallel_you_core::schema::{BodySchemas, Schema};
use parallel_you_core::store::MemoryStore;

/// Why a component could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct LoadError {
    /// The file that failed.
    pub file: PathBuf,
    /// Why, phrased so its author can fix it.
    pub reason: String,
}
/// A component compiled, linked and validated, ready to run commands.
pub struct LoadedHandler {
    /// Where it was loaded from.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Hex SHA-256 of the component file's bytes. With the manifest's
    /// version it identifies a version of a handler: two builds that both
    /// say `1.0.0` but differ in a byte are different versions.
    pub sha256: String,
    /// How long compiling (or fetching from the cache), linking and reading
    /// the manifest took.
    pub load_time: Duration,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    pub(crate) pre: Pre,
    pub(super) domain: Arc<str>,
    /// The manifest's body schemas, compiled once at load.
    pub(super) schemas: BodySchemas,
    /// A reactor's query parameter schemas, compiled once at load, by
    /// query name.
    pub(crate) query_schemas: std::collections::HashMap<String, Schema>,
    /// What the operator granted it (`crate::grants`).
    pub grants: Grants,
    /// Parked instances, used only under [`InstancePolicy::Warm`].
    pub(super) warm: WarmPool,
}

/// A component pre-linked for the world it exports.
pub(crate) enum Pre {
    /// A command handler (`command-handler`), of any 0.1.x contract.
    Handler(AnyHandlerPre),
    /// A reactor (`event-reactor`), of any 0.1.x contract.
    Reactor(AnyReactorPre),
}

impl Pre {
    pub(super) fn handler(&self) -> Option<&AnyHandlerPre> {
        match self {
            Pre::Handler(pre) => Some(pre),
            Pre::Reactor(_) => None,
        }
    }

    pub(super) fn reactor(&self) -> Option<&AnyReactorPre> {
        match self {
            Pre::Reactor(pre) => Some(pre),
            Pre::Handler(_) => None,
        }
    }
}

/// The export that makes a component a reactor (any 0.1.x version).
const REACTOR_EXPORT: &str = "parallel-you:handler/event-reactor";

impl LoadedHandler {
    /// Whether its manifest marks the command `routing_key` internal: sent
    /// only by its own timers.
    pub fn is_internal(&self, routing_key: &str) -> bool {
        self.manifest
            .commands
            .iter()
            .any(|c| c.internal && c.routing_key == routing_key)
    }

    /// The deadline of each of its calls: its grants' own, else the host's.
    pub(crate) fn deadline(&self, runtime: &Runtime) -> Duration {
        self.grants.deadline.unwrap_or(runtime.limits.deadline)
    }

    /// Whether it is a reactor (else a command handler).
    pub fn is_reactor(&self) -> bool {
        matches!(self.pre, Pre::Reactor(_))
    }

    /// `<manifest version>+<first 12 hex digits of the SHA-256>`, e.g.
    /// `1.0.0+3f9a0c41d2e7`: what events and listings call its version.
    pub fn version_label(&self) -> String {
        let short = self.sha256.get(..12).unwrap_or(&self.sha256);
        format!("{}+{short}", self.manifest.version)
    }
}

impl std::fmt::Debug for LoadedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedHandler")
            .field("file", &self.file)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Compiles, links and validates a component file, calling its
    /// `manifest` in a sandbox. Compilation runs on a blocking thread.
    pub async fn load(&self, file: &Path) -> Result<LoadedHandler, LoadError> {
        let bytes = tokio::fs::read(file).await.map_err(|e| LoadError {
            file: file.to_owned(),
            reason: format!("cannot read: {e}"),
        })?;
        self.load_bytes(file, bytes).await
    }

    /// Like [`Runtime::load`] for bytes already read from `file`.
    pub async fn load_bytes(
        &self,
        file: &Path,
        bytes: Vec<u8>,
    ) -> Result<LoadedHandler, LoadError> {
        let fail = |reason: String| LoadError {
            file: file.to_owned(),
            reason,
        };
        let started = Instant::now();
        // The operator's grants first: a bad grants file fails at once,
        // before any compiling.
        let grants = Grants::for_component(file, &self.limits)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        // Hashing tens of MiB and compiling take a while: off the async
        // workers, so dispatch goes on meanwhile.
        let (sha256, compiled, from_cache) = tokio::task::spawn_blocking(move || {
            let sha256 = sha256_hex(&bytes);
            let compile = || Component::new(&engine, &bytes);
            match cache {
                Some(cache) => {
                    let (compiled, info) = cache.compile(&sha256, compile);
                    (sha256, compiled, info.cached)
                }
                None => (sha256, compile(), false),
            }
        })
        .await
        .map_err(|e| fail(format!("compilation was cancelled: {e}")))?;
        let component =
            compiled.map_err(|e| fail(format!("not a valid WebAssembly component: {e:#}")))?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let is_reactor = exports.iter().any(|name| name.starts_with(REACTOR_EXPORT));
        let contract = Contract::of_exports(exports.iter().map(String::as_str));
        let world = if is_reactor { "reactor" } else { "handler" };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            fail(format!(
                "does not fit the `parallel-you:handler/{world}` world (it imports something the host does not offer): {e:#}"
            ))
        })?;
        let mut query_schemas = std::collections::HashMap::new();
        let (pre, manifest) = if is_reactor {
            let pre = AnyReactorPre::new(contract, instance_pre).map_err(|e| {
                fail(format!(
                    "does not fit the `parallel-you:handler/event-reactor` interface: {e:#}"
                ))
            })?;
            let manifest = self.read_reactor_manifest(&pre).await.map_err(|e| {
                fail(format!(
                    "its `manifest` function failed: {}: {}",
                    e.code, e.message
                ))
            })?;
            let manifest = validate_reactor_manifest(manifest).map_err(fail)?;
            for q in manifest.reactor.iter().flat_map(|r| &r.queries) {
                if let Some(schema) = &q.params_schema {
                    let compiled = Schema::compile(schema).map_err(|e| {
                        fail(format!(
                            "the params schema of query {:?} cannot be checked by the host, {e}",
                            q.name
                        ))
                    })?;
                    query_schemas.insert(q.name.clone(), compiled);
                }
            }
            (Pre::Reactor(pre), manifest)
        } else {
            let not_a_handler = |e: wasmtime::Error| {
                fail(format!(
                    "does not export `parallel-you:handler/command-handler` (a handler) or `parallel-you:handler/event-reactor` (a reactor): {e:#}"
                ))
            };
            let pre = AnyHandlerPre::new(contract, instance_pre).map_err(not_a_handler)?;
            let manifest = self.read_manifest(&pre).await.map_err(|e| {
                fail(format!(
                    "its `manifest` function failed: {}: {}",
                    e.code, e.message
                ))
            })?;
            (
                Pre::Handler(pre),
                validate_manifest(manifest).map_err(fail)?,
            )
        };
        let schemas = BodySchemas::compile(&manifest.commands).map_err(|e| fail(e.to_string()))?;
        Ok(LoadedHandler {
            file: file.to_owned(),
            domain: Arc::from(manifest.domain.as_str()),
            manifest,
            loaded_at: SystemTime::now(),
            sha256,
            load_time: started.elapsed(),
            from_cache,
            pre,
            schemas,
            query_schemas,
            grants,
            warm: WarmPool::new(self.parked.clone()),
        })
    }

    /// A sandbox for reading a manifest: it cannot reach real data, its
    /// store is an empty one of its own.
    fn manifest_sandbox(&self) -> Sandbox {
        Sandbox::new(
            Arc::from(""),
            Arc::new(MemoryStore::new()),
            None,
            self.clock.clone(),
            self.output_limits(),
            self.limits.memory,
        )
    }

    async fn read_reactor_manifest(
        &self,
        pre: &AnyReactorPre,
    ) -> Result<bindings::reactor::parallel_you::handler::reactor_types::ReactorManifest, ErrorBody>
    {
        let sandbox = self.manifest_sandbox();
        self.in_sandbox(
            pre,
            Slot::Fresh(Box::new(sandbox)),
            self.limits.deadline,
            |r, store| Box::pin(async move { r.call_manifest(store).await }),
        )
        .await
        .result
    }

    async fn read_manifest(
        &self,
        pre: &AnyHandlerPre,
    ) -> Result<bindings::parallel_you::handler::types::Manifest, ErrorBody> {
        let sandbox = self.manifest_sandbox();
        self.in_sandbox(
            pre,
            Slot::Fresh(Box::new(sandbox)),
            self.limits.deadline,
            |h, store| Box::pin(async move { h.call_manifest(store).await }),
        )
        .await
        .result
    }
}
