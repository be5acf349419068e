//! `pyou deploy`: check a component as a host would load it, then place it
//! in a handlers folder in one atomic rename, so a watching host never sees
//! half a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use parallel_you_core::MemoryStore;
use parallel_you_host::Host;

use super::{CacheArgs, LimitArgs, EXIT_FAILURE};

/// Arguments of `pyou deploy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou deploy target/wasm32-wasip2/release/counter.wasm\n  \
    pyou deploy build/notes.wasm --to /srv/pyou/handlers")]
pub(crate) struct Args {
    /// The component to ship.
    file: PathBuf,
    /// The handlers folder of the host to ship it to.
    #[arg(
        long = "to",
        env = "PYOU_HANDLERS",
        default_value = "handlers/dist",
        value_name = "DIR"
    )]
    to: PathBuf,
    /// The file name in DIR (default: FILE's own name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Validates, then copies. Exits 1 (and leaves DIR as it was) when the
/// component would not load there.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .with_context(|| format!("{} has no file name", args.file.display()))?,
    };
    if !name.ends_with(".wasm") || name.starts_with('.') || name.contains('/') {
        anyhow::bail!("the name {name:?} must end in .wasm, not start with a dot, and have no /");
    }
    if !args.to.is_dir() {
        anyhow::bail!("{} is not a folder", args.to.display());
    }
    let target = args.to.join(&name);
    let host = Arc::new(Host::with_cache(
        args.limits.host_config(),
        Arc::new(MemoryStore::new()),
        args.cache.dir(Path::new("data")).as_deref(),
    )?);
    // What the folder serves now, to check domain ownership against.
    host.load_dir(&args.to).await?;
    let loader = parallel_you_host::HotLoader::new(host);
    let (new, old) = match loader.check_file(&args.file, &target).await {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {}: {}", args.file.display(), err.reason);
            eprintln!("not deployed: {} is unchanged", args.to.display());
            return Ok(EXIT_FAILURE);
        }
    };
    let bytes = std::fs::read(&args.file)?;
    place_atomically(&bytes, &args.to, &name)?;
    match old {
        Some(old) => println!(
            "deployed {} {} to {} (replacing {})",
            new.manifest.domain,
            new.version_label(),
            target.display(),
            old.version_label()
        ),
        None => println!(
            "deployed {} {} to {}",
            new.manifest.domain,
            new.version_label(),
            target.display()
        ),
    }
    Ok(0)
}

/// Writes `bytes` to a hidden temporary file in `dir` (hidden: watchers
/// ignore it), flushes it to disk, and renames it to `name`: readers see
/// the old file or the whole new one.
fn place_atomically(bytes: &[u8], dir: &Path, name: &str) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.deploy-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("cannot write into {}", dir.display()));
    }
    Ok(())
}
