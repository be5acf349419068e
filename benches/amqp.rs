//! Commands per second over RabbitMQ: the host running the no-op component
//! (fresh instance per command, idempotency record, one event out) beside a
//! raw `lapin` loop doing the least a host must: consume a command, publish
//! one persistent event with a confirm, ack after the confirm, a task per
//! delivery. Same broker version and settings, same prefetch, same message
//! count, the same message properties on the wire, in one run. Each side consumes on its own
//! connection, apart from the observer that preloads the commands and counts
//! the events, as a `pyou host` process would. Besides commands/s it prints
//! the CPU time per command of this process and of the broker, which share
//! the machine's cores.
//!
//! Every run of either loop gets a broker node of its own, started fresh on
//! free loopback ports and stopped after it: a long-lived node grows slower
//! from run to run (its queue process keeps a heap of tens of MB after each
//! 20,000-message round), which taxed whichever loop ran later. The order
//! alternates from round to round, and the headline is the median of the
//! per-round ratios.
//!
//! Run with `cargo bench --bench amqp` (needs `scripts/install-rabbitmq`).
//! Prints a table; `BENCHMARKS.md` records the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/all/common/rabbit.rs"]
#[allow(dead_code, unreachable_pub)]
mod rabbit;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::host_info::CommandInfo;
use parallel_you_core::{Bus, MemoryStore};
use parallel_you_host::bus::amqp::{domain_queue, AmqpBus, AmqpConfig, EVENTS_EXCHANGE};
use parallel_you_host::{Host, HostConfig};

/// Commands per round and rounds per contender, unless
/// `PYOU_BENCH_COMMANDS` / `PYOU_BENCH_ROUNDS` say otherwise (fewer, to run
/// one side under a profiler such as callgrind).
const COMMANDS_DEFAULT: usize = 20_000;
const ROUNDS_DEFAULT: usize = 6;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

static COMMANDS_CELL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Commands per round.
fn commands() -> usize {
    *COMMANDS_CELL.get_or_init(|| knob("PYOU_BENCH_COMMANDS", COMMANDS_DEFAULT))
}
const PREFETCH: u16 = 256;
const ROUND_CAP: Duration = Duration::from_secs(180);

/// A folder holding only the no-op component, so each round loads (and
/// compiles) just that.
fn components() -> anyhow::Result<tempfile::TempDir> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = root.join("target/test-handlers/noop.wasm");
    if !built.exists() {
        let ok = std::process::Command::new(root.join("scripts/build-handlers"))
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/build-handlers failed");
    }
    let dir = tempfile::tempdir()?;
    std::fs::copy(&built, dir.path().join("noop.wasm"))?;
    Ok(dir)
}

async fn connect(rabbit: &rabbit::Rabbit) -> anyhow::Result<AmqpBus> {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    config.prefetch = PREFETCH;
    Ok(AmqpBus::connect(config).await?)
}

/// Queues [`commands`] ping commands (confirmed) before anyone consumes.
async fn preload(bus: &AmqpBus) -> anyhow::Result<()> {
    let sends = futures::stream::iter(0..commands())
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

/// Waits for [`commands`] events on `events`; returns how long it took.
async fn drain(
    events: &mut parallel_you_core::bus::Subscription,
    started: Instant,
) -> anyhow::Result<Duration> {
    let mut seen = 0;
    while seen < commands() {
        anyhow::ensure!(
            started.elapsed() < ROUND_CAP,
            "only {seen} of {} events",
            commands()
        );
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            seen += 1;
        }
    }
    Ok(started.elapsed())
}

async fn host_round(rabbit: &rabbit::Rabbit, dir: &Path) -> anyhow::Result<Round> {
    let observer = connect(rabbit).await?;
    observer
        .bind("noop", &[CommandInfo::bare("noop.ping")])
        .await?;
    let mut events = observer.subscribe("noop.ponged").await?;
    preload(&observer).await?;
    // The host has its own connection, as a `pyou host` process would.
    let bus = Arc::new(connect(rabbit).await?);
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryStore::new()),
    )?);
    host.load_dir(dir).await?;
    let cpu = Cpu::now(rabbit);
    let started = Instant::now();
    let serving = host.serve(bus.clone()).await?;
    let took = drain(&mut events, started).await?;
    let round = cpu.round(rabbit, took);
    serving.shutdown(Duration::from_secs(10)).await;
    bus.close().await;
    observer.close().await;
    Ok(round)
}

async fn raw_round(rabbit: &rabbit::Rabbit) -> anyhow::Result<Round> {
    let observer = connect(rabbit).await?;
    observer
        .bind("noop", &[CommandInfo::bare("noop.ping")])
        .await?;
    let mut events = observer.subscribe("noop.ponged").await?;
    preload(&observer).await?;
    let conn = lapin::Connection::connect(&rabbit.url(), Default::default()).await?;
    let consume = conn.create_channel().await?;
    consume
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let publish = conn.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let cpu = Cpu::now(rabbit);
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
                        // The properties the host's bus sets, so both
                        // loops put the same bytes on the wire.
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into())
                            .with_message_id(event.meta.message_id.as_str().into())
                            .with_correlation_id(event.meta.correlation_id.as_str().into()),
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
    let took = drain(&mut events, started).await?;
    let round = cpu.round(rabbit, took);
    worker.abort();
    let _ = conn.close(200, "done".into()).await;
    observer.close().await;
    Ok(round)
}

/// CPU time used so far by this process and by the broker's VM, from
/// `/proc` (Linux), in clock ticks.
struct Cpu {
    this: u64,
    broker: u64,
}

/// One round's figures.
struct Round {
    /// Commands per second.
    rate: f64,
    /// CPU µs per command in this process (the consumer, plus the
    /// observer that preloads and drains, alike in both loops).
    this_us: f64,
    /// CPU µs per command in the broker.
    broker_us: f64,
}

fn ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Cpu {
    fn now(rabbit: &rabbit::Rabbit) -> Cpu {
        Cpu {
            this: ticks("self"),
            broker: rabbit.vm_pid().map_or(0, |pid| ticks(&pid.to_string())),
        }
    }

    fn round(self, rabbit: &rabbit::Rabbit, took: Duration) -> Round {
        let end = Cpu::now(rabbit);
        let per_command = |ticks: u64| ticks as f64 / ticks_per_second() * 1e6 / commands() as f64;
        Round {
            rate: commands() as f64 / took.as_secs_f64(),
            this_us: per_command(end.this.saturating_sub(self.this)),
            broker_us: per_command(end.broker.saturating_sub(self.broker)),
        }
    }
}

fn median(rounds: &[Round], figure: impl Fn(&Round) -> f64) -> f64 {
    middle(rounds.iter().map(figure).collect())
}

/// The median (of an even count, the mean of the two middle values).
fn middle(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

/// One run of one loop on a broker node of its own.
async fn run(side: Side, dir: &Path) -> anyhow::Result<Round> {
    let Some(rabbit) = rabbit::Rabbit::start() else {
        anyhow::bail!("rabbitmq-server is not installed: run scripts/install-rabbitmq");
    };
    match side {
        Side::Host => host_round(&rabbit, dir).await,
        Side::Raw => raw_round(&rabbit).await,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Raw,
    Host,
}

fn main() -> anyhow::Result<()> {
    let dir = components()?;
    // `cargo bench --bench amqp -- host` (or `-- raw`) runs one side only,
    // for profiling.
    let only = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| if a == "host" { Side::Host } else { Side::Raw });
    let rounds = knob("PYOU_BENCH_ROUNDS", ROUNDS_DEFAULT);
    let runtime = tokio::runtime::Runtime::new()?;
    let (mut raw, mut host, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            if let Some(side) = only {
                let r = run(side, dir.path()).await?;
                let name = if side == Side::Host { "host" } else { "raw" };
                println!("round {round}: {name} {:>6.0} cmd/s ({:>4.0} + {:>4.0} µs CPU)", r.rate, r.this_us, r.broker_us);
                continue;
            }
            // Alternate which loop goes first.
            let (r, h) = if round.is_multiple_of(2) {
                let r = run(Side::Raw, dir.path()).await?;
                (r, run(Side::Host, dir.path()).await?)
            } else {
                let h = run(Side::Host, dir.path()).await?;
                (run(Side::Raw, dir.path()).await?, h)
            };
            let ratio = h.rate / r.rate;
            println!(
                "round {round}: raw lapin {:>6.0} cmd/s ({:>4.0} + {:>4.0} µs CPU)   host {:>6.0} cmd/s ({:>4.0} + {:>4.0} µs CPU)   {:>3.0} %",
                r.rate, r.this_us, r.broker_us, h.rate, h.this_us, h.broker_us, 100.0 * ratio
            );
            raw.push(r);
            host.push(h);
            ratios.push(ratio);
        }
        anyhow::Ok(())
    })?;
    if raw.is_empty() {
        return Ok(());
    }
    println!();
    println!("{} commands per round, prefetch {PREFETCH}, persistent, confirms, ack after confirm; medians of {rounds}, a fresh broker per run:", commands());
    println!("| loop | commands/s | CPU µs/command, this process | CPU µs/command, broker |");
    println!("|---|---:|---:|---:|");
    for (name, rounds) in [
        ("raw lapin consume → publish → ack", &raw),
        ("host, no-op component, fresh instance", &host),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            median(rounds, |r| r.rate),
            median(rounds, |r| r.this_us),
            median(rounds, |r| r.broker_us)
        );
    }
    let (lowest, highest) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    println!(
        "| host / raw, median of the per-round ratios | {:.0} % (lowest {:.0} %, highest {:.0} %) | | |",
        100.0 * middle(ratios),
        100.0 * lowest,
        100.0 * highest
    );
    Ok(())
}
