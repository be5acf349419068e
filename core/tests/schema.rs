//! The body-schema checker against the shared vectors
//! (`schema-vectors.json`), and the messages and paths clients see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parallel_you_core::envelope::{Envelope, Kind, Meta};
use parallel_you_core::host_info::CommandInfo;
use parallel_you_core::schema::{BodySchemas, Schema, Violation, MAX_VIOLATIONS, VALIDATION};
use serde_json::{json, Value};

const VECTORS: &str = include_str!("schema-vectors.json");

#[test]
fn the_shared_vectors() {
    let groups: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    let mut checked = 0;
    for group in &groups {
        let what = group["description"].as_str().unwrap();
        let compiled = Schema::compile(&group["schema"]);
        if let Some(says) = group.get("refused") {
            let err = compiled.expect_err(what).to_string();
            assert!(err.contains(says.as_str().unwrap()), "{what}: {err}");
            continue;
        }
        let schema = compiled.unwrap_or_else(|e| panic!("{what}: {e}"));
        for case in group["cases"].as_array().unwrap() {
            let valid = case["valid"].as_bool().unwrap();
            let result = schema.check(&case["body"]);
            assert_eq!(
                result.is_ok(),
                valid,
                "{what}: {} gave {result:?}",
                case["body"]
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} cases");
}

fn problems(schema: Value, body: Value) -> Vec<Violation> {
    Schema::compile(&schema)
        .unwrap()
        .check(&body)
        .unwrap_err()
        .0
}

fn one(schema: Value, body: Value) -> (String, String) {
    let mut all = problems(schema, body);
    assert_eq!(all.len(), 1, "{all:?}");
    let v = all.remove(0);
    (v.path, v.message)
}

#[test]
fn messages_name_the_value_as_the_sdks_did() {
    let notes = json!({
        "type": "object", "additionalProperties": false, "required": ["thread_id", "text"],
        "properties": {
            "thread_id": {"type": "string"},
            "text": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
        },
    });
    let cases = [
        (
            json!({"text": "x"}),
            "",
            "`body` is missing the field `thread_id`",
        ),
        (
            json!({"thread_id": "t", "text": 7}),
            "/text",
            "`body.text` must be of type string, not 7",
        ),
        (
            json!({"thread_id": "t", "text": "x", "colour": "red"}),
            "",
            "`body` has an unknown field `colour`",
        ),
        (
            json!({"thread_id": "t", "text": "x", "tags": ["ok", "toolong"]}),
            "/tags/1",
            "`body.tags[1]` must be at most 3 characters",
        ),
        (
            json!({"thread_id": "t", "text": "x", "tags": ["a", "b", "c"]}),
            "/tags",
            "`body.tags` must have at most 2 items",
        ),
        (
            json!([1, 2]),
            "",
            "`body` must be of type object, not an array",
        ),
    ];
    for (body, path, message) in cases {
        assert_eq!(
            one(notes.clone(), body.clone()),
            (path.to_owned(), message.to_owned()),
            "{body}"
        );
    }
    let stats = json!({"properties": {
        "band": {"type": "string", "enum": ["deep", "light"]},
        "minutes": {"type": "integer", "minimum": 1},
        "id": {"pattern": "^[a-z]+$"},
        "q": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 1}]},
    }});
    for (body, message) in [
        (json!({"band": "x"}), r#"`body.band` must be one of "deep", "light""#),
        (json!({"minutes": 0}), "`body.minutes` must be at least 1"),
        (json!({"minutes": 1.5}), "`body.minutes` must be of type integer, not 1.5"),
        (json!({"id": "A"}), "`body.id` must match the pattern `^[a-z]+$`"),
        (
            json!({"q": "ab"}),
            "`body.q` matches none of the allowed forms: `body.q` must be of type null, not \"ab\"; or `body.q` must be at most 1 characters",
        ),
    ] {
        assert_eq!(one(stats.clone(), body.clone()).1, message, "{body}");
    }
}

#[test]
fn pointers_escape_keys() {
    let schema = json!({"properties": {"a/b~c": {"type": "string"}}});
    assert_eq!(one(schema, json!({"a/b~c": 1})).0, "/a~1b~0c");
}

#[test]
fn every_problem_is_listed_up_to_a_cap() {
    let schema = json!({"type": "array", "items": {"type": "string"}});
    let all = problems(schema.clone(), json!([1, 2, 3]));
    let paths: Vec<_> = all.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["/0", "/1", "/2"]);
    let many: Vec<i32> = (0..1000).collect();
    assert_eq!(problems(schema, json!(many)).len(), MAX_VIOLATIONS);
}

#[test]
fn refused_schemas_say_where() {
    let err =
        Schema::compile(&json!({"properties": {"id": {"type": "string", "pattern": "(?=x)"}}}))
            .unwrap_err();
    assert_eq!(err.at, "/properties/id/pattern");
    assert!(err.reason.contains("lookaround"), "{err}");
}

fn command(key: &str, schema: Option<Value>) -> CommandInfo {
    CommandInfo {
        routing_key: key.to_owned(),
        summary: String::new(),
        body_schema: schema,
        internal: false,
    }
}

fn envelope(key: &str, body: &str) -> Envelope {
    Envelope {
        meta: Meta::new(Kind::Command, key),
        body: serde_json::value::RawValue::from_string(body.to_owned()).unwrap(),
    }
}

#[test]
fn a_manifests_schemas_check_its_commands() {
    let schemas = BodySchemas::compile(&[
        command(
            "d.put",
            Some(json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}})),
        ),
        command("d.any", None),
    ])
    .unwrap();
    assert_eq!(schemas.check(&envelope("d.put", r#"{"n":1.0}"#)), Ok(()));
    assert_eq!(schemas.check(&envelope("d.any", "[1]")), Ok(()));
    assert_eq!(schemas.check(&envelope("d.other", "[1]")), Ok(()));
    let err = schemas
        .check(&envelope("d.put", r#"{"n":"1","m":2}"#))
        .unwrap_err();
    assert_eq!(err.code.as_str(), VALIDATION);
    assert_eq!(err.message, "`body.n` must be of type integer, not \"1\"");
    assert_eq!(
        err.context,
        json!({"errors": [{"path": "/n", "message": "`body.n` must be of type integer, not \"1\""}]})
    );
    let err = schemas.check(&envelope("d.put", "{}")).unwrap_err();
    assert_eq!(err.message, "`body` is missing the field `n`");
    let err = schemas.check(&envelope("d.put", r#"{"n":"a","o":[]}"#));
    assert!(err.is_err());
    let two = BodySchemas::compile(&[command("d.two", Some(json!({"required": ["a", "b"]})))])
        .unwrap()
        .check(&envelope("d.two", "{}"))
        .unwrap_err();
    assert_eq!(
        two.message,
        "`body` is missing the field `a` (and 1 more: see `context.errors`)"
    );
}

#[test]
fn a_schema_outside_the_subset_fails_naming_the_command() {
    let err = BodySchemas::compile(&[
        command("d.ok", Some(json!({"type": "object"}))),
        command("d.bad", Some(json!({"type": "object", "format": "x"}))),
    ])
    .unwrap_err();
    assert_eq!(err.routing_key, "d.bad");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "the body schema of \"d.bad\" cannot be checked by the host, at `#/format`:"
        ),
        "{text}"
    );
}
