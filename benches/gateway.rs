//! Gateway figures on loopback: `wrk` against `POST /api/noop/ping` (202),
//! end to end POST → event on the session's WebSocket beside the plain
//! POST → 202 round trip of the same client, `?wait` round trips, and
//! commands sent over one WebSocket against the same commands over HTTP,
//! and, as the ceiling of the HTTP stack in the same run, a bare axum
//! server that parses the same JSON body and answers 202; and POST → 202
//! through a second gateway with `--auth jwt` (HS256) beside the first,
//! alternating, to see what verifying a token costs; and the same POST
//! against `wasmtime serve` running `httpnoop.wasm` (the same JSON work in
//! a fresh instance per request), when a wasmtime CLI is found.
//!
//! Run with `cargo bench --bench gateway` (needs `wrk` on PATH for the load
//! part: `apt-get install wrk`; without it that part is skipped with a note).
//! Every loop is bounded in count and time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parallel_you_core::{Bus, InProcessBus, MemoryStore};
use parallel_you_gateway::{Gateway, GatewayConfig};
use parallel_you_host::{Host, HostConfig};
use tokio_tungstenite::tungstenite::Message;

#[path = "common/wasmtime_serve.rs"]
mod wasmtime_serve;

const ROUND_TRIPS: usize = 2000;
const TIME_CAP: Duration = Duration::from_secs(20);
const WRK_SECONDS: u32 = 10;
/// Commands per side of the WebSocket-vs-HTTP comparison.
const STREAMED: usize = 5000;
/// HTTP clients in flight on the HTTP side of it.
const HTTP_CLIENTS: usize = 32;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    println!(
        "{name:<40} n={:>5}  p50 {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        total.as_secs_f64() * 1e6 / samples.len().max(1) as f64
    );
}

async fn run() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let components = root.join("target/test-handlers");
    if !components.join("noop.wasm").exists() || !components.join("httpnoop.wasm").exists() {
        anyhow::ensure!(
            std::process::Command::new(root.join("scripts/build-handlers"))
                .status()?
                .success(),
            "scripts/build-handlers failed"
        );
    }
    let handlers = tempfile::tempdir()?;
    std::fs::copy(
        components.join("noop.wasm"),
        handlers.path().join("noop.wasm"),
    )?;
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryStore::new()),
    )?);
    host.load_dir(handlers.path()).await?;
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let serving = host.serve(bus.clone()).await?;
    // One client posting as fast as it can would be over the per-client
    // rate: a rate no load here reaches keeps its cost in the figure.
    let config = GatewayConfig {
        rate_limit: Some(parallel_you_gateway::Rate {
            per_second: u32::MAX / 2,
            burst: u32::MAX / 2,
        }),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::start(bus.clone(), Some(host.clone()), config).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            let signal = async move {
                let _ = stop_rx.await;
            };
            gateway
                .serve(listener, None, signal, Duration::from_secs(5))
                .await
        }
    });
    let url = format!("http://{addr}/api/noop/ping");

    // End to end: POST with a session, then the event on that session's socket.
    let client = reqwest::Client::new();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?session=bench")).await?;
    let mut post_only = Vec::new();
    let mut end_to_end = Vec::new();
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        if started.elapsed() > TIME_CAP {
            break;
        }
        let t = Instant::now();
        let res = client
            .post(&url)
            .body(format!(r#"{{"i":{i}}}"#))
            .send()
            .await?;
        anyhow::ensure!(res.status().as_u16() == 202, "status {}", res.status());
        res.bytes().await?;
        post_only.push(t.elapsed());

        let t = Instant::now();
        let res = client
            .post(&url)
            .header("X-Session-Id", "bench")
            .body(format!(r#"{{"i":{i}}}"#))
            .send()
            .await?;
        anyhow::ensure!(res.status().as_u16() == 202, "status {}", res.status());
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await? {
                Some(Ok(Message::Text(_))) => break,
                Some(Ok(_)) => continue,
                other => anyhow::bail!("websocket ended: {other:?}"),
            }
        }
        end_to_end.push(t.elapsed());
    }
    let mut waited = Vec::new();
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        if started.elapsed() > TIME_CAP {
            break;
        }
        let t = Instant::now();
        let res = client
            .post(format!("{url}?wait=2000"))
            .body(format!(r#"{{"i":{i}}}"#))
            .send()
            .await?;
        anyhow::ensure!(res.status().as_u16() == 200, "status {}", res.status());
        res.bytes().await?;
        waited.push(t.elapsed());
    }
    println!();
    report("POST → 202 (one client, sequential)", post_only);
    report("POST → event on the WebSocket", end_to_end);
    report("POST ?wait → 200 with the events", waited);

    // The same commands over one WebSocket and over HTTP (32 clients),
    // each until its answers arrived on a session socket.
    let ws_rate = over_websocket(&addr.to_string()).await?;
    let http_rate = over_http(&addr.to_string(), &client).await?;
    println!(
        "\n{STREAMED} noop.ping to answer: one WebSocket {ws_rate:.0}/s, HTTP ({HTTP_CLIENTS} clients) {http_rate:.0}/s, ratio {:.2}",
        ws_rate / http_rate
    );

    // Load: wrk, bounded in time, against the gateway and then against a
    // bare axum server doing the least an HTTP front must (parse the JSON
    // body, answer 202 with a small JSON): the ceiling of the HTTP stack.
    let lua = handlers.path().join("post.lua");
    std::fs::write(
        &lua,
        "wrk.method = \"POST\"\nwrk.body = '{\"n\":1}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let gateway_load = wrk(&lua, &url).await;
    if gateway_load.is_some() {
        println!(
            "  commands run by the host: {}",
            host.metrics().commands_for("noop.ping")
        );
    }
    let (bare_addr, bare_stop) = bare_axum().await?;
    let bare_url = format!("http://{bare_addr}/api/noop/ping");
    let bare_single = one_client(&client, &bare_url).await?;
    report("bare axum: POST → 202 (one client)", bare_single);
    let bare_load = wrk(&lua, &bare_url).await;
    let _ = bare_stop.send(());
    if let (Some(g), Some(b)) = (gateway_load, bare_load) {
        println!(
            "\ngateway / bare axum under wrk: {:.0} / {:.0} requests/s = {:.0} %",
            g,
            b,
            100.0 * g / b
        );
    }
    if let Some(w) = against_wasmtime_serve(&components, &lua, &client).await? {
        if let Some(g) = gateway_load {
            println!(
                "gateway / wasmtime serve under wrk: {g:.0} / {w:.0} requests/s = {:.2}×",
                g / w
            );
        }
    }
    jwt_against_none(&host, bus, &url, &client).await?;
    let _ = stop_tx.send(());
    server.await??;
    serving.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// One client posting `{"i": n}` to `url` one request after another, each
/// expected to answer 202: the round trips, within the bench's bounds.
async fn one_client(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        if started.elapsed() > TIME_CAP {
            break;
        }
        let t = Instant::now();
        let res = client
            .post(url)
            .body(format!(r#"{{"i":{i}}}"#))
            .send()
            .await?;
        anyhow::ensure!(res.status().as_u16() == 202, "status {}", res.status());
        res.bytes().await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// The same POST against `wasmtime serve` running `httpnoop.wasm` (the
/// same JSON work in a fresh instance per request, answering 202): one
/// client, then wrk. Returns wrk's requests/s; `None` without wasmtime.
async fn against_wasmtime_serve(
    components: &Path,
    lua: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<Option<f64>> {
    let version = match wasmtime_serve::version() {
        Ok(v) => v,
        Err(err) => {
            println!("\nwasmtime serve not run ({err}); `cargo install wasmtime-cli --version 48.0.8 --locked` for it");
            return Ok(None);
        }
    };
    let wasm = components.join("httpnoop.wasm");
    let serve = tokio::task::block_in_place(|| wasmtime_serve::start(&wasm))?;
    let url = format!("http://{}/api/noop/ping", serve.addr);
    let single = one_client(client, &url).await?;
    println!("\n{version}");
    report("wasmtime serve: POST → 202 (one client)", single);
    let load = wrk(lua, &url).await;
    drop(serve);
    Ok(load)
}

/// POST → 202 through the gateway at `url` (no authentication) and through
/// a second one over the same host with `--auth jwt` (HS256, a token with
/// a scope), one request to each in turn so both see the same machine.
async fn jwt_against_none(
    host: &Arc<Host>,
    bus: Arc<dyn Bus>,
    url: &str,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    use parallel_you_gateway::auth::{JwtSettings, JwtVerifier};
    let secret = b"a benchmark secret of at least 32 bytes".to_vec();
    let settings = JwtSettings {
        hs256_secret: Some(secret.clone()),
        audience: Some("bench".to_owned()),
        ..JwtSettings::default()
    };
    let config = GatewayConfig {
        auth: parallel_you_gateway::Auth::Jwt(Arc::new(JwtVerifier::new(&settings)?)),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::start(bus, Some(host.clone()), config).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let jwt_url = format!("http://{}/api/noop/ping", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stop_rx.await;
        };
        gateway
            .serve(listener, None, signal, Duration::from_secs(5))
            .await
    });
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": "bench", "aud": "bench", "exp": exp, "scope": "noop.*" }),
        &jsonwebtoken::EncodingKey::from_secret(&secret)?,
    )?;
    let (mut plain, mut with_jwt) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        if started.elapsed() > TIME_CAP {
            break;
        }
        for (target, token, samples) in [
            (url, None, &mut plain),
            (jwt_url.as_str(), Some(&token), &mut with_jwt),
        ] {
            let mut req = client.post(target).body(format!(r#"{{"i":{i}}}"#));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let t = Instant::now();
            let res = req.send().await?;
            anyhow::ensure!(res.status().as_u16() == 202, "status {}", res.status());
            res.bytes().await?;
            samples.push(t.elapsed());
        }
    }
    println!();
    report("POST → 202, no auth (alternating)", plain);
    report("POST → 202, --auth jwt HS256", with_jwt);
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}

/// Runs `wrk -t2 -c32` against `url` with the POST script `lua`, prints
/// its main lines and returns its requests/s (`None` without wrk).
async fn wrk(lua: &Path, url: &str) -> Option<f64> {
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            &format!("-d{WRK_SECONDS}s"),
            "--latency",
            "-s",
        ])
        .arg(lua)
        .arg(url)
        .output()
        .await;
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            println!("\nwrk failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Err(err) => {
            println!("\nwrk not run ({err}); `apt-get install wrk` for the load figures");
            return None;
        }
    };
    println!("\nwrk -t2 -c32 -d{WRK_SECONDS}s --latency POST {url} (202):");
    let mut rate = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let l = line.trim_start();
        if let Some(r) = l.strip_prefix("Requests/sec:") {
            rate = r.trim().parse().ok();
        }
        if l.starts_with("Requests/sec")
            || l.starts_with("50%")
            || l.starts_with("99%")
            || l.starts_with("Latency")
            || l.contains("requests in")
            || l.starts_with("Non-2xx")
        {
            println!("  {l}");
        }
    }
    rate
}

/// A bare axum server on a free loopback port: parses the JSON body and
/// answers 202 with a small JSON, as the gateway's POST does, and nothing
/// else. Stops when the sender is used or dropped.
async fn bare_axum() -> anyhow::Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    use axum::http::StatusCode;
    async fn accept(body: axum::body::Bytes) -> (StatusCode, axum::Json<serde_json::Value>) {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return (StatusCode::BAD_REQUEST, axum::Json(serde_json::Value::Null));
        };
        let id = body.get("i").cloned().unwrap_or_default();
        (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "correlation_id": id, "message_id": id })),
        )
    }
    let app = axum::Router::new().route("/api/noop/ping", axum::routing::post(accept));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok((addr, tx))
}

/// Reads `n` text frames (events) from `ws` within [`TIME_CAP`].
async fn read_events<S>(ws: &mut S, n: usize) -> anyhow::Result<usize>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + TIME_CAP;
    let mut got = 0;
    while got < n {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => got += 1,
            Ok(Some(Ok(_))) => {}
            Ok(other) => anyhow::bail!("websocket ended: {other:?}"),
            Err(_) => break,
        }
    }
    Ok(got)
}

/// Commands per second, sent on one socket as fast as it takes them, until
/// the last answer came back on it.
async fn over_websocket(addr: &str) -> anyhow::Result<f64> {
    use futures::SinkExt;
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?session=wsbench")).await?;
    let (mut tx, mut rx) = ws.split();
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        for i in 0..STREAMED {
            let cmd =
                parallel_you_core::Envelope::command("noop.ping", &format!(r#"{{"i":{i}}}"#))?
                    .with_session("wsbench");
            tx.send(Message::text(cmd.to_json())).await?;
        }
        anyhow::Ok(tx)
    });
    let got = read_events(&mut rx, STREAMED).await?;
    let elapsed = t.elapsed();
    drop(sender.await??);
    anyhow::ensure!(
        got == STREAMED,
        "only {got} of {STREAMED} answers over the WebSocket"
    );
    Ok(STREAMED as f64 / elapsed.as_secs_f64())
}

/// The same commands POSTed by [`HTTP_CLIENTS`] clients in a session whose
/// socket reads the answers.
async fn over_http(addr: &str, client: &reqwest::Client) -> anyhow::Result<f64> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?session=httpbench")).await?;
    let url = format!("http://{addr}/api/noop/ping");
    let t = Instant::now();
    let posters: Vec<_> = (0..HTTP_CLIENTS)
        .map(|c| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                for i in (c..STREAMED).step_by(HTTP_CLIENTS) {
                    let res = client
                        .post(&url)
                        .header("X-Session-Id", "httpbench")
                        .body(format!(r#"{{"i":{i}}}"#))
                        .send()
                        .await?;
                    anyhow::ensure!(res.status().as_u16() == 202, "status {}", res.status());
                    res.bytes().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let got = read_events(&mut ws, STREAMED).await?;
    let elapsed = t.elapsed();
    for p in posters {
        p.await??;
    }
    anyhow::ensure!(
        got == STREAMED,
        "only {got} of {STREAMED} answers over HTTP"
    );
    Ok(STREAMED as f64 / elapsed.as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
