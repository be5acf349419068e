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
    match deploy(&args.file, &args.to, &name, &args.limits, &args.cache).await? {
        Ok(deployed) => {
            println!("{deployed}");
            Ok(0)
        }
        Err(reason) => {
            eprintln!("error: {}: {reason}", args.file.display());
            eprintln!("not deployed: {} is unchanged", args.to.display());
            Ok(EXIT_FAILURE)
        }
    }
}

/// Checks `file` as a host loading `to` would, then places it there as
/// `name`: `Ok(Ok(what was deployed))`, or `Ok(Err(why not))` with `to`
/// unchanged. Compiling a large component the first time takes a while:
/// a line on stderr says so.
pub(crate) async fn deploy(
    file: &Path,
    to: &Path,
    name: &str,
    limits: &LimitArgs,
    cache: &CacheArgs,
) -> anyhow::Result<Result<String, String>> {
    if !name.ends_with(".wasm") || name.starts_with('.') || name.contains('/') {
        anyhow::bail!("the name {name:?} must end in .wasm, not start with a dot, and have no /");
    }
    if !to.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give --to the handlers folder of the host (`pyou serve --handlers DIR`)",
            to.display()
        );
    }
    let target = to.join(name);
    let host = Arc::new(Host::with_cache(
        limits.host_config(),
        Arc::new(MemoryStore::new()),
        cache.dir(Path::new("data")).as_deref(),
    )?);
    let loader = parallel_you_host::HotLoader::new(host.clone());
    let checked = async {
        // What the folder serves now, to check domain ownership against.
        host.load_dir(to).await?;
        anyhow::Ok(loader.check_file(file, &target).await)
    };
    tokio::pin!(checked);
    let checked = tokio::select! {
        done = &mut checked => done?,
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
            eprintln!(
                "pyou: checking {} ({}) as a host loading {} would: compiling, once (later runs read the compile cache)…",
                file.display(),
                std::fs::metadata(file).map(|m| super::args::host::size(m.len())).unwrap_or_default(),
                to.display()
            );
            checked.await?
        }
    };
    let (new, old) = match checked {
        Ok(checked) => checked,
        Err(err) => return Ok(Err(err.reason)),
    };
    let bytes = std::fs::read(file)?;
    place_atomically(&bytes, to, name)?;
    Ok(Ok(match old {
        Some(old) => format!(
            "deployed {} {} to {} (replacing {})",
            new.manifest.domain,
            new.version_label(),
            target.display(),
            old.version_label()
        ),
        None => format!(
            "deployed {} {} to {}",
            new.manifest.domain,
            new.version_label(),
            target.display()
        ),
    }))
}

/// Writes `bytes` to a hidden temporary file in `dir` (hidden: watchers
/// ignore it), flushes it to disk, and renames it to `name`: readers see
/// the old file or the whole new one.
pub(crate) fn place_atomically(bytes: &[u8], dir: &Path, name: &str) -> anyhow::Result<()> {
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
