//! `list` filters, sorts and cursors as SQL over `json_extract`.
//!
//! A field at path `p` is seen through two expressions: its *rank* (the
//! type order of [`parallel_you_core::store::filter::order`]: 0 missing or
//! null, 1 number, 2 string, 3 boolean, 4 array or object) and its *key*
//! (the value for ranks 1–3, else NULL; a boolean is 0 or 1). Conditions,
//! the sort and the cursor are all written over these two, so one
//! expression index on `(domain, collection, rank, key, id)` serves an
//! equality, a range, a sort and the next page alike ([`index_sql`]).
//!
//! The translation is exact where SQLite's and the filter's meanings
//! agree, and wider where they do not, never narrower: the filter is
//! checked again in Rust on what is read (`Checked::list`), which decides.
//! Wider: number equality (`1` equals `1.0` in SQLite, not in JSON as the
//! filter compares it), `$ne` of a number, array or object, equality with
//! an array or object, `$contains` of text holding `i`, `k` or non-ASCII
//! (whose case folding differs from SQLite's ASCII-only `lower`), numbers
//! beyond ±2^62 (SQLite reads integers past `i64` as floats), and field
//! paths whose names hold `"`, `\` or control characters (which a JSON
//! path cannot quote); each of these narrows by type only, or not at all.

use std::fmt::Write as _;

use rusqlite::types::Value as SqlValue;
use serde_json::{Number, Value};

use parallel_you_core::store::filter::order::{
    SortKey, RANK_BOOL, RANK_MISSING, RANK_NUMBER, RANK_OTHER, RANK_STRING,
};
use parallel_you_core::store::filter::{Clause, Condition, Position};
use parallel_you_core::store::Filter;

/// Numbers within this magnitude are compared alike by SQLite and the
/// filter (beyond `i64`, SQLite reads an integer as a float).
const EXACT_NUMBER: f64 = 4_611_686_018_427_387_904.0;

/// A field path as a quoted JSON path literal (`'$."a"."b"'`), if every
/// segment can be quoted.
pub(super) fn json_path(path: &[String]) -> Option<String> {
    let mut out = String::from("'$");
    for seg in path {
        if seg.contains(['"', '\\']) || seg.chars().any(char::is_control) {
            return None;
        }
        // Inside an SQL string literal, `'` is written twice.
        let _ = write!(out, ".\"{}\"", seg.replace('\'', "''"));
    }
    out.push('\'');
    Some(out)
}

/// The rank expression of the field at `path` (a [`json_path`]).
pub(super) fn rank_expr(path: &str) -> String {
    format!(
        "(CASE json_type(json, {path}) WHEN 'integer' THEN {RANK_NUMBER} WHEN 'real' THEN \
         {RANK_NUMBER} WHEN 'text' THEN {RANK_STRING} WHEN 'true' THEN {RANK_BOOL} WHEN 'false' \
         THEN {RANK_BOOL} WHEN 'array' THEN {RANK_OTHER} WHEN 'object' THEN {RANK_OTHER} ELSE \
         {RANK_MISSING} END)"
    )
}

/// The key expression of the field at `path` (a [`json_path`]).
pub(super) fn key_expr(path: &str) -> String {
    format!(
        "(CASE WHEN json_type(json, {path}) IN ('integer', 'real', 'text', 'true', 'false') \
         THEN json_extract(json, {path}) END)"
    )
}

/// The `CREATE INDEX` of an index on `fields` (field paths, `a.b`), named
/// `name`; `None` when a field cannot be a JSON path.
pub(super) fn index_sql(name: &str, fields: &[Vec<String>]) -> Option<String> {
    let mut columns = vec!["domain".to_owned(), "collection".to_owned()];
    for field in fields {
        let path = json_path(field)?;
        columns.push(rank_expr(&path));
        columns.push(key_expr(&path));
    }
    columns.push("id".to_owned());
    Some(format!(
        "CREATE INDEX IF NOT EXISTS \"{name}\" ON documents ({})",
        columns.join(", ")
    ))
}

/// A query under construction: SQL text and its parameters, in order.
#[derive(Debug, Default)]
pub(super) struct Sql {
    /// The text, with `?` for each parameter.
    pub(super) text: String,
    /// The parameters.
    pub(super) params: Vec<SqlValue>,
}

impl Sql {
    fn param(&mut self, v: SqlValue) -> &'static str {
        self.params.push(v);
        "?"
    }
}

/// The page query: up to `n` documents of a collection matching (at least)
/// `filter`, in its order, after `after`.
pub(super) fn page_query(
    domain: &str,
    collection: &str,
    filter: &Filter,
    after: Option<&Position>,
    n: usize,
) -> Sql {
    let mut sql = Sql::default();
    sql.text
        .push_str("SELECT id, version, json FROM documents WHERE domain = ? AND collection = ?");
    sql.params.push(SqlValue::Text(domain.to_owned()));
    sql.params.push(SqlValue::Text(collection.to_owned()));
    for clause in filter.clauses() {
        sql.text.push_str(" AND ");
        clause_sql(&mut sql, clause);
    }
    let sort = filter
        .sort()
        .and_then(|s| Some((json_path(&s.path)?, s.descending)));
    if let Some(after) = after {
        sql.text.push_str(" AND ");
        match &sort {
            None => {
                sql.text.push_str("id > ?");
                sql.params.push(SqlValue::Text(after.id.clone()));
            }
            Some((path, descending)) => cursor_sql(&mut sql, path, *descending, after),
        }
    }
    match &sort {
        None => sql.text.push_str(" ORDER BY id"),
        Some((path, descending)) => {
            let dir = if *descending { "DESC" } else { "ASC" };
            let _ = write!(
                sql.text,
                " ORDER BY {} {dir}, {} {dir}, id {dir}",
                rank_expr(path),
                key_expr(path)
            );
        }
    }
    sql.text.push_str(" LIMIT ?");
    sql.params
        .push(SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
    sql
}

/// Rows strictly after `after` in the sort's order.
fn cursor_sql(sql: &mut Sql, path: &str, descending: bool, after: &Position) {
    let (rank, key) = (rank_expr(path), key_expr(path));
    let past = if descending { "<" } else { ">" };
    let r = i64::from(after.key.rank());
    let id = SqlValue::Text(after.id.clone());
    match key_value(&after.key) {
        Some(k) => {
            let _ = write!(
                sql.text,
                "({rank} {past} {r} OR ({rank} = {r} AND ({key} {past} ? OR ({key} = ? AND id {past} ?))))"
            );
            sql.params.push(k.clone());
            sql.params.push(k);
            sql.params.push(id);
        }
        None => {
            let _ = write!(
                sql.text,
                "({rank} {past} {r} OR ({rank} = {r} AND id {past} ?))"
            );
            sql.params.push(id);
        }
    }
}

/// A sort key as the SQL value its key expression yields.
fn key_value(key: &SortKey) -> Option<SqlValue> {
    match key {
        SortKey::Missing | SortKey::Other => None,
        SortKey::Number(n) => Some(number_value(n)),
        SortKey::String(s) => Some(SqlValue::Text(s.clone())),
        SortKey::Bool(b) => Some(SqlValue::Integer(i64::from(*b))),
    }
}

fn number_value(n: &Number) -> SqlValue {
    match n.as_i64() {
        Some(i) => SqlValue::Integer(i),
        None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
    }
}

/// Whether SQLite compares this number as the filter does.
fn exact_number(n: &Number) -> bool {
    n.as_i64()
        .map(|i| i.unsigned_abs() < 1 << 62)
        .or_else(|| n.as_f64().map(|f| f.abs() < EXACT_NUMBER))
        .unwrap_or(false)
}

fn clause_sql(sql: &mut Sql, clause: &Clause) {
    match clause {
        Clause::Field(path, cond) => match json_path(path) {
            Some(path) => condition_sql(sql, &path, cond),
            None => sql.text.push('1'),
        },
        Clause::Or(branches) => {
            sql.text.push('(');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(" OR ");
                }
                sql.text.push_str("(1");
                for clause in branch {
                    sql.text.push_str(" AND ");
                    clause_sql(sql, clause);
                }
                sql.text.push(')');
            }
            sql.text.push(')');
        }
    }
}

fn condition_sql(sql: &mut Sql, path: &str, cond: &Condition) {
    let rank = rank_expr(path);
    let key = key_expr(path);
    match cond {
        Condition::Eq(v) => eq_sql(sql, path, v),
        Condition::In(vs) if vs.is_empty() => sql.text.push('0'),
        Condition::In(vs) => {
            sql.text.push('(');
            for (i, v) in vs.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(" OR ");
                }
                eq_sql(sql, path, v);
            }
            sql.text.push(')');
        }
        // `NOT` of an equality is exact only where the equality is.
        Condition::Ne(Value::String(s)) => {
            let p = sql.param(SqlValue::Text(s.clone()));
            let _ = write!(sql.text, "NOT ({rank} = {RANK_STRING} AND {key} = {p})");
        }
        Condition::Ne(Value::Bool(b)) => {
            let p = sql.param(SqlValue::Integer(i64::from(*b)));
            let _ = write!(sql.text, "NOT ({rank} = {RANK_BOOL} AND {key} = {p})");
        }
        Condition::Ne(Value::Null) => {
            let _ = write!(sql.text, "json_type(json, {path}) IS NOT 'null'");
        }
        Condition::Ne(_) => sql.text.push('1'),
        Condition::Exists(true) => {
            let _ = write!(sql.text, "json_type(json, {path}) IS NOT NULL");
        }
        Condition::Exists(false) => {
            let _ = write!(sql.text, "json_type(json, {path}) IS NULL");
        }
        Condition::Contains(text) => {
            // `to_lowercase` turns only KELVIN SIGN and İ from non-ASCII
            // into ASCII (`k`, `i̇`); for other ASCII text SQLite's `lower`
            // finds exactly what it finds.
            if text.is_ascii() && !text.contains(['i', 'k']) {
                let p = sql.param(SqlValue::Text(text.clone()));
                let _ = write!(
                    sql.text,
                    "({rank} = {RANK_STRING} AND instr(lower({key}), {p}) > 0)"
                );
            } else {
                let _ = write!(sql.text, "{rank} = {RANK_STRING}");
            }
        }
        Condition::Cmp(ord, or_equal, v) => {
            let op = match (ord, or_equal) {
                (std::cmp::Ordering::Less, false) => "<",
                (std::cmp::Ordering::Less, true) => "<=",
                (_, false) => ">",
                (_, true) => ">=",
            };
            match v {
                Value::Number(n) if exact_number(n) => {
                    let p = sql.param(number_value(n));
                    let _ = write!(sql.text, "({rank} = {RANK_NUMBER} AND {key} {op} {p})");
                }
                Value::Number(_) => {
                    let _ = write!(sql.text, "{rank} = {RANK_NUMBER}");
                }
                Value::String(s) => {
                    let p = sql.param(SqlValue::Text(s.clone()));
                    let _ = write!(sql.text, "({rank} = {RANK_STRING} AND {key} {op} {p})");
                }
                // The parser takes only numbers and strings.
                _ => sql.text.push('1'),
            }
        }
    }
}

/// Equality with `v`: exact for strings, booleans, null and integers
/// within ±2^62, wider for other numbers, arrays and objects.
fn eq_sql(sql: &mut Sql, path: &str, v: &Value) {
    let rank = rank_expr(path);
    let key = key_expr(path);
    match v {
        Value::Null => {
            let _ = write!(sql.text, "json_type(json, {path}) IS 'null'");
        }
        Value::Bool(b) => {
            let p = sql.param(SqlValue::Integer(i64::from(*b)));
            let _ = write!(sql.text, "({rank} = {RANK_BOOL} AND {key} = {p})");
        }
        Value::Number(n) if exact_number(n) => {
            let p = sql.param(number_value(n));
            let _ = write!(sql.text, "({rank} = {RANK_NUMBER} AND {key} = {p})");
        }
        Value::Number(_) => {
            let _ = write!(sql.text, "{rank} = {RANK_NUMBER}");
        }
        Value::String(s) => {
            let p = sql.param(SqlValue::Text(s.clone()));
            let _ = write!(sql.text, "({rank} = {RANK_STRING} AND {key} = {p})");
        }
        Value::Array(_) => {
            let _ = write!(sql.text, "json_type(json, {path}) IS 'array'");
        }
        Value::Object(_) => {
            let _ = write!(sql.text, "json_type(json, {path}) IS 'object'");
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::{documents, schema};
    use super::*;

    fn f(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The plan SQLite chooses for the page query of `filter`.
    fn plan(conn: &Connection, filter: &Filter) -> String {
        let sql = page_query("thread", "threads", filter, None, 50);
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = st
            .query_map(rusqlite::params_from_iter(sql.params), |row| {
                row.get::<_, String>(3)
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .unwrap_or_else(|e| panic!("{e}"));
        rows.join("; ")
    }

    #[test]
    fn a_selective_filter_and_a_sort_use_the_declared_index() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut conn =
            Connection::open(dir.path().join("t.sqlite3")).unwrap_or_else(|e| panic!("{e}"));
        schema::ensure(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let fields = vec![vec!["state".to_owned()]];
        documents::ensure_index(&conn, &fields).unwrap_or_else(|e| panic!("{e}"));
        // Declaring it again is a no-op.
        documents::ensure_index(&conn, &fields).unwrap_or_else(|e| panic!("{e}"));
        let name = documents::index_name(&fields);
        for (i, state) in ["open", "done", "done", "parked"].iter().enumerate() {
            conn.execute(
                "INSERT INTO documents VALUES ('thread', 'threads', ?1, 1, ?2, 0, 0)",
                rusqlite::params![format!("t{i}"), format!(r#"{{"state":"{state}"}}"#)],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        conn.execute_batch("ANALYZE")
            .unwrap_or_else(|e| panic!("{e}"));
        let eq = plan(&conn, &f(r#"{"state":"open","archived":false}"#));
        assert!(eq.contains(&name), "equality: {eq}");
        assert!(
            !eq.contains("TEMP B-TREE"),
            "equality pages in id order: {eq}"
        );
        let sorted = plan(&conn, &f(r#"{"$sort":{"state":-1}}"#));
        assert!(sorted.contains(&name), "sort: {sorted}");
        assert!(
            !sorted.contains("TEMP B-TREE"),
            "sort off the index: {sorted}"
        );
        let other = plan(&conn, &f(r#"{"kind":"story"}"#));
        assert!(!other.contains(&name), "another field: {other}");
    }

    #[test]
    fn a_declared_index_is_chosen_before_any_analyze() {
        // No ANALYZE: what a store has right after a component loads. The
        // planner must still prefer the index to a primary-key scan of
        // the collection (it did not, until `planner_stats`).
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut conn =
            Connection::open(dir.path().join("t.sqlite3")).unwrap_or_else(|e| panic!("{e}"));
        schema::ensure(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let pair = vec![vec!["state".to_owned()], vec!["archived".to_owned()]];
        let saga = vec![vec!["saga_id".to_owned()]];
        for fields in [&pair, &saga, &pair] {
            documents::ensure_index(&conn, fields).unwrap_or_else(|e| panic!("{e}"));
        }
        let (pair, saga) = (documents::index_name(&pair), documents::index_name(&saga));
        let both = plan(&conn, &f(r#"{"state":"blocked","archived":false}"#));
        assert!(both.contains(&pair), "both fields: {both}");
        assert!(!both.contains("TEMP B-TREE"), "in id order: {both}");
        let first = plan(&conn, &f(r#"{"state":"blocked"}"#));
        assert!(first.contains(&pair), "its first field: {first}");
        let other = plan(&conn, &f(r#"{"saga_id":"s1","archived":false}"#));
        assert!(other.contains(&saga), "the other index: {other}");
        let unindexed = plan(&conn, &f(r#"{"archived":false}"#));
        assert!(
            !unindexed.contains(&pair) && !unindexed.contains(&saga),
            "a field no index leads with scans in id order: {unindexed}"
        );
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_stat1", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows, 3, "the key and two indexes, each once");
    }

    #[test]
    fn field_names_a_json_path_cannot_quote_are_left_to_the_filter() {
        assert_eq!(
            json_path(&["a".into(), "b c".into()]).as_deref(),
            Some(r#"'$."a"."b c"'"#)
        );
        assert_eq!(
            json_path(&["it's".into()]).as_deref(),
            Some(r#"'$."it''s"'"#)
        );
        assert_eq!(json_path(&["a\"b".into()]), None);
        let sql = page_query("d", "c", &f(r#"{"a\"b":1}"#), None, 1);
        assert!(sql.text.contains("AND 1 ORDER BY"), "{}", sql.text);
    }
}
