//! Durable timers: commands a handler asked to have delivered later.
//!
//! Timers are documents in the store under the host's reserved domain, so
//! they survive restarts and are shared by every host on a shared store. A
//! serving host polls for due timers, sends each one's command on the bus and
//! then deletes it. The command's `message_id` is derived from the timer id,
//! so a timer sent twice (a crash between send and delete, two hosts racing)
//! is one command to the idempotency check, never two.
//!
//! Scheduling (the sandbox's `scheduler` import) and firing ([`TimerPump`])
//! read the time from the host's one [`Clock`].

mod clock;
mod pump;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use parallel_you_core::envelope::{self, Envelope, Kind, Meta};
use parallel_you_core::names::{check_routing_key, domain_of};
use parallel_you_core::store::{Filter, Store, StoreError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use pump::TimerPump;

/// The reserved domain timers are stored under; no handler can claim it.
pub const DOMAIN: &str = "pyou";
/// The collection of pending timers.
pub const COLLECTION: &str = "timers";
/// The longest delay a handler may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// How often a serving host looks for due timers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Most timers fired per poll.
const BATCH: usize = 256;

/// A pending timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The domain that scheduled it (only it may cancel it).
    pub domain: String,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_ms: u64,
    /// The command to deliver.
    pub routing_key: String,
    /// Its body, JSON text.
    pub body: String,
    /// The session of the command that scheduled it.
    pub session_id: Option<String>,
    /// The reply channel of the command that scheduled it.
    pub reply_channel: Option<String>,
    /// The correlation id of the command that scheduled it.
    pub causation_id: String,
}

/// Stores a timer for `domain`, scheduled by the command `cause`, due
/// `delay_ms` after `clock`'s now; returns its id.
pub async fn schedule(
    store: &dyn Store,
    clock: &dyn Clock,
    domain: &str,
    cause: &Meta,
    delay_ms: u64,
    routing_key: &str,
    body: &str,
) -> Result<String, StoreError> {
    check_routing_key(routing_key)?;
    if domain_of(routing_key) != domain {
        return Err(StoreError::Invalid(format!(
            "a handler may only schedule commands of its own domain {domain:?}, not {routing_key:?}"
        )));
    }
    if Duration::from_millis(delay_ms) > MAX_DELAY {
        return Err(StoreError::Invalid(format!(
            "a delay of {delay_ms} ms is longer than the limit of {} days",
            MAX_DELAY.as_secs() / 86_400
        )));
    }
    let body = envelope::parse_body(body, envelope::DEFAULT_MAX_BODY, &Default::default())
        .map_err(|e| StoreError::Invalid(e.reason))?;
    let timer = Timer {
        domain: domain.to_owned(),
        due_ms: clock.now_ms().saturating_add(delay_ms),
        routing_key: routing_key.to_owned(),
        body: body.get().to_owned(),
        session_id: cause.session_id.clone(),
        reply_channel: cause.reply_channel.clone(),
        causation_id: cause.correlation_id.clone(),
    };
    let id = envelope::new_id();
    let json = serde_json::to_string(&timer)
        .map_err(|e| StoreError::Invalid(format!("cannot encode the timer: {e}")))?;
    store
        .upsert(DOMAIN, COLLECTION, &id, &json, Some(0))
        .await?;
    Ok(id)
}

/// Cancels a timer of `domain`; true if it was pending. Another domain's
/// timer is treated as absent.
pub async fn cancel(store: &dyn Store, domain: &str, id: &str) -> Result<bool, StoreError> {
    let Some(doc) = store.get(DOMAIN, COLLECTION, id).await? else {
        return Ok(false);
    };
    match serde_json::from_str::<Timer>(&doc.json) {
        Ok(timer) if timer.domain == domain => store.delete(DOMAIN, COLLECTION, id).await,
        _ => Ok(false),
    }
}

/// Timers due at `now_ms`, earliest first, with their ids.
pub async fn due(store: &dyn Store, now_ms: u64) -> Result<Vec<(String, Timer)>, StoreError> {
    let filter = Filter::parse(&format!(
        r#"{{"due_ms": {{"$lte": {now_ms}}}, "$limit": {BATCH}}}"#
    ))?;
    let mut due: Vec<(String, Timer)> = store
        .list(DOMAIN, COLLECTION, &filter)
        .await?
        .into_iter()
        .filter_map(|doc| {
            let timer = serde_json::from_str::<Timer>(&doc.json);
            if let Err(err) = &timer {
                tracing::error!(id = %doc.id, error = %err, "unreadable timer skipped");
            }
            timer.ok().map(|t| (doc.id, t))
        })
        .collect();
    due.sort_by_key(|(_, t)| t.due_ms);
    Ok(due)
}

impl Timer {
    /// The command this timer delivers. Its message id is derived from the
    /// timer id, so delivering it twice is one command.
    pub fn command(&self, id: &str) -> Result<Envelope, envelope::EnvelopeError> {
        let body = envelope::parse_body(&self.body, usize::MAX, &Default::default())?;
        Ok(Envelope {
            meta: Meta {
                message_id: format!("timer-{id}"),
                ..Meta::new(Kind::Command, &self.routing_key).caused_by(
                    Some(self.causation_id.clone()),
                    self.session_id.clone(),
                    self.reply_channel.clone(),
                )
            },
            body,
        })
    }
}
