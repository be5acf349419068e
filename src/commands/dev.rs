//! `pyou dev [DIR]`: the developer loop. Builds the project, deploys the
//! component into a serving host's handlers folder (checked as `pyou
//! deploy` checks it; the host hot-loads it), then does it again each time
//! a source file changes, until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult};

use super::args::checkout::{Checkout, CheckoutArgs};
use super::build::{build, inputs_changed, Project};
use super::deploy::deploy;
use super::{shutdown_signal, CacheArgs, LimitArgs};

/// How long the sources must be quiet before a rebuild: an editor's save
/// is often several writes.
const QUIET: Duration = Duration::from_millis(300);

/// Arguments of `pyou dev`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou dev --to ~/parallel-you/handlers/dist\n  \
    pyou dev ~/src/greet --to /srv/pyou/handlers --once")]
pub(crate) struct Args {
    /// The project folder (see `pyou build`).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The handlers folder of the serving host (`pyou serve --handlers`).
    #[arg(
        long = "to",
        env = "PYOU_HANDLERS",
        default_value = "handlers/dist",
        value_name = "DIR"
    )]
    to: PathBuf,
    /// Build and deploy once, then exit (1 if either failed).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    checkout: CheckoutArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Builds and deploys, then again on every change until SIGINT/SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let checkout = args.checkout.find()?;
    // A project that is not one fails now, not on the first change.
    let project = Project::detect(&args.dir)?;
    if !args.to.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give --to the handlers folder of the serving host \
             (`pyou serve --handlers DIR`; default handlers/dist)",
            args.to.display()
        );
    }
    let ok = round(&args, &checkout).await;
    if args.once {
        return Ok(if ok { 0 } else { super::EXIT_FAILURE });
    }
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut debouncer = new_debouncer(QUIET, move |res: DebounceEventResult| {
        let _ = tx.send(res);
    })?;
    debouncer
        .watcher()
        .watch(&project.dir, RecursiveMode::Recursive)?;
    eprintln!("pyou: watching {} (Ctrl-C stops)", project.dir.display());
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            changed = changes.recv() => match changed {
                Some(Ok(events)) => {
                    let paths: Vec<&Path> = events.iter().map(|e| e.path.as_path()).collect();
                    if inputs_changed(&project, &paths) {
                        round(&args, &checkout).await;
                    }
                }
                Some(Err(err)) => eprintln!("warning: watching {}: {err}", project.dir.display()),
                None => break,
            },
        }
    }
    drop(debouncer);
    Ok(0)
}

/// One build and deploy; says how it went. Returns whether both worked.
async fn round(args: &Args, checkout: &Checkout) -> bool {
    let built = match build(&args.dir, checkout).await {
        Ok(built) => built,
        Err(err) => {
            eprintln!("error: {err:#}");
            eprintln!("pyou: not deployed; waiting for the next change");
            return false;
        }
    };
    let name = format!("{}.wasm", built.name);
    let deployed = args.to.join(&name);
    if std::fs::read(&deployed).ok() == std::fs::read(&built.file).ok() {
        // The same bytes are no change to the host either.
        eprintln!("pyou: {} is unchanged", deployed.display());
        return true;
    }
    match deploy(&built.file, &args.to, &name, &args.limits, &args.cache).await {
        Ok(Ok(deployed)) => {
            println!("{deployed}");
            true
        }
        Ok(Err(reason)) => {
            eprintln!("error: {}: {reason}", built.file.display());
            eprintln!("pyou: not deployed: {} is unchanged", args.to.display());
            false
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            false
        }
    }
}
