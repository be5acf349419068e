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
    pyou invoke --envelope - < command.json\n  \
    pyou invoke --event counter.incremented '{\"name\":\"coffee\",\"value\":1}'")]
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
    /// Deliver ROUTING_KEY and BODY_JSON as an event to every reactor in
    /// the folder that subscribes to it (each commits its effects), and
    /// print the commands they return, one JSON line each.
    #[arg(long, conflicts_with = "envelope")]
    event: bool,
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
        (None, Some(key), Some(body)) if args.event => {
            return react(&args, key, body).await;
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

/// `--event`: the event through each reactor that takes it. Exits 1 when
/// none does or one failed (its error body on stderr).
async fn react(args: &Args, key: &str, body: &str) -> anyhow::Result<u8> {
    use parallel_you_core::envelope::{parse_body, DEFAULT_MAX_BODY};
    use parallel_you_host::host::Reacted;

    let body = if body == "-" {
        read_input("-")?
    } else {
        body.to_owned()
    };
    let mut event = match parse_body(&body, DEFAULT_MAX_BODY, &Default::default()) {
        Ok(body) => Envelope::event(key, body),
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(EXIT_USAGE);
        }
    };
    if let Some(session) = &args.session {
        event.meta.set_session(session);
    }
    if let Err(err) = event.validate(DEFAULT_MAX_BODY) {
        eprintln!("error: {err}");
        return Ok(EXIT_USAGE);
    }
    let host = args.host.open().await?;
    host.load_dir(&args.host.handlers.handlers).await?;
    let reactors = host.reactors_for(&event);
    if reactors.is_empty() {
        eprintln!(
            "error: no reactor in {} subscribes to {key} (`pyou handlers` lists what each subscribes to)",
            args.host.handlers.handlers.display()
        );
        return Ok(EXIT_FAILURE);
    }
    let out = Arc::new(Collector::new());
    let mut failed = false;
    for domain in &reactors {
        if let Reacted::Failed(err) = host.react(domain, &event, out.as_ref()).await {
            eprintln!("error: reactor {domain}: {}", serde_json::to_string(&err)?);
            failed = true;
        }
    }
    for command in out.take() {
        println!("{command}");
    }
    Ok(if failed { EXIT_FAILURE } else { 0 })
}
