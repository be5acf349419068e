//! The developer loop as a user runs it: `pyou new` writes a project
//! outside this repository, `pyou build` builds it with the language's
//! tool, `pyou invoke` runs it, the project's own test passes, and `pyou
//! dev` deploys it into a serving host's folder and again on every change.
//!
//! The Rust projects share one cargo target folder under this build's
//! `target/` (`scaffold/`), so only the first run compiles the SDK's
//! dependencies. The Python and JavaScript ones use the tools the setup
//! installs (`.venv/`, `sdk/js/node_modules/`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::child::{post_wait, Child};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `pyou` as the scaffold tests run it: Rust builds in the shared target
/// folder, and `PYOU` naming it for the projects' own tests.
fn pyou(cwd: &Path) -> Command {
    let mut command = common::pyou();
    command
        .current_dir(cwd)
        .env("CARGO_TARGET_DIR", root().join("target/scaffold"))
        .env("PYOU", env!("CARGO_BIN_EXE_pyou"))
        .stdin(Stdio::null());
    command
}

fn run(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pyou new <args…>` in `parent`: the project's folder.
fn new(parent: &Path, args: &[&str]) -> PathBuf {
    let mut command = pyou(parent);
    command.arg("new").args(args);
    let out = run(command);
    ok("pyou new", &out);
    parent.join(args[1])
}

/// `pyou build --json` of `dir`: what it reports.
fn build(dir: &Path) -> Value {
    let started = Instant::now();
    let mut command = pyou(dir);
    command.args(["build", "--json"]);
    let out = run(command);
    let built: Value = serde_json::from_str(&ok("pyou build", &out)).expect("one JSON object");
    eprintln!("pyou build of {}: {:?}", dir.display(), started.elapsed());
    built
}

/// `pyou <args…> --handlers <dir>/dist --data <data>`.
fn pyou_on(dir: &Path, data: &Path, args: &[&str]) -> Output {
    let mut command = pyou(dir);
    command
        .args(args)
        .arg("--handlers")
        .arg(dir.join("dist"))
        .arg("--data")
        .arg(data);
    run(command)
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The handler `pyou new` writes, built: greets and counts.
fn assert_greets(dir: &Path, name: &str) {
    let data = tempfile::tempdir().unwrap();
    let key = format!("{name}.hello");
    let first = events(&ok(
        "pyou invoke",
        &pyou_on(dir, data.path(), &["invoke", &key, r#"{"name":"Ada"}"#]),
    ));
    assert_eq!(first[0]["meta"]["routing_key"], format!("{name}.greeted"));
    assert_eq!(first[0]["body"]["greeting"], "Hello, Ada!");
    assert_eq!(first[0]["body"]["times"], 1);
    let second = events(&ok(
        "pyou invoke",
        &pyou_on(dir, data.path(), &["invoke", &key, r#"{"name":"Ada"}"#]),
    ));
    assert_eq!(second[0]["body"]["times"], 2, "the store persists");
    // The schema the template declares is checked by the host.
    let refused = pyou_on(dir, data.path(), &["invoke", &key, r#"{"name":""}"#]);
    assert_eq!(refused.status.code(), Some(1));
    let refused = events(&String::from_utf8_lossy(&refused.stdout));
    assert_eq!(refused[0]["body"]["code"], "validation");
}

/// The reactor `pyou new --reactor` writes, built: counts what it hears.
fn assert_counts(dir: &Path, name: &str) {
    let data = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = pyou_on(
            dir,
            data.path(),
            &[
                "invoke",
                "--event",
                "counter.incremented",
                r#"{"name":"tea","value":1}"#,
            ],
        );
        ok("pyou invoke --event", &out);
    }
    let unheard = pyou_on(
        dir,
        data.path(),
        &["invoke", "--event", "thread.started", "{}"],
    );
    assert_eq!(unheard.status.code(), Some(1), "no reactor subscribes");
    let counts: Value = serde_json::from_str(&ok(
        "pyou query",
        &pyou_on(dir, data.path(), &["query", name, "counts"]),
    ))
    .unwrap();
    assert_eq!(counts, serde_json::json!({"counter.incremented": 2}));
}

/// Runs the project's own test (`program args…` in `dir`), which must pass.
fn project_test(dir: &Path, program: &Path, args: &[&str]) {
    let started = Instant::now();
    let command = pyou(dir);
    let mut test = Command::new(program);
    test.current_dir(dir)
        .args(args)
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null());
    ok(&format!("{} {args:?}", program.display()), &run(test));
    eprintln!(
        "the project's test in {}: {:?}",
        dir.display(),
        started.elapsed()
    );
}

#[test]
fn a_new_rust_handler_builds_invokes_and_passes_its_test() {
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["rust", "greet"]);
    assert!(dir.join("Cargo.toml").is_file() && dir.join("tests/invoke.rs").is_file());
    let built = build(&dir);
    assert_eq!(built["language"], "rust");
    assert_eq!(built["file"], dir.join("dist/greet.wasm").to_str().unwrap());
    assert_greets(&dir, "greet");
    project_test(&dir, Path::new(env!("CARGO")), &["test", "--quiet"]);
}

#[test]
fn a_new_rust_reactor_builds_and_counts_events() {
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["rust", "rcount", "--reactor"]);
    build(&dir);
    assert_counts(&dir, "rcount");
    project_test(&dir, Path::new(env!("CARGO")), &["test", "--quiet"]);
}

/// The Python tools, installed by the setup (the components' build
/// installs them when missing).
fn python() -> PathBuf {
    common::components();
    let python = root().join(".venv/bin/python3");
    assert!(
        root().join(".venv/bin/componentize-py").is_file(),
        "no .venv/bin/componentize-py: scripts/setup installs it"
    );
    python
}

fn node() -> PathBuf {
    common::components();
    assert!(
        root().join("sdk/js/node_modules/.bin/jco").is_file(),
        "no sdk/js/node_modules/.bin/jco: scripts/setup installs it"
    );
    PathBuf::from("node")
}

#[test]
fn a_new_python_handler_builds_invokes_and_passes_its_test() {
    let python = python();
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["python", "pygreet"]);
    let built = build(&dir);
    assert_eq!(
        (&built["language"], &built["world"]),
        (&"python".into(), &"handler".into())
    );
    assert_eq!(built["up_to_date"], false);
    assert_greets(&dir, "pygreet");
    project_test(&dir, &python, &["test_app.py"]);
    // Nothing changed: the component is kept, not built again.
    assert_eq!(build(&dir)["up_to_date"], true);
}

#[test]
fn a_new_python_reactor_builds_and_counts_events() {
    let python = python();
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["python", "pycount", "--reactor"]);
    assert_eq!(build(&dir)["world"], "reactor");
    assert_counts(&dir, "pycount");
    project_test(&dir, &python, &["test_app.py"]);
}

#[test]
fn a_new_js_handler_builds_invokes_and_passes_its_test() {
    let node = node();
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["js", "jsgreet"]);
    let built = build(&dir);
    assert_eq!(
        (&built["language"], &built["world"]),
        (&"js".into(), &"handler".into())
    );
    assert_greets(&dir, "jsgreet");
    project_test(&dir, &node, &["--test"]);
}

#[test]
fn a_new_js_reactor_builds_and_counts_events() {
    let node = node();
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["js", "jscount", "--reactor"]);
    assert_eq!(build(&dir)["world"], "reactor");
    assert_counts(&dir, "jscount");
    project_test(&dir, &node, &["--test"]);
}

#[test]
fn new_refuses_bad_names_and_folders_in_use() {
    let parent = tempfile::tempdir().unwrap();
    for bad in ["Greet", "pyou", "a-b", "9x"] {
        let mut command = pyou(parent.path());
        command.args(["new", "rust", bad]);
        let out = run(command);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(!parent.path().join(bad).exists(), "{bad}: nothing written");
    }
    std::fs::create_dir(parent.path().join("taken")).unwrap();
    std::fs::write(parent.path().join("taken/keep.txt"), "mine").unwrap();
    let mut command = pyou(parent.path());
    command.args(["new", "python", "taken"]);
    let out = run(command);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_dir(parent.path().join("taken"))
            .unwrap()
            .count(),
        1,
        "the folder is left as it was"
    );
}

#[test]
fn build_says_how_to_get_a_missing_tool() {
    // A checkout with the SDK and WIT but none of the tools the setup
    // installs, and a PATH without them either.
    let fake = tempfile::tempdir().unwrap();
    for file in ["sdk/Cargo.toml", "wit/handler.wit"] {
        let path = fake.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(root().join(file), path).unwrap();
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["python", "lonely"]);
    let mut command = pyou(&dir);
    command
        .args(["build", "--pyou-root"])
        .arg(fake.path())
        .env("PATH", "/nonexistent");
    let out = run(command);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("componentize-py not found") && said.contains("scripts/setup"),
        "{said}"
    );
    assert!(!dir.join("dist").exists(), "nothing built");

    let mut command = pyou(parent.path());
    command.args(["build", "."]);
    let out = run(command);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pyou new"),
        "a folder without a project says how to make one"
    );
}

/// `POST /api/<key>?wait=` of a body: the first event's body.
fn send(addr: &str, key: &str, body: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(post_wait(addr, key, body))["events"][0]["body"].clone()
}

#[test]
fn dev_deploys_into_a_serving_host_and_again_on_change() {
    let parent = tempfile::tempdir().unwrap();
    let dir = new(parent.path(), &["rust", "devloop"]);
    let handlers = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut serve = pyou(parent.path());
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--handlers"])
        .arg(handlers.path())
        .arg("--data")
        .arg(data.path());
    let serve = Child::spawn(serve);
    let line = serve.line(Duration::from_secs(60));
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let mut dev = pyou(&dir);
    dev.arg("dev").arg("--to").arg(handlers.path());
    let dev = Child::spawn(dev);
    let deployed = dev.line(Duration::from_secs(600));
    assert!(
        deployed.starts_with("deployed devloop 0.1.0+"),
        "{deployed}"
    );
    let greeted = wait_for(
        || send(&addr, "devloop.hello", r#"{"name":"Ada"}"#),
        |b| b["greeting"] == "Hello, Ada!",
    );
    assert_eq!(greeted["times"], 1);

    // An edit is built, deployed and hot-loaded, the store kept.
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("\"Hello, {}!\"", "\"Hi, {}!\"")).unwrap();
    let redeployed = dev.line(Duration::from_secs(300));
    assert!(
        redeployed.starts_with("deployed devloop 0.1.0+")
            && redeployed.contains("(replacing 0.1.0+"),
        "{redeployed}"
    );
    let greeted = wait_for(
        || send(&addr, "devloop.hello", r#"{"name":"Ada"}"#),
        |b| b["greeting"] == "Hi, Ada!",
    );
    assert!(greeted["times"].as_u64() >= Some(2), "{greeted}");
}

/// Calls `f` until `done` holds of its result (at most 30 s).
fn wait_for(f: impl Fn() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = f();
        if done(&value) || Instant::now() > deadline {
            assert!(done(&value), "still {value}");
            return value;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
