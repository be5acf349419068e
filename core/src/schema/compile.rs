//! Schema → [`Node`]: every keyword of the subset, and the refusal of any
//! other.

use serde_json::{Number, Value};

use super::json::{escape, is_integer};
use super::node::{Node, Rules, Type};
use super::pattern::Pattern;
use super::SchemaError;

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

fn refuse(at: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn node(schema: &Value, at: &str) -> Result<Node, SchemaError> {
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
