//! `pyou events`: the event stream as the audit trail. `tail` prints
//! events live (from RabbitMQ, or from a gateway's WebSocket follow feed);
//! `query` prints, from the event log (`--event-log` of `pyou serve` and
//! `pyou host`), everything one command caused.

mod query;
mod tail;

/// Arguments of `pyou events`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Print events as they happen, one JSON line each, filtered by
    /// session, correlation and routing-key pattern.
    Tail(tail::Args),
    /// Print everything a command caused, in order, from the event log:
    /// its events, the commands reactors sent for them, their events, ….
    Query(query::Args),
}

/// Runs `tail` or `query`.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    match args.what {
        What::Tail(args) => tail::run(args).await,
        What::Query(args) => query::run(args).await,
    }
}
