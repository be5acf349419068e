//! Traces across the bus, as an operator sees them in a trace viewer: a
//! real OTLP/HTTP receiver in the test decodes what `pyou serve
//! --otlp-endpoint` exports, and one trace runs from the client's
//! `traceparent` through the gateway, the host, the guest (its log line a
//! span event), the reactor and the command the reactor sent; and across
//! processes on a real RabbitMQ, a `pyou gateway` and a `pyou host` each
//! exporting its part, flushed as they stop.

use crate::amqp::{api_keys, eventually, gateway_process_with, HostProcess};
use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::child::Child;
use common::rabbit::Rabbit;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::Value;

/// The client's trace and span: what `POST` sends as `traceparent`.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// One exported span, as the test reads it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    name: String,
    kind: SpanKind,
    attributes: HashMap<String, String>,
    /// Its events' names (a `tracing` event's message).
    events: Vec<String>,
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on a free loopback
/// port, keeping every span it is sent.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let kept = kept.clone();
                async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return axum::http::StatusCode::BAD_REQUEST;
                    };
                    kept.lock().unwrap().extend(spans_of(request));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, spans, task }
    }

    /// The spans of trace `trace_id` once `ready` holds for them, polled
    /// for at most 30 s.
    async fn trace(&self, trace_id: &str, ready: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if ready(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} incomplete after 30 s: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(text)
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                out.push(Span {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv)))
                        .collect(),
                    events: span.events.iter().map(|e| e.name.clone()).collect(),
                    name: span.name,
                });
            }
        }
    }
    out
}

/// The one span named `name` in `spans`.
fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name:?} span in {spans:#?}");
    found[0]
}

/// `pyou serve` exporting to `receiver`, with the batch delay short.
fn serve(handlers: &Path, data: &Path, receiver: &Receiver) -> (Child, String) {
    let mut command = common::pyou();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--handlers"])
        .arg(handlers)
        .arg("--data")
        .arg(data)
        .args(["--otlp-endpoint", &receiver.url])
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let server = Child::spawn(command);
    let line = server.line(Duration::from_secs(300));
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (server, addr)
}

/// `POST /api/<key>?wait=10000` with a `traceparent` header: the answer.
async fn post(addr: &str, key: &str, body: &str, traceparent: &str) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{addr}/api/{}?wait=10000", key.replace('.', "/")))
        .header("traceparent", traceparent)
        .header("tracestate", "congo=t61rcWkgMzE")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a trace header is never an error");
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_request_through_host_guest_and_reactor() {
    let receiver = Receiver::start().await;
    let handlers = common::handlers_dir(&["noop", "tally", "counter"]);
    let data = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(handlers.path(), data.path(), &receiver);

    // `noop.ping` answers `noop.ponged`, which makes the `tally` reactor
    // send `counter.increment`, whose handler logs a line.
    let answer = post(
        &addr,
        "noop.ping",
        r#"{"send":"counter.increment","name":"a"}"#,
        &format!("00-{TRACE}-{CLIENT_SPAN}-01"),
    )
    .await;
    let spans = receiver
        .trace(TRACE, |spans| {
            spans
                .iter()
                .any(|s| s.name == "handle counter" && !s.events.is_empty())
                && spans.iter().any(|s| s.name == "process counter.increment")
        })
        .await;

    assert!(
        spans.iter().all(|s| s.service == "pyou-serve"),
        "{spans:#?}"
    );
    let gateway = named(&spans, "send noop.ping");
    let host = named(&spans, "process noop.ping");
    let guest = named(&spans, "handle noop");
    let reactor = named(&spans, "process tally noop.ponged");
    let sent = named(&spans, "process counter.increment");
    let counter = named(&spans, "handle counter");
    // Each the child of the one before it.
    assert_eq!(gateway.parent_id, CLIENT_SPAN);
    assert_eq!(host.parent_id, gateway.span_id);
    assert_eq!(guest.parent_id, host.span_id);
    assert_eq!(
        reactor.parent_id, host.span_id,
        "the event was sent by the host's span"
    );
    assert_eq!(sent.parent_id, reactor.span_id);
    assert_eq!(counter.parent_id, sent.span_id);
    assert_eq!(
        (gateway.kind, host.kind, guest.kind, reactor.kind),
        (
            SpanKind::Producer,
            SpanKind::Consumer,
            SpanKind::Internal,
            SpanKind::Consumer
        )
    );

    // Messaging conventions on the host's span.
    let attr = |s: &Span, k: &str| s.attributes.get(k).cloned().unwrap_or_default();
    assert_eq!(attr(host, "messaging.system"), "in_process");
    assert_eq!(attr(host, "messaging.destination.name"), "noop.ping");
    assert_eq!(attr(host, "messaging.message.id"), answer["message_id"]);
    assert_eq!(
        attr(host, "messaging.message.conversation_id"),
        answer["correlation_id"]
    );
    assert_eq!(attr(host, "pyou.domain"), "noop");
    assert_eq!(attr(sent, "pyou.routing_key"), "counter.increment");

    // The guest's log line is an event of its span.
    assert!(
        counter
            .events
            .iter()
            .any(|e| e.starts_with("counter a +1 = 1")),
        "{counter:#?}"
    );

    // The event carries the host span's context on, with the caller's
    // tracestate.
    let meta = &answer["events"][0]["meta"];
    assert_eq!(
        meta["traceparent"],
        format!("00-{TRACE}-{}-01", host.span_id)
    );
    assert_eq!(meta["tracestate"], "congo=t61rcWkgMzE");

    // A malformed traceparent is replaced by a new trace, never an error.
    let answer = post(&addr, "noop.ping", "{}", "00-not-a-trace-01").await;
    let carried = answer["events"][0]["meta"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned();
    let new_trace = carried.split('-').nth(1).unwrap().to_owned();
    assert_ne!(new_trace, TRACE);
    let spans = receiver
        .trace(&new_trace, |spans| {
            spans.iter().any(|s| s.name == "process noop.ping")
        })
        .await;
    assert_eq!(named(&spans, "send noop.ping").parent_id, "", "a root");

    assert!(server.terminate(Duration::from_secs(30)), "stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_a_host_on_rabbitmq_export_one_trace() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let receiver = Receiver::start().await;
    let handlers = common::handlers_dir(&["noop", "tally", "counter"]);
    let data = tempfile::tempdir().unwrap();
    let export = ["--otlp-endpoint", receiver.url.as_str()];
    // The default batch delay (5 s): what they send comes with the flush
    // as they stop, which is what this test checks.
    let mut host = tokio::task::block_in_place(|| {
        HostProcess::start_with(&rabbit, handlers.path(), data.path(), &export)
    });
    let (mut gateway, base) =
        tokio::task::block_in_place(|| gateway_process_with(&rabbit, &export));
    eventually(
        Duration::from_secs(20),
        "the gateway to serve noop.ping",
        || {
            let base = base.clone();
            async move { api_keys(&base).await.contains("noop.ping") }
        },
    )
    .await;
    let answer = post(
        &base,
        "noop.ping",
        r#"{"send":"counter.increment","name":"b"}"#,
        &format!("00-{TRACE}-{CLIENT_SPAN}-01"),
    )
    .await;
    assert_eq!(answer["complete"], true, "{answer}");
    // The reactor's command has run once counter `b` is 1.
    eventually(Duration::from_secs(20), "tally's counter.increment", || {
        let base = base.clone();
        async move {
            let got =
                crate::common::child::post_wait(&base, "counter.get", r#"{"name":"b"}"#).await;
            got["events"][0]["body"]["value"] == 1
        }
    })
    .await;
    tokio::task::block_in_place(|| {
        gateway.terminate();
        host.terminate();
    });

    let spans = receiver
        .trace(TRACE, |spans| {
            spans.iter().any(|s| s.name == "handle counter")
                && spans.iter().any(|s| s.name == "send noop.ping")
        })
        .await;
    let gateway = named(&spans, "send noop.ping");
    let host = named(&spans, "process noop.ping");
    let reactor = named(&spans, "process tally noop.ponged");
    let sent = named(&spans, "process counter.increment");
    let counter = named(&spans, "handle counter");
    assert_eq!(gateway.service, "pyou-gateway");
    assert_eq!(
        [&host.service, &reactor.service, &counter.service],
        ["pyou-host"; 3]
    );
    assert_eq!(gateway.parent_id, CLIENT_SPAN);
    assert_eq!(host.parent_id, gateway.span_id, "across the broker");
    assert_eq!(reactor.parent_id, host.span_id);
    assert_eq!(sent.parent_id, reactor.span_id);
    assert_eq!(counter.parent_id, sent.span_id);
    for span in [gateway, host, reactor, sent] {
        assert_eq!(
            span.attributes.get("messaging.system").map(String::as_str),
            Some("rabbitmq"),
            "{span:#?}"
        );
    }
    assert!(
        counter
            .events
            .iter()
            .any(|e| e.starts_with("counter b +1 = 1")),
        "{counter:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_s_commands_continue_their_own_trace_or_the_upgrade_s() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::Message;

    let receiver = Receiver::start().await;
    let handlers = common::handlers_dir(&["noop"]);
    let data = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(handlers.path(), data.path(), &receiver);
    let (upgrade_trace, upgrade_span) = ("5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7");
    let (own_trace, own_span) = ("6bf92f3577b34da6a3ce929d0e0e4736", "20f067aa0ba902b7");
    let mut req = format!("{}/ws?session=traced", addr.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    let header = format!("00-{upgrade_trace}-{upgrade_span}-01");
    req.headers_mut()
        .insert("traceparent", header.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    // One command naming its own trace, one naming none.
    let mut own = parallel_you_core::Envelope::command("noop.ping", r#"{"n":1}"#).unwrap();
    own.meta.traceparent = Some(format!("00-{own_trace}-{own_span}-01"));
    let plain = parallel_you_core::Envelope::command("noop.ping", r#"{"n":2}"#).unwrap();
    for cmd in [&own, &plain] {
        socket.send(Message::text(cmd.to_json())).await.unwrap();
    }
    let mut answered = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(left, socket.next()).await
        else {
            panic!("two answers on the socket within 30 s: {answered:?}");
        };
        let event: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(event["meta"]["routing_key"], "noop.ponged", "{event}");
        let tp = event["meta"]["traceparent"].as_str().unwrap().to_owned();
        answered.insert(event["body"]["n"].as_u64().unwrap(), tp);
    }
    assert!(answered[&1].contains(own_trace), "{answered:?}");
    assert!(answered[&2].contains(upgrade_trace), "{answered:?}");

    for (trace, parent) in [(own_trace, own_span), (upgrade_trace, upgrade_span)] {
        let spans = receiver
            .trace(trace, |spans| {
                spans.iter().any(|s| s.name == "process noop.ping")
            })
            .await;
        let sent = named(&spans, "send noop.ping");
        assert_eq!(sent.parent_id, parent);
        assert_eq!(
            sent.attributes.get("pyou.via").map(String::as_str),
            Some("ws")
        );
        assert_eq!(named(&spans, "process noop.ping").parent_id, sent.span_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_s_command_is_the_child_of_the_guest_call_that_scheduled_it() {
    let receiver = Receiver::start().await;
    let handlers = common::handlers_dir(&["noop"]);
    let data = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(handlers.path(), data.path(), &receiver);
    let trace = "7bf92f3577b34da6a3ce929d0e0e4736";
    let answer = post(
        &addr,
        "noop.later",
        r#"{"delay_ms":100,"body":{"n":1}}"#,
        &format!("00-{trace}-{CLIENT_SPAN}-01"),
    )
    .await;
    assert_eq!(answer["events"][0]["meta"]["routing_key"], "noop.scheduled");
    let spans = receiver
        .trace(trace, |spans| {
            spans.iter().any(|s| s.name == "process noop.ping")
        })
        .await;
    let scheduling = named(&spans, "process noop.later");
    let guest = spans
        .iter()
        .find(|s| s.name == "handle noop" && s.parent_id == scheduling.span_id)
        .unwrap_or_else(|| panic!("noop.later's guest call in {spans:#?}"));
    let fired = named(&spans, "process noop.ping");
    assert_eq!(
        fired.parent_id, guest.span_id,
        "scheduled inside the guest call"
    );
    assert!(
        fired.attributes["messaging.message.id"].starts_with("timer-"),
        "{fired:#?}"
    );
}
