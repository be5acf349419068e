#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{CommandToSend, Delivered, DeliveredEvent, Error, Meta, QueryCtx, Reactor, ReactorCtx};

fn meta(key: &str) -> Meta {
    Meta {
        message_id: "01HZX0000000000000000000AA".into(),
        routing_key: key.into(),
        reply_channel: Some("session.s1".into()),
        correlation_id: "c1".into(),
        causation_id: Some("c0".into()),
        session_id: Some("s1".into()),
        timestamp_ms: 1_700_000_000_000,
        user_id: None,
    }
}

fn event(key: &str, body: &str) -> DeliveredEvent {
    DeliveredEvent {
        meta: meta(key),
        body: body.into(),
    }
}

#[derive(Deserialize)]
struct Thread {
    id: String,
}

/// Answers which function ran, so dispatch order is visible.
fn tag(
    name: &'static str,
) -> impl Fn(&ReactorCtx, Delivered<Value>) -> Result<Vec<CommandToSend>, Error> {
    move |_ctx, ev| {
        Ok(vec![CommandToSend::new(
            "demo.ran",
            &json!({ "fn": name, "key": ev.routing_key() }),
        )?])
    }
}

fn expired(_ctx: &ReactorCtx, ev: Delivered<Thread>) -> Result<Vec<CommandToSend>, Error> {
    Ok(vec![CommandToSend::new(
        "thread.park",
        &json!({ "id": ev.body.id, "at": ev.timestamp_ms(), "msg": ev.message_id() }),
    )?])
}

#[derive(Deserialize)]
struct ById {
    id: String,
    #[serde(default)]
    loud: bool,
}

fn by_id(_ctx: &QueryCtx, p: ById) -> Result<Value, Error> {
    if p.id == "missing" {
        return Err(Error::not_found("no such id"));
    }
    Ok(json!({ "id": if p.loud { p.id.to_uppercase() } else { p.id } }))
}

fn reactor() -> Reactor {
    Reactor::new("demo", "2.0.0")
        .on("thread.quantum.expired", expired)
        .on("thread.*", tag("star"))
        .on("thread.#", tag("hash"))
        .on_timer("demo.tick", tag("timer"))
        .query("by_id", "One by id", by_id)
        .schema(r#"{"type":"object","required":["id"]}"#)
        .query("all", "Everything", |_ctx: &QueryCtx, _p: Value| {
            Ok(vec![1, 2, 3])
        })
        .index("records", &["saga_id", "day"])
        .index("days", &["day"])
        .sends(&["thread.park"])
        .sends(&["demo.ran"])
}

fn ran(commands: &[CommandToSend]) -> Value {
    assert_eq!(commands.len(), 1);
    commands[0].parse::<Value>().unwrap()["fn"].clone()
}

#[test]
fn manifest_lists_everything_but_timers() {
    let m = reactor().manifest();
    assert_eq!(m.domain, "demo");
    assert_eq!(m.version, "2.0.0");
    assert_eq!(
        m.subscribes,
        ["thread.quantum.expired", "thread.*", "thread.#"]
    );
    assert_eq!(m.sends, ["thread.park", "demo.ran"]);
    let names: Vec<_> = m.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["by_id", "all"]);
    assert_eq!(m.queries[0].summary, "One by id");
    assert_eq!(
        m.queries[0].params_schema.as_deref(),
        Some(r#"{"type":"object","required":["id"]}"#)
    );
    assert_eq!(m.queries[1].params_schema, None);
    assert_eq!(m.indexes.len(), 2);
    assert_eq!(m.indexes[0].collection, "records");
    assert_eq!(m.indexes[0].fields, ["saga_id", "day"]);
    assert_eq!(m.indexes[1].fields, ["day"]);
}

#[test]
fn schema_before_any_query_is_ignored() {
    let m = Reactor::new("x", "0").schema("{}").manifest();
    assert!(m.queries.is_empty());
}

#[test]
fn first_registered_matching_pattern_wins() {
    let r = reactor();
    // Matches all three patterns: the first registered runs.
    let out = r
        .on_event(event("thread.quantum.expired", r#"{"id":"t1"}"#))
        .unwrap();
    assert_eq!(out[0].routing_key, "thread.park");
    assert_eq!(
        out[0].parse::<Value>().unwrap(),
        json!({"id": "t1", "at": 1_700_000_000_000u64, "msg": "01HZX0000000000000000000AA"})
    );
    // `thread.*` before `thread.#`.
    assert_eq!(
        ran(&r.on_event(event("thread.started", "{}")).unwrap()),
        "star"
    );
    // Only `thread.#` takes three segments other than the first route's.
    assert_eq!(
        ran(&r.on_event(event("thread.sprint.created", "{}")).unwrap()),
        "hash"
    );
    assert_eq!(ran(&r.on_event(event("thread", "{}")).unwrap()), "hash");
    assert_eq!(ran(&r.on_event(event("demo.tick", "")).unwrap()), "timer");

    // Registered the other way round, the broad pattern takes everything.
    let broad = Reactor::new("demo", "1")
        .on("thread.#", tag("hash"))
        .on("thread.quantum.expired", tag("exact"));
    assert_eq!(
        ran(&broad
            .on_event(event("thread.quantum.expired", "{}"))
            .unwrap()),
        "hash"
    );
}

#[test]
fn unmatched_key_is_unknown_routing_key() {
    let err = reactor().on_event(event("notes.added", "{}")).unwrap_err();
    assert_eq!(err.code, "unknown_routing_key");
    assert!(err.message.contains("notes.added"), "{}", err.message);
    let context: Value = serde_json::from_str(err.context.as_deref().unwrap()).unwrap();
    assert_eq!(context["routing_key"], "notes.added");
    assert_eq!(context["patterns"][0], "thread.quantum.expired");
}

#[test]
fn event_body_that_does_not_deserialise_is_a_validation_error() {
    let err = reactor()
        .on_event(event("thread.quantum.expired", r#"{"id": 3}"#))
        .unwrap_err();
    assert_eq!(err.code, "validation");
    assert!(
        err.message.starts_with("invalid event body"),
        "{}",
        err.message
    );
    let err = reactor()
        .on_event(event("thread.quantum.expired", "{nope"))
        .unwrap_err();
    assert_eq!(err.code, "validation");
}

#[test]
fn delivered_carries_the_meta() {
    let r = Reactor::new("demo", "1").on("#", |ctx: &ReactorCtx, ev: Delivered<Value>| {
        assert_eq!(ctx.meta(), &ev.meta);
        assert_eq!(ctx.routing_key(), "a.b");
        Ok(vec![CommandToSend::raw(
            "demo.x",
            format!(
                r#"{{"corr":"{}","session":"{}"}}"#,
                ev.meta.correlation_id,
                ev.meta.session_id.as_deref().unwrap_or("")
            ),
        )])
    });
    let out = r.on_event(event("a.b", "[]")).unwrap();
    assert_eq!(
        out[0].parse::<Value>().unwrap(),
        json!({"corr": "c1", "session": "s1"})
    );
}

#[test]
fn queries_answer_json() {
    let r = reactor();
    assert_eq!(r.answer("by_id", r#"{"id":"a"}"#).unwrap(), r#"{"id":"a"}"#);
    assert_eq!(
        r.answer("by_id", r#"{"id":"a","loud":true}"#).unwrap(),
        r#"{"id":"A"}"#
    );
    assert_eq!(r.answer("all", "").unwrap(), "[1,2,3]");
    assert_eq!(r.answer("all", "{}").unwrap(), "[1,2,3]");
}

#[test]
fn query_errors() {
    let r = reactor();
    let err = r.answer("nope", "{}").unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert!(err.message().contains("`nope`"), "{}", err.message());
    assert_eq!(err.context().unwrap()["queries"], json!(["by_id", "all"]));

    let err = r.answer("by_id", "{}").unwrap_err();
    assert_eq!(err.code(), "validation");
    assert!(
        err.message().contains("missing field `id`"),
        "{}",
        err.message()
    );

    let err = r.answer("by_id", r#"{"id":"missing"}"#).unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(err.message(), "no such id");
}
