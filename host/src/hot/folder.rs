//! The components of a handlers folder, and bringing them online one at a
//! time while the host already serves.
//!
//! A cold compile of a big component (a Python one is ~19 MB) takes tens of
//! seconds; loading the folder in one step would hold every component back
//! for the slowest. [`HotLoader::bring_online`] loads the smallest first,
//! each through the hot-load path, so each serves as soon as it is ready.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{HotLoader, HotOutcome};

/// Whether a path in the folder is a component to load: `*.wasm`, not a
/// hidden file (temporary files of `pyou deploy` and editors start with a
/// dot).
pub(super) fn is_component_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

/// The component files of `dir` with their sizes, smallest first (then by
/// name): the order that brings the most components online soonest.
pub fn component_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| dir.join(e.file_name()))
        .filter(|p| is_component_path(p))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            meta.is_file().then_some((p, meta.len()))
        })
        .collect();
    files.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(files)
}

/// One step of [`HotLoader::bring_online`], for a progress display.
#[derive(Debug)]
pub enum Progress<'a> {
    /// This file has been loading for a while (a cold compile, most likely).
    Slow {
        /// The component file.
        file: &'a Path,
        /// Its size in bytes.
        bytes: u64,
    },
    /// This file is done.
    Done {
        /// The component file.
        file: &'a Path,
        /// What became of it.
        outcome: &'a HotOutcome,
        /// How long it took.
        elapsed: Duration,
    },
}

/// How long a load may take before [`Progress::Slow`] is reported.
const SLOW: Duration = Duration::from_millis(500);

impl HotLoader {
    /// Loads every component of `dir`, smallest first, each through
    /// [`HotLoader::load_file`] (so each serves, and is announced, as soon
    /// as it is ready), telling `progress` how it goes. Returns how many
    /// files were looked at.
    pub async fn bring_online(&self, dir: &Path, progress: &mut dyn FnMut(Progress<'_>)) -> usize {
        let files = match component_files(dir) {
            Ok(files) => files,
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot read the handlers folder");
                return 0;
            }
        };
        for (file, bytes) in &files {
            let started = Instant::now();
            let load = self.load_file(file);
            tokio::pin!(load);
            let outcome = tokio::select! {
                outcome = &mut load => outcome,
                _ = tokio::time::sleep(SLOW) => {
                    progress(Progress::Slow { file, bytes: *bytes });
                    load.await
                }
            };
            progress(Progress::Done {
                file,
                outcome: &outcome,
                elapsed: started.elapsed(),
            });
        }
        files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_files_are_components() {
        assert!(is_component_path(Path::new("/h/counter.wasm")));
        assert!(!is_component_path(Path::new("/h/.counter.wasm.tmp1")));
        assert!(!is_component_path(Path::new("/h/.counter.wasm")));
        assert!(!is_component_path(Path::new("/h/notes.txt")));
    }

    #[test]
    fn the_smallest_component_comes_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (name, size) in [
            ("big.wasm", 30),
            ("a.wasm", 20),
            ("b.wasm", 20),
            ("x.txt", 1),
        ] {
            std::fs::write(dir.path().join(name), vec![0u8; size])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let names: Vec<_> = component_files(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(p, n)| (p.file_name().map(|n| n.to_string_lossy().into_owned()), n))
            .collect();
        let want = [("a.wasm", 20), ("b.wasm", 20), ("big.wasm", 30)]
            .map(|(n, s)| (Some(n.to_owned()), s));
        assert_eq!(names, want);
    }
}
