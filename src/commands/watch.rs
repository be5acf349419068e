//! `pyou watch`: print a session's events from a running gateway, one JSON
//! line each, as they arrive.

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// Arguments of `pyou watch`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The gateway's address.
    #[arg(long, env = "PYOU_URL", default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// The session whose events to print.
    #[arg(long)]
    session: String,
    /// Stop after this many events (default: run until the gateway closes).
    #[arg(long)]
    count: Option<usize>,
}

/// Connects and prints events until the socket closes or `--count` is reached.
pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    parallel_you_core::names::check_session_id(&args.session)?;
    let url = format!(
        "{}/ws?session={}",
        args.url.trim_end_matches('/'),
        args.session
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e} (is `pyou serve` running?)"))?;
    eprintln!("watching session {} on {}", args.session, args.url);
    let mut seen = 0;
    while let Some(msg) = socket.next().await {
        match msg? {
            Message::Text(text) => {
                println!("{}", text.as_str());
                seen += 1;
                if args.count.is_some_and(|n| seen >= n) {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(0)
}
