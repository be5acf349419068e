//! `pyou events query --correlation C`: the trail of one command, from the
//! event log.

use parallel_you_host::event_log::{trail, MAX_TRAIL};

use super::super::args::event_log::LogPlace;
use super::super::args::store::StoreArgs;
use super::super::{EXIT_FAILURE, EXIT_USAGE};

/// Arguments of `pyou events query`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou events query --correlation 01KAR…\n  \
    pyou events query --correlation 01KAR… --event-log /var/log/pyou --json")]
pub(crate) struct Args {
    /// The correlation id of the command (what `POST /api/…` answered).
    #[arg(long)]
    correlation: String,
    /// Where the log is, as given to `pyou serve --event-log`: `store` (the
    /// store of --data / --store) or the folder.
    #[arg(
        long,
        env = "PYOU_EVENT_LOG",
        default_value = "store",
        value_name = "store|DIR"
    )]
    event_log: String,
    #[command(flatten)]
    store: StoreArgs,
    /// One JSON line per message (the envelope, with `"level"`: 0 the
    /// command, 1 what it caused, …) instead of lines for people.
    #[arg(long)]
    json: bool,
}

/// Prints the trail, oldest first. Exits 1 when the log holds nothing of
/// the command.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    if let Err(err) = parallel_you_core::names::check_message_id("--correlation", &args.correlation)
    {
        eprintln!("error: {err}");
        return Ok(EXIT_USAGE);
    }
    let place = LogPlace::parse(&args.event_log);
    if let LogPlace::Dir(dir) = &place {
        if !dir.is_dir() {
            anyhow::bail!(
                "{} is not a folder: give --event-log the folder `pyou serve --event-log` wrote, or `store`",
                dir.display()
            );
        }
    }
    let store = args.store.open().await?;
    let sink = place.open(store).await?;
    let found = trail(sink.as_ref(), &args.correlation).await?;
    if found.messages.is_empty() {
        eprintln!(
            "nothing in the event log ({}) for correlation {}: was the command sent to a \
             `pyou serve` or `pyou host` started with --event-log?",
            args.event_log, args.correlation
        );
        return Ok(EXIT_FAILURE);
    }
    for (level, message) in &found.messages {
        if args.json {
            let mut value = serde_json::to_value(message)?;
            value["level"] = (*level).into();
            println!("{value}");
        } else {
            let m = &message.meta;
            let kind = match m.kind {
                parallel_you_core::envelope::Kind::Command => "command",
                parallel_you_core::envelope::Kind::Event => "event  ",
            };
            let mut body = message.body.get().to_owned();
            if body.len() > 120 {
                let cut = (0..=117)
                    .rev()
                    .find(|&i| body.is_char_boundary(i))
                    .unwrap_or(0);
                body.truncate(cut);
                body.push('…');
            }
            println!(
                "{}  {}{kind} {}  {}",
                m.timestamp,
                "  ".repeat(*level),
                m.routing_key,
                body
            );
        }
    }
    if found.truncated {
        eprintln!("(only the first {MAX_TRAIL} messages, or 64 levels of causes)");
    }
    Ok(0)
}
