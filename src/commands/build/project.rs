//! What kind of project a folder holds, told by its files.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use super::Language;

/// The world a component is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum World {
    /// Answers commands (`command-handler`).
    Handler,
    /// Listens to events and answers queries (`event-reactor`).
    Reactor,
}

impl World {
    /// The world's name in `wit/`.
    pub(crate) fn wit_name(self) -> &'static str {
        match self {
            World::Handler => "handler",
            World::Reactor => "reactor",
        }
    }
}

/// A project folder.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// Its folder, absolute.
    pub(crate) dir: PathBuf,
    /// Its language.
    pub(crate) language: Language,
    /// Python and JavaScript: the world of the export the app defines.
    pub(crate) world: Option<World>,
    /// Python and JavaScript: the component's name, the folder's.
    pub(crate) name: String,
}

impl Project {
    /// Reads `dir`: `Cargo.toml` is Rust, `app.py` Python, `app.js`
    /// JavaScript.
    pub(crate) fn detect(dir: &Path) -> anyhow::Result<Project> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("no project folder {}", dir.display()))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (language, world) = if dir.join("Cargo.toml").is_file() {
            (Language::Rust, None)
        } else if dir.join("app.py").is_file() {
            let world = world_of(&dir.join("app.py"), "EventReactor", "CommandHandler")?;
            (Language::Python, Some(world))
        } else if dir.join("app.js").is_file() {
            let world = world_of(
                &dir.join("app.js"),
                "export const eventReactor",
                "export const commandHandler",
            )?;
            (Language::Js, Some(world))
        } else {
            anyhow::bail!(
                "{} holds no Cargo.toml, app.py or app.js: give the folder of a project \
                 (`pyou new rust|python|js NAME` makes one)",
                dir.display()
            );
        };
        Ok(Project {
            dir,
            language,
            world,
            name,
        })
    }

    /// Where the built component goes: `dist/` in the project.
    pub(crate) fn dist(&self) -> PathBuf {
        self.dir.join("dist")
    }

    /// The project's scratch folder (stamps, generated configs).
    pub(crate) fn scratch(&self) -> PathBuf {
        self.dir.join(".pyou")
    }
}

/// The world of an app, by the export its module defines at the start of
/// a line: `reactor` (an event reactor) or `handler` (a command handler).
fn world_of(app: &Path, reactor: &str, handler: &str) -> anyhow::Result<World> {
    let text =
        std::fs::read_to_string(app).with_context(|| format!("cannot read {}", app.display()))?;
    let defines = |export: &str| text.lines().any(|l| l.starts_with(export));
    match (defines(reactor), defines(handler)) {
        (true, false) => Ok(World::Reactor),
        (false, true) => Ok(World::Handler),
        (true, true) => anyhow::bail!(
            "{} defines both `{reactor}` and `{handler}`: a component is one or the other",
            app.display()
        ),
        (false, false) => anyhow::bail!(
            "{} defines neither `{handler}` (a command handler) nor `{reactor}` (a reactor) \
             at the start of a line: the component has nothing to export",
            app.display()
        ),
    }
}
