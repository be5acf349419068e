//! Budgets per command (issue 18): what one command may make the host hold
//! (event bytes, store reads and writes, pending timers) has a bound, and
//! past it the command gets a clear error and the host keeps serving.

use std::time::Duration;

use std::sync::Arc;

use crate::common::{body, call, cmd, host_with, host_with_limits, last_error, test_limits};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::store::filter::DEFAULT_MAX_BYTES;
use parallel_you_core::store::UnitLimits;
use parallel_you_core::MemoryStore;
use parallel_you_host::{Host, Limits};

fn keys(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.meta.routing_key.as_str()).collect()
}

fn message(event: &Envelope) -> String {
    body(event)["message"].as_str().unwrap_or("").to_owned()
}

/// A host for the tests that move megabytes: the debug build's JSON checks
/// of 4 MB documents take longer than the quick tests' deadline.
async fn roomy() -> (Arc<Host>, tempfile::TempDir) {
    let limits = Limits {
        deadline: Duration::from_secs(20),
        ..test_limits()
    };
    host_with_limits(&["flood"], Arc::new(MemoryStore::new()), limits).await
}

async fn still_serves(host: &Host) {
    let ok = call(host, cmd("flood.ok", "{}")).await;
    assert_eq!(keys(&ok), ["flood.fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_one_command_are_capped_in_total_bytes() {
    let (host, _dir) = roomy().await;
    let events = call(&host, cmd("flood.heavy", "{}")).await;
    // Stopped at the cap (17 events in), not at its deadline.
    assert_eq!(
        keys(&events),
        vec!["flood.error"],
        "one error event, none of the 1 MiB ones"
    );
    assert_eq!(last_error(&events).as_deref(), Some("invalid_event"));
    let cap = Limits::default().max_event_bytes;
    assert!(
        message(&events[0]).contains(&cap.to_string()),
        "{}",
        message(&events[0])
    );
    still_serves(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_past_its_byte_budget_is_an_error_the_guest_sees() {
    let (host, _dir) = roomy().await;
    // Five documents of ~4 MB: 20 MB, past one list's 16 MiB.
    let filled = call(&host, cmd("flood.fill", r#"{"from":0,"count":5}"#)).await;
    assert_eq!(keys(&filled), vec!["flood.fine"], "{filled:?}");
    let listed = call(&host, cmd("flood.hoard", "{}")).await;
    assert_eq!(keys(&listed), vec!["flood.error"], "{listed:?}");
    assert!(
        message(&listed[0]).contains(&DEFAULT_MAX_BYTES.to_string()),
        "{}",
        message(&listed[0])
    );
    still_serves(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_a_commands_budget_are_refused_and_none_is_kept() {
    let (host, _dir) = roomy().await;
    // Nine documents of ~4 MB: 36 MB, past the 32 MiB a command may write.
    let refused = call(&host, cmd("flood.fill", r#"{"from":0,"count":9}"#)).await;
    assert_eq!(keys(&refused), vec!["flood.error"], "{refused:?}");
    let cap = UnitLimits::default().max_write_bytes;
    assert!(
        message(&refused[0]).contains(&cap.to_string()),
        "{}",
        message(&refused[0])
    );
    let filled = call(&host, cmd("flood.fill", r#"{"from":100,"count":2}"#)).await;
    assert_eq!(keys(&filled), vec!["flood.fine"]);
    let listed = call(&host, cmd("flood.hoard", "{}")).await;
    assert_eq!(
        body(&listed[0])["count"],
        2,
        "the refused command kept nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timers_are_capped_per_domain() {
    let (host, _dir) = host_with(&["flood"]).await;
    let cap = UnitLimits::default().max_pending_timers;
    let per_command = 1000;
    for _ in 0..cap / per_command {
        let body = format!(r#"{{"count":{per_command}}}"#);
        let events = call(&host, cmd("flood.timers", &body)).await;
        assert_eq!(keys(&events), vec!["flood.fine"], "{events:?}");
    }
    assert_eq!(host.store().pending_timers("flood").await, Ok(cap));
    let refused = call(&host, cmd("flood.timers", r#"{"count":1}"#)).await;
    assert_eq!(keys(&refused), vec!["flood.error"], "{refused:?}");
    assert!(
        message(&refused[0]).contains(&format!("limit is {cap}")),
        "{}",
        message(&refused[0])
    );
    assert_eq!(
        host.store().pending_timers("flood").await,
        Ok(cap),
        "none more"
    );
    still_serves(&host).await;
}
