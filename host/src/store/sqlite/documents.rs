//! Reading the `documents` table: one document, or a page of a collection.

use rusqlite::{params, Connection, OptionalExtension, Row, Statement};

use super::{sql_error, to_sql, to_u64};
use parallel_you_core::store::{Document, StoreError};

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

/// Up to `n` documents of a collection after id `after`, in id order,
/// stopping once they hold `max_bytes` of JSON (always at least one): rows
/// are read one at a time, so a page of big documents holds no more than
/// `max_bytes` plus one document.
pub(super) fn page(
    conn: &Connection,
    domain: &str,
    collection: &str,
    after: Option<&str>,
    n: usize,
    max_bytes: usize,
) -> Result<Vec<Document>, StoreError> {
    let limit = to_sql(n);
    let docs = match after {
        None => conn
            .prepare_cached(
                "SELECT id, version, json FROM documents
                 WHERE domain = ?1 AND collection = ?2 ORDER BY id LIMIT ?3",
            )
            .and_then(|mut st| take(&mut st, params![domain, collection, limit], max_bytes)),
        Some(after) => conn
            .prepare_cached(
                "SELECT id, version, json FROM documents
                 WHERE domain = ?1 AND collection = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
            )
            .and_then(|mut st| {
                take(
                    &mut st,
                    params![domain, collection, after, limit],
                    max_bytes,
                )
            }),
    };
    docs.map_err(sql_error)
}

/// The documents `st` yields until they hold `max_bytes` of JSON.
fn take(
    st: &mut Statement<'_>,
    params: &[&dyn rusqlite::ToSql],
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
