//! Events per second through a no-op reactor (`rnoop`: parses the event's
//! body and returns nothing), against a native subscriber doing the same
//! JSON work on the same bus, on the in-process bus and on RabbitMQ, and on
//! RabbitMQ a raw `lapin` subscriber as the ceiling: consume, parse the
//! envelope and its body, ack (acks pipelined on tasks, for both).
//!
//! The reactor pays what a reactor must: the processed-marker lookup, a
//! fresh sandboxed instance, and the commit of the marker (MemoryStore),
//! before the ack; the native subscriber and the raw loop keep nothing. The
//! reactor runs at the default concurrency (one event at a time per host,
//! which keeps a read model's writes in order) and at 8.
//!
//! Every contender drains the same number of events preloaded into its own
//! queue, timed from the start of its consumer to its last event; on
//! RabbitMQ each run gets a broker node of its own (a long-lived node grows
//! slower from run to run, see `benches/amqp.rs`). Bounded: `EVENTS`
//! events per run, `ROUNDS` rounds, `RUN_CAP` per run.
//!
//! Run with `cargo bench --bench reactor` (RabbitMQ from
//! `scripts/install-rabbitmq`; without it only the in-process figures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/all/common/rabbit.rs"]
#[allow(dead_code, unreachable_pub)]
mod rabbit;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use parallel_you_core::bus::Publisher;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::{Bus, InProcessBus, MemoryStore};
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig, EVENTS_EXCHANGE};
use parallel_you_host::{Host, HostConfig, ReactorConfig};

/// Events per run; rounds per contender.
const EVENTS: usize = 5_000;
const ROUNDS: usize = 3;
const RUN_CAP: Duration = Duration::from_secs(120);
const PREFETCH: u16 = 256;

/// A folder holding only the no-op reactor.
fn components() -> anyhow::Result<tempfile::TempDir> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = root.join("target/test-handlers/rnoop.wasm");
    if !built.exists() {
        let ok = std::process::Command::new(root.join("scripts/build-handlers"))
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/build-handlers failed");
    }
    let dir = tempfile::tempdir()?;
    std::fs::copy(&built, dir.path().join("rnoop.wasm"))?;
    Ok(dir)
}

/// The `i`-th event: `noop.ponged` with a small JSON body.
fn event(i: usize) -> Envelope {
    let cause = Envelope::command("noop.ping", "{}").expect("a valid command");
    let body = serde_json::value::to_raw_value(&serde_json::json!({
        "n": i,
        "note": "an event of the reactor benchmark, about a hundred bytes of text in all",
        "tags": ["a", "b", "c"],
    }))
    .expect("JSON");
    Envelope::event_for(&cause.meta, "noop.ponged", body)
}

/// Publishes the events, 256 at a time.
async fn preload(bus: &dyn Publisher) -> anyhow::Result<()> {
    let sends = futures::stream::iter(0..EVENTS)
        .map(|i| async move { bus.publish(event(i)).await })
        .buffer_unordered(256);
    futures::pin_mut!(sends);
    while let Some(sent) = sends.next().await {
        sent?;
    }
    Ok(())
}

/// The JSON work every contender does per event.
fn parse_body(text: &str) {
    let body: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    std::hint::black_box(body);
}

/// A host over `bus` with `rnoop` loaded, reactors at `concurrency`.
async fn reactor_host(dir: &Path, concurrency: usize) -> anyhow::Result<Arc<Host>> {
    let config = HostConfig {
        reactors: ReactorConfig {
            concurrency,
            ..ReactorConfig::default()
        },
        ..HostConfig::default()
    };
    let host = Arc::new(Host::new(config, Arc::new(MemoryStore::new()))?);
    host.load_dir(dir).await?;
    Ok(host)
}

/// Serves `host` on `bus` (its events preloaded) until every event has
/// been through `rnoop`; returns the time it took.
async fn drain_reactor(host: &Arc<Host>, bus: Arc<dyn Bus>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let serving = host.serve(bus).await?;
    loop {
        let done = host.metrics().reactor_counts("rnoop").0 as usize;
        if done >= EVENTS {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < RUN_CAP,
            "only {done} of {EVENTS} events"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    serving.shutdown(Duration::from_secs(10)).await;
    Ok(took)
}

/// Consumes the reactor queue `domain` of `bus` natively: parse, then ack
/// on a task of its own (acks pipelined, as the host's consumers do), the
/// time taken once every ack went out.
async fn drain_native(bus: &dyn Bus, domain: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut deliveries = bus.consume_reactor(domain).await?;
    let mut acks = tokio::task::JoinSet::new();
    for seen in 0..EVENTS {
        anyhow::ensure!(
            started.elapsed() < RUN_CAP,
            "only {seen} of {EVENTS} events"
        );
        let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the queue ended after {seen} events"))?;
        if let Ok(event) = &delivery.message {
            parse_body(event.body.get());
        }
        acks.spawn(delivery.ack());
    }
    while let Some(acked) = acks.join_next().await {
        acked??;
    }
    Ok(started.elapsed())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Contender {
    Reactor1,
    Reactor8,
    Native,
    Raw,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Reactor1 => "no-op reactor, concurrency 1 (default)",
            Contender::Reactor8 => "no-op reactor, concurrency 8",
            Contender::Native => "native subscriber (same bus queue, parse + ack)",
            Contender::Raw => "raw lapin subscriber (parse + ack)",
        }
    }
}

async fn in_process(c: Contender, dir: &Path) -> anyhow::Result<Duration> {
    let bus = Arc::new(InProcessBus::new());
    let patterns = ["noop.ponged".to_owned()];
    match c {
        Contender::Reactor1 | Contender::Reactor8 => {
            let host = reactor_host(dir, if c == Contender::Reactor1 { 1 } else { 8 }).await?;
            bus.bind_reactor("rnoop", &patterns).await?;
            preload(bus.as_ref()).await?;
            drain_reactor(&host, bus).await
        }
        Contender::Native => {
            bus.bind_reactor("native", &patterns).await?;
            preload(bus.as_ref()).await?;
            drain_native(bus.as_ref(), "native").await
        }
        Contender::Raw => anyhow::bail!("no raw loop in-process"),
    }
}

async fn connect(rabbit: &rabbit::Rabbit) -> anyhow::Result<AmqpBus> {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    config.prefetch = PREFETCH;
    Ok(AmqpBus::connect(config).await?)
}

async fn on_rabbit(c: Contender, dir: &Path) -> anyhow::Result<Duration> {
    let Some(rabbit) = rabbit::Rabbit::start() else {
        anyhow::bail!("rabbitmq-server is not installed: run scripts/install-rabbitmq");
    };
    let patterns = ["noop.ponged".to_owned()];
    // The publisher has its own connection, as another process would.
    let publisher = connect(&rabbit).await?;
    let took = match c {
        Contender::Reactor1 | Contender::Reactor8 => {
            let host = reactor_host(dir, if c == Contender::Reactor1 { 1 } else { 8 }).await?;
            let bus = Arc::new(connect(&rabbit).await?);
            bus.bind_reactor("rnoop", &patterns).await?;
            preload(&publisher).await?;
            let took = drain_reactor(&host, bus.clone()).await;
            bus.close().await;
            took
        }
        Contender::Native => {
            let bus = connect(&rabbit).await?;
            bus.bind_reactor("native", &patterns).await?;
            preload(&publisher).await?;
            let took = drain_native(&bus, "native").await;
            bus.close().await;
            took
        }
        Contender::Raw => {
            let conn = lapin::Connection::connect(&rabbit.url(), Default::default()).await?;
            let channel = conn.create_channel().await?;
            channel
                .queue_declare(
                    "bench.raw".into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_bind(
                    "bench.raw".into(),
                    EVENTS_EXCHANGE.into(),
                    "#.noop.ponged".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            preload(&publisher).await?;
            channel
                .basic_qos(PREFETCH, BasicQosOptions::default())
                .await?;
            let started = Instant::now();
            let mut consumer = channel
                .basic_consume(
                    "bench.raw".into(),
                    "raw".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let mut acks = tokio::task::JoinSet::new();
            for seen in 0..EVENTS {
                anyhow::ensure!(
                    started.elapsed() < RUN_CAP,
                    "only {seen} of {EVENTS} events"
                );
                let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the consumer ended after {seen}"))??;
                if let Ok(text) = std::str::from_utf8(&delivery.data) {
                    if let Ok(event) = Envelope::from_json(text, 1 << 20) {
                        parse_body(event.body.get());
                    }
                }
                acks.spawn(async move { delivery.acker.ack(BasicAckOptions::default()).await });
            }
            while let Some(acked) = acks.join_next().await {
                acked??;
            }
            let took = started.elapsed();
            let _ = conn.close(200, "done".into()).await;
            Ok(took)
        }
    };
    publisher.close().await;
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn main() -> anyhow::Result<()> {
    let dir = components()?;
    let runtime = tokio::runtime::Runtime::new()?;
    // `cargo bench --bench reactor -- in-process` skips RabbitMQ (for
    // profiling).
    let only_in_process = std::env::args().skip(1).any(|a| a == "in-process");
    let with_rabbit =
        !only_in_process && Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists();
    let buses: Vec<(&str, Vec<Contender>)> = {
        let mut b = vec![(
            "in-process",
            vec![Contender::Native, Contender::Reactor1, Contender::Reactor8],
        )];
        if with_rabbit {
            b.push((
                "RabbitMQ",
                vec![
                    Contender::Raw,
                    Contender::Native,
                    Contender::Reactor1,
                    Contender::Reactor8,
                ],
            ));
        } else if !only_in_process {
            println!("rabbitmq-server is not installed: in-process figures only");
        }
        b
    };
    let mut table = Vec::new();
    runtime.block_on(async {
        for (bus, contenders) in &buses {
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
            for round in 0..ROUNDS {
                // Rotate who goes first from round to round.
                for k in 0..contenders.len() {
                    let i = (k + round) % contenders.len();
                    let c = contenders[i];
                    let took = if *bus == "in-process" {
                        in_process(c, dir.path()).await?
                    } else {
                        // The whole run, broker set-up and the last acks
                        // included, is bounded: a stalled one fails the
                        // bench instead of waiting forever.
                        tokio::time::timeout(
                            RUN_CAP + Duration::from_secs(60),
                            on_rabbit(c, dir.path()),
                        )
                        .await
                        .map_err(|_| anyhow::anyhow!("{} on RabbitMQ stalled", c.name()))??
                    };
                    let rate = EVENTS as f64 / took.as_secs_f64();
                    println!(
                        "round {round}: {bus:<10} {:<48} {rate:>8.0} events/s",
                        c.name()
                    );
                    rates[i].push(rate);
                }
            }
            let medians: Vec<f64> = rates.into_iter().map(median).collect();
            let native = contenders
                .iter()
                .position(|c| *c == Contender::Native)
                .map(|i| medians[i]);
            let raw = contenders
                .iter()
                .position(|c| *c == Contender::Raw)
                .map(|i| medians[i]);
            for (c, m) in contenders.iter().zip(&medians) {
                table.push((*bus, *c, *m, native.map(|n| m / n), raw.map(|r| m / r)));
            }
        }
        anyhow::Ok(())
    })?;
    println!();
    println!("{EVENTS} events per run, medians of {ROUNDS} rounds (RabbitMQ: a fresh broker per run, prefetch {PREFETCH}, persistent):");
    println!("| bus | subscriber | events/s | vs native | vs raw lapin |");
    println!("|---|---|---:|---:|---:|");
    let pct = |r: Option<f64>| r.map_or(String::new(), |r| format!("{:.0} %", 100.0 * r));
    for (bus, c, m, n, r) in table {
        println!(
            "| {bus} | {} | {m:.0} | {} | {} |",
            c.name(),
            pct(n),
            pct(r)
        );
    }
    Ok(())
}
