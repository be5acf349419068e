//! The path of one command, top to bottom: parse or validate it, answer a
//! replay from its record, route it, run it, record it, publish what came
//! out, and count it.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::{dedup, Host};
use crate::faults::{self, Point};
use parallel_you_core::bus::{BusError, Publisher};
use parallel_you_core::envelope::{Envelope, EnvelopeError, Kind};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::names::domain_of;
use parallel_you_core::store::{Commit, Committed, Marker, Op, StoreError};
use parallel_you_core::trace;

/// How long a host that committed a command has to publish its events
/// before any relay may take them from the outbox.
pub(crate) const OUTBOX_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs of one command when another overtakes it at the commit, before its
/// answer is a `conflict` error event.
const CONFLICT_RUNS: u32 = 3;

impl Host {
    /// Handles a message given as envelope JSON text; an invalid one gets an
    /// `invalid_envelope` error event addressed with what could be read.
    pub async fn dispatch_json(&self, text: &str, out: Arc<dyn Publisher>) -> Vec<Envelope> {
        match Envelope::from_json(text, self.max_body) {
            Ok(cmd) => self.dispatch(cmd, out).await,
            Err(err) => self.reject(err, out.as_ref()).await,
        }
    }

    /// Publishes the `invalid_envelope` error event for a message that is
    /// not a valid envelope, and returns it.
    pub async fn reject(&self, err: EnvelopeError, out: &dyn Publisher) -> Vec<Envelope> {
        self.metrics.refused(ErrorCode::InvalidEnvelope.as_str());
        let event = ErrorBody::new(ErrorCode::InvalidEnvelope, err.reason.clone())
            .event_for_partial(&err.partial);
        publish_all(out, std::slice::from_ref(&event)).await;
        vec![event]
    }

    /// Handles one command: runs it in a fresh sandbox of the handler bound
    /// to its routing key, commits its effects with its events, then
    /// publishes them (events it emitted first, then those it returned) or
    /// one error event through `out`. A command whose `message_id` was
    /// already processed is not run again: its recorded events are
    /// published once more. A passing failure of the host's own (the store
    /// away) is not retried here: its error event is published at once.
    /// Returns the events published.
    pub async fn dispatch(&self, cmd: Envelope, out: Arc<dyn Publisher>) -> Vec<Envelope> {
        let handled = self.handle(&cmd, out.clone()).await;
        match handled.retry {
            Some(err) => self.fail(&cmd, err, out.as_ref()).await.events,
            None => handled.events,
        }
    }

    /// [`Host::dispatch`], leaving a passing failure to the caller, who
    /// may deliver the command again.
    pub(super) async fn handle(&self, cmd: &Envelope, out: Arc<dyn Publisher>) -> Handled {
        if let Some(log) = self.command_log.get() {
            // The log never refuses (it counts what it could not keep).
            let _ = log.publish(cmd.clone()).await;
        }
        let m = &cmd.meta;
        // OpenTelemetry's messaging conventions (a consumer's `process`
        // span), exported with `--otlp-endpoint`.
        let span = parallel_you_core::messaging_span!(
            "command",
            "consumer",
            "process",
            format_args!("process {}", m.routing_key),
            out.messaging_system(),
            m,
            domain_of(&m.routing_key),
            session_id = m.session_id.as_deref().unwrap_or(""),
        );
        trace::continue_trace(&span, m.trace().as_ref());
        self.dispatch_inner(cmd, out).instrument(span).await
    }

    async fn dispatch_inner(&self, cmd: &Envelope, out: Arc<dyn Publisher>) -> Handled {
        if let Err(err) = cmd.validate(self.max_body) {
            return Handled::done(self.reject(err, out.as_ref()).await);
        }
        if cmd.meta.kind != Kind::Command {
            let err = ErrorBody::new(
                ErrorCode::InvalidEnvelope,
                "meta.kind is \"event\": only commands can be dispatched",
            );
            return self.fail(cmd, err, out.as_ref()).await;
        }
        // Only the host makes timer message ids (they are sealed): one
        // that merely looks like a timer's is forged.
        let sealed = if cmd.meta.message_id.starts_with(crate::timers::seal::PREFIX) {
            match self.seal().await {
                Ok(seal) if dedup::is_sealed(seal, &cmd.meta) => true,
                Ok(_) => {
                    let err = ErrorBody::new(
                        ErrorCode::Forbidden,
                        format!(
                            "message_id {:?} looks like a timer's, but no timer of this host made it: ids starting with `timer-` are the host's",
                            cmd.meta.message_id
                        ),
                    );
                    return self.fail(cmd, err, out.as_ref()).await;
                }
                Err(err) => {
                    return Handled::retry(ErrorBody::new(ErrorCode::Unavailable, err.to_string()))
                }
            }
        } else {
            false
        };
        let record = dedup::record_id(&cmd.meta, sealed);
        match self.store.processed(&record).await {
            Ok(Some(recorded)) => {
                tracing::info!("already processed: republishing its recorded events");
                self.metrics.replayed();
                return self.replay(&recorded, out.as_ref()).await;
            }
            Ok(None) => {}
            Err(err) => {
                return Handled::retry(ErrorBody::new(ErrorCode::Unavailable, err.to_string()))
            }
        }
        let Some(handler) = self.registry().route(&cmd.meta.routing_key).cloned() else {
            let err = ErrorBody::new(
                ErrorCode::UnknownRoutingKey,
                format!(
                    "no handler serves {:?}; `pyou handlers` lists the routing keys that are served",
                    cmd.meta.routing_key
                ),
            );
            return self.fail(cmd, err, out.as_ref()).await;
        };
        if !sealed && handler.is_internal(&cmd.meta.routing_key) {
            let err = ErrorBody::new(
                ErrorCode::Forbidden,
                format!(
                    "{:?} is internal: only a timer of its domain sends it",
                    cmd.meta.routing_key
                ),
            );
            return self.fail(cmd, err, out.as_ref()).await;
        }
        let started = Instant::now();
        let mut run = 1;
        loop {
            let outcome = self.runtime.run(&handler, cmd, self.store.clone()).await;
            let (events, ops, code) = match outcome.result {
                Ok(tail) => {
                    let mut events = outcome.emitted;
                    events.extend(tail);
                    (events, outcome.ops, None)
                }
                // The host's own passing failure (the store away while the
                // guest ran): nothing is kept, and the command runs again later.
                Err(err) if err.code.is_transient() => {
                    tracing::warn!(code = %err.code, "command failed for a passing reason");
                    return Handled::retry(err);
                }
                // A failed command keeps nothing of what it did, not even the
                // events it emitted before failing: only its error event.
                Err(err) => {
                    tracing::warn!(code = %err.code, "command failed");
                    let code = err.code.clone();
                    (vec![err.event_for(&cmd.meta)], Vec::new(), Some(code))
                }
            };
            faults::reached(Point::AfterGuest);
            let may_rerun = run < CONFLICT_RUNS;
            let Some(handled) = self
                .commit(cmd, &record, events, ops, out.as_ref(), may_rerun)
                .await
            else {
                // Overtaken at the commit, nothing kept: run it again on
                // what the other command left, as if it had come after it
                // (a handler that retries conflicts sees it at call time).
                tracing::info!(run, "overtaken at the commit; running the command again");
                run += 1;
                continue;
            };
            let code = handled.code.clone().or(code);
            self.metrics.command(
                &cmd.meta.routing_key,
                started.elapsed(),
                code.as_ref().map(Code::as_str),
            );
            return handled;
        }
    }

    /// Commits a command's `ops` with its marker (`record`, see
    /// [`dedup::record_id`]) and `events` in one step,
    /// then publishes the events and marks them sent. A conflict (unless
    /// `may_rerun`: then `None`, to run the command again) or a refusal of
    /// the commit becomes the command's error event, committed in place of
    /// its effects; an outage leaves the command to be retried.
    async fn commit(
        &self,
        cmd: &Envelope,
        record: &str,
        mut events: Vec<Envelope>,
        mut ops: Vec<Op>,
        out: &dyn Publisher,
        may_rerun: bool,
    ) -> Option<Handled> {
        let mut code = None;
        loop {
            Envelope::mark_last(&mut events);
            trace::stamp(&tracing::Span::current(), &mut events);
            let now = self.clock.now_ms();
            let marker = Marker {
                message_id: record.to_owned(),
                events: events.iter().map(Envelope::to_json).collect(),
                at_ms: now,
                lease_until_ms: now.saturating_add(OUTBOX_LEASE.as_millis() as u64),
            };
            let commit = Commit {
                ops: std::mem::take(&mut ops),
                marker: Some(marker),
            };
            let err = match self.store.commit(&commit).await {
                Ok(Committed::Applied(_)) => {
                    faults::reached(Point::AfterCommit);
                    if publish_all(out, &events).await {
                        faults::reached(Point::AfterPublish);
                        if let Err(err) = self.store.mark_sent(record).await {
                            // The relay publishes them again: the same
                            // message ids, which consumers deduplicate.
                            tracing::warn!(error = %err, "could not mark the events sent");
                        }
                    }
                    // Unpublished events wait in the outbox for the relay.
                    return Some(Handled {
                        events,
                        retry: None,
                        code,
                    });
                }
                Ok(Committed::Duplicate(_)) => {
                    // Another host committed this command first; its events
                    // are its to publish.
                    tracing::info!("committed by another host meanwhile");
                    return Some(Handled::done(Vec::new()));
                }
                Err(err) => err,
            };
            let body = match err {
                StoreError::Unavailable(m) => {
                    return Some(Handled::retry(ErrorBody::new(ErrorCode::Unavailable, m)))
                }
                StoreError::Conflict { .. } if may_rerun && !commit.ops.is_empty() => return None,
                _ if commit.ops.is_empty() && code.is_some() => {
                    // Not even the error event could be recorded: say it
                    // without a record rather than loop.
                    tracing::error!(error = %err, "could not record the command's error event");
                    let err = ErrorBody::new(ErrorCode::Unavailable, err.to_string());
                    return Some(self.fail(cmd, err, out).await);
                }
                StoreError::Conflict { current } => ErrorBody::new(
                    ErrorCode::Conflict,
                    format!("another command changed a document this one wrote (now at version {current}); nothing of this command was kept"),
                )
                .with_context(serde_json::json!({ "current_version": current })),
                StoreError::TooLarge(m) => ErrorBody::new(ErrorCode::LimitExceeded, m),
                other => ErrorBody::new(ErrorCode::HandlerError, other.to_string()),
            };
            tracing::warn!(code = %body.code, "command not committed");
            code = Some(body.code.clone());
            events = vec![body.event_for(&cmd.meta)];
        }
    }

    /// Publishes a processed command's recorded events again.
    async fn replay(&self, recorded: &[String], out: &dyn Publisher) -> Handled {
        let events: Vec<Envelope> = recorded
            .iter()
            .filter_map(|text| serde_json::from_str(text).ok())
            .collect();
        let published = publish_all(out, &events).await;
        Handled {
            events,
            retry: (!published).then(|| {
                ErrorBody::new(
                    ErrorCode::Unavailable,
                    "could not republish the recorded events",
                )
            }),
            code: None,
        }
    }

    /// Refuses `cmd` with `err`, as dispatch refuses a command it cannot
    /// run: counted, logged, and the error event published through `out`.
    pub(crate) async fn refuse(&self, cmd: &Envelope, err: ErrorBody, out: &dyn Publisher) {
        self.fail(cmd, err, out).await;
    }

    async fn fail(&self, cmd: &Envelope, err: ErrorBody, out: &dyn Publisher) -> Handled {
        self.metrics.refused(err.code.as_str());
        tracing::warn!(code = %err.code, "command refused");
        let mut event = err.clone().event_for(&cmd.meta);
        trace::stamp(&tracing::Span::current(), std::slice::from_mut(&mut event));
        let published = publish_all(out, std::slice::from_ref(&event)).await;
        Handled {
            events: vec![event],
            retry: (!published).then_some(err),
            code: None,
        }
    }
}

/// Publishes `events` in order (the commands a reactor sent among them are
/// sent to their handlers); returns whether all of them went out. A command
/// no handler is bound to gets an `unknown_routing_key` error event in its
/// place: retrying cannot route it.
pub(crate) async fn publish_all(out: &dyn Publisher, events: &[Envelope]) -> bool {
    let mut all = true;
    for event in events {
        let sent = match event.meta.kind {
            Kind::Event => out.publish(event.clone()).await,
            Kind::Command => match out.send_command(event.clone()).await {
                Err(BusError::Unroutable { routing_key }) => {
                    let err = ErrorBody::new(
                        ErrorCode::UnknownRoutingKey,
                        format!("no handler serves {routing_key:?}, which a reactor sent"),
                    );
                    out.publish(err.event_for(&event.meta)).await
                }
                other => other,
            },
        };
        if let Err(err) = sent {
            tracing::error!(error = %err, routing_key = %event.meta.routing_key, "could not publish an event");
            all = false;
        }
    }
    all
}

/// What became of one command.
pub(super) struct Handled {
    /// The events published (or attempted).
    events: Vec<Envelope>,
    /// The command did not finish for a passing reason: deliver it again
    /// later, or give up with this error.
    pub(super) retry: Option<ErrorBody>,
    /// The code the commit turned the command's outcome into, if it did.
    code: Option<Code>,
}

impl Handled {
    fn done(events: Vec<Envelope>) -> Self {
        Handled {
            events,
            retry: None,
            code: None,
        }
    }

    fn retry(err: ErrorBody) -> Self {
        Handled {
            events: Vec::new(),
            retry: Some(err),
            code: None,
        }
    }
}
