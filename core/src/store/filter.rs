//! The JSON filter language of `list`, shared by every store.
//!
//! A filter is a JSON object; `{}` matches every document. Each key is a
//! field path (`a.b` reaches into nested objects) and each value either a
//! JSON value the field must equal, or an operator object: `{"$ne": v}`,
//! `{"$in": [v, …]}`, `{"$exists": bool}`, `{"$contains": "text"}`
//! (case-insensitive substring of a string field), and `$lt`, `$lte`,
//! `$gt`, `$gte` (numbers with numbers, strings with strings). The key `"$limit"` caps
//! the number of results. These are the subset of MongoDB's query language
//! that every store can answer the same way.

use serde_json::{Map, Value};

use super::StoreError;

/// Most documents one `list` returns when the filter sets no `$limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest `$limit` accepted.
pub const MAX_LIMIT: usize = 10_000;
/// Most bytes of JSON one `list` returns unless the caller sets its own
/// bound ([`Filter::with_max_bytes`]); more is an error, not a cut.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    conditions: Vec<(Vec<String>, Condition)>,
    limit: usize,
    max_bytes: usize,
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal to the value.
    Eq(Value),
    /// Not equal to the value (a missing field is not equal).
    Ne(Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    /// The field is present (true) or absent (false).
    Exists(bool),
    /// A string field containing this text, ignoring case (stored lowercase).
    Contains(String),
    /// Ordered against the value: numbers with numbers, strings with strings.
    Cmp(std::cmp::Ordering, bool, Value),
}

impl Filter {
    /// A filter matching everything.
    pub fn all() -> Self {
        Filter {
            conditions: Vec::new(),
            limit: DEFAULT_LIMIT,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Parses a filter from JSON text.
    pub fn parse(json: &str) -> Result<Self, StoreError> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let value: Value = serde_json::from_str(json)
            .map_err(|e| StoreError::Invalid(format!("filter is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(StoreError::Invalid(
                "a filter must be a JSON object, like {\"state\": \"ready\"}".to_owned(),
            ));
        };
        Self::from_map(map)
    }

    fn from_map(map: Map<String, Value>) -> Result<Self, StoreError> {
        let mut filter = Filter::all();
        for (key, value) in map {
            if key == "$limit" {
                let n = value.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                    StoreError::Invalid("$limit must be a positive integer".to_owned())
                })?;
                filter.limit = usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
                continue;
            }
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            if path.iter().any(|p| p.is_empty() || p.starts_with('$')) {
                return Err(StoreError::Invalid(format!(
                    "filter field {key:?} must be a dot-separated field path"
                )));
            }
            filter
                .conditions
                .push((path, Condition::parse(&key, value)?));
        }
        Ok(filter)
    }

    /// The conditions, each with its field path.
    pub fn conditions(&self) -> &[(Vec<String>, Condition)] {
        &self.conditions
    }

    /// Most documents to return.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Most bytes of JSON to return: a `list` that matches more fails.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// This filter returning at most `limit` documents (at least one): for
    /// the host, which may read past a guest's [`MAX_LIMIT`] to make up for
    /// documents it will drop.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// This filter with a bound on the bytes its `list` may return (the
    /// host's read budget; a guest cannot set it).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Whether a document (as a JSON value) matches every condition.
    pub fn matches(&self, doc: &Value) -> bool {
        self.conditions.iter().all(|(path, cond)| {
            let field = path.iter().try_fold(doc, |v, seg| v.get(seg.as_str()));
            cond.matches(field)
        })
    }

    /// Whether a document given as JSON text matches.
    pub fn matches_json(&self, json: &str) -> bool {
        if self.conditions.is_empty() {
            return true;
        }
        serde_json::from_str::<Value>(json).is_ok_and(|doc| self.matches(&doc))
    }
}

impl Condition {
    fn parse(key: &str, value: Value) -> Result<Self, StoreError> {
        let Value::Object(ops) = value else {
            return Ok(Condition::Eq(value));
        };
        if !ops.keys().any(|k| k.starts_with('$')) {
            return Ok(Condition::Eq(Value::Object(ops)));
        }
        if ops.len() != 1 {
            return Err(StoreError::Invalid(format!(
                "filter field {key:?}: use one operator per field"
            )));
        }
        let Some((op, arg)) = ops.into_iter().next() else {
            return Err(StoreError::Invalid(format!(
                "filter field {key:?} is empty"
            )));
        };
        let bad = |what: &str| StoreError::Invalid(format!("filter field {key:?}: {op} {what}"));
        match op.as_str() {
            "$eq" => Ok(Condition::Eq(arg)),
            "$ne" => Ok(Condition::Ne(arg)),
            "$in" => match arg {
                Value::Array(values) => Ok(Condition::In(values)),
                _ => Err(bad("needs an array")),
            },
            "$exists" => arg
                .as_bool()
                .map(Condition::Exists)
                .ok_or_else(|| bad("needs true or false")),
            "$lt" | "$lte" | "$gt" | "$gte" => {
                if !(arg.is_number() || arg.is_string()) {
                    return Err(bad("needs a number or a string"));
                }
                let (ord, or_equal) = match op.as_str() {
                    "$lt" => (std::cmp::Ordering::Less, false),
                    "$lte" => (std::cmp::Ordering::Less, true),
                    "$gt" => (std::cmp::Ordering::Greater, false),
                    _ => (std::cmp::Ordering::Greater, true),
                };
                Ok(Condition::Cmp(ord, or_equal, arg))
            }
            "$contains" => arg
                .as_str()
                .map(|s| Condition::Contains(s.to_lowercase()))
                .ok_or_else(|| bad("needs a string")),
            _ => Err(StoreError::Invalid(format!(
                "filter field {key:?}: unknown operator {op}; use $eq, $ne, $in, $exists, $contains, $lt, $lte, $gt or $gte"
            ))),
        }
    }

    /// Whether a field (absent: `None`) satisfies the condition.
    pub fn matches(&self, field: Option<&Value>) -> bool {
        match self {
            Condition::Eq(v) => field == Some(v),
            Condition::Ne(v) => field != Some(v),
            Condition::In(vs) => field.is_some_and(|f| vs.contains(f)),
            Condition::Exists(want) => field.is_some() == *want,
            Condition::Contains(text) => field
                .and_then(Value::as_str)
                .is_some_and(|s| s.to_lowercase().contains(text)),
            Condition::Cmp(want, or_equal, v) => field
                .and_then(|f| compare(f, v))
                .is_some_and(|o| o == *want || (*or_equal && o == std::cmp::Ordering::Equal)),
        }
    }
}

/// Orders two JSON values of the same kind (numbers or strings).
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(text: &str) -> Filter {
        match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn operators() {
        let doc =
            json!({"kind": "story", "n": 3, "meta": {"tag": "x"}, "title": "Write the README"});
        assert!(f("{}").matches(&doc));
        assert!(f(r#"{"kind":"story"}"#).matches(&doc));
        assert!(!f(r#"{"kind":"saga"}"#).matches(&doc));
        assert!(f(r#"{"meta.tag":"x"}"#).matches(&doc));
        assert!(f(r#"{"kind":{"$ne":"saga"}}"#).matches(&doc));
        assert!(f(r#"{"missing":{"$ne":1}}"#).matches(&doc));
        assert!(f(r#"{"n":{"$in":[1,3]}}"#).matches(&doc));
        assert!(!f(r#"{"n":{"$in":[]}}"#).matches(&doc));
        assert!(f(r#"{"missing":{"$exists":false}}"#).matches(&doc));
        assert!(f(r#"{"title":{"$contains":"readme"}}"#).matches(&doc));
        assert!(!f(r#"{"n":{"$contains":"3"}}"#).matches(&doc));
        assert!(f(r#"{"meta":{"tag":"x"}}"#).matches(&doc));
        assert!(f(r#"{"n":{"$lte":3}}"#).matches(&doc));
        assert!(!f(r#"{"n":{"$lt":3}}"#).matches(&doc));
        assert!(f(r#"{"n":{"$gt":2.5}}"#).matches(&doc));
        assert!(
            !f(r#"{"n":{"$gte":"3"}}"#).matches(&doc),
            "a number is not ordered against a string"
        );
        assert!(f(r#"{"kind":{"$gte":"saga"}}"#).matches(&doc));
        assert!(!f(r#"{"missing":{"$lt":1}}"#).matches(&doc));
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        for bad in [
            "[]",
            "nope",
            r#"{"a":{"$regex":"x"}}"#,
            r#"{"$limit":0}"#,
            r#"{"a..b":1}"#,
            r#"{"a":{"$in":1}}"#,
            r#"{"a":{"$ne":1,"$eq":2}}"#,
            r#"{"a":{"$lt":[1]}}"#,
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn limit() {
        assert_eq!(f("{}").limit(), DEFAULT_LIMIT);
        assert_eq!(f(r#"{"$limit":5}"#).limit(), 5);
        assert_eq!(f(r#"{"$limit":99999999}"#).limit(), MAX_LIMIT);
    }
}
