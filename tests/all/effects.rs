//! Exactly-once effects: a command's writes, timers, marker and events are
//! committed together after the guest returns, or not at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::common::faulty::{Faulty, Meddle};
use crate::common::{body, call, cmd, handlers_dir, host_with_store, last_error, test_limits};
use parallel_you_core::bus::{BusError, Collector, Publisher};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::store::{MemoryStore, Store};
use parallel_you_host::host::record_id;
use parallel_you_host::outbox::OutboxRelay;
use parallel_you_host::timers::ManualClock;
use parallel_you_host::{Host, HostConfig, RetryPolicy};

fn target(id: &str) -> String {
    format!(r#"{{"id":"{id}"}}"#)
}

async fn peek(host: &Host, id: &str) -> serde_json::Value {
    let events = call(host, cmd("halfway.peek", &target(id))).await;
    assert_eq!(last_error(&events), None, "{events:?}");
    body(&events[0])["stored"].clone()
}

fn keys(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.meta.routing_key.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_keeps_none_of_its_writes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["halfway"], store.clone()).await;
    for (key, code) in [
        ("halfway.write-then-trap", "trap"),
        ("halfway.write-then-spin", "timeout"),
        ("halfway.write-then-fail", "validation"),
    ] {
        let id = key.replace('.', "-");
        let events = call(&host, cmd(key, &target(&id))).await;
        assert_eq!(
            last_error(&events).as_deref(),
            Some(code),
            "{key}: {events:?}"
        );
        assert_eq!(
            peek(&host, &id).await,
            serde_json::Value::Null,
            "{key} left its write"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_emitted_before_a_trap_is_never_published_nor_recorded() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["halfway"], store.clone()).await;
    let command = cmd("halfway.emit-then-trap", &target("e"));
    let out = Arc::new(Collector::new());
    let returned = host.dispatch(command.clone(), out.clone()).await;
    let published = out.take();
    assert_eq!(keys(&published), vec!["halfway.error"], "{published:?}");
    assert_eq!(keys(&returned), vec!["halfway.error"]);
    assert_eq!(body(&published[0])["code"], "trap");
    let recorded = store
        .processed(&record_id(&command.meta, false))
        .await
        .unwrap();
    let recorded = recorded.expect("the failed command is recorded");
    assert_eq!(recorded.len(), 1, "only its error event: {recorded:?}");
    assert!(!recorded[0].contains("halfway.started"), "{recorded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_scheduled_before_a_trap_is_never_stored() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["halfway"], store.clone()).await;
    let events = call(&host, cmd("halfway.schedule-then-trap", &target("t"))).await;
    assert_eq!(last_error(&events).as_deref(), Some("trap"));
    assert_eq!(store.pending_timers("halfway").await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_overtaken_at_commit_runs_again_then_says_conflict() {
    let faulty = Faulty::new(Arc::new(MemoryStore::new()));
    let store: Arc<dyn Store> = faulty.clone();
    let (host, _dir) = host_with_store(&["halfway"], store.clone()).await;
    let first = call(&host, cmd("halfway.count", &target("c"))).await;
    assert_eq!(body(&first[0])["n"], 1);
    // Another command writes the counter after this one read it, before
    // it commits: the command is run again on what that one left.
    *faulty.meddle.lock().unwrap() = Some(Meddle {
        collection: "counts".into(),
        id: "c".into(),
        json: r#"{"n":41}"#.into(),
        times: 1,
    });
    let rerun = call(&host, cmd("halfway.count", &target("c"))).await;
    assert_eq!(keys(&rerun), vec!["halfway.counted"], "{rerun:?}");
    assert_eq!(body(&rerun[0])["n"], 42, "run again after the other write");
    // Overtaken at every run: the answer is a conflict, and nothing is kept.
    *faulty.meddle.lock().unwrap() = Some(Meddle {
        collection: "counts".into(),
        id: "c".into(),
        json: r#"{"n":100}"#.into(),
        times: 3,
    });
    let lost = call(&host, cmd("halfway.count", &target("c"))).await;
    assert_eq!(last_error(&lost).as_deref(), Some("conflict"), "{lost:?}");
    assert_eq!(
        keys(&lost),
        vec!["halfway.error"],
        "no success event goes out"
    );
    let next = call(&host, cmd("halfway.count", &target("c"))).await;
    assert_eq!(
        body(&next[0])["n"],
        101,
        "the meddler's write stands, the loser's does not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_at_commit_is_retried_without_error_events() {
    let faulty = Faulty::new(Arc::new(MemoryStore::new()));
    let store: Arc<dyn Store> = faulty.clone();
    let (host, _dir) = host_with_store(&["halfway"], store.clone()).await;
    let bus = Arc::new(parallel_you_core::bus::InProcessBus::new());
    let mut events = crate::common::subscribe(bus.as_ref(), "halfway.#").await;
    let serving = host.serve(bus.clone()).await.unwrap();
    faulty.fail_next(2);
    use parallel_you_core::bus::Bus as _;
    bus.send(cmd("halfway.count", &target("o"))).await.unwrap();
    let first = crate::common::next_within(&mut events, Duration::from_secs(10)).await;
    let first = first.expect("the command succeeds once the store is back");
    assert_eq!(first.meta.routing_key, "halfway.counted", "{first:?}");
    assert_eq!(body(&first)["n"], 1, "applied once");
    assert_eq!(
        faulty.commits.load(Ordering::SeqCst),
        3,
        "two failed tries, then the commit"
    );
    let more = crate::common::next_within(&mut events, Duration::from_millis(300)).await;
    assert!(
        more.is_none(),
        "no unavailable event for the tries: {more:?}"
    );
    serving.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stays_away_dead_letters_the_command_with_one_error() {
    let faulty = Faulty::new(Arc::new(MemoryStore::new()));
    let store: Arc<dyn Store> = faulty.clone();
    let retry = RetryPolicy {
        max_attempts: 5,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
    };
    let dir = handlers_dir(&["halfway"]);
    let config = HostConfig {
        limits: test_limits(),
        retry,
        ..Default::default()
    };
    let host = Arc::new(Host::new(config, store.clone()).unwrap());
    host.load_dir(dir.path()).await.unwrap();
    let bus = Arc::new(parallel_you_core::bus::InProcessBus::new());
    let mut events = crate::common::subscribe(bus.as_ref(), "halfway.#").await;
    let serving = host.serve(bus.clone()).await.unwrap();
    faulty.fail_next(usize::MAX);
    use parallel_you_core::bus::Bus as _;
    bus.send(cmd("halfway.count", &target("away")))
        .await
        .unwrap();
    // The backoff adds up to 0.05 + 0.1 + 0.2 + 0.4 s before the last try.
    let err = crate::common::next_within(&mut events, Duration::from_secs(10)).await;
    let err = err.expect("one error event when the host gives up");
    assert_eq!(body(&err)["code"], "unavailable", "{err:?}");
    assert!(
        body(&err)["message"]
            .as_str()
            .unwrap_or("")
            .contains("dead-lettered"),
        "{err:?}"
    );
    assert_eq!(
        faulty.commits.load(Ordering::SeqCst),
        retry.max_attempts as usize
    );
    let more = crate::common::next_within(&mut events, Duration::from_millis(500)).await;
    assert!(more.is_none(), "one error event only: {more:?}");
    serving.stop();
}

/// A bus that is away: every publish fails.
struct Away;

#[async_trait::async_trait]
impl Publisher for Away {
    async fn publish(&self, _event: Envelope) -> Result<(), BusError> {
        Err(BusError::Unavailable("the bus is away (test)".to_owned()))
    }
}

async fn host_with_clock(
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
) -> (Arc<Host>, tempfile::TempDir) {
    let dir = handlers_dir(&["halfway"]);
    let config = HostConfig {
        limits: test_limits(),
        dedup_window: Duration::from_secs(3600),
        ..Default::default()
    };
    let host = Arc::new(Host::with_clock(config, store, None, clock).unwrap());
    host.load_dir(dir.path()).await.unwrap();
    (host, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_bus_missed_are_relayed_once_from_the_outbox() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let (host, _dir) = host_with_clock(store.clone(), clock.clone()).await;
    let command = cmd("halfway.count", &target("r"));
    let lost = host.dispatch(command.clone(), Arc::new(Away)).await;
    assert_eq!(
        keys(&lost),
        vec!["halfway.counted"],
        "committed though not published"
    );
    let relay = OutboxRelay::new(host.clone());
    let out = Arc::new(Collector::new());
    assert_eq!(
        relay.relay_once(out.as_ref()).await,
        Ok(0),
        "the committing host holds the lease"
    );
    clock.advance(Duration::from_secs(11));
    assert_eq!(relay.relay_once(out.as_ref()).await, Ok(1));
    let relayed = out.take();
    assert_eq!(keys(&relayed), vec!["halfway.counted"]);
    assert_eq!(
        relayed[0].meta.message_id, lost[0].meta.message_id,
        "the very event, same id"
    );
    clock.advance(Duration::from_secs(11));
    assert_eq!(relay.relay_once(out.as_ref()).await, Ok(0), "sent once");
    // The redelivered command is answered from its record, not run again.
    let replay = call(&host, command).await;
    assert_eq!(replay[0].meta.message_id, lost[0].meta.message_id);
    let next = call(&host, cmd("halfway.count", &target("r"))).await;
    assert_eq!(body(&next[0])["n"], 2, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_past_the_dedup_window_are_swept_and_the_command_runs_again() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let (host, _dir) = host_with_clock(store.clone(), clock.clone()).await;
    let command = cmd("halfway.count", &target("w"));
    let first = call(&host, command.clone()).await;
    assert_eq!(body(&first[0])["n"], 1);
    let relay = OutboxRelay::new(host.clone());
    clock.advance(Duration::from_secs(1800));
    assert_eq!(relay.sweep_once().await, Ok(0), "inside the window");
    assert_eq!(
        body(&call(&host, command.clone()).await[0])["n"],
        1,
        "a duplicate is answered from the record"
    );
    clock.advance(Duration::from_secs(1801));
    assert_eq!(relay.sweep_once().await, Ok(1));
    assert_eq!(
        store.processed(&record_id(&command.meta, false)).await,
        Ok(None)
    );
    let again = call(&host, command).await;
    assert_eq!(
        body(&again[0])["n"],
        2,
        "past the window a duplicate runs again, as documented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_the_0_1_2_contract_still_loads_and_runs() {
    // 0.1.2's manifest has no `indexes`: the host reads it through its
    // frozen 0.1.2 bindings, and runs the component like any other.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["legacy012", "legacy"], store.clone()).await;
    assert!(
        host.registry().failures().is_empty(),
        "{:?}",
        host.registry().failures()
    );
    let loaded = host.registry().route("legacy012.ping").cloned().unwrap();
    assert_eq!(loaded.manifest.version, "0.1.2");
    assert!(loaded.manifest.indexes.is_empty());
    for n in 1..=2 {
        let events = call(&host, cmd("legacy012.ping", "{}")).await;
        assert_eq!(keys(&events), vec!["legacy012.pong"], "{events:?}");
        assert_eq!(body(&events[0])["version"], 1);
        assert_eq!(body(&events[0])["listed"], n, "its own write and the last");
    }
    let refused = call(&host, cmd("legacy012.nope", "{}")).await;
    assert_eq!(keys(&refused), vec!["legacy012.error"], "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_the_0_1_3_contract_still_loads_and_runs() {
    // 0.1.3's meta has no `user-id` and its command-info no `internal`:
    // the host reads it through its frozen 0.1.3 bindings.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["legacy013"], store.clone()).await;
    assert!(
        host.registry().failures().is_empty(),
        "{:?}",
        host.registry().failures()
    );
    let loaded = host.registry().route("legacy013.ping").cloned().unwrap();
    assert_eq!(loaded.manifest.version, "0.1.3");
    assert_eq!(loaded.manifest.indexes.len(), 1, "0.1.3 declares indexes");
    assert!(!loaded.is_internal("legacy013.ping"));
    let mut ping = cmd("legacy013.ping", "{}").with_session("s13");
    ping.meta.user_id = Some("alice".to_owned());
    let events = call(&host, ping).await;
    assert_eq!(keys(&events), vec!["legacy013.pong"], "{events:?}");
    assert_eq!(body(&events[0])["version"], 1);
    assert_eq!(body(&events[0])["session"], "s13");
    // The user id is not the old component's to see, but its events
    // still carry it.
    assert_eq!(events[0].meta.user_id.as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_built_against_the_0_1_3_contract_still_loads_reacts_and_answers() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["rlegacy013"], store.clone()).await;
    assert!(
        host.registry().failures().is_empty(),
        "{:?}",
        host.registry().failures()
    );
    let cause = cmd("noop.ping", "{}").with_session("s13");
    let mut event = Envelope::event_for(
        &cause.meta,
        "noop.ponged",
        serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
    );
    event.meta.user_id = Some("alice".to_owned());
    let out = Collector::new();
    let _ = host.react("rlegacy013", &event, &out).await;
    let last = host.query("rlegacy013", "last", "{}").await.unwrap();
    let last: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["message_id"], event.meta.message_id.as_str(), "{last}");
    assert_eq!(last["session_id"], "s13");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_the_0_1_0_contract_still_loads_and_runs() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_with_store(&["legacy"], store.clone()).await;
    assert!(
        host.registry().failures().is_empty(),
        "{:?}",
        host.registry().failures()
    );
    let events = call(&host, cmd("legacy.ping", "{}")).await;
    assert_eq!(
        keys(&events),
        vec!["legacy.emitted", "legacy.pong"],
        "{events:?}"
    );
    assert_eq!(body(&events[1])["version"], 1);
    let stored = store.get("legacy", "pings", "last").await.unwrap();
    assert_eq!(stored.map(|d| d.version), Some(1), "committed");
}
