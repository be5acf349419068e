//! `pyou` as a user runs it: separate processes, the embedded store on disk.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::handlers_dir;

fn pyou(handlers: &Path, data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = common::pyou();
    command.args(args).arg("--handlers").arg(handlers);
    if args.first() == Some(&"invoke") {
        command.arg("--data").arg(data);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("pyou runs: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn invoke_persists_documents_across_processes() {
    let handlers = handlers_dir(&["counter"]);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h = handlers.path();
    let first = pyou(
        h,
        data.path(),
        &[
            "invoke",
            "--session",
            "abc",
            "counter.increment",
            r#"{"name":"tea","by":5}"#,
        ],
        None,
    );
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let ev = events(&first);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["meta"]["routing_key"], "counter.incremented");
    assert_eq!(ev[0]["meta"]["session_id"], "abc");
    assert_eq!(ev[0]["meta"]["reply_channel"], "session.abc");
    assert!(ev[0]["meta"]["causation_id"].is_string());

    // A new process sees what the first wrote.
    let second = pyou(
        h,
        data.path(),
        &["invoke", "counter.get", "-"],
        Some(r#"{"name":"tea"}"#),
    );
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(events(&second)[0]["body"]["value"], 5);
}

#[test]
fn invoke_exit_status_tells_errors_from_usage() {
    let handlers = handlers_dir(&["counter"]);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h = handlers.path();
    let missing = pyou(
        h,
        data.path(),
        &["invoke", "counter.get", r#"{"name":"nope"}"#],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(events(&missing)[0]["body"]["code"], "not_found");
    let unknown = pyou(h, data.path(), &["invoke", "nobody.home", "{}"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(events(&unknown)[0]["body"]["code"], "unknown_routing_key");
    let bad_json = pyou(h, data.path(), &["invoke", "counter.get", "{oops"], None);
    assert_eq!(bad_json.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_json.stderr).contains("not valid JSON"));
    let no_args = pyou(h, data.path(), &["invoke"], None);
    assert_eq!(no_args.status.code(), Some(2));
}

#[test]
fn redelivered_envelope_is_not_applied_twice_across_processes() {
    let handlers = handlers_dir(&["counter"]);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h = handlers.path();
    let envelope = r#"{"meta":{"message_id":"01JDREDELIVERED","kind":"command","routing_key":"counter.increment",
        "correlation_id":"corr-1","session_id":"s1","reply_channel":"session.s1","timestamp":"2026-11-23T15:41:09.123Z"},
        "body":{"name":"once"}}"#;
    let a = pyou(
        h,
        data.path(),
        &["invoke", "--envelope", "-"],
        Some(envelope),
    );
    let b = pyou(
        h,
        data.path(),
        &["invoke", "--envelope", "-"],
        Some(envelope),
    );
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(
        events(&a),
        events(&b),
        "the second delivery republishes the recorded events"
    );
    assert_eq!(events(&a)[0]["meta"]["causation_id"], "corr-1");
    let get = pyou(
        h,
        data.path(),
        &["invoke", "counter.get", r#"{"name":"once"}"#],
        None,
    );
    assert_eq!(events(&get)[0]["body"]["value"], 1);

    let invalid = pyou(
        h,
        data.path(),
        &["invoke", "--envelope", "-"],
        Some(r#"{"meta":{"session_id":"s1"}}"#),
    );
    assert_eq!(invalid.status.code(), Some(1));
    let ev = events(&invalid);
    assert_eq!(ev[0]["body"]["code"], "invalid_envelope");
    assert_eq!(ev[0]["meta"]["session_id"], "s1");
}

#[test]
fn handlers_lists_components_and_failures_as_json() {
    let handlers = handlers_dir(&["counter", "intruder"]);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = pyou(handlers.path(), data.path(), &["handlers", "--json"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed file makes the exit status 1"
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.len(), 2);
    let counter = list
        .iter()
        .find(|s| s["domain"] == "counter")
        .unwrap_or_else(|| panic!("{list:?}"));
    assert!(counter["file"]
        .as_str()
        .unwrap_or_default()
        .ends_with("counter.wasm"));
    assert!(counter["routing_keys"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k == "counter.increment")));
    assert!(counter["error"].is_null());
    let intruder = list.iter().find(|s| {
        s["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("intruder.wasm")
    });
    assert!(
        intruder.is_some_and(|i| i["error"].is_string() && i["domain"].is_null()),
        "{list:?}"
    );

    let plain = pyou(handlers.path(), data.path(), &["handlers"], None);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains("counter.increment") && text.contains("FAILED"),
        "{text}"
    );
}

#[tokio::test]
async fn serve_answers_over_http_and_stops_gracefully_on_sigterm() {
    use std::io::BufRead;
    let handlers = handlers_dir(&["counter"]);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = common::pyou()
        .args(["serve", "--listen", "127.0.0.1:0", "--handlers"])
        .arg(handlers.path())
        .arg("--data")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), line)
        .await
        .unwrap_or_else(|_| panic!("pyou serve printed nothing"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let res = reqwest::Client::new()
        .post(format!(
            "http://{addr}/api/counter/increment?session=w1&wait=5000"
        ))
        .body(r#"{"name":"served"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["events"][0]["body"]["value"], 1);

    // `pyou watch` prints the session's events, including those published
    // before it connected (the session buffer replays them).
    let watch = common::pyou()
        .args([
            "watch",
            "--url",
            &format!("ws://{addr}"),
            "--session",
            "w1",
            "--count",
            "1",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        watch.status.success(),
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    let watched = events(&watch);
    assert_eq!(watched[0]["meta"]["causation_id"], body["correlation_id"]);

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            assert!(status.success(), "pyou serve exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "pyou serve ignored SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // What it wrote is on disk for the next run.
    let get = pyou(
        handlers.path(),
        data.path(),
        &["invoke", "counter.get", r#"{"name":"served"}"#],
        None,
    );
    assert_eq!(events(&get)[0]["body"]["value"], 1);
}

#[test]
fn invoke_loads_only_the_component_that_serves_the_key() {
    let handlers = handlers_dir(&["counter", "noop"]);
    // A file that cannot load: reported only when it is actually loaded.
    std::fs::write(handlers.path().join("broken.wasm"), b"\0asm not really")
        .unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h = handlers.path();
    let out = pyou(
        h,
        data.path(),
        &["invoke", "counter.get", r#"{"name":"x"}"#],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(events(&out)[0]["body"]["code"], "not_found", "{stderr}");
    assert!(
        !stderr.contains("broken.wasm"),
        "loaded more than counter: {stderr}"
    );
    // noop.wasm is not named after counter's domain either: the key's
    // owner is found among the others, still without the broken one when
    // it comes first (smaller).
    let out = pyou(h, data.path(), &["invoke", "noop.ping", r#"{"a":1}"#], None);
    assert_eq!(events(&out)[0]["meta"]["routing_key"], "noop.ponged");
    // A key nobody serves: every file was tried, so the broken one is said.
    let out = pyou(h, data.path(), &["invoke", "nobody.here", "{}"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(events(&out)[0]["body"]["code"], "unknown_routing_key");
    assert!(stderr.contains("broken.wasm"), "{stderr}");
}

#[tokio::test]
async fn serve_listens_first_then_brings_components_online_smallest_first() {
    use std::io::BufRead;
    let handlers = handlers_dir(&["thread", "counter"]);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = common::pyou()
        .args(["serve", "--listen", "127.0.0.1:0", "--handlers"])
        .arg(handlers.path())
        .arg("--data")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let _child = Kill(child);
    // stderr up to the last component's line, then stdout's one line.
    let lines = tokio::task::spawn_blocking(move || {
        let progress: Vec<String> = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("pyou:"))
            .take_while(|l| !l.contains("thread.wasm serves"))
            .collect();
        let mut ready = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut ready)
            .map(|_| (progress, ready))
    });
    let (progress, ready) = tokio::time::timeout(std::time::Duration::from_secs(120), lines)
        .await
        .unwrap_or_else(|_| panic!("pyou serve did not finish loading"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        progress[0].starts_with("pyou: listening on http://"),
        "{progress:?}"
    );
    // counter.wasm is the smaller one: it serves before thread is loaded.
    assert!(
        progress
            .iter()
            .any(|l| l.starts_with("pyou: counter.wasm serves counter")),
        "{progress:?}"
    );
    assert!(ready.starts_with("pyou serving "), "{ready:?}");
    let commands: usize = ready
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{ready:?}"));
    assert!(commands > 10, "both components' commands: {ready:?}");
}

#[test]
fn serve_refuses_a_public_address_without_authentication_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let handlers = handlers_dir(&[]);
    let run = |args: &[&str]| {
        common::pyou()
            .args(args)
            .args(["--handlers"])
            .arg(handlers.path())
            .arg("--data")
            .arg(data.path())
            .env_remove("PYOU_AUTH")
            .env_remove("PYOU_JWT_SECRET")
            .output()
            .unwrap()
    };
    let out = run(&["serve", "--listen", "0.0.0.0:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("without authentication") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let out = run(&["serve", "--listen", "0.0.0.0:0", "--auth", "jwt"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("PYOU_JWT_SECRET"), "{err}");
}
