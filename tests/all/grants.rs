//! Capability grants: the `fetch` sample handler reaches an HTTP server on
//! loopback only as its grants file (`fetch.toml` beside `fetch.wasm`)
//! allows, reads config values and secrets through `wasi:config`, and is
//! held to the grant's timeout and response cap while the host keeps
//! serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common;
use common::{body, call, cmd, handlers_dir, last_error, test_limits};
use parallel_you_core::MemoryStore;
use parallel_you_host::{Host, HostConfig, HotLoader, HotOutcome, Limits};

/// An HTTP/1.1 server on a free loopback port, answering by path:
/// `/hello` a short text, `/big` 2 MiB with a Content-Length, `/stream`
/// 2 MiB without one, `/never` nothing at all (it holds the connection).
/// Keeps every request head it read; stops when dropped.
pub(crate) struct TestServer {
    pub(crate) port: u16,
    pub(crate) heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
    scheme: &'static str,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        Self::start_with(None).await
    }

    /// The same over TLS, as `acceptor` presents it (URLs are `https://`).
    pub(crate) async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> TestServer {
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (kept, tls) = (kept.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => answer(socket, kept).await,
                        // A client that refuses the certificate ends here.
                        Some(tls) => {
                            if let Ok(socket) = tls.accept(socket).await {
                                answer(socket, kept).await;
                            }
                        }
                    }
                });
            }
        });
        TestServer {
            port,
            heads,
            task,
            scheme,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }
}

/// Reads one request head from `socket`, keeps it, and answers by path.
async fn answer<S>(mut socket: S, kept: Arc<Mutex<Vec<String>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    kept.lock().unwrap().push(head);
    let big = vec![b'x'; 2 << 20];
    let _ = match path.as_str() {
        "/hello" => {
            socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                )
                .await
        }
        "/big" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                big.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            socket.write_all(&big).await
        }
        "/stream" => {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                .await;
            socket.write_all(&big).await
        }
        // Never answers: holds the socket until the client
        // gives up (or the test ends).
        _ => {
            let _ = socket.read(&mut buf).await;
            Ok(())
        }
    };
    let _ = socket.shutdown().await;
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A host with `fetch` (and `counter`) loaded from a folder whose
/// `fetch.toml` is `grants` (none when `None`).
async fn fetch_host(grants: Option<&str>) -> (Arc<Host>, tempfile::TempDir) {
    fetch_host_with(grants, &[]).await
}

/// [`fetch_host`] with more `(name, content)` files in the folder.
pub(crate) async fn fetch_host_with(
    grants: Option<&str>,
    files: &[(&str, &str)],
) -> (Arc<Host>, tempfile::TempDir) {
    let dir = handlers_dir(&["fetch", "counter"]);
    if let Some(grants) = grants {
        std::fs::write(dir.path().join("fetch.toml"), grants).unwrap();
    }
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let host = Arc::new(
        Host::new(
            HostConfig {
                limits: Limits {
                    deadline: Duration::from_secs(5),
                    ..test_limits()
                },
                max_body: 0,
                ..Default::default()
            },
            Arc::new(MemoryStore::new()),
        )
        .unwrap(),
    );
    host.load_dir(dir.path()).await.unwrap();
    (host, dir)
}

pub(crate) async fn fetch(host: &Host, url: &str) -> Vec<parallel_you_core::Envelope> {
    call(
        host,
        cmd("fetch.get", &serde_json::json!({ "url": url }).to_string()),
    )
    .await
}

/// The host still runs other commands.
async fn still_serves(host: &Host) {
    let ok = call(host, cmd("counter.increment", r#"{"name":"n"}"#)).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

#[tokio::test]
async fn a_granted_loopback_call_works_with_config_and_secret() {
    let server = TestServer::start().await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "t0ken-from-a-file\n").unwrap();
    let grants = format!(
        "[http]\nallow = [\"http://127.0.0.1:{}\"]\n[config]\nlabel = \"from the grants\"\n\
         [secrets]\ntoken = {{ file = {:?} }}\n",
        server.port,
        secret.path().display().to_string()
    );
    let (host, _dir) = fetch_host(Some(&grants)).await;
    let events = fetch(&host, &server.url("/hello")).await;
    assert_eq!(last_error(&events), None, "{events:?}");
    let answer = body(&events[0]);
    assert_eq!(events[0].meta.routing_key, "fetch.fetched");
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["text"], "hello");
    assert_eq!(answer["label"], "from the grants");
    let heads = server.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer t0ken-from-a-file"),
        "the secret reached the server as the handler sent it: {heads:?}"
    );
    // Listings name the secret, never its value.
    let status = host.status();
    let listed = serde_json::to_string(&status).unwrap();
    assert!(listed.contains("\"secrets\":[\"token\"]"), "{listed}");
    assert!(!listed.contains("t0ken-from-a-file"), "{listed}");
    assert!(listed.contains(&format!("http://127.0.0.1:{}", server.port)));
}

#[tokio::test]
async fn calls_outside_the_grants_are_refused() {
    let server = TestServer::start().await;
    // Nothing granted: denied, with the handler's error event.
    let (host, _dir) = fetch_host(None).await;
    let events = fetch(&host, &server.url("/hello")).await;
    assert_eq!(last_error(&events).as_deref(), Some("denied"), "{events:?}");
    assert!(body(&events[0])["message"]
        .as_str()
        .unwrap()
        .contains("not granted"));

    // Another port of the same address is not the granted destination.
    let other = TestServer::start().await;
    let grants = format!("[http]\nallow = [\"http://127.0.0.1:{}\"]\n", other.port);
    let (host, _dir) = fetch_host(Some(&grants)).await;
    let events = fetch(&host, &server.url("/hello")).await;
    assert_eq!(last_error(&events).as_deref(), Some("denied"), "{events:?}");
    assert!(
        server.heads.lock().unwrap().is_empty(),
        "no request reached the server"
    );
    let ok = fetch(&host, &other.url("/hello")).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_listed() {
    let server = TestServer::start().await;
    let url = format!("http://localhost:{}/hello", server.port);
    // The name is allowed, but it resolves to 127.0.0.1, which the grant
    // does not list: SSRF, refused after resolution.
    let grants = format!("[http]\nallow = [\"http://localhost:{}\"]\n", server.port);
    let (host, _dir) = fetch_host(Some(&grants)).await;
    let events = fetch(&host, &url).await;
    assert_eq!(last_error(&events).as_deref(), Some("denied"), "{events:?}");
    assert!(
        body(&events[0])["message"]
            .as_str()
            .unwrap()
            .contains("internal address"),
        "{events:?}"
    );
    assert!(
        server.heads.lock().unwrap().is_empty(),
        "no request reached the server"
    );

    // With loopback listed, the same call goes through.
    let grants = format!(
        "[http]\nallow = [\"http://localhost:{}\"]\nallow_private = [\"127.0.0.0/8\", \"::1\"]\n",
        server.port
    );
    let (host, _dir) = fetch_host(Some(&grants)).await;
    let events = fetch(&host, &url).await;
    assert_eq!(last_error(&events), None, "{events:?}");
}

#[tokio::test]
async fn big_answers_and_silent_servers_are_bounded() {
    let server = TestServer::start().await;
    let grants = format!(
        "[http]\nallow = [\"http://127.0.0.1:{}\"]\ntimeout_ms = 300\nmax_response_bytes = 65536\n",
        server.port
    );
    let (host, _dir) = fetch_host(Some(&grants)).await;
    for path in ["/big", "/stream"] {
        let events = fetch(&host, &server.url(path)).await;
        assert_eq!(
            last_error(&events).as_deref(),
            Some("too_large"),
            "{path}: {events:?}"
        );
    }
    still_serves(&host).await;

    let started = Instant::now();
    let events = fetch(&host, &server.url("/never")).await;
    let took = started.elapsed();
    assert_eq!(
        last_error(&events).as_deref(),
        Some("upstream_timeout"),
        "{events:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "gave up after {took:?}, the grant says 300 ms"
    );
    still_serves(&host).await;
    let ok = fetch(&host, &server.url("/hello")).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
}

#[tokio::test]
async fn grants_are_checked_at_load_and_picked_up_on_reload() {
    let server = TestServer::start().await;
    let (host, dir) = fetch_host(None).await;
    let loader = HotLoader::new(host.clone());
    let wasm = dir.path().join("fetch.wasm");
    let toml = dir.path().join("fetch.toml");
    assert_eq!(
        last_error(&fetch(&host, &server.url("/hello")).await).as_deref(),
        Some("denied")
    );

    // A new grants file is a new version of the component.
    let grants = format!("[http]\nallow = [\"http://127.0.0.1:{}\"]\n", server.port);
    std::fs::write(&toml, &grants).unwrap();
    assert!(matches!(
        loader.load_file(&wasm).await,
        HotOutcome::Upgraded { .. }
    ));
    assert_eq!(last_error(&fetch(&host, &server.url("/hello")).await), None);
    assert!(matches!(
        loader.load_file(&wasm).await,
        HotOutcome::Unchanged
    ));

    // A bad one is refused with its reason; the granted version serves on.
    std::fs::write(&toml, "[limits]\ndeadline_ms = 999999999\n").unwrap();
    match loader.load_file(&wasm).await {
        HotOutcome::Failed(reason) => {
            assert!(
                reason.contains("fetch.toml") && reason.contains("ceiling"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(last_error(&fetch(&host, &server.url("/hello")).await), None);

    // Removing it takes the grant away.
    std::fs::remove_file(&toml).unwrap();
    assert!(matches!(
        loader.load_file(&wasm).await,
        HotOutcome::Upgraded { .. }
    ));
    assert_eq!(
        last_error(&fetch(&host, &server.url("/hello")).await).as_deref(),
        Some("denied")
    );
}

/// A host over a fresh folder of `names`, with `toml` as the grants of
/// the first one.
async fn host_with_grants(names: &[&str], toml: &str) -> (Arc<Host>, tempfile::TempDir) {
    let dir = handlers_dir(names);
    std::fs::write(dir.path().join(format!("{}.toml", names[0])), toml).unwrap();
    let host = Arc::new(
        Host::new(
            HostConfig {
                limits: Limits {
                    deadline: Duration::from_secs(4),
                    ..test_limits()
                },
                max_body: 0,
                ..Default::default()
            },
            Arc::new(MemoryStore::new()),
        )
        .unwrap(),
    );
    host.load_dir(dir.path()).await.unwrap();
    (host, dir)
}

#[tokio::test]
async fn a_components_own_memory_cap_and_instance_policy_apply() {
    let (host, _dir) =
        host_with_grants(&["hog"], "[limits]\nmemory_mib = 8\ninstances = \"warm\"\n").await;
    let events = call(&host, cmd("hog.eat", "{}")).await;
    assert_eq!(
        last_error(&events).as_deref(),
        Some("memory_limit"),
        "{events:?}"
    );
    let message = body(&events[0])["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&(8u64 << 20).to_string()),
        "the grant's cap, not the host's: {message}"
    );
    // A command that ended normally parks its instance for the next one.
    let ok = call(&host, cmd("hog.ok", "{}")).await;
    assert_eq!(last_error(&ok), None, "{ok:?}");
    assert_eq!(host.parked_instances("hog"), 1);
}

#[tokio::test]
async fn a_components_own_deadline_applies() {
    let dir = handlers_dir(&["spin"]);
    std::fs::write(
        dir.path().join("spin.toml"),
        "[limits]\ndeadline_ms = 100\n",
    )
    .unwrap();
    let host = Arc::new(
        Host::new(
            HostConfig {
                limits: Limits {
                    deadline: Duration::from_secs(4),
                    ..test_limits()
                },
                max_body: 0,
                ..Default::default()
            },
            Arc::new(MemoryStore::new()),
        )
        .unwrap(),
    );
    host.load_dir(dir.path()).await.unwrap();
    let started = Instant::now();
    let events = call(&host, cmd("spin.forever", "{}")).await;
    assert_eq!(
        last_error(&events).as_deref(),
        Some("timeout"),
        "{events:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(Path::new(&dir.path().join("spin.toml")).exists());
}

#[tokio::test]
async fn pyou_handlers_shows_the_grants_but_no_secret() {
    let dir = handlers_dir(&["fetch"]);
    let secret = dir.path().join("token.txt");
    std::fs::write(&secret, "hunter2-secret").unwrap();
    std::fs::write(
        dir.path().join("fetch.toml"),
        format!(
            "[http]\nallow = [\"https://api.example.com\"]\n[secrets]\ntoken = {{ file = {:?} }}\n\
             [limits]\ndeadline_ms = 1500\n",
            secret.display().to_string()
        ),
    )
    .unwrap();
    let out = common::pyou()
        .args(["handlers", "--handlers"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("grants (")
            && text.contains("http https://api.example.com")
            && text.contains("secrets token")
            && text.contains("deadline 1500 ms"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_watching_host_follows_its_grants_file() {
    let server = TestServer::start().await;
    let (host, dir) = fetch_host(None).await;
    let watching = HotLoader::new(host.clone())
        .watch(
            dir.path(),
            parallel_you_host::WatchConfig {
                debounce: Duration::from_millis(100),
                rescan: Duration::from_millis(500),
                incomplete_grace: Duration::from_secs(20),
            },
        )
        .unwrap();
    assert_eq!(
        last_error(&fetch(&host, &server.url("/hello")).await).as_deref(),
        Some("denied")
    );
    let grants = format!("[http]\nallow = [\"http://127.0.0.1:{}\"]\n", server.port);
    std::fs::write(dir.path().join("fetch.toml"), grants).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = fetch(&host, &server.url("/hello")).await;
        if last_error(&events).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new grants never applied: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.stop().await;
}
