//! Runs the built component with `pyou invoke`, as a host would: build it
//! first (`pyou build`), then `cargo test`. `PYOU` names the `pyou` binary
//! (default: the one on `PATH`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A fresh data folder, removed when dropped.
struct Data(PathBuf);

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data() -> Data {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("{{name}}-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary data folder");
    Data(dir)
}

/// `pyou invoke` of one command against the project's `dist/`: its exit
/// status and the events it printed.
fn invoke(data: &Path, key: &str, body: &str) -> (Option<i32>, Vec<Value>) {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    assert!(
        dist.join("{{name}}.wasm").is_file(),
        "no dist/{{name}}.wasm: run `pyou build` first"
    );
    let pyou = std::env::var_os("PYOU").unwrap_or_else(|| "pyou".into());
    let out = Command::new(&pyou)
        .args(["invoke", "--handlers"])
        .arg(&dist)
        .arg("--data")
        .arg(data)
        .args([key, body])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {pyou:?} (set PYOU or put pyou on PATH): {e}"));
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    (out.status.code(), events)
}

#[test]
fn hello_greets_and_counts() {
    let data = data();
    let (code, events) = invoke(&data.0, "{{name}}.hello", r#"{"name":"Ada"}"#);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(events[0]["meta"]["routing_key"], "{{name}}.greeted");
    assert_eq!(events[0]["body"]["greeting"], "Hello, Ada!");
    assert_eq!(events[0]["body"]["times"], 1);
    // The store persists across processes.
    let (_, events) = invoke(&data.0, "{{name}}.hello", r#"{"name":"Ada"}"#);
    assert_eq!(events[0]["body"]["times"], 2);
}

#[test]
fn an_empty_name_is_refused() {
    let data = data();
    let (code, events) = invoke(&data.0, "{{name}}.hello", r#"{"name":""}"#);
    assert_eq!(code, Some(1), "an error event exits 1");
    assert_eq!(events[0]["meta"]["routing_key"], "{{name}}.error");
    assert_eq!(events[0]["body"]["code"], "validation");
}
