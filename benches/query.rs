//! `thread.list` as the store grows: p50 of one page of 50 threads under a
//! selective filter the thread domain indexes (`state` and `archived`):
//! 100 threads match at every size, spread evenly through the id order
//! (10 % of 1k, 0.1 % of 100k), so without the index the page costs a
//! scan of half the collection. At 1k, 10k and 100k threads, on SQLite
//! and MongoDB; with the declared index, then with it dropped. Each case is
//! timed twice: the whole command through `Host::dispatch` with the real
//! thread component, and the store's `list` of the same filter alone.
//!
//! The threads are written through the store directly, in batches (copies
//! of one a command created, so the component reads them like its own),
//! not through commands: 100k commands would take minutes.
//!
//! Run with `cargo bench --bench query` (`-- 1000 10000` for fewer sizes,
//! `-- mongodb` for one store),
//! or `cargo test --bench query` for a debug build (slower throughout; the
//! ratios between sizes are what the target is about).
//! MongoDB is the server at `PYOU_TEST_MONGO_URI`, else a SecantusDB that
//! `scripts/start-mongo` starts for the run and stops after.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;
use parallel_you_core::store::{Checked, Commit, Filter, Op, Store};
use parallel_you_host::store::{MongoStore, SqliteStore};
use parallel_you_host::{Host, HostConfig};
use serde_json::Value;

/// Sizes measured unless given on the command line.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Threads written per commit while filling.
const BATCH: usize = 500;
/// Longest a fill may take before the run fails.
const FILL_CAP: Duration = Duration::from_secs(1500);
/// Samples per case, bounded in count and in time.
const SAMPLES: usize = 200;
const TIME_CAP: Duration = Duration::from_secs(8);
const WARMUP: usize = 5;
/// Threads the selective filter matches, whatever the size.
const MATCHING: usize = 100;
/// The command: the first page of 50 blocked threads (not archived, the
/// default), in id order.
const LIST: &str = r#"{"state":"blocked","limit":50}"#;
/// Why a command sample failed when it ran past the handler's deadline.
const TIMED_OUT: &str = "thread.list ran past the handler's deadline";
/// The store filter `thread.list` runs for [`LIST`].
const FILTER: &str = r#"{"state":"blocked","archived":false,"$limit":51}"#;

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

/// One store under test, and how to drop the thread domain's indexes.
enum Under {
    /// The database file, and the folder holding it (removed on drop).
    Sqlite(PathBuf, #[allow(dead_code)] tempfile::TempDir),
    Mongo(Arc<Checked<MongoStore>>),
}

impl Under {
    async fn drop_indexes(&self) -> anyhow::Result<usize> {
        match self {
            Under::Sqlite(file, _) => {
                let conn = rusqlite::Connection::open(file)?;
                let names: Vec<String> = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'documents_by_%'")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for name in &names {
                    conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
                }
                Ok(names.len())
            }
            Under::Mongo(store) => {
                let names = store.backend().index_names("thread", "threads").await?;
                // The thread domain's `threads` collection (MongoStore's
                // `docs.<domain>.<collection>`).
                let coll = store
                    .backend()
                    .database()
                    .collection::<()>("docs.thread.threads");
                let mut dropped = 0;
                for name in names.iter().filter(|n| n.starts_with("by_")) {
                    coll.drop_index(name).await?;
                    dropped += 1;
                }
                Ok(dropped)
            }
        }
    }

    async fn finish(self) {
        if let Under::Mongo(store) = self {
            let _ = store.backend().database().drop().await;
        }
    }
}

/// One thread made by `thread.task.create`, as stored: the template.
async fn template(host: &Host, store: &dyn Store) -> anyhow::Result<Value> {
    let sink = Arc::new(Collector::new());
    let create = Envelope::command(
        "thread.task.create",
        r#"{"title":"Bench task","energy":"light"}"#,
    )?;
    let events = host.dispatch(create, sink).await;
    anyhow::ensure!(
        events.iter().all(|e| error_code_of(e).is_none()),
        "create failed: {events:?}"
    );
    let docs = store
        .list("thread", "threads", &Filter::parse("{}")?)
        .await?;
    let doc = docs
        .first()
        .ok_or_else(|| anyhow::anyhow!("the created thread is not stored"))?;
    let value: Value = serde_json::from_str(&doc.json)?;
    store.delete("thread", "threads", &doc.id).await?;
    Ok(value)
}

/// Writes `n` threads, [`MATCHING`] of them blocked (evenly spread), the
/// others ready or done, in batches of [`BATCH`].
async fn fill(store: &dyn Store, template: &Value, n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let every = (n / MATCHING).max(1);
    let mut ops = Vec::with_capacity(BATCH);
    for i in 0..n {
        let id = format!("t{i:07}");
        let mut doc = template.clone();
        let state = if i % every == every / 2 {
            "blocked"
        } else if i % 2 == 0 {
            "ready"
        } else {
            "done"
        };
        doc["id"] = Value::from(id.as_str());
        doc["title"] = Value::from(format!("Bench task {i}"));
        doc["state"] = Value::from(state);
        if state == "blocked" {
            doc["blocked_reason"] = Value::from("waiting on review");
        }
        ops.push(Op::put(
            "thread",
            "threads",
            &id,
            &serde_json::to_string(&doc)?,
            None,
        )?);
        if ops.len() == BATCH || i + 1 == n {
            let commit = Commit {
                ops: std::mem::take(&mut ops),
                marker: None,
            };
            store.commit(&commit).await?;
            anyhow::ensure!(
                started.elapsed() < FILL_CAP,
                "filling {n} threads took over {FILL_CAP:?}"
            );
        }
    }
    Ok(started.elapsed())
}

/// p50 of `f`, and how many samples it rests on.
async fn p50<F, Fut>(mut f: F) -> anyhow::Result<(Duration, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..WARMUP {
        f().await?;
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < SAMPLES && (samples.len() < 3 || started.elapsed() < TIME_CAP) {
        let t = Instant::now();
        f().await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok((samples[samples.len() / 2], samples.len()))
}

/// (thread.list through the host, the store's list alone), p50 each.
async fn measure(
    host: &Host,
    store: &dyn Store,
) -> anyhow::Result<(Option<(Duration, usize)>, (Duration, usize))> {
    let sink = Arc::new(Collector::new());
    // A scan can outlast the handler's deadline: that is a figure too.
    let command = p50(|| {
        let sink = sink.clone();
        async move {
            let events = host
                .dispatch(Envelope::command("thread.list", LIST)?, sink.clone())
                .await;
            sink.take();
            let last = events.last();
            if last.and_then(error_code_of).as_deref() == Some("timeout") {
                anyhow::bail!(TIMED_OUT);
            }
            let listed = last
                .filter(|e| error_code_of(e).is_none())
                .ok_or_else(|| anyhow::anyhow!("thread.list failed: {events:?}"))?;
            let body: Value = serde_json::from_str(listed.body.get())?;
            anyhow::ensure!(body["count"] == 50, "a page of 50, not {}", body["count"]);
            Ok(())
        }
    })
    .await;
    let command = match command {
        Ok(c) => Some(c),
        Err(e) if e.to_string() == TIMED_OUT => None,
        Err(e) => return Err(e),
    };
    let filter = &Filter::parse(FILTER)?;
    let list = p50(|| async move {
        let docs = store.list("thread", "threads", filter).await?;
        anyhow::ensure!(docs.len() == 51, "51 documents, not {}", docs.len());
        Ok(())
    })
    .await?;
    Ok((command, list))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn case(kind: &str, n: usize, mongo: &Mongo) -> anyhow::Result<()> {
    let (under, store): (Under, Arc<dyn Store>) = match kind {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let store = SqliteStore::open_dir(dir.path())?;
            let file = store.backend().path().to_owned();
            (Under::Sqlite(file, dir), Arc::new(store))
        }
        _ => {
            let db = format!(
                "pyou_bench_{}",
                parallel_you_core::envelope::new_id().to_lowercase()
            );
            let store = Arc::new(MongoStore::connect(&mongo.uri, Some(&db)).await?);
            (Under::Mongo(store.clone()), store)
        }
    };
    let handlers = tempfile::tempdir()?;
    std::fs::copy(
        components()?.join("thread.wasm"),
        handlers.path().join("thread.wasm"),
    )?;
    // Loading the component makes its declared indexes.
    let host = Arc::new(Host::new(HostConfig::default(), store.clone())?);
    host.load_dir(handlers.path()).await?;
    anyhow::ensure!(
        host.registry().failures().is_empty(),
        "thread.wasm did not load: {:?}",
        host.registry().failures()
    );
    let template = template(&host, store.as_ref()).await?;
    let filled = fill(store.as_ref(), &template, n).await?;
    let (cmd, list) = measure(&host, store.as_ref()).await?;
    let cmd = cmd.ok_or_else(|| anyhow::anyhow!("{TIMED_OUT} with the index"))?;
    println!(
        "{kind:<8} {n:>7} {:>9.2} {:>9.2}   (indexed; n = {}/{}; fill {:.1}s)",
        ms(cmd.0),
        ms(list.0),
        cmd.1,
        list.1,
        filled.as_secs_f64(),
    );
    let dropped = under.drop_indexes().await?;
    let (cmd_bare, list_bare) = measure(&host, store.as_ref()).await?;
    let shown = cmd_bare.map_or_else(|| "deadline".to_owned(), |c| format!("{:.2}", ms(c.0)));
    println!(
        "{kind:<8} {n:>7} {shown:>9} {:>9.2}   (without the {dropped} indexes; n = {}/{})",
        ms(list_bare.0),
        cmd_bare.map_or(0, |c| c.1),
        list_bare.1,
    );
    under.finish().await;
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        SIZES.to_vec()
    } else {
        sizes
    };
    let mongo = Mongo::find_or_start()?;
    println!("MongoDB server: {}", mongo.uri);
    println!(
        "thread.list {LIST}: p50 ms with the declared index / without it; `list` = the store's list of {FILTER} alone"
    );
    println!();
    println!(
        "{:<8} {:>7} {:>9} {:>9}",
        "store", "threads", "command", "list"
    );
    // `sqlite` or `mongodb` among the arguments: that store only.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a == "sqlite" || a == "mongodb")
        .collect();
    for kind in ["sqlite", "mongodb"] {
        if !named.is_empty() && !named.iter().any(|k| k == kind) {
            continue;
        }
        for &n in &sizes {
            case(kind, n, &mongo).await?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; it is not a size.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}
