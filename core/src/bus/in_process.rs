//! The in-process bus: the default, when one process runs everything.
//!
//! Each domain has one bounded queue shared by its consumers (a full queue
//! makes senders wait: backpressure instead of unbounded memory). Each
//! subscriber has its own unbounded queue, as a RabbitMQ queue would: a slow
//! subscriber never stalls publishers or other subscribers. Events reach
//! all subscribers in one order (the order they were published).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::{
    topic_matches, Binding, Bus, BusError, Deliveries, Delivery, Publisher, Settle, Subscription,
};
use crate::envelope::{Envelope, EnvelopeError};
use crate::host_info::CommandInfo;
use crate::names::{check_event_pattern, check_pattern, check_routing_key};

/// How many commands a domain queue holds before senders wait.
pub const QUEUE_CAPACITY: usize = 10_000;

type Queue = (
    async_channel::Sender<Envelope>,
    async_channel::Receiver<Envelope>,
);

#[derive(Default)]
struct State {
    /// By routing key: the domain it is bound to, and what its manifest
    /// says of it.
    routes: BTreeMap<String, (String, CommandInfo)>,
    queues: HashMap<String, Queue>,
    subscribers: Vec<(String, mpsc::UnboundedSender<Envelope>)>,
    /// Each reactor's patterns and queue, by domain.
    reactors: BTreeMap<String, (BTreeSet<String>, Queue)>,
}

/// A bus inside one process.
#[derive(Default)]
pub struct InProcessBus {
    state: RwLock<State>,
    /// Held while one event is handed to its subscribers, so every
    /// subscriber sees events in one and the same order.
    fan_out: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.read();
        f.debug_struct("InProcessBus")
            .field("routes", &state.routes)
            .field("subscribers", &state.subscribers.len())
            .finish()
    }
}

impl InProcessBus {
    /// A bus with no bindings and no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    fn reactor_queue(state: &mut State, domain: &str) -> Queue {
        state
            .reactors
            .entry(domain.to_owned())
            .or_insert_with(|| (BTreeSet::new(), async_channel::bounded(QUEUE_CAPACITY)))
            .1
            .clone()
    }

    fn queue(state: &mut State, domain: &str) -> Queue {
        state
            .queues
            .entry(domain.to_owned())
            .or_insert_with(|| async_channel::bounded(QUEUE_CAPACITY))
            .clone()
    }
}

/// In-process deliveries need little settling: a message is gone from the
/// queue once received, and the host records processed commands itself.
/// Only a requeue has work to do: the command goes back to its queue.
struct Settled {
    queue: async_channel::Sender<Envelope>,
}

#[async_trait]
impl Settle for Settled {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }
    async fn reject(self: Box<Self>) -> Result<(), BusError> {
        tracing::warn!("dropping a rejected command (the in-process bus has no dead-letter queue)");
        Ok(())
    }
    async fn requeue(
        self: Box<Self>,
        message: Result<Envelope, EnvelopeError>,
    ) -> Result<(), BusError> {
        // Only valid envelopes enter an in-process queue.
        let Ok(command) = message else {
            return Ok(());
        };
        self.queue
            .send(command)
            .await
            .map_err(|_| BusError::Unavailable("the domain queue is gone".to_owned()))
    }
}

#[async_trait]
impl Publisher for InProcessBus {
    async fn publish(&self, event: Envelope) -> Result<(), BusError> {
        let topic = event.topic();
        let mut closed = false;
        let reactors: Vec<async_channel::Sender<Envelope>> = {
            let _order = self.fan_out.lock();
            let state = self.state.read();
            for (pattern, tx) in &state.subscribers {
                if topic_matches(pattern, &topic) && tx.send(event.clone()).is_err() {
                    closed = true;
                }
            }
            state
                .reactors
                .values()
                .filter(|(patterns, _)| {
                    patterns
                        .iter()
                        .any(|p| topic_matches(p, &event.meta.routing_key))
                })
                .map(|(_, (tx, _))| tx.clone())
                .collect()
        };
        // Outside the locks: a full reactor queue makes the publisher wait.
        for tx in reactors {
            if tx.send(event.clone()).await.is_err() {
                return Err(BusError::Unavailable(
                    "a reactor's queue is closed".to_owned(),
                ));
            }
        }
        if closed {
            self.state
                .write()
                .subscribers
                .retain(|(_, tx)| !tx.is_closed());
        }
        Ok(())
    }

    async fn send_command(&self, command: Envelope) -> Result<(), BusError> {
        self.send(command).await
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn send(&self, command: Envelope) -> Result<(), BusError> {
        let sender = {
            let state = self.state.read();
            state
                .routes
                .get(&command.meta.routing_key)
                .and_then(|(domain, _)| state.queues.get(domain))
                .map(|(tx, _)| tx.clone())
        };
        let Some(sender) = sender else {
            return Err(BusError::Unroutable {
                routing_key: command.meta.routing_key.clone(),
            });
        };
        sender
            .send(command)
            .await
            .map_err(|_| BusError::Unavailable("the domain queue is closed".to_owned()))
    }

    async fn bind(&self, domain: &str, commands: &[CommandInfo]) -> Result<(), BusError> {
        for c in commands {
            check_routing_key(&c.routing_key)?;
        }
        let mut state = self.state.write();
        Self::queue(&mut state, domain);
        for c in commands {
            state
                .routes
                .insert(c.routing_key.clone(), (domain.to_owned(), c.clone()));
        }
        Ok(())
    }

    async fn unbind(&self, domain: &str, keys: &[String]) -> Result<(), BusError> {
        let mut state = self.state.write();
        for key in keys {
            if state.routes.get(key).is_some_and(|(d, _)| d == domain) {
                state.routes.remove(key);
            }
        }
        Ok(())
    }

    async fn consume(&self, domain: &str) -> Result<Deliveries, BusError> {
        Ok(deliveries(Self::queue(&mut self.state.write(), domain)))
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.state
            .write()
            .subscribers
            .push((pattern.to_owned(), tx));
        Ok(Subscription::new(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    async fn bindings(&self) -> Result<Vec<Binding>, BusError> {
        Ok(self
            .state
            .read()
            .routes
            .iter()
            .map(|(key, (domain, info))| Binding {
                routing_key: key.clone(),
                domain: domain.clone(),
                info: Some(info.clone()),
            })
            .collect())
    }

    async fn bind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        for p in patterns {
            check_event_pattern(p)?;
        }
        let mut state = self.state.write();
        Self::reactor_queue(&mut state, domain);
        if let Some((bound, _)) = state.reactors.get_mut(domain) {
            bound.extend(patterns.iter().cloned());
        }
        Ok(())
    }

    async fn unbind_reactor(&self, domain: &str, patterns: &[String]) -> Result<(), BusError> {
        if let Some((bound, _)) = self.state.write().reactors.get_mut(domain) {
            for p in patterns {
                bound.remove(p);
            }
        }
        Ok(())
    }

    async fn consume_reactor(&self, domain: &str) -> Result<Deliveries, BusError> {
        let queue = Self::reactor_queue(&mut self.state.write(), domain);
        Ok(deliveries(queue))
    }

    async fn send_to_reactor(&self, domain: &str, event: Envelope) -> Result<(), BusError> {
        let (tx, _) = Self::reactor_queue(&mut self.state.write(), domain);
        tx.send(event)
            .await
            .map_err(|_| BusError::Unavailable("the reactor's queue is closed".to_owned()))
    }
}

/// The deliveries of one queue; a requeue puts a message back in it.
fn deliveries((tx, rx): Queue) -> Deliveries {
    Deliveries::new(futures::stream::unfold((tx, rx), |(tx, rx)| async move {
        let message = rx.recv().await.ok()?;
        let settle = Box::new(Settled { queue: tx.clone() });
        Some((Delivery::new(Ok(message), settle), (tx, rx)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(key: &str) -> Envelope {
        Envelope::command(key, "{}").unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn unbound_command_is_unroutable() {
        let bus = InProcessBus::new();
        let err = bus.send(cmd("x.y")).await.err();
        assert_eq!(
            err,
            Some(BusError::Unroutable {
                routing_key: "x.y".into()
            })
        );
    }

    #[tokio::test]
    async fn each_command_reaches_one_competing_consumer() {
        let bus = InProcessBus::new();
        bus.bind("c", &[CommandInfo::bare("c.go")]).await.ok();
        let mut a = bus.consume("c").await.unwrap_or_else(|e| panic!("{e}"));
        let mut b = bus.consume("c").await.unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..10 {
            bus.send(cmd("c.go"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut got = 0;
        for _ in 0..10 {
            tokio::select! {
                Some(_) = a.next() => got += 1,
                Some(_) = b.next() => got += 1,
            }
        }
        assert_eq!(got, 10);
        let extra = tokio::time::timeout(std::time::Duration::from_millis(50), async {
            tokio::select! { d = a.next() => d, d = b.next() => d }
        })
        .await;
        assert!(extra.is_err(), "a command was delivered twice");
        bus.unbind("c", &["c.go".into()]).await.ok();
        assert!(bus.send(cmd("c.go")).await.is_err());
    }

    #[tokio::test]
    async fn bindings_carry_what_the_manifest_says() {
        let bus = InProcessBus::new();
        let expire = CommandInfo {
            internal: true,
            summary: "a timer's".into(),
            ..CommandInfo::bare("c.expire")
        };
        bus.bind("c", &[CommandInfo::bare("c.go"), expire.clone()])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let infos: Vec<Option<CommandInfo>> = bus
            .bindings()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|b| b.info)
            .collect();
        assert_eq!(infos, [Some(expire), Some(CommandInfo::bare("c.go"))]);
        // Bound again, what it says is replaced.
        bus.bind("c", &[CommandInfo::bare("c.expire")]).await.ok();
        let again = bus.bindings().await.unwrap_or_default();
        assert_eq!(again[0].info, Some(CommandInfo::bare("c.expire")));
    }

    #[tokio::test]
    async fn events_reach_every_matching_subscriber() {
        let bus = InProcessBus::new();
        let mut session = bus
            .subscribe("session.s1.#")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut projection = bus
            .subscribe("#.c.done")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut other = bus
            .subscribe("session.s2.#")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cause = cmd("c.go").with_session("s1");
        let body =
            serde_json::value::RawValue::from_string("{}".into()).unwrap_or_else(|e| panic!("{e}"));
        let ev = Envelope::event_for(&cause.meta, "c.done", body);
        bus.publish(ev.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            session.next().await.map(|e| e.meta.message_id),
            Some(ev.meta.message_id.clone())
        );
        assert_eq!(
            projection.next().await.map(|e| e.meta.message_id),
            Some(ev.meta.message_id)
        );
        let none = tokio::time::timeout(std::time::Duration::from_millis(20), other.next()).await;
        assert!(none.is_err(), "another session received the event");
    }

    #[tokio::test]
    async fn reactors_get_the_events_their_patterns_match_once() {
        let bus = InProcessBus::new();
        bus.bind_reactor("r", &["c.*".into(), "d.#".into()])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut a = bus
            .consume_reactor("r")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut b = bus
            .consume_reactor("r")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cause = cmd("c.go").with_session("s1");
        for key in ["c.done", "c.done.more", "d.x.y", "e.done"] {
            let body = serde_json::value::RawValue::from_string("{}".into())
                .unwrap_or_else(|e| panic!("{e}"));
            bus.publish(Envelope::event_for(&cause.meta, key, body))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut got = Vec::new();
        for _ in 0..2 {
            tokio::select! {
                Some(d) = a.next() => got.push(d.message.map(|e| e.meta.routing_key).ok()),
                Some(d) = b.next() => got.push(d.message.map(|e| e.meta.routing_key).ok()),
            }
        }
        got.sort();
        assert_eq!(got, [Some("c.done".into()), Some("d.x.y".into())]);
        let extra = tokio::time::timeout(std::time::Duration::from_millis(50), async {
            tokio::select! { d = a.next() => d, d = b.next() => d }
        })
        .await;
        assert!(extra.is_err(), "an event was delivered twice or unmatched");
        assert!(bus.bind_reactor("r", &["C.*".into()]).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_subscriber_sees_one_order() {
        let bus = std::sync::Arc::new(InProcessBus::new());
        let mut a = bus.subscribe("#").await.unwrap_or_else(|e| panic!("{e}"));
        let mut b = bus
            .subscribe("session.#")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cause = cmd("c.go").with_session("s");
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let bus = bus.clone();
            let meta = cause.meta.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let body = serde_json::value::RawValue::from_string("{}".into())
                        .unwrap_or_else(|e| panic!("{e}"));
                    bus.publish(Envelope::event_for(&meta, "c.done", body))
                        .await
                        .ok();
                }
            }));
        }
        for t in tasks {
            t.await.ok();
        }
        let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
        for _ in 0..800 {
            seen_a.push(a.next().await.map(|e| e.meta.message_id));
            seen_b.push(b.next().await.map(|e| e.meta.message_id));
        }
        assert_eq!(seen_a, seen_b);
    }
}
