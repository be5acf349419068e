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
//! (no answer within the grant's timeout), `tls` (an untrusted
//! certificate or a failed handshake), `upstream_error` (anything else the
//! request met).

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::Deserialize;
use serde_json::json;

mod http;

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

fn config_value(key: &str) -> Result<Option<String>, Error> {
    config::wasi::config::store::get(key)
        .map_err(|e| Error::internal(format!("wasi:config could not be read: {e:?}")))
}

fn get(ctx: &Ctx, cmd: Get) -> Result<Vec<Event>, Error> {
    let answer = http::send(&http::Request {
        component: "fetch",
        url: &cmd.url,
        method: cmd.method.as_deref(),
        body: cmd.body.as_deref(),
        bearer: config_value("token")?,
    })?;
    ctx.info(format!(
        "{} {} answered {}, {} bytes",
        answer.method, cmd.url, answer.status, answer.bytes
    ));
    Ok(vec![Event::new(
        "fetch.fetched",
        &json!({
            "url": cmd.url,
            "status": answer.status,
            "bytes": answer.bytes,
            "text": answer.text,
            "label": config_value("label")?,
        }),
    )?])
}
