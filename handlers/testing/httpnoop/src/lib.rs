//! Benchmark baseline (not a Parallel You handler): a `wasi:http/proxy`
//! component for `wasmtime serve` that does `noop.ping`'s work per request,
//! in a fresh instance as wasmtime serves it: read the JSON body, parse
//! it, re-serialise it inside an event-shaped object, answer 202 with it.
//! `benches/gateway.rs` puts it beside `POST /api/noop/ping`.

use std::io::{Read as _, Write as _};

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The gateway's default body cap, so both refuse the same bodies.
const MAX_BODY: u64 = 1 << 20;

struct HttpNoop;

wasi::http::proxy::export!(HttpNoop);

impl wasi::exports::http::incoming_handler::Guest for HttpNoop {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, json) = match read_body(&request) {
            Ok(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) => (
                    202,
                    serde_json::json!({ "routing_key": "noop.ponged", "body": v }).to_string(),
                ),
                Err(e) => (
                    400,
                    serde_json::json!({ "error": e.to_string() }).to_string(),
                ),
            },
            Err(status) => (status, "{}".to_owned()),
        };
        respond(out, status, json.as_bytes());
    }
}

/// The request's body, at most [`MAX_BODY`] bytes; else the status to
/// answer.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, u16> {
    let body = request.consume().map_err(|()| 400_u16)?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| 400_u16)?;
        stream
            .take(MAX_BODY + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| 400_u16)?;
    }
    IncomingBody::finish(body);
    if bytes.len() as u64 > MAX_BODY {
        return Err(413);
    }
    Ok(bytes)
}

fn respond(out: ResponseOutparam, status: u16, json: &[u8]) {
    let headers = Fields::new();
    // Both calls only fail on a forbidden or malformed header: not these.
    let _ = headers.set("content-type", &[b"application/json".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(json);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}
