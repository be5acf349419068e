//! A real headless Chromium driven through WebDriver (`chromedriver` and
//! `fantoccini`), and a real `pyou serve` for it to open: the dashboard's
//! tests use what a person would.
//!
//! When Chromium or chromedriver is not installed the test is skipped with
//! a message, unless `PYOU_REQUIRE_SERVERS=1` (set by `scripts/test`,
//! which installs them with `scripts/install-chromium`), so CI fails.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::rabbit::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";

/// Ends a child process however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// A chromedriver on a free loopback port; each [`Driver::open`] is a
/// browser of its own (its own profile, so its own `localStorage`).
pub struct Driver {
    url: String,
    profiles: tempfile::TempDir,
    _child: Reaped,
}

impl Drop for Driver {
    /// A browser whose session was not closed (a test that failed midway)
    /// outlives chromedriver: end every process started with one of this
    /// driver's profiles, found by its command line.
    fn drop(&mut self) {
        let marker = format!("--user-data-dir={}", self.profiles.path().display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl Driver {
    /// Starts chromedriver, or returns `None` (after saying why) when no
    /// browser is installed and servers are not required.
    pub async fn start() -> Option<Driver> {
        if !Path::new(CHROMIUM).exists() || !on_path(CHROMEDRIVER) {
            let why = format!("{CHROMIUM} or {CHROMEDRIVER} is missing: install the Debian packages chromium and chromium-driver (scripts/install-chromium does)");
            if std::env::var("PYOU_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let child = Reaped(child);
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Driver {
            url,
            profiles: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            _child: child,
        })
    }

    /// A new headless browser window of `width`×`height`, with a profile
    /// of its own named `name`.
    pub async fn open(&self, name: &str, width: u32, height: u32) -> Client {
        let profile = self.profiles.path().join(name);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
                // Notifications allowed, as a person who clicked
                // "Notifications" would have: the expiry notice's system
                // notification is then really made.
                "prefs": {"profile.default_content_setting_values.notifications": 1},
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a browser through chromedriver: {e}"))
    }
}

/// `pyou serve` on a free loopback port with its own data folder and a
/// handlers folder holding the named components.
pub struct Served {
    pub url: String,
    pub handlers: tempfile::TempDir,
    /// The bearer token its requests carry (with `--auth jwt`).
    pub token: Option<String>,
    spec: Spec,
    _data: tempfile::TempDir,
    _child: Reaped,
}

/// How a [`Served`] was started, to start it again the same way.
struct Spec {
    components: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    port: u16,
}

/// Starts `pyou serve` and waits for its one line on stdout (all loaded).
async fn spawn_serve(spec: &Spec, handlers: &Path, data: &Path) -> Reaped {
    let mut child = super::pyou()
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", spec.port))
        .arg("--handlers")
        .arg(handlers)
        .arg("--data")
        .arg(data)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start pyou serve: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let child = Reaped(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let mut out = std::io::BufReader::new(stdout);
        let read = out.read_line(&mut line).map(|_| line);
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        read
    });
    let line = tokio::time::timeout(Duration::from_secs(60), line)
        .await
        .unwrap_or_else(|_| panic!("pyou serve printed nothing"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        line.contains(&format!("127.0.0.1:{}", spec.port)),
        "pyou serve said {line:?}"
    );
    child
}

impl Served {
    /// Starts it and waits until every named component serves.
    pub async fn start(components: &[&str]) -> Served {
        Self::start_with(components, &[], &[], None).await
    }

    /// Starts it with more arguments (`--auth jwt`) and environment
    /// variables (`PYOU_JWT_SECRET`), and waits until every named
    /// component serves (asking with `token`, if given).
    pub async fn start_with(
        components: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        token: Option<&str>,
    ) -> Served {
        let spec = Spec {
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            port: free_port(),
        };
        let handlers = super::handlers_dir(components);
        let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let child = spawn_serve(&spec, handlers.path(), data.path()).await;
        let served = Served {
            url: format!("http://127.0.0.1:{}", spec.port),
            handlers,
            token: token.map(str::to_owned),
            spec,
            _data: data,
            _child: child,
        };
        served.wait_for_components().await;
        served
    }

    async fn wait_for_components(&self) {
        for domain in &self.spec.components {
            self.wait_for_domain(domain).await;
        }
    }

    /// Stops the server as an operator would (SIGTERM: it finishes what
    /// is in flight and writes out its event log) and starts it again on
    /// the same address, data and handlers.
    pub async fn restart(&mut self) {
        let pid = self._child.0.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self._child.0.try_wait().ok().flatten().is_none() {
            assert!(
                Instant::now() < deadline,
                "pyou serve did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self._child = spawn_serve(&self.spec, self.handlers.path(), self._data.path()).await;
        self.wait_for_components().await;
    }

    /// Waits until `GET /api` lists a command or query of `domain`.
    pub async fn wait_for_domain(&self, domain: &str) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut req = http.get(format!("{}/api", self.url));
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            if let Ok(res) = req.send().await {
                let api: Value = res.json().await.unwrap_or(Value::Null);
                let text = api.to_string();
                if text.contains(&format!("\"{domain}.")) || text.contains(&format!("/{domain}/")) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{domain} never served");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a command and waits for its events (set-up, not the page).
    pub async fn send(&self, key: &str, body: Value) -> Value {
        let mut req = reqwest::Client::new()
            .post(format!(
                "{}/api/{}?wait=10000",
                self.url,
                key.replace('.', "/")
            ))
            .json(&body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{key}: {e}"));
        res.json().await.unwrap_or_else(|e| panic!("{key}: {e}"))
    }
}

/// Runs `script` (a function body) until it returns something truthy, and
/// returns that; fails naming `what` after `within`.
pub async fn wait_js(browser: &Client, what: &str, within: Duration, script: &str) -> Value {
    let deadline = Instant::now() + within;
    let mut last;
    loop {
        match browser.execute(script, Vec::new()).await {
            Ok(v) if truthy(&v) => return v,
            Ok(v) => last = v,
            Err(e) => last = json!(e.to_string()),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?} (last answer {last})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => true,
    }
}

/// Clicks the element `css`, finding it again if a re-render replaced it.
pub async fn click(browser: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tried = match browser.find(Locator::Css(css)).await {
            Ok(el) => el.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match tried {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot click {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `text` into the element `css` (a field, or a focusable card
/// for its keys), found again if it was re-rendered.
pub async fn type_into(browser: &Client, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tried = match browser.find(Locator::Css(css)).await {
            Ok(el) => el.send_keys(text).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match tried {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot type into {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Chooses `value` in the select `css` (found again if it was re-rendered).
pub async fn select_value(browser: &Client, css: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tried = match browser.find(Locator::Css(css)).await {
            Ok(el) => el.select_by_value(value).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match tried {
            Ok(()) => return,
            Err(e) => assert!(
                Instant::now() < deadline,
                "cannot choose {value} in {css}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot of `browser` as `name` under the build's temporary
/// folder; those named `dashboard-*.png` also under `PYOU_SCREENSHOT_DIR`
/// when it is set (`scripts/screenshots` does, for the README's images).
/// Returns where it was saved.
pub async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{e}"));
    if let Some(out) =
        std::env::var_os("PYOU_SCREENSHOT_DIR").filter(|_| name.starts_with("dashboard-"))
    {
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(out.join(name), &png).unwrap_or_else(|e| panic!("{e}"));
    }
    path
}
