//! JSON Schemas of the command bodies, published in the manifest: the host
//! checks every body against them before the handler runs, and the gateway
//! lists them. The typed bodies in `bodies.rs` and their checks stay the
//! last word (rules a schema cannot say); the limits here are the same
//! constants those checks use.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::model::{Energy, MAX_REASON_CHARS};
use crate::quantum;
use crate::validate::{
    DEFAULT_LIMIT, DEFAULT_PRIORITY, MAX_ID_CHARS, MAX_LIMIT, MAX_NOTES_CHARS, MAX_PRIORITY,
    MAX_REF_BYTES, MAX_TEXT_CHARS, MAX_TITLE_CHARS,
};

/// Every command's schema, as the manifest carries it.
pub(crate) struct Schemas {
    pub(crate) saga_create: String,
    pub(crate) story_create: String,
    pub(crate) task_create: String,
    pub(crate) update: String,
    /// A command naming one thread: `thread.start` and its siblings.
    pub(crate) target: String,
    pub(crate) block: String,
    pub(crate) delete: String,
    /// `thread.get` and `thread.sprint.get`.
    pub(crate) get: String,
    pub(crate) list: String,
    pub(crate) expire: String,
    pub(crate) sprint_create: String,
    pub(crate) sprint_update: String,
    /// `thread.sprint.add_story` and `thread.sprint.remove_story`.
    pub(crate) sprint_story: String,
    pub(crate) sprint_close: String,
    pub(crate) restore: String,
    pub(crate) empty: String,
}

/// The schemas, built once: the router that publishes them is built for
/// every command.
pub(crate) fn all() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(Schemas::build)
}

impl Schemas {
    fn build() -> Self {
        let work = |required: &[&str]| {
            let mut p = new_thread();
            p.insert("saga_id".into(), reference());
            p.insert("energy".into(), energy());
            object(required, p)
        };
        let update = props(json!({
            "id": reference(),
            "title": title(),
            "notes": notes(),
            "priority": priority(),
            "quantum": {"anyOf": [
                quantum(),
                {"type": "null", "description": "follow the saga's quantum again (or the default)"},
            ]},
            "energy": energy(),
            "expected_version": version(),
        }));
        let mut update = object(&["id"], update);
        update.insert("minProperties".into(), json!(2));
        let mut sprint_update = object(
            &["id"],
            props(json!({
                "id": reference(),
                "title": title(),
                "goal": notes(),
                "expected_version": version(),
            })),
        );
        sprint_update.insert("minProperties".into(), json!(2));
        Self {
            saga_create: text(object(&["title"], new_thread())),
            story_create: text(work(&["saga_id", "title"])),
            task_create: text(work(&["title"])),
            update: text(update),
            target: text(object(
                &["id"],
                props(json!({"id": reference(), "expected_version": version()})),
            )),
            block: text(object(
                &["id", "reason"],
                props(json!({
                    "id": reference(),
                    "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS},
                    "expected_version": version(),
                })),
            )),
            delete: text(object(
                &["id"],
                props(json!({
                    "id": reference(),
                    "cascade": {"type": "boolean", "default": false},
                    "expected_version": version(),
                })),
            )),
            get: text(object(&["id"], props(json!({"id": reference()})))),
            list: text(object(
                &[],
                props(json!({
                    "text": {"type": "string", "maxLength": MAX_TEXT_CHARS},
                    "kind": {"enum": ["saga", "story", "task"]},
                    "state": {"enum": ["active", "ready", "running", "parked", "blocked", "done"]},
                    "archived": {"enum": [false, true, "any"], "default": false},
                    "saga_id": reference(),
                    "sprint_id": reference(),
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                    "after": reference(),
                })),
            )),
            expire: text(object(
                &["id", "run"],
                props(json!({"id": reference(), "run": {"type": "integer", "minimum": 1}})),
            )),
            sprint_create: text(object(
                &["title"],
                props(json!({"id": id(), "title": title(), "goal": notes()})),
            )),
            sprint_update: text(sprint_update),
            sprint_story: text(object(
                &["sprint_id", "story_id"],
                props(json!({
                    "sprint_id": reference(),
                    "story_id": reference(),
                    "expected_version": version(),
                })),
            )),
            sprint_close: text(object(
                &["id"],
                props(json!({
                    "id": reference(),
                    "next_sprint_id": reference(),
                    "expected_version": version(),
                })),
            )),
            restore: text(object(
                &["id", "state"],
                props(json!({
                    "id": reference(),
                    "state": {"enum": ["ready", "running", "parked", "blocked", "done"]},
                    "sprint_id": {"anyOf": [reference(), {"type": "null"}]},
                    "archived": {"type": "boolean", "default": false},
                    "blocked_reason": {"anyOf": [
                        {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS},
                        {"type": "null"},
                    ]},
                    "quantum_ends_at": {"anyOf": [{"type": "string", "maxLength": 64}, {"type": "null"}]},
                })),
            )),
            empty: text(object(&[], Map::new())),
        }
    }
}

/// An object with these properties and no others, the `required` ones
/// present.
fn object(required: &[&str], properties: Map<String, Value>) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("type".into(), json!("object"));
    o.insert("additionalProperties".into(), json!(false));
    if !required.is_empty() {
        o.insert("required".into(), json!(required));
    }
    if !properties.is_empty() {
        o.insert("properties".into(), Value::Object(properties));
    }
    o
}

fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn text(schema: Map<String, Value>) -> String {
    Value::Object(schema).to_string()
}

/// What every new thread is made of (a saga; stories and tasks add more).
fn new_thread() -> Map<String, Value> {
    props(json!({
        "id": id(),
        "title": title(),
        "notes": notes(),
        "priority": priority(),
        "quantum": quantum(),
    }))
}

/// A client-chosen id of a new document.
fn id() -> Value {
    json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}$")})
}

/// An id naming an existing document.
fn reference() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_REF_BYTES})
}

fn title() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS})
}

fn notes() -> Value {
    json!({"type": "string", "maxLength": MAX_NOTES_CHARS})
}

fn priority() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_PRIORITY, "default": DEFAULT_PRIORITY})
}

fn quantum() -> Value {
    json!({
        "type": "string",
        "pattern": "^ *([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)? *$",
        "default": quantum::DEFAULT,
        "examples": ["25m", "1h", "1h30m", "300ms"],
    })
}

fn energy() -> Value {
    json!({"enum": ["deep", "moderate", "light"], "default": Energy::default()})
}

fn version() -> Value {
    json!({"type": "integer", "minimum": 0})
}
