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
pub mod catalog;
mod dashboard;
mod metrics;
pub mod openapi;
mod owners;
pub mod query;
mod rejection;
mod sanitize;
mod session_param;
mod sessions;
mod tls;
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
pub use rejection::ApiError;

use crate::catalog::Catalog;
use crate::metrics::GatewayMetrics;
use crate::owners::Owners;
use crate::sessions::Sessions;

/// Settings of a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body (and WebSocket message), in bytes (default 1 MiB).
    pub max_body: usize,
    /// Events kept per session for clients that reconnect (default 1000).
    pub session_buffer: usize,
    /// How long a session's events are kept after its client left (default 5 min).
    pub reconnect_window: Duration,
    /// Most sessions buffered at once (default 10 000).
    pub max_sessions: usize,
    /// How often the command list is read from the bus (default 1 s).
    pub refresh: Duration,
    /// Longest `?wait=` honoured (default 30 s).
    pub max_wait: Duration,
    /// How long a query asked on the bus waits for a host's answer before
    /// it is a 504 (default 10 s).
    pub query_timeout: Duration,
    /// How callers are authenticated (default none).
    pub auth: Auth,
    /// Where sessions' owners are kept with authentication on, so they
    /// survive a restart (default: in memory).
    pub session_store: Option<SessionStore>,
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
            reconnect_window: Duration::from_secs(300),
            max_sessions: 10_000,
            refresh: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            query_timeout: Duration::from_secs(10),
            auth: Auth::None,
            session_store: None,
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
            sessions: Sessions::new(
                config.session_buffer,
                config.reconnect_window,
                config.max_sessions,
            ),
            owners: Owners::new(config.session_store.as_ref().map(|s| s.0.clone())),
            metrics: GatewayMetrics::default(),
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
        Router::new()
            .route("/", get(dashboard::index))
            .route("/assets/{*path}", get(dashboard::asset))
            .route("/api", get(api::list_commands))
            .route(
                "/api/query/{domain}/{name}",
                get(query::get_query).post(query::post_query),
            )
            .route("/api/{*path}", post(api::post_command))
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
        let app = self.router().into_make_service();
        match tls {
            None => {
                axum_server::from_tcp(listener)?
                    .handle(handle)
                    .serve(app)
                    .await?
            }
            Some(files) => {
                let config = tls::server_config(&files)?;
                axum_server::from_tcp_rustls(listener, config)?
                    .handle(handle)
                    .serve(app)
                    .await?
            }
        }
        Ok(())
    }

    /// Closes every WebSocket and stops the gateway's background tasks.
    pub fn close(&self) {
        self.shutdown.cancel();
    }
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /handlers`: what `pyou handlers --gateway` prints.
async fn handlers(State(gw): State<Arc<Gateway>>) -> axum::response::Response {
    match &gw.host {
        Some(host) => Json(host.status()).into_response(),
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
    gw.metrics.render(gw.sessions.live(), &mut out);
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
