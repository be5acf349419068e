//! The MongoDB wire server a bench runs against: `$PYOU_TEST_MONGO_URI`,
//! else one started with `scripts/start-mongo` and stopped on drop. Shared
//! by `benches/store.rs` and `benches/query.rs` through `#[path]`.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The MongoDB server for the run; stops it on drop if the bench started it.
pub(crate) struct Mongo {
    pub(crate) uri: String,
    started: Vec<(String, String)>,
}

impl Mongo {
    pub(crate) fn find_or_start() -> anyhow::Result<Mongo> {
        if let Ok(uri) = std::env::var("PYOU_TEST_MONGO_URI") {
            return Ok(Mongo {
                uri,
                started: Vec::new(),
            });
        }
        let out = Command::new(root().join("scripts/start-mongo")).output()?;
        anyhow::ensure!(
            out.status.success(),
            "scripts/start-mongo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let started: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let uri = started
            .iter()
            .find(|(k, _)| k == "PYOU_TEST_MONGO_URI")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow::anyhow!("scripts/start-mongo printed no URI"))?;
        Ok(Mongo { uri, started })
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        if !self.started.is_empty() {
            let _ = Command::new(root().join("scripts/start-mongo"))
                .arg("--stop")
                .envs(self.started.iter().map(|(k, v)| (k, v)))
                .status();
        }
    }
}
