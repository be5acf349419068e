//! Shared by the end-to-end tests: real components, built once by
//! `scripts/build-handlers` (the same script the setup command runs), and
//! throwaway handler folders holding just the components a test wants.
#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod child;
pub mod conformance;
pub mod faulty;
pub mod gated;
pub mod gateway;
pub mod mongo;
pub mod queries;
pub mod rabbit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parallel_you_core::bus::{Bus, Collector, InProcessBus, Subscription};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;
use parallel_you_core::{MemoryStore, Store};
use parallel_you_host::host::Serving;
use parallel_you_host::{Host, HostConfig, Limits};

/// The folder holding every built component (bundled and test-only).
/// The `pyou` binary, with its compilation cache in the build's temporary
/// folder rather than the user's cache: shared by every test (a cache), and
/// never outside the target directory.
pub fn pyou() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pyou"));
    command.env("PYOU_CACHE_DIR", compile_cache());
    command
}

pub fn components() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(root.join("scripts/build-handlers"))
            .status()
            .expect("scripts/build-handlers runs");
        assert!(status.success(), "scripts/build-handlers failed");
        root.join("target/test-handlers")
    })
}

/// A temporary handlers folder with copies of the named components.
pub fn handlers_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let from = components().join(format!("{name}.wasm"));
        std::fs::copy(&from, dir.path().join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    dir
}

/// Limits that keep the failure tests quick.
pub fn test_limits() -> Limits {
    Limits {
        deadline: Duration::from_millis(500),
        memory: 32 * 1024 * 1024,
        ..Limits::default()
    }
}

/// A host over an in-memory store with the named components loaded.
pub async fn host_with(names: &[&str]) -> (Arc<Host>, tempfile::TempDir) {
    host_with_store(names, Arc::new(MemoryStore::new())).await
}

/// A host over `store` with the named components loaded.
pub async fn host_with_store(
    names: &[&str],
    store: Arc<dyn Store>,
) -> (Arc<Host>, tempfile::TempDir) {
    host_with_limits(names, store, test_limits()).await
}

/// A host over `store`, under `limits`, with the named components loaded.
pub async fn host_with_limits(
    names: &[&str],
    store: Arc<dyn Store>,
    limits: Limits,
) -> (Arc<Host>, tempfile::TempDir) {
    host_in(names, store, limits, None).await
}

/// Panics with the load failures of `host`'s folder, if there are any.
pub fn assert_loaded(host: &Host) {
    let failures: Vec<String> = host
        .registry()
        .failures()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        failures.is_empty(),
        "components failed to load: {failures:?}"
    );
}

/// The compilation cache the tests share (as [`pyou`]'s): for the
/// interpreter-sized Python and JavaScript components, seconds each to
/// compile in a debug build.
pub fn compile_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyou-cache")
}

/// [`host_with_limits`], keeping compiled code in `cache` if given.
pub async fn host_in(
    names: &[&str],
    store: Arc<dyn Store>,
    limits: Limits,
    cache: Option<&Path>,
) -> (Arc<Host>, tempfile::TempDir) {
    let dir = handlers_dir(names);
    let config = HostConfig {
        limits,
        max_body: 0,
        ..Default::default()
    };
    let host = Arc::new(Host::with_cache(config, store, cache).expect("host starts"));
    host.load_dir(dir.path()).await.expect("folder loads");
    (host, dir)
}

/// A host with the named components loaded, serving them on a fresh
/// in-process bus.
pub struct OnBus {
    pub host: Arc<Host>,
    pub bus: Arc<InProcessBus>,
    pub serving: Serving,
    /// The handlers folder, removed when dropped.
    pub handlers: tempfile::TempDir,
}

/// Starts an [`OnBus`] host.
pub async fn serve_on_bus(names: &[&str]) -> OnBus {
    serve_on_bus_with(names, test_limits()).await
}

/// [`serve_on_bus`] with other sandbox limits.
pub async fn serve_on_bus_with(names: &[&str], limits: Limits) -> OnBus {
    let (host, handlers) = host_with_limits(names, Arc::new(MemoryStore::new()), limits).await;
    let bus = Arc::new(InProcessBus::new());
    let serving = host
        .serve(bus.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    OnBus {
        host,
        bus,
        serving,
        handlers,
    }
}

/// [`serve_on_bus`] where the host's own sends of `held` wait for the
/// gate to open; the test's sends on `OnBus::bus` pass straight through.
pub async fn serve_on_gated_bus(names: &[&str], held: &str) -> (OnBus, Arc<gated::Gated>) {
    let (host, handlers) =
        host_with_limits(names, Arc::new(MemoryStore::new()), test_limits()).await;
    let bus = Arc::new(InProcessBus::new());
    let gate = gated::Gated::new(bus.clone(), held);
    let serving = host
        .serve(gate.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let on = OnBus {
        host,
        bus,
        serving,
        handlers,
    };
    (on, gate)
}

/// Subscribes to `pattern`, panicking if the bus refuses.
pub async fn subscribe(bus: &dyn Bus, pattern: &str) -> Subscription {
    bus.subscribe(pattern)
        .await
        .unwrap_or_else(|e| panic!("subscribe {pattern}: {e}"))
}

/// The next event of `events` if one comes `within`.
pub async fn next_within(events: &mut Subscription, within: Duration) -> Option<Envelope> {
    tokio::time::timeout(within, events.next())
        .await
        .ok()
        .flatten()
}

/// Dispatches a command and returns its events.
pub async fn call(host: &Host, cmd: Envelope) -> Vec<Envelope> {
    host.dispatch(cmd, Arc::new(Collector::new())).await
}

/// A command envelope, panicking on a bad literal.
pub fn cmd(key: &str, body: &str) -> Envelope {
    Envelope::command(key, body).expect("valid command literal")
}

/// The JSON body of an event.
pub fn body(event: &Envelope) -> serde_json::Value {
    serde_json::from_str(event.body.get()).expect("event bodies are JSON")
}

/// The error code of the last event, if it is an error event.
pub fn last_error(events: &[Envelope]) -> Option<String> {
    events.last().and_then(error_code_of)
}
