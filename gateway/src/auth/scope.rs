//! What a token may do: its `scope` claim (or `scp`), a space-separated
//! string or a list.
//!
//! | entry | allows |
//! |---|---|
//! | a routing-key pattern (`thread.*`, `counter.get`, `thread.#`) | sending the commands it matches |
//! | `query.<domain>.<name>` patterns (`query.effort.*`) | running the queries it matches |
//! | `events:follow` | `/ws?follow=`: other sessions' events |
//!
//! A token without a `scope` claim may send every command and run every
//! query, but not follow; one with a claim only what it lists. Entries
//! that are none of these (`openid`, `profile`) grant nothing.

use parallel_you_core::bus::topic_matches;
use parallel_you_core::names::check_event_pattern;
use serde::Deserialize;

/// The scope that lets a socket follow other sessions' events.
pub const FOLLOW: &str = "events:follow";
/// The first segment of a query's name in a scope: `query.<domain>.<name>`.
const QUERY: &str = "query";
/// Most entries kept from one token.
const MAX_ENTRIES: usize = 64;
/// Most `#` segments in one entry: matching backtracks over each.
const MAX_HASHES: usize = 2;

/// A `scope` claim as tokens spell it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ScopeClaim {
    /// `"thread.* counter.get"`.
    Text(String),
    /// `["thread.*", "counter.get"]`.
    List(Vec<String>),
}

/// What a caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    /// No claim: every command and query.
    unrestricted: bool,
    patterns: Vec<String>,
    follow: bool,
}

impl Scopes {
    /// Everything a client can do but follow: no authentication, or a
    /// token without a scope claim.
    pub fn unrestricted() -> Self {
        Scopes {
            unrestricted: true,
            patterns: Vec::new(),
            follow: false,
        }
    }

    /// The scopes of a claim (`None`: the token has none).
    pub(crate) fn from_claim(claim: Option<ScopeClaim>) -> Self {
        let entries: Vec<String> = match claim {
            None => return Self::unrestricted(),
            Some(ScopeClaim::Text(t)) => t.split_whitespace().map(str::to_owned).collect(),
            Some(ScopeClaim::List(l)) => l,
        };
        Self::from_entries(entries.iter().map(String::as_str))
    }

    /// The scopes listing `entries`.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Self {
        let mut scopes = Scopes {
            unrestricted: false,
            patterns: Vec::new(),
            follow: false,
        };
        for entry in entries.into_iter().take(MAX_ENTRIES) {
            if entry == FOLLOW {
                scopes.follow = true;
            } else if check_event_pattern(entry).is_ok()
                && entry.split('.').filter(|s| *s == "#").count() <= MAX_HASHES
            {
                scopes.patterns.push(entry.to_owned());
            }
        }
        scopes
    }

    /// The same, also allowed to follow (the gateway without
    /// authentication lets every socket follow).
    pub fn with_follow(mut self) -> Self {
        self.follow = true;
        self
    }

    fn allows(&self, name: &str) -> bool {
        self.unrestricted || self.patterns.iter().any(|p| topic_matches(p, name))
    }

    /// Whether the command `routing_key` may be sent; else the scope
    /// missing.
    pub fn command(&self, routing_key: &str) -> Result<(), String> {
        // A command's routing key never starts with `query` (a reserved
        // domain), so no query scope allows a command.
        if self.allows(routing_key) {
            Ok(())
        } else {
            Err(routing_key.to_owned())
        }
    }

    /// Whether the query `name` of `domain` may be run; else the scope
    /// missing.
    pub fn query(&self, domain: &str, name: &str) -> Result<(), String> {
        let scope = format!("{QUERY}.{domain}.{name}");
        if self.allows(&scope) {
            Ok(())
        } else {
            Err(scope)
        }
    }

    /// Whether a socket may follow other sessions' events.
    pub fn may_follow(&self) -> bool {
        self.follow
    }

    /// The bytes its patterns hold, roughly: what remembering it costs.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.patterns.capacity() * std::mem::size_of::<String>()
            + self.patterns.iter().map(String::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_lists_what_may_be_done() {
        let s = Scopes::from_claim(Some(ScopeClaim::Text(
            "thread.* counter.get query.effort.by_saga openid".into(),
        )));
        assert_eq!(s.command("thread.start"), Ok(()));
        assert_eq!(s.command("counter.get"), Ok(()));
        assert_eq!(
            s.command("thread.saga.create"),
            Err("thread.saga.create".into())
        );
        assert_eq!(
            s.command("counter.increment"),
            Err("counter.increment".into())
        );
        assert_eq!(s.query("effort", "by_saga"), Ok(()));
        assert_eq!(
            s.query("effort", "by_day"),
            Err("query.effort.by_day".into())
        );
        assert!(!s.may_follow());
        let all = Scopes::from_claim(None);
        assert_eq!(all.command("anything.at_all"), Ok(()));
        assert_eq!(all.query("effort", "by_day"), Ok(()));
        assert!(!all.may_follow());
        let list = Scopes::from_claim(Some(ScopeClaim::List(vec![
            "thread.#".into(),
            FOLLOW.into(),
        ])));
        assert_eq!(list.command("thread.saga.create"), Ok(()));
        assert!(list.may_follow());
        // Patterns too costly to match grant nothing.
        let hashes = Scopes::from_entries(["#.#.#.x"]);
        assert!(hashes.command("a.x").is_err());
        // An empty claim grants nothing.
        assert!(Scopes::from_claim(Some(ScopeClaim::Text(String::new())))
            .command("thread.start")
            .is_err());
    }
}
