//! Saga instances per second for a 3-step saga (`trip` over the `ledger`
//! test handler: start → three `ledger.apply` → completed), against the
//! same three commands sent directly (each waited for, one after the
//! other, as the saga does), in the same run, on the in-process bus and on
//! RabbitMQ: the difference per step is what the saga's reactor costs (the
//! instance document read and written, the wait index, the step timer set
//! and cancelled, the transition events, a fresh reactor instance per
//! answer; on RabbitMQ also the events' and commands' trips through the
//! broker to and from the reactor's queue).
//!
//! Each bus serves one host in this process (memory store, default
//! limits, reactors one event at a time as `pyou host` runs them; the
//! in-process bus a second time over SQLite, `pyou serve`'s store); on
//! RabbitMQ the host and the client that sends and follows have a
//! connection each, on a broker node started for the run on free loopback
//! ports. Answers are followed through one subscription per run (a
//! pattern over every session), so neither side pays a subscription per
//! request.
//!
//! Bounded: `INSTANCES` per run, at most `IN_FLIGHT` at once, `ROUNDS`
//! rounds, `RUN_CAP` per request. Run with `cargo bench --bench saga` (it
//! runs `scripts/build-handlers` when the components are missing; the
//! RabbitMQ half needs `scripts/install-rabbitmq`, and is skipped with a
//! line without it, or with `-- in-process`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/all/common/rabbit.rs"]
#[allow(dead_code, unreachable_pub)]
mod rabbit;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::{Bus, InProcessBus, MemoryStore, Store};
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use parallel_you_host::host::Serving;
use parallel_you_host::store::SqliteStore;
use parallel_you_host::{Host, HostConfig};
use tokio::sync::oneshot;

const INSTANCES: usize = 500;
const IN_FLIGHT: usize = 32;
const ROUNDS: usize = 3;
const RUN_CAP: Duration = Duration::from_secs(120);
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A folder with the ledger handler and the trip saga.
fn components() -> anyhow::Result<tempfile::TempDir> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = root.join("target/test-handlers");
    if !built.join("trip.wasm").exists() || !built.join("ledger.wasm").exists() {
        let ok = std::process::Command::new(root.join("scripts/build-handlers"))
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/build-handlers failed");
    }
    let dir = tempfile::tempdir()?;
    for name in ["trip", "ledger"] {
        std::fs::copy(
            built.join(format!("{name}.wasm")),
            dir.path().join(format!("{name}.wasm")),
        )?;
    }
    Ok(dir)
}

/// A host over `store` with the folder loaded, serving `bus`.
async fn serve_host(
    dir: &Path,
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
) -> anyhow::Result<(Arc<Host>, Serving)> {
    let host = Arc::new(Host::new(HostConfig::default(), store)?);
    host.load_dir(dir).await?;
    let serving = host.serve(bus).await?;
    Ok((host, serving))
}

/// The answers of one kind, followed through one subscription: each
/// awaited by the string at `pointer` in its body.
struct Answers {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Answers {
    async fn follow(bus: &dyn Bus, pattern: &str, pointer: &'static str) -> anyhow::Result<Self> {
        let mut events = bus.subscribe(pattern).await?;
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>> = Arc::default();
        let w = waiting.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                let Ok(body) = serde_json::from_str::<serde_json::Value>(ev.body.get()) else {
                    continue;
                };
                let Some(key) = body.pointer(pointer).and_then(|k| k.as_str()) else {
                    continue;
                };
                if let Some(tx) = w.lock().unwrap().remove(key) {
                    let _ = tx.send(());
                }
            }
        });
        Ok(Answers { waiting, task })
    }

    /// Sends `cmd` and waits for the answer keyed `key`.
    async fn ask(&self, bus: &dyn Bus, key: String, cmd: Envelope) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(key, tx);
        bus.send(cmd).await?;
        tokio::time::timeout(RUN_CAP, rx)
            .await?
            .map_err(|_| anyhow::anyhow!("the subscription ended"))?;
        Ok(())
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `INSTANCES` sagas, `IN_FLIGHT` at once; their wall time.
async fn sagas(bus: &dyn Bus, round: usize) -> anyhow::Result<Duration> {
    // The instance id is the starting command's correlation id.
    let answers = Answers::follow(bus, "session.*.trip.completed", "/id").await?;
    let started = Instant::now();
    let answers = &answers;
    let runs = futures::stream::iter(0..INSTANCES)
        .map(|i| async move {
            let run = format!("s{round}-{i}");
            let body = serde_json::json!({ "run": run }).to_string();
            let cmd = Envelope::command("ledger.begin", &body)?.with_session(&run);
            answers.ask(bus, cmd.meta.correlation_id.clone(), cmd).await
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(started.elapsed())
}

/// The same work sent directly: three applies per instance, in order.
async fn direct(bus: &dyn Bus, round: usize) -> anyhow::Result<Duration> {
    let answers = Answers::follow(bus, "session.*.ledger.applied", "/key").await?;
    let started = Instant::now();
    let answers = &answers;
    let runs = futures::stream::iter(0..INSTANCES)
        .map(|i| async move {
            let run = format!("d{round}-{i}");
            for step in ["a", "b", "c"] {
                let key = format!("{run}-{step}");
                let body = serde_json::json!({ "key": key, "mode": "ok" }).to_string();
                let cmd = Envelope::command("ledger.apply", &body)?.with_session(&run);
                answers.ask(bus, key, cmd).await?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(started.elapsed())
}

/// `ROUNDS` rounds of both on `bus`, the saga first in even rounds; a
/// table row per round.
async fn rounds(name: &str, bus: &dyn Bus) -> anyhow::Result<()> {
    for round in 0..ROUNDS {
        let (saga, plain) = if round % 2 == 0 {
            let s = sagas(bus, round).await?;
            (s, direct(bus, round).await?)
        } else {
            let d = direct(bus, round).await?;
            (sagas(bus, round).await?, d)
        };
        let per_step = saga.saturating_sub(plain).as_secs_f64() * 1e6 / (3 * INSTANCES) as f64;
        println!(
            "| {name} | {round} | {:.0} | {:.0} | {per_step:.0} µs |",
            INSTANCES as f64 / saga.as_secs_f64(),
            INSTANCES as f64 / plain.as_secs_f64(),
        );
    }
    Ok(())
}

async fn amqp(rabbit: &rabbit::Rabbit) -> anyhow::Result<AmqpBus> {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    Ok(AmqpBus::connect(config).await?)
}

fn main() -> anyhow::Result<()> {
    let only_in_process = std::env::args().skip(1).any(|a| a == "in-process");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = components()?;
        println!("| bus | round | sagas/s | direct instances/s | per-step overhead |");
        println!("|---|---|---|---|---|");
        let bus = Arc::new(InProcessBus::new());
        let (_host, serving) =
            serve_host(dir.path(), bus.clone(), Arc::new(MemoryStore::new())).await?;
        rounds("in-process", bus.as_ref()).await?;
        serving.shutdown(Duration::from_secs(10)).await;
        // The embedded store `pyou serve` uses: its filters run on the
        // declared indexes, where the memory store scans.
        let data = tempfile::tempdir()?;
        let bus = Arc::new(InProcessBus::new());
        let sqlite = Arc::new(SqliteStore::open_dir(data.path())?);
        let (_host, serving) = serve_host(dir.path(), bus.clone(), sqlite).await?;
        rounds("in-process, SQLite", bus.as_ref()).await?;
        serving.shutdown(Duration::from_secs(10)).await;

        if only_in_process {
            return anyhow::Ok(());
        }
        if !Path::new(RABBITMQ_SERVER).exists() {
            println!("rabbitmq-server is not installed (scripts/install-rabbitmq): in-process figures only");
            return anyhow::Ok(());
        }
        let Some(rabbit) = rabbit::Rabbit::start() else {
            anyhow::bail!("the RabbitMQ node did not start");
        };
        let (_host, serving) = serve_host(
            dir.path(),
            Arc::new(amqp(&rabbit).await?),
            Arc::new(MemoryStore::new()),
        )
        .await?;
        let client = amqp(&rabbit).await?;
        rounds("RabbitMQ", &client).await?;
        client.close().await;
        serving.shutdown(Duration::from_secs(10)).await;
        anyhow::Ok(())
    })
}
