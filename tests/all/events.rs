//! Events as the audit trail, as a user runs it: `pyou serve --event-log`
//! keeps every event and command, `pyou events query` prints what one
//! command caused across domains and reactors, and `pyou events tail`
//! prints events live from a gateway or from a real RabbitMQ.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::child::{post_wait, Child};
use common::rabbit::Rabbit;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::Publisher as _;
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use serde_json::Value;

/// `pyou serve` on a free port with the named components and `args`:
/// the server and its address.
fn serve(handlers: &Path, data: &Path, args: &[&str]) -> (Child, String) {
    let mut all = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--handlers",
        handlers.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let server = pyou(&all);
    let line = server.line(Duration::from_secs(300));
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (server, addr)
}

/// Spawns `pyou ARGS…`.
fn pyou(args: &[&str]) -> Child {
    let mut command = common::pyou();
    command.args(args);
    Child::spawn(command)
}

/// `noop.ping`, whose `noop.ponged` makes `tally` send a
/// `counter.increment`: the command's correlation id.
async fn ping_through_tally(addr: &str) -> String {
    let answer = post_wait(
        addr,
        "noop.ping",
        r#"{"send":"counter.increment","name":"a"}"#,
    )
    .await;
    answer["correlation_id"]
        .as_str()
        .expect("an answer")
        .to_owned()
}

/// `pyou events query --json` until its trail has `n` messages (the
/// reactor's part comes a moment after the answer): the trail.
fn query_until(args: &[&str], n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = common::pyou()
            .args(["events", "query", "--json"])
            .args(args)
            .output()
            .unwrap();
        let trail: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if trail.len() >= n || Instant::now() > deadline {
            assert_eq!(
                trail.len(),
                n,
                "stderr: {}\ntrail: {trail:#?}",
                String::from_utf8_lossy(&out.stderr)
            );
            return trail;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The trail of `noop.ping {"send": "counter.increment"}`: the command,
/// its event, the command the `tally` reactor sent for it, and that
/// command's event, oldest first, each caused by the one before.
fn assert_trail(trail: &[Value], correlation: &str) {
    let seen: Vec<(&str, &str, u64)> = trail
        .iter()
        .map(|m| {
            (
                m["meta"]["kind"].as_str().unwrap(),
                m["meta"]["routing_key"].as_str().unwrap(),
                m["level"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("command", "noop.ping", 0),
            ("event", "noop.ponged", 1),
            ("command", "counter.increment", 2),
            ("event", "counter.incremented", 3),
        ]
    );
    assert_eq!(trail[0]["meta"]["correlation_id"], correlation);
    for pair in trail.windows(2) {
        assert_eq!(
            pair[1]["meta"]["causation_id"], pair[0]["meta"]["correlation_id"],
            "each is caused by the one before"
        );
    }
    assert_eq!(trail[3]["body"]["name"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_s_trail_crosses_a_reactor_in_the_store_log() {
    let handlers = common::handlers_dir(&["noop", "tally", "counter"]);
    let data = tempfile::tempdir().unwrap();
    let (server, addr) = serve(handlers.path(), data.path(), &["--event-log", "store"]);
    server.said("keeping the event log in store", Duration::from_secs(5));

    // The gateway's follow feed, tailed while the command runs.
    let ws = addr.replace("http://", "ws://");
    let tail = pyou(&[
        "events",
        "tail",
        "--url",
        &ws,
        "--pattern",
        "counter.*",
        "--count",
        "1",
    ]);
    tail.said("tailing", Duration::from_secs(30));
    // The gateway joins the socket to its feed just after the handshake.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let correlation = ping_through_tally(&addr).await;
    let data_dir = data.path().to_str().unwrap();
    let trail = query_until(&["--correlation", &correlation, "--data", data_dir], 4);
    assert_trail(&trail, &correlation);

    // The tail printed the reactor's command's event, and nothing before.
    let tailed = tail.finish(Duration::from_secs(30));
    assert_eq!(tailed.len(), 1, "{tailed:?}");
    let tailed: Value = serde_json::from_str(&tailed[0]).unwrap();
    assert_eq!(tailed["meta"]["message_id"], trail[3]["meta"]["message_id"]);

    // For people: one line each, indented by level.
    let out = common::pyou()
        .args([
            "events",
            "query",
            "--correlation",
            &correlation,
            "--data",
            data_dir,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .nth(3)
            .is_some_and(|l| l.contains("      event   counter.incremented")),
        "{text}"
    );

    // An unknown correlation says so and exits 1.
    let out = common::pyou()
        .args([
            "events",
            "query",
            "--correlation",
            "nope",
            "--data",
            data_dir,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--event-log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_s_trail_crosses_a_reactor_in_the_file_log() {
    let handlers = common::handlers_dir(&["noop", "tally", "counter"]);
    let data = tempfile::tempdir().unwrap();
    let log = tempfile::tempdir().unwrap();
    let log_dir = log.path().join("events");
    let log_dir = log_dir.to_str().unwrap();
    let (_server, addr) = serve(handlers.path(), data.path(), &["--event-log", log_dir]);
    let correlation = ping_through_tally(&addr).await;
    let trail = query_until(&["--correlation", &correlation, "--event-log", log_dir], 4);
    assert_trail(&trail, &correlation);
    let files: Vec<_> = std::fs::read_dir(log_dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one file for today");
    assert!(files[0]
        .file_name()
        .to_string_lossy()
        .starts_with("events-20"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_the_matching_events_from_rabbitmq() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let url = rabbit.url();
    let tail = pyou(&[
        "events",
        "tail",
        "--bus",
        &url,
        "--session",
        "s1",
        "--pattern",
        "counter.*",
        "--count",
        "2",
    ]);
    tail.said("tailing the events on", Duration::from_secs(60));
    let bus = AmqpBus::connect(AmqpConfig::new(&url)).await.unwrap();
    let event = |key: &str, session: &str, n: u32| {
        let mut e = Envelope::event(
            key,
            serde_json::value::RawValue::from_string(format!(r#"{{"n":{n}}}"#)).unwrap(),
        );
        e.meta.set_session(session);
        e
    };
    for e in [
        event("counter.incremented", "s2", 1), // another session
        event("noop.ponged", "s1", 2),         // another pattern
        event("counter.incremented", "s1", 3),
        event("counter.reset.done", "s1", 4), // `*` is one segment
        event("counter.incremented", "s1", 5),
    ] {
        bus.publish(e).await.unwrap();
    }
    let printed: Vec<u64> = tail
        .finish(Duration::from_secs(30))
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["body"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(printed, [3, 5]);
    bus.close().await;
}
