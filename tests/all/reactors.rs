//! Reactors end to end on the in-process bus, with real components: the
//! `tally` test reactor (`handlers/testing/tally`) beside the `noop` and
//! `counter` handlers. Each event counted once in effect (a duplicate
//! delivery does not double a count), commands sent once with the event's
//! meta, failures retried then dead-lettered and replayed after a hot
//! upgrade, read-only queries, and the manifests a host refuses.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{body, handlers_dir, next_within, subscribe, test_limits};
use parallel_you_core::bus::{InProcessBus, Publisher};
use parallel_you_core::envelope::{Envelope, Kind};
use parallel_you_core::{MemoryStore, Store};
use parallel_you_host::dead_letter::{self, command_id, marker_id};
use parallel_you_host::host::Serving;
use parallel_you_host::timers::{Clock, SystemClock};
use parallel_you_host::{Host, HostConfig, HotLoader, ReactorConfig, RetryPolicy};
use serde_json::{json, Value};

/// A serving host with tally, noop and counter on an in-process bus.
pub(crate) struct Served {
    pub(crate) host: Arc<Host>,
    pub(crate) bus: Arc<InProcessBus>,
    pub(crate) serving: Serving,
    pub(crate) handlers: tempfile::TempDir,
}

/// Reactor settings that keep the failure tests quick: `tries` tries,
/// 20 ms apart, at most 3 commands per event.
pub(crate) fn quick(tries: u32) -> ReactorConfig {
    ReactorConfig {
        retry: RetryPolicy {
            max_attempts: tries,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        },
        max_commands: 3,
        concurrency: 1,
    }
}

pub(crate) async fn host_over(
    names: &[&str],
    store: Arc<dyn Store>,
) -> (Arc<Host>, tempfile::TempDir) {
    let dir = handlers_dir(names);
    let config = HostConfig {
        limits: test_limits(),
        reactors: quick(3),
        ..Default::default()
    };
    let host = Arc::new(Host::new(config, store).unwrap());
    host.load_dir(dir.path()).await.unwrap();
    (host, dir)
}

async fn served_with(names: &[&str], store: Arc<dyn Store>) -> Served {
    let (host, handlers) = host_over(names, store).await;
    let bus = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await.unwrap();
    Served {
        host,
        bus,
        serving,
        handlers,
    }
}

async fn served() -> Served {
    served_with(&["tally", "noop", "counter"], Arc::new(MemoryStore::new())).await
}

/// An event of `key` with `body`, in session `s1`.
pub(crate) fn event(key: &str, body: Value) -> Envelope {
    let cause = Envelope::command("noop.ping", "{}")
        .unwrap()
        .with_session("s1");
    let raw = serde_json::value::to_raw_value(&body).unwrap();
    Envelope::event_for(&cause.meta, key, raw)
}

/// Tally's counts, by routing key.
pub(crate) async fn counts(host: &Host) -> Value {
    let text = host.query("tally", "counts", "{}").await.unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Polls `check` every 20 ms until it holds or 20 s pass.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Events tally handled to their end (committed, or found committed).
pub(crate) fn handled(host: &Host) -> u64 {
    host.metrics().reactor_counts("tally").0
}

#[tokio::test]
async fn each_matching_event_counts_once_and_others_are_ignored() {
    let s = served().await;
    let dup = event("noop.ponged", json!({"i": 0}));
    s.bus.publish(dup.clone()).await.unwrap();
    for i in 1..3 {
        s.bus
            .publish(event("noop.ponged", json!({ "i": i })))
            .await
            .unwrap();
    }
    s.bus
        .publish(event("counter.incremented", json!({})))
        .await
        .unwrap();
    for key in ["noop.touched", "other.ponged", "noop.ponged.more"] {
        s.bus.publish(event(key, json!({}))).await.unwrap();
    }
    // The same event twice more: delivered, found processed, not counted.
    s.bus.publish(dup.clone()).await.unwrap();
    s.bus.publish(dup).await.unwrap();
    let host = s.host.clone();
    eventually("six deliveries handled", || {
        let host = host.clone();
        async move { handled(&host) >= 6 }
    })
    .await;
    assert_eq!(
        counts(&s.host).await,
        json!({"noop.ponged": 3, "counter.incremented": 1})
    );
    let mut metrics = String::new();
    s.host.metrics().render(&mut metrics);
    assert!(
        metrics.contains("pyou_reactor_events_total{reactor=\"tally\"} 6"),
        "{metrics}"
    );
    s.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn commands_run_once_with_the_events_meta() {
    let s = served().await;
    let mut out = subscribe(s.bus.as_ref(), "session.s1.counter.#").await;
    let ev = event(
        "noop.ponged",
        json!({"send": "counter.increment", "name": "a"}),
    );
    s.bus.publish(ev.clone()).await.unwrap();
    let incremented = next_within(&mut out, Duration::from_secs(10))
        .await
        .expect("the counter ran the reactor's command");
    assert_eq!(incremented.meta.routing_key, "counter.incremented");
    assert_eq!(body(&incremented)["value"], 1);
    assert_eq!(incremented.meta.session_id.as_deref(), Some("s1"));
    // The command, as recorded with the reactor's marker.
    let recorded = s
        .host
        .store()
        .processed(&marker_id("tally", &ev.meta.message_id))
        .await
        .unwrap()
        .expect("the event's marker");
    assert_eq!(recorded.len(), 1);
    let command: Envelope = serde_json::from_str(&recorded[0]).unwrap();
    assert_eq!(command.meta.kind, Kind::Command);
    assert_eq!(command.meta.routing_key, "counter.increment");
    assert_eq!(
        command.meta.message_id,
        command_id("tally", &ev.meta.message_id, 0)
    );
    assert_eq!(
        command.meta.causation_id.as_ref(),
        Some(&ev.meta.correlation_id)
    );
    assert_eq!(command.meta.session_id.as_deref(), Some("s1"));
    assert_eq!(command.meta.reply_channel.as_deref(), Some("session.s1"));
    assert_eq!(
        incremented.meta.causation_id.as_ref(),
        Some(&command.meta.correlation_id)
    );
    // Delivered again: the recorded command goes out again with its id,
    // and the counter does not run it twice.
    s.bus.publish(ev).await.unwrap();
    let host = s.host.clone();
    eventually(
        "the duplicate handled, and counter.incremented counted",
        || {
            let host = host.clone();
            async move { handled(&host) >= 3 }
        },
    )
    .await;
    let value = common::call(&s.host, common::cmd("counter.get", r#"{"name":"a"}"#)).await;
    assert_eq!(body(&value[0])["value"], 1, "{value:?}");
    assert_eq!(counts(&s.host).await["counter.incremented"], 1);
    s.serving.shutdown(Duration::from_secs(5)).await;
}

/// Waits for the next `pyou.dead_lettered` announcement.
async fn dead_lettered(events: &mut parallel_you_core::bus::Subscription) -> Value {
    let ev = next_within(events, Duration::from_secs(20))
        .await
        .expect("a dead letter is announced");
    assert_eq!(ev.meta.routing_key, "pyou.dead_lettered");
    body(&ev)
}

#[tokio::test]
async fn undeclared_or_too_many_commands_fail_the_event_and_the_host_serves_on() {
    let s = served().await;
    let mut dead = subscribe(s.bus.as_ref(), "#.pyou.dead_lettered").await;
    s.bus
        .publish(event(
            "noop.ponged",
            json!({"send": "counter.reset", "name": "a"}),
        ))
        .await
        .unwrap();
    let letter = dead_lettered(&mut dead).await;
    assert_eq!(letter["code"], "invalid_event");
    assert_eq!(letter["tries"], 3);
    let reason = letter["reason"].as_str().unwrap();
    assert!(
        reason.contains("counter.reset") && reason.contains("sends"),
        "{reason}"
    );

    s.bus
        .publish(event("noop.ponged", json!({"flood": 4})))
        .await
        .unwrap();
    let letter = dead_lettered(&mut dead).await;
    assert_eq!(letter["code"], "limit_exceeded");
    assert!(
        letter["reason"].as_str().unwrap().contains("limit of 3"),
        "{letter}"
    );
    // Nothing of either was kept; the next event counts as usual.
    s.bus
        .publish(event("noop.ponged", json!({"flood": 3})))
        .await
        .unwrap();
    let host = s.host.clone();
    eventually("the good event counted", || {
        let host = host.clone();
        async move { counts(&host).await["noop.ponged"] == 1 }
    })
    .await;
    let (_, retries, dead_letters) = s.host.metrics().reactor_counts("tally");
    assert_eq!((retries, dead_letters), (4, 2));
    s.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_poisoned_event_is_dead_lettered_and_replayed_once_the_reactor_is_fixed() {
    for poison in [json!({"poison": true}), json!({"trap": true})] {
        let s = served().await;
        let mut dead = subscribe(s.bus.as_ref(), "#.pyou.dead_lettered").await;
        let ev = event("noop.ponged", poison.clone());
        s.bus.publish(ev.clone()).await.unwrap();
        let letter = dead_lettered(&mut dead).await;
        let code = if poison["trap"] == true {
            "trap"
        } else {
            "poisoned"
        };
        assert_eq!(letter["code"], code, "{letter}");
        assert_eq!(letter["message_id"], ev.meta.message_id.as_str());
        let id = letter["id"].as_str().unwrap().to_owned();
        let store = s.host.store().clone();
        let listed = dead_letter::list(store.as_ref(), 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert_eq!(listed[0].tries, 3);
        assert!(counts(&s.host).await.get("noop.ponged").is_none());

        // The fixed version, hot-loaded over the old file, then the replay.
        let file = s.handlers.path().join("tally.wasm");
        std::fs::copy(common::components().join("tally2.wasm"), &file).unwrap();
        let outcome = HotLoader::new(s.host.clone()).load_file(&file).await;
        assert!(format!("{outcome:?}").contains("Upgraded"), "{outcome:?}");
        let replayed = dead_letter::replay(store.as_ref(), &SystemClock as &dyn Clock, &id)
            .await
            .unwrap();
        assert!(replayed.is_some());
        let host = s.host.clone();
        eventually("the replayed event counted", || {
            let host = host.clone();
            async move { counts(&host).await["noop.ponged"] == 1 }
        })
        .await;
        assert!(dead_letter::list(store.as_ref(), 10)
            .await
            .unwrap()
            .is_empty());
        // A second replay of the same id finds nothing.
        let again = dead_letter::replay(store.as_ref(), &SystemClock as &dyn Clock, &id)
            .await
            .unwrap();
        assert!(again.is_none());
        s.serving.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_reactors_timer_comes_back_to_it_alone() {
    let s = served().await;
    s.bus
        .publish(event("noop.ponged", json!({"timer_ms": 10})))
        .await
        .unwrap();
    let host = s.host.clone();
    eventually("tally.tick counted", || {
        let host = host.clone();
        async move { counts(&host).await["tally.tick"] == 1 }
    })
    .await;
    assert_eq!(counts(&s.host).await["noop.ponged"], 1);
    s.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn queries_read_only_and_their_errors() {
    let s = served().await;
    s.bus
        .publish(event("noop.ponged", json!({})))
        .await
        .unwrap();
    let host = s.host.clone();
    eventually("one event counted", || {
        let host = host.clone();
        async move { handled(&host) == 1 }
    })
    .await;
    let h = &s.host;
    assert_eq!(
        h.query("tally", "count", r#"{"key":"noop.ponged"}"#)
            .await
            .unwrap(),
        "1"
    );
    let code = |r: Result<String, parallel_you_core::ErrorBody>| {
        let e = r.unwrap_err();
        (e.code.as_str().to_owned(), e.message)
    };
    let (c, m) = code(h.query("tally", "write", "{}").await);
    assert_eq!(c, "invalid");
    assert!(m.contains("read-only"), "{m}");
    let (c, _) = code(h.query("nobody", "counts", "{}").await);
    assert_eq!(c, "not_found");
    let (c, _) = code(h.query("tally", "nothing", "{}").await);
    assert_eq!(c, "not_found");
    let (c, m) = code(h.query("tally", "count", "{}").await);
    assert_eq!(c, "validation", "{m}");
    let (c, _) = code(h.query("tally", "counts", "[1]").await);
    assert_eq!(c, "validation");
    let (c, _) = code(h.query("tally", "counts", "{not json").await);
    assert_eq!(c, "validation");
    let (c, _) = code(h.query("noop", "counts", "{}").await);
    assert_eq!(c, "not_found");
    // Nothing the write query tried was kept.
    assert!(counts(&s.host).await.get("sneaky").is_none());
    s.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn invalid_reactors_are_refused_and_listed_reactors_say_what_they_do() {
    let (host, _dir) = host_over(
        &["rbad", "tally", "tally2", "noop"],
        Arc::new(MemoryStore::new()),
    )
    .await;
    let status = host.status();
    let find = |file: &str| {
        status
            .iter()
            .find(|s| Path::new(&s.file).file_name().is_some_and(|f| f == file))
            .unwrap_or_else(|| panic!("{file} in {status:?}"))
    };
    let bad = find("rbad.wasm");
    let err = bad.error.as_deref().unwrap();
    assert!(
        err.contains("event pattern") && err.contains("noop.Ponged#"),
        "{err}"
    );
    let twin = find("tally2.wasm");
    assert!(
        twin.error.as_deref().unwrap().contains("already served"),
        "{twin:?}"
    );
    let tally = find("tally.wasm");
    assert_eq!(tally.kind.as_deref(), Some("reactor"));
    let info = tally.reactor.as_ref().unwrap();
    assert_eq!(
        info.subscribes,
        ["noop.ponged", "counter.incremented", "tally.*"]
    );
    assert_eq!(info.sends, ["counter.increment"]);
    assert_eq!(
        info.queries
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>(),
        ["counts", "count", "write"]
    );
    assert!(info.queries[1].params_schema.is_some());
    assert_eq!(find("noop.wasm").kind.as_deref(), Some("handler"));
    // A reactor takes no commands.
    let refused = common::call(&host, common::cmd("tally.tick", "{}")).await;
    assert_eq!(
        common::last_error(&refused).as_deref(),
        Some("unknown_routing_key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_upgrade_while_events_flow_loses_and_doubles_none() {
    let s = served().await;
    let bus = s.bus.clone();
    const N: usize = 300;
    let flow = tokio::spawn(async move {
        for i in 0..N {
            bus.publish(event("noop.ponged", json!({ "i": i })))
                .await
                .unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let file = s.handlers.path().join("tally.wasm");
    std::fs::copy(common::components().join("tally2.wasm"), &file).unwrap();
    let outcome = HotLoader::new(s.host.clone()).load_file(&file).await;
    assert!(format!("{outcome:?}").contains("Upgraded"), "{outcome:?}");
    flow.await.unwrap();
    let host = s.host.clone();
    eventually("every event handled", || {
        let host = host.clone();
        async move { handled(&host) as usize >= N }
    })
    .await;
    assert_eq!(counts(&s.host).await["noop.ponged"], N);
    let version = s
        .host
        .status()
        .into_iter()
        .find(|st| st.domain.as_deref() == Some("tally"))
        .and_then(|st| st.version);
    assert_eq!(version.as_deref(), Some("2.0.0"));
    s.serving.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn pyou_dlq_lists_replays_and_drops_against_the_embedded_store() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(parallel_you_host::SqliteStore::open_dir(data.path()).unwrap());
    let s = rt.block_on(served_with(&["tally", "noop", "counter"], store));
    let pyou = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pyou"))
            .arg("dlq")
            .arg("--data")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut dead = rt.block_on(subscribe(s.bus.as_ref(), "#.pyou.dead_lettered"));
    for poison in [1, 2] {
        rt.block_on(
            s.bus
                .publish(event("noop.ponged", json!({"poison": true, "n": poison}))),
        )
        .unwrap();
        rt.block_on(dead_lettered(&mut dead));
    }
    let (code, out, err) = pyou(&["list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 2, "{out}");
    let ids: Vec<String> = listed
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let (code, out, _) = pyou(&["show", &ids[0]]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("poisoned") && out.contains("noop.ponged"),
        "{out}"
    );
    let (code, _, err) = pyou(&["show", "rx-none"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no dead letter"), "{err}");

    // Fixed, then one replayed and one dropped.
    let file = s.handlers.path().join("tally.wasm");
    std::fs::copy(common::components().join("tally2.wasm"), &file).unwrap();
    rt.block_on(HotLoader::new(s.host.clone()).load_file(&file));
    let (code, out, err) = pyou(&["replay", &ids[0]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("tally"), "{out}");
    let (code, _, _) = pyou(&["drop", &ids[1]]);
    assert_eq!(code, Some(0));
    let host = s.host.clone();
    rt.block_on(eventually("the replayed event counted", || {
        let host = host.clone();
        async move { counts(&host).await["noop.ponged"] == 1 }
    }));
    let (_, out, _) = pyou(&["list"]);
    assert_eq!(out.trim(), "no dead letters");
    rt.block_on(s.serving.shutdown(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_reactors_own_events_go_out_on_the_events_session_and_anothers_fail_it() {
    let s = served_with(&["rloud", "noop"], Arc::new(MemoryStore::new())).await;
    let mut heard = subscribe(s.bus.as_ref(), "session.s1.rloud.#").await;
    let mut dead = subscribe(s.bus.as_ref(), "#.pyou.dead_lettered").await;
    let ev = event("noop.ponged", json!({"i": 1}));
    s.bus.publish(ev.clone()).await.unwrap();
    let got = next_within(&mut heard, Duration::from_secs(10))
        .await
        .expect("rloud.heard on the event's session");
    assert_eq!(got.meta.routing_key, "rloud.heard");
    assert_eq!(body(&got), json!({"i": 1}));
    assert_eq!(
        got.meta.causation_id.as_ref(),
        Some(&ev.meta.correlation_id)
    );
    // Recorded with the marker, so a redelivery announces the same event.
    let recorded = s
        .host
        .store()
        .processed(&marker_id("rloud", &ev.meta.message_id))
        .await
        .unwrap()
        .unwrap();
    let kept: Envelope = serde_json::from_str(&recorded[0]).unwrap();
    assert_eq!(
        (kept.meta.kind, kept.meta.message_id.clone()),
        (Kind::Event, got.meta.message_id.clone())
    );

    s.bus
        .publish(event("noop.ponged", json!({"i": 2, "foreign": true})))
        .await
        .unwrap();
    let letter = dead_lettered(&mut dead).await;
    assert_eq!(letter["code"], "invalid_event", "{letter}");
    assert!(
        letter["reason"].as_str().unwrap().contains("outside"),
        "{letter}"
    );
    assert!(
        next_within(&mut heard, Duration::from_millis(300))
            .await
            .is_none(),
        "nothing of the failed event was announced"
    );
    s.serving.shutdown(Duration::from_secs(5)).await;
}
