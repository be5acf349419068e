//! The path of one event through one reactor, top to bottom: answer a
//! redelivery from its marker, run `on-event` in a fresh sandbox, check the
//! commands it returned, commit its writes, timers, commands and marker
//! together, then send the commands. And a query, which commits nothing.

use std::sync::Arc;

use serde_json::value::RawValue;
use tracing::Instrument;

use super::dispatch::publish_all;
use super::{Host, OUTBOX_LEASE};
use crate::dead_letter::{command_id, marker_id};
use crate::runtime::{LoadedHandler, Wanted};
use parallel_you_core::bus::Publisher;
use parallel_you_core::envelope::{Envelope, Kind, Meta};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::json_depth::{check_depth, MAX_JSON_DEPTH};
use parallel_you_core::names::check_routing_key;
use parallel_you_core::store::{Commit, Committed, Marker, StoreError};
use parallel_you_core::trace;

/// Most commands one event may make a reactor send, unless configured.
pub const DEFAULT_MAX_COMMANDS: usize = 100;

/// Runs of one event when another overtakes it at the commit, before it
/// counts as a failed try.
const CONFLICT_RUNS: u32 = 3;

/// How reactors are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactorConfig {
    /// How a failed event is tried again before it is dead-lettered
    /// (default: 5 tries, 100 ms doubling up to 10 s).
    pub retry: super::RetryPolicy,
    /// Most commands one event may send (0: [`DEFAULT_MAX_COMMANDS`]).
    pub max_commands: usize,
    /// Events of one reactor one host runs at once (0: 1). One at a time
    /// keeps a read model's writes from overtaking each other; more trades
    /// conflicts (each rerun, then retried) for throughput.
    pub concurrency: usize,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            retry: super::RetryPolicy {
                max_attempts: 5,
                first_backoff: std::time::Duration::from_millis(100),
                max_backoff: std::time::Duration::from_secs(10),
            },
            max_commands: DEFAULT_MAX_COMMANDS,
            concurrency: 1,
        }
    }
}

/// What became of one event in one reactor.
#[derive(Debug)]
pub enum Reacted {
    /// Committed now, or found committed before: its commands were sent.
    Done,
    /// Nothing was kept; it may be tried again.
    Failed(ErrorBody),
}

impl Host {
    /// Runs `event` through the reactor of `domain` once (no retry): its
    /// writes, timers, commands and processed marker commit together, then
    /// the commands go out through `out`. An event this reactor already
    /// processed only has its recorded commands sent again.
    pub async fn react(&self, domain: &str, event: &Envelope, out: &dyn Publisher) -> Reacted {
        let Some(reactor) = self.reactor(domain) else {
            return Reacted::Failed(not_found(format!(
                "no reactor serves the domain {domain:?}"
            )));
        };
        let m = &event.meta;
        let span = parallel_you_core::messaging_span!(
            "event",
            "consumer",
            "process",
            format_args!("process {} {}", domain, m.routing_key),
            out.messaging_system(),
            m,
            domain,
            reactor = %domain,
        );
        trace::continue_trace(&span, m.trace().as_ref());
        let reacted = self
            .react_inner(&reactor, event, out)
            .instrument(span)
            .await;
        if matches!(reacted, Reacted::Done) {
            self.metrics.reactor_event(domain);
        }
        reacted
    }

    /// The loaded reactor of `domain`.
    pub(crate) fn reactor(&self, domain: &str) -> Option<Arc<LoadedHandler>> {
        self.registry()
            .handlers()
            .find(|h| h.is_reactor() && h.manifest.domain == domain)
            .cloned()
    }

    async fn react_inner(
        &self,
        reactor: &LoadedHandler,
        event: &Envelope,
        out: &dyn Publisher,
    ) -> Reacted {
        let domain = &reactor.manifest.domain;
        let marker_id = marker_id(domain, &event.meta.message_id);
        match self.store.processed(&marker_id).await {
            Ok(Some(recorded)) => {
                tracing::info!(
                    "already processed by this reactor: sending its recorded commands again"
                );
                let commands: Vec<Envelope> = recorded
                    .iter()
                    .filter_map(|text| serde_json::from_str(text).ok())
                    .collect();
                return if publish_all(out, &commands).await {
                    Reacted::Done
                } else {
                    Reacted::Failed(ErrorBody::new(
                        ErrorCode::Unavailable,
                        "could not send the recorded commands again",
                    ))
                };
            }
            Ok(None) => {}
            Err(err) => {
                return Reacted::Failed(ErrorBody::new(ErrorCode::Unavailable, err.to_string()))
            }
        }
        let mut run = 1;
        loop {
            let outcome = self
                .runtime
                .run_event(reactor, event, self.store.clone())
                .await;
            let wanted = match outcome.result {
                Ok(wanted) => wanted,
                Err(err) => return Reacted::Failed(err),
            };
            let commands = match self.commands_of(reactor, event, wanted) {
                Ok(commands) => commands,
                Err(err) => return Reacted::Failed(err),
            };
            // What it announced goes out before what it asks for, in the
            // same outbox row: a workflow's "started" precedes its first
            // step's answer.
            let mut commands: Vec<Envelope> = outcome.emitted.into_iter().chain(commands).collect();
            trace::stamp(&tracing::Span::current(), &mut commands);
            let now = self.clock.now_ms();
            let commit = Commit {
                ops: outcome.ops,
                marker: Some(Marker {
                    message_id: marker_id.clone(),
                    events: commands.iter().map(Envelope::to_json).collect(),
                    at_ms: now,
                    lease_until_ms: now.saturating_add(OUTBOX_LEASE.as_millis() as u64),
                }),
            };
            return match self.store.commit(&commit).await {
                Ok(Committed::Applied(_)) => {
                    if publish_all(out, &commands).await {
                        if let Err(err) = self.store.mark_sent(&marker_id).await {
                            // The relay sends them again: the same message ids.
                            tracing::warn!(error = %err, "could not mark the commands sent");
                        }
                    }
                    Reacted::Done
                }
                // Another host handled this event first.
                Ok(Committed::Duplicate(_)) => Reacted::Done,
                // Overtaken at the commit by another event: run it again on
                // what that one left, as a handler's command is.
                Err(StoreError::Conflict { .. }) if run < CONFLICT_RUNS => {
                    tracing::info!(run, "overtaken at the commit; running the event again");
                    run += 1;
                    continue;
                }
                Err(err) => Reacted::Failed(match err {
                    StoreError::Conflict { current } => ErrorBody::new(
                        ErrorCode::Conflict,
                        format!("another event changed a document this one wrote (now at version {current}), {CONFLICT_RUNS} runs in a row; nothing of this event was kept"),
                    ),
                    StoreError::Unavailable(m) => ErrorBody::new(ErrorCode::Unavailable, m),
                    StoreError::TooLarge(m) => ErrorBody::new(ErrorCode::LimitExceeded, m),
                    other => ErrorBody::new(ErrorCode::HandlerError, other.to_string()),
                }),
            };
        }
    }

    /// The commands a reactor returned, as envelopes caused by `event`, or
    /// why the event fails: more than the cap, a key its manifest does not
    /// list in `sends`, a body that is not JSON or is over the body limit.
    fn commands_of(
        &self,
        reactor: &LoadedHandler,
        event: &Envelope,
        wanted: Vec<Wanted>,
    ) -> Result<Vec<Envelope>, ErrorBody> {
        let domain = &reactor.manifest.domain;
        let max = self.reactors.max_commands;
        if wanted.len() > max {
            return Err(ErrorBody::new(
                ErrorCode::LimitExceeded,
                format!(
                    "reactor {domain:?} returned {} commands for one event, more than the limit of {max}",
                    wanted.len()
                ),
            ));
        }
        let sends = reactor
            .manifest
            .reactor
            .as_ref()
            .map(|r| r.sends.as_slice())
            .unwrap_or_default();
        let invalid = |msg: String| ErrorBody::new(ErrorCode::InvalidEvent, msg);
        let mut out = Vec::with_capacity(wanted.len());
        for (index, w) in wanted.into_iter().enumerate() {
            check_routing_key(&w.routing_key).map_err(|e| invalid(e.0))?;
            if !sends.contains(&w.routing_key) {
                return Err(invalid(format!(
                    "reactor {domain:?} returned the command {:?}, which its manifest does not list in `sends` ({sends:?})",
                    w.routing_key
                )));
            }
            if w.body.len() > self.max_body {
                return Err(invalid(format!(
                    "command {:?} has a body of {} bytes, over the limit of {}",
                    w.routing_key,
                    w.body.len(),
                    self.max_body
                )));
            }
            check_depth(&w.body, MAX_JSON_DEPTH)
                .map_err(|e| invalid(format!("command {:?}: {e}", w.routing_key)))?;
            let body = RawValue::from_string(w.body).map_err(|e| {
                invalid(format!(
                    "command {:?} has a body that is not JSON: {e}",
                    w.routing_key
                ))
            })?;
            let m = &event.meta;
            let meta = Meta {
                message_id: command_id(domain, &m.message_id, index),
                ..Meta::new(Kind::Command, &w.routing_key)
                    .caused_by(
                        Some(m.correlation_id.clone()),
                        m.session_id.clone(),
                        m.reply_channel.clone(),
                    )
                    .on_behalf_of(m.user_id.clone())
                    .traced(m.trace())
            };
            out.push(Envelope { meta, body });
        }
        Ok(out)
    }

    /// Answers the query `name` of the reactor `domain` with `params` (a
    /// JSON object's text; empty means `{}`), checked against the query's
    /// declared schema, from a fresh instance whose store is read-only.
    /// Errors: `not_found` (no such reactor or query), `validation`, the
    /// sandbox's own (`timeout`, `trap`, `memory_limit`), or the reactor's.
    pub async fn query(&self, domain: &str, name: &str, params: &str) -> Result<String, ErrorBody> {
        let Some(reactor) = self.reactor(domain) else {
            return Err(not_found(format!(
                "no reactor serves the domain {domain:?}; `pyou handlers` lists the reactors and their queries"
            )));
        };
        let declared = reactor
            .manifest
            .reactor
            .as_ref()
            .is_some_and(|r| r.queries.iter().any(|q| q.name == name));
        if !declared {
            return Err(not_found(format!(
                "reactor {domain:?} has no query {name:?}"
            )));
        }
        let params = if params.trim().is_empty() {
            "{}"
        } else {
            params
        };
        if params.len() > self.max_body {
            return Err(validation(format!(
                "the parameters are {} bytes, over the limit of {}",
                params.len(),
                self.max_body
            )));
        }
        check_depth(params, MAX_JSON_DEPTH).map_err(|e| validation(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_str(params)
            .map_err(|e| validation(format!("the parameters are not JSON: {e}")))?;
        if !value.is_object() {
            return Err(validation(
                "the parameters must be a JSON object".to_owned(),
            ));
        }
        if let Some(schema) = reactor.query_schemas.get(name) {
            schema
                .check(&value)
                .map_err(parallel_you_core::schema::Violations::into_error_body)?;
        }
        let answer = self
            .runtime
            .run_query(&reactor, name, params, self.store.clone())
            .await?;
        if answer.len() > self.runtime.limits().max_event_body {
            return Err(ErrorBody::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the answer is {} bytes, over the limit of {}",
                    answer.len(),
                    self.runtime.limits().max_event_body
                ),
            ));
        }
        check_depth(&answer, MAX_JSON_DEPTH)
            .map_err(|e| ErrorBody::new(ErrorCode::HandlerError, format!("the answer: {e}")))?;
        serde_json::from_str::<&RawValue>(&answer).map_err(|e| {
            ErrorBody::new(
                ErrorCode::HandlerError,
                format!("the query answered text that is not JSON: {e}"),
            )
        })?;
        Ok(answer)
    }
}

fn not_found(message: String) -> ErrorBody {
    handler_code("not_found", message)
}

fn validation(message: String) -> ErrorBody {
    handler_code(parallel_you_core::schema::VALIDATION, message)
}

fn handler_code(code: &str, message: String) -> ErrorBody {
    ErrorBody {
        code: Code::Handler(code.to_owned()),
        message,
        context: serde_json::Value::Null,
        command: None,
    }
}
