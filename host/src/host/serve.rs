//! Serving: binding the loaded handlers' routing keys on a bus, consuming
//! their domain queues (each delivery through `Host::handle`), keeping the
//! bindings in step with the registry, and stopping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Host;
use crate::faults::{self, Point};
use crate::outbox::OutboxRelay;
use crate::timers::TimerPump;
use parallel_you_core::bus::{Bus, BusError, Publisher};
use parallel_you_core::host_info::{CommandInfo, QueryInfo};

/// How a command that fails for a passing reason of the host's (its store
/// away, a transaction of a crashed host still holding its locks) is tried
/// again before it is dead-lettered with its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The pause before the first retry; it doubles with each one after.
    pub first_backoff: Duration,
    /// The longest pause between two tries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 12 tries over ~76 s: longer than MongoDB's default transaction
    /// lifetime (60 s), after which the transactions of a host that died
    /// mid-commit are aborted and their locks freed.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause after the `tries`-th failed try.
    pub fn backoff(&self, tries: u32) -> Duration {
        self.first_backoff
            .saturating_mul(1u32 << tries.saturating_sub(1).min(16))
            .min(self.max_backoff)
    }
}

/// Commands whose tries are counted at once; past it the oldest counts
/// are forgotten (the command then gets more tries, never endless ones
/// while the host keeps up).
const TRACKED_RETRIES: usize = 10_000;

impl Host {
    /// Binds every loaded handler's routing keys on `bus`, consumes their
    /// domain queues and fires due timers (a [`TimerPump`]), until [`Serving::shutdown`].
    /// Handlers loaded later with [`Host::load_dir`] are bound (and dropped
    /// ones unbound) as they change. At most `4 × max_instances` commands
    /// are taken from the bus at once: the rest wait in their queues.
    pub async fn serve(self: &Arc<Self>, bus: Arc<dyn Bus>) -> Result<Serving, BusError> {
        let mut serving = self.serving.lock().await;
        if serving.is_some() {
            return Err(BusError::Invalid("this host is already serving".to_owned()));
        }
        let stop = CancellationToken::new();
        let inflight = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(
            4 * self.runtime.limits().max_instances.max(1) as usize,
        ));
        let mut state = ServeState {
            bus: bus.clone(),
            stop: stop.clone(),
            inflight: inflight.clone(),
            permits,
            domains: BTreeMap::new(),
            reactors: BTreeMap::new(),
        };
        self.sync_bindings(&mut state).await?;
        *serving = Some(state);
        drop(serving);
        match crate::timers::migrate_legacy(self.store().as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                timers = n,
                "moved timers of an older version to the timer index"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "could not move the timers of an older version")
            }
        }
        let timers = TimerPump::new(self.clone()).spawn(bus.clone(), stop.clone());
        let relay = OutboxRelay::new(self.clone()).spawn(bus, stop.clone());
        Ok(Serving {
            host: self.clone(),
            stop,
            inflight,
            timers,
            relay,
        })
    }

    /// Makes the bus bindings and consumers match the registry.
    pub(super) async fn sync_bindings(
        self: &Arc<Self>,
        state: &mut ServeState,
    ) -> Result<(), BusError> {
        let registry = self.registry();
        let wanted: BTreeMap<String, Vec<CommandInfo>> = registry
            .handlers()
            .filter(|h| !h.is_reactor())
            .map(|h| (h.manifest.domain.clone(), h.manifest.commands.clone()))
            .collect();
        let gone: Vec<String> = state
            .domains
            .keys()
            .filter(|d| !wanted.contains_key(*d))
            .cloned()
            .collect();
        for domain in gone {
            if let Some(old) = state.domains.remove(&domain) {
                state.bus.unbind(&domain, &old.keys).await?;
                old.stop.cancel();
                tracing::info!(domain = %domain, "unbound");
            }
        }
        for (domain, commands) in wanted {
            let keys: Vec<String> = commands.iter().map(|c| c.routing_key.clone()).collect();
            if let Some(current) = state.domains.get_mut(&domain) {
                // A set, not `keys.contains`: a domain may bind 1,000 keys.
                let kept: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
                let dropped: Vec<String> = current
                    .keys
                    .iter()
                    .filter(|k| !kept.contains(k.as_str()))
                    .cloned()
                    .collect();
                state.bus.unbind(&domain, &dropped).await?;
                state.bus.bind(&domain, &commands).await?;
                current.keys = keys;
                continue;
            }
            state.bus.bind(&domain, &commands).await?;
            let deliveries = state.bus.consume(&domain).await?;
            let stop = state.stop.child_token();
            tokio::spawn(
                self.clone()
                    .consume(deliveries, state.clone_for_consumer(stop.clone())),
            );
            tracing::info!(domain = %domain, keys = ?keys, "bound");
            state.domains.insert(domain, DomainState { keys, stop });
        }
        self.sync_reactors(state).await
    }

    /// Makes the reactors' event queues, their patterns and consumers match
    /// the registry. A new version's patterns are bound before the old
    /// ones it dropped are unbound, so no event both match is missed.
    async fn sync_reactors(self: &Arc<Self>, state: &mut ServeState) -> Result<(), BusError> {
        let registry = self.registry();
        let wanted: BTreeMap<String, (Vec<String>, Vec<QueryInfo>)> = registry
            .handlers()
            .filter_map(|h| {
                let r = h.manifest.reactor.as_ref()?;
                Some((
                    h.manifest.domain.clone(),
                    (r.subscribes.clone(), r.queries.clone()),
                ))
            })
            .collect();
        let gone: Vec<String> = state
            .reactors
            .keys()
            .filter(|d| !wanted.contains_key(*d))
            .cloned()
            .collect();
        for domain in gone {
            if let Some(old) = state.reactors.remove(&domain) {
                // The queue stays, bound: events go on collecting for the
                // reactor's return (as a domain's commands do in its queue
                // once its keys are unbound, bar the binding).
                old.stop.cancel();
                tracing::info!(reactor = %domain, "reactor stopped");
            }
        }
        for (domain, (patterns, queries)) in wanted {
            let carried = state.bus.bind_queries(&domain, &queries).await?;
            if let Some(current) = state.reactors.get_mut(&domain) {
                state.bus.bind_reactor(&domain, &patterns).await?;
                let kept: BTreeSet<&str> = patterns.iter().map(String::as_str).collect();
                let dropped: Vec<String> = current
                    .keys
                    .iter()
                    .filter(|k| !kept.contains(k.as_str()))
                    .cloned()
                    .collect();
                if !dropped.is_empty() {
                    state.bus.unbind_reactor(&domain, &dropped).await?;
                }
                current.keys = patterns;
                continue;
            }
            state.bus.bind_reactor(&domain, &patterns).await?;
            let deliveries = state.bus.consume_reactor(&domain).await?;
            let stop = state.stop.child_token();
            tokio::spawn(self.clone().consume_reactor(
                domain.clone(),
                deliveries,
                state.clone_for_consumer(stop.clone()),
            ));
            if carried {
                // A gateway elsewhere asks this reactor's queries on the bus.
                let requests = state.bus.consume_queries(&domain).await?;
                tokio::spawn(
                    self.clone()
                        .answer_queries(requests, state.clone_for_consumer(stop.clone())),
                );
            }
            tracing::info!(reactor = %domain, patterns = ?patterns, "reactor bound");
            state.reactors.insert(
                domain,
                DomainState {
                    keys: patterns,
                    stop,
                },
            );
        }
        Ok(())
    }

    async fn consume(
        self: Arc<Self>,
        mut deliveries: parallel_you_core::bus::Deliveries,
        ctx: ConsumerCtx,
    ) {
        while let Some((permit, delivery)) = ctx.next(&mut deliveries).await {
            let host = self.clone();
            let bus = ctx.bus.clone();
            ctx.inflight.spawn(async move {
                let publisher: Arc<dyn Publisher> = bus;
                let settled = match &delivery.message {
                    Ok(cmd) => {
                        let handled = host.handle(cmd, publisher.clone()).await;
                        match handled.retry {
                            None => {
                                host.retries.forget(&cmd.meta.message_id);
                                faults::reached(Point::AfterMark);
                                delivery.ack().await
                            }
                            Some(err) => {
                                let tries = host.retries.bump(&cmd.meta.message_id);
                                if tries >= host.retry.max_attempts {
                                    // Given up: one error event, and the
                                    // command to the dead-letter queue.
                                    host.retries.forget(&cmd.meta.message_id);
                                    let mut err = err;
                                    err.message = format!(
                                        "{} (given up after {tries} tries; the command is dead-lettered)",
                                        err.message
                                    );
                                    host.refuse(cmd, err, publisher.as_ref()).await;
                                    delivery.reject().await
                                } else {
                                    // A passing failure: back to the queue
                                    // after a growing pause, no event.
                                    tokio::time::sleep(host.retry.backoff(tries)).await;
                                    delivery.requeue().await
                                }
                            }
                        }
                    }
                    Err(err) => {
                        // Not an envelope: retrying cannot help. Dead-letter
                        // it, after telling whoever can be told.
                        host.reject(err.clone(), publisher.as_ref()).await;
                        delivery.reject().await
                    }
                };
                if let Err(err) = settled {
                    // The broker redelivers what was not settled.
                    tracing::warn!(error = %err, "could not settle a command");
                }
                drop(permit);
            });
        }
    }
}

/// What a serving host keeps about its bus.
pub(super) struct ServeState {
    pub(super) bus: Arc<dyn Bus>,
    stop: CancellationToken,
    inflight: TaskTracker,
    permits: Arc<Semaphore>,
    domains: BTreeMap<String, DomainState>,
    /// The reactors bound, by domain (their `keys` are their patterns).
    reactors: BTreeMap<String, DomainState>,
}

struct DomainState {
    keys: Vec<String>,
    stop: CancellationToken,
}

pub(super) struct ConsumerCtx {
    pub(super) bus: Arc<dyn Bus>,
    pub(super) stop: CancellationToken,
    pub(super) inflight: TaskTracker,
    pub(super) permits: Arc<Semaphore>,
}

impl ConsumerCtx {
    /// Waits for one of the host's permits, then for the next delivery:
    /// `None` once stopped or the queue ends. Taking the permit first keeps
    /// what a consumer holds from the broker bounded by what it may run.
    pub(super) async fn next(
        &self,
        deliveries: &mut parallel_you_core::bus::Deliveries,
    ) -> Option<(
        tokio::sync::OwnedSemaphorePermit,
        parallel_you_core::bus::Delivery,
    )> {
        let permit = tokio::select! {
            _ = self.stop.cancelled() => return None,
            p = self.permits.clone().acquire_owned() => p.ok()?,
        };
        let delivery = tokio::select! {
            _ = self.stop.cancelled() => return None,
            d = deliveries.next() => d?,
        };
        Some((permit, delivery))
    }
}

impl ServeState {
    fn clone_for_consumer(&self, stop: CancellationToken) -> ConsumerCtx {
        ConsumerCtx {
            bus: self.bus.clone(),
            stop,
            inflight: self.inflight.clone(),
            permits: self.permits.clone(),
        }
    }
}

/// A serving host: stop it with [`Serving::shutdown`] (or [`Serving::stop`]).
#[derive(Debug)]
pub struct Serving {
    host: Arc<Host>,
    stop: CancellationToken,
    inflight: TaskTracker,
    timers: tokio::task::JoinHandle<()>,
    relay: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Stops taking commands, firing timers and relaying, then waits up to `grace`
    /// for the commands in flight to finish. Returns whether they all did.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.stop.cancel();
        self.timers.abort();
        self.relay.abort();
        self.inflight.close();
        let finished = tokio::time::timeout(grace, self.inflight.wait())
            .await
            .is_ok();
        *self.host.serving.lock().await = None;
        finished
    }

    /// Stops taking commands, firing timers and relaying without waiting.
    pub fn stop(self) {
        self.stop.cancel();
        self.timers.abort();
        self.relay.abort();
        self.inflight.close();
        if let Ok(mut serving) = self.host.serving.try_lock() {
            *serving = None;
        }
    }
}

/// Tries of the commands that failed for a passing reason, by message id.
#[derive(Debug, Default)]
pub(super) struct Retries {
    tries: parking_lot::Mutex<std::collections::HashMap<String, u32>>,
}

impl Retries {
    /// Counts one more failed try of `message_id`; how many there were.
    pub(super) fn bump(&self, message_id: &str) -> u32 {
        let mut tries = self.tries.lock();
        if tries.len() >= TRACKED_RETRIES && !tries.contains_key(message_id) {
            tries.clear();
        }
        let n = tries.entry(message_id.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    pub(super) fn forget(&self, message_id: &str) {
        self.tries.lock().remove(message_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(250));
        assert_eq!(p.backoff(2), Duration::from_millis(500));
        assert_eq!(p.backoff(4), Duration::from_secs(2));
        assert_eq!(p.backoff(10), p.max_backoff);
        assert_eq!(p.backoff(u32::MAX), p.max_backoff);
        let total: Duration = (1..p.max_attempts).map(|t| p.backoff(t)).sum();
        assert!(total > Duration::from_secs(60), "{total:?}");
    }

    #[test]
    fn retries_are_counted_per_command_and_bounded() {
        let r = Retries::default();
        assert_eq!(r.bump("a"), 1);
        assert_eq!(r.bump("a"), 2);
        assert_eq!(r.bump("b"), 1);
        r.forget("a");
        assert_eq!(r.bump("a"), 1);
        for i in 0..TRACKED_RETRIES * 2 {
            r.bump(&i.to_string());
        }
        assert!(r.tries.lock().len() <= TRACKED_RETRIES);
    }
}
