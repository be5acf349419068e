//! The read model's documents and how a run's facts become time: pure
//! code, no host calls, so it is unit-tested natively.

use std::collections::BTreeMap;

use parallel_you_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::day;

/// The most one run counts: a thread left running for longer than a month
/// was forgotten, not worked on. Also bounds the days one event touches
/// (a run's old and new days: at most 2 × 32 writes).
pub(crate) const MAX_RUN_MS: u64 = 31 * 86_400_000;
/// Most ends one run keeps (after its latest restore): past it the
/// latest are dropped. A run ends, is restored and ends again only as
/// often as sprint closes fail on it.
pub(crate) const MAX_ENDS: usize = 16;
/// The longest id (thread, saga, sprint) effort keeps, as the thread
/// domain allows.
const MAX_ID_LEN: usize = 128;

/// What effort reads from a thread event: the thread domain's events carry
/// the whole thread (`handlers/thread`, `model::Thread`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ThreadEvent {
    pub(crate) id: String,
    /// How many times it was started: a run's number. 0: never started.
    #[serde(default)]
    pub(crate) run: u64,
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) saga_id: Option<String>,
    #[serde(default)]
    pub(crate) sprint_id: Option<String>,
    #[serde(default)]
    pub(crate) energy: Option<String>,
}

impl ThreadEvent {
    /// Refuses ids that cannot be document ids here: the event is then
    /// retried and dead-lettered, to be looked at.
    pub(crate) fn check(&self) -> Result<(), Error> {
        check_id("id", &self.id)?;
        for (field, v) in [("saga_id", &self.saga_id), ("sprint_id", &self.sprint_id)] {
            if let Some(v) = v {
                check_id(field, v)?;
            }
        }
        Ok(())
    }

    /// The energy band, `none` for a thread without one; anything else
    /// than the thread domain's bands is `other`, so a bad event cannot
    /// invent documents.
    pub(crate) fn band(&self) -> &'static str {
        match self.energy.as_deref() {
            Some("deep") => "deep",
            Some("moderate") => "moderate",
            Some("light") => "light",
            None => "none",
            Some(_) => "other",
        }
    }
}

/// 1 to 128 bytes of `[A-Za-z0-9_-]`, like the thread domain's ids.
pub(crate) fn check_id(field: &str, id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "`{field}` must be 1 to {MAX_ID_LEN} characters of [A-Za-z0-9_-]"
        ))
        .with_context(json!({ "field": field })))
    }
}

/// What an event says about its thread's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fact {
    /// `thread.started`: the run began.
    Started,
    /// `thread.quantum.expired`: the run's quantum ran out; the thread is
    /// still running, so the run is counted up to here until it ends.
    Expired,
    /// The run ended.
    Ended(EndReason),
    /// `thread.restored` back to `running` (a failed sprint close putting
    /// back a story it had parked): the same run goes on, so the ends
    /// before this instant did not happen, and the time between counts.
    Resumed,
}

/// Which event ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EndReason {
    Parked,
    Blocked,
    Completed,
    /// Deleted while running.
    Deleted,
}

/// An end of a run: when, and by which event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct End {
    pub(crate) at_ms: u64,
    pub(crate) by: EndReason,
}

/// An interval `[from_ms, until_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Span {
    pub(crate) from_ms: u64,
    pub(crate) until_ms: u64,
}

impl Span {
    pub(crate) fn ms(self) -> u64 {
        self.until_ms.saturating_sub(self.from_ms)
    }
}

/// What effort knows of one run of one thread (collection `runs`, id
/// [`run_id`]).
///
/// Each fact keeps its earliest instant, so facts can arrive in any order
/// and any number of times: the run's time is a function of the set of
/// facts seen, and `credited` (what the totals hold for this run) moves to
/// it by a difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) thread_id: String,
    pub(crate) run: u64,
    pub(crate) saga_id: Option<String>,
    pub(crate) sprint_id: Option<String>,
    pub(crate) energy: String,
    pub(crate) started_ms: Option<u64>,
    pub(crate) expired_ms: Option<u64>,
    /// The run's end: the first of `ends` (kept with it for the queries).
    pub(crate) ended_ms: Option<u64>,
    pub(crate) ended_by: Option<EndReason>,
    /// The latest `thread.restored` back to running of this run.
    #[serde(default)]
    pub(crate) resumed_ms: Option<u64>,
    /// Every end seen after `resumed_ms`, earliest first (at most
    /// [`MAX_ENDS`]): a restore seen late voids those before it, and the
    /// next one becomes the end. Empty in documents from before restores
    /// counted, whose end is `ended_ms`.
    #[serde(default)]
    pub(crate) ends: Vec<End>,
    /// The interval this run has added to the totals so far.
    pub(crate) credited: Option<Span>,
}

/// `<thread>#<run>`, the run zero-padded so a thread's runs list in order.
pub(crate) fn run_id(thread_id: &str, run: u64) -> String {
    format!("{thread_id}#{run:020}")
}

impl Run {
    /// A run of which nothing is known yet, attributed to the saga, sprint
    /// and energy band of the thread as the first event seen has it.
    pub(crate) fn new(t: &ThreadEvent) -> Self {
        Run {
            thread_id: t.id.clone(),
            run: t.run,
            saga_id: t.saga_id.clone(),
            sprint_id: t.sprint_id.clone(),
            energy: t.band().to_owned(),
            started_ms: None,
            expired_ms: None,
            ended_ms: None,
            ended_by: None,
            resumed_ms: None,
            ends: Vec::new(),
            credited: None,
        }
    }

    /// Adds a fact seen at `at_ms`; false if it tells nothing new (a
    /// duplicate, an end before the latest restore, an older restore).
    pub(crate) fn observe(&mut self, fact: Fact, at_ms: u64) -> bool {
        let earlier = |known: Option<u64>| known.is_none_or(|k| at_ms < k);
        if self.ends.is_empty() {
            // A document from before `ends`: its one end.
            if let (Some(at_ms), Some(by)) = (self.ended_ms, self.ended_by) {
                self.ends.push(End { at_ms, by });
            }
        }
        match fact {
            Fact::Started if earlier(self.started_ms) => self.started_ms = Some(at_ms),
            Fact::Expired if earlier(self.expired_ms) => self.expired_ms = Some(at_ms),
            // A run ends at the first of the events that end it (a thread
            // blocked, unblocked and then parked ends its run when blocked),
            // unless a restore came after that one.
            Fact::Ended(by) => {
                if self.resumed_ms.is_some_and(|r| at_ms <= r)
                    || self.ends.iter().any(|e| e.at_ms == at_ms)
                {
                    return false;
                }
                let at = self.ends.partition_point(|e| e.at_ms < at_ms);
                if at >= MAX_ENDS {
                    return false;
                }
                self.ends.insert(at, End { at_ms, by });
                self.ends.truncate(MAX_ENDS);
            }
            Fact::Resumed if self.resumed_ms.is_none_or(|r| at_ms > r) => {
                self.resumed_ms = Some(at_ms);
                self.ends.retain(|e| e.at_ms > at_ms);
            }
            _ => return false,
        }
        let end = self.ends.first();
        self.ended_ms = end.map(|e| e.at_ms);
        self.ended_by = end.map(|e| e.by);
        true
    }

    /// The time the facts so far say the run took: from its start to its
    /// end, or to its quantum's expiry while it has not ended; nothing
    /// while it has neither. At most [`MAX_RUN_MS`].
    pub(crate) fn span(&self) -> Option<Span> {
        let from = self.started_ms?;
        let until = self.ended_ms.or(self.expired_ms)?;
        let until = until.max(from).min(from.saturating_add(MAX_RUN_MS));
        Some(Span {
            from_ms: from,
            until_ms: until,
        })
    }
}

/// How the totals change when a run's credited span moves from `old` to
/// `new`: in all, and per UTC day (days that do not change left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delta {
    pub(crate) ms: i64,
    pub(crate) days: Vec<(String, i64)>,
}

pub(crate) fn delta(old: Option<Span>, new: Option<Span>) -> Delta {
    let mut days: BTreeMap<String, i64> = BTreeMap::new();
    let mut total = 0i64;
    for (span, sign) in [(old, -1i64), (new, 1)] {
        let Some(span) = span else { continue };
        total += sign * signed(span.ms());
        for (d, ms) in day::split(span.from_ms, span.until_ms) {
            *days.entry(d).or_default() += sign * signed(ms);
        }
    }
    Delta {
        ms: total,
        days: days.into_iter().filter(|(_, ms)| *ms != 0).collect(),
    }
}

/// Spans are at most [`MAX_RUN_MS`] long, far inside `i64`.
fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Adds a signed amount to a total that never goes below zero.
pub(crate) fn add(total: u64, delta: i64) -> u64 {
    total.saturating_add_signed(delta)
}

/// Time spent on one thread, saga, sprint or energy band (collection
/// `totals`, id `<dim>:<key>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Total {
    pub(crate) dim: String,
    pub(crate) key: String,
    pub(crate) ms: u64,
    /// Runs whose start was seen.
    pub(crate) runs: u64,
    /// A thread's saga, sprint and band, as its latest event has them.
    #[serde(default)]
    pub(crate) saga_id: Option<String>,
    #[serde(default)]
    pub(crate) sprint_id: Option<String>,
    #[serde(default)]
    pub(crate) energy: Option<String>,
    /// A saga's or sprint's time per thread and per band (a saga has at
    /// most the thread domain's 10 000 children, so this stays well under
    /// the store's document size).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) by_thread: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) by_energy: BTreeMap<String, u64>,
}

/// Time spent on one UTC day (collection `days`, id the day).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Day {
    pub(crate) day: String,
    pub(crate) ms: u64,
    /// The same time per energy band.
    pub(crate) by_energy: BTreeMap<String, u64>,
}

/// `1h 05m`, `12m 30s`, `45s`: for people reading a query's answer.
pub(crate) fn human(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}
