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
pub(super) fn ensure_index(conn: &Connection, fields: &[Vec<String>]) -> Result<(), StoreError> {
    let name = index_name(fields);
    let Some(sql) = query::index_sql(&name, fields) else {
        return Err(StoreError::Invalid(format!(
            "cannot index {fields:?}: a field name cannot be a JSON path"
        )));
    };
    conn.execute_batch(&sql).map_err(sql_error)
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
