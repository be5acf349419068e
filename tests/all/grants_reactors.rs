//! Grants apply to reactors as to handlers: the test reactor `rfetch`
//! (subscribed to `noop.ponged`) reaches a loopback HTTP server only as
//! its grants file (`rfetch.toml`) allows, on the in-process bus.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_you_core::{Bus, Envelope, InProcessBus, MemoryStore};
use parallel_you_host::{Host, HostConfig, Limits};
use serde_json::{json, Value};

use crate::common::{self, cmd, handlers_dir, test_limits};
use crate::grants::TestServer;

/// What `rfetch` announced for one `noop.ping {url}`, served by a host
/// with `noop` and `rfetch` whose `rfetch.toml` is `grants` (none when
/// `None`); and the host's listing of its components.
async fn reactor_fetch(grants: Option<&str>, url: &str) -> (Envelope, String) {
    let dir = handlers_dir(&["noop", "rfetch"]);
    if let Some(grants) = grants {
        std::fs::write(dir.path().join("rfetch.toml"), grants).unwrap();
    }
    let config = HostConfig {
        limits: Limits {
            deadline: Duration::from_secs(5),
            ..test_limits()
        },
        max_body: 0,
        ..Default::default()
    };
    let host = Arc::new(Host::new(config, Arc::new(MemoryStore::new())).unwrap());
    host.load_dir(dir.path()).await.unwrap();
    let bus = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await.unwrap();
    let mut events = common::subscribe(bus.as_ref(), "#").await;
    bus.send(cmd("noop.ping", &json!({ "url": url }).to_string()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let announced = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(event) = common::next_within(&mut events, left).await else {
            panic!("rfetch announced nothing");
        };
        if event.meta.routing_key.starts_with("rfetch.") {
            break event;
        }
    };
    let listed = serde_json::to_string(&host.status()).unwrap();
    serving.shutdown(Duration::from_secs(5)).await;
    (announced, listed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_reaches_only_what_its_grants_allow() {
    let server = TestServer::start().await;
    let granted = format!("[http]\nallow = [\"http://127.0.0.1:{}\"]\n", server.port);
    let (event, listed) = reactor_fetch(Some(&granted), &server.url("/hello")).await;
    let body: Value = serde_json::from_str(event.body.get()).unwrap();
    assert_eq!(event.meta.routing_key, "rfetch.fetched", "{body}");
    assert_eq!(body["status"], 200, "{body}");
    assert_eq!(body["text"], "hello", "{body}");
    assert!(
        listed.contains(&format!("http://127.0.0.1:{}", server.port)),
        "the reactor's grants are listed: {listed}"
    );
    assert_eq!(server.heads.lock().unwrap().len(), 1);

    // The same reactor without a grants file: refused by the host, and
    // the reactor sees why.
    let (event, _) = reactor_fetch(None, &server.url("/hello")).await;
    let body: Value = serde_json::from_str(event.body.get()).unwrap();
    assert_eq!(event.meta.routing_key, "rfetch.failed", "{body}");
    assert_eq!(body["code"], "denied", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not granted")),
        "{body}"
    );
    assert_eq!(
        server.heads.lock().unwrap().len(),
        1,
        "no request reached the server without the grant"
    );
}
