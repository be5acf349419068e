//! Stored documents as BSON and back: a JSON body is kept as a BSON
//! document when BSON holds it faithfully, else as JSON text (see the
//! module docs of [`super`]).

use mongodb::bson::{doc, Bson, DateTime, Document as BsonDocument};
use serde_json::{Map, Number, Value};

use parallel_you_core::store::{Document, StoreError};

/// Deepest body nesting stored as BSON (the server allows 100 levels, and
/// the stored document wraps the body in one more).
pub const MAX_BSON_DEPTH: usize = 64;
/// Bodies whose BSON would be larger are kept as JSON text: the server's
/// limit is 16 MiB for the whole document.
const MAX_BSON_BODY: usize = 15 * 1024 * 1024;

/// Set (to `true`) on documents whose body is kept as JSON text.
pub(super) const TEXT_FLAG: &str = "text";

/// A stored document's version; 0 when it has none readable.
pub(super) fn version_of(doc: &BsonDocument) -> u64 {
    match doc.get("version") {
        Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Double(v)) if *v >= 1.0 => *v as u64,
        _ => 0,
    }
}

/// A body as it is stored: BSON when that is faithful, else JSON text.
#[derive(Debug, Clone)]
pub(super) enum Body {
    Bson(BsonDocument),
    Text(String),
}

impl Body {
    pub(super) fn of(json: &str) -> Result<Body, StoreError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| StoreError::Invalid(format!("document is not valid JSON: {e}")))?;
        let Value::Object(map) = &value else {
            return Err(StoreError::Invalid(
                "a document must be a JSON object".to_owned(),
            ));
        };
        let Some(doc) = object_to_bson(map, 0) else {
            return Ok(Body::Text(json.to_owned()));
        };
        // BSON can be ~9× the JSON (arrays of small numbers): measure only
        // when the JSON is large enough for that to matter.
        if json.len() * 10 > MAX_BSON_BODY {
            let mut bytes = Vec::new();
            if doc.to_writer(&mut bytes).is_err() || bytes.len() > MAX_BSON_BODY {
                return Ok(Body::Text(json.to_owned()));
            }
        }
        Ok(Body::Bson(doc))
    }

    /// The fields holding this body, and those of the other kind of body
    /// (which a write must remove).
    fn fields(&self) -> (BsonDocument, BsonDocument) {
        match self {
            Body::Bson(b) => (doc! {"body": b.clone()}, doc! {"json": "", TEXT_FLAG: ""}),
            Body::Text(t) => (
                doc! {"json": t.as_str(), TEXT_FLAG: true},
                doc! {"body": ""},
            ),
        }
    }

    /// A new stored document with this body, at version 1.
    pub(super) fn created(&self, id: &str, now: DateTime) -> BsonDocument {
        let mut stored = doc! {"_id": id, "version": 1_i64, "created": now, "updated": now};
        stored.extend(self.fields().0);
        stored
    }

    /// The `$set` and `$unset` of an update writing this body.
    pub(super) fn update(&self, version: Option<i64>, now: DateTime) -> BsonDocument {
        let (mut set, unset) = self.fields();
        set.insert("updated", now);
        if let Some(v) = version {
            set.insert("version", v);
        }
        doc! {"$set": set, "$unset": unset}
    }
}

fn key_fits_bson(key: &str) -> bool {
    !key.starts_with('$') && !key.contains(['.', '\0'])
}

fn object_to_bson(map: &Map<String, Value>, depth: usize) -> Option<BsonDocument> {
    if depth >= MAX_BSON_DEPTH {
        return None;
    }
    let mut doc = BsonDocument::new();
    for (k, v) in map {
        if !key_fits_bson(k) {
            return None;
        }
        doc.insert(k.clone(), value_to_bson(v, depth + 1)?);
    }
    Some(doc)
}

/// A JSON value as BSON, or `None` when BSON cannot hold it faithfully.
pub(super) fn value_to_bson(v: &Value, depth: usize) -> Option<Bson> {
    Some(match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => number_to_bson(n)?,
        Value::String(s) => {
            if s.contains('\0') {
                // BSON strings may hold NUL, but a stored body with one
                // could not be matched by a regex; keep such a body as text.
                return None;
            }
            Bson::String(s.clone())
        }
        Value::Array(items) => {
            if depth >= MAX_BSON_DEPTH {
                return None;
            }
            Bson::Array(
                items
                    .iter()
                    .map(|i| value_to_bson(i, depth + 1))
                    .collect::<Option<Vec<_>>>()?,
            )
        }
        Value::Object(map) => Bson::Document(object_to_bson(map, depth)?),
    })
}

pub(super) fn number_to_bson(n: &Number) -> Option<Bson> {
    if let Some(i) = n.as_i64() {
        Some(Bson::Int64(i))
    } else if n.is_u64() {
        // Above i64::MAX: a double would round it.
        None
    } else {
        n.as_f64().map(Bson::Double)
    }
}

/// BSON back to JSON. Only what [`value_to_bson`] writes is expected; a
/// value of another type, put there by other tools, is given as its text.
fn bson_to_value(b: Bson) -> Value {
    match b {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(i) => Value::from(i),
        Bson::Int64(i) => Value::from(i),
        Bson::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s),
        Bson::Array(items) => Value::Array(items.into_iter().map(bson_to_value).collect()),
        Bson::Document(d) => {
            Value::Object(d.into_iter().map(|(k, v)| (k, bson_to_value(v))).collect())
        }
        other => Value::String(other.to_string()),
    }
}

/// A stored document as the store's [`Document`] and its body as a value.
pub(super) fn from_stored(mut stored: BsonDocument) -> Result<(Document, Value), StoreError> {
    let id = match stored.remove("_id") {
        Some(Bson::String(id)) => id,
        other => {
            return Err(StoreError::Unavailable(format!(
                "mongodb: a stored document has a non-string _id {other:?}"
            )))
        }
    };
    let version = version_of(&stored);
    let (value, json) = match (stored.remove("body"), stored.remove("json")) {
        (Some(Bson::Document(body)), _) => {
            let value = bson_to_value(Bson::Document(body));
            let json = value.to_string();
            (value, json)
        }
        (_, Some(Bson::String(text))) => {
            let value = serde_json::from_str(&text).map_err(|e| {
                StoreError::Unavailable(format!("mongodb: document {id:?} is corrupt: {e}"))
            })?;
            (value, text)
        }
        _ => {
            return Err(StoreError::Unavailable(format!(
                "mongodb: document {id:?} has no body"
            )))
        }
    };
    Ok((Document { id, version, json }, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_bson_cannot_hold_stay_text() {
        for json in [
            r#"{"n":18446744073709551615}"#,
            r#"{"$set":1}"#,
            r#"{"a":{"b.c":1}}"#,
            r#"{"s":"nul\u0000"}"#,
        ] {
            assert!(matches!(Body::of(json), Ok(Body::Text(_))), "{json}");
        }
        let deep = format!("{}1{}", r#"{"a":"#.repeat(70), "}".repeat(70));
        assert!(matches!(Body::of(&deep), Ok(Body::Text(_))));
        assert!(matches!(
            Body::of(r#"{"n":-3,"f":2.5,"a":[1,"x",null,true,{"k":{}}]}"#),
            Ok(Body::Bson(_))
        ));
    }

    #[test]
    fn bson_round_trips_json() {
        let json = r#"{"a":[1,"x",null,true,{"k":{}}],"f":2.5,"n":-3,"z":1.0}"#;
        let Ok(Body::Bson(doc)) = Body::of(json) else {
            panic!("not bson")
        };
        assert_eq!(bson_to_value(Bson::Document(doc)).to_string(), json);
    }
}
