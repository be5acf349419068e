//! The Parallel You gateway: an HTTP API built from the bus's command
//! bindings, and WebSocket sessions that stream each client's events.
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `GET /assets/<file>` | the dashboard: embedded ES modules and CSS (`dashboard.rs`) |
//! | `POST /api/<key as path>` | a command: `thread.saga.create` → `/api/thread/saga/create`; 202 with `{correlation_id, message_id}`; `?wait=<ms>` answers 200 with the events |
//! | `GET /api` | the discovered commands, with summaries and body schemas |
//! | `GET /openapi.json` | the same as an OpenAPI 3.1 document |
//! | `GET /ws?session=<id>[&follow=<patterns>]` | the session's events as envelope JSON text (and, followed, matching events of every session); commands may be sent back |
//! | `GET /handlers` | the host's handlers: file, domain, version, SHA-256, load time, routing keys, last error (404 without a host in this process) |
//! | `GET /healthz`, `GET /metrics` | liveness; Prometheus text |
//!
//! With [`Auth::Jwt`] every route but `/healthz` and the dashboard's files
//! needs a bearer token (`auth/`); sessions then belong to the token's
//! subject (`owners.rs`), and what a client sends passes `sanitize.rs`.
//!
//! Follow a command from `api.rs` to the bus, and its events back through
//! `sessions.rs` to `ws.rs`.

mod api;
pub mod auth;
mod body;
pub mod catalog;
mod connections;
mod dashboard;
mod metrics;
pub mod openapi;
mod owners;
pub mod query;
mod rate;
mod rejection;
mod sanitize;
mod session_param;
mod sessions;
mod tls;
mod trace_context;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use parallel_you_core::{Bus, HostInfo};
use tokio_util::sync::CancellationToken;

pub use auth::Auth;
pub use catalog::CommandEntry;
pub use rate::Rate;
pub use rejection::ApiError;

use crate::catalog::Catalog;
use crate::connections::{CappedAcceptor, ConnectionCap};
use crate::metrics::GatewayMetrics;
use crate::owners::Owners;
use crate::rate::Rates;
use crate::sessions::Sessions;

/// Settings of a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body (and WebSocket message), in bytes (default 1 MiB).
    pub max_body: usize,
    /// Events kept per session for clients that reconnect (default 1000).
    pub session_buffer: usize,
    /// Bytes of events kept per session (default 4 MiB).
    pub session_buffer_bytes: usize,
    /// Bytes of events kept across all sessions (default 256 MiB): past
    /// it idle sessions are forgotten, oldest first, then a live session's
    /// oldest events.
    pub sessions_bytes: usize,
    /// How long a session's events are kept after its client left (default 5 min).
    pub reconnect_window: Duration,
    /// Most sessions buffered at once (default 10 000): a new one makes
    /// room by forgetting the idle session used longest ago.
    pub max_sessions: usize,
    /// How often the command list is read from the bus (default 1 s).
    pub refresh: Duration,
    /// Longest `?wait=` honoured (default 30 s).
    pub max_wait: Duration,
    /// How long a query asked on the bus waits for a host's answer before
    /// it is a 504 (default 10 s).
    pub query_timeout: Duration,
    /// How long a client may take to send a request's headers, and to send
    /// its first request after connecting (default 10 s); the connection
    /// is closed after it.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body (default 30 s);
    /// 408 after it.
    pub body_timeout: Duration,
    /// Most connections open at once, WebSockets included (default 4096,
    /// lowered to what the process's descriptor limit allows); past it a
    /// new connection is closed at once.
    pub max_connections: usize,
    /// Requests to `/api/…` per client (its subject, else its IP address)
    /// (default 10 000/s, bursts of 20 000; `None`: unlimited): 429 with
    /// `Retry-After` past it.
    pub rate_limit: Option<Rate>,
    /// Commands one WebSocket may send (default 10 000/s, bursts of
    /// 20 000): past it the socket is read more slowly.
    pub socket_rate: Option<Rate>,
    /// Open WebSockets per client (default 256): 429 past it.
    pub sockets_per_client: usize,
    /// `?wait=` requests waiting at once (default 1024): 503 past it.
    pub max_waits: usize,
    /// How callers are authenticated (default none).
    pub auth: Auth,
    /// Where sessions' owners are kept with authentication on, so they
    /// survive a restart (default: in memory).
    pub session_store: Option<SessionStore>,
    /// Where a reconnecting client's missed events are found when the
    /// session buffer does not reach back to them (after a restart): the
    /// event log in the store (default: none; a `pyou.gap` says so).
    pub history: Option<History>,
}

/// A session's past events, for clients that resume (`/ws?after=`).
#[derive(Clone)]
pub struct History(pub Arc<dyn parallel_you_core::session_history::SessionHistory>);

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("History")
    }
}

/// The store a gateway keeps session owners in.
#[derive(Clone)]
pub struct SessionStore(pub Arc<dyn parallel_you_core::store::Store>);

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStore")
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body: 1024 * 1024,
            session_buffer: 1000,
            session_buffer_bytes: 4 * 1024 * 1024,
            sessions_bytes: 256 * 1024 * 1024,
            reconnect_window: Duration::from_secs(300),
            max_sessions: 10_000,
            refresh: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            query_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            rate_limit: Some(Rate {
                per_second: 10_000,
                burst: 20_000,
            }),
            socket_rate: Some(Rate {
                per_second: 10_000,
                burst: 20_000,
            }),
            sockets_per_client: 256,
            max_waits: 1024,
            auth: Auth::None,
            session_store: None,
            history: None,
        }
    }
}

/// PEM files for HTTPS and WSS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The bus refused the event subscription.
    #[error("cannot subscribe to events: {0}")]
    Bus(#[from] parallel_you_core::bus::BusError),
    /// The TLS files cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listener failed.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// A running gateway's shared state.
pub struct Gateway {
    bus: Arc<dyn Bus>,
    host: Option<Arc<dyn HostInfo>>,
    catalog: Catalog,
    sessions: Sessions,
    owners: Owners,
    metrics: GatewayMetrics,
    connections: Arc<ConnectionCap>,
    rates: Rates,
    waits: Arc<tokio::sync::Semaphore>,
    config: GatewayConfig,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts a gateway over `bus`: subscribes to its events and reads its
    /// bindings. With a `host` (one process runs both), the handlers'
    /// manifests add summaries and schemas, and `/metrics` includes the host's.
    pub async fn start(
        bus: Arc<dyn Bus>,
        host: Option<Arc<dyn HostInfo>>,
        config: GatewayConfig,
    ) -> Result<Arc<Self>, GatewayError> {
        let mut events = bus.subscribe("#").await?;
        let gw = Arc::new(Gateway {
            catalog: Catalog::new(bus.clone(), host.clone()),
            sessions: Sessions::new(sessions::Limits {
                events: config.session_buffer,
                bytes: config.session_buffer_bytes,
                total_bytes: config.sessions_bytes,
                window: config.reconnect_window,
                sessions: config.max_sessions,
            }),
            owners: Owners::new(config.session_store.as_ref().map(|s| s.0.clone())),
            metrics: GatewayMetrics::default(),
            connections: Arc::new(ConnectionCap::new(config.max_connections)),
            rates: Rates {
                requests: rate::Buckets::new(config.rate_limit),
                sockets: rate::Sockets::new(config.sockets_per_client),
                socket_commands: config.socket_rate,
            },
            waits: Arc::new(tokio::sync::Semaphore::new(config.max_waits.max(1))),
            bus,
            host,
            config,
            shutdown: CancellationToken::new(),
        });
        gw.catalog.reload().await;
        // The pump: one reader, so each session's events keep publish order.
        let pump = gw.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = pump.shutdown.cancelled() => break,
                    ev = events.next() => match ev {
                        Some(ev) => {
                            // A handler was (un)loaded: its keys are bound
                            // already, so the API can follow now rather than
                            // at the next periodic refresh.
                            if ev.meta.routing_key.starts_with("handler.") {
                                let gw = pump.clone();
                                tokio::spawn(async move { gw.catalog.reload().await });
                            }
                            pump.sessions.file(&ev)
                        }
                        None => break,
                    },
                }
            }
        });
        let housekeeping = gw.clone();
        tokio::spawn(async move {
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    _ = housekeeping.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(housekeeping.config.refresh) => {}
                }
                housekeeping.catalog.refresh().await;
                ticks += 1;
                if ticks.is_multiple_of(10) {
                    housekeeping.sessions.collect_idle();
                }
            }
        });
        Ok(gw)
    }

    /// The routes.
    pub fn router(self: &Arc<Self>) -> Router {
        // Commands and queries cost the gateway and the host work: those
        // routes count against the caller's rate.
        let limited = Router::new()
            .route(
                "/api/query/{domain}/{name}",
                get(query::get_query).post(query::post_query),
            )
            .route("/api/{*path}", post(api::post_command))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                rate::limit_requests,
            ));
        Router::new()
            .route("/", get(dashboard::index))
            .route("/assets/{*path}", get(dashboard::asset))
            .route("/api", get(api::list_commands))
            .merge(limited)
            .route("/openapi.json", get(openapi_json))
            .route("/ws", get(ws::upgrade))
            .route("/handlers", get(handlers))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .fallback(api::not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::authenticate,
            ))
            // The API reads bodies with its own limit and answers 413 itself.
            .layer(DefaultBodyLimit::disable())
            // gzip when the client accepts it: the dashboard's files and
            // the thread lists shrink to a fifth or less. Bodies under 32
            // bytes, and upgrades (no body), go as they are.
            .layer(tower_http::compression::CompressionLayer::new())
            .with_state(self.clone())
    }

    /// The commands as last discovered.
    pub fn commands(&self) -> Vec<CommandEntry> {
        self.catalog.entries().as_ref().clone()
    }

    /// The commands served now: the catalog brought up to date with the
    /// bus bindings first (it follows them on its own, a moment later).
    pub async fn current_commands(&self) -> Vec<CommandEntry> {
        self.catalog.refresh().await;
        self.commands()
    }

    /// Serves HTTP (or HTTPS and WSS with `tls`) on `listener` until
    /// `signal` completes, then stops accepting, closes every WebSocket
    /// with a close frame, and waits up to `grace` for requests in flight.
    pub async fn serve(
        self: &Arc<Self>,
        listener: std::net::TcpListener,
        tls: Option<TlsFiles>,
        signal: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<(), GatewayError> {
        listener.set_nonblocking(true)?;
        let handle = axum_server::Handle::<SocketAddr>::new();
        let gw = self.clone();
        let on_signal = handle.clone();
        tokio::spawn(async move {
            signal.await;
            gw.shutdown.cancel();
            on_signal.graceful_shutdown(Some(grace));
        });
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let capped = CappedAcceptor::new(
            axum_server::accept::DefaultAcceptor::new(),
            self.connections.clone(),
        );
        let headers = self.config.header_timeout;
        match tls {
            None => {
                let server = axum_server::from_tcp(listener)?.acceptor(capped);
                bounded(server, headers, handle).serve(app).await?
            }
            Some(files) => {
                let config = tls::server_config(&files)?;
                let server =
                    axum_server::from_tcp_rustls(listener, config)?.map(|tls| tls.acceptor(capped));
                bounded(server, headers, handle).serve(app).await?
            }
        }
        Ok(())
    }

    /// Closes every WebSocket and stops the gateway's background tasks.
    pub fn close(&self) {
        self.shutdown.cancel();
    }
}

/// The same bounds on slow clients with TLS or without.
fn bounded<A>(
    mut server: axum_server::Server<SocketAddr, A>,
    headers: Duration,
    handle: axum_server::Handle<SocketAddr>,
) -> axum_server::Server<SocketAddr, A> {
    server.http_builder().http1().header_read_timeout(headers);
    server.first_request_timeout(headers).handle(handle)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /handlers`: what `pyou handlers --gateway` prints.
async fn handlers(State(gw): State<Arc<Gateway>>) -> axum::response::Response {
    match &gw.host {
        Some(host) => {
            let mut status = host.status();
            for s in &mut status {
                s.file =
                    parallel_you_core::host_info::public_file_name(std::path::Path::new(&s.file));
            }
            Json(status).into_response()
        }
        None => (
            axum::http::StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "this gateway runs without a host in its process: it cannot list handlers"
            })),
        )
            .into_response(),
    }
}

async fn openapi_json(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    Json(openapi::document(
        &gw.catalog.entries(),
        &query::entries(&gw),
    ))
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    let mut out = String::new();
    gw.metrics.render(&gw.sessions, &gw.connections, &mut out);
    if let Some(host) = &gw.host {
        host.render_metrics(&mut out);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
