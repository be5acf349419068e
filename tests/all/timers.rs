//! Durable timers: scheduled commands fire later, survive restarts, cancel.
//! Most tests move a [`ManualClock`] instead of waiting for wall-clock time;
//! the first runs on the system clock, end to end.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{body, call, cmd, handlers_dir, host_with_store, last_error, test_limits};
use parallel_you_core::bus::{Bus, InProcessBus, Subscription};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::store::{
    Commit, MemoryStore, Op, Store, StoreError, UnitLimits, UnitOfWork,
};
use parallel_you_host::store::SqliteStore;
use parallel_you_host::timers;
use parallel_you_host::timers::{ManualClock, SystemClock, TimerPump};
use parallel_you_host::{Host, HostConfig};

async fn next(sub: &mut Subscription, within: Duration) -> Option<Envelope> {
    tokio::time::timeout(within, sub.next())
        .await
        .ok()
        .flatten()
}

async fn pending(store: &dyn Store) -> usize {
    store.due_timers(u64::MAX, usize::MAX).await.unwrap().len()
}

/// A host serving `names` from `store` whose timers go by `clock`.
async fn host_with_clock(
    names: &[&str],
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
) -> (Arc<Host>, tempfile::TempDir) {
    let dir = handlers_dir(names);
    let config = HostConfig {
        limits: test_limits(),
        max_body: 0,
        ..Default::default()
    };
    let host = Arc::new(Host::with_clock(config, store, None, clock).unwrap());
    host.load_dir(dir.path()).await.unwrap();
    (host, dir)
}

#[tokio::test]
async fn scheduled_command_fires_on_the_session_after_its_delay() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["noop"], store.clone()).await;
    let bus = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await.unwrap();
    let mut session = bus.subscribe("session.t1.#").await.unwrap();
    let started = Instant::now();
    let c = cmd("noop.later", r#"{"delay_ms":300,"body":{"x":1}}"#).with_session("t1");
    bus.send(c.clone()).await.unwrap();
    let scheduled = next(&mut session, Duration::from_secs(5)).await.unwrap();
    assert_eq!(scheduled.meta.routing_key, "noop.scheduled");
    let timer_id = body(&scheduled)["timer_id"].as_str().unwrap().to_owned();
    let pong = next(&mut session, Duration::from_secs(5)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "fired early: {:?}",
        started.elapsed()
    );
    assert_eq!(pong.meta.routing_key, "noop.ponged");
    assert_eq!(body(&pong), serde_json::json!({"x": 1}));
    assert_eq!(pong.meta.session_id.as_deref(), Some("t1"));
    // The timer's command was processed under its one message id, and the
    // timer is gone.
    let sealed = host.seal().await.unwrap().message_id("noop", &timer_id);
    let marker = store.processed(&sealed).await.unwrap();
    assert!(marker.is_some_and(|events| events.len() == 1));
    assert_eq!(pending(store.as_ref()).await, 0);
    assert!(
        next(&mut session, Duration::from_millis(300))
            .await
            .is_none(),
        "fired twice"
    );
    serving.stop();
}

#[tokio::test]
async fn a_timer_fires_when_the_clock_reaches_its_due_time() {
    let clock = Arc::new(ManualClock::starting_now());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_clock(&["noop"], store.clone(), clock.clone()).await;
    let bus = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await.unwrap();
    let mut session = bus.subscribe("session.t5.#").await.unwrap();
    let c = cmd("noop.later", r#"{"delay_ms":60000,"body":{"x":5}}"#).with_session("t5");
    bus.send(c).await.unwrap();
    let scheduled = next(&mut session, Duration::from_secs(5)).await.unwrap();
    assert_eq!(scheduled.meta.routing_key, "noop.scheduled");
    let timer_id = body(&scheduled)["timer_id"].as_str().unwrap().to_owned();
    // A millisecond early: not due.
    clock.advance(Duration::from_millis(59_999));
    let pump = TimerPump::new(host.clone());
    assert_eq!(pump.fire_due(bus.as_ref()).await, Ok(0), "fired early");
    assert_eq!(pending(store.as_ref()).await, 1);
    // Due: the serving host's pump sends it.
    clock.advance(Duration::from_millis(1));
    let pong = next(&mut session, Duration::from_secs(5)).await.unwrap();
    assert_eq!(pong.meta.routing_key, "noop.ponged");
    assert_eq!(body(&pong), serde_json::json!({"x": 5}));
    let sealed = host.seal().await.unwrap().message_id("noop", &timer_id);
    let marker = store.processed(&sealed).await.unwrap();
    assert!(marker.is_some_and(|events| events.len() == 1));
    assert_eq!(pending(store.as_ref()).await, 0);
    serving.stop();
}

#[tokio::test]
async fn cancelled_timer_does_not_fire() {
    let clock = Arc::new(ManualClock::starting_now());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_clock(&["noop"], store.clone(), clock.clone()).await;
    let bus = Arc::new(InProcessBus::new());
    let mut session = bus.subscribe("session.t2.#").await.unwrap();
    let events = call(
        &host,
        cmd("noop.later", r#"{"delay_ms":400,"body":{}}"#).with_session("t2"),
    )
    .await;
    let timer_id = body(&events[0])["timer_id"].as_str().unwrap().to_owned();
    let cancel = format!(r#"{{"timer_id":"{timer_id}"}}"#);
    let events = call(&host, cmd("noop.cancel", &cancel)).await;
    assert_eq!(body(&events[0])["cancelled"], true);
    let events = call(&host, cmd("noop.cancel", &cancel)).await;
    assert_eq!(
        body(&events[0])["cancelled"],
        false,
        "a second cancel finds nothing"
    );
    // Long past its due time, the pump finds nothing to send.
    clock.advance(Duration::from_secs(3600));
    let pump = TimerPump::new(host.clone());
    assert_eq!(pump.fire_due(bus.as_ref()).await, Ok(0));
    assert_eq!(pending(store.as_ref()).await, 0);
    assert!(next(&mut session, Duration::from_millis(100))
        .await
        .is_none());
}

#[tokio::test]
async fn timer_survives_a_restart_and_fires_once() {
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(data.path()).unwrap());
        let (host, _dir) = host_with_clock(&["noop"], store, clock.clone()).await;
        // Scheduled by a host that is not serving, then gone.
        let events = call(
            &host,
            cmd(
                "noop.later",
                r#"{"delay_ms":100,"body":{"after":"restart"}}"#,
            )
            .with_session("t3"),
        )
        .await;
        assert_eq!(last_error(&events), None, "{events:?}");
    }
    // It comes due while no host runs.
    clock.advance(Duration::from_millis(200));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(data.path()).unwrap());
    assert_eq!(pending(store.as_ref()).await, 1, "the timer is on disk");
    let (host, _dir) = host_with_clock(&["noop"], store.clone(), clock.clone()).await;
    let bus = Arc::new(InProcessBus::new());
    let mut session = bus.subscribe("session.t3.#").await.unwrap();
    let serving = host.serve(bus.clone()).await.unwrap();
    let pong = next(&mut session, Duration::from_secs(5)).await.unwrap();
    assert_eq!(body(&pong), serde_json::json!({"after": "restart"}));
    assert!(
        next(&mut session, Duration::from_millis(400))
            .await
            .is_none(),
        "fired twice"
    );
    assert_eq!(pending(store.as_ref()).await, 0);
    serving.stop();
}

#[tokio::test]
async fn handlers_schedule_only_their_own_domain() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut unit = UnitOfWork::new(store.clone(), Arc::from("noop"), UnitLimits::default());
    let cause = cmd("noop.later", "{}").meta;
    let clock = SystemClock;
    let err = timers::schedule(&mut unit, &clock, &cause, 10, "counter.increment", "{}").await;
    assert!(matches!(err, Err(StoreError::Invalid(m)) if m.contains("own domain")));
    let err = timers::schedule(&mut unit, &clock, &cause, u64::MAX, "noop.ping", "{}").await;
    assert!(matches!(err, Err(StoreError::Invalid(_))));
    let err = timers::schedule(&mut unit, &clock, &cause, 10, "noop.ping", "{not json").await;
    assert!(matches!(err, Err(StoreError::Invalid(_))));
    let id = timers::schedule(&mut unit, &clock, &cause, 10_000, "noop.ping", "{}")
        .await
        .unwrap();
    let ops = unit.take_ops();
    assert_eq!(ops.len(), 1, "only the valid timer is in the unit: {ops:?}");
    assert_eq!(
        pending(store.as_ref()).await,
        0,
        "nothing is stored before the commit"
    );
    store.commit(&Commit { ops, marker: None }).await.unwrap();
    // Another domain cannot cancel it.
    let mut other = UnitOfWork::new(store.clone(), Arc::from("counter"), UnitLimits::default());
    assert_eq!(other.cancel(&id).await, Ok(false));
    let mut own = UnitOfWork::new(store.clone(), Arc::from("noop"), UnitLimits::default());
    assert_eq!(own.cancel(&id).await, Ok(true));
    assert_eq!(
        own.cancel(&id).await,
        Ok(false),
        "cancelled once in this unit"
    );
}

#[tokio::test]
async fn timer_for_a_key_nobody_serves_reports_an_error() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cause = cmd("gone.start", "{}").with_session("t4").meta;
    let row =
        timers::timer_row("t-gone", "gone", &SystemClock, &cause, 0, "gone.tick", "{}").unwrap();
    let ops = vec![Op::schedule(row)];
    store.commit(&Commit { ops, marker: None }).await.unwrap();
    let (host, _dir) = host_with_store(&["noop"], store.clone()).await;
    let bus = Arc::new(InProcessBus::new());
    let mut session = bus.subscribe("session.t4.#").await.unwrap();
    assert_eq!(
        timers::TimerPump::new(host.clone())
            .fire_due(bus.as_ref())
            .await,
        Ok(1)
    );
    let err = next(&mut session, Duration::from_secs(1)).await.unwrap();
    assert_eq!(err.meta.routing_key, "gone.error");
    assert_eq!(body(&err)["code"], "unknown_routing_key");
    assert_eq!(pending(store.as_ref()).await, 0);
}
