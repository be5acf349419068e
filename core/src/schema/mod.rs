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

mod check;
mod commands;
mod compile;
mod json;
mod node;
pub mod pattern;
mod violation;

use serde_json::Value;

pub use commands::{BodySchemaError, BodySchemas};
pub use violation::{Violation, Violations};

/// The error code of a body that does not match its schema (the code the
/// SDKs have always used for a bad body).
pub const VALIDATION: &str = "validation";

/// The most problems one check reports.
pub const MAX_VIOLATIONS: usize = 20;

/// Why a schema cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at `#{at}`: {reason}")]
pub struct SchemaError {
    /// JSON pointer of the offending part of the schema (`""` for its root).
    pub at: String,
    /// What is wrong, phrased for the schema's author.
    pub reason: String,
}

/// A compiled body schema.
#[derive(Debug, Clone)]
pub struct Schema(node::Node);

impl Schema {
    /// Compiles `schema`, or says which part is outside the subset.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        Ok(Schema(compile::node(schema, "")?))
    }

    /// Checks a parsed body.
    pub fn check(&self, body: &Value) -> Result<(), Violations> {
        let out = check::violations(&self.0, body);
        if out.is_empty() {
            Ok(())
        } else {
            Err(Violations(out))
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
