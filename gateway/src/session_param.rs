//! The session a request names, read one way for the HTTP API and the
//! WebSocket: header `X-Session-Id` (HTTP only), else `?session=`, else
//! `?session_id=`.

use std::collections::HashMap;

use axum::http::HeaderMap;
use parallel_you_core::names::check_session_id;

use crate::rejection::ApiError;

/// The session named by `headers` (when given) or `query`, checked
/// against the session id grammar; `None` when none is named.
pub(crate) fn session_param(
    headers: Option<&HeaderMap>,
    query: &HashMap<String, String>,
) -> Result<Option<String>, ApiError> {
    let from_header = headers
        .and_then(|h| h.get("x-session-id"))
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::BadRequest("X-Session-Id is not text".to_owned()))
        })
        .transpose()?;
    let session = from_header
        .or_else(|| query.get("session").cloned())
        .or_else(|| query.get("session_id").cloned());
    if let Some(s) = &session {
        check_session_id(s).map_err(|e| ApiError::BadRequest(e.0))?;
    }
    Ok(session)
}
