//! The bundled sample handler: named counters.
//!
//! | command | body | answer |
//! |---|---|---|
//! | `counter.increment` | `{name, by?: 1, expected_version?}` | `counter.incremented {name, value, version}` |
//! | `counter.get` | `{name}` | `counter.value {name, value, version}` |
//! | `counter.reset` | `{name, expected_version?}` | `counter.reset {name, version}` |
//! | `counter.list` | `{}` | `counter.listed {counters: [{name, value, version}]}` |
//!
//! Counters live in the `counters` collection of the domain's store, one
//! document `{"value": n}` per name. `expected_version` (optimistic
//! concurrency) is the version last seen by the caller, 0 for "does not exist
//! yet"; a mismatch is refused with code `conflict` and context
//! `{"current_version": n}`.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Longest counter name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// How many times an unpinned increment is retried when another writer got
/// there first.
const INCREMENT_ATTEMPTS: usize = 5;

const COLLECTION: &str = "counters";

struct Counter;

impl Handler for Counter {
    fn router() -> Router {
        Router::new("counter", env!("CARGO_PKG_VERSION"))
            .command(
                "counter.increment",
                "Add `by` (default 1) to a named counter",
                increment,
            )
            .schema(INCREMENT_SCHEMA)
            .command("counter.get", "Read a counter", get)
            .schema(GET_SCHEMA)
            .command("counter.reset", "Set a counter back to 0", reset)
            .schema(RESET_SCHEMA)
            .command("counter.list", "List every counter", list)
            .schema(LIST_SCHEMA)
            .emits(&[
                "counter.incremented",
                "counter.value",
                "counter.reset",
                "counter.listed",
            ])
    }
}

export_handler!(Counter);

const INCREMENT_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["name"],"properties":{"name":{"type":"string","minLength":1,"maxLength":100},"by":{"type":"integer","default":1},"expected_version":{"type":"integer","minimum":0}}}"#;
const GET_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["name"],"properties":{"name":{"type":"string","minLength":1,"maxLength":100}}}"#;
const RESET_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["name"],"properties":{"name":{"type":"string","minLength":1,"maxLength":100},"expected_version":{"type":"integer","minimum":0}}}"#;
const LIST_SCHEMA: &str = r#"{"type":"object"}"#;

/// What is stored per counter.
#[derive(Serialize, Deserialize, Default)]
struct CounterDoc {
    value: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Increment {
    name: String,
    #[serde(default = "one")]
    by: i64,
    expected_version: Option<u64>,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    name: String,
    expected_version: Option<u64>,
}

fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::validation("`name` must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::validation(format!(
            "`name` must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

fn increment(ctx: &Ctx, cmd: Increment) -> Result<Vec<Event>, Error> {
    validate_name(&cmd.name)?;
    let counters = ctx.collection::<CounterDoc>(COLLECTION);
    let mut attempt = 1;
    let (value, version) = loop {
        let (current, version) = match counters.get(&cmd.name)? {
            Some(doc) => (doc.value.value, doc.version),
            None => (0, 0),
        };
        if let Some(expected) = cmd.expected_version {
            if expected != version {
                return Err(Error::conflict(version));
            }
        }
        let value = current.checked_add(cmd.by).ok_or_else(|| {
            Error::invalid_transition(format!("adding {} to {current} would overflow", cmd.by))
        })?;
        match counters.put(&cmd.name, &CounterDoc { value }, Some(version)) {
            Ok(version) => break (value, version),
            // Someone else wrote in between: an increment the caller did not
            // pin to a version can simply be applied to the newer value.
            Err(e)
                if e.code() == "conflict"
                    && cmd.expected_version.is_none()
                    && attempt < INCREMENT_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    ctx.info(format!(
        "counter {} {:+} = {value} (version {version})",
        cmd.name, cmd.by
    ));
    Ok(vec![Event::new(
        "counter.incremented",
        &json!({ "name": cmd.name, "value": value, "version": version }),
    )?])
}

fn get(ctx: &Ctx, cmd: Get) -> Result<Vec<Event>, Error> {
    validate_name(&cmd.name)?;
    let doc = ctx
        .collection::<CounterDoc>(COLLECTION)
        .get(&cmd.name)?
        .ok_or_else(|| {
            Error::not_found(format!("no counter named `{}`", cmd.name))
                .with_context(json!({ "name": cmd.name }))
        })?;
    Ok(vec![Event::new(
        "counter.value",
        &json!({ "name": cmd.name, "value": doc.value.value, "version": doc.version }),
    )?])
}

fn reset(ctx: &Ctx, cmd: Reset) -> Result<Vec<Event>, Error> {
    validate_name(&cmd.name)?;
    let version = ctx.collection::<CounterDoc>(COLLECTION).put(
        &cmd.name,
        &CounterDoc::default(),
        cmd.expected_version,
    )?;
    Ok(vec![Event::new(
        "counter.reset",
        &json!({ "name": cmd.name, "version": version }),
    )?])
}

fn list(ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    let counters: Vec<_> = ctx
        .collection::<CounterDoc>(COLLECTION)
        .list(json!({}))?
        .into_iter()
        .map(|doc| json!({ "name": doc.id, "value": doc.value.value, "version": doc.version }))
        .collect();
    Ok(vec![Event::new(
        "counter.listed",
        &json!({ "counters": counters }),
    )?])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use parallel_you_sdk::Meta;

    fn ctx(key: &str) -> Ctx {
        Ctx::new(Meta {
            message_id: "m".into(),
            routing_key: key.into(),
            reply_channel: None,
            correlation_id: "c".into(),
            causation_id: None,
            session_id: None,
            timestamp_ms: 0,
            user_id: None,
        })
    }

    /// Runs a command that must fail before touching the store.
    fn refused(key: &str, body: &str) -> Error {
        Counter::router().dispatch(&ctx(key), body).unwrap_err()
    }

    #[test]
    fn manifest() {
        let m = Counter::router().manifest();
        assert_eq!(m.domain, "counter");
        for c in &m.commands {
            assert!(c.routing_key.starts_with("counter."), "{}", c.routing_key);
            let schema: serde_json::Value =
                serde_json::from_str(c.body_schema.as_deref().unwrap()).unwrap();
            assert_eq!(schema["type"], "object");
        }
        assert_eq!(m.commands.len(), 4);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("a").is_ok());
        assert!(validate_name(&"é".repeat(100)).is_ok());
        assert_eq!(validate_name("").unwrap_err().code(), "validation");
        assert_eq!(
            validate_name(&"x".repeat(101)).unwrap_err().code(),
            "validation"
        );
        for key in ["counter.increment", "counter.get", "counter.reset"] {
            assert_eq!(refused(key, r#"{"name": ""}"#).code(), "validation");
            assert_eq!(refused(key, "{}").code(), "validation");
        }
        let long = json!({ "name": "n".repeat(101) }).to_string();
        assert_eq!(refused("counter.increment", &long).code(), "validation");
    }

    #[test]
    fn bodies_are_checked() {
        let e = refused("counter.increment", r#"{"name": "a", "by": "two"}"#);
        assert_eq!(e.code(), "validation");
        let e = refused("counter.increment", r#"{"name": "a", "bye": 2}"#);
        assert!(
            e.message().contains("unknown field `bye`"),
            "{}",
            e.message()
        );
        let e = refused("counter.reset", r#"{"name": "a", "expected_version": -1}"#);
        assert_eq!(e.code(), "validation");
        assert_eq!(refused("counter.nope", "{}").code(), "unknown_routing_key");
    }
}
