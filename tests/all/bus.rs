//! The host serving over the in-process bus.

use crate::common;

use std::time::Duration;

use common::{body, cmd, last_error, next_within, serve_on_bus, subscribe};
use parallel_you_core::bus::{Bus, BusError};

#[tokio::test]
async fn commands_in_events_out_to_the_right_session() {
    let on = serve_on_bus(&["counter"]).await;
    let bus = &on.bus;
    let bindings = bus.bindings().await.unwrap_or_default();
    assert!(bindings
        .iter()
        .any(|b| b.routing_key == "counter.increment" && b.domain == "counter"));

    let mut mine = subscribe(&**bus, "session.me.#").await;
    let mut projection = subscribe(&**bus, "#.counter.incremented").await;
    let mut theirs = subscribe(&**bus, "session.them.#").await;

    let c = cmd("counter.increment", r#"{"name":"bus"}"#).with_session("me");
    bus.send(c.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let ev = next_within(&mut mine, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no event for the session"));
    assert_eq!(ev.meta.causation_id.as_ref(), Some(&c.meta.correlation_id));
    assert_eq!(ev.topic(), "session.me.counter.incremented");
    assert_eq!(body(&ev)["value"], 1);
    let seen = next_within(&mut projection, Duration::from_secs(5)).await;
    assert_eq!(seen.map(|e| e.meta.message_id), Some(ev.meta.message_id));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), theirs.next())
            .await
            .is_err()
    );

    let err = bus.send(cmd("nobody.home", "{}")).await.err();
    assert!(matches!(err, Some(BusError::Unroutable { .. })), "{err:?}");
    on.serving.stop();
}

#[tokio::test]
async fn many_commands_each_get_one_outcome() {
    let on = serve_on_bus(&["counter"]).await;
    let bus = &on.bus;
    let mut events = subscribe(&**bus, "session.load.#").await;
    const N: usize = 200;
    for i in 0..N {
        let c =
            cmd("counter.increment", &format!(r#"{{"name":"c{}"}}"#, i % 10)).with_session("load");
        bus.send(c).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let mut ok = 0;
    let mut failed = 0;
    // On a loaded machine a command can pass the tests' short deadline
    // after its write landed: such a timeout may or may not have counted.
    let mut timeouts = 0;
    for _ in 0..N {
        match next_within(&mut events, Duration::from_secs(10)).await {
            Some(e) if e.meta.routing_key == "counter.incremented" => ok += 1,
            Some(e) if e.meta.routing_key == "counter.error" => {
                failed += 1;
                if last_error(std::slice::from_ref(&e)).as_deref() == Some("timeout") {
                    timeouts += 1;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok + failed, N);
    // Concurrent increments of one name conflict rather than lose updates:
    // the stored totals equal the successful increments.
    let store = on.host.store();
    let mut total = 0;
    for i in 0..10 {
        let doc = store
            .get("counter", "counters", &format!("c{i}"))
            .await
            .ok()
            .flatten();
        let v: serde_json::Value = doc
            .map(|d| serde_json::from_str(&d.json).unwrap_or_default())
            .unwrap_or_default();
        total += v["value"].as_i64().unwrap_or(0);
    }
    assert!(
        (ok as i64..=(ok + timeouts) as i64).contains(&total),
        "stored total {total}, {ok} increments, {timeouts} timeouts"
    );
    on.serving.stop();
}
