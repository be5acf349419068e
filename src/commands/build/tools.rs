//! Finding the guest tools: where `scripts/setup` (through
//! `scripts/build-polyglot`) installs the pinned ones in the checkout, then
//! `PATH`. A missing tool is an error that says how to get it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::super::args::checkout::Checkout;

/// A program and the arguments and environment that run it.
#[derive(Debug, Clone)]
pub(super) struct Tool {
    pub(super) program: PathBuf,
    pub(super) args: Vec<OsString>,
    pub(super) env: Vec<(OsString, OsString)>,
}

impl Tool {
    fn at(program: PathBuf) -> Tool {
        Tool {
            program,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A command running the tool, to add arguments to.
    pub(super) fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args).envs(self.env.iter().cloned());
        command
    }

    /// Something to tell builds apart by (in the inputs' hash).
    pub(super) fn id(&self) -> String {
        format!("{} {:?}", self.program.display(), self.args)
    }
}

/// The first `name` on `PATH`.
pub(super) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// componentize-py: the checkout's `.venv/bin/componentize-py`, its
/// `.venv/site/` (where the setup installs it without `venv`), or `PATH`'s.
pub(super) fn componentize_py(checkout: &Checkout) -> anyhow::Result<Tool> {
    let venv = checkout.root().join(".venv");
    let bin = venv.join("bin/componentize-py");
    if is_executable(&bin) {
        return Ok(Tool::at(bin));
    }
    let site = venv.join("site");
    if let (true, Some(python)) = (site.join("componentize_py").is_dir(), on_path("python3")) {
        // As scripts/build-polyglot runs it from a pip --target folder.
        return Ok(Tool {
            program: python,
            args: vec![
                "-c".into(),
                "import sys; from componentize_py import script; \
                 sys.argv[0] = 'componentize-py'; sys.exit(script())"
                    .into(),
            ],
            env: vec![("PYTHONPATH".into(), site.into_os_string())],
        });
    }
    if let Some(found) = on_path("componentize-py") {
        return Ok(Tool::at(found));
    }
    anyhow::bail!(
        "componentize-py not found (not in {} nor on PATH): run {}/scripts/setup, which \
         installs the pinned version into .venv/ (the version is in scripts/build-polyglot), \
         or `pip install componentize-py` of that version",
        venv.display(),
        checkout.root().display()
    )
}

/// jco: the checkout's `sdk/js/node_modules/.bin/jco` or `PATH`'s, and
/// the `node` it runs on.
pub(super) fn jco(checkout: &Checkout) -> anyhow::Result<Tool> {
    if on_path("node").is_none() {
        anyhow::bail!("node not found on PATH: install Node.js 20 or later (with npm)");
    }
    let local = checkout.root().join("sdk/js/node_modules/.bin/jco");
    if is_executable(&local) {
        return Ok(Tool::at(local));
    }
    if let Some(found) = on_path("jco") {
        return Ok(Tool::at(found));
    }
    anyhow::bail!(
        "jco not found (not in {} nor on PATH): run {}/scripts/setup, which installs the \
         pinned jco and componentize-js into sdk/js/node_modules/",
        local.display(),
        checkout.root().display()
    )
}

/// cargo, with the `wasm32-wasip2` target installed (checked with rustup
/// when there is one).
pub(super) async fn cargo() -> anyhow::Result<Tool> {
    let Some(cargo) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .filter(|c| is_executable(c))
        .or_else(|| on_path("cargo"))
    else {
        anyhow::bail!("cargo not found on PATH: install Rust with rustup (https://rustup.rs)");
    };
    if let Some(rustup) = on_path("rustup") {
        let listed = tokio::process::Command::new(rustup)
            .args(["target", "list", "--installed"])
            .output()
            .await?;
        let installed = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.trim() == super::steps::RUST_TARGET);
        if listed.status.success() && !installed {
            anyhow::bail!(
                "the Rust target {0} is not installed: run `rustup target add {0}`",
                super::steps::RUST_TARGET
            );
        }
    }
    Ok(Tool::at(cargo))
}
