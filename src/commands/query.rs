//! `pyou query`: one reactor query, in-process, against the store.

use super::{HostArgs, EXIT_FAILURE};

/// Arguments of `pyou query`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou query effort by_saga '{\"id\":\"s1\"}'\n  \
    pyou query tally counts")]
pub(crate) struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// The reactor's domain, e.g. `effort`.
    domain: String,
    /// The query's name, e.g. `by_saga`.
    name: String,
    /// Its parameters, a JSON object (default `{}`).
    #[arg(default_value = "{}")]
    params: String,
}

/// Prints the answer's JSON, or the error body on stderr (exit 1).
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let host = args.host.start_for_domain(&args.domain).await?;
    match host.query(&args.domain, &args.name, &args.params).await {
        Ok(answer) => {
            println!("{answer}");
            Ok(0)
        }
        Err(err) => {
            eprintln!("{}", serde_json::to_string(&err)?);
            Ok(EXIT_FAILURE)
        }
    }
}
