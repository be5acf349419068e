//! Hot loading against a serving host: a watched folder where components
//! are added, replaced, broken, half-written and removed, and the on-disk
//! compilation cache. Every wait is bounded; none asserts a duration.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{body, cmd, components, handlers_dir, last_error, test_limits};
use parallel_you_core::bus::{BusError, Collector, Subscription};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::{Bus, InProcessBus, MemoryStore};
use parallel_you_host::host::Serving;
use parallel_you_host::{Host, HostConfig, HotLoader, WatchConfig, Watching};

/// How long any one thing may take before the test fails: compiling a
/// component in a debug build on a busy machine is the slow part.
const BOUND: Duration = Duration::from_secs(90);

fn watch_config() -> WatchConfig {
    WatchConfig {
        debounce: Duration::from_millis(100),
        rescan: Duration::from_millis(500),
        incomplete_grace: Duration::from_secs(20),
    }
}

struct Served {
    host: Arc<Host>,
    bus: Arc<InProcessBus>,
    dir: tempfile::TempDir,
    serving: Option<Serving>,
    watching: Option<Watching>,
    /// Every `handler.*` event, subscribed before watching began.
    events: Subscription,
}

impl Served {
    /// A host serving the named components from a watched temp folder,
    /// each copied in as `<name>.wasm`.
    async fn start(names: &[&str]) -> Served {
        Self::start_with(names, None).await
    }

    async fn start_with(names: &[&str], cache: Option<&Path>) -> Served {
        let dir = handlers_dir(names);
        // A generous deadline: these tests run next to others that compile
        // components on every core, and a starved command must not time out.
        let config = HostConfig {
            limits: parallel_you_host::Limits {
                deadline: Duration::from_secs(20),
                ..test_limits()
            },
            max_body: 0,
            ..Default::default()
        };
        let host = Arc::new(Host::with_cache(config, Arc::new(MemoryStore::new()), cache).unwrap());
        host.load_dir(dir.path()).await.unwrap();
        let bus = Arc::new(InProcessBus::new());
        let events = bus.subscribe("handler.#").await.unwrap();
        let serving = host.serve(bus.clone()).await.unwrap();
        let watching = HotLoader::new(host.clone())
            .watch(dir.path(), watch_config())
            .unwrap();
        Served {
            host,
            bus,
            dir,
            serving: Some(serving),
            watching: Some(watching),
            events,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The next `handler.*` event with this routing key (others are skipped).
    async fn next_event(&mut self, routing_key: &str) -> Envelope {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = tokio::time::timeout(left, self.events.next())
                .await
                .unwrap_or_else(|_| panic!("no {routing_key} event within {BOUND:?}"))
                .expect("subscription open");
            if ev.meta.routing_key == routing_key {
                return ev;
            }
        }
    }

    async fn stop(mut self) {
        if let Some(w) = self.watching.take() {
            w.stop().await;
        }
        if let Some(s) = self.serving.take() {
            assert!(s.shutdown(Duration::from_secs(10)).await);
        }
    }
}

/// Places `bytes` as `dir/name` in one rename, as `pyou deploy` does.
fn place(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn component(name: &str) -> Vec<u8> {
    std::fs::read(components().join(format!("{name}.wasm"))).unwrap()
}

/// The version `hot.version` answers with, dispatched straight to the host.
async fn served_version(host: &Host) -> Option<String> {
    let events = host
        .dispatch(cmd("hot.version", "{}"), Arc::new(Collector::new()))
        .await;
    if last_error(&events).is_some() {
        return None;
    }
    body(&events[0])["version"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_file_is_served_without_a_restart() {
    let mut s = Served::start(&["counter"]).await;
    assert_eq!(
        s.bus.send(cmd("hot.version", "{}")).await,
        Err(BusError::Unroutable {
            routing_key: "hot.version".to_owned()
        })
    );
    // A plain copy: written in several steps, as `cp` does.
    std::fs::copy(components().join("hot1.wasm"), s.path("hot.wasm")).unwrap();
    let loaded = s.next_event("handler.loaded").await;
    let b = body(&loaded);
    assert_eq!(b["domain"], "hot");
    assert_eq!(b["version"], "1.0.0");
    assert_eq!(b["sha256"].as_str().map(str::len), Some(64));
    // The file name only: where the folder is is the operator's business.
    assert_eq!(b["file"], "hot.wasm", "{b}");
    // Bound on the bus: a command sent there is consumed and answered.
    let mut answers = s.bus.subscribe("session.h1.#").await.unwrap();
    s.bus
        .send(cmd("hot.version", "{}").with_session("h1"))
        .await
        .unwrap();
    let answer = tokio::time::timeout(BOUND, answers.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body(&answer)["version"], "1");
    let status = s.host.status();
    let hot = status.iter().find(|h| h.domain.as_deref() == Some("hot"));
    assert!(
        hot.is_some_and(|h| h.loaded_at.is_some() && h.error.is_none()),
        "{status:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_a_file_under_load_loses_and_fails_no_command() {
    // At least this many commands, the swap a fifth of the way in; then on
    // until this many were sent after the upgrade event was seen, however
    // long compiling takes on a busy machine, within [`BOUND`] and
    // `MAX_COMMANDS`.
    const COMMANDS: usize = 2000;
    const AFTER_UPGRADE: usize = 200;
    const MAX_COMMANDS: usize = 50_000;
    let dir_names = ["hot1"];
    let mut s = Served::start(&dir_names).await;
    let file = s.path("hot1.wasm");
    assert_eq!(served_version(&s.host).await.as_deref(), Some("1"));
    let mut answers = s.bus.subscribe("session.load.#").await.unwrap();

    // The sender: a steady stream, recording which commands were sent
    // after the test saw `handler.upgraded`.
    let upgraded_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent_after: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    // How many commands the sender sent, once it is done.
    let sent_total = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let (swap_tx, swap_rx) = tokio::sync::oneshot::channel::<()>();
    let sender = {
        let bus = s.bus.clone();
        let upgraded_seen = upgraded_seen.clone();
        let sent_after = sent_after.clone();
        let sent_total = sent_total.clone();
        tokio::spawn(async move {
            let mut swap_tx = Some(swap_tx);
            let mut ids = Vec::with_capacity(COMMANDS);
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            let deadline = Instant::now() + BOUND;
            for i in 0..MAX_COMMANDS {
                let after_count = sent_after.lock().unwrap().len();
                if i >= COMMANDS && after_count >= AFTER_UPGRADE || Instant::now() > deadline {
                    break;
                }
                tick.tick().await;
                let c = cmd("hot.version", "{}").with_session("load");
                let after = upgraded_seen.load(std::sync::atomic::Ordering::SeqCst);
                ids.push(c.meta.correlation_id.clone());
                if after {
                    sent_after
                        .lock()
                        .unwrap()
                        .push(c.meta.correlation_id.clone());
                }
                bus.send(c).await.expect("hot.version stays bound");
                if i == COMMANDS / 5 {
                    if let Some(tx) = swap_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
            sent_total.store(ids.len(), std::sync::atomic::Ordering::SeqCst);
            ids
        })
    };
    // The collector: every answer, by the command it answers, until there
    // are as many as the sender sent.
    let collector = tokio::spawn(async move {
        let mut outcomes: HashMap<String, Vec<Envelope>> = HashMap::new();
        let deadline = Instant::now() + 2 * BOUND;
        let mut total = 0;
        while total < sent_total.load(std::sync::atomic::Ordering::SeqCst)
            && Instant::now() < deadline
        {
            // Short waits: the total is known only once the sender is done.
            let Ok(next) = tokio::time::timeout(Duration::from_millis(100), answers.next()).await
            else {
                continue;
            };
            let Some(ev) = next else {
                break;
            };
            total += 1;
            let cause = ev.meta.causation_id.clone().unwrap_or_default();
            outcomes.entry(cause).or_default().push(ev);
        }
        // A little longer, to catch any duplicate answer.
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(300), answers.next()).await
        {
            let cause = ev.meta.causation_id.clone().unwrap_or_default();
            outcomes.entry(cause).or_default().push(ev);
        }
        outcomes
    });

    swap_rx.await.unwrap();
    place(s.dir.path(), "hot1.wasm", &component("hot2"));
    let upgraded = s.next_event("handler.upgraded").await;
    upgraded_seen.store(true, std::sync::atomic::Ordering::SeqCst);
    let b = body(&upgraded);
    assert_eq!(b["old"]["version"], "1.0.0");
    assert_eq!(b["new"]["version"], "2.0.0");
    assert_ne!(b["old"]["sha256"], b["new"]["sha256"]);
    assert_eq!(b["removed_keys"], serde_json::json!(["hot.old"]));
    assert_eq!(b["added_keys"], serde_json::json!(["hot.new"]));

    let ids = sender.await.unwrap();
    let outcomes = collector.await.unwrap();
    let mut v1 = 0;
    let mut v2 = 0;
    for id in &ids {
        let events = outcomes
            .get(id)
            .unwrap_or_else(|| panic!("command {id} got no outcome"));
        assert_eq!(events.len(), 1, "command {id} got {events:?}");
        assert_eq!(last_error(events), None, "command {id} failed: {events:?}");
        match body(&events[0])["version"].as_str() {
            Some("1") => v1 += 1,
            Some("2") => v2 += 1,
            other => panic!("unexpected version {other:?}"),
        }
    }
    let after = sent_after.lock().unwrap().clone();
    for id in &after {
        assert_eq!(
            body(&outcomes[id][0])["version"],
            "2",
            "a command sent after the upgrade ran on version 1"
        );
    }
    eprintln!(
        "swap under load: {} commands sent, {} answered, 0 failed; {v1} on v1, {v2} on v2, {} sent after the upgrade event",
        ids.len(),
        v1 + v2,
        after.len()
    );
    assert!(v1 > 0 && v2 > 0 && !after.is_empty(), "v1 {v1}, v2 {v2}");
    // The dropped key is unbound, the new one bound.
    assert!(matches!(
        s.bus.send(cmd("hot.old", "{}")).await,
        Err(BusError::Unroutable { .. })
    ));
    assert!(s.bus.send(cmd("hot.new", "{}")).await.is_ok());
    assert!(file.exists());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_file_is_reported_and_the_old_version_keeps_serving() {
    let mut s = Served::start(&["hot1", "counter"]).await;
    // Not wasm at all, over a serving file.
    place(s.dir.path(), "hot1.wasm", b"this is not a component");
    let failed = s.next_event("handler.load_failed").await;
    let b = body(&failed);
    assert_eq!(b["file"], "hot1.wasm", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{b}"
    );
    assert_eq!(b["serving"]["version"], "1.0.0");
    assert_eq!(served_version(&s.host).await.as_deref(), Some("1"));
    let status = s.host.status();
    let hot = status
        .iter()
        .find(|h| h.file.ends_with("hot1.wasm"))
        .unwrap();
    assert!(
        hot.version.as_deref() == Some("1.0.0") && hot.error.is_some(),
        "{hot:?}"
    );

    // A component claiming another domain's keys, as a new file.
    place(s.dir.path(), "intruder.wasm", &component("intruder"));
    let failed = s.next_event("handler.load_failed").await;
    let b = body(&failed);
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("outside its own domain"),
        "{b}"
    );
    assert!(b["serving"].is_null());
    // A second component for a domain another file serves.
    place(s.dir.path(), "twin.wasm", &component("twin"));
    let failed = s.next_event("handler.load_failed").await;
    assert!(
        body(&failed)["reason"]
            .as_str()
            .unwrap()
            .contains("already served"),
        "{failed:?}"
    );
    let events = s
        .host
        .dispatch(
            cmd("counter.increment", r#"{"name":"a"}"#),
            Arc::new(Collector::new()),
        )
        .await;
    assert_eq!(last_error(&events), None);

    // Fixing the file loads it again: the failure is gone.
    place(s.dir.path(), "hot1.wasm", &component("hot2"));
    s.next_event("handler.upgraded").await;
    assert_eq!(served_version(&s.host).await.as_deref(), Some("2"));
    let status = s.host.status();
    let hot = status
        .iter()
        .find(|h| h.file.ends_with("hot1.wasm"))
        .unwrap();
    assert!(hot.error.is_none(), "{hot:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_written_file_loads_once_complete_and_is_not_reported() {
    let mut s = Served::start(&["counter"]).await;
    let bytes = component("hot1");
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    let path = s.path("hot.wasm");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(first).unwrap();
        f.sync_all().unwrap();
        // Longer than the debounce period and a rescan: the watcher sees
        // the half file.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        f.write_all(rest).unwrap();
        f.sync_all().unwrap();
    }
    // The next handler event is the load, not a failure.
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, s.events.next())
            .await
            .expect("an event")
            .expect("subscription open");
        assert_ne!(
            ev.meta.routing_key, "handler.load_failed",
            "a half-written file was reported: {}",
            ev.body
        );
        if ev.meta.routing_key == "handler.loaded" {
            break;
        }
    }
    assert_eq!(served_version(&s.host).await.as_deref(), Some("1"));
    assert!(s.host.status().iter().all(|h| h.error.is_none()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_file_unbinds_its_keys() {
    let mut s = Served::start(&["hot1", "counter"]).await;
    assert_eq!(served_version(&s.host).await.as_deref(), Some("1"));
    std::fs::remove_file(s.path("hot1.wasm")).unwrap();
    let unloaded = s.next_event("handler.unloaded").await;
    let b = body(&unloaded);
    assert_eq!(b["domain"], "hot");
    assert_eq!(b["version"], "1.0.0");
    assert!(matches!(
        s.bus.send(cmd("hot.version", "{}")).await,
        Err(BusError::Unroutable { .. })
    ));
    let events = s
        .host
        .dispatch(cmd("hot.version", "{}"), Arc::new(Collector::new()))
        .await;
    assert_eq!(last_error(&events).as_deref(), Some("unknown_routing_key"));
    assert!(s
        .host
        .status()
        .iter()
        .all(|h| !h.file.ends_with("hot1.wasm")));
    // The other handler is untouched.
    assert!(s
        .bus
        .send(cmd("counter.increment", r#"{"name":"a"}"#))
        .await
        .is_ok());
    s.stop().await;
}

/// Every entry file wasmtime wrote in the cache folder.
fn cache_entries(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for compiler in std::fs::read_dir(cache.join("wasmtime/modules")).unwrap() {
        for file in std::fs::read_dir(compiler.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none() {
                out.push(path);
            }
        }
    }
    out
}

async fn load_cached(dir: &Path, cache: &Path) -> (Arc<Host>, bool) {
    let config = HostConfig {
        limits: test_limits(),
        max_body: 0,
        ..Default::default()
    };
    let host =
        Arc::new(Host::with_cache(config, Arc::new(MemoryStore::new()), Some(cache)).unwrap());
    host.load_dir(dir).await.unwrap();
    let status = host.status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(status[0].error.is_none(), "{status:?}");
    let cached = status[0].from_cache.unwrap();
    assert_eq!(served_version(&host).await.as_deref(), Some("1"));
    (host, cached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_cache_entry_is_recompiled_not_trusted() {
    let dir = handlers_dir(&["hot1"]);
    let cache = tempfile::tempdir().unwrap();
    let (_, cached) = load_cached(dir.path(), cache.path()).await;
    assert!(!cached, "first load compiles");
    let (_, cached) = load_cached(dir.path(), cache.path()).await;
    assert!(cached, "second load (a restart) comes from the cache");

    // Flip bytes in the middle of every entry: zstd may still decompress
    // it, into different code. It must not be used.
    let entries = cache_entries(cache.path());
    assert!(!entries.is_empty());
    for entry in &entries {
        let mut bytes = std::fs::read(entry).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 16] {
            *b ^= 0x5a;
        }
        std::fs::write(entry, bytes).unwrap();
    }
    let (_, cached) = load_cached(dir.path(), cache.path()).await;
    assert!(!cached, "a corrupt entry is recompiled");
    let (_, cached) = load_cached(dir.path(), cache.path()).await;
    assert!(cached, "and the recompiled entry is used again");

    // Truncated entries and entries nobody recorded are not trusted either.
    for entry in cache_entries(cache.path()) {
        std::fs::write(&entry, b"garbage").unwrap();
    }
    let (_, cached) = load_cached(dir.path(), cache.path()).await;
    assert!(!cached);
    std::fs::remove_dir_all(cache.path().join("sums")).unwrap();
    let (_, cached) = load_cached(dir.path(), cache.path()).await;
    assert!(!cached, "an entry without a record is recompiled");
}

/// Runs `pyou` to completion.
fn pyou(args: &[&str]) -> std::process::Output {
    common::pyou().args(args).output().unwrap()
}

/// Polls `check` every 100 ms until it returns `Some`, for at most [`BOUND`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyou_serve_deploy_and_handlers_through_the_gateway() {
    use std::io::BufRead;
    use std::process::Stdio;
    let handlers = handlers_dir(&["counter"]);
    let data = tempfile::tempdir().unwrap();
    let dir = handlers.path().to_str().unwrap().to_owned();
    let cache = data.path().join("cache");
    let mut child = common::pyou()
        .args(["serve", "--listen", "127.0.0.1:0", "--handlers", &dir])
        .arg("--data")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stops the server however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(BOUND, line)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();

    // Deploy: validated, then renamed into the watched folder.
    let hot1 = components().join("hot1.wasm");
    let out = pyou(&[
        "deploy",
        hot1.to_str().unwrap(),
        "--to",
        &dir,
        "--name",
        "hot.wasm",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("deployed hot 1.0.0+"), "{said}");

    // The new domain appears in the API without a restart, and serves.
    eventually("hot.version in GET /api", || async {
        let list: serde_json::Value = http
            .get(format!("{url}/api"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list.to_string().contains("hot.version").then_some(())
    })
    .await;
    let answer: serde_json::Value = http
        .post(format!("{url}/api/hot/version?wait=5000"))
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["events"][0]["body"]["version"], "1", "{answer}");

    // A broken component is refused by deploy and the folder is unchanged.
    let broken = data.path().join("broken.wasm");
    std::fs::write(&broken, b"not wasm").unwrap();
    let out = pyou(&[
        "deploy",
        broken.to_str().unwrap(),
        "--to",
        &dir,
        "--no-cache",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!handlers.path().join("broken.wasm").exists());

    // Version 2 over version 1; `pyou handlers --gateway` shows it.
    let hot2 = components().join("hot2.wasm");
    let out = pyou(&[
        "deploy",
        hot2.to_str().unwrap(),
        "--to",
        &dir,
        "--name",
        "hot.wasm",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replacing 1.0.0+"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listed = eventually("version 2.0.0 in pyou handlers --gateway", || async {
        let out = pyou(&["handlers", "--gateway", &url, "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        let hot = list.into_iter().find(|h| h["domain"] == "hot")?;
        (hot["version"] == "2.0.0").then_some(hot)
    })
    .await;
    assert_eq!(listed["sha256"].as_str().map(str::len), Some(64));
    assert!(listed["loaded_at"].is_string(), "{listed}");
    let text = pyou(&["handlers", "--gateway", &url]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("hot 2.0.0+") && text.contains("loaded "),
        "{text}"
    );
    drop(child);
}
