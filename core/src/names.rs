//! Names and their grammar: every kind of name a message, a manifest or a
//! store call carries is checked here, once.
//!
//! | name | grammar | used for |
//! |---|---|---|
//! | routing key | 2+ dot-separated [`key segments`](is_key_segment) `[a-z0-9_-]`, ≤ 128 bytes | commands, events |
//! | domain | one key segment, ≤ 48 bytes, not [reserved](RESERVED_DOMAINS) | a handler's namespace |
//! | session id | one [token](is_token) `[A-Za-z0-9_-]`, ≤ 128 bytes | a client session |
//! | reply channel | dot-separated tokens, ≤ 120 bytes (`session.<id>`) | where answers go |
//! | message id | 1–128 printable characters | `message_id`, `correlation_id`, `causation_id` |
//! | collection | one token, ≤ 64 bytes | a store collection |
//! | document id | 1–256 bytes, no control characters | a stored document |
//! | topic pattern | dot-separated tokens, `*` or `#`, ≤ 255 bytes | subscriptions |
//! | event pattern | dot-separated key segments, `*` or `#`, ≤ 128 bytes | what a reactor subscribes to |
//! | error code | `[a-z0-9_]`, ≤ 64 bytes | a handler's own error codes |

/// Why a name does not follow its grammar, phrased so its author can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// Largest `message_id`, `correlation_id`, `causation_id` or `session_id`.
pub const MAX_ID_LEN: usize = 128;
/// Largest routing key (AMQP's own limit for a routing key is 255 bytes, and a
/// reply channel is prepended to event keys).
pub const MAX_ROUTING_KEY_LEN: usize = 128;
/// Largest reply channel.
pub const MAX_REPLY_CHANNEL_LEN: usize = 120;
/// Largest domain.
pub const MAX_DOMAIN_LEN: usize = 48;
/// Largest collection name.
pub const MAX_COLLECTION_LEN: usize = 64;
/// Largest document id.
pub const MAX_DOCUMENT_ID_LEN: usize = 256;
/// Largest topic pattern (AMQP's limit for a binding key).
pub const MAX_PATTERN_LEN: usize = 255;
/// Largest error code.
pub const MAX_CODE_LEN: usize = 64;

/// Domains the host keeps for itself: no handler may claim them. (`query`
/// because `/api/query/…` is the gateway's route for reactors' queries.)
pub const RESERVED_DOMAINS: &[&str] = &["pyou", "session", "handler", "system", "query"];

/// Largest user id (a token's `sub`).
pub const MAX_USER_ID_LEN: usize = 256;

/// Prefixes of the message ids the host derives for its own messages (a
/// timer's command, a reactor's commands and markers): a client may never
/// choose one, so no client message can collide with the host's.
pub const HOST_MESSAGE_ID_PREFIXES: &[&str] = &["timer-", "rx-", "rc-"];

/// The prefix of every session's reply channel.
pub const SESSION_PREFIX: &str = "session";

/// Whether `s` is one routing-key segment: `[a-z0-9_-]+`.
pub fn is_key_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` is one token: `[A-Za-z0-9_-]+`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` has 1 to `max` bytes and no control characters.
fn is_printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// Checks the routing key grammar `[a-z0-9_-]+(\.[a-z0-9_-]+)+`.
pub fn check_routing_key(key: &str) -> Result<(), NameError> {
    if key.len() > MAX_ROUTING_KEY_LEN {
        return Err(NameError(format!(
            "routing key is {} bytes, over the limit of {MAX_ROUTING_KEY_LEN}",
            key.len()
        )));
    }
    if !key.split('.').all(is_key_segment) {
        return Err(NameError(format!(
            "routing key {key:?} must be dot-separated lowercase segments of [a-z0-9_-], like `thread.start`"
        )));
    }
    if !key.contains('.') {
        return Err(NameError(format!(
            "routing key {key:?} needs a domain and a name, like `thread.start`"
        )));
    }
    Ok(())
}

/// Checks a domain: one key segment of at most 48 bytes that the host does
/// not keep for itself.
pub fn check_domain(domain: &str) -> Result<(), NameError> {
    if domain.len() > MAX_DOMAIN_LEN || !is_key_segment(domain) {
        return Err(NameError(format!(
            "its domain {domain:?} must be 1 to {MAX_DOMAIN_LEN} characters of [a-z0-9_-]"
        )));
    }
    if RESERVED_DOMAINS.contains(&domain) {
        return Err(NameError(format!(
            "the domain {domain:?} is reserved by the host"
        )));
    }
    Ok(())
}

/// Checks a reply channel: dot-separated segments of `[A-Za-z0-9_-]`.
pub fn check_reply_channel(channel: &str) -> Result<(), NameError> {
    if channel.len() > MAX_REPLY_CHANNEL_LEN || !channel.split('.').all(is_token) {
        return Err(NameError(format!(
            "reply_channel {channel:?} must be at most {MAX_REPLY_CHANNEL_LEN} bytes of dot-separated [A-Za-z0-9_-] segments, like `session.abc123`"
        )));
    }
    Ok(())
}

/// Checks a session id: 1 to 128 characters of `[A-Za-z0-9_-]`.
pub fn check_session_id(id: &str) -> Result<(), NameError> {
    if id.len() > MAX_ID_LEN || !is_token(id) {
        return Err(NameError(format!(
            "session_id {id:?} must be 1 to {MAX_ID_LEN} characters of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

/// Checks a message id (`field` names it in the message): 1 to 128
/// printable characters.
pub fn check_message_id(field: &str, id: &str) -> Result<(), NameError> {
    if !is_printable(id, MAX_ID_LEN) {
        return Err(NameError(format!(
            "{field} must be 1 to {MAX_ID_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Checks a user id: 1 to 256 printable characters.
pub fn check_user_id(id: &str) -> Result<(), NameError> {
    if !is_printable(id, MAX_USER_ID_LEN) {
        return Err(NameError(format!(
            "user_id must be 1 to {MAX_USER_ID_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Checks a message id a client chose: a [message id](check_message_id)
/// that does not start with one of the host's own prefixes.
pub fn check_client_message_id(id: &str) -> Result<(), NameError> {
    check_message_id("message_id", id)?;
    if let Some(prefix) = HOST_MESSAGE_ID_PREFIXES
        .iter()
        .find(|p| id.starts_with(**p))
    {
        return Err(NameError(format!(
            "message_id may not start with {prefix:?}: the host derives such ids for its own messages"
        )));
    }
    Ok(())
}

/// Checks a collection name: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn check_collection(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_COLLECTION_LEN || !is_token(name) {
        return Err(NameError(format!(
            "collection name {name:?} must be 1 to {MAX_COLLECTION_LEN} characters of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

/// Checks a document id: 1 to 256 bytes without control characters.
pub fn check_document_id(id: &str) -> Result<(), NameError> {
    if !is_printable(id, MAX_DOCUMENT_ID_LEN) {
        return Err(NameError(format!(
            "document id must be 1 to {MAX_DOCUMENT_ID_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks a subscription pattern: dot-separated segments of
/// `[A-Za-z0-9_-]`, `*` or `#`.
pub fn check_pattern(pattern: &str) -> Result<(), NameError> {
    let ok = pattern.len() <= MAX_PATTERN_LEN
        && pattern
            .split('.')
            .all(|s| s == "*" || s == "#" || is_token(s));
    if ok {
        Ok(())
    } else {
        Err(NameError(format!(
            "topic pattern {pattern:?} must be dot-separated words, `*` or `#`"
        )))
    }
}

/// Checks a reactor's subscription: a pattern over event routing keys,
/// dot-separated [key segments](is_key_segment), `*` (exactly one segment)
/// or `#` (zero or more), at most [`MAX_ROUTING_KEY_LEN`] bytes. Matched
/// with [`crate::bus::topic_matches`].
pub fn check_event_pattern(pattern: &str) -> Result<(), NameError> {
    if pattern.len() > MAX_ROUTING_KEY_LEN {
        return Err(NameError(format!(
            "event pattern is {} bytes, over the limit of {MAX_ROUTING_KEY_LEN}",
            pattern.len()
        )));
    }
    if !pattern
        .split('.')
        .all(|s| s == "*" || s == "#" || is_key_segment(s))
    {
        return Err(NameError(format!(
            "event pattern {pattern:?} must be dot-separated segments of [a-z0-9_-], `*` (one segment) or `#` (any number), like `thread.*` or `thread.quantum.#`"
        )));
    }
    Ok(())
}

/// Whether `code` can be a handler's own error code: 1 to 64 characters of
/// `[a-z0-9_]`.
pub fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The first segment of a routing key.
pub fn domain_of(routing_key: &str) -> &str {
    routing_key.split('.').next().unwrap_or(routing_key)
}

/// `<domain>.error`: the routing key of the error events answering a
/// command with this routing key.
pub fn error_key(routing_key: &str) -> String {
    format!("{}.error", domain_of(routing_key))
}

/// The reply channel of a session: `session.<id>`.
pub fn session_channel(session_id: &str) -> String {
    format!("{SESSION_PREFIX}.{session_id}")
}

/// The topic pattern matching every event answering a session's commands:
/// `session.<id>.#`.
pub fn session_pattern(session_id: &str) -> String {
    format!("{SESSION_PREFIX}.{session_id}.#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_key_grammar() {
        for good in ["thread.start", "thread.saga.create", "a-b_c.d9"] {
            assert_eq!(check_routing_key(good), Ok(()), "{good:?}");
        }
        for bad in [
            "thread",
            "Thread.start",
            "thread..start",
            ".a",
            "a.",
            "a.b c",
            "",
        ] {
            assert!(check_routing_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_routing_key(&format!("a.{}", "b".repeat(200))).is_err());
    }

    #[test]
    fn domains() {
        assert_eq!(check_domain("thread"), Ok(()));
        for bad in ["", "Thread", "a.b", "pyou", "handler", &"x".repeat(49)] {
            assert!(check_domain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pattern_grammar() {
        for good in ["session.abc.#", "#.thread.started", "*.error", "#"] {
            assert_eq!(check_pattern(good), Ok(()), "{good:?}");
        }
        for bad in ["a..b", "", "a.b c", "a.#x"] {
            assert!(check_pattern(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn event_pattern_grammar() {
        for good in ["thread.*", "thread.quantum.#", "#", "*.started", "a-b_c.d9"] {
            assert_eq!(check_event_pattern(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "thread.",
            "thread..x",
            "Thread.*",
            "thread.*x",
            "thread.#x",
            "a b",
            &format!("a.{}", "b".repeat(200)),
        ] {
            assert!(check_event_pattern(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_and_tokens() {
        assert!(check_session_id("c0ffee-_X").is_ok());
        assert!(check_session_id("a.b").is_err());
        assert!(check_session_id("").is_err());
        assert!(check_message_id("message_id", "01J ok").is_ok());
        assert!(check_message_id("message_id", "a\nb").is_err());
        assert!(check_message_id("message_id", &"x".repeat(129)).is_err());
        assert!(check_document_id(&"x".repeat(256)).is_ok());
        assert!(check_document_id(&"x".repeat(257)).is_err());
        assert!(check_collection("notes_2").is_ok());
        assert!(check_collection("no/slash").is_err());
        assert!(check_reply_channel("session.abc").is_ok());
        assert!(check_reply_channel("session..abc").is_err());
        assert!(check_client_message_id("01JD3").is_ok());
        assert!(check_client_message_id("timer-01JD3").is_err());
        assert!(check_client_message_id("rx-tally-1").is_err());
        assert!(check_user_id("alice@example.com").is_ok());
        assert!(check_user_id("").is_err());
        assert!(is_error_code("not_found"));
        assert!(!is_error_code("Not-Found"));
    }

    #[test]
    fn derived_names() {
        assert_eq!(domain_of("thread.saga.create"), "thread");
        assert_eq!(error_key("thread.saga.create"), "thread.error");
        assert_eq!(session_channel("s1"), "session.s1");
        assert_eq!(session_pattern("s1"), "session.s1.#");
    }
}
