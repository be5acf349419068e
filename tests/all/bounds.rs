//! Limits hold by construction: a guest that nests, emits, fails or writes
//! past them gets one documented error event, one that answers with a host
//! code or invents codes cannot make the host retry or grow its metrics,
//! one that declares too much is refused at load, and the host goes on
//! serving (issue 18, findings 1, 2, 4, 7, 8, 9 and 10).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{body, call, cmd, host_with, host_with_limits, last_error, test_limits};
use parallel_you_core::envelope::{Envelope, Kind, Meta};
use parallel_you_core::json_depth::MAX_JSON_DEPTH;
use parallel_you_core::{Bus, MemoryStore};
use parallel_you_gateway::{Gateway, GatewayConfig};
use parallel_you_host::{Host, Limits};
use serde_json::Value;

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn keys(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.meta.routing_key.as_str()).collect()
}

/// The host answers the next command to a healthy handler.
async fn still_serves(host: &Host) {
    let ok = call(host, cmd("flood.ok", "{}")).await;
    assert_eq!(keys(&ok), ["flood.fine"]);
    let ok = call(host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

#[tokio::test]
async fn event_bodies_nested_past_the_limit_are_refused() {
    let (host, _dir) = host_with(&["flood", "counter"]).await;
    let at_limit = format!(r#"{{"depth":{MAX_JSON_DEPTH}}}"#);
    let events = call(&host, cmd("flood.deep", &at_limit)).await;
    assert_eq!(keys(&events), ["flood.deep"]);

    for depth in [MAX_JSON_DEPTH + 1, 200, 100_000] {
        let c = cmd("flood.deep", &format!(r#"{{"depth":{depth}}}"#));
        let events = call(&host, c).await;
        assert_eq!(events.len(), 1, "depth {depth}");
        assert_eq!(last_error(&events).as_deref(), Some("invalid_event"));
        let message = body(&events[0])["message"].as_str().unwrap().to_owned();
        assert!(message.contains("nests"), "{message}");
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn command_bodies_nested_past_the_limit_are_refused() {
    let (host, _dir) = host_with(&["flood", "counter"]).await;
    // Built by hand: `Envelope::command` would already refuse it.
    let deep = Envelope {
        meta: Meta::new(Kind::Command, "flood.ok"),
        body: serde_json::value::RawValue::from_string(nested(MAX_JSON_DEPTH + 1)).unwrap(),
    };
    let events = call(&host, deep.clone()).await;
    assert_eq!(last_error(&events).as_deref(), Some("invalid_envelope"));
    let events = host
        .dispatch_json(
            &deep.to_json(),
            Arc::new(parallel_you_core::bus::Collector::new()),
        )
        .await;
    assert_eq!(last_error(&events).as_deref(), Some("invalid_envelope"));
    assert!(Envelope::command("flood.ok", &nested(MAX_JSON_DEPTH + 1)).is_err());
    still_serves(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_a_deep_event_through_the_gateway() {
    let common::OnBus {
        host,
        bus,
        serving,
        handlers: _handlers,
    } = common::serve_on_bus(&["flood", "counter"]).await;
    let bus: Arc<dyn Bus> = bus;
    let gateway = Gateway::start(bus, Some(host.clone()), GatewayConfig::default())
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let signal = async move {
            let _ = stopped.await;
        };
        gateway
            .serve(listener, None, signal, Duration::from_secs(5))
            .await
            .unwrap();
        serving.shutdown(Duration::from_secs(5)).await;
    });
    let client = reqwest::Client::new();
    let post = |path: &str, body: String| {
        client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let res = post("/api/flood/deep?wait=5000", r#"{"depth":200}"#.to_owned())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    let events = answer["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{answer}");
    assert_eq!(events[0]["meta"]["routing_key"], "flood.error");
    assert_eq!(events[0]["body"]["code"], "invalid_event");

    // A command body nested too deep is refused before it is sent.
    let res = post("/api/flood/ok?wait=5000", nested(MAX_JSON_DEPTH + 1))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    let res = post(
        "/api/counter/increment?wait=5000",
        r#"{"name":"g"}"#.to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(answer["events"][0]["body"]["value"], 1, "{answer}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("server stops")
        .unwrap();
}

#[tokio::test]
async fn the_first_emit_past_the_cap_stops_the_guest() {
    let (host, _dir) = host_with(&["flood", "counter"]).await;
    let max = test_limits().max_events;
    let started = Instant::now();
    let events = call(&host, cmd("flood.emit", "{}")).await;
    let took = started.elapsed();
    assert!(
        took < test_limits().deadline + Duration::from_secs(1),
        "took {took:?}"
    );
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.meta.routing_key == "flood.error")
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error event");
    assert_eq!(last_error(&events).as_deref(), Some("invalid_event"));
    assert!(
        body(&events[0])["message"]
            .as_str()
            .unwrap_or("")
            .contains(&max.to_string()),
        "{events:?}"
    );
    // A failed command keeps none of its events: the `max` drops it
    // emitted before the cap are not published either.
    assert_eq!(keys(&events), vec!["flood.error"]);
    still_serves(&host).await;
}

#[tokio::test]
async fn error_events_obey_the_body_cap() {
    // Room for the guest's 50 MB message; an error event's body stays
    // within its own cap (64 KiB), well under the 1 MiB event cap.
    let limits = Limits {
        memory: 256 * 1024 * 1024,
        deadline: Duration::from_secs(5),
        ..test_limits()
    };
    let (host, _dir) = host_with_limits(
        &["flood", "counter"],
        Arc::new(MemoryStore::new()),
        limits.clone(),
    )
    .await;
    let events = call(&host, cmd("flood.huge", "{}")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(last_error(&events).as_deref(), Some("too_much"));
    let size = events[0].body.get().len();
    assert!(size <= limits.max_error_body, "{size} bytes");
    assert!(
        size > limits.max_error_body / 2,
        "{size} bytes: cut too far"
    );
    let b = body(&events[0]);
    let message = b["message"].as_str().unwrap();
    assert!(message.starts_with("éé"), "cut on a char boundary");
    assert!(
        message.ends_with("(truncated)"),
        "{}",
        &message[message.len() - 80..]
    );
    assert_eq!(b["context"]["truncated"], true, "{}", b["context"]);
    still_serves(&host).await;
}

#[tokio::test]
async fn writing_to_stderr_never_traps() {
    let (host, _dir) = host_with(&["flood", "counter"]).await;
    let events = call(&host, cmd("flood.noisy", "{}")).await;
    assert_eq!(keys(&events), ["flood.fine"], "{events:?}");

    let events = call(&host, cmd("flood.noisy-panic", "{}")).await;
    assert_eq!(last_error(&events).as_deref(), Some("trap"));
    let b = body(&events[0]);
    let stderr = b["context"]["stderr"].as_str().unwrap_or_default();
    assert!(
        stderr.contains("flood.noisy-panic was asked to panic"),
        "the tail keeps the panic message: {}",
        &stderr[stderr.len().saturating_sub(200)..]
    );
    assert!(stderr.len() <= 64 * 1024, "{} bytes kept", stderr.len());
    still_serves(&host).await;
}

#[tokio::test]
async fn a_guest_spelling_a_host_code_is_answered_not_retried() {
    let (host, _dir) = host_with(&["flood", "counter"]).await;
    for code in ["unavailable", "overloaded"] {
        let c = cmd("flood.fail", &format!(r#"{{"code":"{code}"}}"#));
        let events = call(&host, c.clone()).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(last_error(&events).as_deref(), Some(code));
        let runs = host.metrics().commands_for("flood.fail");
        // Recorded: a redelivery republishes the answer and runs nothing.
        let again = call(&host, c).await;
        assert_eq!(keys(&again), ["flood.error"], "{again:?}");
        assert_eq!(again[0].meta.message_id, events[0].meta.message_id);
        assert_eq!(host.metrics().commands_for("flood.fail"), runs, "{code}");
    }
    still_serves(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_guest_spelling_unavailable_is_answered_once() {
    let on = common::serve_on_bus(&["flood", "counter"]).await;
    let mut errors = common::subscribe(&*on.bus, "#.flood.error").await;
    let mut fine = common::subscribe(&*on.bus, "#.flood.fine").await;
    on.bus
        .send(cmd("flood.fail", r#"{"code":"unavailable"}"#))
        .await
        .unwrap();
    let first = common::next_within(&mut errors, Duration::from_secs(5)).await;
    assert_eq!(
        first
            .as_ref()
            .and_then(parallel_you_core::error::error_code_of),
        Some("unavailable".to_owned())
    );
    // A requeued command would run again after the one-second retry pause.
    let again = common::next_within(&mut errors, Duration::from_millis(2500)).await;
    assert!(again.is_none(), "answered twice: {again:?}");
    assert_eq!(on.host.metrics().commands_for("flood.fail"), 1);
    on.bus.send(cmd("flood.ok", "{}")).await.unwrap();
    assert!(
        common::next_within(&mut fine, Duration::from_secs(5))
            .await
            .is_some(),
        "the host serves the next command"
    );
    on.serving.stop();
}

#[tokio::test]
async fn invented_error_codes_keep_the_metrics_bounded() {
    use parallel_you_core::host_info::HostInfo;
    use parallel_you_host::metrics::{MAX_HANDLER_CODES, OTHER_CODE};

    let (host, _dir) = host_with(&["flood", "counter"]).await;
    let invented = MAX_HANDLER_CODES + 200;
    for i in 0..invented {
        let events = call(
            &host,
            cmd("flood.fail", &format!(r#"{{"code":"made_up_{i}"}}"#)),
        )
        .await;
        assert_eq!(last_error(&events), Some(format!("made_up_{i}")));
    }
    let mut out = String::new();
    HostInfo::render_metrics(&*host, &mut out);
    let labels = out
        .lines()
        .filter(|l| l.starts_with("pyou_errors_total{"))
        .count();
    assert!(
        labels <= MAX_HANDLER_CODES + 1,
        "{labels} error labels:\n{out}"
    );
    assert!(
        out.contains(&format!("pyou_errors_total{{code=\"{OTHER_CODE}\"}} 200")),
        "{out}"
    );
    still_serves(&host).await;
}

#[tokio::test]
async fn a_manifest_past_the_command_limit_is_refused_at_load() {
    let started = Instant::now();
    let (host, _dir) = host_with(&["wide", "flood", "counter"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "loading took {:?}",
        started.elapsed()
    );
    let failures = host.registry().failures().to_vec();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let text = failures[0].to_string();
    assert!(
        text.contains("wide.wasm")
            && text.contains("declares 1001 commands, more than the limit of 1000"),
        "{text}"
    );
    assert!(host.registry().route("wide.c0").is_none());
    still_serves(&host).await;
}
