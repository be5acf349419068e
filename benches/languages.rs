//! What a handler costs per language: component size, load (compile) time
//! and per-command cost through the host, for the Rust `counter`, the Python
//! `notes` and the JavaScript `stats` handlers, with a fresh instance per
//! command (the default) and with instance reuse (`InstancePolicy::Warm`).
//!
//! Run with `cargo bench --bench languages [-- COMPONENT…]` (it runs
//! `scripts/build-handlers` itself if the components are missing). Prints a table;
//! `docs/bench-languages.md` records the figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;
use parallel_you_core::store::{MemoryStore, Store};
use parallel_you_host::{Host, HostConfig, InstancePolicy};

/// Commands per measured case, bounded in count and in time.
const ITERATIONS: usize = 3_000;
const TIME_CAP: Duration = Duration::from_secs(8);
const WARMUP: usize = 30;

/// One handler per language, with a command that writes and one that reads.
struct Case {
    language: &'static str,
    component: &'static str,
    write: (&'static str, fn(usize) -> String),
    read: (&'static str, &'static str),
}

const CASES: &[Case] = &[
    Case {
        language: "Rust",
        component: "counter",
        write: ("counter.increment", |i| {
            format!(r#"{{"name":"n{}"}}"#, i % 100)
        }),
        read: ("counter.get", r#"{"name":"n1"}"#),
    },
    Case {
        language: "Python",
        component: "notes",
        write: ("notes.capture", |i| {
            format!(
                r#"{{"thread_id":"t{}","text":"note {i}","tags":["bench"]}}"#,
                i % 100
            )
        }),
        read: ("notes.search", r#"{"thread_id":"t1","limit":5}"#),
    },
    Case {
        language: "JavaScript",
        component: "stats",
        write: ("stats.record", |i| {
            format!(
                r#"{{"thread_id":"t{}","band":"deep","minutes":5}}"#,
                i % 100
            )
        }),
        read: ("stats.summary", r#"{"thread_id":"t1"}"#),
    },
];

fn components() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/test-handlers");
    let missing = CASES
        .iter()
        .any(|c| !dir.join(format!("{}.wasm", c.component)).exists());
    if missing {
        let ok = std::process::Command::new(root.join("scripts/build-handlers"))
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/build-handlers failed");
    }
    Ok(dir)
}

/// A host with one component loaded; returns it with the load time.
async fn host_with(dir: &Path, component: &str) -> anyhow::Result<(Arc<Host>, Duration)> {
    let handlers = tempfile::tempdir()?;
    let file = format!("{component}.wasm");
    std::fs::copy(dir.join(&file), handlers.path().join(&file))?;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let host = Arc::new(Host::new(HostConfig::default(), store)?);
    let started = Instant::now();
    host.load_dir(handlers.path()).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        host.registry().failures().is_empty(),
        "{file} did not load: {:?}",
        host.registry().failures()
    );
    Ok((host, took))
}

/// Median and mean wall time per command over a bounded run, and the
/// process's CPU time per command (steadier than wall time on a busy
/// machine; `None` where `/proc/self/stat` cannot be read).
struct Figure {
    median: Duration,
    mean: Duration,
    cpu: Option<Duration>,
    n: usize,
}

/// User + system CPU time of this process so far, from `/proc/self/stat`
/// (in clock ticks of 10 ms: read over runs of seconds).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

async fn measure(host: &Host, key: &str, body: impl Fn(usize) -> String) -> anyhow::Result<Figure> {
    let sink = Arc::new(Collector::new());
    let run = |i: usize| {
        let cmd = Envelope::command(key, &body(i));
        let sink = sink.clone();
        async move {
            let started = Instant::now();
            let events = host.dispatch(cmd?, sink.clone()).await;
            let took = started.elapsed();
            sink.take();
            anyhow::ensure!(
                events.iter().all(|e| error_code_of(e).is_none()),
                "{key}: {events:?}"
            );
            Ok(took)
        }
    };
    for i in 0..WARMUP {
        run(i).await?;
    }
    let started = Instant::now();
    let cpu_before = process_cpu();
    let mut samples = Vec::with_capacity(ITERATIONS);
    while samples.len() < ITERATIONS && started.elapsed() < TIME_CAP {
        samples.push(run(WARMUP + samples.len()).await?);
    }
    let n = u32::try_from(samples.len())?;
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before) / n);
    samples.sort();
    let total: Duration = samples.iter().sum();
    Ok(Figure {
        median: samples[samples.len() / 2],
        mean: total / n,
        cpu,
        n: samples.len(),
    })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run() -> anyhow::Result<()> {
    let dir = components()?;
    println!();
    println!(
        "{:<11} {:<25} {:>9} {:>9} {:>10} {:>10} {:>10} {:>6}",
        "language", "command", "size KiB", "load ms", "median µs", "mean µs", "cpu µs", "n"
    );
    // `cargo bench --bench languages -- notes stats` measures just those.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut rust_median = None;
    for case in CASES {
        if !only.is_empty() && !only.iter().any(|o| o == case.component) {
            continue;
        }
        let size = std::fs::metadata(dir.join(format!("{}.wasm", case.component)))?.len();
        let (host, load) = host_with(&dir, case.component).await?;
        let (write_key, write_body) = case.write;
        let (read_key, read_body) = case.read;
        let write = measure(&host, write_key, write_body).await?;
        let read = measure(&host, read_key, |_| read_body.to_owned()).await?;
        // The same commands with instance reuse (`InstancePolicy::Warm`).
        host.set_instance_policy(case.component, InstancePolicy::Warm { max_idle: 1 });
        let write_warm = measure(&host, write_key, write_body).await?;
        let read_warm = measure(&host, read_key, |_| read_body.to_owned()).await?;
        let warm_write_key = format!("{write_key} (warm)");
        let warm_read_key = format!("{read_key} (warm)");
        for (i, (key, f)) in [
            (write_key, &write),
            (read_key, &read),
            (warm_write_key.as_str(), &write_warm),
            (warm_read_key.as_str(), &read_warm),
        ]
        .into_iter()
        .enumerate()
        {
            let (size, load) = if i == 0 {
                (
                    format!("{}", size.div_ceil(1024)),
                    format!("{:.0}", load.as_secs_f64() * 1e3),
                )
            } else {
                (String::new(), String::new())
            };
            println!(
                "{:<11} {:<25} {:>9} {:>9} {:>10.1} {:>10.1} {:>10} {:>6}",
                case.language,
                key,
                size,
                load,
                us(f.median),
                us(f.mean),
                f.cpu.map_or("-".to_owned(), |c| format!("{:.0}", us(c))),
                f.n
            );
        }
        let median = us(write.median);
        match rust_median {
            None if case.language == "Rust" => rust_median = Some(median),
            None => {}
            Some(base) => println!(
                "{:<11} {:<25} {:>9} {:>9} {:>9.0}x",
                "",
                "  vs Rust (write)",
                "",
                "",
                median / base
            ),
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
