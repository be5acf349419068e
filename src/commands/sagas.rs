//! `pyou sagas`: the instances of the sagas (reactors built with the SDK's
//! `saga` module, which answer the queries `saga_list` and `saga_show`):
//! list them by status, show one with its history, pending timer and
//! compensations, or retry one an operator must resume (a failed
//! compensation, or a parked instance a new version can read). Runs
//! in-process against the store; `retry` leaves a timer due now that a
//! serving host on the same store delivers to the saga.

use std::sync::Arc;

use clap::Subcommand;
use serde_json::{json, Value};

use super::{HostArgs, EXIT_FAILURE};
use parallel_you_host::timers::{deliver_to_reactor, SystemClock};
use parallel_you_host::Host;

/// The query every saga answers with its instances.
const LIST: &str = "saga_list";
/// The query every saga answers with one instance.
const SHOW: &str = "saga_show";

/// Arguments of `pyou sagas`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou sagas list\n  \
    pyou sagas list --saga sprintclose --status failed\n  \
    pyou sagas show 01KB…\n  \
    pyou sagas retry 01KB…   # a serving host on the same store resumes it")]
pub(crate) struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// The saga (its domain, e.g. `sprintclose`); without it, every saga in
    /// the handlers folder (each one loaded to ask it).
    #[arg(long, global = true)]
    saga: Option<String>,
    /// Print JSON instead of lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List instances: id, saga, status, step, when started.
    List {
        /// Only those of this status (running, compensating, completed,
        /// failed, parked).
        #[arg(long)]
        status: Option<String>,
        /// Most per saga.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one instance: its state, history, pending timer and the
    /// compensations that would run.
    Show {
        /// Its id, as `list` shows it.
        id: String,
    },
    /// Resume an instance an operator must: a compensation that failed
    /// every try, or a parked instance (once a version that reads it is
    /// deployed).
    Retry {
        /// Its id, as `list` shows it.
        id: String,
    },
}

pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let host = match &args.saga {
        Some(saga) => args.host.start_for_domain(saga).await?,
        None => {
            let host = args.host.open().await?;
            args.host.bring_online(&host).await;
            host
        }
    };
    let sagas = saga_domains(&host, args.saga.as_deref());
    if sagas.is_empty() {
        eprintln!(
            "pyou: no saga among the components of {} (a saga answers the query `{LIST}`)",
            args.host.handlers.handlers.display()
        );
        return Ok(EXIT_FAILURE);
    }
    match args.action {
        Action::List { status, limit } => {
            let mut params = json!({ "limit": limit.clamp(1, 500) });
            if let Some(s) = status {
                params["status"] = json!(s);
            }
            let mut all = Vec::new();
            for saga in &sagas {
                let answer = ask(&host, saga, LIST, &params).await?;
                for mut inst in answer["instances"].as_array().cloned().unwrap_or_default() {
                    inst["saga"] = json!(saga);
                    all.push(inst);
                }
            }
            if args.json {
                println!("{}", Value::Array(all));
            } else {
                for i in &all {
                    println!("{}", line(i));
                }
            }
            Ok(0)
        }
        Action::Show { id } => match find(&host, &sagas, &id).await? {
            Some((_, shown)) => {
                if args.json {
                    println!("{shown}");
                } else {
                    println!("{}", serde_json::to_string_pretty(&shown)?);
                }
                Ok(0)
            }
            None => not_found(&id),
        },
        Action::Retry { id } => {
            let Some((saga, shown)) = find(&host, &sagas, &id).await? else {
                return not_found(&id);
            };
            let session = shown["instance"]["session_id"].as_str();
            let timer = deliver_to_reactor(
                host.store().as_ref(),
                &SystemClock,
                &saga,
                &format!("{saga}.retry"),
                &json!({ "id": id }).to_string(),
                session,
            )
            .await?;
            let status = shown["instance"]["status"].as_str().unwrap_or("?");
            if args.json {
                println!(
                    "{}",
                    json!({ "saga": saga, "id": id, "timer_id": timer, "status": status })
                );
            } else {
                println!("{saga} {id}: retry sent (it was {status}); a serving host delivers it to the saga");
            }
            Ok(0)
        }
    }
}

/// The domains of the loaded reactors that answer `saga_list`.
fn saga_domains(host: &Host, only: Option<&str>) -> Vec<String> {
    let mut sagas: Vec<String> = host
        .registry()
        .handlers()
        .filter(|h| {
            h.manifest
                .reactor
                .as_ref()
                .is_some_and(|r| r.queries.iter().any(|q| q.name == LIST))
        })
        .map(|h| h.manifest.domain.clone())
        .filter(|d| only.is_none_or(|o| o == d))
        .collect();
    sagas.sort();
    sagas
}

async fn ask(host: &Arc<Host>, saga: &str, query: &str, params: &Value) -> anyhow::Result<Value> {
    match host.query(saga, query, &params.to_string()).await {
        Ok(text) => Ok(serde_json::from_str(&text)?),
        Err(e) => anyhow::bail!("{saga} {query}: {}: {}", e.code.as_str(), e.message),
    }
}

/// The saga holding instance `id`, and what `saga_show` says of it.
async fn find(
    host: &Arc<Host>,
    sagas: &[String],
    id: &str,
) -> anyhow::Result<Option<(String, Value)>> {
    for saga in sagas {
        match host
            .query(saga, SHOW, &json!({ "id": id }).to_string())
            .await
        {
            Ok(text) => return Ok(Some((saga.clone(), serde_json::from_str(&text)?))),
            Err(e) if e.code.as_str() == "not_found" => continue,
            Err(e) => anyhow::bail!("{saga} {SHOW}: {}: {}", e.code.as_str(), e.message),
        }
    }
    Ok(None)
}

fn not_found(id: &str) -> anyhow::Result<u8> {
    eprintln!("pyou: no saga instance {id:?}");
    Ok(EXIT_FAILURE)
}

/// `id  saga  status[ (stuck)]  step  started`.
fn line(i: &Value) -> String {
    let text = |k: &str| i[k].as_str().unwrap_or("-").to_owned();
    let stuck = if i["stuck"] == true { " (stuck)" } else { "" };
    let started = i["started_ms"]
        .as_u64()
        .map(|ms| {
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        })
        .unwrap_or_else(|| "-".into());
    format!(
        "{}  {}  {}{stuck}  step={}  started {started}",
        text("id"),
        text("saga"),
        text("status"),
        text("step")
    )
}
