//! Which store a subcommand keeps documents in: embedded SQLite or MongoDB.

use std::path::PathBuf;
use std::sync::Arc;

use parallel_you_core::store::Store;
use parallel_you_host::store::{MongoStore, SqliteStore};

use super::credentials::{read_url_file, without_password};

/// Where documents are kept: the embedded store in a folder, or MongoDB.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// Folder of the embedded store.
    #[arg(long = "data", env = "PYOU_DATA", default_value = "data")]
    pub(crate) data: PathBuf,
    /// The store: `sqlite` (the embedded store in --data) or a MongoDB URI
    /// (`mongodb://…`, `mongodb+srv://…`; its path names the database,
    /// default `pyou`). Without it: MongoDB at `MONGO_URI` when
    /// `PARALLEL_YOU_REPO=mongo`, else sqlite.
    #[arg(long = "store", env = "PYOU_STORE", value_name = "sqlite|URI")]
    pub(crate) store: Option<String>,
    /// A file holding the MongoDB URI (credentials included), instead of
    /// --store: a command line is visible to every user of the machine.
    #[arg(
        long = "store-file",
        env = "PYOU_STORE_FILE",
        value_name = "FILE",
        conflicts_with = "store"
    )]
    pub(crate) store_file: Option<PathBuf>,
}

/// The store a command line selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreChoice {
    /// The embedded SQLite store in the data folder.
    Sqlite,
    /// MongoDB at this URI.
    Mongo(String),
}

impl StoreArgs {
    /// Which store the flags and the environment select.
    pub(crate) fn choice(&self) -> anyhow::Result<StoreChoice> {
        let from_file = self
            .store_file
            .as_deref()
            .map(|f| read_url_file(f, "--store-file"))
            .transpose()?;
        store_choice(
            from_file.as_deref().or(self.store.as_deref()),
            std::env::var("PARALLEL_YOU_REPO").ok().as_deref(),
            std::env::var("MONGO_URI").ok(),
        )
    }

    /// Opens (or connects to) the selected store.
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self.choice()? {
            StoreChoice::Sqlite => Arc::new(SqliteStore::open_dir(&self.data)?),
            StoreChoice::Mongo(uri) => Arc::new(
                MongoStore::connect(&uri, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("the MongoDB store: {e}"))?,
            ),
        })
    }
}

/// `--store` wins; then `PARALLEL_YOU_REPO` (`mongo` takes `MONGO_URI`);
/// then the embedded store.
pub(crate) fn store_choice(
    flag: Option<&str>,
    repo: Option<&str>,
    mongo_uri: Option<String>,
) -> anyhow::Result<StoreChoice> {
    let is_mongo_uri = |s: &str| s.starts_with("mongodb://") || s.starts_with("mongodb+srv://");
    match flag.map(str::trim).filter(|s| !s.is_empty()) {
        Some("sqlite") => return Ok(StoreChoice::Sqlite),
        Some(uri) if is_mongo_uri(uri) => return Ok(StoreChoice::Mongo(uri.to_owned())),
        // Quoted without its password: it may be a URI with credentials.
        Some(other) => anyhow::bail!(
            "--store {:?}: give `sqlite` or a MongoDB URI (mongodb://… or mongodb+srv://…)",
            without_password(other)
        ),
        None => {}
    }
    match repo.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("sqlite") => Ok(StoreChoice::Sqlite),
        Some("mongo") => match mongo_uri.filter(|u| is_mongo_uri(u.trim())) {
            Some(uri) => Ok(StoreChoice::Mongo(uri.trim().to_owned())),
            None => anyhow::bail!(
                "PARALLEL_YOU_REPO=mongo needs MONGO_URI set to a MongoDB URI (mongodb://…)"
            ),
        },
        Some(other) => {
            anyhow::bail!("PARALLEL_YOU_REPO={other:?}: use `mongo`, `sqlite`, or leave it unset")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{store_choice, StoreChoice};

    #[test]
    fn store_is_chosen_by_flag_then_environment() {
        let uri = "mongodb://127.0.0.1:27017/app";
        let mongo = || StoreChoice::Mongo(uri.to_owned());
        let pick =
            |flag, repo, env: Option<&str>| store_choice(flag, repo, env.map(str::to_owned)).ok();
        assert_eq!(pick(None, None, Some(uri)), Some(StoreChoice::Sqlite));
        assert_eq!(pick(Some(uri), None, None), Some(mongo()));
        assert_eq!(pick(None, Some("mongo"), Some(uri)), Some(mongo()));
        assert_eq!(
            pick(Some("sqlite"), Some("mongo"), Some(uri)),
            Some(StoreChoice::Sqlite)
        );
        assert_eq!(
            pick(None, Some("mongo"), None),
            None,
            "mongo without MONGO_URI"
        );
        assert_eq!(pick(Some("postgres://x"), None, None), None);
        let refused = store_choice(Some("postgres://u:hunter2@db/x"), None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("postgres://u:***@db/x") && !refused.contains("hunter2"),
            "{refused}"
        );
        assert_eq!(pick(None, Some("redis"), None), None);
    }
}
