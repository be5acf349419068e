#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::bindings::parallel_you::handler::store;
use crate::collection::decode;
use serde::Deserialize;
use serde_json::{json, Value};

fn meta(key: &str) -> Meta {
    Meta {
        message_id: "01HZX0000000000000000000AA".into(),
        routing_key: key.into(),
        reply_channel: Some("session.s1".into()),
        correlation_id: "c1".into(),
        causation_id: None,
        session_id: Some("s1".into()),
        timestamp_ms: 1_700_000_000_000,
        user_id: None,
    }
}

fn command(key: &str, body: &str) -> Command {
    Command {
        meta: meta(key),
        body: body.into(),
    }
}

#[derive(Deserialize)]
struct Greet {
    name: String,
    #[serde(default)]
    loud: bool,
}

fn greet(ctx: &Ctx, cmd: Greet) -> Result<Vec<Event>, Error> {
    if cmd.name.is_empty() {
        return Err(Error::validation("name is empty"));
    }
    let text = format!("hello {}", cmd.name);
    let text = if cmd.loud { text.to_uppercase() } else { text };
    Ok(vec![Event::new(
        "demo.greeted",
        &json!({ "text": text, "correlation_id": ctx.meta().correlation_id }),
    )?])
}

fn echo(_ctx: &Ctx, body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new("demo.echoed", &body)?])
}

fn router() -> Router {
    Router::new("demo", "1.2.3")
        .command("demo.greet", "Say hello", greet)
        .schema(r#"{"type":"object","required":["name"]}"#)
        .command("demo.echo", "Echo the body", echo)
        .command("demo.closure", "A closure", |_ctx: &Ctx, n: u32| {
            Ok(vec![Event::raw("demo.counted", n.to_string())])
        })
        .emits(&["demo.greeted", "demo.echoed"])
        .emits(&["demo.counted"])
        .index("greetings", &["name"])
        .index("greetings", &["loud", "at.day"])
}

#[test]
fn manifest_lists_commands_schemas_and_events() {
    let m = router().manifest();
    assert_eq!(m.domain, "demo");
    assert_eq!(m.version, "1.2.3");
    let keys: Vec<_> = m.commands.iter().map(|c| c.routing_key.as_str()).collect();
    assert_eq!(keys, ["demo.greet", "demo.echo", "demo.closure"]);
    assert_eq!(m.commands[0].summary, "Say hello");
    assert_eq!(
        m.commands[0].body_schema.as_deref(),
        Some(r#"{"type":"object","required":["name"]}"#)
    );
    assert_eq!(m.commands[1].body_schema, None);
    assert_eq!(m.events, ["demo.greeted", "demo.echoed", "demo.counted"]);
    assert_eq!(m.indexes.len(), 2);
    assert_eq!(m.indexes[0].collection, "greetings");
    assert_eq!(m.indexes[0].fields, ["name"]);
    assert_eq!(m.indexes[1].fields, ["loud", "at.day"]);
}

#[test]
fn schema_before_any_command_is_ignored() {
    let m = Router::new("x", "0").schema("{}").manifest();
    assert!(m.commands.is_empty());
}

#[test]
fn dispatches_by_routing_key() {
    let events = router()
        .handle(command("demo.greet", r#"{"name":"ada","loud":true}"#))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].routing_key, "demo.greeted");
    let body: Value = events[0].parse().unwrap();
    assert_eq!(body, json!({"text": "HELLO ADA", "correlation_id": "c1"}));

    let events = router()
        .handle(command("demo.echo", r#" {"b": [1, 2], "a": null} "#))
        .unwrap();
    assert_eq!(events[0].routing_key, "demo.echoed");
    assert_eq!(
        events[0].parse::<Value>().unwrap(),
        json!({"a": null, "b": [1, 2]})
    );

    let events = router().handle(command("demo.closure", "7")).unwrap();
    assert_eq!(events, [Event::raw("demo.counted", "7")]);
}

#[test]
fn unknown_routing_key() {
    let err = router().handle(command("demo.nope", "{}")).unwrap_err();
    assert_eq!(err.code, "unknown_routing_key");
    assert!(err.message.contains("demo.nope"), "{}", err.message);
    let context: Value = serde_json::from_str(err.context.as_deref().unwrap()).unwrap();
    assert_eq!(context["routing_key"], "demo.nope");
    assert_eq!(
        context["commands"],
        json!(["demo.greet", "demo.echo", "demo.closure"])
    );

    // Keys match exactly, not by prefix.
    let err = router().handle(command("demo.greet.x", "{}")).unwrap_err();
    assert_eq!(err.code, "unknown_routing_key");
}

#[test]
fn body_that_does_not_deserialise_is_a_validation_error() {
    let err = router().handle(command("demo.greet", "{}")).unwrap_err();
    assert_eq!(err.code, "validation");
    assert!(
        err.message.contains("missing field `name`"),
        "{}",
        err.message
    );
    assert_eq!(err.context, None);

    let err = router()
        .handle(command("demo.greet", r#"{"name": 3}"#))
        .unwrap_err();
    assert_eq!(err.code, "validation");
    assert!(err.message.contains("invalid type"), "{}", err.message);

    let err = router()
        .handle(command("demo.echo", "{not json"))
        .unwrap_err();
    assert_eq!(err.code, "validation");

    let err = router().handle(command("demo.closure", "-1")).unwrap_err();
    assert_eq!(err.code, "validation");
}

#[test]
fn empty_body_counts_as_empty_object() {
    let events = router().handle(command("demo.echo", "")).unwrap();
    assert_eq!(events[0].body, "{}");
    let events = router().handle(command("demo.echo", "  \n")).unwrap();
    assert_eq!(events[0].body, "{}");
}

#[test]
fn handler_errors_pass_through() {
    let err = router()
        .handle(command("demo.greet", r#"{"name": ""}"#))
        .unwrap_err();
    assert_eq!(
        err,
        HandlerError {
            code: "validation".into(),
            message: "name is empty".into(),
            context: None,
        }
    );
}

#[test]
fn store_errors_map_to_codes() {
    let e = Error::from(StoreError::Conflict(4));
    assert_eq!(e.code(), "conflict");
    assert_eq!(e.context(), Some(&json!({"current_version": 4})));

    assert_eq!(Error::from(StoreError::NotFound).code(), "not_found");

    let e = Error::from(StoreError::Invalid("bad filter".into()));
    assert_eq!(e.code(), "invalid_request");
    assert_eq!(e.message(), "bad filter");

    let e = Error::from(StoreError::Unavailable("down".into()));
    assert_eq!(e.code(), "unavailable");
    assert_eq!(e.message(), "down");
}

#[test]
fn error_to_handler_error() {
    let h = HandlerError::from(Error::conflict(0));
    assert_eq!(h.code, "conflict");
    assert_eq!(h.context.as_deref(), Some(r#"{"current_version":0}"#));

    let h = HandlerError::from(
        Error::new(String::from("custom_code"), "msg").with_context(json!({"a": 1})),
    );
    assert_eq!(h.code, "custom_code");
    assert_eq!(h.message, "msg");
    assert_eq!(h.context.as_deref(), Some(r#"{"a":1}"#));

    assert_eq!(Error::not_found("x").code(), "not_found");
    assert_eq!(Error::invalid_transition("x").code(), "invalid_transition");
    assert_eq!(Error::internal("x").code(), "handler_error");
    assert_eq!(Error::validation("bad").to_string(), "validation: bad");
}

#[test]
fn json_errors_are_handler_errors() {
    let e = Error::from(serde_json::from_str::<Value>("{").unwrap_err());
    assert_eq!(e.code(), "handler_error");
    assert!(e.message().starts_with("JSON: "), "{}", e.message());
}

#[test]
fn events() {
    let e = Event::new("demo.x", &json!({"k": [1, "two"]})).unwrap();
    assert_eq!(e.routing_key, "demo.x");
    assert_eq!(e.body, r#"{"k":[1,"two"]}"#);
    let e = Event::raw("demo.y", "null");
    assert_eq!(e.body, "null");
    assert_eq!(e.parse::<Option<u8>>().unwrap(), None);

    // A map with non-string keys cannot be JSON.
    let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    assert_eq!(
        Event::new("demo.z", &bad).unwrap_err().code(),
        "handler_error"
    );
}

#[test]
fn ctx_exposes_meta() {
    let ctx = Ctx::new(meta("demo.greet"));
    assert_eq!(ctx.routing_key(), "demo.greet");
    assert_eq!(ctx.meta().session_id.as_deref(), Some("s1"));
    assert_eq!(ctx.meta().timestamp_ms, 1_700_000_000_000);
    let c = ctx.collection::<Value>("things");
    assert_eq!(c.name(), "things");
}

#[test]
fn ctx_says_who_sent_it_and_which_timer() {
    let ctx = Ctx::new(meta("demo.greet"));
    assert_eq!((ctx.user_id(), ctx.fired_by_timer()), (None, None));
    let mut m = meta("demo.expire");
    m.user_id = Some("alice".into());
    m.message_id = format!("timer-01ABC.{}", "f".repeat(64));
    let ctx = Ctx::new(m);
    assert_eq!(ctx.user_id(), Some("alice"));
    assert_eq!(ctx.fired_by_timer(), Some("01ABC"));
}

#[test]
fn internal_marks_the_last_command() {
    fn ok(_ctx: &Ctx, _b: Value) -> Result<Vec<Event>, Error> {
        Ok(vec![])
    }
    let manifest = Router::new("demo", "1")
        .internal()
        .command("demo.open", "Anyone", ok)
        .command("demo.tick", "Timers only", ok)
        .internal()
        .manifest();
    let flags: Vec<bool> = manifest.commands.iter().map(|c| c.internal).collect();
    assert_eq!(flags, [false, true]);
}

#[test]
fn decode_reports_the_document() {
    let ok: Doc<Value> = decode(
        "c",
        store::Document {
            id: "a".into(),
            version: 3,
            json: r#"{"v":1}"#.into(),
        },
    )
    .unwrap();
    assert_eq!(
        ok,
        Doc {
            id: "a".into(),
            version: 3,
            value: json!({"v": 1})
        }
    );
    let err = decode::<u8>(
        "c",
        store::Document {
            id: "a".into(),
            version: 3,
            json: "\"x\"".into(),
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), "handler_error");
    assert!(err.message().contains("`a` in `c`"), "{}", err.message());
}
