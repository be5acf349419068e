//! `pyou handlers`: what a handlers folder would serve.

use std::sync::Arc;

use parallel_you_host::{Host, MemoryStore};

use super::{HandlersDir, LimitArgs, EXIT_FAILURE};

/// Arguments of `pyou handlers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    handlers: HandlersDir,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print one JSON array of `{"file", "domain", "version", "routing_keys", "error"}`.
    #[arg(long)]
    json: bool,
}

/// Loads every component in the folder and lists each, or why it failed.
/// Exits 1 when a file failed to load.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    // Listing touches no documents: an in-memory store is enough.
    let host = Arc::new(Host::new(
        args.limits.host_config(),
        Arc::new(MemoryStore::new()),
    )?);
    host.load_dir(&args.handlers.handlers).await?;
    let status = host.status();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else if status.is_empty() {
        println!(
            "no components (*.wasm) in {}",
            args.handlers.handlers.display()
        );
    } else {
        for s in &status {
            match &s.error {
                None => println!(
                    "{}  {} {}  {}",
                    s.file,
                    s.domain.as_deref().unwrap_or(""),
                    s.version.as_deref().unwrap_or(""),
                    s.routing_keys.join(", ")
                ),
                Some(err) => println!("{}  FAILED: {err}", s.file),
            }
        }
    }
    Ok(if status.iter().any(|s| s.error.is_some()) {
        EXIT_FAILURE
    } else {
        0
    })
}
