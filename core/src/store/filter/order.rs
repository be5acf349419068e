//! The order of `list` results: by a sort field, ties by id, and the
//! position a `$after` cursor names in it.
//!
//! A field's value sorts by its *rank*, then within the rank:
//!
//! | rank | values | within the rank |
//! |---|---|---|
//! | 0 | field missing, or `null` | all equal |
//! | 1 | numbers | by value, exactly (integers and floats compared as numbers) |
//! | 2 | strings | by UTF-8 bytes (code point order) |
//! | 3 | `false`, `true` | `false` first |
//! | 4 | arrays and objects | all equal |
//!
//! Equal keys are ordered by id. `$sort` `-1` reverses the whole order
//! (keys and ids), so the missing fields come first ascending and last
//! descending. Every store answers in exactly this order: the backends
//! compute the same rank and key (SQLite in SQL, MongoDB with one query
//! per rank), and the memory store in Rust here.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// Rank of a missing or `null` field.
pub const RANK_MISSING: u8 = 0;
/// Rank of a number.
pub const RANK_NUMBER: u8 = 1;
/// Rank of a string.
pub const RANK_STRING: u8 = 2;
/// Rank of a boolean.
pub const RANK_BOOL: u8 = 3;
/// Rank of an array or an object.
pub const RANK_OTHER: u8 = 4;

/// A sort field's value, as far as the order looks at it.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// Missing or `null`.
    Missing,
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// An array or an object: all such values sort as equal.
    Other,
}

impl SortKey {
    /// The key of a field (absent: `None`).
    pub fn of(field: Option<&Value>) -> Self {
        match field {
            None | Some(Value::Null) => SortKey::Missing,
            Some(Value::Number(n)) => SortKey::Number(n.clone()),
            Some(Value::String(s)) => SortKey::String(s.clone()),
            Some(Value::Bool(b)) => SortKey::Bool(*b),
            Some(Value::Array(_) | Value::Object(_)) => SortKey::Other,
        }
    }

    /// Its rank (see the module docs).
    pub fn rank(&self) -> u8 {
        match self {
            SortKey::Missing => RANK_MISSING,
            SortKey::Number(_) => RANK_NUMBER,
            SortKey::String(_) => RANK_STRING,
            SortKey::Bool(_) => RANK_BOOL,
            SortKey::Other => RANK_OTHER,
        }
    }

    /// The key as a JSON value, as a caller gives it back in `$after`.
    pub fn to_value(&self) -> Value {
        match self {
            SortKey::Missing | SortKey::Other => Value::Null,
            SortKey::Number(n) => Value::Number(n.clone()),
            SortKey::String(s) => Value::String(s.clone()),
            SortKey::Bool(b) => Value::Bool(*b),
        }
    }
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => compare_numbers(a, b),
            (SortKey::String(a), SortKey::String(b)) => a.cmp(b),
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// A place in a `list`'s order: a document's sort key (ignored without
/// `$sort`) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The sort field's key.
    pub key: SortKey,
    /// The document's id.
    pub id: String,
}

/// Compares two JSON numbers exactly: integers as integers, an integer
/// against a float by their mathematical values (no rounding through
/// `f64`), as SQLite and MongoDB do.
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (int_of(a), int_of(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => compare_int_float(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => compare_int_float(y, a.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn int_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// An integer against a finite float (JSON has no infinities or NaN).
fn compare_int_float(x: i128, f: f64) -> Ordering {
    // Every i64/u64 lies within ±2^64; a float beyond that decides alone.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f <= -LIMIT {
        return Ordering::Greater;
    }
    let floor = f.floor();
    // Exact: a float below 2^64 in magnitude has an integral floor that
    // fits i128.
    let whole = floor as i128;
    match x.cmp(&whole) {
        Ordering::Equal if f > floor => Ordering::Less,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(v: Value) -> SortKey {
        SortKey::of(Some(&v))
    }

    #[test]
    fn ranks_then_values() {
        let ordered = [
            SortKey::of(None),
            key(json!(-2.5)),
            key(json!(1)),
            key(json!(1.5)),
            key(json!(9007199254740993_u64)),
            key(json!("")),
            key(json!("B")),
            key(json!("a")),
            key(json!(false)),
            key(json!(true)),
            key(json!([1])),
        ];
        for pair in ordered.windows(2) {
            assert_eq!(pair[0].cmp(&pair[1]), Ordering::Less, "{pair:?}");
        }
        assert_eq!(key(json!(null)), SortKey::Missing);
        assert_eq!(key(json!(1)).cmp(&key(json!(1.0))), Ordering::Equal);
        assert_eq!(key(json!([1])).cmp(&key(json!({"a": 1}))), Ordering::Equal);
    }

    #[test]
    fn integers_against_floats_exactly() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => panic!("not a number"),
        };
        // 2^53 + 1 rounds to 2^53 as an f64; compared exactly it is larger.
        assert_eq!(
            compare_numbers(
                &n(json!(9007199254740993_i64)),
                &n(json!(9007199254740992.0))
            ),
            Ordering::Greater
        );
        assert_eq!(
            compare_numbers(&n(json!(-3)), &n(json!(-2.5))),
            Ordering::Less
        );
        assert_eq!(
            compare_numbers(&n(json!(u64::MAX)), &n(json!(1e300))),
            Ordering::Less
        );
        assert_eq!(
            compare_numbers(&n(json!(2.5)), &n(json!(2))),
            Ordering::Greater
        );
    }
}
