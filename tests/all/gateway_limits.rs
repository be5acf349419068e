//! What protects the gateway from hostile clients: half-sent requests are
//! cut off, open connections are capped, a stalled body is a 408, and
//! each client has a request rate, a number of sockets, and the gateway a
//! number of waiting requests.

use crate::common;

use std::time::Duration;

use common::gateway::Server;
use parallel_you_gateway::{GatewayConfig, Rate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slow clients opened at once: twice the cap the test sets.
const SLOW: usize = 40;
const CAP: usize = 20;

fn config() -> GatewayConfig {
    GatewayConfig {
        header_timeout: Duration::from_millis(1500),
        body_timeout: Duration::from_millis(1500),
        max_connections: CAP,
        ..GatewayConfig::default()
    }
}

/// Reads until the server closes the connection (or `within` passes);
/// what it sent.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

async fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_and_connections_capped() {
    let server = Server::start(&["counter"], config(), None).await;
    // Slowloris: headers started and never finished.
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        // A connection past the cap may already be closed: writing to it
        // can fail, which is the point.
        let _ = s
            .write_all(b"POST /api/counter/increment HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        slow.push(s);
    }
    // Every one is closed by the server, those past the cap at once and
    // the rest after the header timeout.
    for s in &mut slow {
        assert!(
            until_closed(s, Duration::from_secs(10)).await.is_some(),
            "a half-sent request stayed open"
        );
    }
    drop(slow);
    // The gateway serves again, and counted what it refused.
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let refused = metric(&server, "pyou_gateway_connections_refused_total").await;
    assert!(
        refused >= (SLOW - CAP) as f64 / 2.0,
        "{refused} connections refused of {SLOW} with a cap of {CAP}"
    );
    assert_eq!(
        metric(&server, "pyou_gateway_connections_max").await,
        CAP as f64
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_a_408_and_sends_nothing() {
    let server = Server::start(&["counter"], config(), None).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /api/counter/increment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":\"stall\",\"by\":",
    )
    .await
    .unwrap();
    let answer = until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("the gateway answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1500 ms"), "{answer}");
    // Nothing reached the bus: no counter of that name was made.
    let res = reqwest::Client::new()
        .post(server.url("/api/counter/get?wait=5000"))
        .body(r#"{"name":"stall"}"#)
        .send()
        .await
        .unwrap();
    let got: serde_json::Value = res.json().await.unwrap();
    assert_eq!(got["events"][0]["body"]["code"], "not_found", "{got}");
    server.stop().await;
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_and_others_do_not() {
    let config = GatewayConfig {
        rate_limit: Some(Rate {
            per_second: 1,
            burst: 5,
        }),
        ..GatewayConfig::default()
    };
    let server = Server::start(&["counter"], config, None).await;
    let hasty = client_from([127, 0, 0, 1]);
    let post = |client: &reqwest::Client| {
        client
            .post(server.url("/api/counter/increment"))
            .body(r#"{"name":"rate"}"#)
            .send()
    };
    for _ in 0..5 {
        assert_eq!(post(&hasty).await.unwrap().status(), 202);
    }
    let over = post(&hasty).await.unwrap();
    assert_eq!(over.status(), 429);
    assert_eq!(
        over.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = over.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("too many requests"),
        "{body}"
    );
    // Another address has a bucket of its own; reading the API is free.
    assert_eq!(
        post(&client_from([127, 0, 0, 2])).await.unwrap().status(),
        202
    );
    let listing = hasty.get(server.url("/api")).send().await.unwrap();
    assert_eq!(listing.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_per_client_and_waiting_requests_are_capped() {
    let config = GatewayConfig {
        sockets_per_client: 2,
        max_waits: 1,
        ..GatewayConfig::default()
    };
    let server = Server::start(&["counter", "spin"], config, None).await;
    let one = server.ws("w1").await;
    let _two = server.ws("w2").await;
    let url = format!("ws://{}/ws?session=w3", server.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 429)
        }
        other => panic!("a third socket: {other:?}"),
    }
    drop(one);
    // The slot comes back once the gateway sees the socket gone.
    let mut reopened = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(url.as_str()).await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "the closed socket's slot was not given back");

    // One request may wait: a second one is told to come back.
    let client = reqwest::Client::new();
    let waiting = client
        .post(server.url("/api/spin/forever?wait=3000"))
        .body("{}")
        .send();
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = client
        .post(server.url("/api/counter/get?wait=1000"))
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let _ = waiting.await;
    let third = client
        .post(server.url("/api/counter/get?wait=1000"))
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200, "the wait slot came back");
    server.stop().await;
}
