//! `list` filters as MongoDB queries, run on the server to narrow what
//! is fetched; the filter itself still decides.

use mongodb::bson::{doc, Bson, Document as BsonDocument};
use serde_json::Value;

use parallel_you_core::store::filter::{Clause, Condition};
use parallel_you_core::store::Filter;

use super::bson::{number_to_bson, value_to_bson, TEXT_FLAG};

/// The largest integer magnitude below which `f64` and `i64` comparisons
/// agree exactly (2^53).
const EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

/// The server-side query for a filter: every document the filter matches
/// matches it too (it may match more), so the filter's own check after
/// fetching makes the result exact. Conditions whose MongoDB meaning could
/// exclude a matching document (arrays match element-wise, `1` equals
/// `1.0`, a dotted path walks into arrays, …) are left out or widened.
pub(super) fn to_query(filter: &Filter) -> BsonDocument {
    match conditions(filter) {
        None => BsonDocument::new(),
        // Bodies kept as text are always fetched: the server cannot look inside.
        Some(conditions) => doc! {"$or": [conditions, {TEXT_FLAG: true}]},
    }
}

/// The query on BSON bodies alone (`None`: nothing narrows them): what
/// [`to_query`] asks of the documents not kept as text. Its terms are
/// fields of one document where they can be (an explicit `$and` only for
/// a field named twice): a server may plan an index only for the former
/// (SecantusDB does).
pub(super) fn conditions(filter: &Filter) -> Option<BsonDocument> {
    let all = clauses_query(filter.clauses());
    if all.is_empty() {
        return None;
    }
    let mut flat = BsonDocument::new();
    let mut rest = Vec::new();
    for term in all {
        match term {
            Bson::Document(d) if d.len() == 1 => {
                let fresh = d.keys().next().is_some_and(|k| !flat.contains_key(k));
                if fresh {
                    flat.extend(d);
                } else {
                    rest.push(Bson::Document(d));
                }
            }
            other => rest.push(other),
        }
    }
    if !rest.is_empty() {
        flat.insert("$and", rest);
    }
    Some(flat)
}

/// The query terms of clauses that must all hold; a clause MongoDB cannot
/// answer as the filter does is left out (which widens the query).
fn clauses_query(clauses: &[Clause]) -> Vec<Bson> {
    let mut all: Vec<Bson> = Vec::new();
    for clause in clauses {
        let clause = match clause {
            Clause::Field(path, cond) => condition_query(path, cond),
            Clause::Or(branches) => branches
                .iter()
                .map(|branch| {
                    // A branch with no terms left matches everything, and
                    // so does the `$or`.
                    let terms = clauses_query(branch);
                    (!terms.is_empty()).then(|| Bson::Document(doc! {"$and": terms}))
                })
                .collect::<Option<Vec<_>>>()
                .map(|branches| doc! {"$or": branches}),
        };
        if let Some(clause) = clause {
            all.push(Bson::Document(clause));
        }
    }
    all
}

fn condition_query(path: &[String], cond: &Condition) -> Option<BsonDocument> {
    if path.iter().any(|seg| seg.contains('\0')) {
        return None;
    }
    let field = format!("body.{}", path.join("."));
    let single = path.len() == 1;
    match cond {
        Condition::Eq(v) => exact_bson(v).map(|b| doc! {&field: {"$eq": b}}),
        Condition::In(vs) => vs
            .iter()
            .map(exact_bson)
            .collect::<Option<Vec<_>>>()
            .map(|bs| doc! {&field: {"$in": bs}}),
        Condition::Ne(v @ (Value::String(_) | Value::Bool(_))) if single => {
            exact_bson(v).map(|b| {
                doc! {"$or": [{&field: {"$ne": b}}, {&field: {"$type": "array"}}]}
            })
        }
        Condition::Ne(_) => None,
        Condition::Exists(true) => Some(doc! {&field: {"$exists": true}}),
        Condition::Exists(false) if single => Some(doc! {&field: {"$exists": false}}),
        Condition::Exists(false) => None,
        Condition::Contains(text) => contains_regex(text).map(|re| doc! {&field: {"$regex": re}}),
        Condition::Cmp(ord, or_equal, v) => cmp_bson(v).map(|b| {
            let op = match (ord, or_equal) {
                (std::cmp::Ordering::Less, false) => "$lt",
                (std::cmp::Ordering::Less, true) => "$lte",
                (_, false) => "$gt",
                (_, true) => "$gte",
            };
            doc! {&field: {op: b}}
        }),
    }
}

/// A filter value as BSON when MongoDB equality on it is implied by JSON
/// equality: not for objects (MongoDB compares their keys in order).
fn exact_bson(v: &Value) -> Option<Bson> {
    match v {
        Value::Object(_) => None,
        Value::Array(items) => Some(Bson::Array(
            items.iter().map(exact_bson).collect::<Option<Vec<_>>>()?,
        )),
        Value::String(s) if s.contains('\0') => None,
        other => value_to_bson(other, 0),
    }
}

/// A bound of `$lt`… as BSON when MongoDB's order agrees with the filter's:
/// strings (both compare UTF-8 bytes) and numbers small enough that the
/// filter's `f64` fallback is exact.
fn cmp_bson(v: &Value) -> Option<Bson> {
    match v {
        Value::String(s) if !s.contains('\0') => Some(Bson::String(s.clone())),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f.abs() < EXACT_F64_INT {
                number_to_bson(n)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A regex matching every string whose lowercase contains `text` (already
/// lowercase), for ASCII `text` only. Each letter becomes a class of its
/// cases plus the two non-ASCII letters whose lowercase is ASCII (`K`
/// KELVIN SIGN, `İ`), so the server never misses what `to_lowercase` finds;
/// no `i` option, whose Unicode rules differ between servers.
fn contains_regex(text: &str) -> Option<String> {
    if !text.is_ascii() || text.contains('\0') {
        return None;
    }
    let mut re = String::with_capacity(text.len() * 4);
    for c in text.chars() {
        match c {
            'k' => re.push_str("[kK\u{212A}]"),
            'i' => re.push_str("[iI\u{130}]"),
            c if c.is_ascii_lowercase() => {
                re.push('[');
                re.push(c);
                re.push(c.to_ascii_uppercase());
                re.push(']');
            }
            c if c.is_ascii_alphanumeric() => re.push(c),
            c => {
                // A backslash before a non-alphanumeric character is a
                // literal in every regex dialect.
                re.push('\\');
                re.push(c);
            }
        }
    }
    Some(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(text: &str) -> Filter {
        match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn queries_leave_out_what_mongodb_means_differently() {
        assert_eq!(to_query(&f("{}")), doc! {});
        assert_eq!(to_query(&f(r#"{"a.b":{"$ne":1}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"a":{"$eq":{"x":1}}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"a.b":{"$exists":false}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"t":{"$contains":"é"}}"#)), doc! {});
        assert_eq!(to_query(&f(r#"{"n":{"$lt":9007199254740993}}"#)), doc! {});
        assert_eq!(
            to_query(&f(r#"{"kind":"story"}"#)),
            doc! {"$or": [{"body.kind": {"$eq": "story"}}, {TEXT_FLAG: true}]}
        );
    }

    #[test]
    fn conditions_are_one_document_where_they_can_be() {
        assert_eq!(conditions(&f("{}")), None);
        assert_eq!(
            conditions(&f(r#"{"state":"blocked","archived":false,"$limit":5}"#)),
            Some(doc! {"body.state": {"$eq": "blocked"}, "body.archived": {"$eq": false}})
        );
        assert_eq!(
            conditions(&f(r#"{"a":1,"$or":[{"b":2},{"c":3}]}"#)),
            Some(doc! {
                "body.a": {"$eq": 1_i64},
                "$or": [{"$and": [{"body.b": {"$eq": 2_i64}}]}, {"$and": [{"body.c": {"$eq": 3_i64}}]}],
            })
        );
    }

    #[test]
    fn contains_regex_covers_unicode_lowercase() {
        assert_eq!(
            contains_regex("ik 1.").as_deref(),
            Some("[iI\u{130}][kK\u{212A}]\\ 1\\.")
        );
        assert_eq!(contains_regex("ß"), None);
    }
}
