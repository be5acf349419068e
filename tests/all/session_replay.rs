//! A client that resumes its session after `pyou serve` restarted: with
//! the event log in the store it gets every event it missed, once and in
//! order (those published before the restart from the log, those since
//! from the new process's buffer); without a log it is told with a
//! `pyou.gap` that the gateway cannot know.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::common::browser::Served;
use crate::common::gateway::{next_json, post, Ws};

async fn socket(served: &Served, query: &str) -> Ws {
    let url = format!("{}/ws?{query}", served.url.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

/// `counter.increment` of `name` in session `s1`, answered.
async fn increment(served: &Served, name: &str) -> Value {
    let (status, answer) = post(
        &format!("{}/api/counter/increment?wait=10000", served.url),
        Some("s1"),
        &format!(r#"{{"name":"{name}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The `value` of each event that arrives within `quiet` of the last.
async fn values(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(ev) = next_json(ws, quiet).await {
        let key = ev["meta"]["routing_key"].as_str().unwrap_or_default();
        got.push(match key {
            "counter.incremented" => ev["body"]["value"].clone(),
            other => Value::String(other.to_owned()),
        });
    }
    got
}

fn after(ev: &Value) -> String {
    format!(
        "after={}&after_at={}",
        ev["meta"]["message_id"].as_str().unwrap(),
        ev["meta"]["timestamp"].as_str().unwrap(),
    )
}

/// Each scenario within this, so a stuck socket fails the test.
const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_after_a_restart_with_what_it_missed_once_in_order() {
    tokio::time::timeout(WITHIN, resumes_after_a_restart())
        .await
        .expect("the scenario ends");
}

async fn resumes_after_a_restart() {
    let mut served = Served::start_with(&["counter"], &["--event-log", "store"], &[], None).await;
    let mut ws = socket(&served, "session=s1&client=tab").await;
    increment(&served, "c").await;
    let first = next_json(&mut ws, Duration::from_secs(10))
        .await
        .expect("the first event");
    assert_eq!(first["body"]["value"], 1);
    ws.close(None).await.unwrap();
    // Published while the client is away; then the server restarts,
    // forgetting its buffers; then one more before the client is back.
    for _ in 0..3 {
        increment(&served, "c").await;
    }
    served.restart().await;
    increment(&served, "c").await;

    let mut ws = socket(&served, &format!("session=s1&client=tab&{}", after(&first))).await;
    assert_eq!(values(&mut ws, Duration::from_secs(2)).await, [2, 3, 4, 5]);
    // Live again: the next event once.
    increment(&served, "c").await;
    assert_eq!(values(&mut ws, Duration::from_secs(2)).await, [6]);
    ws.close(None).await.unwrap();

    // Another tab that was given only the first event, and a reconnect
    // the gateway can place in its own buffer now.
    let mut other = socket(
        &served,
        &format!("session=s1&client=tab2&{}", after(&first)),
    )
    .await;
    assert_eq!(
        values(&mut other, Duration::from_secs(2)).await,
        [2, 3, 4, 5, 6]
    );
    let mut again = socket(&served, &format!("session=s1&client=tab&{}", after(&first))).await;
    assert!(values(&mut again, Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_event_log_a_resuming_client_is_told_of_the_gap() {
    tokio::time::timeout(WITHIN, gap_without_a_log())
        .await
        .expect("the scenario ends");
}

async fn gap_without_a_log() {
    let mut served = Served::start(&["counter"]).await;
    let mut ws = socket(&served, "session=s1&client=tab").await;
    increment(&served, "c").await;
    let first = next_json(&mut ws, Duration::from_secs(10))
        .await
        .expect("the first event");
    ws.close(None).await.unwrap();
    increment(&served, "c").await;
    served.restart().await;
    increment(&served, "c").await;
    let mut ws = socket(&served, &format!("session=s1&client=tab&{}", after(&first))).await;
    let Some(Message::Text(gap)) = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .ok()
        .flatten()
        .and_then(Result::ok)
    else {
        panic!("no notice")
    };
    let gap: Value = serde_json::from_str(gap.as_str()).unwrap();
    assert_eq!(gap["meta"]["routing_key"], "pyou.gap", "{gap}");
    assert!(
        gap["body"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot tell what this session missed"),
        "{gap}"
    );
    // What the new process has buffered still follows: the third event.
    assert_eq!(values(&mut ws, Duration::from_secs(2)).await, [3]);
    // A bad position is refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(format!(
        "{}/ws?session=s1&after=x",
        served.url.replace("http://", "ws://")
    ))
    .await;
    assert!(refused.is_err(), "after without after_at is refused");
}
