//! Who is calling: `--auth none` (every caller is anonymous) or `--auth
//! jwt` (every request but the dashboard's files and `/healthz` carries a
//! bearer token the gateway verifies, `jwt.rs`, whose subject and scopes,
//! `scope.rs`, decide what it may do).
//!
//! The token is read from `Authorization: Bearer <token>`; on a WebSocket
//! upgrade, which browsers cannot give headers, also from the
//! `Sec-WebSocket-Protocol` header (`bearer, <token>` or one subprotocol
//! `bearer.<token>`, as Kubernetes and Jupyter do; the chosen protocol is
//! echoed); or from `?access_token=`, which works anywhere but leaks the
//! token into every log that records URLs.

mod cache;
mod jwt;
mod scope;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use jwt::{JwtSettings, JwtSetupError, JwtVerifier, DEFAULT_LEEWAY, MAX_TOKEN_LEN};
pub use scope::{Scopes, FOLLOW};

use crate::rejection::ApiError;
use crate::Gateway;

/// How the gateway authenticates its callers.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Nobody: every caller is anonymous and may do everything (local use).
    #[default]
    None,
    /// Bearer tokens, verified by this.
    Jwt(Arc<JwtVerifier>),
}

impl Auth {
    /// Whether callers are authenticated.
    pub fn is_on(&self) -> bool {
        matches!(self, Auth::Jwt(_))
    }
}

/// The caller of one request, as the middleware found it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The token's subject; `None` without authentication.
    pub(crate) subject: Option<String>,
    /// What it may do.
    pub(crate) scopes: Scopes,
    /// The WebSocket subprotocol that carried the token, to echo.
    pub(crate) protocol: Option<String>,
}

impl Caller {
    fn anonymous() -> Self {
        Caller {
            subject: None,
            scopes: Scopes::unrestricted().with_follow(),
            protocol: None,
        }
    }

    /// Refuses a command outside the caller's scopes.
    pub(crate) fn may_send(&self, routing_key: &str) -> Result<(), ApiError> {
        self.scopes
            .command(routing_key)
            .map_err(|missing| ApiError::Forbidden {
                message: format!("the token's scope does not allow sending {routing_key:?}"),
                missing_scope: Some(missing),
            })
    }

    /// Refuses a query outside the caller's scopes.
    pub(crate) fn may_query(&self, domain: &str, name: &str) -> Result<(), ApiError> {
        self.scopes
            .query(domain, name)
            .map_err(|missing| ApiError::Forbidden {
                message: format!("the token's scope does not allow the query {domain}/{name}"),
                missing_scope: Some(missing),
            })
    }

    /// Refuses following other sessions without the scope for it.
    pub(crate) fn may_follow(&self) -> Result<(), ApiError> {
        if self.scopes.may_follow() {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: "following other sessions' events needs the `events:follow` scope"
                    .to_owned(),
                missing_scope: Some(FOLLOW.to_owned()),
            })
        }
    }
}

/// Paths anyone may fetch: liveness and the dashboard's own files (which
/// hold no data; the page asks for the rest with a token).
fn is_public(path: &str) -> bool {
    path == "/healthz" || path == "/" || path.starts_with("/assets/")
}

/// A token found in a request, and the subprotocol that carried it.
type Found = (String, Option<String>);

/// The bearer token of a request, if it carries one.
fn token_of(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Option<Found>, String> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| "the Authorization header is not text".to_owned())?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or("the Authorization header must be `Bearer <token>`")?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err("the Authorization header must be `Bearer <token>`".to_owned());
        }
        return Ok(Some((token.trim().to_owned(), None)));
    }
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        let Ok(text) = value.to_str() else { continue };
        let offered: Vec<&str> = text.split(',').map(str::trim).collect();
        for (i, p) in offered.iter().enumerate() {
            if let Some(token) = p.strip_prefix("bearer.").filter(|t| !t.is_empty()) {
                return Ok(Some((token.to_owned(), Some((*p).to_owned()))));
            }
            if *p == "bearer" {
                if let Some(token) = offered.get(i + 1).filter(|t| !t.is_empty()) {
                    return Ok(Some(((*token).to_owned(), Some("bearer".to_owned()))));
                }
            }
        }
    }
    Ok(query
        .get("access_token")
        .filter(|t| !t.is_empty())
        .map(|t| (t.clone(), None)))
}

/// The middleware: finds the caller of every request (refusing one
/// without a valid token when authentication is on) and hands it to the
/// routes as an extension.
pub(crate) async fn authenticate(
    State(gw): State<Arc<Gateway>>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = match &gw.config.auth {
        Auth::None => Caller::anonymous(),
        Auth::Jwt(_) if is_public(req.uri().path()) => Caller::anonymous(),
        Auth::Jwt(verifier) => {
            let query = Query::<HashMap<String, String>>::try_from_uri(req.uri())
                .map(|q| q.0)
                .unwrap_or_default();
            let found = match token_of(req.headers(), &query) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    gw.metrics.unauthorized();
                    return ApiError::Unauthorized("this gateway needs a bearer token".to_owned())
                        .into_response();
                }
                Err(why) => {
                    gw.metrics.unauthorized();
                    return ApiError::Unauthorized(why).into_response();
                }
            };
            match verifier.verify(&found.0) {
                Ok(v) => Caller {
                    subject: Some(v.subject),
                    scopes: v.scopes,
                    protocol: found.1,
                },
                Err(why) => {
                    gw.metrics.unauthorized();
                    return ApiError::Unauthorized(why).into_response();
                }
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                k.clone(),
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn tokens_are_found_where_clients_put_them() {
        let none = HashMap::new();
        let found = |h: &HeaderMap, q: &HashMap<String, String>| token_of(h, q);
        assert_eq!(
            found(&headers(&[(AUTHORIZATION, "Bearer abc.def")]), &none),
            Ok(Some(("abc.def".into(), None)))
        );
        assert!(found(&headers(&[(AUTHORIZATION, "Basic abc")]), &none).is_err());
        assert_eq!(
            found(
                &headers(&[(SEC_WEBSOCKET_PROTOCOL, "bearer, abc.def")]),
                &none
            ),
            Ok(Some(("abc.def".into(), Some("bearer".into()))))
        );
        assert_eq!(
            found(
                &headers(&[(SEC_WEBSOCKET_PROTOCOL, "json, bearer.abc.def")]),
                &none
            ),
            Ok(Some(("abc.def".into(), Some("bearer.abc.def".into()))))
        );
        let q = HashMap::from([("access_token".to_owned(), "abc".to_owned())]);
        assert_eq!(found(&HeaderMap::new(), &q), Ok(Some(("abc".into(), None))));
        assert_eq!(found(&HeaderMap::new(), &none), Ok(None));
        assert!(is_public("/healthz") && is_public("/assets/app.js") && !is_public("/api"));
    }
}
