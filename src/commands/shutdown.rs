//! Graceful shutdown, shared by the subcommands that serve.

use std::time::Duration;

/// How long shutdown waits for commands and requests in flight.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Stops watching the handlers folder, then lets the commands in flight
/// finish (up to [`GRACE`]).
pub(crate) async fn stop_host(
    serving: parallel_you_host::host::Serving,
    watching: Option<parallel_you_host::Watching>,
) {
    if let Some(watching) = watching {
        watching.stop().await;
    }
    if !serving.shutdown(GRACE).await {
        eprintln!("warning: some commands were still running after {GRACE:?}");
    }
    eprintln!("pyou stopped");
}
