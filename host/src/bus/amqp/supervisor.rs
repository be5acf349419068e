//! The connection: one supervisor that keeps it up, and the restart policy
//! of the consumers that run on it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::mpsc;

use super::mandatory::MandatoryChannels;
use super::topology::{declare_domain, declare_reactor, declare_topology};
use super::{redact, Shared};

/// First and longest wait between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// A live connection: its publishing channel (confirms on), the channels
/// of its mandatory publishes, and a number
/// that changes at each reconnection.
#[derive(Clone)]
pub(super) struct Link {
    pub(super) conn: Arc<Connection>,
    /// In an `Arc` because every publish clones the link, and a lapin
    /// `Channel` is some fifteen `Arc`s.
    pub(super) publish: Arc<Channel>,
    /// Channels for `mandatory` publishes (see [`MandatoryChannels`]).
    pub(super) mandatory: Arc<MandatoryChannels>,
    pub(super) generation: u64,
}

/// Keeps one connection up: connects with backoff, declares the topology,
/// replays the bindings, publishes the link, and starts over when the
/// connection fails.
pub(super) async fn supervise(shared: Arc<Shared>, first_error: mpsc::Sender<String>) {
    let mut generation = 0;
    let mut backoff = BACKOFF.0;
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        match open(&shared, generation + 1).await {
            Ok((link, mut events)) => {
                generation += 1;
                backoff = BACKOFF.0;
                tracing::info!(generation, broker = %redact(&shared.uri), "connected to RabbitMQ");
                let conn = link.conn.clone();
                shared.link.send_replace(Some(link));
                // Lapin reports a lost connection as an event; the status
                // poll catches a close that raised none.
                loop {
                    tokio::select! {
                        _ = shared.stop.cancelled() => break,
                        event = events.next() => match event {
                            Some(lapin::Event::Error(err)) => {
                                tracing::warn!(error = %err, "RabbitMQ connection error");
                                break;
                            }
                            Some(_) => {}
                            None => break,
                        },
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                            if !conn.status().connected() {
                                break;
                            }
                        }
                    }
                }
                shared.link.send_replace(None);
                if !shared.stop.is_cancelled() {
                    tracing::warn!("lost the connection to RabbitMQ; reconnecting");
                }
            }
            Err(err) => {
                if generation == 0 {
                    // Tell `connect` why, but keep trying: it decides when
                    // to give up.
                    let _ = first_error.try_send(err.clone());
                }
                tracing::warn!(error = %err, retry_in = ?backoff, "cannot connect to RabbitMQ");
                tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
    shared.link.send_replace(None);
}

type Events = std::pin::Pin<Box<dyn futures::Stream<Item = lapin::Event> + Send>>;

async fn open(shared: &Shared, generation: u64) -> Result<(Link, Events), String> {
    let properties = ConnectionProperties::default()
        .with_connection_name(shared.config.connection_name.as_str().into());
    let conn = Connection::connect_uri(shared.uri.clone(), properties)
        .await
        .map_err(|err| format!("cannot connect to {}: {err}", redact(&shared.uri)))?;
    let events: Events = Box::pin(conn.events_listener());
    let setup = async {
        let channel = conn.create_channel().await?;
        declare_topology(&channel, shared.config.declares_dead_letters).await?;
        let bound = shared.bound.lock().clone();
        for (domain, commands) in &bound {
            let commands: Vec<_> = commands.values().cloned().collect();
            declare_domain(&channel, domain, &commands).await?;
        }
        let reactors = shared.reactors.lock().clone();
        for (domain, patterns) in &reactors {
            let patterns: Vec<String> = patterns.iter().cloned().collect();
            declare_reactor(&channel, domain, &patterns).await?;
        }
        let _ = channel.close(200, "done".into()).await;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok::<_, lapin::Error>(publish)
    };
    match setup.await {
        Ok(publish) => Ok((
            Link {
                conn: Arc::new(conn),
                publish: Arc::new(publish),
                mandatory: Arc::new(MandatoryChannels::new()),
                generation,
            },
            events,
        )),
        Err(err) => {
            let _ = conn.close(200, "setup failed".into()).await;
            Err(format!("cannot declare the topology: {err}"))
        }
    }
}

/// Waits for a live connection newer than `after`; `None` when the bus
/// stops or `gone` (the receiver went away) completes first.
async fn next_link(
    shared: &Shared,
    after: u64,
    gone: impl std::future::Future<Output = ()>,
) -> Option<Link> {
    let mut rx = shared.link.subscribe();
    tokio::select! {
        _ = shared.stop.cancelled() => None,
        _ = gone => None,
        link = rx.wait_for(|l| l.as_ref().is_some_and(|l| l.generation > after)) => {
            link.ok().and_then(|l| l.clone())
        }
    }
}

/// When a consumer (of a domain's commands or of a subscription) starts
/// again: on the first live connection; after one ended or could not
/// start, at once on a newer connection, or on the same one after a
/// growing backoff. The connection may be fine and the failure the
/// queue's (deleted by an operator, say); starting again declares it anew.
pub(super) struct Restart {
    /// The connection generation on which the last consumer ended or could
    /// not start, if it did.
    failed: Option<u64>,
    /// How long to wait before trying again on that same connection.
    backoff: Duration,
}

impl Restart {
    pub(super) fn new() -> Self {
        Restart {
            failed: None,
            backoff: BACKOFF.0,
        }
    }

    /// The connection to start on; `None` when the bus stops or `gone`
    /// completes first.
    pub(super) async fn link(
        &mut self,
        shared: &Shared,
        gone: impl std::future::Future<Output = ()>,
    ) -> Option<Link> {
        tokio::pin!(gone);
        let Some(failed) = self.failed else {
            return next_link(shared, 0, gone).await;
        };
        let backoff = self.backoff;
        self.backoff = (backoff * 2).min(BACKOFF.1);
        tokio::select! {
            link = next_link(shared, failed, gone.as_mut()) => return link,
            _ = tokio::time::sleep(backoff) => {}
        }
        next_link(shared, 0, gone).await
    }

    /// A consumer started.
    pub(super) fn started(&mut self) {
        self.failed = None;
        self.backoff = BACKOFF.0;
    }

    /// The consumer on connection `generation` ended or could not start.
    pub(super) fn failed(&mut self, generation: u64) {
        self.failed = Some(generation);
    }

    /// How long the next attempt on the same connection waits.
    pub(super) fn retry_in(&self) -> Duration {
        self.backoff
    }
}
