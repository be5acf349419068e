//! Validation of command input: pure checks, no host calls. The limits
//! here are also what `schema.rs` publishes.

use parallel_you_sdk::Error;
use serde_json::json;

use crate::quantum::{self, Quantum};

/// Longest title, in characters.
pub(crate) const MAX_TITLE_CHARS: usize = 200;
/// Longest notes (and sprint goal), in characters.
pub(crate) const MAX_NOTES_CHARS: usize = 10_000;
/// Highest priority number.
pub(crate) const MAX_PRIORITY: u32 = 100;
/// Default priority.
pub(crate) const DEFAULT_PRIORITY: u32 = 1;
/// Longest client-chosen id.
pub(crate) const MAX_ID_CHARS: usize = 64;
/// Longest reference to an existing document, in bytes (the store's limit).
pub(crate) const MAX_REF_BYTES: usize = 256;
/// Default and largest number of threads one `thread.list` returns.
pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 500;
/// Longest free-text filter.
pub(crate) const MAX_TEXT_CHARS: usize = 200;

pub(crate) fn check_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::validation("`title` must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::validation(format!(
            "`title` must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.to_owned())
}

pub(crate) fn check_notes(field: &str, notes: &str) -> Result<String, Error> {
    if notes.chars().count() > MAX_NOTES_CHARS {
        return Err(Error::validation(format!(
            "`{field}` must be at most {MAX_NOTES_CHARS} characters"
        )));
    }
    Ok(notes.to_owned())
}

pub(crate) fn check_priority(priority: Option<u32>) -> Result<u32, Error> {
    let p = priority.unwrap_or(DEFAULT_PRIORITY);
    if p > MAX_PRIORITY {
        return Err(Error::validation(format!(
            "`priority` must be between 0 and {MAX_PRIORITY}, not {p}"
        )));
    }
    Ok(p)
}

pub(crate) fn check_quantum(text: &str) -> Result<Quantum, Error> {
    quantum::parse(text).map_err(|m| Error::validation(m).with_context(json!({ "quantum": text })))
}

/// An id naming an existing document: not empty, no longer than the store
/// allows.
pub(crate) fn check_ref(field: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_REF_BYTES || id.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "`{field}` must be 1 to {MAX_REF_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// The id of a new document: the client's own (`[A-Za-z0-9_-]`, at most 64
/// characters) or `<prefix>_<message id>`, lowercase. Message ids are
/// unique ULIDs, so generated ids are unique, sort by creation time and
/// stay the same when a command is redelivered.
pub(crate) fn new_id(
    message_id: &str,
    prefix: &str,
    requested: Option<&str>,
) -> Result<String, Error> {
    if let Some(id) = requested {
        let ok = !id.is_empty()
            && id.len() <= MAX_ID_CHARS
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(Error::validation(format!(
                "`id` must be 1 to {MAX_ID_CHARS} characters of [A-Za-z0-9_-]"
            ))
            .with_context(json!({ "id": id })));
        }
        return Ok(id.to_owned());
    }
    let suffix: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .take(200)
        .collect();
    if suffix.is_empty() {
        return Err(Error::validation(
            "the command's message id has no usable characters: pass an `id`",
        ));
    }
    Ok(format!("{prefix}_{suffix}"))
}

pub(crate) fn check_expected(id: &str, expected: Option<u64>, current: u64) -> Result<(), Error> {
    match expected {
        Some(v) if v != current => Err(conflict(id, current)),
        _ => Ok(()),
    }
}

pub(crate) fn conflict(id: &str, current: u64) -> Error {
    Error::new(
        "conflict",
        format!("`{id}` has changed: it is at version {current}; read it again and retry"),
    )
    .with_context(json!({ "id": id, "current_version": current }))
}

/// A store conflict, reworded with the id it concerns.
pub(crate) fn with_id(e: Error, id: &str) -> Error {
    if e.code() == "conflict" {
        conflict(id, current_version(&e).unwrap_or(0))
    } else {
        e
    }
}

/// The version a store `conflict` says the document is at.
pub(crate) fn current_version(e: &Error) -> Option<u64> {
    e.context().and_then(|c| c["current_version"].as_u64())
}
