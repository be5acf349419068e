//! A `pyou gateway` with no host in its process knows the API only from
//! the broker's bindings: a host binds each command with what its
//! manifest says (summary, body schema, internal), so that gateway lists
//! and refuses commands exactly as one beside a host does. Found by
//! trying: it listed `thread.quantum.expire` in `/api` and
//! `/openapi.json` (the hosts refused it, but the catalog showed it).

use std::time::Duration;

use futures::SinkExt;
use parallel_you_gateway::GatewayConfig;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::amqp::{api_keys, eventually, gateway_process_with, HostProcess};
use crate::common;
use crate::common::gateway::{next_json, post, Server};
use common::rabbit::Rabbit;

const INTERNAL: &str = "thread.quantum.expire";

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_a_host_hides_and_refuses_internal_commands() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let handlers = common::handlers_dir(&["thread"]);
    let data = tempfile::tempdir().unwrap();
    let _host =
        tokio::task::block_in_place(|| HostProcess::start(&rabbit, handlers.path(), data.path()));
    let (_gateway, base) = tokio::task::block_in_place(|| gateway_process_with(&rabbit, &[]));
    eventually(
        Duration::from_secs(20),
        "the gateway to serve thread.start",
        || {
            let base = base.clone();
            async move { api_keys(&base).await.contains("thread.start") }
        },
    )
    .await;

    // The same listing as a gateway beside a host with the same component:
    // no internal command, and the manifest's summaries and schemas.
    let beside = Server::start(&["thread"], GatewayConfig::default(), None).await;
    let alone = get_json(&format!("{base}/api")).await;
    let near = get_json(&beside.url("/api")).await;
    assert!(
        !api_keys(&base).await.contains(INTERNAL),
        "{INTERNAL} is listed: {alone}"
    );
    assert_eq!(alone["commands"], near["commands"]);
    let start = alone["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["routing_key"] == "thread.start")
        .unwrap();
    assert!(
        start["summary"].as_str().is_some_and(|s| !s.is_empty())
            && start["body_schema"].is_object(),
        "{start}"
    );
    let openapi = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(openapi.contains("thread/start"), "{openapi}");
    assert!(!openapi.contains("thread/quantum/expire"), "{openapi}");

    // Posting it is refused as beside a host, and reaches no host.
    let path = "/api/thread/quantum/expire";
    let body = r#"{"id":"focus"}"#;
    let (status, refused) = post(&format!("{base}{path}"), Some("s1"), body).await;
    let (near_status, near_refused) = post(&beside.url(path), Some("s1"), body).await;
    assert_eq!(
        (status, near_status),
        (403, 403),
        "{refused} / {near_refused}"
    );
    assert_eq!(refused, near_refused);
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("internal")),
        "{refused}"
    );
    // And over its WebSocket: a `forbidden` error event.
    let ws_url = format!("{}/ws?session=s1", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let envelope = serde_json::to_value(common::cmd(INTERNAL, body).with_session("s1")).unwrap();
    ws.send(Message::text(envelope.to_string())).await.unwrap();
    let err = next_json(&mut ws, Duration::from_secs(10)).await.unwrap();
    assert_eq!(err["body"]["code"], "forbidden", "{err}");
    beside.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_bound_again_with_other_arguments_is_one_binding() {
    use parallel_you_core::host_info::CommandInfo;
    use parallel_you_core::Bus;
    use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};

    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    let bus = AmqpBus::connect(config).await.unwrap();
    let infos = |bus: AmqpBus| async move {
        let bindings = bus.bindings().await.unwrap();
        bindings.into_iter().map(|b| b.info).collect::<Vec<_>>()
    };
    // A bare key, as an older host bound it, then this version's.
    bus.bind("up", &[CommandInfo::bare("up.go")]).await.unwrap();
    let v2 = CommandInfo {
        summary: "Go, internally".into(),
        body_schema: Some(serde_json::json!({ "type": "object" })),
        internal: true,
        ..CommandInfo::bare("up.go")
    };
    bus.bind("up", std::slice::from_ref(&v2)).await.unwrap();
    assert_eq!(infos(bus.clone()).await, [Some(v2.clone())]);
    // Listed as bound, by the broker itself: one binding, not two.
    let url = format!(
        "{}/api/exchanges/%2F/parallel_you.commands/bindings/source",
        rabbit.management_url()
    );
    let rows: Value = reqwest::Client::new()
        .get(url)
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["arguments"]["x-pyou-internal"], true, "{rows}");
    bus.unbind("up", &["up.go".to_owned()]).await.unwrap();
    assert!(infos(bus.clone()).await.is_empty());
    bus.close().await;
}
