//! `pyou dlq`: the events reactors gave up on (dead letters): list them,
//! show one, replay one once its reactor is fixed, or drop one. On
//! RabbitMQ (`--bus amqp://…`) they are kept in the broker's durable queue
//! `parallel_you.reactor_dead_letters`; on the in-process bus, in the store.

use clap::Subcommand;

use anyhow::Context as _;

use super::args::store::StoreArgs;
use super::EXIT_FAILURE;
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use parallel_you_host::dead_letter::{self, DeadLetter};
use parallel_you_host::timers::{Clock, SystemClock};

/// Arguments of `pyou dlq`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou dlq list --data data\n  \
    pyou dlq list --bus amqp://guest:guest@127.0.0.1:5672/%2f\n  \
    pyou dlq show rx-tally-0123… \n  \
    pyou dlq replay rx-tally-0123…   # a serving host delivers it to its reactor\n  \
    pyou dlq drop rx-tally-0123…")]
pub(crate) struct Args {
    #[command(flatten)]
    data: StoreArgs,
    /// The RabbitMQ broker whose dead-letter queue to manage (hosts on
    /// RabbitMQ keep dead letters there, not in the store); without it,
    /// the store's.
    #[arg(long = "bus", visible_alias = "amqp", env = "PYOU_BUS", global = true)]
    bus: Option<String>,
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

/// Where the dead letters are kept.
enum Letters {
    Store(std::sync::Arc<dyn parallel_you_core::Store>),
    Broker(AmqpBus),
}

impl Letters {
    async fn list(&self, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(match self {
            Letters::Store(s) => dead_letter::list(s.as_ref(), limit).await?,
            Letters::Broker(b) => b.dead_letters(limit).await?,
        })
    }

    async fn show(&self, id: &str) -> anyhow::Result<Option<DeadLetter>> {
        Ok(match self {
            Letters::Store(s) => dead_letter::show(s.as_ref(), id).await?,
            Letters::Broker(b) => b.dead_letter(id).await?,
        })
    }

    async fn replay(&self, id: &str) -> anyhow::Result<Option<DeadLetter>> {
        Ok(match self {
            Letters::Store(s) => {
                dead_letter::replay(s.as_ref(), &SystemClock as &dyn Clock, id).await?
            }
            Letters::Broker(b) => b.replay_dead_letter(id).await?,
        })
    }

    async fn drop_letter(&self, id: &str) -> anyhow::Result<bool> {
        Ok(match self {
            Letters::Store(s) => dead_letter::drop_letter(s.as_ref(), id).await?,
            Letters::Broker(b) => b.drop_dead_letter(id).await?,
        })
    }
}

/// Runs the action; exits 1 when the dead letter named does not exist.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let letters = match args.bus.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            let mut config = AmqpConfig::new(url);
            config.connection_name = format!("pyou dlq (pid {})", std::process::id());
            let bus = AmqpBus::connect(config)
                .await
                .context("connecting to RabbitMQ (--bus)")?;
            Letters::Broker(bus)
        }
        None => Letters::Store(args.data.open().await?),
    };
    let code = act(&letters, args.action, args.json).await;
    if let Letters::Broker(bus) = &letters {
        bus.close().await;
    }
    code
}

async fn act(letters: &Letters, action: Action, json: bool) -> anyhow::Result<u8> {
    let missing = |id: &str| {
        eprintln!("error: no dead letter {id:?}; `pyou dlq list` shows them");
        Ok(EXIT_FAILURE)
    };
    match action {
        Action::List { limit } => {
            let letters = letters.list(limit).await?;
            if json {
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
        Action::Show { id } => match letters.show(&id).await? {
            Some(l) => {
                if json {
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
        Action::Replay { id } => match letters.replay(&id).await? {
            Some(l) => {
                println!(
                    "replaying {id}: {} ({}) goes back to reactor {:?}",
                    l.routing_key, l.message_id, l.reactor
                );
                Ok(0)
            }
            None => missing(&id),
        },
        Action::Drop { id } => {
            if letters.drop_letter(&id).await? {
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
