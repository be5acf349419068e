//! The contract serves handlers written in Python and JavaScript: the
//! bundled `notes` (Python) and `stats` (JavaScript) domains and the
//! test-only `pyfail` and `jsfail` components, built by
//! `scripts/build-polyglot`, run in the real host like the Rust ones.
//!
//! Compiling an interpreter-sized component (12-19 MB) takes seconds, so the
//! tests of this file share one host, loaded once, on one runtime; each test
//! uses its own thread ids, sessions and documents.

use crate::common;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{body, call, cmd, last_error};
use parallel_you_core::envelope::{Envelope, Kind};
use parallel_you_core::{MemoryStore, Store};

use parallel_you_host::{Host, InstancePolicy, Limits};
use serde_json::json;

const COMPONENTS: &[&str] = &["notes", "stats", "pyfail", "jsfail", "counter"];

/// The usual test limits with a longer deadline: in a debug build on a busy
/// 2-core machine a fresh interpreter instance alone can take a good part of
/// the usual 500 ms, and a test must not time out a healthy command.
fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(2),
        ..common::test_limits()
    }
}

/// A host over `store` with the named components loaded, under [`limits`].
async fn host_with(names: &[&str], store: Arc<dyn Store>) -> (Arc<Host>, tempfile::TempDir) {
    common::host_with_limits(names, store, limits()).await
}

struct Shared {
    runtime: tokio::runtime::Runtime,
    host: Arc<Host>,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        for name in ["notes", "stats", "pyfail", "jsfail"] {
            let file = common::components().join(format!("{name}.wasm"));
            assert!(
                file.exists(),
                "{} was not built: scripts/build-polyglot needs python3 (with venv or pip) \
                 for the Python handlers and node + npm for the JavaScript ones; see its \
                 messages above",
                file.display()
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (host, dir) = runtime.block_on(host_with(COMPONENTS, store.clone()));
        common::assert_loaded(&host);
        Shared {
            runtime,
            host,
            store,
            _dir: dir,
        }
    })
}

/// Runs a test body on the shared runtime with the shared host.
fn with_host<F, Fut>(f: F)
where
    F: FnOnce(Arc<Host>, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let s = shared();
    s.runtime.block_on(f(s.host.clone(), s.store.clone()));
}

fn keys(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.meta.routing_key.as_str()).collect()
}

/// The single event a command answered with, checked to be a success.
async fn one(host: &Host, c: Envelope) -> serde_json::Value {
    let events = call(host, c).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(last_error(&events), None, "{:?}", body(&events[0]));
    body(&events[0])
}

/// Checks the meta of an event caused by `cause`.
fn assert_caused_by(event: &Envelope, cause: &Envelope, key: &str) {
    assert_eq!(event.meta.kind, Kind::Event);
    assert_eq!(event.meta.routing_key, key);
    assert_eq!(
        event.meta.causation_id,
        Some(cause.meta.correlation_id.clone())
    );
    assert_eq!(event.meta.session_id, cause.meta.session_id);
    assert_eq!(event.meta.reply_channel, cause.meta.reply_channel);
    assert_ne!(event.meta.message_id, cause.meta.message_id);
}

#[test]
fn manifests_of_both_languages_are_read() {
    let host = &shared().host;
    let registry = host.registry();
    let notes = registry
        .route("notes.capture")
        .expect("notes.capture bound");
    assert_eq!(notes.manifest.domain, "notes");
    assert_eq!(
        notes.manifest.routing_keys(),
        ["notes.capture", "notes.search", "notes.delete"]
    );
    let schema = notes.manifest.commands[0].body_schema.as_ref().unwrap();
    assert_eq!(schema["required"], json!(["thread_id", "text"]));
    assert_eq!(
        notes.manifest.events,
        ["notes.captured", "notes.found", "notes.deleted"]
    );
    let index = &notes.manifest.indexes[..];
    assert_eq!(index.len(), 1, "{index:?}");
    assert_eq!(
        (index[0].collection.as_str(), &index[0].fields[..]),
        ("notes", &["thread_id".to_owned()][..])
    );
    let stats = registry
        .route("stats.summary")
        .expect("stats.summary bound");
    assert_eq!(stats.manifest.domain, "stats");
    assert_eq!(
        stats.manifest.routing_keys(),
        ["stats.record", "stats.summary"]
    );
    let band = &stats.manifest.commands[0].body_schema.as_ref().unwrap()["properties"]["band"];
    assert_eq!(band["enum"], json!(["deep", "moderate", "light"]));
}

#[test]
fn python_notes_capture_search_and_delete() {
    with_host(|host, _| async move {
        let c = cmd(
            "notes.capture",
            r#"{"thread_id":"py-t1","text":"Read the WASM component book","tags":["Reading","wasm"]}"#,
        )
        .with_session("py-sess");
        let events = call(&host, c.clone()).await;
        assert_eq!(keys(&events), ["notes.captured"], "{events:?}");
        assert_caused_by(&events[0], &c, "notes.captured");
        let note = body(&events[0]);
        assert_eq!(
            note["id"],
            c.meta.message_id.as_str(),
            "the note id is the command's id"
        );
        assert_eq!(note["thread_id"], "py-t1");
        assert_eq!(
            note["tags"],
            json!(["reading", "wasm"]),
            "tags are normalised"
        );
        assert_eq!(note["version"], 1);
        let first = c.meta.message_id.clone();
        let second = one(
            &host,
            cmd(
                "notes.capture",
                r#"{"thread_id":"py-t2","text":"wasm threads"}"#,
            ),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        one(
            &host,
            cmd(
                "notes.capture",
                r#"{"thread_id":"py-t1","text":"Buy milk","tags":["home"]}"#,
            ),
        )
        .await;

        let found = |b: &str| {
            let host = host.clone();
            let b = b.to_owned();
            async move {
                let r = one(&host, cmd("notes.search", &b)).await;
                assert_eq!(r["count"], r["notes"].as_array().unwrap().len());
                r["notes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["text"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            found(r#"{"query":"WASM"}"#).await,
            ["Read the WASM component book", "wasm threads"]
        );
        assert_eq!(
            found(r#"{"thread_id":"py-t1"}"#).await,
            ["Read the WASM component book", "Buy milk"]
        );
        assert_eq!(
            found(r#"{"tag":"Reading"}"#).await,
            ["Read the WASM component book"]
        );
        assert_eq!(
            found(r#"{"thread_id":"py-t1","query":"milk","tag":"home"}"#).await,
            ["Buy milk"]
        );
        assert!(
            found(r#"{"thread_id":"py-t1","tag":"wasm","query":"milk"}"#)
                .await
                .is_empty()
        );

        let c = cmd("notes.delete", &json!({ "id": first }).to_string()).with_session("py-sess");
        let events = call(&host, c.clone()).await;
        assert_eq!(keys(&events), ["notes.deleted"], "{events:?}");
        assert_caused_by(&events[0], &c, "notes.deleted");
        assert_eq!(found(r#"{"query":"wasm"}"#).await, ["wasm threads"]);
        let again = call(
            &host,
            cmd("notes.delete", &json!({ "id": first }).to_string()),
        )
        .await;
        assert_eq!(last_error(&again).as_deref(), Some("not_found"));
        assert_eq!(body(&again[0])["context"]["id"], first.as_str());
        one(
            &host,
            cmd("notes.delete", &json!({ "id": second }).to_string()),
        )
        .await;
    });
}

#[test]
fn python_bodies_are_validated() {
    with_host(|host, _| async move {
        for (b, says) in [
            (r#"{"text":"no thread"}"#, "missing the field `thread_id`"),
            (r#"{"thread_id":"t","text":"   "}"#, "must not be blank"),
            (
                r#"{"thread_id":"t","text":"x","colour":"red"}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"thread_id":"t","text":7}"#,
                "`body.text` must be of type string",
            ),
            (
                r#"{"thread_id":"t","text":"x","tags":["no spaces"]}"#,
                "a-z, 0-9",
            ),
            ("[1,2]", "`body` must be of type object"),
        ] {
            let events = call(&host, cmd("notes.capture", b)).await;
            assert_eq!(
                last_error(&events).as_deref(),
                Some("validation"),
                "{b}: {events:?}"
            );
            let message = body(&events[0])["message"].as_str().unwrap().to_owned();
            assert!(message.contains(says), "{b}: {message}");
        }
        let events = call(&host, cmd("notes.search", r#"{"limit":0}"#)).await;
        assert_eq!(last_error(&events).as_deref(), Some("validation"));
    });
}

#[test]
fn javascript_stats_record_and_summarise() {
    with_host(|host, _| async move {
        let c = cmd(
            "stats.record",
            r#"{"thread_id":"js-t1","band":"deep","minutes":50}"#,
        )
        .with_session("js-sess");
        let events = call(&host, c.clone()).await;
        assert_eq!(keys(&events), ["stats.recorded"], "{events:?}");
        assert_caused_by(&events[0], &c, "stats.recorded");
        let recorded = body(&events[0]);
        assert_eq!(recorded["id"], c.meta.message_id.as_str());
        assert_eq!(recorded["minutes"], 50);
        for b in [
            r#"{"thread_id":"js-t1","band":"light","minutes":10}"#,
            r#"{"thread_id":"js-t2","band":"deep","minutes":25}"#,
            r#"{"thread_id":"js-t2","band":"moderate","minutes":5}"#,
        ] {
            one(&host, cmd("stats.record", b)).await;
        }
        let c = cmd("stats.summary", r#"{"thread_id":"js-t1"}"#).with_session("js-sess");
        let events = call(&host, c.clone()).await;
        assert_caused_by(&events[0], &c, "stats.summarised");
        let t1 = body(&events[0]);
        assert_eq!(t1["thread_id"], "js-t1");
        assert_eq!(t1["bands"], json!({"deep": 50, "moderate": 0, "light": 10}));
        assert_eq!(
            (t1["total_minutes"].clone(), t1["sessions"].clone()),
            (json!(60), json!(2))
        );
        let t2 = one(&host, cmd("stats.summary", r#"{"thread_id":"js-t2"}"#)).await;
        assert_eq!(t2["bands"], json!({"deep": 25, "moderate": 5, "light": 0}));
        let none = one(&host, cmd("stats.summary", r#"{"thread_id":"js-none"}"#)).await;
        assert_eq!(none["sessions"], 0);

        for (b, says) in [
            (
                r#"{"thread_id":"t","band":"frantic","minutes":5}"#,
                "must be one of",
            ),
            (
                r#"{"thread_id":"t","band":"deep","minutes":0}"#,
                "at least 1",
            ),
            (
                r#"{"thread_id":"t","band":"deep","minutes":1.5}"#,
                "of type integer",
            ),
            (
                r#"{"thread_id":"t","band":"deep"}"#,
                "missing the field `minutes`",
            ),
        ] {
            let events = call(&host, cmd("stats.record", b)).await;
            assert_eq!(
                last_error(&events).as_deref(),
                Some("validation"),
                "{b}: {events:?}"
            );
            let message = body(&events[0])["message"].as_str().unwrap().to_owned();
            assert!(message.contains(says), "{b}: {message}");
        }
    });
}

#[test]
fn javascript_totals_survive_concurrent_records() {
    // Each record updates the `all` totals with optimistic concurrency and
    // retries on a conflict: concurrent records must all be counted.
    with_host(|host, _| async move {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                call(
                    &host,
                    cmd(
                        "stats.record",
                        r#"{"thread_id":"js-race","band":"light","minutes":3}"#,
                    ),
                )
                .await
            }));
        }
        for t in tasks {
            let events = t.await.unwrap();
            assert_eq!(last_error(&events), None, "{events:?}");
        }
        let race = one(&host, cmd("stats.summary", r#"{"thread_id":"js-race"}"#)).await;
        assert_eq!(race["bands"]["light"], 12, "{race}");
        assert_eq!(race["sessions"], 4);
    });
}

/// Runs `<domain>.<command>`, whose handler raises `exception`; checks the
/// one `<domain>.error` event it answers with (a `handler_error` caused by
/// the command, naming the exception) and returns its body.
async fn raised(host: &Host, domain: &str, command: &str, exception: &str) -> serde_json::Value {
    let key = format!("{domain}.{command}");
    let error_key = format!("{domain}.error");
    let c = cmd(&key, "{}").with_session(&format!("{domain}-crash"));
    let events = call(host, c.clone()).await;
    assert_eq!(keys(&events), [error_key.as_str()], "{events:?}");
    assert_caused_by(&events[0], &c, &error_key);
    assert_eq!(last_error(&events).as_deref(), Some("handler_error"));
    let b = body(&events[0]);
    assert_eq!(b["command"], key.as_str());
    assert!(b["message"].as_str().unwrap().contains(exception), "{b}");
    assert_eq!(b["context"]["exception"], exception);
    b
}

#[test]
fn a_python_exception_becomes_a_handler_error_event() {
    with_host(|host, _| async move {
        let b = raised(&host, "pyfail", "raise", "KeyError").await;
        let traceback = b["context"]["traceback"].to_string();
        assert!(traceback.contains("app.py"), "{traceback}");
        // An exception the helper does not catch still traps, as a Rust
        // panic does, and only that command fails.
        let events = call(&host, cmd("pyfail.abort", "{}")).await;
        assert_eq!(last_error(&events).as_deref(), Some("trap"), "{events:?}");
        assert_eq!(
            keys(&call(&host, cmd("pyfail.ok", "{}")).await),
            ["pyfail.fine"]
        );
    });
}

#[test]
fn a_javascript_throw_becomes_a_handler_error_event() {
    with_host(|host, _| async move {
        raised(&host, "jsfail", "throw", "TypeError").await;
        assert_eq!(
            keys(&call(&host, cmd("jsfail.ok", "{}")).await),
            ["jsfail.fine"]
        );
    });
}

#[test]
fn each_command_gets_a_fresh_instance() {
    // A module-level counter never gets past 1: no state survives a command.
    with_host(|host, _| async move {
        for key in ["pyfail.count", "jsfail.count"] {
            for _ in 0..3 {
                let b = one(&host, cmd(key, "{}")).await;
                assert_eq!(b["n"], 1, "{key}: {b}");
            }
        }
    });
}

#[test]
fn endless_loops_in_python_and_javascript_hit_the_deadline() {
    with_host(|host, _| async move {
        let deadline = limits().deadline;
        for (spin, ok) in [("pyfail.spin", "pyfail.ok"), ("jsfail.spin", "jsfail.ok")] {
            let started = Instant::now();
            let events = call(&host, cmd(spin, "{}")).await;
            let took = started.elapsed();
            assert_eq!(
                last_error(&events).as_deref(),
                Some("timeout"),
                "{events:?}"
            );
            assert!(took >= deadline, "{spin} stopped early: {took:?}");
            assert!(
                took < deadline + Duration::from_secs(1),
                "{spin} stopped after {took:?}, deadline {deadline:?}"
            );
            let events = call(&host, cmd(ok, "{}")).await;
            assert_eq!(last_error(&events), None, "{ok} after {spin}: {events:?}");
        }
        let events = call(&host, cmd("counter.increment", r#"{"name":"after-spin"}"#)).await;
        assert_eq!(last_error(&events), None, "{events:?}");
    });
}

#[test]
fn memory_hogs_in_python_and_javascript_hit_the_cap() {
    with_host(|host, _| async move {
        for (hog, ok) in [("pyfail.hog", "pyfail.ok"), ("jsfail.hog", "jsfail.ok")] {
            let events = call(&host, cmd(hog, "{}")).await;
            assert_eq!(
                last_error(&events).as_deref(),
                Some("memory_limit"),
                "{events:?}"
            );
            let events = call(&host, cmd(ok, "{}")).await;
            assert_eq!(last_error(&events), None, "{ok} after {hog}: {events:?}");
        }
        let events = call(&host, cmd("notes.search", r#"{"thread_id":"after-hog"}"#)).await;
        assert_eq!(keys(&events), ["notes.found"], "{events:?}");
    });
}

#[test]
fn the_python_domain_cannot_see_another_domains_documents() {
    with_host(|host, store| async move {
        // Same collection name and a matching text, but another domain's.
        let foreign = r#"{"thread_id":"iso-t","text":"isolation secret","tags":[],"tag_set":{}}"#;
        store
            .upsert("counter", "notes", "iso-foreign", foreign, None)
            .await
            .unwrap();
        store
            .upsert("stats", "notes", "iso-foreign", foreign, None)
            .await
            .unwrap();
        let own = one(
            &host,
            cmd(
                "notes.capture",
                r#"{"thread_id":"iso-t","text":"isolation own note"}"#,
            ),
        )
        .await;

        let r = one(&host, cmd("notes.search", r#"{"query":"isolation"}"#)).await;
        let ids: Vec<_> = r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].clone())
            .collect();
        assert_eq!(ids, [own["id"].clone()], "only its own note: {r}");
        let r = one(&host, cmd("notes.search", r#"{"thread_id":"iso-t"}"#)).await;
        assert_eq!(r["count"], 1, "{r}");

        let events = call(&host, cmd("notes.delete", r#"{"id":"iso-foreign"}"#)).await;
        assert_eq!(
            last_error(&events).as_deref(),
            Some("not_found"),
            "{events:?}"
        );
        for domain in ["counter", "stats"] {
            let doc = store.get(domain, "notes", "iso-foreign").await.unwrap();
            assert_eq!(
                doc.map(|d| d.version),
                Some(1),
                "{domain}'s document untouched"
            );
        }
        // And what it wrote is under its own domain only.
        let id = own["id"].as_str().unwrap();
        assert!(store.get("notes", "notes", id).await.unwrap().is_some());
        assert!(store.get("counter", "notes", id).await.unwrap().is_none());
    });
}

#[test]
fn a_warm_instance_is_reused_until_a_failure_poisons_it() {
    // Its own host: the shared one keeps every handler fresh.
    shared().runtime.block_on(async {
        let (host, _dir) = host_with(&["pyfail"], Arc::new(MemoryStore::new())).await;
        let count = |session: &'static str| {
            let host = host.clone();
            async move {
                let b = one(&host, cmd("pyfail.count", "{}").with_session(session)).await;
                b["n"].as_u64().unwrap()
            }
        };
        assert_eq!(host.parked_instances("pyfail"), 0);
        host.set_instance_policy("pyfail", InstancePolicy::Warm { max_idle: 1 });
        assert_eq!(count("a").await, 1);
        assert_eq!(
            host.parked_instances("pyfail"),
            1,
            "parked after a clean run"
        );
        // The trade-off of reuse: module state carries over, across sessions.
        assert_eq!(count("b").await, 2);
        assert_eq!(count("a").await, 3);
        // An exception the helper turned into an error event leaves the
        // instance healthy.
        let events = call(&host, cmd("pyfail.raise", "{}")).await;
        assert_eq!(last_error(&events).as_deref(), Some("handler_error"));
        assert_eq!(count("a").await, 4);

        // A trap, a timeout and the memory cap each poison the instance: the
        // next command gets a fresh one.
        for (bad, code) in [
            ("pyfail.abort", "trap"),
            ("pyfail.spin", "timeout"),
            ("pyfail.hog", "memory_limit"),
        ] {
            let before = count("a").await;
            assert!(before > 1, "a reused instance before {bad}: {before}");
            let events = call(&host, cmd(bad, "{}")).await;
            assert_eq!(last_error(&events).as_deref(), Some(code), "{events:?}");
            assert_eq!(host.parked_instances("pyfail"), 0, "{bad} poisoned it");
            assert_eq!(count("a").await, 1, "a fresh instance after {bad}");
        }

        host.set_instance_policy("pyfail", InstancePolicy::Fresh);
        assert_eq!(count("a").await, 1);
        assert_eq!(count("a").await, 1, "fresh again once the policy is back");
    });
}

#[test]
fn python_and_javascript_schedule_and_cancel_timers() {
    with_host(|host, store| async move {
        for domain in ["pyfail", "jsfail"] {
            let c = cmd(&format!("{domain}.later"), r#"{"delay_ms":3600000}"#).with_session("tm");
            let b = one(&host, c.clone()).await;
            let timer = b["timer"].as_str().unwrap().to_owned();
            let doc = store
                .timer(&timer)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{domain}: timer {timer} is stored"));
            let stored: serde_json::Value = serde_json::from_str(&doc.json).unwrap();
            assert!(
                stored.to_string().contains(&format!("{domain}.ok")),
                "{stored}"
            );
            let cancel = json!({ "timer": timer }).to_string();
            let b = one(&host, cmd(&format!("{domain}.cancel"), &cancel)).await;
            assert_eq!(b["cancelled"], true, "{domain}");
            let b = one(&host, cmd(&format!("{domain}.cancel"), &cancel)).await;
            assert_eq!(b["cancelled"], false, "{domain}: already gone");
            let gone = store.timer(&timer).await.unwrap();
            assert!(gone.is_none(), "{domain}");
        }
    });
}
