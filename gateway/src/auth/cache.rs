//! Tokens verified before, remembered: a client sends the same token with
//! every request for as long as it lives, and decoding and checking it
//! afresh each time cost the gateway about a tenth of its POST → 202 rate.
//!
//! An entry is keyed by the SHA-256 of the token (the token itself is not
//! kept) and holds what verification found: the subject, the scopes, `exp`
//! and `nbf`, which every use checks again against the clock, so a token
//! expires in the cache as it would outside. Only successes are kept. The
//! cache is bounded in entries and in bytes (the oldest go first), and
//! forgets everything when the keys change (the JWKS file): a
//! verification that was under way across the change is not kept either
//! (each insert names the generation it started in).

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};

use super::jwt::{Verified, EXPIRED, IMMATURE};

/// Most tokens remembered.
pub(super) const MAX_ENTRIES: usize = 10_000;
/// Most bytes the entries may hold, roughly (subjects and scopes included).
pub(super) const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The SHA-256 of a token.
pub(super) type TokenDigest = [u8; 32];

/// The key of `token` in the cache.
pub(super) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// What a verified token's claims bound it to in time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Validity {
    /// `exp`, seconds since the epoch.
    pub(super) exp: u64,
    /// `nbf`, when the token has one.
    pub(super) nbf: Option<u64>,
}

impl Validity {
    /// Why the token is not good at `now` (seconds since the epoch), with
    /// `leeway` seconds either side; `jsonwebtoken`'s own rule.
    pub(super) fn check(&self, now: u64, leeway: u64) -> Result<(), &'static str> {
        if self.exp.saturating_add(leeway) < now {
            return Err(EXPIRED);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(IMMATURE);
        }
        Ok(())
    }
}

struct Entry {
    verified: Verified,
    validity: Validity,
    /// Its place in `order`: a digest removed and inserted again has a new one.
    seq: u64,
    bytes: usize,
}

#[derive(Default)]
struct State {
    /// Bumped when the keys change.
    generation: u64,
    entries: HashMap<TokenDigest, Entry>,
    /// Insertion order, oldest first; may hold digests since removed.
    order: VecDeque<(TokenDigest, u64)>,
    next_seq: u64,
    bytes: usize,
}

impl State {
    fn remove(&mut self, digest: &TokenDigest) {
        if let Some(e) = self.entries.remove(digest) {
            self.bytes -= e.bytes;
        }
    }

    /// Drops the oldest entries until both bounds hold, and the digests of
    /// entries gone from `order` once they are as many as the entries
    /// (each insert pushes one: amortised, a constant per insert).
    fn shrink(&mut self) {
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            let Some((digest, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&digest).is_some_and(|e| e.seq == seq) {
                self.remove(&digest);
            }
        }
        if self.order.len() > 2 * MAX_ENTRIES {
            let entries = &self.entries;
            self.order
                .retain(|(d, seq)| entries.get(d).is_some_and(|e| e.seq == *seq));
        }
    }
}

/// The bounded cache of verified tokens.
#[derive(Default)]
pub(super) struct TokenCache {
    state: Mutex<State>,
}

impl TokenCache {
    /// What the token of `digest` was verified as, if remembered: its
    /// claims if still good at `now`, else why not (and it is forgotten).
    pub(super) fn get(
        &self,
        digest: &TokenDigest,
        now: u64,
        leeway: u64,
    ) -> Option<Result<Verified, String>> {
        let mut state = self.state.lock();
        let entry = state.entries.get(digest)?;
        match entry.validity.check(now, leeway) {
            Ok(()) => Some(Ok(entry.verified.clone())),
            Err(why) => {
                state.remove(digest);
                Some(Err(why.to_owned()))
            }
        }
    }

    /// The generation to name when inserting what is verified next.
    pub(super) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Remembers a token verified with the keys of `generation` (not if
    /// they have changed since).
    pub(super) fn insert(
        &self,
        digest: TokenDigest,
        generation: u64,
        verified: Verified,
        validity: Validity,
    ) {
        let bytes = std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<(TokenDigest, u64)>()
            + verified.subject.len()
            + verified.scopes.heap_bytes();
        let mut state = self.state.lock();
        if state.generation != generation || state.entries.contains_key(&digest) {
            // Another request verified it meanwhile: one entry is enough.
            return;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.order.push_back((digest, seq));
        state.bytes += bytes;
        state.entries.insert(
            digest,
            Entry {
                verified,
                validity,
                seq,
                bytes,
            },
        );
        state.shrink();
    }

    /// Forgets every token: the keys they were verified with changed.
    pub(super) fn invalidate(&self) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.entries.clear();
        state.order.clear();
        state.bytes = 0;
    }

    /// How many tokens and bytes it holds.
    #[cfg(test)]
    pub(super) fn size(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.entries.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;

    fn verified(subject: &str, scopes: Scopes) -> Verified {
        Verified {
            subject: subject.to_owned(),
            scopes,
        }
    }

    const GOOD: Validity = Validity {
        exp: 2_000,
        nbf: Some(1_000),
    };

    #[test]
    fn an_entry_is_checked_against_the_clock_on_every_use() {
        let cache = TokenCache::default();
        let d = digest("a.b.c");
        cache.insert(d, 0, verified("alice", Scopes::unrestricted()), GOOD);
        let hit = cache.get(&d, 1_500, 30);
        assert_eq!(hit.map(|r| r.map(|v| v.subject)), Some(Ok("alice".into())));
        // Within the leeway either side.
        assert!(matches!(cache.get(&d, 2_030, 30), Some(Ok(_))));
        assert!(matches!(cache.get(&d, 970, 30), Some(Ok(_))));
        assert_eq!(
            cache.get(&d, 960, 30).map(|r| r.map(|v| v.subject)),
            Some(Err(IMMATURE.to_owned()))
        );
        // That forgot it; expired likewise.
        assert!(cache.get(&d, 1_500, 30).is_none());
        cache.insert(d, 0, verified("alice", Scopes::unrestricted()), GOOD);
        assert_eq!(
            cache.get(&d, 2_031, 30).map(|r| r.map(|v| v.subject)),
            Some(Err(EXPIRED.to_owned()))
        );
        assert!(cache.get(&d, 1_500, 30).is_none());
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn changed_keys_forget_every_token_and_refuse_late_inserts() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.insert(
            digest("t1"),
            before,
            verified("a", Scopes::unrestricted()),
            GOOD,
        );
        cache.invalidate();
        assert!(cache.get(&digest("t1"), 1_500, 0).is_none());
        // Verified with the old keys, finished after the change: not kept.
        cache.insert(
            digest("t2"),
            before,
            verified("b", Scopes::unrestricted()),
            GOOD,
        );
        assert!(cache.get(&digest("t2"), 1_500, 0).is_none());
        cache.insert(
            digest("t2"),
            cache.generation(),
            verified("b", Scopes::unrestricted()),
            GOOD,
        );
        assert!(cache.get(&digest("t2"), 1_500, 0).is_some());
    }

    #[test]
    fn the_bounds_hold_oldest_first() {
        let cache = TokenCache::default();
        for i in 0..MAX_ENTRIES + 500 {
            cache.insert(
                digest(&format!("t{i}")),
                0,
                verified(&format!("user-{i}"), Scopes::unrestricted()),
                GOOD,
            );
        }
        assert_eq!(cache.size().0, MAX_ENTRIES);
        assert!(cache.get(&digest("t0"), 1_500, 0).is_none(), "oldest out");
        let last = format!("t{}", MAX_ENTRIES + 499);
        assert!(cache.get(&digest(&last), 1_500, 0).is_some());
        // The same token again does not count twice, nor do tokens that
        // came and went.
        for _ in 0..3 {
            cache.insert(
                digest(&last),
                0,
                verified("x", Scopes::unrestricted()),
                GOOD,
            );
        }
        for i in 0..3 * MAX_ENTRIES {
            let d = digest(&format!("gone{i}"));
            cache.insert(d, 0, verified("y", Scopes::unrestricted()), GOOD);
            assert!(matches!(cache.get(&d, 3_000, 0), Some(Err(_))));
        }
        // The first of those made room (one old entry out), the rest took
        // the room the one before left.
        assert_eq!(cache.size().0, MAX_ENTRIES - 1);
        assert!(cache.get(&digest(&last), 1_500, 0).is_some());
        assert!(cache.state.lock().order.len() <= 2 * MAX_ENTRIES);

        // Wide scopes: the byte bound holds before the count does.
        let cache = TokenCache::default();
        let wide: Vec<String> = (0..64)
            .map(|i| format!("domain{i}.{}", "x".repeat(110)))
            .collect();
        let scopes = Scopes::from_entries(wide.iter().map(String::as_str));
        for i in 0..2_000 {
            cache.insert(
                digest(&format!("w{i}")),
                0,
                verified("w", scopes.clone()),
                GOOD,
            );
        }
        let (entries, bytes) = cache.size();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        assert!(entries < 2_000 && entries > 100, "{entries}");
    }
}
