//! Serving reactors: each one's event queue consumed (each delivery
//! through `Host::react`), a failed event retried with backoff a bounded
//! number of times, then dead-lettered; and, on a bus that carries them,
//! its query requests answered (through `Host::query`).

use std::sync::Arc;

use super::react::Reacted;
use super::serve::ConsumerCtx;
use super::Host;
use crate::dead_letter::{self, marker_id, DeadLetter, DEAD_LETTERED};
use parallel_you_core::bus::{topic_matches, Bus, Deliveries, Delivery, QueryRequests};
use parallel_you_core::envelope::{Envelope, Kind};
use parallel_you_core::error::ErrorBody;
use parallel_you_core::names::domain_of;

/// Query requests from the bus one host answers at once per reactor.
const QUERY_CONCURRENCY: usize = 16;

impl Host {
    /// Consumes the event queue of the reactor `domain` until stopped.
    pub(super) async fn consume_reactor(
        self: Arc<Self>,
        domain: String,
        mut deliveries: Deliveries,
        ctx: ConsumerCtx,
    ) {
        let own = Arc::new(tokio::sync::Semaphore::new(
            self.reactors.concurrency.max(1),
        ));
        loop {
            let mine = tokio::select! {
                _ = ctx.stop.cancelled() => break,
                p = own.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let Some((permit, delivery)) = ctx.next(&mut deliveries).await else {
                break;
            };
            let host = self.clone();
            let bus = ctx.bus.clone();
            let domain = domain.clone();
            ctx.inflight.spawn(async move {
                if let Err(err) = host
                    .settle_event(&domain, delivery, bus.as_ref(), mine)
                    .await
                {
                    // The broker redelivers what was not settled.
                    tracing::warn!(reactor = %domain, error = %err, "could not settle an event");
                }
                drop(permit);
            });
        }
    }

    /// Answers the query requests a bus carries for one reactor until
    /// stopped, [`QUERY_CONCURRENCY`] at a time (each also takes one of the
    /// host's permits, like an event).
    pub(super) async fn answer_queries(
        self: Arc<Self>,
        mut requests: QueryRequests,
        ctx: ConsumerCtx,
    ) {
        let own = Arc::new(tokio::sync::Semaphore::new(QUERY_CONCURRENCY));
        loop {
            let mine = tokio::select! {
                _ = ctx.stop.cancelled() => break,
                p = own.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let permit = tokio::select! {
                _ = ctx.stop.cancelled() => break,
                p = ctx.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let request = tokio::select! {
                _ = ctx.stop.cancelled() => break,
                r = requests.next() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let host = self.clone();
            ctx.inflight.spawn(async move {
                let answer = host
                    .query(&request.domain, &request.name, &request.params)
                    .await;
                if let Err(err) = request.answer(answer).await {
                    tracing::warn!(error = %err, "could not answer a query");
                }
                drop(permit);
                drop(mine);
            });
        }
    }

    /// Handles one delivery of a reactor's queue and settles it. `turn` is
    /// the reactor's place in its order: once the event is committed it is
    /// given back before the ack goes out, so the next event need not wait
    /// for the broker (a redelivery after a lost ack finds the marker).
    async fn settle_event(
        &self,
        domain: &str,
        delivery: Delivery,
        bus: &dyn Bus,
        turn: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), parallel_you_core::bus::BusError> {
        let event = match &delivery.message {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(reactor = %domain, error = %err, "dropping a message that is not a valid envelope");
                return delivery.reject().await;
            }
        };
        let Some(reactor) = self.reactor(domain) else {
            // Unloaded meanwhile: back to the queue for whoever serves it.
            return delivery.requeue().await;
        };
        if !self.wants(&reactor.manifest, domain, event) {
            return delivery.ack().await;
        }
        let marker = marker_id(domain, &event.meta.message_id);
        match self.react(domain, event, bus).await {
            Reacted::Done => {
                self.retries.forget(&marker);
                drop(turn);
                delivery.ack().await
            }
            Reacted::Failed(err) => {
                // The bus's count covers every host (RabbitMQ carries it
                // in a header); this host's own covers a bus that has none.
                let tries = self
                    .retries
                    .bump(&marker)
                    .max(delivery.attempts().saturating_add(1));
                let policy = self.reactors.retry;
                if tries < policy.max_attempts {
                    tracing::warn!(reactor = %domain, code = %err.code, tries, "event failed; trying again later");
                    self.metrics.reactor_retry(domain);
                    tokio::time::sleep(policy.backoff(tries)).await;
                    return delivery.retry(tries).await;
                }
                match self.dead_letter(domain, event, &err, tries, bus).await {
                    Ok(()) => {
                        self.retries.forget(&marker);
                        delivery.ack().await
                    }
                    Err(keep_err) => {
                        tracing::error!(reactor = %domain, error = %keep_err, "could not keep a dead letter; the event goes back to its queue");
                        tokio::time::sleep(policy.max_backoff).await;
                        delivery.requeue().await
                    }
                }
            }
        }
    }

    /// The domains of the loaded reactors that take `event` (as a serving
    /// host would deliver it): what `pyou invoke --event` runs it through.
    pub fn reactors_for(&self, event: &Envelope) -> Vec<String> {
        self.registry()
            .handlers()
            .filter(|h| h.is_reactor() && self.wants(&h.manifest, &h.manifest.domain, event))
            .map(|h| h.manifest.domain.clone())
            .collect()
    }

    /// Whether the reactor takes `event`: an event whose routing key one of
    /// its patterns matches, or one of its own domain (its timers, which
    /// only it receives). A bus may deliver more (RabbitMQ matches the
    /// topic, reply channel included).
    fn wants(&self, manifest: &crate::Manifest, domain: &str, event: &Envelope) -> bool {
        if event.meta.kind != Kind::Event {
            return false;
        }
        let key = &event.meta.routing_key;
        if key == DEAD_LETTERED && about(event, domain) {
            // A reactor that subscribes to `#` and fails on the news of its
            // own dead letters would otherwise make more forever.
            return false;
        }
        domain_of(key) == domain
            || manifest
                .reactor
                .iter()
                .flat_map(|r| &r.subscribes)
                .any(|p| topic_matches(p, key))
    }

    /// Gives up on `event` (see [`Host::wants`] for why it is never told):
    /// keeps it as a dead letter, on the bus if the bus keeps them
    /// (RabbitMQ's durable dead-letter queue), else in the store, and
    /// announces it with a `pyou.dead_lettered` event.
    async fn dead_letter(
        &self,
        domain: &str,
        event: &Envelope,
        err: &ErrorBody,
        tries: u32,
        bus: &dyn Bus,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let letter = DeadLetter::new(domain, event, err, tries, self.clock.now_ms());
        let json = serde_json::to_string(&letter)?;
        if !bus.keep_dead_letter(domain, &letter.id, &json).await? {
            dead_letter::record(self.store.as_ref(), &letter).await?;
        }
        self.metrics.dead_lettered(domain);
        tracing::error!(
            reactor = %domain,
            code = %err.code,
            tries,
            dead_letter = %letter.id,
            "event dead-lettered: `pyou dlq show {}` tells why, `pyou dlq replay {}` tries it again",
            letter.id,
            letter.id
        );
        let body = serde_json::value::to_raw_value(&letter.announcement())?;
        let announcement = Envelope::event_for(&event.meta, DEAD_LETTERED, body);
        if let Err(e) = bus.publish(announcement).await {
            tracing::warn!(error = %e, "could not announce a dead letter");
        }
        Ok(())
    }
}

/// Whether the dead-letter announcement `event` is about the reactor `domain`.
fn about(event: &Envelope, domain: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Announcement<'a> {
        #[serde(borrow)]
        reactor: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Announcement<'_>>(event.body.get())
        .ok()
        .and_then(|a| a.reactor)
        .is_some_and(|r| r == domain)
}
