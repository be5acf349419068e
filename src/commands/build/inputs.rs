//! Whether a Python or JavaScript component is up to date: one hash over
//! everything its build reads (as `scripts/build-polyglot` keeps one), so
//! an unchanged project is not built again (10–20 s each time).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Folders of a project that are outputs or tools, never inputs.
const SKIPPED: &[&str] = &["dist", "target", "node_modules", "__pycache__"];

/// Files `dir` holds that a build reads, sorted: hidden files and the
/// [`SKIPPED`] folders left out.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dir, &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !is_input(&path) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Whether a change to `path` can change a build: not hidden, not under
/// an output or tool folder, not bytecode.
pub(crate) fn is_input(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && !SKIPPED.contains(&name) && !name.ends_with(".pyc")
}

/// The hash of `tool` and of the path and bytes of every file of `dirs`.
pub(crate) fn hash(tool: &str, dirs: &[PathBuf]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tool.as_bytes());
    for dir in dirs {
        for file in files(dir) {
            hasher.update(file.to_string_lossy().as_bytes());
            hasher.update([0]);
            if let Ok(bytes) = std::fs::read(&file) {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
    }
    format!("{:x}", hasher.finalize())
}
