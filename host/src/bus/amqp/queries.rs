//! Queries over the broker, RPC-style: a gateway publishes a request to
//! [`QUERIES_EXCHANGE`] under `<domain>.<name>` (`mandatory`, so a query
//! no host binds comes back at once), with `reply_to` its own exclusive
//! reply queue and a fresh `correlation_id`, and an expiration equal to how
//! long it waits; one host consuming the reactor's query queue runs the
//! query and publishes the answer to `reply_to`:
//! `{"ok": <the query's JSON>}` or `{"error": <error body>}`.
//!
//! The gateway's reply queue is declared on first use and again after a
//! reconnection (an exclusive queue dies with its connection); waiting
//! requests are bounded ([`MAX_WAITING`]) and each is forgotten when
//! answered or timed out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use parallel_you_core::bus::{BusError, QueryReply, QueryRequest, QueryRoute};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::host_info::QueryInfo;
use parallel_you_core::names::check_routing_key;

use super::consumer::start_consumer;
use super::supervisor::Restart;
use super::topology::{
    declare_queries, field_table, query_queue, QUERIES_EXCHANGE, SCHEMA_ARG, SUMMARY_ARG,
};
use super::{unavailable, Shared, MAX_MESSAGE};

/// Requests one gateway waits on at once; past it, asking is `overloaded`.
const MAX_WAITING: usize = 10_000;
/// Requests one host holds unanswered per reactor.
const PREFETCH: u16 = 32;

/// A gateway's reply queue on one connection, and who waits on it.
pub(super) struct Replies {
    generation: u64,
    queue: String,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>,
}

/// The answer as it crosses the broker.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer<'a> {
    #[serde(borrow)]
    Ok(&'a RawValue),
    Error(WireError),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireError {
    code: String,
    message: String,
    #[serde(default)]
    context: serde_json::Value,
}

/// Binds `queries` for `domain` (and forgets the bindings of queries it no
/// longer answers, or whose summary or schema changed), as a host does on
/// loading or upgrading a reactor.
pub(super) async fn bind(
    shared: &Shared,
    domain: &str,
    queries: &[QueryInfo],
) -> Result<(), BusError> {
    shared
        .queries
        .lock()
        .insert(domain.to_owned(), queries.to_vec());
    let Ok(link) = shared.link() else {
        // Applied when the query consumer starts on the next connection.
        return Ok(());
    };
    let channel = link.conn.create_channel().await.map_err(unavailable)?;
    declare_queries(&channel, domain, queries)
        .await
        .map_err(unavailable)?;
    // Stale bindings: a binding's arguments are part of it, so a changed
    // schema made a second one; and a dropped query's binding remains.
    match shared.management.source_bindings(QUERIES_EXCHANGE).await {
        Ok(rows) => {
            let queue = query_queue(domain);
            for row in rows.into_iter().filter(|r| r.destination == queue) {
                let wanted = queries.iter().any(|q| {
                    row.routing_key == format!("{domain}.{}", q.name)
                        && route_of(domain, &q.name, &row.arguments).query == *q
                });
                if wanted {
                    continue;
                }
                let arguments = field_table(&row.arguments);
                channel
                    .queue_unbind(
                        queue.as_str().into(),
                        QUERIES_EXCHANGE.into(),
                        row.routing_key.as_str().into(),
                        arguments,
                    )
                    .await
                    .map_err(unavailable)?;
            }
        }
        Err(err) => {
            tracing::warn!(reactor = %domain, error = %err, "cannot remove stale query bindings")
        }
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

/// The query a binding declares.
fn route_of(
    domain: &str,
    name: &str,
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> QueryRoute {
    QueryRoute {
        domain: domain.to_owned(),
        query: QueryInfo {
            name: name.to_owned(),
            summary: arguments
                .get(SUMMARY_ARG)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            params_schema: arguments
                .get(SCHEMA_ARG)
                .and_then(|v| v.as_str())
                .and_then(|text| serde_json::from_str(text).ok()),
        },
    }
}

/// The queries bound on the broker, by domain and name.
pub(super) async fn routes(shared: &Shared) -> Result<Vec<QueryRoute>, BusError> {
    let mut routes: Vec<QueryRoute> = shared
        .management
        .source_bindings(QUERIES_EXCHANGE)
        .await?
        .into_iter()
        .filter_map(|row| {
            let domain = row.destination.strip_prefix("parallel_you.query.")?;
            let name = row.routing_key.strip_prefix(domain)?.strip_prefix('.')?;
            Some(route_of(domain, name, &row.arguments))
        })
        .collect();
    routes.sort_by(|a, b| (&a.domain, &a.query.name).cmp(&(&b.domain, &b.query.name)));
    // Two versions bound at once (mid-upgrade): one entry.
    routes.dedup_by(|a, b| a.domain == b.domain && a.query.name == b.query.name);
    Ok(routes)
}

/// Feeds the reactor `domain`'s query requests to `tx`, across
/// reconnections, until `tx`'s receiver is dropped or the bus stops.
pub(super) async fn consume(shared: Arc<Shared>, domain: String, tx: mpsc::Sender<QueryRequest>) {
    let queue = query_queue(&domain);
    let mut restart = Restart::new();
    while let Some(link) = restart.link(&shared, tx.closed()).await {
        let queries = shared
            .queries
            .lock()
            .get(&domain)
            .cloned()
            .unwrap_or_default();
        let started = async {
            let channel = link.conn.create_channel().await?;
            declare_queries(&channel, &domain, &queries).await?;
            let consumer = start_consumer(&channel, &queue, PREFETCH).await?;
            Ok::<_, lapin::Error>((channel, consumer))
        };
        let (channel, mut consumer) = match started.await {
            Ok(started) => {
                restart.started();
                started
            }
            Err(err) => {
                tracing::warn!(reactor = %domain, error = %err, retry_in = ?restart.retry_in(), "cannot take queries; retrying");
                restart.failed(link.generation);
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = tx.closed() => {
                    let _ = channel.close(200, "reactor stopped".into()).await;
                    return;
                }
                next = consumer.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => {
                    tracing::warn!(reactor = %domain, error = %err, "query consumer failed; consuming again");
                    break;
                }
                None => break,
            };
            let name = delivery
                .routing_key
                .as_str()
                .strip_prefix(domain.as_str())
                .and_then(|n| n.strip_prefix('.'))
                .map(str::to_owned);
            let reply_to = delivery
                .properties
                .reply_to()
                .as_ref()
                .map(|r| r.to_string());
            let correlation = delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string());
            let lapin::message::Delivery { data, acker, .. } = delivery;
            let params = String::from_utf8(data).ok();
            let (Some(name), Some(reply_to), Some(correlation), Some(params)) =
                (name, reply_to, correlation, params)
            else {
                tracing::warn!(reactor = %domain, "dropping a query request without a name, reply queue, correlation id or UTF-8 body");
                let _ = acker.ack(BasicAckOptions::default()).await;
                continue;
            };
            let reply = AmqpReply {
                shared: shared.clone(),
                reply_to,
                correlation,
                acker,
            };
            let request = QueryRequest::new(domain.clone(), name, params, Box::new(reply));
            if tx.send(request).await.is_err() {
                // Dropped unanswered: the channel's close requeues it.
                let _ = channel.close(200, "reactor stopped".into()).await;
                return;
            }
        }
        restart.failed(link.generation);
    }
}

/// Answers one request on the broker.
struct AmqpReply {
    shared: Arc<Shared>,
    reply_to: String,
    correlation: String,
    acker: lapin::Acker,
}

#[async_trait]
impl QueryReply for AmqpReply {
    async fn answer(self: Box<Self>, answer: Result<String, ErrorBody>) -> Result<(), BusError> {
        let body = match &answer {
            Ok(json) => match serde_json::from_str::<&RawValue>(json) {
                Ok(raw) => serde_json::to_vec(&Answer::Ok(raw)),
                Err(e) => serde_json::to_vec(&Answer::Error(wire(&ErrorBody::new(
                    ErrorCode::HandlerError,
                    format!("the query answered text that is not JSON: {e}"),
                )))),
            },
            Err(err) => serde_json::to_vec(&Answer::Error(wire(err))),
        }
        .map_err(|e| BusError::Invalid(e.to_string()))?;
        let properties =
            BasicProperties::default().with_correlation_id(self.correlation.as_str().into());
        // Not mandatory: an asker that gave up has no queue any more.
        let sent = self
            .shared
            .publish_raw("", &self.reply_to, &body, properties, false, &self.reply_to)
            .await;
        // Acked either way: a query is asked again by its client, not
        // redelivered to another host.
        let _ = self.acker.ack(BasicAckOptions::default()).await;
        sent
    }
}

fn wire(err: &ErrorBody) -> WireError {
    WireError {
        code: err.code.as_str().to_owned(),
        message: err.message.clone(),
        context: err.context.clone(),
    }
}

/// Asks the query `name` of `domain` and waits up to `timeout`.
pub(super) async fn ask(
    shared: &Arc<Shared>,
    domain: &str,
    name: &str,
    params: &str,
    timeout: Duration,
) -> Result<String, ErrorBody> {
    let key = format!("{domain}.{name}");
    let not_found = || ErrorBody {
        code: Code::Handler("not_found".to_owned()),
        message: format!(
            "no host serves the query {name:?} of reactor {domain:?}; `GET /api` lists the queries"
        ),
        context: serde_json::Value::Null,
        command: None,
    };
    if check_routing_key(&key).is_err() || domain.contains('.') || name.contains('.') {
        return Err(not_found());
    }
    let down = |e: BusError| ErrorBody::new(ErrorCode::Unavailable, e.to_string());
    let (queue, waiting) = replies(shared).await.map_err(down)?;
    let correlation = parallel_you_core::envelope::new_id();
    let (tx, rx) = oneshot::channel();
    {
        let mut w = waiting.lock();
        if w.len() >= MAX_WAITING {
            return Err(ErrorBody::new(
                ErrorCode::Overloaded,
                format!("{MAX_WAITING} queries wait for their answers already; try again shortly"),
            ));
        }
        w.insert(correlation.clone(), tx);
    }
    let forget = Forget(&waiting, &correlation);
    let properties = BasicProperties::default()
        .with_correlation_id(correlation.as_str().into())
        .with_reply_to(queue.as_str().into())
        .with_expiration(timeout.as_millis().max(1).to_string().as_str().into());
    match shared
        .publish_raw(
            QUERIES_EXCHANGE,
            &key,
            params.as_bytes(),
            properties,
            true,
            &key,
        )
        .await
    {
        Ok(()) => {}
        Err(BusError::Unroutable { .. }) => return Err(not_found()),
        Err(err) => return Err(down(err)),
    }
    let answer = match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => {
            return Err(ErrorBody::new(
                ErrorCode::Unavailable,
                "the connection to RabbitMQ dropped while waiting for the answer",
            ))
        }
        Err(_) => {
            return Err(ErrorBody::new(
                ErrorCode::Timeout,
                format!("no host answered the query {key:?} within {timeout:?}"),
            ))
        }
    };
    drop(forget);
    match serde_json::from_slice::<Answer<'_>>(&answer) {
        Ok(Answer::Ok(raw)) => Ok(raw.get().to_owned()),
        Ok(Answer::Error(e)) => Err(ErrorBody {
            code: ErrorCode::parse(&e.code)
                .map(Code::Host)
                .unwrap_or_else(|| Code::from_handler(e.code)),
            message: e.message,
            context: e.context,
            command: None,
        }),
        Err(e) => Err(ErrorBody::new(
            ErrorCode::HandlerError,
            format!("the host's answer is not readable: {e}"),
        )),
    }
}

/// Removes a waiting request when its asker stops waiting, however.
struct Forget<'a>(
    &'a Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>,
    &'a str,
);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(self.1);
    }
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// This connection's reply queue, declared (with its consumer) on first
/// use on each connection.
async fn replies(shared: &Arc<Shared>) -> Result<(String, Waiting), BusError> {
    let link = shared.link()?;
    let mut replies = shared.replies.lock().await;
    if let Some(r) = replies.as_ref().filter(|r| r.generation == link.generation) {
        return Ok((r.queue.clone(), r.waiting.clone()));
    }
    let channel = link.conn.create_channel().await.map_err(unavailable)?;
    let declared = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    let queue = declared.name().to_string();
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    let waiting: Waiting = Arc::new(Mutex::new(HashMap::new()));
    let feed = waiting.clone();
    let stop = shared.stop.clone();
    tokio::spawn(async move {
        // Keeps the channel open while the consumer runs.
        let _channel = channel;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                next = consumer.next() => next,
            };
            let Some(Ok(delivery)) = next else { break };
            if delivery.data.len() > MAX_MESSAGE {
                continue;
            }
            let Some(id) = delivery.properties.correlation_id().as_ref() else {
                continue;
            };
            if let Some(tx) = feed.lock().remove(id.as_str()) {
                let _ = tx.send(delivery.data);
            }
        }
        // Whoever still waits learns the connection dropped.
        feed.lock().clear();
    });
    *replies = Some(Replies {
        generation: link.generation,
        queue: queue.clone(),
        waiting: waiting.clone(),
    });
    Ok((queue, waiting))
}
