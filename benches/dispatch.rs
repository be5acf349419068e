//! Per-command cost of dispatching through the host: a native Rust function
//! doing the same JSON (and store) work vs. the wasm component, with a fresh
//! instance per command.
//!
//! A case with tracing on (spans recorded, nothing exported) gives the
//! cost of `--otlp-endpoint` on the dispatch path.
//!
//! Run with `cargo bench --bench dispatch` (after `scripts/build-handlers`,
//! which it runs itself if the components are missing). Prints a table;
//! `BENCHMARKS.md` records the figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;
use parallel_you_core::store::{MemoryStore, Store};
use parallel_you_host::{Host, HostConfig};

/// Commands per measured run, bounded in count and in time.
const ITERATIONS: usize = 20_000;
const TIME_CAP: Duration = Duration::from_secs(20);
const WARMUP: usize = 500;

fn components() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/test-handlers");
    if !dir.join("noop.wasm").exists() {
        let ok = std::process::Command::new(root.join("scripts/build-handlers"))
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/build-handlers failed");
    }
    Ok(dir)
}

struct Figure {
    name: &'static str,
    per_cmd: Duration,
    n: usize,
}

impl Figure {
    fn per_sec(&self) -> f64 {
        1.0 / self.per_cmd.as_secs_f64()
    }
}

async fn measure<F, Fut>(name: &'static str, mut f: F) -> anyhow::Result<Figure>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..WARMUP {
        f(i).await?;
    }
    let started = Instant::now();
    let mut n = 0;
    while n < ITERATIONS && started.elapsed() < TIME_CAP {
        f(WARMUP + n).await?;
        n += 1;
    }
    let per_cmd = started.elapsed() / u32::try_from(n.max(1))?;
    Ok(Figure { name, per_cmd, n })
}

/// The native baseline of the no-op handler: parse the body, serialise it
/// back as the event body, wrap it in an event envelope.
fn native_noop(cmd: &Envelope) -> anyhow::Result<Envelope> {
    let value: serde_json::Value = serde_json::from_str(cmd.body.get())?;
    let body = serde_json::value::to_raw_value(&value)?;
    Ok(Envelope::event_for(&cmd.meta, "noop.ponged", body))
}

/// The native baseline of the store handler: read one document, write it
/// back, answer with its id and version.
async fn native_touch(store: &dyn Store, cmd: &Envelope) -> anyhow::Result<Envelope> {
    #[derive(serde::Deserialize)]
    struct Touch {
        id: String,
    }
    let touch: Touch = serde_json::from_str(cmd.body.get())?;
    let json = match store.get("noop", "docs", &touch.id).await? {
        Some(doc) => doc.json,
        None => r#"{"touched":0}"#.to_owned(),
    };
    let version = store.upsert("noop", "docs", &touch.id, &json, None).await?;
    let body =
        serde_json::value::to_raw_value(&serde_json::json!({"id": touch.id, "version": version}))?;
    Ok(Envelope::event_for(&cmd.meta, "noop.touched", body))
}

/// Dispatches one command through the host, drops what it published, and
/// fails the run if any event was an error.
async fn dispatch_ok(host: &Arc<Host>, sink: &Arc<Collector>, cmd: Envelope) -> anyhow::Result<()> {
    let events = host.dispatch(cmd, sink.clone()).await;
    sink.take();
    anyhow::ensure!(
        events.iter().all(|e| error_code_of(e).is_none()),
        "{events:?}"
    );
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let dir = components()?;
    let handlers = tempfile::tempdir()?;
    std::fs::copy(dir.join("noop.wasm"), handlers.path().join("noop.wasm"))?;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let host = Arc::new(Host::new(HostConfig::default(), store.clone())?);
    host.load_dir(handlers.path()).await?;
    anyhow::ensure!(
        host.registry().failures().is_empty(),
        "noop.wasm did not load"
    );
    let sink = Arc::new(Collector::new());
    // The same host with plain `madvise` memory resets, for comparison.
    let madvise_host = Arc::new(Host::new(
        HostConfig {
            limits: parallel_you_host::Limits {
                keep_resident: 0,
                ..Default::default()
            },
            max_body: 0,
            ..Default::default()
        },
        store.clone(),
    )?);
    madvise_host.load_dir(handlers.path()).await?;
    let keep_resident = host_limits_keep_resident();
    let ping_body = r#"{"text":"hello","n":42,"tags":["a","b"]}"#;

    let native_a = measure("native: no-op JSON", |_| {
        let cmd = Envelope::command("noop.ping", ping_body);
        async move {
            native_noop(&cmd?)?;
            Ok(())
        }
    })
    .await?;
    let wasm_a = measure("wasm: no-op, fresh instance", |_| {
        let host = host.clone();
        let sink = sink.clone();
        async move { dispatch_ok(&host, &sink, Envelope::command("noop.ping", ping_body)?).await }
    })
    .await?;
    let wasm_a_madvise = measure("wasm: no-op, fresh, madvise reset", |_| {
        let host = madvise_host.clone();
        let sink = sink.clone();
        async move { dispatch_ok(&host, &sink, Envelope::command("noop.ping", ping_body)?).await }
    })
    .await?;
    // The same with spans recorded: an OpenTelemetry layer (no exporter,
    // so this is the cost of the spans and the carried context, not of
    // sending them) and a client's traceparent on every command.
    let traced_a = {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
        // `measure` awaits on this thread, so a thread default covers it.
        let _traced = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        measure("wasm: no-op, fresh, traced", |_| {
            let host = host.clone();
            let sink = sink.clone();
            async move {
                let mut cmd = Envelope::command("noop.ping", ping_body)?;
                cmd.meta.traceparent =
                    Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
                dispatch_ok(&host, &sink, cmd).await
            }
        })
        .await?
    };
    let native_b = measure("native: read+write one document", |i| {
        let store = store.clone();
        async move {
            let cmd = Envelope::command("noop.touch", &format!(r#"{{"id":"n{}"}}"#, i % 100))?;
            native_touch(store.as_ref(), &cmd).await?;
            Ok(())
        }
    })
    .await?;
    let wasm_b = measure("wasm: read+write one document", |i| {
        let host = host.clone();
        let sink = sink.clone();
        async move {
            let cmd = Envelope::command("noop.touch", &format!(r#"{{"id":"w{}"}}"#, i % 100))?;
            dispatch_ok(&host, &sink, cmd).await
        }
    })
    .await?;

    // Throughput with commands in flight on every core.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let per_worker = ITERATIONS / workers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let sink = Arc::new(Collector::new());
            for _ in 0..per_worker {
                if let Ok(cmd) = Envelope::command("noop.ping", ping_body) {
                    host.dispatch(cmd, sink.clone()).await;
                    sink.take();
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let parallel = started.elapsed();
    let parallel_rate = (workers * per_worker) as f64 / parallel.as_secs_f64();

    println!();
    println!(
        "{:<36} {:>10} {:>14} {:>8}",
        "case", "µs/cmd", "commands/s", "n"
    );
    println!("(memory kept resident between instances: {keep_resident} bytes)");
    for f in [
        &native_a,
        &wasm_a,
        &wasm_a_madvise,
        &traced_a,
        &native_b,
        &wasm_b,
    ] {
        println!(
            "{:<36} {:>10.2} {:>14.0} {:>8}",
            f.name,
            f.per_cmd.as_secs_f64() * 1e6,
            f.per_sec(),
            f.n
        );
    }
    println!(
        "{:<36} {:>10} {:>14.0} {:>8}",
        format!("wasm: no-op, {workers} in flight"),
        "",
        parallel_rate,
        workers * per_worker
    );
    println!();
    let ratio = |w: &Figure, n: &Figure| w.per_cmd.as_secs_f64() / n.per_cmd.as_secs_f64();
    println!("wasm/native (no-op):  {:.1}x", ratio(&wasm_a, &native_a));
    println!("wasm/native (store):  {:.1}x", ratio(&wasm_b, &native_b));
    println!("traced/untraced:      {:.2}x", ratio(&traced_a, &wasm_a));
    Ok(())
}

fn host_limits_keep_resident() -> usize {
    parallel_you_host::Limits::default().keep_resident
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
