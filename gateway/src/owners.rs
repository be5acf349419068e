//! Sessions belong to their subject: with authentication on, the first
//! subject to use a session id owns it, and no other may attach to it,
//! post on it or read its events.
//!
//! The binding is a document of the host's domain (`pyou`, collection
//! `sessions`, id the session id, `{"sub": …}`), created only if absent,
//! so it survives a restart of a gateway on the same store and two
//! gateways sharing a store agree on it. A gateway without a store keeps
//! the bindings in memory, at most [`MAX_IN_MEMORY`] of them.

use std::collections::HashMap;
use std::sync::Arc;

use parallel_you_core::store::{Store, StoreError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::rejection::ApiError;

const DOMAIN: &str = "pyou";
const COLLECTION: &str = "sessions";
/// Bindings remembered in memory: all of them without a store, the
/// recently used ones (a cache) with one.
pub(crate) const MAX_IN_MEMORY: usize = 100_000;

#[derive(Serialize, Deserialize)]
struct Owner {
    sub: String,
}

/// Who owns which session.
pub(crate) struct Owners {
    store: Option<Arc<dyn Store>>,
    known: Mutex<HashMap<String, String>>,
}

impl Owners {
    pub(crate) fn new(store: Option<Arc<dyn Store>>) -> Self {
        Owners {
            store,
            known: Mutex::new(HashMap::new()),
        }
    }

    fn refused(session: &str) -> ApiError {
        ApiError::Forbidden {
            message: format!(
                "session {session:?} belongs to another subject; use a session id of your own"
            ),
            missing_scope: None,
        }
    }

    /// Binds `session` to `subject` if nobody owns it yet; refuses it if
    /// another subject does.
    pub(crate) async fn claim(&self, session: &str, subject: &str) -> Result<(), ApiError> {
        let cached = self.known.lock().get(session).cloned();
        if let Some(owner) = cached {
            return if owner == subject {
                Ok(())
            } else {
                Err(Self::refused(session))
            };
        }
        let owner = match &self.store {
            None => subject.to_owned(),
            Some(store) => Self::claim_in(store.as_ref(), session, subject)
                .await
                .map_err(|e| {
                    ApiError::Unavailable(format!("the session store cannot be reached: {e}"))
                })?,
        };
        let mut known = self.known.lock();
        if known.len() >= MAX_IN_MEMORY && !known.contains_key(session) {
            if self.store.is_none() {
                return Err(ApiError::Unavailable(format!(
                    "this gateway holds {MAX_IN_MEMORY} sessions, its most without a store; give it --store"
                )));
            }
            // With a store this is only a cache.
            known.clear();
        }
        // Without a store, a racing claim may have got in first.
        let owner = known.entry(session.to_owned()).or_insert(owner).clone();
        drop(known);
        if owner == subject {
            Ok(())
        } else {
            Err(Self::refused(session))
        }
    }

    /// The owner of `session` in `store`, making it `subject` if none.
    async fn claim_in(
        store: &dyn Store,
        session: &str,
        subject: &str,
    ) -> Result<String, StoreError> {
        let read = |json: &str| {
            serde_json::from_str::<Owner>(json)
                .map(|o| o.sub)
                .map_err(|e| StoreError::Invalid(format!("unreadable session owner: {e}")))
        };
        if let Some(doc) = store.get(DOMAIN, COLLECTION, session).await? {
            return read(&doc.json);
        }
        let json = serde_json::to_string(&Owner {
            sub: subject.to_owned(),
        })
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        match store
            .upsert(DOMAIN, COLLECTION, session, &json, Some(0))
            .await
        {
            Ok(_) => Ok(subject.to_owned()),
            // Another gateway bound it a moment ago.
            Err(StoreError::Conflict { .. }) => match store.get(DOMAIN, COLLECTION, session).await?
            {
                Some(doc) => read(&doc.json),
                None => Err(StoreError::Unavailable(
                    "the session owner vanished while it was read".into(),
                )),
            },
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::store::MemoryStore;

    #[tokio::test]
    async fn the_first_subject_owns_a_session_across_restarts() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let owners = Owners::new(Some(store.clone()));
        assert!(owners.claim("s1", "alice").await.is_ok());
        assert!(owners.claim("s1", "alice").await.is_ok());
        assert!(matches!(
            owners.claim("s1", "bob").await,
            Err(ApiError::Forbidden { .. })
        ));
        // A new gateway on the same store.
        let again = Owners::new(Some(store));
        assert!(matches!(
            again.claim("s1", "bob").await,
            Err(ApiError::Forbidden { .. })
        ));
        assert!(again.claim("s2", "bob").await.is_ok());
        let memory = Owners::new(None);
        assert!(memory.claim("s1", "bob").await.is_ok());
        assert!(memory.claim("s1", "alice").await.is_err());
    }
}
