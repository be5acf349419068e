//! Sessions shared by several clients, and a gateway whose session table
//! is full: a client that names itself gets what it missed whoever came
//! in between, and a new session is refused, not served silently.

use crate::common;

use std::time::Duration;

use common::gateway::{next_json, Server, Ws};
use futures::{SinkExt, StreamExt};
use parallel_you_gateway::GatewayConfig;
use tokio_tungstenite::tungstenite::Message;

/// The counter names of the next `n` events on `ws`.
async fn names(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ev = next_json(ws, Duration::from_secs(5))
            .await
            .expect("an event");
        out.push(ev["body"]["name"].as_str().unwrap_or_default().to_owned());
    }
    out.sort();
    out
}

async fn bye(mut ws: Ws) {
    ws.close(None).await.unwrap();
    // The gateway detaches when it reads the close.
    while ws.next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tab_does_not_take_the_first_ones_replay() {
    let server = Server::start(&["counter"], GatewayConfig::default(), None).await;
    let mut a = server.ws_query("session=dana&client=tab-a").await;
    server.increment("dana", "t0").await;
    assert_eq!(names(&mut a, 1).await, ["t0"]);
    bye(a).await;
    for name in ["t1", "t2"] {
        assert_eq!(server.increment("dana", name).await.0, 202);
    }
    // Another tab of the session attaches and is given both.
    let mut b = server.ws_query("session=dana&client=tab-b").await;
    assert_eq!(names(&mut b, 2).await, ["t1", "t2"]);
    bye(b).await;
    // The first tab still gets what it missed, and nothing twice.
    let mut a = server.ws_query("session=dana&client=tab-a").await;
    assert_eq!(names(&mut a, 2).await, ["t1", "t2"]);
    assert!(
        next_json(&mut a, Duration::from_millis(300))
            .await
            .is_none(),
        "t0 was delivered twice"
    );
    bye(a).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_of_live_sessions_refuses_a_new_one_with_1013() {
    let config = GatewayConfig {
        max_sessions: 2,
        ..GatewayConfig::default()
    };
    let server = Server::start(&["counter"], config, None).await;
    let mut one = server.ws("one").await;
    let mut two = server.ws("two").await;
    let mut three = server.ws("three").await;
    let closed = tokio::time::timeout(Duration::from_secs(5), three.next())
        .await
        .expect("the gateway answers the third session");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1013, "{frame:?}");
            assert!(frame.reason.contains("too many live sessions"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // The live ones keep being served.
    server.increment("one", "still").await;
    assert_eq!(names(&mut one, 1).await, ["still"]);
    // Once one leaves, its idle session makes room for a new one.
    two.send(Message::Close(None)).await.unwrap();
    while two.next().await.is_some() {}
    let mut four = server.ws("four").await;
    server.increment("four", "in").await;
    assert_eq!(names(&mut four, 1).await, ["in"]);
    server.stop().await;
}
