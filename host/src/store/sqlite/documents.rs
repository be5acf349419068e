//! Reading the `documents` table: one document, or a page of a collection.

use rusqlite::{params, Connection, OptionalExtension, Row, Statement};

use super::{query, sql_error, to_u64};
use parallel_you_core::store::filter::Position;
use parallel_you_core::store::{Document, Filter, StoreError};

/// The document `id` of a collection.
pub(super) fn get(
    conn: &Connection,
    domain: &str,
    collection: &str,
    id: &str,
) -> Result<Option<Document>, StoreError> {
    conn.prepare_cached(
        "SELECT id, version, json FROM documents
         WHERE domain = ?1 AND collection = ?2 AND id = ?3",
    )
    .and_then(|mut st| {
        st.query_row(params![domain, collection, id], document)
            .optional()
    })
    .map_err(sql_error)
}

fn document(row: &Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        id: row.get(0)?,
        version: to_u64(row.get(1)?),
        json: row.get(2)?,
    })
}

/// Up to `n` documents of a collection matching (at least) `filter`, in
/// its order after `after`, stopping once they hold `max_bytes` of JSON
/// (always at least one): rows are read one at a time, so a page of big
/// documents holds no more than `max_bytes` plus one document.
pub(super) fn page(
    conn: &Connection,
    domain: &str,
    collection: &str,
    filter: &Filter,
    after: Option<&Position>,
    n: usize,
    max_bytes: usize,
) -> Result<Vec<Document>, StoreError> {
    let sql = query::page_query(domain, collection, filter, after, n);
    conn.prepare_cached(&sql.text)
        .and_then(|mut st| take(&mut st, rusqlite::params_from_iter(sql.params), max_bytes))
        .map_err(sql_error)
}

/// The documents `st` yields until they hold `max_bytes` of JSON.
fn take<P: rusqlite::Params>(
    st: &mut Statement<'_>,
    params: P,
    max_bytes: usize,
) -> rusqlite::Result<Vec<Document>> {
    let mut rows = st.query(params)?;
    let mut docs = Vec::new();
    let mut bytes = 0usize;
    while docs.is_empty() || bytes < max_bytes {
        let Some(row) = rows.next()? else { break };
        let doc = document(row)?;
        bytes = bytes.saturating_add(doc.json.len());
        docs.push(doc);
    }
    Ok(docs)
}

/// Creates the expression index on `fields` if it is missing. One index
/// per list of fields serves every domain and collection: its leading
/// columns are `(domain, collection)`, so a lookup never strays out of
/// its collection, and a bound domain parameter can use it (a partial
/// index per collection could not be matched by a parameterised query).
/// Its name is derived from the fields, so declaring it again is a no-op.
///
/// It also gives the planner estimates for it and for the primary key
/// ([`planner_stats`]), unless `ANALYZE` measured them: without any,
/// SQLite takes `domain = ? AND collection = ?` on the primary key for a
/// selective lookup and scans the whole collection in id order rather
/// than seek the index (a page of 50 matches cost O(collection)).
pub(super) fn ensure_index(conn: &Connection, fields: &[Vec<String>]) -> Result<(), StoreError> {
    let name = index_name(fields);
    let Some(sql) = query::index_sql(&name, fields) else {
        return Err(StoreError::Invalid(format!(
            "cannot index {fields:?}: a field name cannot be a JSON path"
        )));
    };
    conn.execute_batch(&sql).map_err(sql_error)?;
    planner_stats(conn, &name, fields.len())
}

/// Rows the planner is told a collection holds, and a field's value
/// narrows it to: what matters is the ratio, that one domain's collection
/// is not selective and an indexed value is.
const STAT_ROWS: u64 = 1_000_000;
const STAT_PER_DOMAIN: u64 = 100_000;
const STAT_PER_COLLECTION: u64 = 10_000;
const STAT_NARROWING: u64 = 100;

/// Writes `sqlite_stat1` rows for the primary key and the index `name` on
/// `n_fields` fields where there are none (so a real `ANALYZE` wins), then
/// reloads them. Each row reads: rows in the index, then the rows one
/// value of each leading prefix of its columns selects: all of a domain's,
/// a collection's, a field's rank (not narrowing), its key (narrowing by
/// [`STAT_NARROWING`]), and one per id. This is SQLite's documented way to
/// steer its planner without measuring (its `sqlite_stat1` section).
fn planner_stats(conn: &Connection, name: &str, n_fields: usize) -> Result<(), StoreError> {
    let mut index_stat = format!("{STAT_ROWS} {STAT_PER_DOMAIN} {STAT_PER_COLLECTION}");
    let mut rows = STAT_PER_COLLECTION;
    for _ in 0..n_fields {
        let narrowed = (rows / STAT_NARROWING).max(1);
        index_stat.push_str(&format!(" {rows} {narrowed}"));
        rows = narrowed;
    }
    index_stat.push_str(" 1");
    let pk_stat = format!("{STAT_ROWS} {STAT_PER_DOMAIN} {STAT_PER_COLLECTION} 1");
    // `ANALYZE sqlite_schema` makes `sqlite_stat1` if it is missing and
    // reloads what it holds, without reading any table.
    conn.execute_batch("ANALYZE sqlite_schema")
        .map_err(sql_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) SELECT 'documents', ?1, ?2 \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE tbl = 'documents' AND idx = ?1)",
        )
        .map_err(sql_error)?;
    let mut added = 0;
    for (idx, stat) in [("documents", pk_stat.as_str()), (name, index_stat.as_str())] {
        added += insert.execute(params![idx, stat]).map_err(sql_error)?;
    }
    if added > 0 {
        conn.execute_batch("ANALYZE sqlite_schema")
            .map_err(sql_error)?;
    }
    Ok(())
}

/// A stable name for the index on `fields`: FNV-1a of their paths.
pub(super) fn index_name(fields: &[Vec<String>]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in fields
        .iter()
        .map(|f| f.join("."))
        .collect::<Vec<_>>()
        .join(",")
        .bytes()
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("documents_by_{hash:016x}")
}
