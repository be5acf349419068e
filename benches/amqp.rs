//! Commands per second over RabbitMQ: the host running the no-op component
//! (fresh instance per command, idempotency record, one event out) beside a
//! raw `lapin` loop doing the least a host must: consume a command, publish
//! one persistent event with a confirm, ack after the confirm, a task per
//! delivery. Same broker, same prefetch, same message count, in one run.
//!
//! Run with `cargo bench --bench amqp` (needs `scripts/install-rabbitmq`;
//! starts its own broker on free loopback ports and stops it). Prints a
//! table; `BENCHMARKS.md` records the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/rabbit.rs"]
#[allow(dead_code, unreachable_pub)]
mod rabbit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use parallel_you_host::bus::amqp::{domain_queue, AmqpBus, AmqpConfig, EVENTS_EXCHANGE};
use parallel_you_host::envelope::Envelope;
use parallel_you_host::{Bus, Host, HostConfig, MemoryStore};

/// Commands per round; rounds per contender.
const COMMANDS: usize = 5_000;
const ROUNDS: usize = 3;
const PREFETCH: u16 = 256;
const ROUND_CAP: Duration = Duration::from_secs(120);

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

async fn connect(rabbit: &rabbit::Rabbit) -> anyhow::Result<AmqpBus> {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    config.prefetch = PREFETCH;
    Ok(AmqpBus::connect(config).await?)
}

/// Queues `COMMANDS` ping commands (confirmed) before anyone consumes.
async fn preload(bus: &AmqpBus) -> anyhow::Result<()> {
    let sends = futures::stream::iter(0..COMMANDS)
        .map(|i| {
            let bus = bus.clone();
            async move {
                let cmd = Envelope::command("noop.ping", &format!(r#"{{"n":{i}}}"#))
                    .map_err(|e| anyhow::anyhow!(e.reason))?;
                bus.send(cmd).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(256);
    futures::pin_mut!(sends);
    while let Some(sent) = sends.next().await {
        sent?;
    }
    Ok(())
}

/// Waits for `COMMANDS` events on `events`; returns how long it took.
async fn drain(
    events: &mut parallel_you_host::bus::Subscription,
    started: Instant,
) -> anyhow::Result<Duration> {
    let mut seen = 0;
    while seen < COMMANDS {
        anyhow::ensure!(
            started.elapsed() < ROUND_CAP,
            "only {seen} of {COMMANDS} events"
        );
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            seen += 1;
        }
    }
    Ok(started.elapsed())
}

async fn host_round(rabbit: &rabbit::Rabbit, dir: &Path) -> anyhow::Result<Duration> {
    let bus = Arc::new(connect(rabbit).await?);
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryStore::new()),
    )?);
    host.load_dir(dir).await?;
    let keys = host
        .registry()
        .handlers()
        .find(|h| h.manifest.domain == "noop")
        .map(|h| h.manifest.routing_keys())
        .unwrap_or_default();
    bus.bind("noop", &keys).await?;
    let mut events = bus.subscribe("noop.ponged").await?;
    preload(&bus).await?;
    let started = Instant::now();
    let serving = host.serve(bus.clone()).await?;
    let took = drain(&mut events, started).await;
    serving.shutdown(Duration::from_secs(10)).await;
    bus.close().await;
    took
}

async fn raw_round(rabbit: &rabbit::Rabbit) -> anyhow::Result<Duration> {
    let bus = connect(rabbit).await?;
    bus.bind("noop", &["noop.ping".to_owned()]).await?;
    let mut events = bus.subscribe("noop.ponged").await?;
    preload(&bus).await?;
    let conn = lapin::Connection::connect(&rabbit.url(), Default::default()).await?;
    let consume = conn.create_channel().await?;
    consume
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let publish = conn.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let started = Instant::now();
    let mut consumer = consume
        .basic_consume(
            domain_queue("noop").as_str().into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let worker = tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let publish = publish.clone();
            tokio::spawn(async move {
                // The same envelope work a host must do: parse the command,
                // build and serialise its event.
                let Ok(text) = std::str::from_utf8(&delivery.data) else {
                    return;
                };
                let Ok(cmd) = Envelope::from_json(text, 1 << 20) else {
                    return;
                };
                let event = Envelope::event_for(&cmd.meta, "noop.ponged", cmd.body.clone());
                let confirm = publish
                    .basic_publish(
                        EVENTS_EXCHANGE.into(),
                        event.topic().as_str().into(),
                        BasicPublishOptions::default(),
                        event.to_json().as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await;
                if let Ok(confirm) = confirm {
                    if confirm.await.is_ok() {
                        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                    }
                }
            });
        }
    });
    let took = drain(&mut events, started).await;
    worker.abort();
    let _ = conn.close(200, "done".into()).await;
    bus.close().await;
    took
}

fn rate(took: Duration) -> f64 {
    COMMANDS as f64 / took.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let dir = components()?;
    let Some(rabbit) = rabbit::Rabbit::start() else {
        anyhow::bail!("rabbitmq-server is not installed: run scripts/install-rabbitmq");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (mut raw, mut host) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        // Alternate, so drift in the machine's load hits both alike.
        for round in 0..ROUNDS {
            let r = rate(raw_round(&rabbit).await?);
            let h = rate(host_round(&rabbit, &dir).await?);
            println!("round {round}: raw lapin {r:>8.0} cmd/s   host {h:>8.0} cmd/s");
            raw.push(r);
            host.push(h);
        }
        anyhow::Ok(())
    })?;
    let (raw, host) = (median(raw), median(host));
    println!();
    println!("{COMMANDS} commands per round, prefetch {PREFETCH}, persistent, confirms, ack after confirm; medians of {ROUNDS}:");
    println!("| loop | commands/s |");
    println!("|---|---|");
    println!("| raw lapin consume → publish → ack | {raw:.0} |");
    println!("| host, no-op component, fresh instance | {host:.0} |");
    println!("| host / raw | {:.0} % |", 100.0 * host / raw);
    Ok(())
}
