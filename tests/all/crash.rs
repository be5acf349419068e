//! Crash injection (issue 14): a real `pyou host` child aborted at each step
//! of a command, again and again, while another host shares the work on a
//! real RabbitMQ, on SQLite and on MongoDB. Afterwards every command has
//! exactly one outcome (after deduplicating events by `message_id`) and
//! every effect is applied exactly once.
//!
//! Each command increments its own counter, so a doubled effect shows as
//! a counter at 2 and a lost one as a counter missing.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rabbit::Rabbit;
use parallel_you_core::{Bus, Store};
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use parallel_you_host::faults::{Point, ENV};
use parallel_you_host::store::{MongoStore, SqliteStore};

/// Commands per run.
const COMMANDS: usize = 1000;
/// Times the crashing host is killed per run, at most.
const KILLS: usize = 3;
/// Commands sent at once, and the pause after each batch.
const BATCH: usize = 40;
const BATCH_PAUSE: Duration = Duration::from_millis(250);
/// How long one run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Where the hosts keep their state.
#[derive(Clone)]
enum Backing {
    /// One SQLite folder both hosts open.
    Sqlite(std::path::PathBuf),
    /// One MongoDB database.
    Mongo(String),
}

impl Backing {
    fn args(&self) -> Vec<String> {
        match self {
            Backing::Sqlite(_) => Vec::new(),
            Backing::Mongo(uri) => vec!["--store".to_owned(), uri.clone()],
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backing::Sqlite(dir) => Arc::new(SqliteStore::open_dir(dir).unwrap()),
            Backing::Mongo(uri) => Arc::new(MongoStore::connect(uri, None).await.unwrap()),
        }
    }
}

/// A `pyou host` child, killed when dropped.
struct HostChild(Child);

impl HostChild {
    fn start(
        rabbit: &Rabbit,
        handlers: &std::path::Path,
        data: &std::path::Path,
        backing: &Backing,
        crash: Option<String>,
    ) -> HostChild {
        let mut command = common::pyou();
        command
            .args(["host", "--bus", &rabbit.url(), "--management-url"])
            .arg(rabbit.management_url())
            .args(["--prefetch", "32", "--handlers"])
            .arg(handlers)
            .arg("--data")
            .arg(data)
            .args(backing.args())
            .env_remove("PYOU_STORE")
            .env_remove(ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(spec) = crash {
            command.env(ENV, spec);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("pyou host consuming"), "{line:?}");
        HostChild(child)
    }

    fn exited(&mut self) -> bool {
        self.0.try_wait().ok().flatten().is_some()
    }
}

impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run saw.
struct Run {
    kills: usize,
    events: usize,
    duplicates: usize,
    lost: usize,
    doubled: usize,
    errors: usize,
}

async fn run(rabbit: &Rabbit, backing: Backing, data: &std::path::Path, point: Point) -> Run {
    let handlers = common::handlers_dir(&["counter"]);
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    let bus = AmqpBus::connect(config).await.unwrap();
    let mut events = bus.subscribe("counter.#").await.unwrap();
    // Early hits, so the restarted host is killed again within the run.
    let crash_at = |kill: usize| format!("{}:{}", point.as_str(), 5 + (13 * kill) % 20);
    let (_steady, mut crashing) = tokio::task::block_in_place(|| {
        (
            HostChild::start(rabbit, handlers.path(), data, &backing, None),
            HostChild::start(rabbit, handlers.path(), data, &backing, Some(crash_at(0))),
        )
    });
    // The run's commands, by correlation id, sent in paced batches from a
    // task of their own so the crashing host is restarted (and killed
    // again) while commands keep coming.
    let run_tag = parallel_you_core::envelope::new_id().to_lowercase();
    let mut names = BTreeMap::new();
    let mut commands = Vec::with_capacity(COMMANDS);
    for i in 0..COMMANDS {
        let name = format!("{run_tag}-{i}");
        let cmd = common::cmd("counter.increment", &format!(r#"{{"name":"{name}"}}"#));
        names.insert(cmd.meta.correlation_id.clone(), name);
        commands.push(cmd);
    }
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    let sender = AmqpBus::connect(config).await.unwrap();
    let sending = tokio::spawn(async move {
        for batch in commands.chunks(BATCH) {
            for cmd in batch {
                sender.send(cmd.clone()).await.unwrap();
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        sender.close().await;
    });
    // Outcome event ids per command, and every event id seen.
    let mut outcomes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen = 0;
    let mut errors = 0;
    let mut kills = 0;
    let started = Instant::now();
    let mut settled_at = None;
    let mut reported = Instant::now();
    loop {
        if reported.elapsed() > Duration::from_secs(10) {
            reported = Instant::now();
            eprintln!(
                "{}: {} of {COMMANDS} answered, {kills} kills, {:?}",
                point.as_str(),
                outcomes.len(),
                started.elapsed()
            );
        }
        if crashing.exited() {
            kills += 1;
            let crash = (kills < KILLS).then(|| crash_at(kills));
            crashing = tokio::task::block_in_place(|| {
                HostChild::start(rabbit, handlers.path(), data, &backing, crash)
            });
        }
        if outcomes.len() == COMMANDS && settled_at.is_none() {
            settled_at = Some(Instant::now());
        }
        // Once every command is answered, watch a little longer for a
        // second, different outcome.
        if settled_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        assert!(
            started.elapsed() < RUN_LIMIT,
            "{}: {} of {COMMANDS} commands answered after {RUN_LIMIT:?}",
            point.as_str(),
            outcomes.len()
        );
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await
        else {
            continue;
        };
        let Some(cause) = event.meta.causation_id.clone() else {
            continue;
        };
        if !names.contains_key(&cause) {
            continue;
        }
        seen += 1;
        if event.meta.routing_key != "counter.incremented" {
            errors += 1;
            eprintln!("{}: {event:?}", point.as_str());
        }
        outcomes
            .entry(cause)
            .or_default()
            .insert(event.meta.message_id.clone());
    }
    sending.await.unwrap();
    let doubled_outcomes = outcomes.values().filter(|ids| ids.len() > 1).count();
    let store = backing.open().await;
    let mut lost = COMMANDS - outcomes.len();
    let mut doubled = doubled_outcomes;
    for name in names.values() {
        let doc = store.get("counter", "counters", name).await.unwrap();
        match doc.map(|d| serde_json::from_str::<serde_json::Value>(&d.json).unwrap()) {
            None => lost += 1,
            Some(v) if v["value"] != 1 => doubled += 1,
            Some(_) => {}
        }
    }
    bus.close().await;
    Run {
        kills,
        events: seen,
        duplicates: seen - outcomes.len(),
        lost,
        doubled,
        errors,
    }
}

async fn suite(
    store_name: &str,
    rabbit: &Rabbit,
    fresh: impl Fn() -> (Backing, tempfile::TempDir),
) {
    let mut table = format!(
        "\n{store_name}: {COMMANDS} commands per run, 2 hosts, one killed at the point up to {KILLS} times\n\
         {:<14} {:>5} {:>7} {:>10} {:>5} {:>7} {:>6}\n",
        "point", "kills", "events", "deduped", "lost", "doubled", "errors"
    );
    let mut failures = Vec::new();
    for point in Point::ALL {
        let (backing, data) = fresh();
        let r = run(rabbit, backing, data.path(), point).await;
        table.push_str(&format!(
            "{:<14} {:>5} {:>7} {:>10} {:>5} {:>7} {:>6}\n",
            point.as_str(),
            r.kills,
            r.events,
            r.duplicates,
            r.lost,
            r.doubled,
            r.errors
        ));
        if r.kills == 0 {
            failures.push(format!("{}: the host was never killed", point.as_str()));
        }
        if r.lost + r.doubled + r.errors > 0 {
            failures.push(format!(
                "{}: {} lost, {} doubled, {} errors",
                point.as_str(),
                r.lost,
                r.doubled,
                r.errors
            ));
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{table}\n{failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_hosts_lose_and_double_nothing_on_sqlite() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    suite("SQLite", &rabbit, || {
        let data = tempfile::tempdir().unwrap();
        (Backing::Sqlite(data.path().to_owned()), data)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_hosts_lose_and_double_nothing_on_mongodb() {
    let Some(uri) = common::mongo::server_uri("killed_hosts_lose_and_double_nothing_on_mongodb")
    else {
        return;
    };
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    suite("MongoDB", &rabbit, || {
        let data = tempfile::tempdir().unwrap();
        let db = common::mongo::uri_with_db(&uri, &common::mongo::fresh_db());
        (Backing::Mongo(db), data)
    })
    .await;
}
