//! The RabbitMQ bus end to end, against a real `rabbitmq-server` per test
//! (see `common::rabbit`): gateway → broker → host → broker → WebSocket,
//! bindings as the API, dead-lettering, two competing `pyou host`
//! processes with one killed, a broker restart mid-stream, an unloaded
//! domain's prefetch given back, and deleted queues declared again.

use crate::common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rabbit::Rabbit;
use futures::StreamExt;
use parallel_you_core::bus::BusError;
use parallel_you_core::store::Filter;
use parallel_you_core::{Bus, Store};
use parallel_you_gateway::{Gateway, GatewayConfig};
use parallel_you_host::bus::amqp::{domain_queue, AmqpBus, AmqpConfig, DEAD_LETTER};
use parallel_you_host::SqliteStore;
use serde_json::Value;

async fn bus(rabbit: &Rabbit) -> AmqpBus {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    AmqpBus::connect(config).await.unwrap()
}

/// A gateway on its own connection (as `pyou gateway` would be), serving
/// on a free loopback port until the returned sender fires.
async fn gateway(
    rabbit: &Rabbit,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let config = GatewayConfig {
        refresh: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let gw = Gateway::start(Arc::new(bus(rabbit).await), None, config)
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let signal = async move {
            let _ = rx.await;
        };
        gw.serve(listener, None, signal, Duration::from_secs(5))
            .await
            .unwrap();
    });
    (format!("http://{addr}"), tx, done)
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn api_keys(base: &str) -> BTreeSet<String> {
    let list: Value = match reqwest::get(format!("{base}/api")).await {
        Ok(res) => res.json().await.unwrap_or_default(),
        Err(_) => return BTreeSet::new(),
    };
    list["commands"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["routing_key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_broker_host_and_back_to_the_websocket() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let (host, _handlers) = common::host_with(&["noop", "counter"]).await;
    let host_bus = Arc::new(bus(&rabbit).await);
    let serving = host.serve(host_bus.clone()).await.unwrap();

    // The broker's bindings are exactly the manifests' routing keys.
    let mut expected: Vec<String> = host
        .registry()
        .handlers()
        .flat_map(|h| h.manifest.routing_keys())
        .collect();
    expected.sort();
    let bindings: Vec<String> = host_bus
        .bindings()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.routing_key)
        .collect();
    assert_eq!(bindings, expected);

    // A gateway with no host of its own lists exactly them, but the
    // internal ones (`noop.secret`: the bindings say so).
    let (base, stop_gw, gw_done) = gateway(&rabbit).await;
    let want: BTreeSet<String> = host
        .registry()
        .handlers()
        .flat_map(|h| h.manifest.commands.clone())
        .filter(|c| !c.internal)
        .map(|c| c.routing_key)
        .collect();
    assert!(want.len() < expected.len(), "noop has an internal command");
    eventually(Duration::from_secs(10), "/api to list the bindings", || {
        let base = base.clone();
        let want = want.clone();
        async move { api_keys(&base).await == want }
    })
    .await;

    // A command through the gateway comes back on its session's socket.
    let ws_url = base.replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_url}/ws?session=s-amqp"))
        .await
        .unwrap();
    let res = reqwest::Client::new()
        .post(format!("{base}/api/counter/increment?session=s-amqp"))
        .body(r#"{"name":"over-rabbit","by":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let accepted: Value = res.json().await.unwrap();
    let event: Value = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an event on the socket")
            .unwrap()
            .unwrap();
        let text = msg.into_text().unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        if event["meta"]["causation_id"] == accepted["correlation_id"] {
            break event;
        }
    };
    assert_eq!(event["meta"]["routing_key"], "counter.incremented");
    assert_eq!(event["meta"]["session_id"], "s-amqp");
    assert_eq!(event["body"]["value"], 2);

    // Nobody bound to a key: the mandatory publish comes back (and with
    // other publishes in flight, to this caller: see `amqp_returns`).
    let stray = common::cmd("nobody.home", "{}");
    let sent = host_bus.send(stray).await;
    assert!(
        matches!(sent, Err(BusError::Unroutable { .. })),
        "a command nobody is bound to: {sent:?}"
    );

    // A message that is not an envelope is dead-lettered, not requeued.
    let conn = lapin::Connection::connect(&rabbit.url(), Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            "parallel_you.commands".into(),
            "noop.ping".into(),
            Default::default(),
            b"this is not json",
            Default::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let got = channel
            .basic_get(DEAD_LETTER.into(), Default::default())
            .await
            .unwrap();
        if let Some(msg) = got {
            break msg.delivery.data.clone();
        }
        assert!(Instant::now() < deadline, "nothing was dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead, b"this is not json");
    let _ = conn.close(200, "done".into()).await;

    // Unloading a handler unbinds its keys; the gateway's API follows.
    let only_counter = common::handlers_dir(&["counter"]);
    host.load_dir(only_counter.path()).await.unwrap();
    let want: BTreeSet<String> = want
        .into_iter()
        .filter(|k| k.starts_with("counter."))
        .collect();
    eventually(Duration::from_secs(10), "/api to drop noop", || {
        let base = base.clone();
        let want = want.clone();
        async move { api_keys(&base).await == want }
    })
    .await;

    let _ = stop_gw.send(());
    gw_done.await.unwrap();
    serving.shutdown(Duration::from_secs(5)).await;
    host_bus.close().await;
}

/// A `pyou` child process on the test's broker, killed when dropped.
pub(crate) struct HostProcess(Child);

impl HostProcess {
    /// Starts `pyou <role> --bus … --management-url … <args>` and returns
    /// it with the first line it prints (it prints one when ready).
    pub(crate) fn spawn(role: &str, rabbit: &Rabbit, args: &[&std::ffi::OsStr]) -> (Self, String) {
        let mut child = common::pyou()
            .args([role, "--bus", &rabbit.url(), "--management-url"])
            .arg(rabbit.management_url())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (HostProcess(child), line)
    }

    pub(crate) fn start(
        rabbit: &Rabbit,
        handlers: &std::path::Path,
        data: &std::path::Path,
    ) -> Self {
        Self::start_with(rabbit, handlers, data, &[])
    }

    pub(crate) fn start_with(
        rabbit: &Rabbit,
        handlers: &std::path::Path,
        data: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--prefetch".as_ref(),
            "64".as_ref(),
            "--handlers".as_ref(),
            handlers.as_os_str(),
            "--data".as_ref(),
            data.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let (host, line) = Self::spawn("host", rabbit, &args);
        assert!(line.starts_with("pyou host consuming"), "{line:?}");
        host
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub(crate) fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `pyou gateway` as a child process; returns it with its base URL.
fn gateway_process(rabbit: &Rabbit) -> (HostProcess, String) {
    gateway_process_with(rabbit, &[])
}

/// [`gateway_process`] with more arguments.
pub(crate) fn gateway_process_with(rabbit: &Rabbit, extra: &[&str]) -> (HostProcess, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--listen".as_ref(), "127.0.0.1:0".as_ref()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let (gateway, line) = HostProcess::spawn("gateway", rabbit, &args);
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (gateway, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyou_host_and_pyou_gateway_as_separate_processes() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let handlers = common::handlers_dir(&["counter"]);
    let data = tempfile::tempdir().unwrap();
    let _host =
        tokio::task::block_in_place(|| HostProcess::start(&rabbit, handlers.path(), data.path()));
    let (_gateway, base) = tokio::task::block_in_place(|| gateway_process(&rabbit));
    eventually(
        Duration::from_secs(20),
        "the gateway to serve counter.get",
        || {
            let base = base.clone();
            async move { api_keys(&base).await.contains("counter.get") }
        },
    )
    .await;
    let res = reqwest::Client::new()
        .post(format!("{base}/api/counter/increment?wait=10000"))
        .body(r#"{"name":"three-processes","by":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events: Value = res.json().await.unwrap();
    let first = &events["events"][0];
    assert_eq!(
        first["meta"]["routing_key"], "counter.incremented",
        "{events}"
    );
    assert_eq!(first["body"]["value"], 5);
    // The host's mark of the command's last event crosses the broker.
    assert_eq!(first["meta"]["last"], true, "{events}");
    assert_eq!(events["complete"], true, "{events}");

    // Without a broker, the roles that need one say so.
    let out = common::pyou()
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .env_remove("PYOU_BUS")
        .env_remove("RABBITMQ_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bus amqp://"));
}

async fn queue_consumers(rabbit: &Rabbit, queue: &str) -> u64 {
    let url = format!("{}/api/queues/%2F/{queue}", rabbit.management_url());
    let res = reqwest::Client::new()
        .get(url)
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
    match res {
        Ok(res) => res
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["consumers"].as_u64())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_a_thousand_commands_and_survive_a_sigkill() {
    const COMMANDS: usize = 1000;
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let handlers = common::handlers_dir(&["noop"]);
    let data = tempfile::tempdir().unwrap();
    let (r, h, d) = (&rabbit, handlers.path(), data.path());
    let (mut first, mut second) =
        tokio::task::block_in_place(|| (HostProcess::start(r, h, d), HostProcess::start(r, h, d)));
    eventually(Duration::from_secs(20), "two consumers", || async {
        queue_consumers(&rabbit, &domain_queue("noop")).await == 2
    })
    .await;

    let bus = bus(&rabbit).await;
    let mut touched = bus.subscribe("noop.touched").await.unwrap();
    let sender = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..COMMANDS {
                let cmd = common::cmd("noop.touch", &format!(r#"{{"id":"t{i}"}}"#));
                bus.send(cmd).await.unwrap();
            }
        })
    };
    let mut seen = BTreeSet::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(180);
    while seen.len() < COMMANDS {
        if Instant::now() > deadline {
            let missing: Vec<String> = (0..COMMANDS)
                .map(|i| format!("t{i}"))
                .filter(|id| !seen.contains(id))
                .collect();
            let url = format!("{}/api/queues/%2F", rabbit.management_url());
            let queues = reqwest::Client::new()
                .get(url)
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            panic!(
                "only {} of {COMMANDS} handled; missing {missing:?}; queues: {queues}",
                seen.len()
            );
        }
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), touched.next()).await
        else {
            continue;
        };
        let body = common::body(&event);
        seen.insert(body["id"].as_str().unwrap_or_default().to_owned());
        if !killed && seen.len() >= COMMANDS / 4 {
            // Halfway through the stream: whatever it holds unacked goes
            // back to the queue, and the other host takes it.
            first.kill();
            killed = true;
        }
    }
    sender.await.unwrap();
    second.terminate();

    let store = SqliteStore::open_dir(data.path()).unwrap();
    let docs = store
        .list(
            "noop",
            "docs",
            &Filter::parse(r#"{"$limit": 5000}"#).unwrap(),
        )
        .await
        .unwrap();
    let ids: BTreeSet<String> = docs.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), COMMANDS, "every command has its one document");
    assert_eq!(docs.len(), COMMANDS);
    let rerun = docs.iter().filter(|d| d.version > 1).count();
    eprintln!("{rerun} of {COMMANDS} commands ran twice (killed before their record)");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_the_gateway_accepted() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let mut rabbit = Some(rabbit);
    let mut restarted_rabbit = None;
    let store: Arc<dyn Store> = Arc::new(parallel_you_core::MemoryStore::new());
    let (host, _handlers) = common::host_with_store(&["noop"], store.clone()).await;
    let host_bus = Arc::new(bus(rabbit.as_ref().unwrap()).await);
    let serving = host.serve(host_bus.clone()).await.unwrap();
    let (base, stop_gw, gw_done) = gateway(rabbit.as_ref().unwrap()).await;
    eventually(Duration::from_secs(10), "/api to list noop.touch", || {
        let base = base.clone();
        async move { api_keys(&base).await.contains("noop.touch") }
    })
    .await;

    // Post commands one after another while the broker restarts under them.
    let client = reqwest::Client::new();
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut i = 0;
    while accepted.len() < 300 && i < 3000 && Instant::now() < deadline {
        let id = format!("c{i}");
        i += 1;
        match post_touch(&client, &base, &id).await {
            202 => {
                accepted.insert(id);
            }
            503 => refused += 1,
            other => panic!("unexpected answer {other}"),
        }
        if accepted.len() == 100 {
            if let Some(mut node) = rabbit.take() {
                // Stop the broker and start it again in the background, so
                // the posting goes on while it is away.
                let restart = std::thread::spawn(move || {
                    node.restart();
                    node
                });
                restarted_rabbit = Some(
                    rabbit_back(restart, &mut accepted, &client, &base, &mut refused, &mut i).await,
                );
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        refused > 0,
        "no command was refused while the broker was down"
    );
    eventually(
        Duration::from_secs(60),
        "every accepted command to be stored",
        || {
            let store = store.clone();
            let accepted = accepted.clone();
            async move {
                let docs = store
                    .list(
                        "noop",
                        "docs",
                        &Filter::parse(r#"{"$limit": 10000}"#).unwrap(),
                    )
                    .await
                    .unwrap();
                let ids: BTreeSet<String> = docs.into_iter().map(|d| d.id).collect();
                accepted.is_subset(&ids)
            }
        },
    )
    .await;
    eprintln!(
        "{} commands accepted and stored, {refused} refused with 503 while the broker was away",
        accepted.len()
    );
    let _ = stop_gw.send(());
    gw_done.await.unwrap();
    serving.shutdown(Duration::from_secs(5)).await;
    host_bus.close().await;
    drop(restarted_rabbit);
}

/// Keeps posting while the broker restarts, then 100 more once it is back;
/// returns with the broker running again (dropped at the test's end).
async fn rabbit_back(
    restart: std::thread::JoinHandle<Rabbit>,
    accepted: &mut BTreeSet<String>,
    client: &reqwest::Client,
    base: &str,
    refused: &mut usize,
    i: &mut usize,
) -> Rabbit {
    let mut after = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while after < 100 && *i < 5000 && Instant::now() < deadline {
        let id = format!("c{i}");
        *i += 1;
        match post_touch(client, base, &id).await {
            202 => {
                accepted.insert(id);
                if restart.is_finished() {
                    after += 1;
                }
            }
            503 => *refused += 1,
            other => panic!("unexpected answer {other}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::spawn_blocking(move || restart.join().unwrap())
        .await
        .unwrap()
}

/// Posts `noop.touch` for `id` through the gateway; returns the status.
async fn post_touch(client: &reqwest::Client, base: &str, id: &str) -> u16 {
    client
        .post(format!("{base}/api/noop/touch"))
        .body(format!(r#"{{"id":"{id}"}}"#))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("the gateway did not answer: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_rabbitmq_and_mongodb_race_on_one_document() {
    let Some(mongo) = common::mongo::server_uri("two_hosts_on_rabbitmq_and_mongodb") else {
        return;
    };
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let store_uri = common::mongo::uri_with_db(&mongo, &common::mongo::fresh_db());
    let handlers = common::handlers_dir(&["counter"]);
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = ["--store", store_uri.as_str()];
    let (_a, _b) = tokio::task::block_in_place(|| {
        (
            HostProcess::start_with(&rabbit, handlers.path(), data_a.path(), &extra),
            HostProcess::start_with(&rabbit, handlers.path(), data_b.path(), &extra),
        )
    });
    eventually(Duration::from_secs(20), "two consumers", || async {
        queue_consumers(&rabbit, &domain_queue("counter")).await == 2
    })
    .await;
    let bus = bus(&rabbit).await;
    let mut events = bus.subscribe("counter.#").await.unwrap();
    bus.send(common::cmd("counter.increment", r#"{"name":"race"}"#))
        .await
        .unwrap();
    let mut version = common::body(&next(&mut events).await)["version"]
        .as_u64()
        .unwrap();
    for round in 0..5 {
        // Two writers with the same expected version, one per host as the
        // broker deals them out: the database lets exactly one win.
        let body = format!(r#"{{"name":"race","by":10,"expected_version":{version}}}"#);
        bus.send(common::cmd("counter.increment", &body))
            .await
            .unwrap();
        bus.send(common::cmd("counter.increment", &body))
            .await
            .unwrap();
        let outcomes = [next(&mut events).await, next(&mut events).await];
        let won: Vec<&parallel_you_core::Envelope> = outcomes
            .iter()
            .filter(|e| e.meta.routing_key == "counter.incremented")
            .collect();
        let lost: Vec<Option<String>> = outcomes
            .iter()
            .filter(|e| e.meta.routing_key == "counter.error")
            .map(|e| common::last_error(std::slice::from_ref(e)))
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(lost, [Some("conflict".to_owned())], "round {round}");
        version = common::body(won[0])["version"].as_u64().unwrap();
    }
    let store = parallel_you_host::store::MongoStore::connect(&store_uri, None)
        .await
        .unwrap();
    let doc = store
        .get("counter", "counters", "race")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.version, 6);
    assert_eq!(doc.json, r#"{"value":51}"#);
    common::mongo::drop_db(&store).await;
    bus.close().await;
}

/// The next event of a subscription, within 30 s.
async fn next(events: &mut parallel_you_core::bus::Subscription) -> parallel_you_core::Envelope {
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an outcome")
        .expect("the subscription lives")
}

/// Unloading a domain gives the commands its consumer had prefetched back to
/// the queue for whoever serves the domain next, once the ones already
/// running are settled, so none of them runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unloaded_domain_gives_back_what_it_had_prefetched() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    // One instance at a time and a short deadline: a few commands run, the
    // rest wait in the consumer's prefetch.
    let config = parallel_you_host::HostConfig {
        limits: parallel_you_host::Limits {
            max_instances: 1,
            deadline: Duration::from_millis(300),
            ..common::test_limits()
        },
        max_body: 0,
        ..Default::default()
    };
    let host = Arc::new(
        parallel_you_host::Host::new(config, Arc::new(parallel_you_core::MemoryStore::new()))
            .unwrap(),
    );
    let dir = common::handlers_dir(&["spin"]);
    host.load_dir(dir.path()).await.unwrap();
    let host_bus = Arc::new(bus(&rabbit).await);
    let serving = host.serve(host_bus.clone()).await.unwrap();

    const SENT: u64 = 20;
    for _ in 0..SENT {
        host_bus
            .send(common::cmd("spin.forever", "{}"))
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(10), "the first command to run", || {
        let ran = host.metrics().commands_for("spin.forever");
        async move { ran >= 1 }
    })
    .await;
    let empty = common::handlers_dir(&[]);
    host.load_dir(empty.path()).await.unwrap();

    // Another consumer on the queue gets every command that did not run.
    let conn = lapin::Connection::connect(&rabbit.url(), Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            domain_queue("spin").as_str().into(),
            "late".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    // Collect until all are accounted for and nothing more comes for 2 s:
    // a command requeued while it was still running would come back too.
    let mut given_back = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let ran = host.metrics().commands_for("spin.forever");
        if given_back + ran >= SENT && quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        if let Ok(Some(Ok(delivery))) =
            tokio::time::timeout(Duration::from_millis(200), consumer.next()).await
        {
            delivery.ack(Default::default()).await.unwrap();
            given_back += 1;
            quiet_since = Instant::now();
        }
    }
    let ran = host.metrics().commands_for("spin.forever");
    assert!(given_back > 0, "nothing came back to the queue ({ran} ran)");
    // Every command either ran (and was acked) or came back unrun; none both.
    assert_eq!(given_back + ran, SENT, "{ran} ran, {given_back} came back");

    let _ = conn.close(200, "done".into()).await;
    serving.shutdown(Duration::from_secs(5)).await;
    host_bus.close().await;
}

/// A domain queue deleted under a serving host (by an operator, say) comes
/// back: the broker cancels the host's consumer, and the host declares the
/// queue and its bindings again and resumes on the same connection, instead
/// of waiting for a reconnection that never comes. A subscription's queue
/// comes back the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_queues_are_declared_again_and_served() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let host = Arc::new(
        parallel_you_host::Host::new(
            parallel_you_host::HostConfig {
                limits: common::test_limits(),
                max_body: 0,
                ..Default::default()
            },
            Arc::new(parallel_you_core::MemoryStore::new()),
        )
        .unwrap(),
    );
    let dir = common::handlers_dir(&["noop"]);
    host.load_dir(dir.path()).await.unwrap();
    let host_bus = Arc::new(bus(&rabbit).await);
    let serving = host.serve(host_bus.clone()).await.unwrap();
    let observer = bus(&rabbit).await;
    let mut events = observer.subscribe("noop.ponged").await.unwrap();
    observer
        .send(common::cmd("noop.ping", r#"{"n":1}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut events).await.body.get(), r#"{"n":1}"#);

    let conn = lapin::Connection::connect(&rabbit.url(), Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(domain_queue("noop").as_str().into(), Default::default())
        .await
        .unwrap();

    // Until the host has declared the queue again, a command has no route.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match observer.send(common::cmd("noop.ping", r#"{"n":2}"#)).await {
            Ok(()) => break,
            Err(BusError::Unroutable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("the queue was not declared again within 20 s: {err}"),
        }
    }
    assert_eq!(next(&mut events).await.body.get(), r#"{"n":2}"#);
    // The management API's figures lag by a few seconds.
    eventually(
        Duration::from_secs(15),
        "one consumer on the new queue",
        || {
            let rabbit = &rabbit;
            async move { queue_consumers(rabbit, &domain_queue("noop")).await == 1 }
        },
    )
    .await;

    // The same for a subscription's queue: the subscriber declares it anew
    // and events reach it again.
    let subscription = subscription_queue(&rabbit).await;
    channel
        .queue_delete(subscription.as_str().into(), Default::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 3;
    let event = loop {
        assert!(
            Instant::now() < deadline,
            "the subscription's queue was not declared again within 20 s"
        );
        observer
            .send(common::cmd("noop.ping", &format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
        n += 1;
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(300), events.next()).await
        {
            break event;
        }
    };
    assert_eq!(event.meta.routing_key, "noop.ponged");

    let _ = conn.close(200, "done".into()).await;
    serving.shutdown(Duration::from_secs(5)).await;
    host_bus.close().await;
    observer.close().await;
}

/// The name of the one subscription queue on the broker.
async fn subscription_queue(rabbit: &Rabbit) -> String {
    let url = format!("{}/api/queues/%2F?columns=name", rabbit.management_url());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let names: Vec<String> = reqwest::Client::new()
            .get(&url)
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .iter()
            .filter_map(|q| q["name"].as_str())
            .filter(|name| name.starts_with("parallel_you.events.subscriber."))
            .map(str::to_owned)
            .collect();
        if let [name] = names.as_slice() {
            return name.clone();
        }
        assert!(Instant::now() < deadline, "subscription queues: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
