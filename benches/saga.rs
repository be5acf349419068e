//! Saga instances per second for a 3-step saga (`trip` over the `ledger`
//! test handler: start → three `ledger.apply` → completed), against the
//! same three commands sent directly (each waited for, one after the
//! other, as the saga does), in the same run on the in-process bus: the
//! difference per step is what the saga's reactor costs (the instance
//! document read and written, the wait index, the step timer set and
//! cancelled, the transition events, a fresh reactor instance per answer).
//!
//! Bounded: `INSTANCES` per run, at most `IN_FLIGHT` at once, `ROUNDS`
//! rounds, `RUN_CAP` per run. Run with `cargo bench --bench saga` (it runs
//! `scripts/build-handlers` when the components are missing). RabbitMQ is
//! not measured yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::{Bus, InProcessBus, MemoryStore};
use parallel_you_host::{Host, HostConfig};

const INSTANCES: usize = 500;
const IN_FLIGHT: usize = 32;
const ROUNDS: usize = 3;
const RUN_CAP: Duration = Duration::from_secs(120);

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

async fn serving(
    dir: &Path,
) -> anyhow::Result<(
    Arc<Host>,
    Arc<InProcessBus>,
    parallel_you_host::host::Serving,
)> {
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryStore::new()),
    )?);
    host.load_dir(dir).await?;
    let bus = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await?;
    Ok((host, bus, serving))
}

/// Sends `key` with `body` on `session` and waits for the event `answer`
/// on it.
async fn ask(
    bus: &InProcessBus,
    session: &str,
    key: &str,
    body: serde_json::Value,
    answer: &str,
) -> anyhow::Result<()> {
    let mut events = bus
        .subscribe(&format!("session.{session}.{answer}"))
        .await?;
    let cmd = Envelope::command(key, &body.to_string())?.with_session(session);
    bus.send(cmd).await?;
    tokio::time::timeout(RUN_CAP, events.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
    Ok(())
}

/// `INSTANCES` sagas, `IN_FLIGHT` at once; their wall time.
async fn sagas(bus: &InProcessBus, round: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let runs = futures::stream::iter(0..INSTANCES)
        .map(|i| async move {
            let run = format!("s{round}-{i}");
            ask(
                bus,
                &run,
                "ledger.begin",
                serde_json::json!({ "run": run }),
                "trip.completed",
            )
            .await
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(started.elapsed())
}

/// The same work sent directly: three applies per instance, in order.
async fn direct(bus: &InProcessBus, round: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let runs = futures::stream::iter(0..INSTANCES)
        .map(|i| async move {
            let run = format!("d{round}-{i}");
            for step in ["a", "b", "c"] {
                let body = serde_json::json!({ "key": format!("{run}-{step}"), "mode": "ok" });
                ask(bus, &run, "ledger.apply", body, "ledger.applied").await?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = components()?;
        let (_host, bus, serving) = serving(dir.path()).await?;
        println!("| round | sagas/s | direct instances/s | per-step overhead |");
        println!("|---|---|---|---|");
        for round in 0..ROUNDS {
            let saga = sagas(&bus, round).await?;
            let plain = direct(&bus, round).await?;
            let per_step = saga.saturating_sub(plain).as_secs_f64() * 1e6 / (3 * INSTANCES) as f64;
            println!(
                "| {round} | {:.0} | {:.0} | {per_step:.0} µs |",
                INSTANCES as f64 / saga.as_secs_f64(),
                INSTANCES as f64 / plain.as_secs_f64(),
            );
        }
        serving.shutdown(Duration::from_secs(10)).await;
        anyhow::Ok(())
    })
}
