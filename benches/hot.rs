//! Hot loading: load time cold (compile) vs. from the on-disk cache per
//! component, the time from a file landing in a watched folder to its new
//! version serving, and dispatch throughput with and without a swap.
//!
//! Run with `cargo bench --bench hot [-- COMPONENT…]` (default: counter,
//! thread, notes, stats from `handlers/dist`, plus the swap cases with the
//! test components `hot1`/`hot2`; it runs `scripts/build-handlers` when
//! they are missing). Prints a table; `BENCHMARKS.md` records the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::{Bus, InProcessBus, MemoryStore};
use parallel_you_host::{Host, HostConfig, HotLoader, WatchConfig};

/// Commands per throughput run.
const COMMANDS: usize = 3_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ensure_built() {
    let need = [
        "handlers/dist/counter.wasm",
        "target/test-handlers/hot2.wasm",
    ];
    if need.iter().any(|p| !root().join(p).exists()) {
        let ok = std::process::Command::new(root().join("scripts/build-handlers"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "scripts/build-handlers failed");
    }
}

fn host(cache: Option<&Path>) -> Arc<Host> {
    Arc::new(Host::with_cache(HostConfig::default(), Arc::new(MemoryStore::new()), cache).unwrap())
}

/// Loads `file` alone into a fresh host; returns the load time it reports.
async fn load_once(file: &Path, cache: Option<&Path>) -> (Duration, bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(file, dir.path().join(file.file_name().unwrap())).unwrap();
    let h = host(cache);
    h.load_dir(dir.path()).await.unwrap();
    let status = h.status();
    assert!(status[0].error.is_none(), "{status:?}");
    (
        Duration::from_millis(status[0].load_ms.unwrap()),
        status[0].from_cache.unwrap(),
    )
}

fn place(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn served_version(host: &Host) -> Option<String> {
    let events = host
        .dispatch(
            Envelope::command("hot.version", "{}").unwrap(),
            Arc::new(Collector::new()),
        )
        .await;
    let body: serde_json::Value = serde_json::from_str(events.first()?.body.get()).ok()?;
    body["version"].as_str().map(str::to_owned)
}

/// From a rename into a watched folder to the new version answering.
async fn landing_to_serving(cache: Option<&Path>, warm_first: bool) -> Duration {
    let tests = root().join("target/test-handlers");
    let (v1, v2) = (
        std::fs::read(tests.join("hot1.wasm")).unwrap(),
        std::fs::read(tests.join("hot2.wasm")).unwrap(),
    );
    if warm_first {
        // Put v2 in the cache first, as a restart or a revert would find it.
        load_once(&tests.join("hot2.wasm"), cache).await;
    }
    let dir = tempfile::tempdir().unwrap();
    place(dir.path(), "hot.wasm", &v1);
    let h = host(cache);
    h.load_dir(dir.path()).await.unwrap();
    let bus = Arc::new(InProcessBus::new());
    let serving = h.serve(bus).await.unwrap();
    let config = WatchConfig {
        debounce: Duration::from_millis(50),
        ..WatchConfig::default()
    };
    let watching = HotLoader::new(h.clone()).watch(dir.path(), config).unwrap();
    // Let the watcher's first pass settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    place(dir.path(), "hot.wasm", &v2);
    while served_version(&h).await.as_deref() != Some("2") {
        assert!(started.elapsed() < Duration::from_secs(300));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    watching.stop().await;
    serving.shutdown(Duration::from_secs(5)).await;
    took
}

/// Commands per second through the bus, with an upgrade in the middle or not.
async fn throughput(swap: bool, cache: &Path) -> (f64, usize, usize) {
    let tests = root().join("target/test-handlers");
    let (v1, v2) = (
        std::fs::read(tests.join("hot1.wasm")).unwrap(),
        std::fs::read(tests.join("hot2.wasm")).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    place(dir.path(), "hot.wasm", &v1);
    let h = host(Some(cache));
    h.load_dir(dir.path()).await.unwrap();
    let bus = Arc::new(InProcessBus::new());
    let mut answers = bus.subscribe("session.b.#").await.unwrap();
    let serving = h.serve(bus.clone()).await.unwrap();
    let watching = HotLoader::new(h.clone())
        .watch(
            dir.path(),
            WatchConfig {
                debounce: Duration::from_millis(50),
                ..WatchConfig::default()
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    let sender = {
        let bus = bus.clone();
        let dir = dir.path().to_owned();
        tokio::spawn(async move {
            for i in 0..COMMANDS {
                if swap && i == COMMANDS / 3 {
                    place(&dir, "hot.wasm", &v2);
                }
                let c = Envelope::command("hot.version", "{}")
                    .unwrap()
                    .with_session("b");
                bus.send(c).await.unwrap();
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    while ok + failed < COMMANDS {
        let ev = tokio::time::timeout(Duration::from_secs(60), answers.next())
            .await
            .unwrap()
            .unwrap();
        if parallel_you_core::error::error_code_of(&ev).is_some() {
            failed += 1;
        } else {
            ok += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    sender.await.unwrap();
    watching.stop().await;
    serving.shutdown(Duration::from_secs(5)).await;
    (COMMANDS as f64 / secs, ok, failed)
}

fn main() {
    ensure_built();
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let names: Vec<String> = if wanted.is_empty() {
        ["counter", "thread", "notes", "stats"]
            .map(str::to_owned)
            .to_vec()
    } else {
        wanted
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("| component | size | load, cold (compile) | load, from cache |");
        println!("|---|---:|---:|---:|");
        for name in &names {
            let file: PathBuf = root().join("handlers/dist").join(format!("{name}.wasm"));
            if !file.exists() {
                println!("| {name} | missing: {} | | |", file.display());
                continue;
            }
            let size = std::fs::metadata(&file).unwrap().len() / 1024;
            let cache = tempfile::tempdir().unwrap();
            let (cold, c1) = load_once(&file, Some(cache.path())).await;
            let (warm, c2) = load_once(&file, Some(cache.path())).await;
            assert!(!c1 && c2, "expected a miss then a hit");
            println!(
                "| {name} | {size} KiB | {:.0} ms | {:.0} ms |",
                cold.as_secs_f64() * 1e3,
                warm.as_secs_f64() * 1e3
            );
        }
        println!();
        let cache = tempfile::tempdir().unwrap();
        let cold = landing_to_serving(None, false).await;
        let warm = landing_to_serving(Some(cache.path()), true).await;
        println!("| file lands → new version serves (hot1 → hot2, Rust) | time |");
        println!("|---|---:|");
        println!(
            "| cold (compiled on arrival) | {:.0} ms |",
            cold.as_secs_f64() * 1e3
        );
        println!(
            "| warm (in the cache) | {:.0} ms |",
            warm.as_secs_f64() * 1e3
        );
        println!();
        let cache = tempfile::tempdir().unwrap();
        // Fill the cache so both runs measure dispatch, not compiling.
        throughput(false, cache.path()).await;
        let (base, ok0, f0) = throughput(false, cache.path()).await;
        let (swapped, ok1, f1) = throughput(true, cache.path()).await;
        println!("| {COMMANDS} commands through the bus | commands/s | ok | failed |");
        println!("|---|---:|---:|---:|");
        println!("| no swap | {base:.0} | {ok0} | {f0} |");
        println!("| upgrade hot1 → hot2 a third of the way in | {swapped:.0} | {ok1} | {f1} |");
    });
}
