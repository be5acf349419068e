//! What protects the gateway from hostile clients: half-sent requests are
//! cut off, open connections are capped, a stalled body is a 408.

use crate::common;

use std::time::Duration;

use common::gateway::Server;
use parallel_you_gateway::GatewayConfig;
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
