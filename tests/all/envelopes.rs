//! What a client may send, with or without authentication: internal and
//! reserved commands refused, envelopes tied to their connection, timer
//! ids that cannot be forged, and processed records that one sender's
//! message id cannot reach across to another's.

use std::time::Duration;

use futures::SinkExt;
use parallel_you_core::error::error_code_of;
use parallel_you_gateway::GatewayConfig;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::gateway::{next_json, post, Server, Ws};
use crate::common::{self, body, call, cmd, host_with};

async fn send(ws: &mut Ws, envelope: &Value) -> Value {
    ws.send(Message::text(envelope.to_string())).await.unwrap();
    next_json(ws, Duration::from_secs(5)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_reserved_commands_are_refused_from_http_and_websocket() {
    let server = Server::start(&["noop"], GatewayConfig::default(), None).await;
    let api: Value = reqwest::get(server.url("/api"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = api["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["routing_key"].as_str())
        .collect();
    assert!(keys.contains(&"noop.ping"), "{keys:?}");
    assert!(
        !keys.contains(&"noop.secret"),
        "an internal command is listed: {keys:?}"
    );
    let openapi = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!openapi.contains("noop/secret"), "{openapi}");

    for path in ["/api/noop/secret", "/api/handler/loaded", "/api/pyou/gap"] {
        let (status, refused) = post(&server.url(path), None, "{}").await;
        assert_eq!(status, 403, "{path}: {refused}");
    }
    let mut ws = server.ws("r1").await;
    for key in ["noop.secret", "pyou.gap", "handler.loaded"] {
        let envelope = serde_json::to_value(cmd(key, "{}").with_session("r1")).unwrap();
        let err = send(&mut ws, &envelope).await;
        assert_eq!(err["body"]["code"], "forbidden", "{key}: {err}");
    }
    // The component's own timer may send it.
    let later = json!({ "delay_ms": 20, "key": "noop.secret", "body": { "from": "timer" } });
    let (status, _) = post(
        &server.url("/api/noop/later?session=r1"),
        None,
        &later.to_string(),
    )
    .await;
    assert_eq!(status, 202);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        bodies.push(next_json(&mut ws, Duration::from_secs(5)).await.unwrap());
    }
    assert!(
        bodies
            .iter()
            .any(|e| e["meta"]["routing_key"] == "noop.ponged" && e["body"]["from"] == "timer"),
        "{bodies:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_envelope_answers_only_on_its_own_connection() {
    // Found by trying: only `session_id` was checked, so bob's command with
    // `reply_channel: "session.alice"` published under `session.alice.#`.
    let server = Server::start(&["noop"], GatewayConfig::default(), None).await;
    let mut alice_on_bus = server.bus.subscribe("session.alice.#").await.unwrap();
    let mut bob = server.ws("bob").await;
    let mut envelope =
        serde_json::to_value(cmd("noop.ping", r#"{"from":"bob"}"#).with_session("bob")).unwrap();
    envelope["meta"]["reply_channel"] = json!("session.alice");
    let err = send(&mut bob, &envelope).await;
    assert_eq!(err["body"]["code"], "invalid_envelope", "{err}");
    assert_eq!(err["meta"]["reply_channel"], "session.bob");
    // Ids the host derives for its own messages are not a client's to use.
    for id in ["timer-01JD3ABC", "rx-tally-1", "rc-0123"] {
        let mut e = serde_json::to_value(cmd("noop.ping", "{}").with_session("bob")).unwrap();
        e["meta"]["message_id"] = json!(id);
        let err = send(&mut bob, &e).await;
        assert_eq!(err["body"]["code"], "invalid_envelope", "{id}: {err}");
    }
    // Left out, session and reply channel are the connection's.
    let mut bare = serde_json::to_value(cmd("noop.ping", r#"{"ok":1}"#)).unwrap();
    bare["meta"]
        .as_object_mut()
        .unwrap()
        .remove("reply_channel");
    let ev = send(&mut bob, &bare).await;
    assert_eq!(ev["meta"]["routing_key"], "noop.ponged", "{ev}");
    assert_eq!(ev["meta"]["session_id"], "bob");
    assert!(
        common::next_within(&mut alice_on_bus, Duration::from_millis(300))
            .await
            .is_none(),
        "bob published under alice's reply channel"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_timer_id_cannot_expire_another_users_quantum() {
    // Found by trying: bob read alice's `timer_id` and sent
    // `thread.quantum.expire` with `message_id: "timer-<it>"`; her quantum
    // expired at once, the event went to bob, and her real timer later
    // republished bob's record to bob.
    let server = Server::start(&["thread"], GatewayConfig::default(), None).await;
    let (status, created) = post(
        &server.url("/api/thread/task/create?session=alice&wait=5000"),
        None,
        r#"{"id":"focus","title":"Focus","quantum":"1h"}"#,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let (_, started) = post(
        &server.url("/api/thread/start?session=alice&wait=5000"),
        None,
        r#"{"id":"focus"}"#,
    )
    .await;
    let timer_id = started["events"][0]["body"]["timer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bob = server.ws("bob").await;
    for message_id in [
        format!("timer-{timer_id}"),
        format!("timer-{timer_id}.{}", "0".repeat(64)),
    ] {
        let mut forged = serde_json::to_value(
            cmd("thread.quantum.expire", r#"{"id":"focus","run":1}"#).with_session("bob"),
        )
        .unwrap();
        forged["meta"]["message_id"] = json!(message_id);
        let err = send(&mut bob, &forged).await;
        assert_eq!(err["meta"]["routing_key"], "thread.error", "{err}");
        assert_ne!(err["body"]["code"], Value::Null, "{err}");
    }
    // The same forgery put on the bus past the gateway: the host refuses it.
    let mut past = cmd("thread.quantum.expire", r#"{"id":"focus","run":1}"#).with_session("bob");
    past.meta.message_id = format!("timer-{timer_id}.{}", "0".repeat(64));
    let events = call(&server.host, past).await;
    assert_eq!(
        error_code_of(&events[0]).as_deref(),
        Some("forbidden"),
        "{events:?}"
    );
    let (_, now) = post(
        &server.url("/api/thread/get?wait=5000"),
        None,
        r#"{"id":"focus"}"#,
    )
    .await;
    let thread = &now["events"][0]["body"];
    assert_eq!(thread["state"], "running", "{thread}");
    assert_eq!(
        thread["timer_id"],
        json!(timer_id),
        "alice's quantum still runs"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_senders_message_id_never_answers_anothers_command() {
    // Found by trying: the processed record was keyed by `message_id`
    // alone, so bob's command under alice's message id got alice's
    // recorded events republished, and ran nothing.
    let (host, _dir) = host_with(&["counter"]).await;
    let mut alice = cmd("counter.increment", r#"{"name":"shared"}"#).with_session("alice");
    alice.meta.message_id = "shared-1".to_owned();
    let first = call(&host, alice.clone()).await;
    assert_eq!(first[0].meta.routing_key, "counter.incremented");
    let mut bob = cmd("counter.get", r#"{"name":"shared"}"#).with_session("bob");
    bob.meta.message_id = "shared-1".to_owned();
    let answer = call(&host, bob).await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_ne!(
        answer[0].meta.routing_key, "counter.incremented",
        "bob got alice's record"
    );
    assert_eq!(answer[0].meta.session_id.as_deref(), Some("bob"));
    assert_eq!(body(&answer[0])["value"], 1);
    // Alice's own redelivery is still one command.
    let again = call(&host, alice).await;
    assert_eq!(
        again[0].meta.message_id, first[0].meta.message_id,
        "replayed, not run"
    );
}
