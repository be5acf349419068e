//! Commands through the host: meta, events, idempotency, concurrency.

use crate::common;

use std::sync::Arc;

use common::{body, call, cmd, host_with, host_with_store, last_error};
use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Kind;
use parallel_you_core::{MemoryStore, Store};

#[tokio::test]
async fn events_carry_the_commands_correlation_and_session() {
    let (host, _dir) = host_with(&["counter"]).await;
    let c = cmd("counter.increment", r#"{"name":"coffee","by":2}"#).with_session("sess-1");
    let events = call(&host, c.clone()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = &events[0];
    assert_eq!(ev.meta.kind, Kind::Event);
    assert_eq!(ev.meta.routing_key, "counter.incremented");
    assert_eq!(ev.meta.causation_id.as_ref(), Some(&c.meta.correlation_id));
    assert_eq!(ev.meta.session_id.as_deref(), Some("sess-1"));
    assert_eq!(ev.meta.reply_channel.as_deref(), Some("session.sess-1"));
    assert_ne!(ev.meta.message_id, c.meta.message_id);
    assert_eq!(body(ev)["value"], 2);
    assert_eq!(body(ev)["name"], "coffee");
}

#[tokio::test]
async fn redelivered_message_id_does_not_run_twice() {
    let (host, _dir) = host_with(&["counter"]).await;
    let c = cmd("counter.increment", r#"{"name":"once"}"#);
    let first = call(&host, c.clone()).await;
    let again = call(&host, c.clone()).await;
    assert_eq!(last_error(&first), None);
    let ids = |v: &[parallel_you_core::Envelope]| {
        v.iter()
            .map(|e| e.meta.message_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&first),
        ids(&again),
        "the recorded events are republished as they were"
    );
    let value = call(&host, cmd("counter.get", r#"{"name":"once"}"#)).await;
    assert_eq!(
        body(&value[0])["value"],
        1,
        "the increment ran once: {value:?}"
    );
    // A new message id with the same body is a new command.
    call(&host, cmd("counter.increment", r#"{"name":"once"}"#)).await;
    let value = call(&host, cmd("counter.get", r#"{"name":"once"}"#)).await;
    assert_eq!(body(&value[0])["value"], 2);
}

#[tokio::test]
async fn handler_errors_keep_their_code() {
    let (host, _dir) = host_with(&["counter"]).await;
    let events = call(&host, cmd("counter.get", r#"{"name":"missing"}"#)).await;
    assert_eq!(last_error(&events).as_deref(), Some("not_found"));
    let events = call(&host, cmd("counter.increment", r#"{"name":""}"#)).await;
    assert_eq!(last_error(&events).as_deref(), Some("validation"));
    let events = call(&host, cmd("counter.increment", r#"{"nom":1}"#)).await;
    assert_eq!(
        last_error(&events).as_deref(),
        Some("validation"),
        "a body of the wrong shape"
    );
    let events = call(
        &host,
        cmd("counter.increment", r#"{"name":"x","expected_version":7}"#),
    )
    .await;
    assert_eq!(last_error(&events).as_deref(), Some("conflict"));
    assert_eq!(
        body(&events[0])["context"]["current_version"],
        0,
        "{:?}",
        body(&events[0])
    );
}

#[tokio::test]
async fn invalid_envelope_is_answered_on_its_session() {
    let (host, _dir) = host_with(&["counter"]).await;
    let out = Arc::new(Collector::new());
    let text = r#"{"meta":{"routing_key":"counter.get","correlation_id":"c-1","session_id":"s1","reply_channel":"session.s1"},"body":{}}"#;
    let events = host.dispatch_json(text, out.clone()).await;
    assert_eq!(last_error(&events).as_deref(), Some("invalid_envelope"));
    assert_eq!(events[0].meta.causation_id.as_deref(), Some("c-1"));
    assert_eq!(events[0].topic(), "session.s1.counter.error");
    assert_eq!(out.take().len(), 1, "the error event was published");
    let events = host
        .dispatch_json("not json at all", Arc::new(Collector::new()))
        .await;
    assert_eq!(events[0].meta.routing_key, "pyou.error");
    let mut bad = cmd("counter.get", "{}");
    bad.meta.routing_key = "Counter.Get".into();
    let events = call(&host, bad).await;
    assert_eq!(last_error(&events).as_deref(), Some("invalid_envelope"));
}

#[tokio::test]
async fn emitted_events_come_first_and_in_order() {
    let (host, _dir) = host_with(&["noop"]).await;
    let out = Arc::new(Collector::new());
    let events = host
        .dispatch(cmd("noop.emit", r#"{"n":3}"#), out.clone())
        .await;
    let keys: Vec<_> = events.iter().map(|e| e.meta.routing_key.as_str()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(keys[3], "noop.done");
    let published: Vec<_> = out.take().into_iter().map(|e| e.meta.message_id).collect();
    let returned: Vec<_> = events.iter().map(|e| e.meta.message_id.clone()).collect();
    assert_eq!(published, returned, "published in the order returned");
}

#[tokio::test]
async fn concurrent_writers_one_wins_the_other_conflicts() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["counter"], store).await;
    call(&host, cmd("counter.increment", r#"{"name":"race"}"#)).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            call(
                &host,
                cmd(
                    "counter.increment",
                    r#"{"name":"race","expected_version":1}"#,
                ),
            )
            .await
        }));
    }
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match last_error(&t.await.unwrap_or_default()).as_deref() {
            None => wins += 1,
            Some("conflict") => conflicts += 1,
            Some(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((wins, conflicts), (1, 7));
    let value = call(&host, cmd("counter.get", r#"{"name":"race"}"#)).await;
    assert_eq!(body(&value[0])["value"], 2);
}

#[tokio::test]
async fn store_is_scoped_to_the_domain() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .upsert("noop", "docs", "secret", r#"{"mine":true}"#, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (host, _dir) = host_with_store(&["counter", "noop"], store.clone()).await;
    call(&host, cmd("counter.increment", r#"{"name":"secret"}"#)).await;
    // counter wrote under its own domain only.
    let mine = store
        .get("counter", "counters", "secret")
        .await
        .unwrap_or(None);
    assert!(mine.is_some());
    let theirs = store.get("noop", "docs", "secret").await.unwrap_or(None);
    assert_eq!(
        theirs.map(|d| d.version),
        Some(1),
        "noop's document untouched"
    );
    assert_eq!(
        store
            .get("noop", "counters", "secret")
            .await
            .unwrap_or(None),
        None
    );
}

#[tokio::test]
async fn events_outside_the_domain_are_refused() {
    let (host, _dir) = host_with(&["noop"]).await;
    let events = call(&host, cmd("noop.stray", "{}")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(last_error(&events).as_deref(), Some("invalid_event"));
    assert!(body(&events[0])["message"]
        .as_str()
        .unwrap_or_default()
        .contains("counter.hijacked"));
}
