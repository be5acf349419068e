//! `pyou dlq`: the events reactors gave up on (dead letters), kept in the
//! store: list them, show one, replay one once its reactor is fixed, or
//! drop one.

use clap::Subcommand;

use super::args::store::StoreArgs;
use super::EXIT_FAILURE;
use parallel_you_host::dead_letter::{self, DeadLetter};
use parallel_you_host::timers::{Clock, SystemClock};

/// Arguments of `pyou dlq`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou dlq list --data data\n  \
    pyou dlq show rx-tally-0123… \n  \
    pyou dlq replay rx-tally-0123…   # a serving host delivers it to its reactor\n  \
    pyou dlq drop rx-tally-0123…")]
pub(crate) struct Args {
    #[command(flatten)]
    data: StoreArgs,
    /// Print JSON instead of lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Action,
}

/// What to do with the dead letters.
#[derive(Debug, Subcommand)]
enum Action {
    /// List the dead letters: id, reactor, event, why.
    List {
        /// Most to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter, its event included.
    Show {
        /// Its id, as `list` shows it.
        id: String,
    },
    /// Send a dead letter's event back to its reactor (a serving host
    /// delivers it within a moment) and remove it from the list.
    Replay {
        /// Its id, as `list` shows it.
        id: String,
    },
    /// Remove a dead letter for good.
    Drop {
        /// Its id, as `list` shows it.
        id: String,
    },
}

/// Runs the action; exits 1 when the dead letter named does not exist.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let store = args.data.open().await?;
    let missing = |id: &str| {
        eprintln!("error: no dead letter {id:?}; `pyou dlq list` shows them");
        Ok(EXIT_FAILURE)
    };
    match args.action {
        Action::List { limit } => {
            let letters = dead_letter::list(store.as_ref(), limit).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                for l in &letters {
                    print_line(l);
                }
            }
            Ok(0)
        }
        Action::Show { id } => match dead_letter::show(store.as_ref(), &id).await? {
            Some(l) => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&l)?);
                } else {
                    print_line(&l);
                    println!("  tries: {}", l.tries);
                    println!("  event: {}", l.event);
                }
                Ok(0)
            }
            None => missing(&id),
        },
        Action::Replay { id } => {
            match dead_letter::replay(store.as_ref(), &SystemClock as &dyn Clock, &id).await? {
                Some(l) => {
                    println!(
                        "replaying {id}: {} ({}) goes back to reactor {:?}",
                        l.routing_key, l.message_id, l.reactor
                    );
                    Ok(0)
                }
                None => missing(&id),
            }
        }
        Action::Drop { id } => {
            if dead_letter::drop_letter(store.as_ref(), &id).await? {
                println!("dropped {id}");
                Ok(0)
            } else {
                missing(&id)
            }
        }
    }
}

/// `id  reactor  routing_key (message id)  code: reason`.
fn print_line(l: &DeadLetter) {
    println!(
        "{}  {}  {} ({})  {}: {}",
        l.id, l.reactor, l.routing_key, l.message_id, l.code, l.reason
    );
}
