//! `GET|POST /api/query/<domain>/<name>`: a reactor's query, answered from
//! its read models by the host in this process, or, for a gateway without
//! one, asked on the bus of a host that serves the reactor (up to
//! [`crate::GatewayConfig::query_timeout`]; no answer in time is a 504).
//!
//! GET takes the parameters from the query string, each converted to the
//! type the query's parameter schema gives it (`?limit=5` is the integer 5
//! when `limit` is declared an integer), so the common case needs no body;
//! POST takes them as a JSON object, for anything the query string cannot
//! say.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parallel_you_core::host_info::QueryInfo;
use parallel_you_core::ErrorBody;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::auth::Caller;
use crate::rejection::ApiError;
use crate::Gateway;

/// One query the API serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryEntry {
    /// The reactor's domain.
    pub domain: String,
    /// The query's name.
    pub name: String,
    /// `GET` (or `POST` with a JSON body).
    pub method: &'static str,
    /// `/api/query/<domain>/<name>`.
    pub path: String,
    /// One line from the reactor's manifest.
    pub summary: String,
    /// The parameters' JSON Schema, when declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<Value>,
}

/// The queries this gateway serves: those of the reactors of the host in
/// this process, or those bound on the bus.
pub(crate) fn entries(gw: &Gateway) -> Vec<QueryEntry> {
    let entry = |domain: &str, q: QueryInfo| QueryEntry {
        path: format!("/api/query/{domain}/{}", q.name),
        domain: domain.to_owned(),
        name: q.name,
        method: "GET",
        summary: q.summary,
        params_schema: q.params_schema,
    };
    let mut out: Vec<QueryEntry> = match &gw.host {
        Some(host) => host
            .status()
            .into_iter()
            .filter_map(|s| Some((s.domain?, s.reactor?)))
            .flat_map(|(domain, reactor)| {
                reactor
                    .queries
                    .into_iter()
                    .map(move |q| entry(&domain, q))
                    .collect::<Vec<_>>()
            })
            .collect(),
        None => gw
            .catalog
            .queries()
            .iter()
            .map(|r| entry(&r.domain, r.query.clone()))
            .collect(),
    };
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Handles `GET /api/query/<domain>/<name>?param=…`.
pub(crate) async fn get_query(
    State(gw): State<Arc<Gateway>>,
    Path((domain, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    caller.may_query(&domain, &name)?;
    let schema = entries(&gw)
        .into_iter()
        .find(|q| q.domain == domain && q.name == name)
        .and_then(|q| q.params_schema);
    let params = typed_params(params, schema.as_ref());
    answer(&gw, &domain, &name, &params.to_string()).await
}

/// Handles `POST /api/query/<domain>/<name>` with a JSON object body.
pub(crate) async fn post_query(
    State(gw): State<Arc<Gateway>>,
    Path((domain, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.may_query(&domain, &name)?;
    let text = crate::body::read_text(&gw, body).await?;
    answer(&gw, &domain, &name, &text).await
}

async fn answer(
    gw: &Gateway,
    domain: &str,
    name: &str,
    params: &str,
) -> Result<Response, ApiError> {
    let span = tracing::info_span!("http.query", domain = %domain, query = %name);
    let answered = match &gw.host {
        Some(host) => host.query(domain, name, params).instrument(span).await,
        None => {
            gw.bus
                .ask(domain, name, params, gw.config.query_timeout)
                .instrument(span)
                .await
        }
    };
    Ok(match answered {
        Ok(json) => (StatusCode::OK, [(CONTENT_TYPE, "application/json")], json).into_response(),
        Err(err) => (status_of(&err), Json(error_json(&err))).into_response(),
    })
}

/// The HTTP status of a query's error code (`wit/reactor.wit`, `query`).
fn status_of(err: &ErrorBody) -> StatusCode {
    match err.code.as_str() {
        parallel_you_core::schema::VALIDATION | "invalid_envelope" => StatusCode::BAD_REQUEST,
        "not_found" => StatusCode::NOT_FOUND,
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        "unavailable" | "overloaded" => StatusCode::SERVICE_UNAVAILABLE,
        "limit_exceeded" => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_json(err: &ErrorBody) -> Value {
    serde_json::to_value(err).unwrap_or_else(|_| json!({ "code": err.code.as_str() }))
}

/// The query string as a JSON object, each value typed as the schema's
/// property says: integer, number and boolean parsed when they parse,
/// everything else (and anything undeclared) a string, for the schema
/// check to judge.
fn typed_params(params: HashMap<String, String>, schema: Option<&Value>) -> Value {
    let declared = |key: &str| {
        schema
            .and_then(|s| {
                s.pointer(&format!(
                    "/properties/{}/type",
                    key.replace('~', "~0").replace('/', "~1")
                ))
            })
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut out = Map::new();
    for (key, text) in params {
        let value = match declared(&key).as_deref() {
            Some("integer") => text.parse::<i64>().map(Value::from).ok(),
            Some("number") => text
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number)),
            Some("boolean") => text.parse::<bool>().map(Value::Bool).ok(),
            _ => None,
        }
        .unwrap_or(Value::String(text));
        out.insert(key, value);
    }
    Value::Object(out)
}

/// The OpenAPI path items of `queries`, for `/openapi.json`.
pub(crate) fn openapi_paths(queries: &[QueryEntry], paths: &mut Map<String, Value>) {
    for q in queries {
        let properties = q
            .params_schema
            .as_ref()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        let required: Vec<&str> = q
            .params_schema
            .as_ref()
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let parameters: Vec<Value> = properties
            .map(|p| {
                p.iter()
                    .map(|(name, schema)| {
                        json!({"name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": schema})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let schema = q
            .params_schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"}));
        let responses = json!({
            "200": {"description": "The query's answer", "content": {"application/json": {"schema": {}}}},
            "400": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
            "500": {"$ref": "#/components/responses/Error"},
            "503": {"$ref": "#/components/responses/Error"},
            "504": {"$ref": "#/components/responses/Error"}
        });
        let id = format!("{}.{}", q.domain, q.name);
        paths.insert(
            q.path.clone(),
            json!({
                "get": {
                    "operationId": format!("query.{id}"),
                    "summary": q.summary,
                    "tags": [q.domain],
                    "parameters": parameters,
                    "responses": responses
                },
                "post": {
                    "operationId": format!("query.{id}.post"),
                    "summary": q.summary,
                    "tags": [q.domain],
                    "requestBody": {"required": false, "content": {"application/json": {"schema": schema}}},
                    "responses": responses
                }
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_values_take_their_declared_types() {
        let schema = json!({"type": "object", "properties": {
            "limit": {"type": "integer"}, "ratio": {"type": "number"},
            "open": {"type": "boolean"}, "id": {"type": "string"}}});
        let params: HashMap<String, String> = [
            ("limit", "5"),
            ("ratio", "0.5"),
            ("open", "true"),
            ("id", "12"),
            ("other", "x"),
            ("bad", "y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let typed = typed_params(params, Some(&schema));
        assert_eq!(
            typed,
            json!({"limit": 5, "ratio": 0.5, "open": true, "id": "12", "other": "x", "bad": "y"})
        );
        // Not a number where one is declared: left as text for the schema
        // check to refuse with its own message.
        let params = [("limit".to_owned(), "five".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            typed_params(params, Some(&schema)),
            json!({"limit": "five"})
        );
    }

    #[test]
    fn error_codes_map_to_statuses() {
        use parallel_you_core::{Code, ErrorCode};
        let own = |code: &str| {
            let mut body = ErrorBody::new(ErrorCode::HandlerError, "");
            body.code = Code::from_handler(code.to_owned());
            status_of(&body)
        };
        let host = |code| status_of(&ErrorBody::new(code, ""));
        assert_eq!(own("validation"), StatusCode::BAD_REQUEST);
        assert_eq!(own("not_found"), StatusCode::NOT_FOUND);
        assert_eq!(own("no_such_day"), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(host(ErrorCode::Timeout), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(host(ErrorCode::Trap), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
