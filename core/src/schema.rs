//! Command bodies checked against the JSON Schema their handler's manifest
//! declares: compiled once when the handler loads, checked by the host
//! before a command reaches the guest.
//!
//! The subset is JSON Schema 2020-12 restricted to these keywords; a schema
//! using any other is refused when it is compiled (so a typo such as
//! `minlength` is a load error, not a check silently skipped):
//!
//! * `type`: one name or a list of `null`, `boolean`, `object`, `array`,
//!   `number`, `integer`, `string`;
//! * `enum`, `const` (numbers compare by value: `1` equals `1.0`);
//! * strings: `minLength`, `maxLength` (in Unicode code points), `pattern`
//!   (the ECMA-262 subset of [`pattern`], not implicitly anchored);
//! * numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`;
//! * arrays: `items` (one schema for every item), `minItems`, `maxItems`;
//! * objects: `properties`, `required`, `additionalProperties` (a boolean
//!   or a schema), `minProperties`, `maxProperties`;
//! * `allOf`, `anyOf`, `oneOf`; `true` and `false` as schemas;
//! * annotations, accepted and ignored: `$schema`, `$id`, `$comment`,
//!   `title`, `description`, `default`, `examples`, `deprecated`,
//!   `readOnly`, `writeOnly`, and any keyword starting with `x-`.
//!
//! Not supported, hence refused: `$ref`/`$defs`, `format` (an annotation
//! only in 2020-12: refusing it says so instead of seeming to check it),
//! `multipleOf`, `uniqueItems` (quadratic in the body), `prefixItems`,
//! `contains`, `patternProperties`, `propertyNames`, `dependent*`,
//! `if`/`then`/`else`, `not`, `unevaluated*`.
//!
//! Integers follow 2020-12: a number is an `integer` when its value is
//! whole, however it is written, so `1.0` and `1e2` are integers and `1.5`
//! is not. Bounds compare exactly between integers and as `f64` otherwise.
//!
//! A failed check lists what is wrong (up to [`MAX_VIOLATIONS`]), each with
//! the JSON pointer of the offending value in the body and a message naming
//! it as the SDKs always have (`` `body.tags[0]` must be at most 32
//! characters``); the host answers with the error event of code
//! [`VALIDATION`].

pub mod pattern;

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::envelope::Envelope;
use crate::error::{Code, ErrorBody};
use crate::host_info::CommandInfo;
use pattern::Pattern;

/// The error code of a body that does not match its schema (the code the
/// SDKs have always used for a bad body).
pub const VALIDATION: &str = "validation";

/// The most problems one check reports.
pub const MAX_VIOLATIONS: usize = 20;

/// Keywords that describe and constrain nothing.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Why a schema cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at `#{at}`: {reason}")]
pub struct SchemaError {
    /// JSON pointer of the offending part of the schema (`""` for its root).
    pub at: String,
    /// What is wrong, phrased for the schema's author.
    pub reason: String,
}

fn refuse(at: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

/// Why a manifest's body schemas cannot be compiled: names the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body schema of {routing_key:?} cannot be checked by the host, {error}")]
pub struct BodySchemaError {
    /// The command whose schema failed.
    pub routing_key: String,
    /// What is wrong with it.
    pub error: SchemaError,
}

/// One thing wrong with a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer of the offending value in the body (`""` is the body).
    pub path: String,
    /// What is wrong, naming the value (`` `body.name` ``).
    pub message: String,
}

/// What is wrong with a body: at least one [`Violation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// The error body the host answers with: code [`VALIDATION`], the first
    /// problem as the message, all of them in `context.errors`.
    pub fn into_error_body(self) -> ErrorBody {
        let mut message = self
            .0
            .first()
            .map_or_else(|| "invalid body".to_owned(), |v| v.message.clone());
        if self.0.len() > 1 {
            message.push_str(&format!(
                " (and {} more: see `context.errors`)",
                self.0.len() - 1
            ));
        }
        ErrorBody {
            code: Code::Handler(VALIDATION.to_owned()),
            message,
            context: serde_json::json!({ "errors": self.0 }),
            command: None,
        }
    }
}

/// A compiled body schema.
#[derive(Debug, Clone)]
pub struct Schema(Node);

impl Schema {
    /// Compiles `schema`, or says which part is outside the subset.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        Ok(Schema(node(schema, "")?))
    }

    /// Checks a parsed body.
    pub fn check(&self, body: &Value) -> Result<(), Violations> {
        let mut checker = Checker::default();
        checker.check(&self.0, body);
        if checker.out.is_empty() {
            Ok(())
        } else {
            Err(Violations(checker.out))
        }
    }

    /// Checks a body given as JSON text; blank text counts as `{}`, as in
    /// the SDKs.
    pub fn check_json(&self, text: &str) -> Result<(), Violations> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        match serde_json::from_str::<Value>(text) {
            Ok(body) => self.check(&body),
            Err(e) => Err(Violations(vec![Violation {
                path: String::new(),
                message: format!("invalid body: {e}"),
            }])),
        }
    }
}

/// The compiled schemas of one handler's commands, by routing key.
#[derive(Debug, Clone, Default)]
pub struct BodySchemas(HashMap<String, Schema>);

impl BodySchemas {
    /// Compiles every declared `body_schema`; the first that cannot be
    /// compiled fails the whole manifest.
    pub fn compile(commands: &[CommandInfo]) -> Result<Self, BodySchemaError> {
        let mut schemas = HashMap::new();
        for c in commands {
            if let Some(schema) = &c.body_schema {
                let compiled = Schema::compile(schema).map_err(|error| BodySchemaError {
                    routing_key: c.routing_key.clone(),
                    error,
                })?;
                schemas.insert(c.routing_key.clone(), compiled);
            }
        }
        Ok(BodySchemas(schemas))
    }

    /// The schema of the command `routing_key`, if it declares one.
    pub fn get(&self, routing_key: &str) -> Option<&Schema> {
        self.0.get(routing_key)
    }

    /// Checks `cmd`'s body against its command's schema (a command without
    /// one always passes); the error is the body of the `validation` error
    /// event.
    pub fn check(&self, cmd: &Envelope) -> Result<(), ErrorBody> {
        match self.get(&cmd.meta.routing_key) {
            Some(schema) => schema
                .check_json(cmd.body.get())
                .map_err(Violations::into_error_body),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Any,
    Never,
    Rules(Box<Rules>),
}

#[derive(Debug, Clone, Default)]
struct Rules {
    /// Empty: any type.
    types: Vec<Type>,
    allowed: Option<Vec<Value>>,
    constant: Option<Value>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Pattern>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    additional: Option<Node>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    Integer,
    String,
}

impl Type {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Type::Null,
            "boolean" => Type::Boolean,
            "object" => Type::Object,
            "array" => Type::Array,
            "number" => Type::Number,
            "integer" => Type::Integer,
            "string" => Type::String,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Object => "object",
            Type::Array => "array",
            Type::Number => "number",
            Type::Integer => "integer",
            Type::String => "string",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match (self, v) {
            (Type::Null, Value::Null)
            | (Type::Boolean, Value::Bool(_))
            | (Type::Object, Value::Object(_))
            | (Type::Array, Value::Array(_))
            | (Type::Number, Value::Number(_))
            | (Type::String, Value::String(_)) => true,
            (Type::Integer, Value::Number(n)) => is_integer(n),
            _ => false,
        }
    }
}

/// 2020-12: any number with a zero fractional part is an integer.
fn is_integer(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn node(schema: &Value, at: &str) -> Result<Node, SchemaError> {
    let map = match schema {
        Value::Bool(true) => return Ok(Node::Any),
        Value::Bool(false) => return Ok(Node::Never),
        Value::Object(map) => map,
        _ => return Err(refuse(at, "a schema must be an object or a boolean")),
    };
    let mut r = Rules::default();
    for (key, value) in map {
        let here = format!("{at}/{}", escape(key));
        let here = here.as_str();
        match key.as_str() {
            "type" => r.types = types(value, here)?,
            "enum" => match value {
                Value::Array(values) => r.allowed = Some(values.clone()),
                _ => return Err(refuse(here, "`enum` must be an array")),
            },
            "const" => r.constant = Some(value.clone()),
            "minLength" => r.min_length = Some(count(value, here)?),
            "maxLength" => r.max_length = Some(count(value, here)?),
            "pattern" => {
                let source = value
                    .as_str()
                    .ok_or_else(|| refuse(here, "`pattern` must be a string"))?;
                r.pattern = Some(Pattern::new(source).map_err(|reason| {
                    refuse(here, format!("the pattern {source:?} is not supported: {reason}"))
                })?);
            }
            "minimum" => r.minimum = Some(number(value, here)?),
            "maximum" => r.maximum = Some(number(value, here)?),
            "exclusiveMinimum" => r.exclusive_minimum = Some(number(value, here)?),
            "exclusiveMaximum" => r.exclusive_maximum = Some(number(value, here)?),
            "items" => {
                if value.is_array() {
                    return Err(refuse(
                        here,
                        "the array form of `items` is not supported: give one schema for every item",
                    ));
                }
                r.items = Some(node(value, here)?);
            }
            "minItems" => r.min_items = Some(count(value, here)?),
            "maxItems" => r.max_items = Some(count(value, here)?),
            "properties" => {
                let props = value
                    .as_object()
                    .ok_or_else(|| refuse(here, "`properties` must be an object"))?;
                for (name, sub) in props {
                    let sub = node(sub, &format!("{here}/{}", escape(name)))?;
                    r.properties.push((name.clone(), sub));
                }
            }
            "required" => r.required = names(value, here)?,
            "additionalProperties" => r.additional = Some(node(value, here)?),
            "minProperties" => r.min_properties = Some(count(value, here)?),
            "maxProperties" => r.max_properties = Some(count(value, here)?),
            "allOf" => r.all_of = list(value, here)?,
            "anyOf" => r.any_of = list(value, here)?,
            "oneOf" => r.one_of = list(value, here)?,
            k if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
            k => {
                return Err(refuse(
                    here,
                    format!(
                        "the keyword `{k}` is not supported (see the subset in the host's documentation: \
                         type, enum, const, minLength, maxLength, pattern, minimum, maximum, \
                         exclusiveMinimum, exclusiveMaximum, items, minItems, maxItems, properties, \
                         required, additionalProperties, minProperties, maxProperties, allOf, anyOf, \
                         oneOf, and annotations)"
                    ),
                ))
            }
        }
    }
    Ok(Node::Rules(Box::new(r)))
}

fn types(value: &Value, at: &str) -> Result<Vec<Type>, SchemaError> {
    let one = |v: &Value| {
        v.as_str()
            .and_then(Type::parse)
            .ok_or_else(|| refuse(at, format!("{v} is not a JSON Schema type")))
    };
    match value {
        Value::Array(names) if !names.is_empty() => names.iter().map(one).collect(),
        Value::Array(_) => Err(refuse(at, "`type` must name at least one type")),
        v => Ok(vec![one(v)?]),
    }
}

fn count(value: &Value, at: &str) -> Result<u64, SchemaError> {
    match value {
        Value::Number(n) if is_integer(n) && n.as_f64().is_some_and(|f| f >= 0.0) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f as u64))
            .ok_or_else(|| refuse(at, "must be a non-negative integer")),
        _ => Err(refuse(at, "must be a non-negative integer")),
    }
}

fn number(value: &Value, at: &str) -> Result<Number, SchemaError> {
    value
        .as_number()
        .cloned()
        .ok_or_else(|| refuse(at, "must be a number"))
}

fn names(value: &Value, at: &str) -> Result<Vec<String>, SchemaError> {
    value
        .as_array()
        .and_then(|names| {
            names
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| refuse(at, "`required` must be an array of strings"))
}

fn list(value: &Value, at: &str) -> Result<Vec<Node>, SchemaError> {
    match value {
        Value::Array(schemas) if !schemas.is_empty() => schemas
            .iter()
            .enumerate()
            .map(|(i, s)| node(s, &format!("{at}/{i}")))
            .collect(),
        _ => Err(refuse(at, "must be a non-empty array of schemas")),
    }
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Default)]
struct Checker<'a> {
    path: Vec<Seg<'a>>,
    out: Vec<Violation>,
}

impl<'a> Checker<'a> {
    fn full(&self) -> bool {
        self.out.len() >= MAX_VIOLATIONS
    }

    /// `` `body.tags[0]` ``: how the SDKs have always named a value.
    fn name(&self) -> String {
        let mut s = String::from("`body");
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s.push('`');
        s
    }

    fn pointer(&self) -> String {
        self.path
            .iter()
            .map(|seg| match seg {
                Seg::Key(k) => format!("/{}", escape(k)),
                Seg::Index(i) => format!("/{i}"),
            })
            .collect()
    }

    fn fail(&mut self, what: impl std::fmt::Display) {
        if !self.full() {
            let message = format!("{} {what}", self.name());
            self.out.push(Violation {
                path: self.pointer(),
                message,
            });
        }
    }

    /// The violations `node` finds in `v`, without reporting them.
    fn trial(&self, node: &Node, v: &'a Value) -> Vec<Violation> {
        let mut sub = Checker {
            path: self.path.clone(),
            out: Vec::new(),
        };
        sub.check(node, v);
        sub.out
    }

    fn check(&mut self, node: &Node, v: &'a Value) {
        match node {
            Node::Any => {}
            Node::Never => self.fail("is not allowed"),
            Node::Rules(r) => self.rules(r, v),
        }
    }

    fn rules(&mut self, r: &Rules, v: &'a Value) {
        if !r.types.is_empty() && !r.types.iter().any(|t| t.accepts(v)) {
            let names: Vec<_> = r.types.iter().map(|t| t.name()).collect();
            self.fail(format_args!(
                "must be of type {}, not {}",
                names.join(" or "),
                describe(v)
            ));
            return;
        }
        if let Some(allowed) = &r.allowed {
            if !allowed.iter().any(|a| json_eq(a, v)) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                self.fail(format_args!("must be one of {}", list.join(", ")));
            }
        }
        if let Some(c) = &r.constant {
            if !json_eq(c, v) {
                self.fail(format_args!("must be {c}"));
            }
        }
        match v {
            Value::String(s) => self.string(r, s),
            Value::Number(n) => self.number(r, n),
            Value::Array(items) => self.array(r, items),
            Value::Object(map) => self.object(r, map),
            Value::Null | Value::Bool(_) => {}
        }
        for sub in &r.all_of {
            self.check(sub, v);
        }
        if !r.any_of.is_empty() {
            let failures: Vec<_> = r.any_of.iter().map(|s| self.trial(s, v)).collect();
            if failures.iter().all(|f| !f.is_empty()) {
                self.none_matched(&failures);
            }
        }
        if !r.one_of.is_empty() {
            let failures: Vec<_> = r.one_of.iter().map(|s| self.trial(s, v)).collect();
            match failures.iter().filter(|f| f.is_empty()).count() {
                0 => self.none_matched(&failures),
                1 => {}
                n => self.fail(format_args!(
                    "matches {n} of the allowed forms, and must match exactly one"
                )),
            }
        }
    }

    fn none_matched(&mut self, failures: &[Vec<Violation>]) {
        let reasons: Vec<&str> = failures
            .iter()
            .filter_map(|f| f.first().map(|v| v.message.as_str()))
            .collect();
        self.fail(format_args!(
            "matches none of the allowed forms: {}",
            reasons.join("; or ")
        ));
    }

    fn string(&mut self, r: &Rules, s: &str) {
        let chars = s.chars().count() as u64;
        if let Some(min) = r.min_length {
            if chars < min {
                self.fail(format_args!("must be at least {min} characters"));
            }
        }
        if let Some(max) = r.max_length {
            if chars > max {
                self.fail(format_args!("must be at most {max} characters"));
            }
        }
        if let Some(p) = &r.pattern {
            if !p.is_match(s) {
                self.fail(format_args!("must match the pattern `{}`", p.source()));
            }
        }
    }

    fn number(&mut self, r: &Rules, n: &Number) {
        let bounds = [
            (&r.minimum, Ordering::Less, "at least", false),
            (&r.exclusive_minimum, Ordering::Less, "greater than", true),
            (&r.maximum, Ordering::Greater, "at most", false),
            (&r.exclusive_maximum, Ordering::Greater, "less than", true),
        ];
        for (bound, wrong, says, exclusive) in bounds {
            if let Some(b) = bound {
                let ord = compare(n, b);
                if ord == Some(wrong) || (exclusive && ord == Some(Ordering::Equal)) {
                    self.fail(format_args!("must be {says} {b}"));
                }
            }
        }
    }

    fn array(&mut self, r: &Rules, items: &'a [Value]) {
        let len = items.len() as u64;
        if let Some(min) = r.min_items {
            if len < min {
                self.fail(format_args!("must have at least {min} items"));
            }
        }
        if let Some(max) = r.max_items {
            if len > max {
                self.fail(format_args!("must have at most {max} items"));
            }
        }
        if let Some(item) = &r.items {
            for (i, v) in items.iter().enumerate() {
                if self.full() {
                    return;
                }
                self.path.push(Seg::Index(i));
                self.check(item, v);
                self.path.pop();
            }
        }
    }

    fn object(&mut self, r: &Rules, map: &'a Map<String, Value>) {
        for name in &r.required {
            if !map.contains_key(name) {
                self.fail(format_args!("is missing the field `{name}`"));
            }
        }
        let len = map.len() as u64;
        if let Some(min) = r.min_properties {
            if len < min {
                self.fail(format_args!("must have at least {min} fields"));
            }
        }
        if let Some(max) = r.max_properties {
            if len > max {
                self.fail(format_args!("must have at most {max} fields"));
            }
        }
        if let Some(additional) = &r.additional {
            for (name, v) in map {
                if self.full() {
                    return;
                }
                if r.properties.iter().any(|(p, _)| p == name) {
                    continue;
                }
                if matches!(additional, Node::Never) {
                    self.fail(format_args!("has an unknown field `{name}`"));
                } else {
                    self.path.push(Seg::Key(name));
                    self.check(additional, v);
                    self.path.pop();
                }
            }
        }
        for (name, sub) in &r.properties {
            if let Some((key, v)) = map.get_key_value(name) {
                if self.full() {
                    return;
                }
                self.path.push(Seg::Key(key));
                self.check(sub, v);
                self.path.pop();
            }
        }
    }
}

/// A value as a type error names it: scalars as written (shortened),
/// containers by kind.
fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        v => {
            let text = v.to_string();
            if text.chars().count() > 40 {
                format!("{}…", text.chars().take(40).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Exact for integers, `f64` otherwise.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    let exact = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality, numbers by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
