//! `pyou handlers`: what a handlers folder would serve, or what a running
//! host serves (through its gateway's `GET /handlers`).

use std::sync::Arc;

use anyhow::Context as _;
use parallel_you_core::HandlerStatus;
use parallel_you_core::MemoryStore;
use parallel_you_host::Host;

use super::{CacheArgs, HandlersDir, LimitArgs, EXIT_FAILURE};

/// Arguments of `pyou handlers`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    pyou handlers --handlers handlers/dist\n  \
    pyou handlers --gateway http://127.0.0.1:8080")]
pub(crate) struct Args {
    #[command(flatten)]
    handlers: HandlersDir,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// Ask a running `pyou serve` (its gateway's address) what it serves
    /// now, instead of loading the folder here.
    #[arg(long, value_name = "URL", env = "PYOU_GATEWAY")]
    gateway: Option<String>,
    /// Print one JSON array of `{"file", "domain", "version", "sha256",
    /// "loaded_at", "load_ms", "from_cache", "routing_keys", "kind",
    /// "reactor": {"subscribes", "sends", "queries"} (reactors only),
    /// "grants": {"file", "http_allow", …} (when it has a grants file), "error"}`.
    #[arg(long)]
    json: bool,
}

/// Lists each component, or why it failed. Exits 1 when a file failed to
/// load.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let (status, source) = match &args.gateway {
        Some(url) => (from_gateway(url).await?, url.clone()),
        None => (
            from_folder(&args).await?,
            args.handlers.handlers.display().to_string(),
        ),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else if status.is_empty() {
        println!("no components (*.wasm) in {source}");
    } else {
        print_table(&status);
    }
    Ok(if status.iter().any(|s| s.error.is_some()) {
        EXIT_FAILURE
    } else {
        0
    })
}

async fn from_folder(args: &Args) -> anyhow::Result<Vec<HandlerStatus>> {
    // Listing touches no documents: an in-memory store is enough.
    let host = Arc::new(Host::with_cache(
        args.limits.host_config(),
        Arc::new(MemoryStore::new()),
        args.cache.dir(std::path::Path::new("data")).as_deref(),
    )?);
    let dir = &args.handlers.handlers;
    let load = host.load_dir(dir);
    tokio::pin!(load);
    // A cold cache means compiling every component (tens of seconds for
    // the Python and JavaScript ones): say so rather than sit silent.
    tokio::select! {
        loaded = &mut load => loaded?,
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
            eprintln!(
                "pyou: compiling the components in {} (once: later runs read the compile cache)…",
                dir.display()
            );
            load.await?
        }
    }
    Ok(host.status())
}

async fn from_gateway(url: &str) -> anyhow::Result<Vec<HandlerStatus>> {
    let url = format!("{}/handlers", url.trim_end_matches('/'));
    let res = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("cannot reach {url} (is `pyou serve` running?)"))?;
    let code = res.status();
    let text = res.text().await?;
    if !code.is_success() {
        anyhow::bail!("{url} answered {code}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{url} answered something else: {text}"))
}

/// One row per component (and one more for a newer version that failed),
/// in aligned columns: file, component (`domain version+sha`), kind,
/// status, and what it serves or why it failed.
fn print_table(status: &[HandlerStatus]) {
    let mut rows = vec![[
        "FILE".to_owned(),
        "COMPONENT".to_owned(),
        "KIND".to_owned(),
        "STATUS".to_owned(),
        "SERVES".to_owned(),
    ]];
    for s in status {
        if let (Some(domain), Some(version)) = (&s.domain, &s.version) {
            let sha = s.sha256.as_deref().unwrap_or("");
            let sha = sha.get(..12).unwrap_or(sha);
            let cached = if s.from_cache == Some(true) {
                ", cached"
            } else {
                ""
            };
            rows.push([
                s.file.clone(),
                format!("{domain} {version}+{sha}"),
                if s.reactor.is_some() {
                    "reactor"
                } else {
                    "handler"
                }
                .to_owned(),
                format!(
                    "loaded {} ({} ms{cached})",
                    s.loaded_at.as_deref().unwrap_or("?"),
                    s.load_ms.unwrap_or(0)
                ),
                serves(s),
            ]);
        }
        if let Some(g) = &s.grants {
            rows.push([
                s.file.clone(),
                "-".into(),
                "-".into(),
                "granted".into(),
                grants_summary(g),
            ]);
        }
        if let Some(err) = &s.error {
            let what = if s.domain.is_some() {
                "NEWER VERSION FAILED (the one above serves)"
            } else {
                "FAILED"
            };
            rows.push([
                s.file.clone(),
                "-".into(),
                "-".into(),
                what.into(),
                err.clone(),
            ]);
        }
    }
    let mut widths = [0; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&row[4]);
        println!("{}", line.trim_end());
    }
}

/// What a component serves: its routing keys, or for a reactor what it
/// subscribes to, sends and answers.
fn serves(s: &HandlerStatus) -> String {
    let Some(r) = &s.reactor else {
        return s.routing_keys.join(", ");
    };
    let or = |list: Vec<&str>, none: &str| {
        if list.is_empty() {
            none.to_owned()
        } else {
            list.join(", ")
        }
    };
    format!(
        "subscribes {}; sends {}; queries {}",
        r.subscribes.join(", "),
        or(r.sends.iter().map(String::as_str).collect(), "nothing"),
        or(r.queries.iter().map(|q| q.name.as_str()).collect(), "none")
    )
}

/// `grants (grants file): http …; config …; secrets …; limits …`: what
/// the operator granted; secrets by name only.
fn grants_summary(g: &parallel_you_core::host_info::GrantsInfo) -> String {
    let mut parts = Vec::new();
    if !g.http_allow.is_empty() {
        let mut http = format!("http {}", g.http_allow.join(", "));
        if !g.http_allow_private.is_empty() {
            http += &format!(" (internal: {})", g.http_allow_private.join(", "));
        }
        if let (Some(t), Some(b)) = (g.http_timeout_ms, g.http_max_response_bytes) {
            http += &format!(" (timeout {t} ms, answers up to {b} bytes)");
        }
        if let Some(ca) = &g.http_ca_file {
            http += &format!(" (also trusting the roots of {ca})");
        }
        parts.push(http);
    }
    if !g.config.is_empty() {
        parts.push(format!("config {}", g.config.join(", ")));
    }
    if !g.secrets.is_empty() {
        parts.push(format!("secrets {}", g.secrets.join(", ")));
    }
    let limits: Vec<String> = [
        g.deadline_ms.map(|d| format!("deadline {d} ms")),
        g.memory_mib.map(|m| format!("memory {m} MiB")),
        g.instances.as_ref().map(|i| format!("instances {i}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !limits.is_empty() {
        parts.push(limits.join(", "));
    }
    if parts.is_empty() {
        parts.push("nothing".to_owned());
    }
    format!("grants ({}): {}", g.file, parts.join("; "))
}
