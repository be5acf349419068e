//! Outbound HTTP for a component through `wasi:http/outgoing-handler`:
//! denied unless its grants allow the destination, and bounded when they do.
//!
//! A request is checked three times: its `scheme://host:port` against the
//! allow-list (else `HTTP-request-denied`); each address its host resolves
//! to against the SSRF rule (loopback, private, link-local and other
//! internal addresses only when the allow-list names that address, or
//! `allow_private` its network; else `destination-IP-prohibited`); and the
//! connection goes to the address that was checked, never to a second
//! lookup, so a name cannot re-resolve somewhere else in between. The
//! response is bounded in time (connect, first byte and every later byte,
//! each within the grant's timeout) and in size (the grant's cap on the body,
//! else `HTTP-response-body-size`). HTTPS trusts the webpki roots and the
//! grant's `ca_file` (`tls.rs`); a certificate they do not vouch for is
//! `TLS-certificate-error`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as P2ErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::pattern::{canonical, default_port, is_internal, HostPattern, IpNetwork};

/// Per-request timeout when the grant names none.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Response body cap when the grant names none.
pub(crate) const DEFAULT_MAX_RESPONSE: u64 = 1024 * 1024;
/// The largest response body cap a grant may ask for.
pub(crate) const MAX_RESPONSE_CEILING: u64 = 64 * 1024 * 1024;
/// Requests per command when the grant names none.
pub(crate) const DEFAULT_MAX_REQUESTS: u32 = 16;
/// The most requests per command a grant may ask for.
pub(crate) const MAX_REQUESTS_CEILING: u32 = 1000;

/// Outbound HTTP granted to one component.
#[derive(Debug, Clone)]
pub struct HttpGrant {
    /// Destinations it may reach.
    pub allow: Vec<HostPattern>,
    /// Internal networks its allowed names may resolve into.
    pub allow_private: Vec<IpNetwork>,
    /// Bound on each phase of a request: connecting (DNS included), the
    /// first byte of the answer, and each gap between later bytes.
    pub timeout: Duration,
    /// Most bytes of a response body.
    pub max_response_bytes: u64,
    /// Most requests one command may send.
    pub max_requests: u32,
    /// The operator's extra TLS roots (`ca_file`), if any.
    pub ca_file: Option<std::path::PathBuf>,
    /// What its HTTPS trusts: the webpki roots, and `ca_file`'s.
    pub tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl HttpGrant {
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allow.iter().any(|p| p.matches(scheme, host, port))
    }

    /// Whether a resolved address may be connected to.
    fn may_connect(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_internal(ip)
            || self
                .allow
                .iter()
                .any(|p| p.literal_ip().map(canonical) == Some(ip))
            || self.allow_private.iter().any(|n| n.contains(ip))
    }
}

/// The `wasi:http` hooks of one sandbox: its grant (none: every request is
/// denied) and what its command has sent so far.
pub(crate) struct HttpHooks {
    grant: Option<Arc<HttpGrant>>,
    domain: Arc<str>,
    sent: u32,
}

impl HttpHooks {
    pub(crate) fn new(grant: Option<Arc<HttpGrant>>, domain: Arc<str>) -> Self {
        HttpHooks {
            grant,
            domain,
            sent: 0,
        }
    }

    /// A reused instance's next command starts with its full allowance.
    pub(crate) fn reset(&mut self) {
        self.sent = 0;
    }

    /// The grant and the checked destination of `request`, or why it is
    /// refused.
    fn admit(
        &mut self,
        request: &http::Request<WasiBody>,
    ) -> Result<(Arc<HttpGrant>, Target), Error> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or("")
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .or_else(|| default_port(&scheme))
            .ok_or(Error::HttpRequestUriInvalid)?;
        let shown = format!("{scheme}://{host}:{port}");
        let Some(grant) = self
            .grant
            .clone()
            .filter(|g| g.allows(&scheme, &host, port))
        else {
            tracing::warn!(domain = %self.domain, destination = %shown, "outbound HTTP denied: not in the component's grants");
            return Err(Error::HttpRequestDenied);
        };
        if self.sent >= grant.max_requests {
            tracing::warn!(domain = %self.domain, destination = %shown, max = grant.max_requests, "outbound HTTP denied: too many requests in one command");
            return Err(Error::ConnectionLimitReached);
        }
        self.sent += 1;
        Ok((
            grant,
            Target {
                tls: scheme == "https",
                host,
                port,
                shown,
            },
        ))
    }
}

/// Where an admitted request goes.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// `scheme://host:port`, for logs.
    shown: String,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    /// A certificate the roots do not vouch for is the guest's
    /// `TLS-certificate-error` (so it can say so), the rest a protocol
    /// error.
    fn p2_error_from_tls(&mut self, err: &std::io::Error) -> P2ErrorCode {
        tracing::warn!(domain = %self.domain, error = %err, "outbound HTTPS: the TLS handshake failed");
        if super::tls::is_certificate_error(err) {
            P2ErrorCode::TlsCertificateError
        } else {
            P2ErrorCode::TlsProtocolError
        }
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let admitted = self.admit(&request);
        let domain = self.domain.clone();
        Box::new(async move {
            let (grant, target) = admitted?;
            let sent = send(&grant, &target, request, options).await;
            if let Err(err) = &sent {
                tracing::info!(%domain, destination = %target.shown, error = %err, "outbound HTTP failed");
            }
            sent
        })
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// The phase bound: the guest's own option when it is shorter than the
/// grant's timeout.
fn bound(asked: Option<Duration>, grant: Duration) -> Duration {
    asked
        .map_or(grant, |a| a.min(grant))
        .max(Duration::from_millis(1))
}

async fn send(
    grant: &HttpGrant,
    target: &Target,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let connect_timeout = bound(options.and_then(|o| o.connect_timeout), grant.timeout);
    let first_byte = bound(options.and_then(|o| o.first_byte_timeout), grant.timeout);
    let between_bytes = bound(options.and_then(|o| o.between_bytes_timeout), grant.timeout);
    let addr = tokio::time::timeout(connect_timeout, resolve(grant, &target.host, target.port))
        .await
        .map_err(|_| Error::DnsTimeout)??;
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let stream: Box<dyn Stream> = if target.tls {
        let name = tls_name(&target.host)?;
        let connector = tokio_rustls::TlsConnector::from(grant.tls.clone());
        let tls = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The request line carries only the path; the Host header the target.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
    let io = wasmtime_wasi::runtime::spawn(conn);
    let response = tokio::time::timeout(first_byte, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let cap = grant.max_response_bytes;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(Error::HttpResponseBodySize(declared));
    }
    let response = response.map(|incoming| {
        Bounded {
            incoming,
            left: cap,
            cap,
            gap: between_bytes,
            timer: Box::pin(tokio::time::sleep(between_bytes)),
        }
        .boxed_unsync()
    });
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> =
        Box::new(async move { io.await.map_err(Error::from) });
    Ok((response, io))
}

/// The first address of `host` the grant lets the request reach.
async fn resolve(grant: &HttpGrant, host: &str, port: u16) -> Result<SocketAddr, Error> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    addrs
        .iter()
        .copied()
        .find(|a| grant.may_connect(a.ip()))
        .ok_or_else(|| {
            tracing::warn!(%host, addresses = ?addrs, "outbound HTTP refused: the host resolves only to internal addresses the grant does not list");
            Error::DestinationIpProhibited
        })
}

fn tls_name(host: &str) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, Error> {
    use tokio_rustls::rustls::pki_types::ServerName;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => ServerName::try_from(host.to_owned()).map_err(|_| Error::HttpRequestUriInvalid),
    }
}

/// A response body held to the grant: at most `cap` bytes, and no gap
/// between frames longer than `gap`.
struct Bounded {
    incoming: hyper::body::Incoming,
    left: u64,
    cap: u64,
    gap: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Error::from(err)))),
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > self.left {
                    let cap = self.cap;
                    self.left = 0;
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(cap)))));
                }
                self.left -= len;
                let next = tokio::time::Instant::now() + self.gap;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn grant(allow: &[&str], private: &[&str]) -> HttpGrant {
        HttpGrant {
            allow: allow
                .iter()
                .map(|p| HostPattern::parse(p).unwrap())
                .collect(),
            allow_private: private
                .iter()
                .map(|p| IpNetwork::parse(p).unwrap())
                .collect(),
            timeout: Duration::from_secs(1),
            max_response_bytes: 10,
            max_requests: 2,
            ca_file: None,
            tls: super::super::tls::default_config().unwrap(),
        }
    }

    #[test]
    fn internal_addresses_need_listing() {
        let by_name = grant(&["http://localhost:8080"], &[]);
        assert!(!by_name.may_connect("127.0.0.1".parse().unwrap()));
        assert!(by_name.may_connect("93.184.216.34".parse().unwrap()));
        let by_ip = grant(&["http://127.0.0.1:8080"], &[]);
        assert!(by_ip.may_connect("127.0.0.1".parse().unwrap()));
        assert!(!by_ip.may_connect("127.0.0.2".parse().unwrap()));
        let by_net = grant(&["http://localhost:8080"], &["127.0.0.0/8"]);
        assert!(by_net.may_connect("::ffff:127.0.0.9".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_name_resolving_inside_is_refused() {
        let g = grant(&["http://localhost:8080"], &[]);
        assert!(matches!(
            resolve(&g, "localhost", 8080).await,
            Err(Error::DestinationIpProhibited)
        ));
        let g = grant(&["http://localhost:8080"], &["127.0.0.0/8", "::1/128"]);
        assert!(resolve(&g, "localhost", 8080).await.is_ok());
    }
}
