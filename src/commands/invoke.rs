//! `pyou invoke`: one command, in-process, against the embedded store.

use std::io::Read;
use std::sync::Arc;

use parallel_you_core::bus::Collector;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::error_code_of;

use super::{HostArgs, EXIT_FAILURE, EXIT_USAGE};

/// Arguments of `pyou invoke`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou invoke counter.increment '{\"name\":\"coffee\"}'\n  \
    echo '{\"name\":\"coffee\"}' | pyou invoke counter.get -\n  \
    pyou invoke --envelope - < command.json")]
pub(crate) struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// Client session: events carry it, and go to reply channel `session.<ID>`.
    #[arg(long)]
    session: Option<String>,
    /// Read a whole command envelope (JSON) from this file, `-` for stdin,
    /// instead of ROUTING_KEY and BODY_JSON.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["routing_key", "body"])]
    envelope: Option<String>,
    /// The command's routing key, e.g. `counter.increment`.
    #[arg(required_unless_present = "envelope")]
    routing_key: Option<String>,
    /// The command's body as JSON, or `-` to read it from stdin.
    #[arg(required_unless_present = "envelope")]
    body: Option<String>,
}

fn read_input(source: &str) -> anyhow::Result<String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        Ok(std::fs::read_to_string(source)?)
    }
}

/// Runs the command and prints each event as one JSON line. Exits 0 when no
/// error event was produced, 1 when one was, 2 for bad usage.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let out = Arc::new(Collector::new());
    let events = match (&args.envelope, &args.routing_key, &args.body) {
        (Some(source), _, _) => {
            let text = match read_input(source) {
                Ok(t) => t,
                Err(err) => {
                    eprintln!("error: cannot read the envelope from {source}: {err}");
                    return Ok(EXIT_USAGE);
                }
            };
            // Only the component the envelope is for is loaded; one that
            // cannot be read is refused by the host with what it could read.
            let key = Envelope::from_json(&text, usize::MAX)
                .map(|e| e.meta.routing_key)
                .unwrap_or_default();
            let host = args.host.start_for(&key).await?;
            host.dispatch_json(&text, out.clone()).await
        }
        (None, Some(key), Some(body)) => {
            let host = args.host.start_for(key).await?;
            let body = if body == "-" {
                read_input("-")?
            } else {
                body.clone()
            };
            let mut cmd = match Envelope::command(key, &body) {
                Ok(cmd) => cmd,
                Err(err) => {
                    eprintln!("error: {err}");
                    return Ok(EXIT_USAGE);
                }
            };
            if let Some(session) = &args.session {
                if let Err(err) = parallel_you_core::names::check_session_id(session) {
                    eprintln!("error: {err}");
                    return Ok(EXIT_USAGE);
                }
                cmd = cmd.with_session(session);
            }
            host.dispatch(cmd, out.clone()).await
        }
        _ => {
            eprintln!("error: give ROUTING_KEY and BODY_JSON, or --envelope FILE");
            return Ok(EXIT_USAGE);
        }
    };
    for event in &events {
        println!("{event}");
    }
    Ok(if events.iter().any(|e| error_code_of(e).is_some()) {
        EXIT_FAILURE
    } else {
        0
    })
}
