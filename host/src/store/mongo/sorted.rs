//! `list` with a `$sort`: the filter's order (rank, key, id; see
//! [`parallel_you_core::store::filter::order`]) out of MongoDB, whose own
//! order of mixed types differs.
//!
//! One query per rank, in the order's rank order. For numbers, strings and
//! booleans the query keeps only documents whose field has that type and
//! whose path holds no array (where MongoDB would look into the array's
//! elements), so the server's sort on `(body.field, _id)` is the filter's.
//! For the missing and the array-or-object ranks, whose members are ordered
//! by id alone, the query is sorted by `_id` and documents of other ranks
//! are dropped here. Documents kept as JSON text (which the server cannot
//! look into) are fetched apart, at most [`MAX_TEXT_SORTED`] of them, and
//! merged in.

use std::collections::VecDeque;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use mongodb::Collection;

use parallel_you_core::store::filter::order::{
    SortKey, RANK_BOOL, RANK_MISSING, RANK_NUMBER, RANK_OTHER, RANK_STRING,
};
use parallel_you_core::store::filter::{Position, Sort};
use parallel_you_core::store::{Filter, Scanned, StoreError};

use super::bson::{from_stored, number_to_bson, TEXT_FLAG};
use super::store_error;

/// Most documents kept as JSON text one sorted `list` merges in.
pub(super) const MAX_TEXT_SORTED: usize = 1000;

/// One page of a sorted scan: up to `n` documents matching (at least)
/// `query`, in `filter`'s order after `after`, within `max_bytes` (and one
/// document).
pub(super) async fn page(
    coll: &Collection<BsonDocument>,
    query: &BsonDocument,
    filter: &Filter,
    sort: &Sort,
    after: Option<Position>,
    n: usize,
    max_bytes: usize,
) -> Result<Vec<Scanned>, StoreError> {
    let mut ranks = [
        RANK_MISSING,
        RANK_NUMBER,
        RANK_STRING,
        RANK_BOOL,
        RANK_OTHER,
    ];
    if sort.descending {
        ranks.reverse();
    }
    let texts = text_documents(coll, filter, after.as_ref()).await?;
    let mut out: Vec<Scanned> = Vec::new();
    let mut bytes = 0usize;
    let first = after.as_ref().map_or(0, |a| {
        ranks.iter().position(|r| *r == a.key.rank()).unwrap_or(0)
    });
    for &rank in &ranks[first..] {
        let mut cursor = after.clone().filter(|a| a.key.rank() == rank);
        // Owned, not a borrowing iterator: the loop awaits while holding it.
        let mut rank_texts: VecDeque<(Position, Scanned)> = texts
            .iter()
            .filter(|t| t.0.key.rank() == rank)
            .cloned()
            .collect();
        loop {
            let want = n - out.len();
            let (fetched, exhausted) =
                native(coll, query, filter, sort, rank, cursor.as_ref(), want).await?;
            if let Some((p, _)) = fetched.last() {
                cursor = Some(p.clone());
            }
            // Merge the text documents of this rank that come before the
            // last native one (or all of them once the rank is exhausted).
            let mut merged: Vec<Scanned> = Vec::new();
            for (position, scanned) in fetched.into_iter().filter(|(p, _)| p.key.rank() == rank) {
                while rank_texts
                    .front()
                    .is_some_and(|t| filter.order(&t.0, &position).is_lt())
                {
                    if let Some(t) = rank_texts.pop_front() {
                        merged.push(t.1);
                    }
                }
                merged.push(scanned);
            }
            if exhausted {
                merged.extend(rank_texts.drain(..).map(|t| t.1));
            }
            for scanned in merged {
                if out.len() >= n || (bytes >= max_bytes && !out.is_empty()) {
                    return Ok(out);
                }
                bytes = bytes.saturating_add(scanned.doc.json.len());
                out.push(scanned);
            }
            if out.len() >= n || (bytes >= max_bytes && !out.is_empty()) {
                return Ok(out);
            }
            if exhausted {
                break;
            }
        }
    }
    Ok(out)
}

/// Up to `want` stored (not text) documents of `rank` after `cursor`,
/// with their positions, and whether the rank has no more. For the ranks
/// ordered by id alone, documents of other ranks come too and are to be
/// dropped by the caller.
async fn native(
    coll: &Collection<BsonDocument>,
    query: &BsonDocument,
    filter: &Filter,
    sort: &Sort,
    rank: u8,
    cursor: Option<&Position>,
    want: usize,
) -> Result<(Vec<(Position, Scanned)>, bool), StoreError> {
    let field = format!("body.{}", sort.path.join("."));
    let (past, dir) = if sort.descending {
        ("$lt", -1)
    } else {
        ("$gt", 1)
    };
    let mut all: Vec<Bson> = vec![Bson::Document(doc! {TEXT_FLAG: {"$ne": true}})];
    if !query.is_empty() {
        all.push(Bson::Document(query.clone()));
    }
    let type_name = match rank {
        RANK_NUMBER => Some("number"),
        RANK_STRING => Some("string"),
        RANK_BOOL => Some("bool"),
        _ => None,
    };
    let order = match type_name {
        Some(name) => {
            all.push(Bson::Document(doc! {&field: {"$type": name}}));
            let mut prefix = String::from("body");
            for seg in &sort.path {
                prefix.push('.');
                prefix.push_str(seg);
                all.push(Bson::Document(doc! {&prefix: {"$not": {"$type": "array"}}}));
            }
            if let Some(c) = cursor {
                let key = key_bson(&c.key);
                all.push(Bson::Document(doc! {"$or": [
                    {&field: {past: key.clone()}},
                    {&field: key, "_id": {past: c.id.as_str()}},
                ]}));
            }
            doc! {&field: dir, "_id": dir}
        }
        None => {
            // Wider than the rank (the caller drops the rest), never
            // narrower: a field under an array is missing to the filter.
            let mut of_rank: Vec<Bson> = if rank == RANK_MISSING {
                vec![Bson::Document(doc! {&field: Bson::Null})]
            } else {
                vec![
                    Bson::Document(doc! {&field: {"$type": "array"}}),
                    Bson::Document(doc! {&field: {"$type": "object"}}),
                ]
            };
            if rank == RANK_MISSING {
                let mut prefix = String::from("body");
                for seg in &sort.path[..sort.path.len().saturating_sub(1)] {
                    prefix.push('.');
                    prefix.push_str(seg);
                    of_rank.push(Bson::Document(doc! {&prefix: {"$type": "array"}}));
                }
            }
            all.push(Bson::Document(doc! {"$or": of_rank}));
            if let Some(c) = cursor {
                all.push(Bson::Document(doc! {"_id": {past: c.id.as_str()}}));
            }
            doc! {"_id": dir}
        }
    };
    let mut found = coll
        .find(doc! {"$and": all})
        .sort(order)
        .limit(i64::try_from(want).unwrap_or(i64::MAX))
        .await
        .map_err(|e| store_error(&e))?;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(stored) = found.try_next().await.map_err(|e| store_error(&e))? {
        seen += 1;
        let (doc, value) = from_stored(stored)?;
        let position = filter.position(&doc.id, &value);
        out.push((
            position,
            Scanned {
                doc,
                value: Some(value),
            },
        ));
    }
    // Documents of another rank (only in the id-ordered ranks) still move
    // the cursor, so they are handed back; the caller drops them.
    Ok((out, seen < want))
}

/// The key of a cursor as BSON, as the server compares it.
fn key_bson(key: &SortKey) -> Bson {
    match key {
        SortKey::Number(n) => number_to_bson(n).unwrap_or(Bson::Double(n.as_f64().unwrap_or(0.0))),
        SortKey::String(s) => Bson::String(s.clone()),
        SortKey::Bool(b) => Bson::Boolean(*b),
        SortKey::Missing | SortKey::Other => Bson::Null,
    }
}

/// The documents kept as text that match `filter` after `after`, with
/// their positions, in the filter's order.
async fn text_documents(
    coll: &Collection<BsonDocument>,
    filter: &Filter,
    after: Option<&Position>,
) -> Result<Vec<(Position, Scanned)>, StoreError> {
    let mut found = coll
        .find(doc! {TEXT_FLAG: true})
        .limit(i64::try_from(MAX_TEXT_SORTED + 1).unwrap_or(i64::MAX))
        .await
        .map_err(|e| store_error(&e))?;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(stored) = found.try_next().await.map_err(|e| store_error(&e))? {
        seen += 1;
        if seen > MAX_TEXT_SORTED {
            return Err(StoreError::TooLarge(format!(
                "this collection holds more than {MAX_TEXT_SORTED} documents MongoDB keeps as \
                 JSON text, which a $sort cannot order on the server; list it without $sort"
            )));
        }
        let (doc, value) = from_stored(stored)?;
        if !filter.matches(&value) {
            continue;
        }
        let position = filter.position(&doc.id, &value);
        if after.is_some_and(|a| !filter.order(a, &position).is_lt()) {
            continue;
        }
        out.push((
            position,
            Scanned {
                doc,
                value: Some(value),
            },
        ));
    }
    out.sort_by(|a, b| filter.order(&a.0, &b.0));
    Ok(out)
}
