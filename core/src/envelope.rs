//! The envelope: the one JSON shape every message on every bus has.
//!
//! Junctions route on [`Meta`] alone and never rewrite a received envelope;
//! they create new envelopes for new messages ([`Envelope::event_for`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::json_depth::{check_depth, MAX_JSON_DEPTH};
use crate::names::{
    check_message_id, check_reply_channel, check_routing_key, check_session_id, check_user_id,
    domain_of, session_channel, MAX_ROUTING_KEY_LEN,
};
use crate::trace::{self, TraceContext};

/// Default largest body, in bytes of JSON text.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Whether a message is intent (one handler) or outcome (any listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Addressed to exactly one handler.
    Command,
    /// Broadcast to every subscriber.
    Event,
}

/// Routing facts of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Unique id of this message (a ULID when we made it).
    pub message_id: String,
    /// Command or event.
    pub kind: Kind,
    /// `<domain>.<name>[.<name>…]`.
    pub routing_key: String,
    /// Prefix under which the answers to a command are published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_channel: Option<String>,
    /// This message's correlation id.
    pub correlation_id: String,
    /// The correlation id of the message that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The client session answers belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// RFC 3339 UTC time with milliseconds, e.g. `2026-11-23T15:41:09.123Z`.
    pub timestamp: String,
    /// Who sent the command (the subject of the token the gateway
    /// verified): set by the gateway, never taken from a client, carried
    /// by every message the command causes. Absent without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// W3C `traceparent` of the span that sent this message (see
    /// [`crate::trace`]): set by the gateway from the request's header (or
    /// a new trace), by a host for what a command or event causes. Absent
    /// when nothing traces: a message then has the shape it had before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C `tracestate` travelling with [`Meta::traceparent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// On an event: the last one its command caused, so a client waiting for
    /// the answer can stop (the host sets it; see [`Envelope::mark_last`]).
    /// Written only when true, so older readers see the same shape as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub last: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Meta {
    /// The meta of a new message: fresh message and correlation ids, the
    /// current time, no cause, session or reply channel. Every meta the
    /// host makes starts here.
    pub fn new(kind: Kind, routing_key: &str) -> Self {
        Meta {
            message_id: new_id(),
            kind,
            routing_key: routing_key.to_owned(),
            reply_channel: None,
            correlation_id: new_id(),
            causation_id: None,
            session_id: None,
            timestamp: now_rfc3339(),
            user_id: None,
            traceparent: None,
            tracestate: None,
            last: false,
        }
    }

    /// Puts this message in a session: its `session_id`, and the reply
    /// channel `session.<id>` that goes with it.
    pub fn set_session(&mut self, session_id: &str) {
        self.session_id = Some(session_id.to_owned());
        self.reply_channel = Some(session_channel(session_id));
    }

    /// This meta as caused by a message with correlation id `causation_id`,
    /// answering on `session_id` and `reply_channel`.
    pub fn caused_by(
        mut self,
        causation_id: Option<String>,
        session_id: Option<String>,
        reply_channel: Option<String>,
    ) -> Self {
        self.causation_id = causation_id;
        self.session_id = session_id;
        self.reply_channel = reply_channel;
        self
    }

    /// This meta as sent on behalf of `user_id` (see [`Meta::user_id`]).
    pub fn on_behalf_of(mut self, user_id: Option<String>) -> Self {
        self.user_id = user_id;
        self
    }

    /// The trace context this message carries, if it carries a valid one
    /// (an invalid one counts as none: see [`crate::trace`]).
    pub fn trace(&self) -> Option<TraceContext> {
        TraceContext::read(self.traceparent.as_deref(), self.tracestate.as_deref())
    }

    /// Carries `trace` (or none).
    pub fn set_trace(&mut self, trace: Option<TraceContext>) {
        self.traceparent = trace.as_ref().map(TraceContext::traceparent);
        self.tracestate = trace.and_then(|t| t.state);
    }

    /// This meta carrying `trace` (see [`Meta::set_trace`]).
    pub fn traced(mut self, trace: Option<TraceContext>) -> Self {
        self.set_trace(trace);
        self
    }
}

/// One message: routing facts plus a JSON body passed through untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Routing facts.
    pub meta: Meta,
    /// The body, kept as the exact JSON text the sender wrote.
    pub body: Box<RawValue>,
}

/// Why a message is not a valid envelope.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct EnvelopeError {
    /// What is wrong, phrased so the sender can fix it.
    pub reason: String,
    /// Whatever routing facts could still be read, so the error can be
    /// reported back to the sender's session.
    pub partial: PartialMeta,
}

/// The routing facts of an invalid message that could still be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialMeta {
    /// `meta.routing_key`, if it was a string.
    pub routing_key: Option<String>,
    /// `meta.correlation_id`, if it was a string.
    pub correlation_id: Option<String>,
    /// `meta.session_id`, if it was a valid session id.
    pub session_id: Option<String>,
    /// `meta.reply_channel`, if it was a valid reply channel.
    pub reply_channel: Option<String>,
}

impl Envelope {
    /// A new command with fresh ids and the current time.
    ///
    /// ```
    /// use parallel_you_core::envelope::Envelope;
    /// let cmd = Envelope::command("counter.increment", r#"{"name":"a"}"#)?;
    /// assert_eq!(cmd.meta.routing_key, "counter.increment");
    /// # Ok::<(), parallel_you_core::envelope::EnvelopeError>(())
    /// ```
    pub fn command(routing_key: &str, body_json: &str) -> Result<Self, EnvelopeError> {
        let body = parse_body(body_json, DEFAULT_MAX_BODY, &PartialMeta::default())?;
        let env = Envelope {
            meta: Meta::new(Kind::Command, routing_key),
            body,
        };
        env.validate(DEFAULT_MAX_BODY)?;
        Ok(env)
    }

    /// Sets the session, and the reply channel `session.<id>` that goes with it.
    pub fn with_session(mut self, session_id: &str) -> Self {
        self.meta.set_session(session_id);
        self
    }

    /// Parses and validates an envelope from JSON text.
    pub fn from_json(text: &str, max_body: usize) -> Result<Self, EnvelopeError> {
        match serde_json::from_str::<Envelope>(text) {
            Ok(env) => {
                env.validate(max_body)?;
                Ok(env)
            }
            Err(err) => Err(EnvelopeError {
                reason: format!("not a valid envelope: {err}"),
                partial: PartialMeta::read(text),
            }),
        }
    }

    /// Checks the meta grammar and the body size.
    pub fn validate(&self, max_body: usize) -> Result<(), EnvelopeError> {
        let fail = |reason: String| EnvelopeError {
            reason,
            partial: PartialMeta::of(&self.meta),
        };
        let name = |e: crate::names::NameError| fail(e.0);
        let m = &self.meta;
        check_message_id("message_id", &m.message_id).map_err(name)?;
        check_message_id("correlation_id", &m.correlation_id).map_err(name)?;
        if let Some(c) = &m.causation_id {
            check_message_id("causation_id", c).map_err(name)?;
        }
        if let Some(s) = &m.session_id {
            check_session_id(s).map_err(name)?;
        }
        check_routing_key(&m.routing_key).map_err(name)?;
        if let Some(r) = &m.reply_channel {
            check_reply_channel(r).map_err(name)?;
        }
        if let Some(u) = &m.user_id {
            check_user_id(u).map_err(name)?;
        }
        trace::check_fields(m.traceparent.as_deref(), m.tracestate.as_deref()).map_err(fail)?;
        parse_timestamp_ms(&m.timestamp).map_err(fail)?;
        if self.body.get().len() > max_body {
            return Err(fail(format!(
                "body is {} bytes, over the limit of {max_body} bytes",
                self.body.get().len()
            )));
        }
        check_depth(self.body.get(), MAX_JSON_DEPTH).map_err(fail)?;
        Ok(())
    }

    /// A new event that no command caused (the host's own, such as
    /// `handler.loaded`): fresh ids, no session, no reply channel.
    pub fn event(routing_key: &str, body: Box<RawValue>) -> Self {
        Envelope {
            meta: Meta::new(Kind::Event, routing_key),
            body,
        }
    }

    /// A new event caused by the command `cause`: it carries the command's
    /// correlation id as causation id, its session and reply channel, and
    /// its trace context (a tracing host puts its own span's in its place
    /// when it commits, `crate::trace::onward`).
    pub fn event_for(cause: &Meta, routing_key: &str, body: Box<RawValue>) -> Self {
        Envelope {
            meta: Meta::new(Kind::Event, routing_key)
                .caused_by(
                    Some(cause.correlation_id.clone()),
                    cause.session_id.clone(),
                    cause.reply_channel.clone(),
                )
                .on_behalf_of(cause.user_id.clone())
                .traced(cause.trace()),
            body,
        }
    }

    /// Marks the last of a command's `events` as its last (and no other):
    /// a command's answer is complete when its `last` event has arrived.
    pub fn mark_last(events: &mut [Envelope]) {
        let n = events.len();
        for (i, event) in events.iter_mut().enumerate() {
            event.meta.last = i + 1 == n;
        }
    }

    /// The topic an event is published under: `<reply_channel>.<routing_key>`,
    /// or the routing key alone when there is no reply channel.
    pub fn topic(&self) -> String {
        match &self.meta.reply_channel {
            Some(r) => format!("{r}.{}", self.meta.routing_key),
            None => self.meta.routing_key.clone(),
        }
    }

    /// The envelope as compact JSON text.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and a RawValue cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The first segment of the routing key.
    pub fn domain(&self) -> &str {
        domain_of(&self.meta.routing_key)
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl PartialMeta {
    /// Reads what it can from a message that failed to parse as an envelope.
    pub fn read(text: &str) -> Self {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return Self::default();
        };
        let meta = value.get("meta");
        let field = |name: &str| {
            meta.and_then(|m| m.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        PartialMeta {
            routing_key: field("routing_key").filter(|k| k.len() <= MAX_ROUTING_KEY_LEN),
            correlation_id: field("correlation_id")
                .filter(|c| check_message_id("correlation_id", c).is_ok()),
            session_id: field("session_id").filter(|s| check_session_id(s).is_ok()),
            reply_channel: field("reply_channel").filter(|r| check_reply_channel(r).is_ok()),
        }
    }

    /// These routing facts moved into a session (see [`Meta::set_session`]).
    pub fn in_session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self.reply_channel = Some(session_channel(session_id));
        self
    }

    /// The routing facts of a whole meta.
    pub fn of(meta: &Meta) -> Self {
        PartialMeta {
            routing_key: Some(meta.routing_key.clone()),
            correlation_id: Some(meta.correlation_id.clone()),
            session_id: meta.session_id.clone(),
            reply_channel: meta.reply_channel.clone(),
        }
    }
}

/// Parses a body given as JSON text, refusing anything that is not one JSON value.
pub fn parse_body(
    json: &str,
    max_body: usize,
    partial: &PartialMeta,
) -> Result<Box<RawValue>, EnvelopeError> {
    if json.len() > max_body {
        return Err(EnvelopeError {
            reason: format!(
                "body is {} bytes, over the limit of {max_body} bytes",
                json.len()
            ),
            partial: partial.clone(),
        });
    }
    RawValue::from_string(json.trim().to_owned()).map_err(|err| EnvelopeError {
        reason: format!("body is not valid JSON: {err}"),
        partial: partial.clone(),
    })
}

/// A new unique, time-ordered id (ULID), monotonic within the process:
/// ids made in one millisecond sort in the order they were made, so what
/// is ordered by time and then id (the event log, a session's replay)
/// keeps that order.
pub fn new_id() -> String {
    static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let next = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .generate();
    // Past 2^80 ids in one millisecond: a random one rather than none.
    next.unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp.
pub fn parse_timestamp_ms(ts: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339_weak(ts)
        .map_err(|e| format!("timestamp {ts:?} is not RFC 3339 ({e})"))?;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_one_after_another_sort_in_that_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn parses_and_round_trips_body_untouched() {
        let cmd =
            Envelope::command("counter.get", r#"{ "name" : "a" }"#).map(|c| c.with_session("s1"));
        let cmd = match cmd {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let text = cmd.to_json();
        let back = Envelope::from_json(&text, DEFAULT_MAX_BODY).map_err(|e| e.to_string());
        let back = back.as_ref().map(|b| (b.body.get(), &b.meta));
        assert_eq!(back, Ok((r#"{ "name" : "a" }"#, &cmd.meta)));
        assert_eq!(cmd.meta.reply_channel.as_deref(), Some("session.s1"));
    }

    #[test]
    fn invalid_envelope_keeps_what_it_can_read() {
        let text =
            r#"{"meta":{"routing_key":"x.y","correlation_id":"c1","session_id":"s1"},"body":{}}"#;
        let err = Envelope::from_json(text, DEFAULT_MAX_BODY).err();
        let partial = err.map(|e| e.partial);
        assert_eq!(
            partial,
            Some(PartialMeta {
                routing_key: Some("x.y".into()),
                correlation_id: Some("c1".into()),
                session_id: Some("s1".into()),
                reply_channel: None,
            })
        );
    }

    #[test]
    fn body_limit_is_enforced() {
        let big = format!("\"{}\"", "x".repeat(100));
        assert!(parse_body(&big, 50, &PartialMeta::default()).is_err());
        assert!(parse_body("{not json", 50, &PartialMeta::default()).is_err());
    }

    #[test]
    fn deep_bodies_are_invalid() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Envelope::command("a.b", &deep(MAX_JSON_DEPTH)).is_ok());
        let err = Envelope::command("a.b", &deep(MAX_JSON_DEPTH + 1)).err();
        assert!(err.is_some_and(|e| e.reason.contains("nests")));
        let ok = Envelope::command("a.b", "{}").map(|c| c.to_json());
        let Ok(text) = ok else { panic!() };
        let text = text.replace(r#""body":{}"#, &format!(r#""body":{}"#, deep(100)));
        assert!(Envelope::from_json(&text, DEFAULT_MAX_BODY).is_err());
    }

    #[test]
    fn event_carries_cause() {
        let cmd = Envelope::command("a.b", "{}").map(|c| c.with_session("s"));
        let Ok(cmd) = cmd else { panic!() };
        let body = RawValue::from_string("1".into()).unwrap_or_else(|_| panic!());
        let ev = Envelope::event_for(&cmd.meta, "a.done", body);
        assert_eq!(
            ev.meta.causation_id.as_ref(),
            Some(&cmd.meta.correlation_id)
        );
        assert_eq!(ev.meta.session_id.as_deref(), Some("s"));
        assert_eq!(ev.topic(), "session.s.a.done");
        assert_eq!(ev.meta.kind, Kind::Event);
        assert_eq!(ev.meta.traceparent, None, "no trace, no field");
        assert!(!ev.to_json().contains("trace"));
    }

    #[test]
    fn trace_context_is_carried_and_bounded() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let Ok(mut cmd) = Envelope::command("a.b", "{}") else {
            panic!()
        };
        cmd.meta
            .set_trace(TraceContext::read(Some(tp), Some("a=b")));
        let text = cmd.to_json();
        let back = Envelope::from_json(&text, DEFAULT_MAX_BODY).map(|e| e.meta);
        assert_eq!(back.as_ref().ok(), Some(&cmd.meta));
        let body = RawValue::from_string("1".into()).unwrap_or_else(|_| panic!());
        let ev = Envelope::event_for(&cmd.meta, "a.done", body);
        assert_eq!(ev.meta.traceparent.as_deref(), Some(tp));
        assert_eq!(ev.meta.tracestate.as_deref(), Some("a=b"));

        // An unreadable one is kept off what it causes, and costs nothing.
        cmd.meta.traceparent = Some("00-nope".into());
        assert!(cmd.validate(DEFAULT_MAX_BODY).is_ok());
        assert_eq!(cmd.meta.trace(), None);
        let body = RawValue::from_string("1".into()).unwrap_or_else(|_| panic!());
        let ev = Envelope::event_for(&cmd.meta, "a.done", body);
        assert_eq!((ev.meta.traceparent, ev.meta.tracestate), (None, None));
        // One past its bound makes the message invalid, like any meta field.
        cmd.meta.tracestate = Some("x".repeat(trace::MAX_TRACESTATE_LEN + 1));
        assert!(cmd.validate(DEFAULT_MAX_BODY).is_err());
    }
}
