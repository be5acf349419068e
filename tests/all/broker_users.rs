//! Separate broker users for hosts and gateways, as the README sets them
//! up with `rabbitmqctl`: a `pyou gateway` whose user may publish commands
//! and read events, but not consume a domain's queue, serves a command end
//! to end with a `pyou host` under its own user; the forbidden operation is
//! refused by the broker, as is touching the dead letters; neither
//! process prints a password.

use crate::common;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::rabbit::Rabbit;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use parallel_you_host::bus::amqp::{domain_queue, DEAD_LETTER, REACTOR_DEAD_LETTERS};

const HOST_PASSWORD: &str = "host-Pa55-secret";
const GATEWAY_PASSWORD: &str = "gw-Pa55-secret";

/// The README's permissions (configure, write, read on the vhost).
const HOST_PERMISSIONS: [&str; 3] = [
    r"^(parallel_you\..*|amq\.gen-.*)$",
    r"^(parallel_you\..*|amq\.gen-.*|amq\.default)$",
    r"^(parallel_you\..*|amq\.gen-.*)$",
];
const GATEWAY_PERMISSIONS: [&str; 3] = [
    r"^(parallel_you\.(commands|events|queries)|parallel_you\.events\.subscriber\..+|amq\.gen-.+)$",
    r"^(parallel_you\.(commands|queries)|parallel_you\.events\.subscriber\..+|amq\.gen-.+)$",
    r"^(parallel_you\.events|parallel_you\.events\.subscriber\..+|amq\.gen-.+)$",
];

fn add_user(rabbit: &Rabbit, user: &str, password: &str, permissions: [&str; 3]) {
    rabbit.ctl(&["add_user", user, password]);
    // The management API lists the bindings (the gateway's API) to
    // `management` users, for their vhosts only.
    rabbit.ctl(&["set_user_tags", user, "management"]);
    let [configure, write, read] = permissions;
    rabbit.ctl(&["set_permissions", "-p", "/", user, configure, write, read]);
}

/// A `pyou` child whose stderr goes to a file; killed when dropped.
struct Process {
    child: Child,
    log: std::path::PathBuf,
}

impl Process {
    /// Starts `pyou ARGS` with `env`, returning it and its first stdout
    /// line (printed when ready).
    fn start(
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
        log: std::path::PathBuf,
    ) -> (Self, String) {
        let mut command = common::pyou();
        command
            .args(args)
            .env_remove("PYOU_BUS")
            .env_remove("RABBITMQ_URL")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (Process { child, log }, line)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_user_sends_commands_and_reads_events_but_cannot_consume_a_domain() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    add_user(&rabbit, "pyou-host", HOST_PASSWORD, HOST_PERMISSIONS);
    add_user(
        &rabbit,
        "pyou-gateway",
        GATEWAY_PASSWORD,
        GATEWAY_PERMISSIONS,
    );
    let work = tempfile::tempdir().unwrap();
    let handlers = common::handlers_dir(&["counter"]);
    // The host's URL comes from a file, the gateway's from the environment:
    // neither is on a command line.
    let host_url_file = work.path().join("host-bus-url");
    std::fs::write(
        &host_url_file,
        format!("{}\n", rabbit.url_as("pyou-host", HOST_PASSWORD)),
    )
    .unwrap();
    let management = rabbit.management_url();
    let (host, line) = tokio::task::block_in_place(|| {
        Process::start(
            &[
                "host".as_ref(),
                "--bus-file".as_ref(),
                host_url_file.as_os_str(),
                "--management-url".as_ref(),
                management.as_ref(),
                "--handlers".as_ref(),
                handlers.path().as_os_str(),
                "--data".as_ref(),
                work.path().join("data").as_os_str(),
            ],
            &[],
            work.path().join("host.log"),
        )
    });
    assert!(
        line.starts_with("pyou host consuming"),
        "{line:?}\n{}",
        host.stderr()
    );
    let gateway_url = rabbit.url_as("pyou-gateway", GATEWAY_PASSWORD);
    let (gateway, line) = tokio::task::block_in_place(|| {
        Process::start(
            &[
                "gateway".as_ref(),
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--management-url".as_ref(),
                management.as_ref(),
            ],
            &[("PYOU_BUS", gateway_url.as_ref())],
            work.path().join("gateway.log"),
        )
    });
    let base = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .map(|a| format!("http://{a}"))
        .unwrap_or_else(|| panic!("no address in {line:?}\n{}", gateway.stderr()));

    // End to end: the gateway lists the host's command (bindings through
    // the management API), publishes it, and reads its event back.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let res = client
            .post(format!("{base}/api/counter/increment?wait=5000"))
            .body(r#"{"name":"users","by":3}"#)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break res.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never served counter.increment: {} {}\n{}",
            res.status(),
            res.text().await.unwrap_or_default(),
            gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        answer["events"][0]["meta"]["routing_key"], "counter.incremented",
        "{answer}"
    );
    assert_eq!(answer["events"][0]["body"]["value"], 3, "{answer}");

    // The gateway's user cannot take commands off a domain's queue.
    let conn = Connection::connect(&gateway_url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let refused = channel
        .basic_consume(
            domain_queue("counter").as_str().into(),
            "intruder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("ACCESS_REFUSED") || refused.contains("access to queue"),
        "consuming a domain queue as the gateway's user: {refused:?}"
    );
    // Nor read or delete the dead letters.
    for queue in [DEAD_LETTER, REACTOR_DEAD_LETTERS] {
        let channel = conn.create_channel().await.unwrap();
        let deleted = channel
            .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
            .await;
        assert!(deleted.is_err(), "the gateway's user deleted {queue}");
        let channel = conn.create_channel().await.unwrap();
        let got = channel
            .basic_get(queue.into(), lapin::options::BasicGetOptions::default())
            .await;
        assert!(got.is_err(), "the gateway's user read {queue}");
    }
    let _ = conn.close(200, "done".into()).await;

    // The host's user may: the same operation is only the gateway's refusal.
    let conn = Connection::connect(
        &rabbit.url_as("pyou-host", HOST_PASSWORD),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            domain_queue("counter").as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(queue.is_ok(), "{queue:?}");
    let _ = conn.close(200, "done".into()).await;

    drop(gateway);
    drop(host);
    for log in ["host.log", "gateway.log"] {
        let text = std::fs::read_to_string(work.path().join(log)).unwrap_or_default();
        assert!(
            !text.contains(HOST_PASSWORD) && !text.contains(GATEWAY_PASSWORD),
            "{log} shows a password:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_malformed_broker_url_is_refused_without_echoing_its_password() {
    // Missing `//`: the URL parser's own message quoted the whole URL.
    let config =
        parallel_you_host::bus::amqp::AmqpConfig::new("amqp:gw:s3cret-pw@127.0.0.1:5672/%2f");
    let err = parallel_you_host::bus::amqp::AmqpBus::connect(config)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("expected amqp://"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}
