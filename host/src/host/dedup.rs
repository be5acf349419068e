//! Under which id a command's processed record is kept.
//!
//! A record keyed by `message_id` alone let one client's command, sent
//! with another's message id, be answered with the other's recorded
//! events (or its own record be republished into the other's stream).
//! So the record of a client's command is scoped to the command's domain
//! and to who sent it: its user (with authentication) or else its session.
//! A timer's command keeps its sealed message id as its record id: only a
//! host can make one, and it already names the timer's domain.

use sha2::{Digest, Sha256};

use crate::timers::TimerSeal;
use parallel_you_core::envelope::Meta;
use parallel_you_core::names::domain_of;

/// The processed record id of the command with this `meta`; `sealed` says
/// its message id is a timer's, verified by the host's [`TimerSeal`].
pub fn record_id(meta: &Meta, sealed: bool) -> String {
    if sealed {
        return meta.message_id.clone();
    }
    let sender = match (&meta.user_id, &meta.session_id) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(session)) => format!("session:{session}"),
        (None, None) => String::new(),
    };
    let mut h = Sha256::new();
    for part in [domain_of(&meta.routing_key), &sender, &meta.message_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("c-{hex}")
}

/// Whether `meta`'s message id is a timer's of its domain, made by `seal`.
pub(crate) fn is_sealed(seal: &TimerSeal, meta: &Meta) -> bool {
    seal.verify(domain_of(&meta.routing_key), &meta.message_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::Kind;

    #[test]
    fn records_are_scoped_by_domain_and_sender() {
        let mut alice = Meta::new(Kind::Command, "thread.start");
        alice.message_id = "m1".to_owned();
        alice.set_session("alice");
        let mut bob = alice.clone();
        bob.set_session("bob");
        let mut other_domain = alice.clone();
        other_domain.routing_key = "counter.get".to_owned();
        let mut as_user = alice.clone();
        as_user.user_id = Some("alice@example".to_owned());
        let ids = [&alice, &bob, &other_domain, &as_user].map(|m| record_id(m, false));
        for (i, a) in ids.iter().enumerate() {
            assert!(a.len() <= 128, "{a}");
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The same sender and message id: one record, whatever the rest.
        let mut again = alice.clone();
        again.correlation_id = "other".to_owned();
        assert_eq!(record_id(&again, false), ids[0]);
        assert_eq!(record_id(&alice, true), "m1");
    }
}
