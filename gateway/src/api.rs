//! `POST /api/<routing key as path>`: JSON in, a command on the bus, 202 out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parallel_you_core::bus::BusError;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::names::check_routing_key;
use parallel_you_core::trace;
use serde_json::json;
use tracing::Instrument;

use crate::auth::Caller;
use crate::body::read_text;
use crate::catalog::routing_key_of;
use crate::rejection::ApiError;
use crate::session_param::session_param;
use crate::Gateway;

/// Handles `POST /api/*path`.
pub(crate) async fn post_command(
    State(gw): State<Arc<Gateway>>,
    Path(tail): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let routing_key = routing_key_of(&tail);
    let unknown = |gw: &Gateway| ApiError::UnknownCommand {
        path: format!("/api/{tail}"),
        known: gw.catalog.entries().as_ref().clone(),
    };
    if check_routing_key(&routing_key).is_err() {
        return Err(unknown(&gw));
    }
    if let Err(err) = crate::sanitize::admit(&gw, &caller, &routing_key) {
        gw.metrics.forbidden();
        return Err(err);
    }
    if gw.catalog.find(&routing_key).is_none() {
        // A handler may have appeared since the last refresh.
        gw.catalog.refresh().await;
        if gw.catalog.find(&routing_key).is_none() {
            return Err(unknown(&gw));
        }
    }
    let session = session_param(Some(&headers), &query)?;
    if let (Some(session), Some(subject)) = (&session, &caller.subject) {
        if let Err(err) = gw.owners.claim(session, subject).await {
            gw.metrics.forbidden();
            return Err(err);
        }
    }
    let wait = query
        .get("wait")
        .map(|w| {
            w.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("wait must be milliseconds, not {w:?}")))
        })
        .transpose()?
        .map(|ms| Duration::from_millis(ms).min(gw.config.max_wait));
    // Each waiting request holds a connection and a waiter: bounded.
    let _waiting = match wait {
        Some(_) => Some(gw.waits.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!(
                "{} requests already wait for their events (?wait=)",
                gw.config.max_waits
            ))
        })?),
        None => None,
    };
    let text = read_text(&gw, body).await?;
    let text = if text.trim().is_empty() { "{}" } else { &text };
    let mut cmd = Envelope::command(&routing_key, text).map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; the body must be one JSON value, e.g. {{\"title\": \"…\"}}",
            e.reason
        ))
    })?;
    if let Some(s) = &session {
        cmd = cmd.with_session(s);
    }
    cmd.meta.user_id = caller.subject.clone();
    let (own_session, own_user) = (cmd.meta.session_id.clone(), cmd.meta.user_id.clone());
    let correlation_id = cmd.meta.correlation_id.clone();
    let message_id = cmd.meta.message_id.clone();
    let span = crate::trace_context::producer_span("http", &cmd.meta, gw.bus.as_ref());
    // The caller's trace, if it sent a valid one; else this span starts one.
    let incoming = crate::trace_context::from_headers(&headers);
    trace::continue_trace(&span, incoming.as_ref());
    cmd.meta.set_trace(trace::onward(&span, incoming));
    async move {
        // Listen before sending, so no event can slip past.
        let waiter = wait.map(|_| gw.sessions.wait_for(&correlation_id));
        let sent = gw.bus.send(cmd).await;
        if let Err(err) = sent {
            gw.sessions.stop_waiting(&correlation_id);
            return Err(match err {
                BusError::Unroutable { .. } => unknown(&gw),
                BusError::Invalid(m) => ApiError::BadRequest(m),
                BusError::Unavailable(m) => ApiError::Unavailable(m),
            });
        }
        gw.metrics.accepted(&routing_key);
        tracing::debug!("command accepted");
        let (Some(wait), Some(mut rx)) = (wait, waiter) else {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "correlation_id": correlation_id, "message_id": message_id })),
            )
                .into_response());
        };
        // Until the command's last event (the host marks it), or the wait
        // is over: no settling time after the first one.
        let deadline = tokio::time::Instant::now() + wait;
        let mut events = Vec::new();
        let mut complete = false;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            // Only the answers to this caller's command: another client
            // may have sent a command under the same correlation id.
            if event.meta.session_id != own_session || event.meta.user_id != own_user {
                continue;
            }
            complete = event.meta.last;
            events.push(event);
            if complete {
                break;
            }
        }
        gw.sessions.stop_waiting(&correlation_id);
        if events.is_empty() {
            return Err(ApiError::WaitTimedOut {
                correlation_id,
                message_id,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok((
            StatusCode::OK,
            [(CONTENT_TYPE, "application/json")],
            wait_answer(&correlation_id, &message_id, &events, complete),
        )
            .into_response())
    }
    .instrument(span)
    .await
}

/// The `?wait=` answer: `{"correlation_id", "message_id", "events": [...],
/// "complete"}`; `complete` is false when the wait ended before the
/// command's last event.
///
/// Spliced from the events' own JSON texts rather than built as a `Value`:
/// that would re-parse every body, and serde_json refuses (`json!` panics
/// on) bodies nested deeper than 128 levels. This cannot fail on any body.
fn wait_answer(
    correlation_id: &str,
    message_id: &str,
    events: &[Envelope],
    complete: bool,
) -> String {
    // Serialising a plain string cannot fail.
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let texts: Vec<String> = events.iter().map(Envelope::to_json).collect();
    format!(
        r#"{{"correlation_id":{},"message_id":{},"events":[{}],"complete":{complete}}}"#,
        quoted(correlation_id),
        quoted(message_id),
        texts.join(",")
    )
}

/// Handles `GET /api`: the discovered commands and queries (none a
/// manifest marks internal).
pub(crate) async fn list_commands(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    Json(json!({
        "commands": gw.catalog.entries().as_ref(),
        "queries": crate::query::entries(&gw),
    }))
}

/// Handles unknown paths.
pub(crate) async fn not_found(State(gw): State<Arc<Gateway>>, uri: axum::http::Uri) -> ApiError {
    ApiError::UnknownCommand {
        path: uri.path().to_owned(),
        known: gw.catalog.entries().as_ref().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_you_core::envelope::{Envelope, Meta};
    use serde_json::value::RawValue;

    #[test]
    fn wait_answer_splices_any_body() {
        let cmd = Meta::new(parallel_you_core::Kind::Command, "a.b");
        let mut events = Vec::new();
        for depth in [0, 1, 127, 128, 129, 10_000] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let text = if depth == 0 { "{}".to_owned() } else { text };
            let Ok(body) = RawValue::from_string(text) else {
                panic!("depth {depth}")
            };
            events.push(Envelope::event_for(&cmd, "a.done", body));
        }
        let answer = wait_answer("c\"1", "m1", &events, true);
        assert!(answer.starts_with(r#"{"correlation_id":"c\"1","message_id":"m1","events":[{"#));
        for ev in &events {
            assert!(answer.contains(&ev.to_json()));
        }
        // What serde_json can read of it is what was sent.
        let shallow = wait_answer("c", "m", &events[..2], false);
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&shallow) else {
            panic!("{shallow}")
        };
        assert_eq!(value["events"].as_array().map(Vec::len), Some(2));
        assert_eq!(value["complete"], false);
    }
}
