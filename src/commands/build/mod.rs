//! `pyou build [DIR]`: the component of a project (`pyou new` makes them),
//! built with the right tool and flags for its language: cargo for Rust,
//! the checkout's pinned componentize-py for Python and jco for
//! JavaScript. The result goes to `DIR/dist/<name>.wasm`, placed whole.

mod inputs;
mod project;
mod steps;
mod tools;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::args::checkout::{Checkout, CheckoutArgs};
pub(crate) use project::{Project, World};

/// A language `pyou new` and `pyou build` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Language {
    /// Rust with the SDK in `sdk/` (cargo, target wasm32-wasip2).
    Rust,
    /// Python with `sdk/python` (componentize-py).
    Python,
    /// JavaScript with `sdk/js` (jco componentize).
    #[value(alias = "javascript")]
    Js,
}

impl Language {
    /// For people.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
        }
    }
}

/// Arguments of `pyou build`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou build\n  \
    pyou build ~/src/greet --json")]
pub(crate) struct Args {
    /// The project folder: a Rust crate (Cargo.toml), or a Python (app.py)
    /// or JavaScript (app.js) app.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print one JSON object `{"file", "name", "language", "world",
    /// "bytes", "ms", "up_to_date"}` instead of a line for people.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    checkout: CheckoutArgs,
}

/// What a build made.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Built {
    /// The component, `DIR/dist/<name>.wasm`.
    pub(crate) file: PathBuf,
    /// Its name (the file's stem).
    pub(crate) name: String,
    /// The project's language.
    pub(crate) language: Language,
    /// The world it was built for (Python and JavaScript: by the export
    /// the app defines; Rust crates pick theirs with their export macro).
    pub(crate) world: Option<World>,
    /// Its size.
    pub(crate) bytes: u64,
    /// How long the build took.
    pub(crate) ms: u128,
    /// Nothing changed since the last build: the component was kept.
    pub(crate) up_to_date: bool,
}

/// Builds and reports. Errors (a missing tool, a failed compile) say what
/// to do; they exit 1.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let checkout = args.checkout.find()?;
    let built = build(&args.dir, &checkout).await?;
    if args.json {
        println!("{}", serde_json::to_string(&built)?);
    } else {
        let how = if built.up_to_date {
            "up to date".to_owned()
        } else {
            format!(
                "{:.1} s",
                Duration::from_millis(built.ms as u64).as_secs_f64()
            )
        };
        println!(
            "built {} ({}, {how})",
            built.file.display(),
            super::args::host::size(built.bytes)
        );
    }
    Ok(0)
}

/// Builds the project in `dir` with the tools of `checkout`.
pub(crate) async fn build(dir: &Path, checkout: &Checkout) -> anyhow::Result<Built> {
    let project = Project::detect(dir)?;
    let started = std::time::Instant::now();
    let (file, up_to_date) = match project.language {
        Language::Rust => (steps::build_rust(&project).await?, false),
        Language::Python | Language::Js => steps::build_polyglot(&project, checkout).await?,
    };
    let bytes = std::fs::metadata(&file)?.len();
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Built {
        name,
        file,
        language: project.language,
        world: project.world,
        bytes,
        ms: started.elapsed().as_millis(),
        up_to_date,
    })
}

/// Whether any of `paths` (as a watcher reports them) is an input of the
/// project's build: inside it, and not hidden or an output or tool folder.
pub(crate) fn inputs_changed(project: &Project, paths: &[&Path]) -> bool {
    paths.iter().any(|path| {
        path.strip_prefix(&project.dir).is_ok_and(|rel| {
            rel.components()
                .all(|c| inputs::is_input(Path::new(c.as_os_str())))
        })
    })
}
