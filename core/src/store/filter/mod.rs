//! The JSON filter language of `list`, shared by every store.
//!
//! A filter is a JSON object; `{}` matches every document. Each key is a
//! field path (`a.b` reaches into nested objects) and each value either a
//! JSON value the field must equal, or an operator object: `{"$ne": v}`,
//! `{"$in": [v, …]}`, `{"$exists": bool}`, `{"$contains": "text"}`
//! (case-insensitive substring of a string field), and `$lt`, `$lte`,
//! `$gt`, `$gte` (numbers with numbers, strings with strings). All of an
//! object's keys must hold; `"$or": [filter, …]` holds when one of its
//! filters does (nested up to [`MAX_DEPTH`] deep).
//!
//! Besides conditions: `"$limit": n` caps the number of results;
//! `"$sort": {"field": 1}` (or `-1`) orders them by a field, ties by id
//! (see [`order`] for how values of different types sort; without
//! `$sort`, by id); `"$after"` continues after a document of an earlier
//! answer: its id (`"$after": "id"`), or with `$sort` its sort field's
//! value and id (`"$after": {"value": v, "id": "id"}`, `value` left out
//! when the field is missing). These are the subset of MongoDB's query
//! language that every store can answer the same way.

pub mod order;

use std::cmp::Ordering;

use serde_json::{Map, Value};

pub use order::{Position, SortKey};

use super::StoreError;
use crate::names::is_token;

/// Most documents one `list` returns when the filter sets no `$limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest `$limit` accepted.
pub const MAX_LIMIT: usize = 10_000;
/// Most bytes of JSON one `list` returns unless the caller sets its own
/// bound ([`Filter::with_max_bytes`]); more is an error, not a cut.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of `$or` inside `$or`.
pub const MAX_DEPTH: usize = 4;
/// Most terms (conditions, `$or` branches and `$in` values) in one filter:
/// each becomes a term of a backend's query.
pub const MAX_TERMS: usize = 1000;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    clauses: Vec<Clause>,
    sort: Option<Sort>,
    after: Option<Position>,
    limit: usize,
    max_bytes: usize,
}

/// One clause of a filter: every clause of a filter must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// A condition on the field at a path.
    Field(Vec<String>, Condition),
    /// At least one of these clause lists holds entirely.
    Or(Vec<Vec<Clause>>),
}

/// The order a `$sort` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field's path, each segment of `[A-Za-z0-9_-]`.
    pub path: Vec<String>,
    /// `-1`: the whole order reversed.
    pub descending: bool,
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
            clauses: Vec::new(),
            sort: None,
            after: None,
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

    fn from_map(mut map: Map<String, Value>) -> Result<Self, StoreError> {
        let mut filter = Filter::all();
        if let Some(value) = map.remove("$limit") {
            let n = value.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                StoreError::Invalid("$limit must be a positive integer".to_owned())
            })?;
            filter.limit = usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        }
        if let Some(value) = map.remove("$sort") {
            filter.sort = Some(parse_sort(value)?);
        }
        if let Some(value) = map.remove("$after") {
            filter.after = Some(parse_after(value, filter.sort.is_some())?);
        }
        let mut terms = 0;
        filter.clauses = parse_clauses(map, 0, &mut terms)?;
        Ok(filter)
    }

    /// The clauses, all of which must hold.
    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// The `$sort`, if any.
    pub fn sort(&self) -> Option<&Sort> {
        self.sort.as_ref()
    }

    /// Where the answer starts: after this position (`$after`).
    pub fn after(&self) -> Option<&Position> {
        self.after.as_ref()
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
        all_hold(&self.clauses, doc)
    }

    /// Whether a document given as JSON text matches.
    pub fn matches_json(&self, json: &str) -> bool {
        if self.clauses.is_empty() {
            return true;
        }
        serde_json::from_str::<Value>(json).is_ok_and(|doc| self.matches(&doc))
    }

    /// A document's position in this filter's order.
    pub fn position(&self, id: &str, doc: &Value) -> Position {
        let key = match &self.sort {
            Some(sort) => SortKey::of(field(doc, &sort.path)),
            None => SortKey::Missing,
        };
        Position {
            key,
            id: id.to_owned(),
        }
    }

    /// The position of a document given as JSON text (unparseable text,
    /// which no store holds, sorts as a missing field).
    pub fn position_json(&self, id: &str, json: &str) -> Position {
        match &self.sort {
            Some(_) => {
                let doc = serde_json::from_str::<Value>(json).unwrap_or(Value::Null);
                self.position(id, &doc)
            }
            None => self.position(id, &Value::Null),
        }
    }

    /// How two positions compare in this filter's order.
    pub fn order(&self, a: &Position, b: &Position) -> Ordering {
        let asc = match &self.sort {
            Some(_) => a.key.cmp(&b.key).then_with(|| a.id.cmp(&b.id)),
            None => a.id.cmp(&b.id),
        };
        match &self.sort {
            Some(sort) if sort.descending => asc.reverse(),
            _ => asc,
        }
    }

    /// Whether a position comes after the filter's `$after` (every
    /// position does without one).
    pub fn is_after_cursor(&self, position: &Position) -> bool {
        self.after
            .as_ref()
            .is_none_or(|after| self.order(after, position) == Ordering::Less)
    }
}

/// The field at `path` in `doc`, walking objects only.
pub fn field<'v>(doc: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |v, seg| v.get(seg.as_str()))
}

fn all_hold(clauses: &[Clause], doc: &Value) -> bool {
    clauses.iter().all(|clause| match clause {
        Clause::Field(path, cond) => cond.matches(field(doc, path)),
        Clause::Or(branches) => branches.iter().any(|b| all_hold(b, doc)),
    })
}

fn parse_clauses(
    map: Map<String, Value>,
    depth: usize,
    terms: &mut usize,
) -> Result<Vec<Clause>, StoreError> {
    let mut clauses = Vec::with_capacity(map.len());
    for (key, value) in map {
        count(terms, 1)?;
        if key == "$or" {
            clauses.push(parse_or(value, depth, terms)?);
            continue;
        }
        if matches!(key.as_str(), "$limit" | "$sort" | "$after") {
            return Err(StoreError::Invalid(format!(
                "{key} belongs at the top of a filter, not inside $or"
            )));
        }
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        if path.iter().any(|p| p.is_empty() || p.starts_with('$')) {
            return Err(StoreError::Invalid(format!(
                "filter field {key:?} must be a dot-separated field path"
            )));
        }
        let cond = Condition::parse(&key, value)?;
        if let Condition::In(values) = &cond {
            count(terms, values.len())?;
        }
        clauses.push(Clause::Field(path, cond));
    }
    Ok(clauses)
}

fn parse_or(value: Value, depth: usize, terms: &mut usize) -> Result<Clause, StoreError> {
    if depth >= MAX_DEPTH {
        return Err(StoreError::Invalid(format!(
            "$or may be nested at most {MAX_DEPTH} deep"
        )));
    }
    let Value::Array(items) = value else {
        return Err(StoreError::Invalid(
            "$or needs an array of filters, like [{\"a\": 1}, {\"b\": 2}]".to_owned(),
        ));
    };
    if items.is_empty() {
        return Err(StoreError::Invalid(
            "$or needs at least one filter".to_owned(),
        ));
    }
    let mut branches = Vec::with_capacity(items.len());
    for item in items {
        count(terms, 1)?;
        let Value::Object(map) = item else {
            return Err(StoreError::Invalid(
                "each filter of $or must be a JSON object".to_owned(),
            ));
        };
        branches.push(parse_clauses(map, depth + 1, terms)?);
    }
    Ok(Clause::Or(branches))
}

fn count(terms: &mut usize, n: usize) -> Result<(), StoreError> {
    *terms = terms.saturating_add(n);
    if *terms > MAX_TERMS {
        return Err(StoreError::Invalid(format!(
            "a filter may hold at most {MAX_TERMS} terms (conditions, $or filters, $in values)"
        )));
    }
    Ok(())
}

fn parse_sort(value: Value) -> Result<Sort, StoreError> {
    let bad = || {
        StoreError::Invalid(
            "$sort needs one field and a direction, like {\"created\": 1} or {\"created\": -1}"
                .to_owned(),
        )
    };
    let Value::Object(map) = value else {
        return Err(bad());
    };
    if map.len() != 1 {
        return Err(bad());
    }
    let Some((key, dir)) = map.into_iter().next() else {
        return Err(bad());
    };
    let descending = match dir.as_i64() {
        Some(1) => false,
        Some(-1) => true,
        _ => return Err(bad()),
    };
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    // Sort fields become SQL JSON paths and MongoDB field names as they
    // are: tokens need no quoting in either.
    if !path.iter().all(|seg| is_token(seg)) {
        return Err(StoreError::Invalid(format!(
            "$sort field {key:?} must be dot-separated names of [A-Za-z0-9_-]"
        )));
    }
    Ok(Sort { path, descending })
}

fn parse_after(value: Value, sorted: bool) -> Result<Position, StoreError> {
    let shape = if sorted {
        "with $sort, $after is {\"value\": <the last document's sort field>, \"id\": <its id>}"
    } else {
        "$after is the id of the last document of the previous page"
    };
    let bad = || StoreError::Invalid(shape.to_owned());
    match value {
        Value::String(id) if !sorted => Ok(Position {
            key: SortKey::Missing,
            id,
        }),
        Value::Object(mut map) => {
            let Some(Value::String(id)) = map.remove("id") else {
                return Err(bad());
            };
            let value = map.remove("value");
            if !map.is_empty() {
                return Err(bad());
            }
            let key = if sorted {
                SortKey::of(value.as_ref())
            } else {
                SortKey::Missing
            };
            Ok(Position { key, id })
        }
        _ => Err(bad()),
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

/// Orders two JSON values of the same kind (numbers or strings); numbers
/// exactly, as the backends' queries compare them.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(order::compare_numbers(x, y)),
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
