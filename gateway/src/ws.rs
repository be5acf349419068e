//! `GET /ws?session=<id>[&client=<name>]`: a session's events as they are
//! published, and commands from the client; a client that names itself
//! resumes after what it was given. With `&follow=<pattern>,<pattern>` (event
//! routing-key patterns like `thread.#` or `handler.*`, at most
//! [`MAX_FOLLOW`]) the socket also gets every matching event of other
//! sessions, and those of none (`handler.loaded`), live only: a follower
//! that reconnects reloads what it shows, and one that falls behind the
//! feed gets a `pyou.gap` saying so.
//!
//! A client that says which event of its session it was given last
//! (`&after=<message id>&after_at=<its timestamp>`) and that the session
//! buffer cannot place (this gateway restarted, or forgot the idle
//! session) gets what it missed from the session's history (the event
//! log in the store) before the buffered events, each once; without a
//! history, or past [`MAX_REPLAY`] events, a `pyou.gap` says they are lost.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use tokio::sync::broadcast::error::RecvError;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::Response;
use axum::Extension;
use parallel_you_core::bus::{topic_matches, BusError};
use parallel_you_core::envelope::{Envelope, PartialMeta};
use parallel_you_core::error::{ErrorBody, ErrorCode};
use parallel_you_core::names::{check_event_pattern, check_message_id, check_session_id};
use parallel_you_core::session_history::After;
use parallel_you_core::trace::{self, TraceContext};
use tracing::Instrument;

use crate::auth::Caller;
use crate::rate::{caller as caller_key, Pace};
use crate::rejection::ApiError;
use crate::sanitize::{client_envelope, Refused};
use crate::session_param::session_param;
use crate::Gateway;

/// Commands of one socket on their way to the bus at once. A send to
/// RabbitMQ waits for the broker's confirm; one at a time, a socket would
/// carry a few hundred commands a second. Past this many the socket is not
/// read until one is through, so a client cannot make the gateway hold more.
const SENDS_IN_FLIGHT: usize = 64;

/// Most patterns one socket may follow.
pub(crate) const MAX_FOLLOW: usize = 16;
/// Most `#` segments in one followed pattern: matching backtracks over
/// each, so a client's pattern full of them would cost the gateway
/// exponential time on every event.
const MAX_HASHES: usize = 2;

/// The `follow` parameter: comma-separated event patterns.
fn follow_param(query: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    let Some(list) = query.get("follow") else {
        return Ok(Vec::new());
    };
    let patterns: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if patterns.len() > MAX_FOLLOW {
        return Err(ApiError::BadRequest(format!(
            "follow at most {MAX_FOLLOW} patterns, not {}",
            patterns.len()
        )));
    }
    for p in &patterns {
        check_event_pattern(p).map_err(|e| ApiError::BadRequest(format!("follow: {}", e.0)))?;
        if p.split('.').filter(|s| *s == "#").count() > MAX_HASHES {
            return Err(ApiError::BadRequest(format!(
                "follow: {p:?} has more than {MAX_HASHES} `#` segments"
            )));
        }
    }
    Ok(patterns)
}

/// Most events replayed from the history to one client that resumes;
/// past it the client is told to reload (`pyou.gap`).
pub(crate) const MAX_REPLAY: usize = 1000;

/// The `after` and `after_at` parameters: the last event of its session
/// the client was given (both or neither).
fn after_param(query: &HashMap<String, String>) -> Result<Option<After>, ApiError> {
    let (id, at) =
        match (query.get("after"), query.get("after_at")) {
            (None, None) => return Ok(None),
            (Some(id), Some(at)) => (id, at),
            _ => return Err(ApiError::BadRequest(
                "give after (the last event's message id) and after_at (its timestamp) together"
                    .to_owned(),
            )),
        };
    check_message_id("after", id).map_err(|e| ApiError::BadRequest(e.0))?;
    let timestamp_ms = parallel_you_core::envelope::parse_timestamp_ms(at)
        .map_err(|e| ApiError::BadRequest(format!("after_at: {e}")))?;
    Ok(Some(After {
        message_id: id.clone(),
        timestamp_ms,
    }))
}

/// The `client` parameter: a name the client keeps across reconnects
/// (the dashboard uses one per browser tab), so it resumes after what it
/// was given, not after what another client of the session was given.
fn client_param(query: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    let Some(client) = query.get("client") else {
        return Ok(None);
    };
    check_session_id(client).map_err(|e| ApiError::BadRequest(format!("client: {}", e.0)))?;
    Ok(Some(client.clone()))
}

/// Handles the upgrade request: with authentication on, the session must
/// be the caller's own (or new), and following other sessions needs the
/// `events:follow` scope.
pub(crate) async fn upgrade(
    State(gw): State<Arc<Gateway>>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // The socket's commands continue the trace of its upgrade request.
    let trace = crate::trace_context::from_headers(&headers);
    let session = session_param(None, &query)?
        .ok_or_else(|| ApiError::BadRequest("name the session: /ws?session=<id>".to_owned()))?;
    let follow = follow_param(&query)?;
    let client = client_param(&query)?;
    let after = after_param(&query)?;
    let allowed = match &caller.subject {
        Some(subject) => gw.owners.claim(&session, subject).await,
        None => Ok(()),
    }
    .and_then(|()| match follow.is_empty() {
        true => Ok(()),
        false => caller.may_follow(),
    });
    if let Err(err) = allowed {
        gw.metrics.forbidden();
        return Err(err);
    }
    let slot = gw
        .rates
        .sockets
        .open(&caller_key(Some(&caller), addr.as_ref().map(|a| &a.0)))
        .ok_or(ApiError::TooManyRequests {
            retry_after_s: 1,
            what: "WebSockets open from this client",
        })?;
    // The subprotocol that carried the token is the one chosen.
    let ws = match &caller.protocol {
        Some(p) => ws.protocols([p.clone()]),
        None => ws,
    };
    Ok(ws
        .max_message_size(gw.config.max_body + 4096)
        .on_upgrade(move |socket| async move {
            let asked = Asked {
                session,
                client,
                follow,
                after,
                trace,
            };
            run(gw, caller, asked, socket).await;
            drop(slot);
        }))
}

async fn send_text(socket: &mut WebSocket, text: &str) -> bool {
    socket
        .send(Message::Text(Utf8Bytes::from(text)))
        .await
        .is_ok()
}

/// A notice that events were dropped from the session's buffer while the
/// client was away: an event envelope `pyou.gap` with `{"missed": n}`.
fn gap_notice(session: &str, missed: u64) -> String {
    gap_event(
        session,
        missed,
        format!("{missed} events of this session were dropped from its buffer while no client was connected"),
    )
}

fn gap_event(session: &str, missed: u64, message: String) -> String {
    let cause = PartialMeta::default().in_session(session);
    let mut ev = ErrorBody::new(ErrorCode::Overloaded, "").event_for_partial(&cause);
    ev.meta.routing_key = "pyou.gap".to_owned();
    let body = serde_json::json!({
        "missed": missed,
        "message": message,
    });
    if let Ok(raw) = serde_json::value::to_raw_value(&body) {
        ev.body = raw;
    }
    ev.to_json()
}

/// What a resuming client missed before the session buffer: sent from the
/// history, or a `pyou.gap`. Returns the message ids sent, so the buffer
/// does not send them again; `None` when the socket closed.
async fn replay_history(
    gw: &Gateway,
    session: &str,
    after: &After,
    socket: &mut WebSocket,
) -> Option<HashSet<Box<str>>> {
    let mut sent = HashSet::new();
    let Some(history) = &gw.config.history else {
        let notice = gap_event(session, 0, "this gateway cannot tell what this session missed (it restarted, or forgot the idle session, and keeps no event log to replay from); reload what it shows".to_owned());
        return send_text(socket, &notice).await.then_some(sent);
    };
    match history.0.after(session, after, MAX_REPLAY + 1).await {
        Ok(events) if events.len() > MAX_REPLAY => {
            let notice = gap_event(session, events.len() as u64, format!("more than {MAX_REPLAY} events of this session were published since the last one this client was given; reload what it shows"));
            send_text(socket, &notice).await.then_some(sent)
        }
        Ok(events) => {
            for ev in events {
                if !send_text(socket, &ev.to_json()).await {
                    return None;
                }
                gw.metrics.delivered();
                sent.insert(ev.meta.message_id.into_boxed_str());
            }
            Some(sent)
        }
        Err(err) => {
            tracing::warn!(session_id = %session, error = %err, "cannot read the session's history");
            let notice = gap_event(
                session,
                0,
                format!("the event log could not be read ({err}); reload what it shows"),
            );
            send_text(socket, &notice).await.then_some(sent)
        }
    }
}

/// What an upgrade request asked for, checked.
struct Asked {
    session: String,
    client: Option<String>,
    follow: Vec<String>,
    after: Option<After>,
    trace: Option<TraceContext>,
}

async fn run(gw: Arc<Gateway>, caller: Caller, asked: Asked, mut socket: WebSocket) {
    let Asked {
        session,
        client,
        follow,
        after,
        trace,
    } = asked;
    let session: Arc<str> = Arc::from(session);
    let caller = Arc::new(caller);
    let attached = gw.sessions.attach(
        &session,
        client.as_deref(),
        after.as_ref().map(|a| a.message_id.as_str()),
    );
    let Some(attached) = attached else {
        // 1013: try again later.
        let frame = CloseFrame {
            code: 1013,
            reason: Utf8Bytes::from_static("too many live sessions on this gateway"),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
        return;
    };
    // Only a follower holds a receiver: without one, events of no session
    // are not even serialised.
    let mut feed = (!follow.is_empty()).then(|| gw.sessions.follow());
    let mut sending = FuturesUnordered::<BoxFuture<'static, Option<String>>>::new();
    let mut pace = Pace::new(gw.rates.socket_commands);
    let mut cursor = attached.cursor;
    let mut changed = attached.changed;
    tracing::debug!(session_id = %session, cursor, "websocket attached");
    // Events both replayed and buffered (the log and the buffer fill
    // independently) are sent once; at most MAX_REPLAY ids.
    let mut replayed = HashSet::new();
    if let Some(after) = after.as_ref().filter(|_| attached.before_buffer) {
        match replay_history(&gw, &session, after, &mut socket).await {
            Some(sent) => replayed = sent,
            None => {
                gw.sessions.detach(&session);
                return;
            }
        }
    }
    'outer: loop {
        let pending = gw.sessions.pending(&session, cursor);
        if pending.missed > 0
            && !send_text(&mut socket, &gap_notice(&session, pending.missed)).await
        {
            break;
        }
        for ev in pending.events {
            if !replayed.remove(&ev.id) && !send_text(&mut socket, &ev.text).await {
                break 'outer;
            }
            cursor = ev.seq;
            gw.sessions.delivered(&session, client.as_deref(), ev.seq);
            gw.metrics.delivered();
        }
        tokio::select! {
            _ = gw.shutdown.cancelled() => {
                let frame = CloseFrame { code: 1001, reason: Utf8Bytes::from_static("the gateway is shutting down") };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break;
            }
            c = changed.changed() => if c.is_err() { break },
            fed = next_fed(&mut feed) => match fed {
                Ok(fed) => {
                    // This session's own events come through its buffer.
                    let other = fed.session_id.as_deref() != Some(&*session);
                    if other
                        && follow.iter().any(|p| topic_matches(p, &fed.routing_key))
                        && !send_text(&mut socket, &fed.text).await
                    {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let notice = gap_event(&session, n, format!("this socket fell behind the followed events and missed {n}; reload what it shows"));
                    if !send_text(&mut socket, &notice).await {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            Some(refused) = sending.next(), if !sending.is_empty() => {
                if let Some(reply) = refused {
                    if !send_text(&mut socket, &reply).await {
                        break;
                    }
                }
            }
            msg = socket.recv(), if sending.len() < SENDS_IN_FLIGHT => match msg {
                Some(Ok(Message::Text(text))) => {
                    sending.push(Box::pin(command_from_client(gw.clone(), caller.clone(), session.clone(), trace.clone(), text)));
                    // Past the socket's rate, the next read waits.
                    pace.next().await;
                }
                Some(Ok(Message::Binary(_))) => {
                    let err = ErrorBody::new(ErrorCode::InvalidEnvelope, "send envelopes as text frames of JSON")
                        .event_for_partial(&socket_meta(&session, None));
                    if !send_text(&mut socket, &err.to_json()).await {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // Commands read from the socket are sent even when it closed meanwhile:
    // the client saw them go.
    while sending.next().await.is_some() {}
    gw.sessions.detach(&session);
    tracing::debug!(session_id = %session, "websocket detached");
}

/// The next followed event; pending forever when the socket follows nothing.
async fn next_fed(
    feed: &mut Option<tokio::sync::broadcast::Receiver<Arc<crate::sessions::Fed>>>,
) -> Result<Arc<crate::sessions::Fed>, RecvError> {
    match feed {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn socket_meta(session: &str, correlation_id: Option<String>) -> PartialMeta {
    PartialMeta {
        correlation_id,
        ..PartialMeta::default()
    }
    .in_session(session)
}

/// Sends a command envelope written by the client. Returns an error event
/// (JSON text) for the client when it cannot be sent. Its trace is the
/// one its own meta names (a browser cannot set headers on a socket), else
/// the upgrade request's (`socket_trace`), else a new one.
async fn command_from_client(
    gw: Arc<Gateway>,
    caller: Arc<Caller>,
    session: Arc<str>,
    socket_trace: Option<TraceContext>,
    text: Utf8Bytes,
) -> Option<String> {
    let session = &*session;
    let cmd = match Envelope::from_json(text.as_str(), gw.config.max_body) {
        Ok(cmd) => cmd,
        Err(err) => {
            let partial = err.partial.in_session(session);
            let ev =
                ErrorBody::new(ErrorCode::InvalidEnvelope, err.reason).event_for_partial(&partial);
            return Some(ev.to_json());
        }
    };
    let refuse = |code: ErrorCode, message: String| {
        let mut meta = cmd.meta.clone();
        meta.set_session(session);
        meta.user_id = caller.subject.clone();
        Some(ErrorBody::new(code, message).event_for(&meta).to_json())
    };
    let mut cmd = match client_envelope(&gw, &caller, session, cmd.clone()) {
        Ok(cmd) => cmd,
        Err(Refused::Invalid(message)) => return refuse(ErrorCode::InvalidEnvelope, message),
        Err(Refused::Forbidden(message)) => {
            gw.metrics.forbidden();
            return refuse(ErrorCode::Forbidden, message);
        }
    };
    let span = crate::trace_context::producer_span("ws", &cmd.meta, gw.bus.as_ref());
    let parent = cmd.meta.trace().or(socket_trace);
    trace::continue_trace(&span, parent.as_ref());
    cmd.meta.set_trace(trace::onward(&span, parent));
    let routing_key = cmd.meta.routing_key.clone();
    match gw.bus.send(cmd.clone()).instrument(span).await {
        Ok(()) => {
            gw.metrics.accepted(&routing_key);
            None
        }
        Err(BusError::Unroutable { routing_key }) => refuse(
            ErrorCode::UnknownRoutingKey,
            format!("no handler serves {routing_key:?}; GET /api lists the commands"),
        ),
        Err(err) => refuse(ErrorCode::Unavailable, err.to_string()),
    }
}
