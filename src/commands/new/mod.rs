//! `pyou new`: a handler or reactor project that builds as it is, in a
//! folder of its own: the component's source, a test that runs it with
//! `pyou invoke`, a README. Rust projects depend on the SDK of the checkout
//! (see [`CheckoutArgs`]); Python and JavaScript ones get the helper module
//! from it when `pyou build` builds them.

mod templates;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::args::checkout::CheckoutArgs;
use super::build::Language;
use super::EXIT_USAGE;
use templates::{files, Kind};

/// Arguments of `pyou new`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou new rust greet\n  \
    pyou new python notes2 --dir ~/src/notes2\n  \
    pyou new js feed --reactor")]
pub(crate) struct Args {
    /// The language of the component.
    language: Language,
    /// The domain it serves: also the project's, crate's and component's
    /// name (`[a-z][a-z0-9_]*`, at most 48 characters).
    name: String,
    /// A reactor (listens to events, answers queries) instead of a command
    /// handler.
    #[arg(long)]
    reactor: bool,
    /// The folder to create (default: NAME in the current folder). It must
    /// not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    checkout: CheckoutArgs,
}

/// Writes the project. Exits 2 for a bad name or a folder in the way.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    if let Err(why) = check_name(&args.name) {
        eprintln!("error: {why}");
        return Ok(EXIT_USAGE);
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if !is_free(&dir) {
        eprintln!(
            "error: {} exists and is not empty: pick another --dir or remove it",
            dir.display()
        );
        return Ok(EXIT_USAGE);
    }
    let checkout = args.checkout.find()?;
    let kind = if args.reactor {
        Kind::Reactor
    } else {
        Kind::Handler
    };
    for file in files(args.language, kind, &args.name, &checkout) {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, file.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.language == Language::Rust {
        // The checkout's lock pins the SDK's dependencies to the versions it
        // is tested with (cargo drops the entries the project does not use).
        let lock = checkout.root().join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, dir.join("Cargo.lock"))
                .with_context(|| format!("cannot copy {}", lock.display()))?;
        }
    }
    println!(
        "created the {} {} `{}` in {}",
        args.language.label(),
        kind.label(),
        args.name,
        dir.display()
    );
    println!("next: cd {} && pyou build", dir.display());
    Ok(0)
}

/// A domain that is also a crate, module and file name in every language.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 48;
    if !well_formed {
        return Err(format!(
            "the name {name:?} must be a lowercase letter, then lowercase letters, digits or `_` \
             (at most 48): it is the domain, and the crate, module and file name"
        ));
    }
    parallel_you_core::names::check_domain(name).map_err(|e| e.0)
}

/// Whether `dir` can take a new project: missing, or an empty folder.
fn is_free(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_domains_and_identifiers() {
        assert!(check_name("greet").is_ok());
        assert!(check_name("greet_2").is_ok());
        for bad in [
            "", "Greet", "2greet", "greet-x", "gr.eet", "pyou", "handler",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} passed");
        }
        assert!(check_name(&"a".repeat(49)).is_err());
    }
}
