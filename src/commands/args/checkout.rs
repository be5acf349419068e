//! Which Parallel You checkout `pyou new`, `build` and `dev` take the SDK,
//! the WIT contract and the pinned guest tools from.
//!
//! The rule, in order: `--pyou-root DIR`, then `PYOU_ROOT`, then the
//! checkout this `pyou` binary was built from (its location at build time),
//! as long as it still holds `sdk/Cargo.toml` and `wit/handler.wit`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Where the SDK comes from.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CheckoutArgs {
    /// The Parallel You checkout to take the SDK, the WIT contract and the
    /// pinned componentize-py and jco from (default: the checkout this
    /// `pyou` was built from).
    #[arg(long = "pyou-root", env = "PYOU_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
}

/// A Parallel You checkout: `sdk/`, `wit/` and what `scripts/setup` installs.
#[derive(Debug, Clone)]
pub(crate) struct Checkout {
    root: PathBuf,
}

impl CheckoutArgs {
    /// The checkout the flags, the environment or the build select.
    pub(crate) fn find(&self) -> anyhow::Result<Checkout> {
        let (root, from) = match &self.root {
            Some(root) => (root.clone(), "--pyou-root / PYOU_ROOT"),
            None => (
                PathBuf::from(env!("CARGO_MANIFEST_DIR")),
                "the checkout this pyou was built from",
            ),
        };
        let how = "give --pyou-root DIR (or set PYOU_ROOT) to a Parallel You checkout, \
                   the folder holding sdk/ and wit/";
        for needed in ["sdk/Cargo.toml", "wit/handler.wit"] {
            if !root.join(needed).is_file() {
                anyhow::bail!(
                    "{} ({from}) is not a Parallel You checkout: it has no {needed}; {how}",
                    root.display()
                );
            }
        }
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()))?;
        Ok(Checkout { root })
    }
}

impl Checkout {
    /// The checkout's folder.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The Rust SDK crate.
    pub(crate) fn sdk(&self) -> PathBuf {
        self.root.join("sdk")
    }

    /// The WIT package (worlds `handler` and `reactor`).
    pub(crate) fn wit(&self) -> PathBuf {
        self.root.join("wit")
    }
}
