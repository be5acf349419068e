//! The build of each language, and the progress lines of its long step.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::super::args::checkout::Checkout;
use super::super::deploy::place_atomically;
use super::project::Project;
use super::{inputs, tools, Language};

/// The target every guest is built for.
pub(super) const RUST_TARGET: &str = "wasm32-wasip2";

/// How often a long step says it is still going.
const TICK: Duration = Duration::from_secs(10);

/// Runs `command` to its end, saying what it does first (and how long it
/// usually takes) and, with `tick`, how long it has run every [`TICK`];
/// returns its output (stdout and stderr captured unless the command set
/// them otherwise).
async fn step(
    what: &str,
    usually: Option<&str>,
    mut command: tokio::process::Command,
) -> anyhow::Result<std::process::Output> {
    match usually {
        Some(usually) => eprintln!("pyou: {what} (usually {usually})…"),
        None => eprintln!("pyou: {what}…"),
    }
    let started = Instant::now();
    command.kill_on_drop(true).stdin(Stdio::null());
    let output = command.output();
    tokio::pin!(output);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    loop {
        tokio::select! {
            done = &mut output => {
                return done.with_context(|| format!("cannot start the build ({what})"));
            }
            _ = ticks.tick(), if usually.is_some() => {
                eprintln!("pyou: still {what} ({} s)", started.elapsed().as_secs());
            }
        }
    }
}

/// The output's stderr and stdout, for a failure message.
fn said(output: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        text.push('\n');
        text.push_str(stdout.trim());
    }
    text
}

/// `cargo build --release --target wasm32-wasip2` of the crate (cargo's
/// own progress on stderr; `CARGO_TARGET_DIR` is honoured), its cdylib
/// placed in `dist/`.
pub(super) async fn build_rust(project: &Project) -> anyhow::Result<PathBuf> {
    let cargo = tools::cargo().await?;
    let mut command = cargo.command();
    command
        .args(["build", "--release", "--target", RUST_TARGET])
        .arg("--manifest-path")
        .arg(project.dir.join("Cargo.toml"))
        .args(["--message-format", "json-render-diagnostics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // cargo shows its own progress.
    let what = format!("building {} with cargo", project.dir.display());
    let output = step(&what, None, command).await?;
    if !output.status.success() {
        anyhow::bail!(
            "cargo build failed ({}): see its messages above",
            output.status
        );
    }
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"].as_str().map(Path::new) == Some(&project.dir.join("Cargo.toml"))
        })
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .context(
            "cargo built no .wasm: the crate needs `[lib] crate-type = [\"cdylib\"]` \
             (as `pyou new rust` writes it)",
        )?;
    let name = artifact
        .file_name()
        .and_then(|n| n.to_str())
        .context("the component has no file name")?
        .to_owned();
    place(&artifact, &project.dist(), &name)
}

/// componentize-py or jco of the app, unless its inputs are unchanged
/// since the last build; returns the component and whether it was kept.
pub(super) async fn build_polyglot(
    project: &Project,
    checkout: &Checkout,
) -> anyhow::Result<(PathBuf, bool)> {
    let world = project
        .world
        .context("a Python or JavaScript app has a world")?;
    let (tool, helper) = match project.language {
        Language::Python => (
            tools::componentize_py(checkout)?,
            checkout.root().join("sdk/python"),
        ),
        _ => (tools::jco(checkout)?, checkout.root().join("sdk/js")),
    };
    let name = format!("{}.wasm", project.name);
    let dist = project.dist().join(&name);
    let scratch = project.scratch();
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let stamp = scratch.join(format!("{}.inputs", project.name));
    let hash = inputs::hash(
        &format!("{} {}", tool.id(), world.wit_name()),
        &[project.dir.clone(), helper.clone(), checkout.wit()],
    );
    if dist.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash) {
        return Ok((dist, true));
    }
    let _ = std::fs::remove_file(&stamp);
    let out = scratch.join(&name);
    let mut command = tool.command();
    command.current_dir(&project.dir);
    let what = match project.language {
        Language::Python => {
            // `app` from the project, the helper from the SDK; no bytecode
            // caches in the project.
            command
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .arg("-d")
                .arg(checkout.wit())
                .args(["-w", world.wit_name(), "componentize", "app", "-p"])
                .arg(&project.dir)
                .arg("-p")
                .arg(&helper)
                .arg("-o")
                .arg(&out);
            (format!("building {name} with componentize-py"), "10–30 s")
        }
        _ => {
            let config = bundle_config(&scratch, &helper)?;
            // --disable all: the component imports only our own interfaces.
            command
                .args(["componentize", "app.js", "--bundle", "--bundle-config"])
                .arg(&config)
                .arg("--wit")
                .arg(checkout.wit())
                .args(["--world-name", world.wit_name(), "--disable", "all", "-o"])
                .arg(&out);
            (format!("building {name} with jco componentize"), "5–25 s")
        }
    };
    let output = step(&what.0, Some(what.1), command).await?;
    if !output.status.success() || !out.is_file() {
        anyhow::bail!(
            "the build of {name} failed ({}):\n{}",
            output.status,
            said(&output)
        );
    }
    let placed = place(&out, &project.dist(), &name)?;
    let _ = std::fs::remove_file(&out);
    std::fs::write(&stamp, &hash)?;
    Ok((placed, false))
}

/// The bundler's options for an app: the SDK's own, and `parallel-you`
/// naming the SDK's helper module, so an app imports it from anywhere.
fn bundle_config(scratch: &Path, helper: &Path) -> anyhow::Result<PathBuf> {
    let quoted = |p: PathBuf| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
    let text = format!(
        "// Written by `pyou build`: the SDK's bundle options, and where \"parallel-you\" is.\n\
         import base from {};\n\
         export default {{ ...base, resolve: {{ ...base.resolve, alias: {{ \"parallel-you\": [{}] }} }} }};\n",
        quoted(helper.join("bundle.config.js")),
        quoted(helper.join("parallel-you.js")),
    );
    let path = scratch.join("bundle.config.mjs");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Copies `file` into `dir` as `name`, whole (a watcher never sees half).
fn place(file: &Path, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    place_atomically(&bytes, dir, name)?;
    Ok(dir.join(name))
}
