//! The sample handler that calls the web: one command, `fetch.get`, sends
//! an HTTP request through `wasi:http/outgoing-handler` and reports the
//! answer.
//!
//! | command | body | answer |
//! |---|---|---|
//! | `fetch.get` | `{url, method?: "GET"\|"POST"\|…, body?}` | `fetch.fetched {url, status, bytes, text, label}` |
//!
//! It can reach only what the operator grants it in `fetch.toml` beside
//! `fetch.wasm` (see the README's "Grants"): without a grant every request
//! is refused, and the refusal is this handler's error event, code
//! `denied`. Config values come from `wasi:config/store`: `label` is copied
//! into every answer, and a `token` (typically a secret) is sent as
//! `Authorization: Bearer <token>`.
//!
//! Errors: `validation` (a URL it cannot send), `denied` (not granted, or
//! the host resolves to an internal address the grant does not list),
//! `too_large` (the answer is past the grant's cap), `upstream_timeout`
//! (no answer within the grant's timeout), `upstream_error` (anything else
//! the request met).

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::Deserialize;
use serde_json::json;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

mod config {
    wit_bindgen::generate!({
        inline: r#"
            package wasi:config@0.2.0-rc.1;

            interface store {
                variant error {
                    upstream(string),
                    io(string),
                }
                get: func(key: string) -> result<option<string>, error>;
                get-all: func() -> result<list<tuple<string, string>>, error>;
            }

            world fetch-config {
                import store;
            }
        "#,
        world: "fetch-config",
    });
}

/// Bytes of the answer's body kept in the event, as text.
const TEXT_KEPT: usize = 4096;
/// Bytes read from the body per call.
const READ_CHUNK: u64 = 64 * 1024;

struct Fetch;

impl Handler for Fetch {
    fn router() -> Router {
        Router::new("fetch", env!("CARGO_PKG_VERSION"))
            .command(
                "fetch.get",
                "Send an HTTP request to a granted host and report the answer",
                get,
            )
            .schema(GET_SCHEMA)
            .emits(&["fetch.fetched"])
    }
}

export_handler!(Fetch);

const GET_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["url"],"properties":{"url":{"type":"string","minLength":1,"maxLength":2048},"method":{"type":"string","enum":["GET","POST","PUT","DELETE","HEAD"]},"body":{"type":"string","maxLength":65536}}}"#;

#[derive(Deserialize)]
struct Get {
    url: String,
    method: Option<String>,
    body: Option<String>,
}

/// A URL split as `wasi:http` takes it.
struct Parts<'a> {
    scheme: Scheme,
    authority: &'a str,
    path: &'a str,
}

fn split(url: &str) -> Result<Parts<'_>, Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::validation(format!("{url:?} is not an absolute URL")))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(Error::validation(format!(
                "scheme {other:?}: only http and https"
            )))
        }
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::validation(format!("{url:?} has no host")));
    }
    Ok(Parts {
        scheme,
        authority,
        path,
    })
}

fn config_value(key: &str) -> Result<Option<String>, Error> {
    config::wasi::config::store::get(key)
        .map_err(|e| Error::internal(format!("wasi:config could not be read: {e:?}")))
}

fn get(ctx: &Ctx, cmd: Get) -> Result<Vec<Event>, Error> {
    let parts = split(&cmd.url)?;
    let headers = Fields::new();
    if let Some(token) = config_value("token")? {
        headers
            .append("authorization", format!("Bearer {token}").as_bytes())
            .map_err(|e| Error::internal(format!("the token is not a header value: {e:?}")))?;
    }
    let request = OutgoingRequest::new(headers);
    let method = match cmd.method.as_deref().unwrap_or("GET") {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        _ => Method::Get,
    };
    let refused = |what: &str| Error::validation(format!("{:?}: {what}", cmd.url));
    request
        .set_method(&method)
        .map_err(|()| refused("bad method"))?;
    request
        .set_scheme(Some(&parts.scheme))
        .map_err(|()| refused("bad scheme"))?;
    request
        .set_authority(Some(parts.authority))
        .map_err(|()| refused("bad host"))?;
    request
        .set_path_with_query(Some(parts.path))
        .map_err(|()| refused("bad path"))?;
    let outgoing = request
        .body()
        .map_err(|()| Error::internal("the request body was taken twice"))?;
    let response = outgoing_handler::handle(request, None).map_err(|e| http_error(&cmd.url, e))?;
    if let Some(text) = &cmd.body {
        let stream = outgoing
            .write()
            .map_err(|()| Error::internal("the request body stream was taken twice"))?;
        for chunk in text.as_bytes().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| upstream(&cmd.url, format!("sending the body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| http_error(&cmd.url, e))?;
    response.subscribe().block();
    let answer = response
        .get()
        .ok_or_else(|| Error::internal("the response was not ready after waiting"))?
        .map_err(|()| Error::internal("the response was taken twice"))?
        .map_err(|e| http_error(&cmd.url, e))?;
    let status = answer.status();
    let body = answer
        .consume()
        .map_err(|()| Error::internal("the response body was taken twice"))?;
    let stream = body
        .stream()
        .map_err(|()| Error::internal("the response stream was taken twice"))?;
    let mut kept = Vec::new();
    let mut bytes = 0usize;
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                bytes += chunk.len();
                let room = TEXT_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                // The host's reason (the size cap, a timeout), typed when
                // the stream carries the code, else in its text.
                return Err(match wasi::http::types::http_error_code(&e) {
                    Some(code) => http_error(&cmd.url, code),
                    None => {
                        let text = e.to_debug_string();
                        let lower = text.to_ascii_lowercase();
                        let code = if lower.contains("body size") {
                            "too_large"
                        } else if lower.contains("timeout") || lower.contains("timed out") {
                            "upstream_timeout"
                        } else {
                            "upstream_error"
                        };
                        Error::new(code, format!("{}: reading the answer: {text}", cmd.url))
                    }
                });
            }
        }
    }
    ctx.info(format!(
        "{} {} answered {status}, {bytes} bytes",
        method_name(&method),
        cmd.url
    ));
    Ok(vec![Event::new(
        "fetch.fetched",
        &json!({
            "url": cmd.url,
            "status": status,
            "bytes": bytes,
            "text": String::from_utf8_lossy(&kept),
            "label": config_value("label")?,
        }),
    )?])
}

fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
        _ => "GET",
    }
}

fn upstream(url: &str, what: String) -> Error {
    Error::new("upstream_error", format!("{url}: {what}"))
}

fn http_error(url: &str, e: ErrorCode) -> Error {
    match e {
        ErrorCode::HttpRequestDenied => Error::new(
            "denied",
            format!("{url}: not granted (the operator's grants for `fetch` do not list this destination)"),
        ),
        ErrorCode::DestinationIpProhibited => Error::new(
            "denied",
            format!("{url}: the host resolves to an internal address the grants do not list"),
        ),
        ErrorCode::HttpResponseBodySize(cap) => Error::new(
            "too_large",
            format!("{url}: the answer is larger than the grant allows ({cap:?} bytes)"),
        ),
        ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::DnsTimeout
        | ErrorCode::HttpResponseTimeout => {
            Error::new("upstream_timeout", format!("{url}: no answer in time ({e:?})"))
        }
        other => Error::new("upstream_error", format!("{url}: {other:?}")),
    }
}
