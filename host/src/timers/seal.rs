//! Timer message ids nobody but a host can make.
//!
//! A timer's command is recognised by its message id: the handler of
//! `thread.quantum.expire` acts only on the timer it set, and the host
//! lets only a timer send a command its manifest marks internal. An id
//! anyone could write (`timer-<id>`) let a client expire another user's
//! quantum, so the id carries a MAC: `timer-<timer id>.<64 hex digits>`,
//! an HMAC-SHA256 over the domain and the timer id under a key kept in
//! the store (so every host on a shared store makes and checks the same
//! ids, and a restart keeps them valid). Without the key no one can make
//! an id that [`TimerSeal::verify`] accepts.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use parallel_you_core::store::{Store, StoreError};

use super::DOMAIN;

/// The prefix of every timer command's message id.
pub const PREFIX: &str = "timer-";
/// Where the key lives: a document of the host's own domain.
const COLLECTION: &str = "keys";
const KEY_ID: &str = "timer-seal";

/// Makes and checks timer message ids.
pub struct TimerSeal {
    key: hmac::Key,
}

impl std::fmt::Debug for TimerSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimerSeal")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyDoc {
    key: String,
}

impl TimerSeal {
    /// The seal of `store`: its key, made (from the system's random
    /// source) and stored the first time any host asks.
    pub async fn open(store: &dyn Store) -> Result<Self, StoreError> {
        for _ in 0..3 {
            if let Some(doc) = store.get(DOMAIN, COLLECTION, KEY_ID).await? {
                return Self::from_doc(&doc.json);
            }
            let mut bytes = [0u8; 32];
            SystemRandom::new().fill(&mut bytes).map_err(|_| {
                StoreError::Unavailable("no random source for the timer key".into())
            })?;
            let doc = serde_json::to_string(&KeyDoc { key: hex(&bytes) })
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            match store
                .upsert(DOMAIN, COLLECTION, KEY_ID, &doc, Some(0))
                .await
            {
                Ok(_) => return Self::from_doc(&doc),
                // Another host made it first: read theirs.
                Err(StoreError::Conflict { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Err(StoreError::Unavailable(
            "the timer key could not be read or made".into(),
        ))
    }

    fn from_doc(json: &str) -> Result<Self, StoreError> {
        let doc: KeyDoc = serde_json::from_str(json)
            .map_err(|e| StoreError::Invalid(format!("the stored timer key is unreadable: {e}")))?;
        Ok(Self::from_key(doc.key.as_bytes()))
    }

    /// A seal over `key` (tests; hosts use [`TimerSeal::open`]).
    pub fn from_key(key: &[u8]) -> Self {
        TimerSeal {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// What the MAC covers: the domain and the timer id, each ended by a NUL.
    fn signed(domain: &str, timer_id: &str) -> Vec<u8> {
        let mut data = Vec::with_capacity(domain.len() + timer_id.len() + 2);
        for part in [domain, timer_id] {
            data.extend_from_slice(part.as_bytes());
            data.push(0);
        }
        data
    }

    fn mac(&self, domain: &str, timer_id: &str) -> String {
        hex(hmac::sign(&self.key, &Self::signed(domain, timer_id)).as_ref())
    }

    /// The message id of the command of timer `timer_id` of `domain`.
    pub fn message_id(&self, domain: &str, timer_id: &str) -> String {
        format!("{PREFIX}{timer_id}.{}", self.mac(domain, timer_id))
    }

    /// Whether `message_id` is one this seal made for a timer of `domain`.
    pub fn verify(&self, domain: &str, message_id: &str) -> bool {
        let Some((timer_id, mac)) = message_id
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.rsplit_once('.'))
        else {
            return false;
        };
        let Some(tag) = unhex(mac) else {
            return false;
        };
        // `verify` compares in constant time.
        hmac::verify(&self.key, &Self::signed(domain, timer_id), &tag).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::store::MemoryStore;

    #[tokio::test]
    async fn only_the_seal_makes_ids_it_accepts() {
        let store = MemoryStore::new();
        let seal = TimerSeal::open(&store)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let id = seal.message_id("thread", "01ABC");
        assert!(id.starts_with("timer-01ABC."), "{id}");
        assert!(seal.verify("thread", &id));
        // Another domain, a changed id, a forged or missing MAC.
        assert!(!seal.verify("counter", &id));
        assert!(!seal.verify("thread", &id.replace("01ABC", "01ABD")));
        assert!(!seal.verify("thread", "timer-01ABC"));
        assert!(!seal.verify("thread", &format!("timer-01ABC.{}", "0".repeat(64))));
        assert!(!seal.verify("thread", "01ABC"));
        // A second host on the same store reads the same key.
        let again = TimerSeal::open(&store)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.verify("thread", &id));
        // A host on another store does not.
        let other = TimerSeal::open(&MemoryStore::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!other.verify("thread", &id));
    }
}
