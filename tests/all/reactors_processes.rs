//! Reactors across processes on a real RabbitMQ: a `pyou gateway` with no
//! host answers queries by asking a `pyou host` on the broker, and two
//! `pyou host`s counting a stream of events, one SIGKILLed mid-stream,
//! leave exactly one count per event.

use crate::amqp::{gateway_process_with, HostProcess};
use crate::common;
use crate::reactors::event;

use std::time::{Duration, Instant};

use common::rabbit::Rabbit;
use parallel_you_core::bus::Publisher;
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use serde_json::{json, Value};

async fn bus(rabbit: &Rabbit) -> AmqpBus {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    AmqpBus::connect(config).await.unwrap()
}

/// `GET <url>`: its status and JSON body (`null` if not JSON).
async fn get(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 100 ms until it holds, or fails after `limit`.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tally's count of `noop.ponged`, asked through the gateway (0 while
/// it cannot answer).
async fn ponged(base: &str) -> u64 {
    match get(&format!("{base}/api/query/tally/count?key=noop.ponged")).await {
        (200, n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_gateway_asks_queries_of_a_pyou_host_on_the_broker() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let handlers = common::handlers_dir(&["tally", "noop"]);
    let data = tempfile::tempdir().unwrap();
    let mut host =
        tokio::task::block_in_place(|| HostProcess::start(&rabbit, handlers.path(), data.path()));
    let (_gateway, base) =
        tokio::task::block_in_place(|| gateway_process_with(&rabbit, &["--query-timeout", "2s"]));
    // Discovered from the broker's bindings, schema included.
    until(Duration::from_secs(20), "the queries in /api", || {
        let base = base.clone();
        async move {
            let (_, api) = get(&format!("{base}/api")).await;
            api["queries"]
                .as_array()
                .is_some_and(|q| q.iter().any(|q| q["path"] == "/api/query/tally/count"))
        }
    })
    .await;
    let (_, api) = get(&format!("{base}/api")).await;
    let count = api["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "count")
        .unwrap()
        .clone();
    assert_eq!(count["params_schema"]["required"], json!(["key"]), "{api}");
    let (_, openapi) = get(&format!("{base}/openapi.json")).await;
    let params = &openapi["paths"]["/api/query/tally/count"]["get"]["parameters"];
    assert_eq!(params[0]["name"], "key", "{openapi}");

    let client = bus(&rabbit).await;
    for i in 0..3 {
        client
            .publish(event("noop.ponged", json!({ "i": i })))
            .await
            .unwrap();
    }
    until(Duration::from_secs(20), "three events counted", || {
        let base = base.clone();
        async move { ponged(&base).await == 3 }
    })
    .await;
    let (status, counts) = get(&format!("{base}/api/query/tally/counts")).await;
    assert_eq!(
        (status, &counts["noop.ponged"]),
        (200, &json!(3)),
        "{counts}"
    );
    let posted = reqwest::Client::new()
        .post(format!("{base}/api/query/tally/count"))
        .body(r#"{"key":"noop.ponged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(posted.text().await.unwrap(), "3");

    // `pyou query --bus` asks the same way.
    let out = common::pyou()
        .args(["query", "tally", "count", r#"{"key":"noop.ponged"}"#])
        .args(["--bus", &rabbit.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");

    // Errors keep their statuses across the broker.
    let (status, body) = get(&format!("{base}/api/query/tally/count")).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("validation")),
        "{body}"
    );
    let (status, body) = get(&format!("{base}/api/query/tally/write")).await;
    assert!(status >= 400 && status != 504, "{status} {body}");
    for missing in ["tally/nope", "nosuch/counts"] {
        let (status, body) = get(&format!("{base}/api/query/{missing}")).await;
        assert_eq!(
            (status, &body["code"]),
            (404, &json!("not_found")),
            "{missing}: {body}"
        );
    }
    // No host left to answer: the gateway gives up after its timeout.
    host.kill();
    let (status, body) = get(&format!("{base}/api/query/tally/counts")).await;
    assert_eq!((status, &body["code"]), (504, &json!("timeout")), "{body}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_host_mid_stream_neither_doubles_nor_loses_a_count() {
    const EVENTS: u64 = 600;
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let handlers = common::handlers_dir(&["tally", "noop"]);
    let data = tempfile::tempdir().unwrap();
    let (r, h, d) = (&rabbit, handlers.path(), data.path());
    let (mut first, _second) =
        tokio::task::block_in_place(|| (HostProcess::start(r, h, d), HostProcess::start(r, h, d)));
    let (_gateway, base) = tokio::task::block_in_place(|| gateway_process_with(r, &[]));
    let client = bus(&rabbit).await;
    // Paced, so the kill lands while events are still coming.
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..EVENTS {
                client
                    .publish(event("noop.ponged", json!({ "i": i })))
                    .await
                    .unwrap();
                if i % 25 == 24 {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        })
    };
    until(Duration::from_secs(120), "a quarter counted", || {
        let base = base.clone();
        async move { ponged(&base).await >= EVENTS / 4 }
    })
    .await;
    first.kill();
    let at_kill = ponged(&base).await;
    assert!(
        at_kill < EVENTS,
        "the kill came after the stream: {at_kill}"
    );
    sender.await.unwrap();
    until(Duration::from_secs(180), "every event counted", || {
        let base = base.clone();
        async move { ponged(&base).await >= EVENTS }
    })
    .await;
    // Redeliveries of what the killed host held have settled: still one
    // count per event, and none given up on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ponged(&base).await, EVENTS);
    assert!(client.dead_letters(10).await.unwrap().is_empty());
    client.close().await;
}
