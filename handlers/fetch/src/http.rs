//! One HTTP request through `wasi:http/outgoing-handler`, as a component
//! granted outbound HTTP makes it, with the host's refusals turned into
//! error codes a client can act on. Used by `fetch`, and by the test
//! reactor `rfetch` (`#[path]`), so one request is written once.
//!
//! Codes: `validation` (a URL it cannot send), `denied` (not granted, or
//! the host resolves to an internal address the grant does not list),
//! `too_large` (past the grant's cap), `upstream_timeout` (no answer within
//! the grant's timeout), `tls` (the server's certificate is not trusted,
//! or the handshake failed), `upstream_error` (anything else).

use parallel_you_sdk::Error;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Bytes of the answer's body kept in the event, as text.
pub(crate) const TEXT_KEPT: usize = 4096;
/// Bytes read from the body per call.
const READ_CHUNK: u64 = 64 * 1024;

/// What to send.
pub(crate) struct Request<'a> {
    /// The component sending it, named in a refusal.
    pub(crate) component: &'a str,
    /// An absolute `http://` or `https://` URL.
    pub(crate) url: &'a str,
    /// `GET` (the default), `POST`, `PUT`, `DELETE` or `HEAD`.
    pub(crate) method: Option<&'a str>,
    /// The request body, if any.
    pub(crate) body: Option<&'a str>,
    /// Sent as `Authorization: Bearer <it>`.
    pub(crate) bearer: Option<String>,
}

/// What came back.
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The body's length.
    pub(crate) bytes: usize,
    /// Its first [`TEXT_KEPT`] bytes, as text.
    pub(crate) text: String,
    /// The method sent.
    pub(crate) method: &'static str,
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

/// Sends `req` through `wasi:http/outgoing-handler` and reads the answer
/// (its first [`TEXT_KEPT`] bytes kept as text).
pub(crate) fn send(req: &Request<'_>) -> Result<Answer, Error> {
    let parts = split(req.url)?;
    let headers = Fields::new();
    if let Some(token) = &req.bearer {
        headers
            .append("authorization", format!("Bearer {token}").as_bytes())
            .map_err(|e| Error::internal(format!("the token is not a header value: {e:?}")))?;
    }
    let request = OutgoingRequest::new(headers);
    let method = match req.method.unwrap_or("GET") {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        _ => Method::Get,
    };
    let refused = |what: &str| Error::validation(format!("{:?}: {what}", req.url));
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
    let response = outgoing_handler::handle(request, None)
        .map_err(|e| http_error(req.component, req.url, e))?;
    if let Some(text) = &req.body {
        let stream = outgoing
            .write()
            .map_err(|()| Error::internal("the request body stream was taken twice"))?;
        for chunk in text.as_bytes().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| upstream(req.url, format!("sending the body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| http_error(req.component, req.url, e))?;
    response.subscribe().block();
    let answer = response
        .get()
        .ok_or_else(|| Error::internal("the response was not ready after waiting"))?
        .map_err(|()| Error::internal("the response was taken twice"))?
        .map_err(|e| http_error(req.component, req.url, e))?;
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
                    Some(code) => http_error(req.component, req.url, code),
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
                        Error::new(code, format!("{}: reading the answer: {text}", req.url))
                    }
                });
            }
        }
    }
    Ok(Answer {
        status,
        bytes,
        text: String::from_utf8_lossy(&kept).into_owned(),
        method: method_name(&method),
    })
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

fn http_error(component: &str, url: &str, e: ErrorCode) -> Error {
    match e {
        ErrorCode::HttpRequestDenied => Error::new(
            "denied",
            format!("{url}: not granted (the operator's grants for `{component}` do not list this destination)"),
        ),
        ErrorCode::DestinationIpProhibited => Error::new(
            "denied",
            format!("{url}: the host resolves to an internal address the grants do not list"),
        ),
        ErrorCode::HttpResponseBodySize(cap) => Error::new(
            "too_large",
            format!("{url}: the answer is larger than the grant allows ({cap:?} bytes)"),
        ),
        ErrorCode::TlsCertificateError => Error::new(
            "tls",
            format!(
                "{url}: the server's TLS certificate is not trusted (an issuer outside the \
                 roots, another name, or expired; a private CA goes in the grants' \
                 [http] ca_file)"
            ),
        ),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            Error::new("tls", format!("{url}: the TLS handshake failed ({e:?})"))
        }
        ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::DnsTimeout
        | ErrorCode::HttpResponseTimeout => {
            Error::new("upstream_timeout", format!("{url}: no answer in time ({e:?})"))
        }
        other => Error::new("upstream_error", format!("{url}: {other:?}")),
    }
}
