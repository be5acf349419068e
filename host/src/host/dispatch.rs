//! The path of one command, top to bottom: parse or validate it, answer a
//! replay from its record, route it, run it, record it, publish what came
//! out, and count it.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::Host;
use parallel_you_core::bus::Publisher;
use parallel_you_core::envelope::{Envelope, EnvelopeError, Kind};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};

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
    /// to its routing key and publishes its events (events it emits while
    /// running first, then those it returns) or one error event through
    /// `out`. A command whose `message_id` was already processed is not run
    /// again: its recorded events are published once more. Returns the
    /// events published.
    pub async fn dispatch(&self, cmd: Envelope, out: Arc<dyn Publisher>) -> Vec<Envelope> {
        self.handle(&cmd, out).await.events
    }

    /// [`Host::dispatch`], also saying whether the command should be
    /// retried.
    pub(super) async fn handle(&self, cmd: &Envelope, out: Arc<dyn Publisher>) -> Handled {
        let span = tracing::info_span!(
            "command",
            otel.kind = "consumer",
            messaging.operation = "process",
            messaging.destination = %cmd.meta.routing_key,
            messaging.message.id = %cmd.meta.message_id,
            correlation_id = %cmd.meta.correlation_id,
            session_id = cmd.meta.session_id.as_deref().unwrap_or(""),
        );
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
        match self.store.processed(&cmd.meta.message_id).await {
            Ok(Some(recorded)) => {
                tracing::info!("already processed: republishing its recorded events");
                self.metrics.replayed();
                let events: Vec<Envelope> = recorded
                    .iter()
                    .filter_map(|text| serde_json::from_str(text).ok())
                    .collect();
                let published = publish_all(out.as_ref(), &events).await;
                return Handled {
                    events,
                    retry: !published,
                };
            }
            Ok(None) => {}
            Err(err) => {
                let err = ErrorBody::new(ErrorCode::Unavailable, err.to_string());
                let mut handled = self.fail(cmd, err, out.as_ref()).await;
                handled.retry = true;
                return handled;
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
        let started = Instant::now();
        let outcome = self
            .runtime
            .run(&handler, cmd, self.store.clone(), out.clone())
            .await;
        let (tail, code) = match outcome.result {
            Ok(events) => (events, None),
            Err(err) => {
                let code = err.code.clone();
                tracing::warn!(code = %code, "command failed");
                (vec![err.event_for(&cmd.meta)], Some(code))
            }
        };
        let transient = code.as_ref().is_some_and(Code::is_transient);
        let mut retry = transient;
        if !transient {
            // Recorded before the returned events are published: a crash in
            // between republishes them on redelivery instead of losing them.
            let record: Vec<String> = outcome
                .emitted
                .iter()
                .chain(&tail)
                .map(Envelope::to_json)
                .collect();
            if let Err(err) = self
                .store
                .record_processed(&cmd.meta.message_id, &record)
                .await
            {
                tracing::error!(error = %err, "could not record the command as processed");
                retry = true;
            }
        }
        // Emitted events went out while the handler ran; any that failed
        // are in the record, and the retry republishes them.
        let published = outcome.published && publish_all(out.as_ref(), &tail).await;
        self.metrics.command(
            &cmd.meta.routing_key,
            started.elapsed(),
            code.as_ref().map(Code::as_str),
        );
        let mut events = outcome.emitted;
        events.extend(tail);
        Handled {
            events,
            retry: retry || !published,
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
        let event = err.event_for(&cmd.meta);
        let published = publish_all(out, std::slice::from_ref(&event)).await;
        Handled {
            events: vec![event],
            retry: !published,
        }
    }
}

/// Publishes `events` in order; returns whether all of them went out.
pub(super) async fn publish_all(out: &dyn Publisher, events: &[Envelope]) -> bool {
    let mut all = true;
    for event in events {
        if let Err(err) = out.publish(event.clone()).await {
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
    /// The command did not finish for a passing reason: requeue it.
    pub(super) retry: bool,
}

impl Handled {
    fn done(events: Vec<Envelope>) -> Self {
        Handled {
            events,
            retry: false,
        }
    }
}
