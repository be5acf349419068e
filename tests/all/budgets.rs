//! Budgets per command (issue 18): what one command may make the host hold
//! (event bytes, store reads and writes, pending timers) has a bound, and
//! past it the command gets a clear error and the host keeps serving.

use std::time::Duration;

use std::sync::Arc;

use crate::common::{body, call, cmd, host_with, host_with_limits, last_error, test_limits};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::store::filter::DEFAULT_MAX_BYTES;
use parallel_you_core::store::UnitLimits;
use parallel_you_core::MemoryStore;
use parallel_you_host::{Host, Limits};

fn keys(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.meta.routing_key.as_str()).collect()
}

fn message(event: &Envelope) -> String {
    body(event)["message"].as_str().unwrap_or("").to_owned()
}

/// A host for the tests that move megabytes: the debug build's JSON checks
/// of 4 MB documents take longer than the quick tests' deadline.
async fn roomy() -> (Arc<Host>, tempfile::TempDir) {
    let limits = Limits {
        deadline: Duration::from_secs(20),
        ..test_limits()
    };
    host_with_limits(&["flood"], Arc::new(MemoryStore::new()), limits).await
}

async fn still_serves(host: &Host) {
    let ok = call(host, cmd("flood.ok", "{}")).await;
    assert_eq!(keys(&ok), ["flood.fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_one_command_are_capped_in_total_bytes() {
    let (host, _dir) = roomy().await;
    let events = call(&host, cmd("flood.heavy", "{}")).await;
    // Stopped at the cap (17 events in), not at its deadline.
    assert_eq!(
        keys(&events),
        vec!["flood.error"],
        "one error event, none of the 1 MiB ones"
    );
    assert_eq!(last_error(&events).as_deref(), Some("invalid_event"));
    let cap = Limits::default().max_event_bytes;
    assert!(
        message(&events[0]).contains(&cap.to_string()),
        "{}",
        message(&events[0])
    );
    still_serves(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_past_its_byte_budget_is_an_error_the_guest_sees() {
    let (host, _dir) = roomy().await;
    // Five documents of ~4 MB: 20 MB, past one list's 16 MiB.
    let filled = call(&host, cmd("flood.fill", r#"{"from":0,"count":5}"#)).await;
    assert_eq!(keys(&filled), vec!["flood.fine"], "{filled:?}");
    let listed = call(&host, cmd("flood.hoard", "{}")).await;
    assert_eq!(keys(&listed), vec!["flood.error"], "{listed:?}");
    assert!(
        message(&listed[0]).contains(&DEFAULT_MAX_BYTES.to_string()),
        "{}",
        message(&listed[0])
    );
    still_serves(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_a_commands_budget_are_refused_and_none_is_kept() {
    let (host, _dir) = roomy().await;
    // Nine documents of ~4 MB: 36 MB, past the 32 MiB a command may write.
    let refused = call(&host, cmd("flood.fill", r#"{"from":0,"count":9}"#)).await;
    assert_eq!(keys(&refused), vec!["flood.error"], "{refused:?}");
    let cap = UnitLimits::default().max_write_bytes;
    assert!(
        message(&refused[0]).contains(&cap.to_string()),
        "{}",
        message(&refused[0])
    );
    let filled = call(&host, cmd("flood.fill", r#"{"from":100,"count":2}"#)).await;
    assert_eq!(keys(&filled), vec!["flood.fine"]);
    let listed = call(&host, cmd("flood.hoard", "{}")).await;
    assert_eq!(
        body(&listed[0])["count"],
        2,
        "the refused command kept nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timers_are_capped_per_domain() {
    let (host, _dir) = host_with(&["flood"]).await;
    let cap = UnitLimits::default().max_pending_timers;
    let per_command = 1000;
    for _ in 0..cap / per_command {
        let body = format!(r#"{{"count":{per_command}}}"#);
        let events = call(&host, cmd("flood.timers", &body)).await;
        assert_eq!(keys(&events), vec!["flood.fine"], "{events:?}");
    }
    assert_eq!(host.store().pending_timers("flood").await, Ok(cap));
    let refused = call(&host, cmd("flood.timers", r#"{"count":1}"#)).await;
    assert_eq!(keys(&refused), vec!["flood.error"], "{refused:?}");
    assert!(
        message(&refused[0]).contains(&format!("limit is {cap}")),
        "{}",
        message(&refused[0])
    );
    assert_eq!(
        host.store().pending_timers("flood").await,
        Ok(cap),
        "none more"
    );
    still_serves(&host).await;
}

/// A `pyou serve` child on a loopback port, killed when dropped.
struct Served {
    child: std::process::Child,
    addr: String,
    _handlers: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Served {
    async fn start(names: &[&str], args: &[&str]) -> Served {
        use std::io::BufRead;
        let handlers = crate::common::handlers_dir(names);
        let data = tempfile::tempdir().unwrap();
        let mut child = crate::common::pyou()
            .args(["serve", "--listen", "127.0.0.1:0", "--handlers"])
            .arg(handlers.path())
            .arg("--data")
            .arg(data.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(120), line)
            .await
            .expect("pyou serve printed its address")
            .unwrap()
            .unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Served {
            child,
            addr,
            _handlers: handlers,
            _data: data,
        }
    }

    /// Sends `key` with `body` and waits for its answer: the routing keys
    /// and bodies of its events.
    async fn send(&self, key: &str, body: &str) -> Vec<(String, serde_json::Value)> {
        let path = key.replace('.', "/");
        let res = reqwest::Client::new()
            .post(format!("http://{}/api/{path}?wait=60000", self.addr))
            .body(body.to_owned())
            .timeout(Duration::from_secs(90))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let answer: serde_json::Value = res.json().await.unwrap();
        answer["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {answer}"))
            .iter()
            .map(|e| {
                let key = e["meta"]["routing_key"].as_str().unwrap_or("").to_owned();
                (key, e["body"].clone())
            })
            .collect()
    }

    /// A field of `/proc/<pid>/status`, in KiB.
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// CPU time the process has used, in clock ticks (user + system).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

/// Peak resident memory a served host may reach under the hostile commands
/// below: one instance's memory cap (64 MiB), one command's event budget
/// (16 MiB) held twice (the events and their record), one list's 16 MiB
/// and a command's 32 MiB of writes, plus a fixed margin for the runtime,
/// the compiled components and the debug build. Documented in the README.
const RSS_BOUND_MIB: u64 = 64 + 2 * 16 + 16 + 32 + 384;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_host_stays_in_its_memory_bound_and_idles_with_timers_pending() {
    let served = Served::start(&["flood"], &["--deadline-ms", "20000"]).await;
    let keys_of = |events: &[(String, serde_json::Value)]| {
        events.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    // 1,000 events of 1 MiB: refused at the 16 MiB budget.
    let heavy = served.send("flood.heavy", "{}").await;
    assert_eq!(keys_of(&heavy), vec!["flood.error"], "{heavy:?}");
    assert_eq!(heavy[0].1["code"], "invalid_event");
    // 40 MB of documents, then a list of all of them: refused at 16 MiB.
    for from in [0, 5] {
        let body = format!(r#"{{"from":{from},"count":5}}"#);
        let filled = served.send("flood.fill", &body).await;
        assert_eq!(keys_of(&filled), vec!["flood.fine"], "{filled:?}");
    }
    let hoard = served.send("flood.hoard", "{}").await;
    assert_eq!(keys_of(&hoard), vec!["flood.error"], "{hoard:?}");
    // Timers up to the domain's cap, 30 days out; one more is refused.
    let cap = UnitLimits::default().max_pending_timers;
    for _ in 0..cap / 1000 {
        let timers = served.send("flood.timers", r#"{"count":1000}"#).await;
        assert_eq!(keys_of(&timers), vec!["flood.fine"], "{timers:?}");
    }
    let over = served.send("flood.timers", r#"{"count":1}"#).await;
    assert_eq!(keys_of(&over), vec!["flood.error"], "{over:?}");

    let peak_mib = served.status_kib("VmHWM:") / 1024;
    println!("peak RSS of pyou serve: {peak_mib} MiB (bound {RSS_BOUND_MIB} MiB)");
    assert!(peak_mib < RSS_BOUND_MIB, "peak RSS {peak_mib} MiB");

    // Idle with 10,000 timers pending: the poll is one indexed query.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(5);
    let before = served.cpu_ticks();
    tokio::time::sleep(window).await;
    let used = served.cpu_ticks() - before;
    let share = used as f64 / (clock_ticks_per_second() as f64 * window.as_secs_f64());
    println!(
        "idle CPU with {cap} timers pending: {:.2} % of a core",
        share * 100.0
    );
    assert!(
        share < 0.02,
        "idle host used {:.1} % of a core",
        share * 100.0
    );

    let ok = served.send("flood.ok", "{}").await;
    assert_eq!(keys_of(&ok), vec!["flood.fine"], "the host still serves");
}
