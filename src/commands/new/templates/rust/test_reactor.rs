//! Runs the built reactor with `pyou invoke --event` and `pyou query`, as a
//! host would: build it first (`pyou build`), then `cargo test`. `PYOU`
//! names the `pyou` binary (default: the one on `PATH`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// `pyou <args…> --handlers dist --data <data>`.
fn pyou(data: &Path, args: &[&str]) -> Output {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    assert!(
        dist.join("{{name}}.wasm").is_file(),
        "no dist/{{name}}.wasm: run `pyou build` first"
    );
    let pyou = std::env::var_os("PYOU").unwrap_or_else(|| "pyou".into());
    Command::new(&pyou)
        .args(args)
        .arg("--handlers")
        .arg(&dist)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {pyou:?} (set PYOU or put pyou on PATH): {e}"))
}

#[test]
fn counts_the_events_it_hears() {
    let data = data();
    for _ in 0..2 {
        let out = pyou(
            &data.0,
            &["invoke", "--event", "counter.incremented", r#"{"name":"tea","value":1}"#],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = pyou(&data.0, &["query", "{{name}}", "counts"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counts: Value = serde_json::from_slice(&out.stdout).expect("the answer is JSON");
    assert_eq!(counts["counter.incremented"], 2);
}
