//! The stores side by side in one run: memory, the embedded SQLite store and
//! MongoDB. (1) One store operation at a time: `get` of an existing
//! document, an unconditional `upsert`, a versioned `upsert`. (2) The thread
//! domain's create-and-start through `Host::dispatch` with the real
//! component (two commands, ~4 document reads and writes plus a timer and
//! two processed markers per pair), one at a time and 8 in flight.
//! (3) A command's effects, two document writes and its marker, the two
//! ways side by side: as separate operations (two upserts, then the marker
//! on its own, the shape before issue 14) and as one unit of work (the
//! overlay, one commit of both writes with the marker, then the mark that
//! its events were sent).
//!
//! Run with `cargo bench --bench store`. MongoDB is the server at
//! `PYOU_TEST_MONGO_URI`, else a SecantusDB that `scripts/start-mongo`
//! starts for the run and stops after. Prints a table; `BENCHMARKS.md`
//! records the figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;
use parallel_you_core::store::{Commit, Marker, MemoryStore, Store, UnitLimits, UnitOfWork};
use parallel_you_host::store::{MongoStore, SqliteStore};
use parallel_you_host::{Host, HostConfig};

/// Operations per measured case, bounded in count and in time.
const OPS: usize = 5_000;
const PAIRS: usize = 1_000;
const TIME_CAP: Duration = Duration::from_secs(10);
const WARMUP: usize = 100;
const IN_FLIGHT: usize = 8;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn components() -> anyhow::Result<PathBuf> {
    let dir = root().join("target/test-handlers");
    if !dir.join("thread.wasm").exists() {
        let ok = Command::new(root().join("scripts/build-handlers"))
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/build-handlers failed");
    }
    Ok(dir)
}

#[path = "common/mongo.rs"]
mod mongo;
use mongo::Mongo;

/// Mean time per call of `f`, after a warm-up.
async fn per_op<F, Fut>(n: usize, mut f: F) -> anyhow::Result<(Duration, usize)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..WARMUP {
        f(i).await?;
    }
    let started = Instant::now();
    let mut done = 0;
    while done < n && started.elapsed() < TIME_CAP {
        f(WARMUP + done).await?;
        done += 1;
    }
    Ok((started.elapsed() / u32::try_from(done.max(1))?, done))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// (get, upsert, versioned upsert) per operation.
async fn store_ops(store: &dyn Store) -> anyhow::Result<[(Duration, usize); 3]> {
    let body = r#"{"title":"Write the README","state":"ready","priority":2,"tags":["docs"]}"#;
    for i in 0..100 {
        store
            .upsert("bench", "docs", &format!("d{i}"), body, None)
            .await?;
    }
    let get = per_op(OPS, |i| async move {
        let doc = store.get("bench", "docs", &format!("d{}", i % 100)).await?;
        anyhow::ensure!(doc.is_some(), "missing document");
        Ok(())
    })
    .await?;
    let upsert = per_op(OPS, |i| async move {
        store
            .upsert("bench", "docs", &format!("d{}", i % 100), body, None)
            .await?;
        Ok(())
    })
    .await?;
    store.upsert("bench", "docs", "v", body, Some(0)).await?;
    let mut version = 1;
    let versioned = per_op(OPS, |_| {
        let expected = version;
        version += 1;
        async move {
            store
                .upsert("bench", "docs", "v", body, Some(expected))
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok([get, upsert, versioned])
}

fn marker(i: usize) -> Marker {
    Marker {
        message_id: format!("m{i}-{}", parallel_you_core::envelope::new_id()),
        events: vec![r#"{"meta":{},"body":{}}"#.to_owned()],
        at_ms: 1,
        lease_until_ms: 1,
    }
}

/// (separate operations, one unit of work) per command.
async fn effects(store: Arc<dyn Store>) -> anyhow::Result<[(Duration, usize); 2]> {
    let body = r#"{"title":"Write the README","state":"ready","priority":2}"#;
    let store = &store;
    let separate = per_op(OPS, |i| async move {
        store
            .upsert("bench", "fx", &format!("a{}", i % 100), body, None)
            .await?;
        store
            .upsert("bench", "fx", &format!("b{}", i % 100), body, None)
            .await?;
        let commit = Commit {
            ops: Vec::new(),
            marker: Some(marker(i)),
        };
        store.commit(&commit).await?;
        Ok(())
    })
    .await?;
    let unit = per_op(OPS, |i| async move {
        let mut unit = UnitOfWork::new(store.clone(), Arc::from("bench"), UnitLimits::default());
        unit.upsert("fx", &format!("a{}", i % 100), body, None)
            .await?;
        unit.upsert("fx", &format!("b{}", i % 100), body, None)
            .await?;
        let marker = marker(i);
        let id = marker.message_id.clone();
        let commit = Commit {
            ops: unit.take_ops(),
            marker: Some(marker),
        };
        store.commit(&commit).await?;
        store.mark_sent(&id).await?;
        Ok(())
    })
    .await?;
    Ok([separate, unit])
}

async fn create_and_start(host: &Host, sink: &Arc<Collector>, i: usize) -> anyhow::Result<()> {
    let create = Envelope::command(
        "thread.task.create",
        &format!(r#"{{"title":"Bench task {i}","energy":"light"}}"#),
    )?;
    let events = host.dispatch(create, sink.clone()).await;
    sink.take();
    let created = events
        .last()
        .filter(|e| error_code_of(e).is_none())
        .ok_or_else(|| anyhow::anyhow!("create failed: {events:?}"))?;
    let body: serde_json::Value = serde_json::from_str(created.body.get())?;
    let id = body["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id in {body}"))?;
    let start = Envelope::command("thread.start", &format!(r#"{{"id":"{id}"}}"#))?;
    let events = host.dispatch(start, sink.clone()).await;
    sink.take();
    anyhow::ensure!(
        events.iter().all(|e| error_code_of(e).is_none()),
        "start failed: {events:?}"
    );
    Ok(())
}

/// (per pair one at a time, pairs/s with `IN_FLIGHT` at once).
async fn thread_pairs(store: Arc<dyn Store>) -> anyhow::Result<((Duration, usize), f64)> {
    let handlers = tempfile::tempdir()?;
    std::fs::copy(
        components()?.join("thread.wasm"),
        handlers.path().join("thread.wasm"),
    )?;
    let host = Arc::new(Host::new(HostConfig::default(), store)?);
    host.load_dir(handlers.path()).await?;
    anyhow::ensure!(
        host.registry().failures().is_empty(),
        "thread.wasm did not load"
    );
    let sink = Arc::new(Collector::new());
    let serial = per_op(PAIRS, |i| {
        let host = host.clone();
        let sink = sink.clone();
        async move { create_and_start(&host, &sink, i).await }
    })
    .await?;
    let per_task = PAIRS / IN_FLIGHT;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..IN_FLIGHT {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let sink = Arc::new(Collector::new());
            let mut done = 0;
            while done < per_task && started.elapsed() < TIME_CAP {
                create_and_start(&host, &sink, w * per_task + done).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await??;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    Ok((serial, rate))
}

async fn run() -> anyhow::Result<()> {
    let mongo = Mongo::find_or_start()?;
    let db = format!(
        "pyou_bench_{}",
        parallel_you_core::envelope::new_id().to_lowercase()
    );
    let mongo_store = Arc::new(MongoStore::connect(&mongo.uri, Some(&db)).await?);
    let data = tempfile::tempdir()?;
    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("sqlite", Arc::new(SqliteStore::open_dir(data.path())?)),
        ("mongodb", mongo_store.clone()),
    ];
    println!("MongoDB server: {} (database {db})", mongo.uri);
    println!();
    println!(
        "{:<10} {:>12} {:>12} {:>16} {:>16} {:>18}",
        "store",
        "get µs/op",
        "upsert µs/op",
        "versioned µs/op",
        "pair µs (serial)",
        "pairs/s (8 in flight)"
    );
    let mut rows = Vec::new();
    let mut effect_rows = Vec::new();
    for (name, store) in &stores {
        let [get, upsert, versioned] = store_ops(store.as_ref()).await?;
        let (serial, rate) = thread_pairs(store.clone()).await?;
        println!(
            "{name:<10} {:>12.1} {:>12.1} {:>16.1} {:>16.1} {:>18.0}",
            us(get.0),
            us(upsert.0),
            us(versioned.0),
            us(serial.0),
            rate
        );
        rows.push((name, get, upsert, versioned, serial));
        effect_rows.push((name, effects(store.clone()).await?));
    }
    println!();
    println!(
        "{:<10} {:>22} {:>20} {:>8}",
        "store", "separate ops µs/cmd", "unit of work µs/cmd", "ratio"
    );
    for (name, [separate, unit]) in &effect_rows {
        println!(
            "{name:<10} {:>22.1} {:>20.1} {:>8.2}  (n = {}, {})",
            us(separate.0),
            us(unit.0),
            unit.0.as_secs_f64() / separate.0.as_secs_f64(),
            separate.1,
            unit.1
        );
    }
    println!();
    for (name, get, upsert, versioned, serial) in rows {
        println!(
            "{name}: n = {} get, {} upsert, {} versioned, {} serial pairs",
            get.1, upsert.1, versioned.1, serial.1
        );
    }
    if let Err(e) = mongo_store.backend().database().drop().await {
        eprintln!("could not drop {db}: {e}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
