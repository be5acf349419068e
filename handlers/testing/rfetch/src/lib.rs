//! Test reactor `rfetch`: grants apply to reactors as to handlers. Each
//! `noop.ponged` whose body names a `url` is fetched (GET, through
//! `wasi:http`, the same request code as the `fetch` handler) and
//! announced as `rfetch.fetched {url, method, status, bytes, text}`, or, when the host
//! refused or the request failed, `rfetch.failed {url, code, message}`
//! (the event succeeds either way, so a refusal is not retried).

use parallel_you_sdk::{
    export_reactor, CommandToSend, Delivered, Error, Event, EventReactor, Reactor, ReactorCtx,
};
use serde_json::{json, Value};

#[path = "../../../fetch/src/http.rs"]
mod http;

struct Fetcher;

impl EventReactor for Fetcher {
    fn reactor() -> Reactor {
        Reactor::new("rfetch", env!("CARGO_PKG_VERSION")).on("noop.ponged", ponged)
    }
}

fn ponged(ctx: &ReactorCtx, ev: Delivered<Value>) -> Result<Vec<CommandToSend>, Error> {
    let Some(url) = ev.body["url"].as_str() else {
        return Ok(vec![]);
    };
    let sent = http::send(&http::Request {
        component: "rfetch",
        url,
        method: None,
        body: None,
        bearer: None,
    });
    ctx.emit(match sent {
        Ok(answer) => Event::new(
            "rfetch.fetched",
            &json!({
                "url": url,
                "method": answer.method,
                "status": answer.status,
                "bytes": answer.bytes,
                "text": answer.text,
            }),
        )?,
        Err(e) => Event::new(
            "rfetch.failed",
            &json!({ "url": url, "code": e.code(), "message": e.message() }),
        )?,
    });
    Ok(vec![])
}

export_reactor!(Fetcher);
