//! A gateway over a host running real components, served on a free
//! loopback port, and the HTTP and WebSocket calls the gateway tests make.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parallel_you_core::Bus;
use parallel_you_gateway::{Gateway, GatewayConfig, TlsFiles};
use parallel_you_host::Host;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Server {
    pub addr: SocketAddr,
    pub host: Arc<Host>,
    pub bus: Arc<dyn Bus>,
    pub handlers: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(names: &[&str], config: GatewayConfig, tls: Option<TlsFiles>) -> Server {
        Self::start_on(super::serve_on_bus(names).await, config, tls).await
    }

    pub async fn start_on(
        on_bus: super::OnBus,
        config: GatewayConfig,
        tls: Option<TlsFiles>,
    ) -> Server {
        let super::OnBus {
            host,
            bus,
            serving,
            handlers,
        } = on_bus;
        let bus: Arc<dyn Bus> = bus;
        let gateway = Gateway::start(bus.clone(), Some(host.clone()), config)
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let signal = async move {
                let _ = rx.await;
            };
            gateway
                .serve(listener, tls, signal, Duration::from_secs(5))
                .await
                .unwrap();
            serving.shutdown(Duration::from_secs(5)).await;
        });
        Server {
            addr,
            host,
            bus,
            handlers,
            stop: Some(tx),
            done,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn ws(&self, session: &str) -> Ws {
        self.ws_query(&format!("session={session}")).await
    }

    /// A WebSocket on `/ws?<query>`.
    pub async fn ws_query(&self, query: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?{query}", self.addr))
            .await
            .unwrap();
        ws
    }

    /// Posts `counter.increment` for `name` in `session`.
    pub async fn increment(&self, session: &str, name: &str) -> (u16, Value) {
        post(
            &self.url("/api/counter/increment"),
            Some(session),
            &json!({ "name": name }).to_string(),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.done)
            .await
            .expect("server stops")
            .unwrap();
    }
}

pub async fn post(url: &str, session: Option<&str>, body: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .body(body.to_owned())
        .header("content-type", "application/json");
    if let Some(s) = session {
        req = req.header("X-Session-Id", s);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(within, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}
