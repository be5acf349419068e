//! A guest that traps, loops or eats memory harms only its own command.

use crate::common;

use std::time::Instant;

use common::{body, call, cmd, host_with, last_error};

#[tokio::test]
async fn trap_becomes_error_event_and_host_keeps_serving() {
    let (host, _dir) = host_with(&["trap", "counter"]).await;
    let c = cmd("trap.panic", "{}").with_session("s1");
    let events = call(&host, c.clone()).await;
    assert_eq!(events.len(), 1);
    let err = &events[0];
    assert_eq!(err.meta.routing_key, "trap.error");
    assert_eq!(last_error(&events).as_deref(), Some("trap"));
    assert_eq!(err.meta.causation_id.as_ref(), Some(&c.meta.correlation_id));
    assert_eq!(err.meta.session_id.as_deref(), Some("s1"));
    let b = body(err);
    assert_eq!(b["command"], "trap.panic");
    let stderr = b["context"]["stderr"].as_str().unwrap_or_default();
    assert!(
        stderr.contains("panicked"),
        "the panic message is kept: {b}"
    );

    let ok = call(&host, cmd("trap.ok", "{}")).await;
    assert_eq!(
        ok.iter()
            .map(|e| e.meta.routing_key.as_str())
            .collect::<Vec<_>>(),
        ["trap.fine"]
    );
    let ok = call(&host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

#[tokio::test]
async fn endless_loop_is_stopped_at_its_deadline() {
    let (host, _dir) = host_with(&["spin", "counter"]).await;
    let deadline = host_test_deadline();
    let started = Instant::now();
    let events = call(&host, cmd("spin.forever", "{}")).await;
    let took = started.elapsed();
    assert_eq!(
        last_error(&events).as_deref(),
        Some("timeout"),
        "{events:?}"
    );
    assert!(
        took < deadline + std::time::Duration::from_secs(1),
        "stopped after {took:?}, deadline {deadline:?}"
    );
    let ok = call(&host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
    let ok = call(&host, cmd("spin.ok", "{}")).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

#[tokio::test]
async fn loops_do_not_block_other_commands() {
    // Two loopers on a two-worker runtime must not starve a third command:
    // the epoch callback makes busy guests yield.
    let (host, _dir) = host_with(&["spin", "counter"]).await;
    let a = tokio::spawn({
        let host = host.clone();
        async move { call(&host, cmd("spin.forever", "{}")).await }
    });
    let b = tokio::spawn({
        let host = host.clone();
        async move { call(&host, cmd("spin.forever", "{}")).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = Instant::now();
    let ok = call(&host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    let took = started.elapsed();
    assert_eq!(last_error(&ok), None, "{ok:?}");
    let a = a.await.unwrap_or_default();
    let b = b.await.unwrap_or_default();
    assert_eq!(last_error(&a).as_deref(), Some("timeout"));
    assert_eq!(last_error(&b).as_deref(), Some("timeout"));
    assert!(
        took < host_test_deadline(),
        "a healthy command waited {took:?} behind loops"
    );
}

#[tokio::test]
async fn memory_hog_hits_the_cap_and_host_keeps_serving() {
    // A deadline far beyond the time 32 MiB take to fill, so that on a
    // loaded machine only the memory cap can stop the hog.
    let limits = parallel_you_host::Limits {
        deadline: std::time::Duration::from_secs(20),
        ..common::test_limits()
    };
    let store = std::sync::Arc::new(parallel_you_core::MemoryStore::new());
    let (host, _dir) = common::host_with_limits(&["hog", "counter"], store, limits).await;
    let events = call(&host, cmd("hog.eat", "{}")).await;
    assert_eq!(
        last_error(&events).as_deref(),
        Some("memory_limit"),
        "{events:?}"
    );
    let ok = call(&host, cmd("hog.ok", "{}")).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
    let ok = call(&host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

fn host_test_deadline() -> std::time::Duration {
    common::test_limits().deadline
}
