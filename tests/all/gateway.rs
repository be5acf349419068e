//! The gateway end to end: real HTTP and WebSocket clients on loopback,
//! against the host running real components.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parallel_you_core::Bus;
use parallel_you_gateway::{Gateway, GatewayConfig, TlsFiles};
use parallel_you_host::Host;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) host: Arc<Host>,
    pub(crate) bus: Arc<dyn Bus>,
    handlers: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(
        names: &[&str],
        config: GatewayConfig,
        tls: Option<TlsFiles>,
    ) -> Server {
        Self::start_on(common::serve_on_bus(names).await, config, tls).await
    }

    async fn start_on(
        on_bus: common::OnBus,
        config: GatewayConfig,
        tls: Option<TlsFiles>,
    ) -> Server {
        let common::OnBus {
            host,
            bus,
            serving,
            handlers,
        } = on_bus;
        let bus: Arc<dyn Bus> = bus;
        let gateway = Gateway::start(bus.clone(), Some(host.clone()), config)
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let signal = async move {
                let _ = rx.await;
            };
            gateway
                .serve(listener, tls, signal, Duration::from_secs(5))
                .await
                .unwrap();
            serving.shutdown(Duration::from_secs(5)).await;
        });
        Server {
            addr,
            host,
            bus,
            handlers,
            stop: Some(tx),
            done,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) async fn ws(&self, session: &str) -> Ws {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws?session={session}", self.addr))
                .await
                .unwrap();
        ws
    }

    /// Posts `counter.increment` for `name` in `session`.
    async fn increment(&self, session: &str, name: &str) -> (u16, Value) {
        post(
            &self.url("/api/counter/increment"),
            Some(session),
            &json!({ "name": name }).to_string(),
        )
        .await
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.done)
            .await
            .expect("server stops")
            .unwrap();
    }
}

pub(crate) async fn post(url: &str, session: Option<&str>, body: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .body(body.to_owned())
        .header("content-type", "application/json");
    if let Some(s) = session {
        req = req.header("X-Session-Id", s);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(within, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_their_session_only() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let mut mine = server.ws("alice").await;
    let mut other = server.ws("bob").await;
    let (status, accepted) = server.increment("alice", "gw").await;
    assert_eq!(status, 202, "{accepted}");
    let correlation_id = accepted["correlation_id"].as_str().unwrap();
    assert!(accepted["message_id"].is_string());
    let ev = next_json(&mut mine, Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(ev["meta"]["causation_id"], correlation_id);
    assert_eq!(ev["meta"]["routing_key"], "counter.incremented");
    assert_eq!(ev["meta"]["session_id"], "alice");
    assert_eq!(ev["body"]["value"], 1);
    assert!(
        next_json(&mut other, Duration::from_millis(300))
            .await
            .is_none(),
        "bob saw alice's event"
    );

    // `?session=` works as well as the header, and the socket delivers the
    // session's events in the order they were published (commands run
    // concurrently, so that need not be the order they were sent).
    let mut published = server.bus.subscribe("session.alice.#").await.unwrap();
    for i in 0..20 {
        let (status, _) = post(
            &server.url("/api/counter/increment?session=alice"),
            None,
            &format!(r#"{{"name":"o{i}"}}"#),
        )
        .await;
        assert_eq!(status, 202);
    }
    let mut on_bus = Vec::new();
    let mut on_socket = Vec::new();
    for _ in 0..20 {
        let ev = common::next_within(&mut published, Duration::from_secs(5))
            .await
            .unwrap();
        on_bus.push(ev.meta.message_id);
        let ev = next_json(&mut mine, Duration::from_secs(5)).await.unwrap();
        on_socket.push(ev["meta"]["message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(on_socket, on_bus);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_and_publish_nothing() {
    let config = GatewayConfig {
        max_body: 1024,
        ..GatewayConfig::default()
    };
    let server = Server::start(&["counter"], config, None).await;
    let mut everything = server.bus.subscribe("#").await.unwrap();

    let (status, body) = post(&server.url("/api/no/such/thing"), None, "{}").await;
    assert_eq!(status, 404);
    let known: Vec<&str> = body["known_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(known.contains(&"/api/counter/increment"), "{body}");
    let (status, _) = post(&server.url("/elsewhere"), None, "{}").await;
    assert_eq!(status, 404);

    let (status, body) = post(&server.url("/api/counter/increment"), None, "{oops").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("JSON"));
    let (status, body) = post(
        &server.url("/api/counter/increment"),
        None,
        &format!(r#"{{"name":"{}"}}"#, "x".repeat(2000)),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = post(
        &server.url("/api/counter/increment?session=no%20spaces"),
        None,
        "{}",
    )
    .await;
    assert_eq!(status, 400);

    let published = tokio::time::timeout(Duration::from_millis(300), everything.next()).await;
    assert!(
        published.is_err(),
        "a refused request published {published:?}"
    );
    assert_eq!(server.host.metrics().commands_for("counter.increment"), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_client_gets_what_it_missed() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let mut ws = server.ws("carol").await;
    server.increment("carol", "r0").await;
    assert_eq!(
        next_json(&mut ws, Duration::from_secs(5)).await.unwrap()["body"]["name"],
        "r0"
    );
    ws.close(None).await.unwrap();
    drop(ws);
    for name in ["r1", "r2"] {
        let (status, _) = server.increment("carol", name).await;
        assert_eq!(status, 202);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = server.ws("carol").await;
    let mut replayed = Vec::new();
    for _ in 0..2 {
        let ev = next_json(&mut again, Duration::from_secs(5))
            .await
            .expect("missed event replayed");
        replayed.push(ev["body"]["name"].as_str().unwrap().to_owned());
    }
    replayed.sort();
    assert_eq!(replayed, ["r1", "r2"]);
    assert!(
        next_json(&mut again, Duration::from_millis(200))
            .await
            .is_none(),
        "r0 was delivered twice"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_buffer_sends_a_gap_notice() {
    let config = GatewayConfig {
        session_buffer: 2,
        ..GatewayConfig::default()
    };
    let server = Server::start(&["counter"], config, None).await;
    let mut published = server.bus.subscribe("session.dave.#").await.unwrap();
    for i in 0..5 {
        server.increment("dave", &format!("g{i}")).await;
    }
    let mut order = Vec::new();
    for _ in 0..5 {
        let ev = common::next_within(&mut published, Duration::from_secs(5))
            .await
            .unwrap();
        order.push(ev.meta.message_id);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ws = server.ws("dave").await;
    let gap = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(gap["meta"]["routing_key"], "pyou.gap");
    assert_eq!(gap["body"]["missed"], 3);
    // The buffer kept the last two published.
    for kept in &order[3..] {
        assert_eq!(
            next_json(&mut ws, Duration::from_secs(5)).await.unwrap()["meta"]["message_id"],
            kept.as_str()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_with_the_events() {
    let server = Server::start(&["counter", "spin", "noop"], GatewayConfig::default(), None).await;
    let (status, body) = post(
        &server.url("/api/counter/increment?wait=5000"),
        None,
        r#"{"name":"w"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["meta"]["causation_id"], body["correlation_id"]);
    assert_eq!(events[0]["body"]["value"], 1);
    assert_eq!(events[0]["meta"]["last"], true, "{body}");
    assert_eq!(body["complete"], true);
    // Several events: all of them, in order, and only the last marked so.
    let (status, body) = post(&server.url("/api/noop/emit?wait=5000"), None, r#"{"n":3}"#).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<_> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["meta"]["routing_key"].clone(), e["meta"]["last"].clone()))
        .collect();
    let emitted = (Value::from("noop.emitted"), Value::Null);
    let done = (Value::from("noop.done"), Value::Bool(true));
    assert_eq!(
        keys,
        [emitted.clone(), emitted.clone(), emitted, done],
        "{body}"
    );
    assert_eq!(body["complete"], true);
    // An error is an answer too.
    let (status, body) = post(
        &server.url("/api/counter/get?wait=5000"),
        None,
        r#"{"name":"nope"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["body"]["code"], "not_found");
    assert_eq!(body["events"][0]["meta"]["last"], true);
    assert_eq!(body["complete"], true);
    // Nothing within the wait: 504 with the correlation id to follow up.
    let (status, body) = post(&server.url("/api/spin/forever?wait=100"), None, "{}").await;
    assert_eq!(status, 504, "{body}");
    assert!(body["correlation_id"].is_string());
    server.stop().await;
}

/// Every `$ref` in the document points at something inside it.
fn refs_resolve(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let pointer = r.strip_prefix('#').expect("local ref");
                assert!(doc.pointer(pointer).is_some(), "dangling {r}");
            }
            map.values().for_each(|v| refs_resolve(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_resolve(doc, v)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_listing_and_openapi_follow_the_handlers() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let list: Value = reqwest::get(server.url("/api"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inc = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["routing_key"] == "counter.increment")
        .unwrap();
    assert_eq!(inc["path"], "/api/counter/increment");
    assert!(inc["summary"].is_string());
    assert_eq!(inc["body_schema"]["required"], json!(["name"]));

    let doc: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let op = &doc["paths"]["/api/counter/increment"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"],
        inc["body_schema"]
    );
    assert!(op["responses"]["202"].is_object());
    refs_resolve(&doc, &doc);

    // A handler dropped in while running becomes callable…
    std::fs::copy(
        common::components().join("noop.wasm"),
        server.handlers.path().join("noop.wasm"),
    )
    .unwrap();
    server.host.load_dir(server.handlers.path()).await.unwrap();
    let (status, body) = post(&server.url("/api/noop/ping?wait=5000"), None, r#"{"hi":1}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["body"]["hi"], 1);
    let doc: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/noop/ping"].is_object());
    // …and one removed disappears.
    std::fs::remove_file(server.handlers.path().join("noop.wasm")).unwrap();
    server.host.load_dir(server.handlers.path()).await.unwrap();
    let (status, _) = post(&server.url("/api/noop/ping"), None, "{}").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_send_commands_and_bad_ones_get_an_error_event() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let mut ws = server.ws("erin").await;
    ws.send(Message::text("this is not an envelope"))
        .await
        .unwrap();
    let err = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(err["body"]["code"], "invalid_envelope");
    assert_eq!(err["meta"]["session_id"], "erin");
    let mut cmd = serde_json::to_value(
        common::cmd("counter.increment", r#"{"name":"ws"}"#).with_session("erin"),
    )
    .unwrap();
    ws.send(Message::text(cmd.to_string())).await.unwrap();
    let ev = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["meta"]["causation_id"], cmd["meta"]["correlation_id"]);
    cmd["meta"]["session_id"] = json!("mallory");
    ws.send(Message::text(cmd.to_string())).await.unwrap();
    let err = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        err["body"]["code"], "invalid_envelope",
        "another session's envelope is refused"
    );

    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pyou_gateway_websocket_sessions 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pyou_commands_total{routing_key=\"counter.increment\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pyou_dispatch_seconds_bucket{routing_key=\"counter.increment\""));
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_on_one_socket_all_run_once() {
    const N: u64 = 300;
    // Hundreds of commands at once on a small machine: a deadline that
    // measures the handler, not the queue for the cores.
    let limits = parallel_you_host::Limits {
        deadline: Duration::from_secs(10),
        ..common::test_limits()
    };
    let on_bus = common::serve_on_bus_with(&["counter"], limits).await;
    let server = Server::start_on(on_bus, GatewayConfig::default(), None).await;
    let mut ws = server.ws("pipe").await;
    // Sent without waiting for answers: more than the socket's sends in
    // flight, so its backpressure is crossed too.
    // (One counter each: on a shared one, 64 at once would overtake each
    // other into `conflict`, as they should.)
    for i in 0..N {
        let body = format!(r#"{{"name":"pipe-{i}"}}"#);
        let cmd = common::cmd("counter.increment", &body).with_session("pipe");
        ws.send(Message::text(cmd.to_json())).await.unwrap();
    }
    let mut names = Vec::new();
    while (names.len() as u64) < N {
        let ev = next_json(&mut ws, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{} of {N} answers", names.len()));
        assert_eq!(ev["meta"]["routing_key"], "counter.incremented", "{ev}");
        assert_eq!(ev["body"]["value"], 1, "{ev}");
        names.push(ev["body"]["name"].as_str().unwrap().to_owned());
    }
    names.sort_unstable();
    let mut want: Vec<String> = (0..N).map(|i| format!("pipe-{i}")).collect();
    want.sort_unstable();
    assert_eq!(names, want);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_queries_are_get_routes_listed_with_their_parameters() {
    let server = Server::start(&["noop", "tally"], GatewayConfig::default(), None).await;
    for i in 0..3 {
        let (status, body) = post(
            &server.url("/api/noop/ping?wait=5000"),
            None,
            &format!("{{\"i\":{i}}}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // The reactor sees the events on its own queue: poll its read model.
    let get = |path: &'static str| {
        let url = server.url(path);
        async move {
            let res = reqwest::get(url).await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get("/api/query/tally/count?key=noop.ponged").await;
        assert_eq!(status, 200, "{body}");
        if body == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "tally counted {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // POST with a JSON body is the same query.
    let (status, body) = post(
        &server.url("/api/query/tally/count"),
        None,
        r#"{"key":"noop.ponged"}"#,
    )
    .await;
    assert_eq!((status, body), (200, json!(3)));
    // Errors keep their codes and map to statuses.
    let (status, body) = get("/api/query/tally/count").await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("validation")),
        "required key"
    );
    let (status, body) = get("/api/query/tally/nope").await;
    assert_eq!((status, body["code"].clone()), (404, json!("not_found")));
    let (status, body) = get("/api/query/nobody/count").await;
    assert_eq!((status, body["code"].clone()), (404, json!("not_found")));
    let (status, body) = get("/api/query/tally/write").await;
    assert_eq!(status, 500, "a query that writes fails: {body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("read-only"),
        "{body}"
    );
    // Listed in GET /api and in the OpenAPI document as GET operations.
    let (_, api) = get("/api").await;
    let paths: Vec<_> = api["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["path"].clone())
        .collect();
    assert!(paths.contains(&json!("/api/query/tally/count")), "{api}");
    let (_, doc) = get("/openapi.json").await;
    let op = &doc["paths"]["/api/query/tally/count"]["get"];
    assert_eq!(op["parameters"][0]["name"], "key", "{doc}");
    assert_eq!(op["parameters"][0]["required"], true);
    refs_resolve(&doc, &doc);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_websockets_cleanly() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let mut ws = server.ws("frank").await;
    server.stop().await;
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_client_receives_its_sessions_events() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start(&["counter"], GatewayConfig::default(), Some(files)).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(client));
    let url = format!("wss://localhost:{}/ws?session=grace", server.addr.port());
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .unwrap();
    let cmd = common::cmd("counter.increment", r#"{"name":"tls"}"#).with_session("grace");
    ws.send(Message::text(cmd.to_json())).await.unwrap();
    let ev = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["meta"]["causation_id"], cmd.meta.correlation_id.as_str());
    assert_eq!(ev["body"]["name"], "tls");
    // Plain HTTP on a TLS port is not served.
    assert!(reqwest::get(server.url("/healthz")).await.is_err());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_every_sessions_matching_events_once() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let connect =
        |query: &str| tokio_tungstenite::connect_async(format!("ws://{}/ws?{query}", server.addr));
    let (mut follower, _) = connect("session=watcher&follow=counter.*,handler.*")
        .await
        .unwrap();
    let mut plain = server.ws("bob").await;

    // Another session's event reaches the follower, not a plain socket.
    let (status, accepted) = server.increment("alice", "followed").await;
    assert_eq!(status, 202);
    let seen = next_json(&mut follower, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(seen["meta"]["routing_key"], "counter.incremented");
    assert_eq!(seen["meta"]["session_id"], "alice");
    assert_eq!(seen["meta"]["causation_id"], accepted["correlation_id"]);
    assert!(next_json(&mut plain, Duration::from_millis(300))
        .await
        .is_none());

    // The follower's own events come once (through its session), not twice.
    let (status, _) = server.increment("watcher", "own").await;
    assert_eq!(status, 202);
    let own = next_json(&mut follower, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(own["meta"]["session_id"], "watcher");
    assert!(next_json(&mut follower, Duration::from_millis(300))
        .await
        .is_none());

    // Patterns are checked and bounded.
    for bad in [
        "follow=Counter..x".to_owned(),
        "follow=%23.a.%23.b.%23".to_owned(),
        format!("follow={}", vec!["a.*"; 17].join(",")),
    ] {
        match connect(&format!("session=s&{bad}")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status().as_u16(), 400, "{bad}")
            }
            other => panic!("{bad}: {:?}", other.map(|_| ())),
        }
    }
    server.stop().await;
}
