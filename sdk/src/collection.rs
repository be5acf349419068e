//! Typed collections of the domain's document store.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::bindings::parallel_you::handler::store;
use crate::Error;

/// A stored document decoded as `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc<T> {
    /// The document's id within its collection.
    pub id: String,
    /// Its version: 1 after the first write, one more after each write.
    pub version: u64,
    /// Its content.
    pub value: T,
}

/// One collection of the domain's document store, whose documents are
/// JSON-encoded `T`s. Get one with [`Ctx::collection`](crate::Ctx::collection).
pub struct Collection<'a, T> {
    name: &'a str,
    doc: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Collection<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .finish()
    }
}

impl<'a, T> Collection<'a, T> {
    /// The collection `name`; [`Ctx::collection`](crate::Ctx::collection)
    /// is the public way to one.
    pub(crate) fn new(name: &'a str) -> Self {
        Collection {
            name,
            doc: PhantomData,
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Writes `value` under `id` and returns the new version.
    ///
    /// `expected_version`: `None` writes unconditionally, `Some(0)` only
    /// creates, `Some(v)` only replaces version `v`. A mismatch fails with
    /// code `conflict` and context `{"current_version": n}`.
    pub fn put(&self, id: &str, value: &T, expected_version: Option<u64>) -> Result<u64, Error>
    where
        T: Serialize,
    {
        let json = serde_json::to_string(value)?;
        Ok(store::upsert(self.name, id, &json, expected_version)?)
    }

    /// Deletes the document; `true` if it existed.
    pub fn delete(&self, id: &str) -> Result<bool, Error> {
        Ok(store::delete(self.name, id)?)
    }

    /// Deletes every document of the collection.
    pub fn clear(&self) -> Result<(), Error> {
        Ok(store::clear(self.name)?)
    }
}

impl<T: DeserializeOwned> Collection<'_, T> {
    /// The document with this id, if any.
    pub fn get(&self, id: &str) -> Result<Option<Doc<T>>, Error> {
        store::get(self.name, id)?
            .map(|d| decode(self.name, d))
            .transpose()
    }

    /// The document with this id, or an error with code `not_found`.
    pub fn require(&self, id: &str) -> Result<Doc<T>, Error> {
        self.get(id)?.ok_or_else(|| {
            Error::not_found(format!("no `{id}` in `{}`", self.name))
                .with_context(serde_json::json!({ "collection": self.name, "id": id }))
        })
    }

    /// The documents matching `filter`, ordered by id.
    ///
    /// `filter` is a JSON object (`{}` matches everything) mapping field
    /// paths (`a.b`) to a value the field must equal or an operator object
    /// (`{"$ne": v}`, `{"$in": [..]}`, `{"$exists": bool}`,
    /// `{"$contains": "text"}`); `"$limit": n` caps the results.
    pub fn list(&self, filter: Value) -> Result<Vec<Doc<T>>, Error> {
        let filter = if filter.is_null() {
            Cow::Borrowed("{}")
        } else {
            Cow::Owned(filter.to_string())
        };
        store::list(self.name, &filter)?
            .into_iter()
            .map(|d| decode(self.name, d))
            .collect()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    collection: &str,
    d: store::Document,
) -> Result<Doc<T>, Error> {
    match serde_json::from_str(&d.json) {
        Ok(value) => Ok(Doc {
            id: d.id,
            version: d.version,
            value,
        }),
        Err(e) => Err(Error::internal(format!(
            "stored document `{}` in `{collection}` does not decode: {e}",
            d.id
        ))),
    }
}
