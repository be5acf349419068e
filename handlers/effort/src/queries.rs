//! The queries: time per thread, saga, sprint, and per day with its
//! energy bands.

use std::collections::BTreeMap;

use parallel_you_sdk::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::day::is_day;
use crate::model::{check_id, human, Day, Run, Total};
use crate::record::{Docs, DAYS, RUNS, TOTALS};

/// Most runs `by_thread` lists and days `by_day` covers.
pub(crate) const MAX_RUNS: usize = 200;
pub(crate) const MAX_DAYS: usize = 366;

/// Parameters naming one thread, saga or sprint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ById {
    id: String,
}

/// A range of UTC days, both ends included, either open.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DayRange {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

pub(crate) const BY_ID_SCHEMA: &str = r#"{"type":"object","required":["id"],"additionalProperties":false,"properties":{"id":{"type":"string","pattern":"^[A-Za-z0-9_-]{1,128}$"}}}"#;
pub(crate) const DAY_RANGE_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"properties":{"from":{"type":"string","pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},"to":{"type":"string","pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}}"#;

/// One thread: its time, runs, saga, sprint, band, and its runs one by
/// one (the open one with `ended_by: null`).
pub(crate) fn by_thread<D: Docs>(store: &D, p: ById) -> Result<Value, Error> {
    check_id("id", &p.id)?;
    let total = require(store, "thread", &p.id)?;
    let runs: Vec<(String, Run)> =
        store.find(RUNS, json!({ "thread_id": p.id, "$limit": MAX_RUNS + 1 }))?;
    let more = runs.len() > MAX_RUNS;
    let runs: Vec<Value> = runs
        .iter()
        .take(MAX_RUNS)
        .filter(|(_, r)| r.started_ms.is_some())
        .map(|(_, r)| {
            let ms = r.credited.map_or(0, |s| s.ms());
            json!({
                "run": r.run,
                "started_ms": r.started_ms,
                "ended_ms": r.ended_ms,
                "ended_by": r.ended_by,
                "quantum_expired_ms": r.expired_ms,
                "ms": ms,
                "human": human(ms),
            })
        })
        .collect();
    Ok(json!({
        "thread_id": p.id,
        "ms": total.ms,
        "human": human(total.ms),
        "runs": total.runs,
        "saga_id": total.saga_id,
        "sprint_id": total.sprint_id,
        "energy": total.energy,
        "run_list": runs,
        "more_runs": more,
    }))
}

/// One saga: its time, per thread (most first) and per band.
pub(crate) fn by_saga<D: Docs>(store: &D, p: ById) -> Result<Value, Error> {
    group(store, "saga", p)
}

/// One sprint: its time, per story (most first) and per band: the time
/// spent while each story was planned in it.
pub(crate) fn by_sprint<D: Docs>(store: &D, p: ById) -> Result<Value, Error> {
    group(store, "sprint", p)
}

fn group<D: Docs>(store: &D, dim: &str, p: ById) -> Result<Value, Error> {
    check_id("id", &p.id)?;
    let total = require(store, dim, &p.id)?;
    let mut threads: Vec<(&String, &u64)> = total.by_thread.iter().collect();
    threads.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let list: Vec<Value> = threads
        .iter()
        .map(|(id, ms)| json!({ "id": id, "ms": ms, "human": human(**ms) }))
        .collect();
    Ok(json!({
        format!("{dim}_id"): p.id,
        "ms": total.ms,
        "human": human(total.ms),
        "runs": total.runs,
        "by_energy": total.by_energy,
        "threads": list,
    }))
}

/// The days in `[from, to]` with time spent, their total, and the time per
/// energy band over them.
pub(crate) fn by_day<D: Docs>(store: &D, p: DayRange) -> Result<Value, Error> {
    let mut range = serde_json::Map::new();
    for (name, bound, op) in [("from", &p.from, "$gte"), ("to", &p.to, "$lte")] {
        if let Some(day) = bound {
            if !is_day(day) {
                return Err(Error::validation(format!(
                    "`{name}` must be a day as YYYY-MM-DD, not {day:?}"
                ))
                .with_context(json!({ name: day })));
            }
            range.insert(op.to_owned(), json!(day));
        }
    }
    if let (Some(from), Some(to)) = (&p.from, &p.to) {
        if from > to {
            return Err(Error::validation(format!(
                "`from` ({from}) is after `to` ({to})"
            )));
        }
    }
    let mut filter = json!({ "$limit": MAX_DAYS + 1 });
    if !range.is_empty() {
        filter["day"] = Value::Object(range);
    }
    let mut days: Vec<(String, Day)> = store.find(DAYS, filter)?;
    let more = days.len() > MAX_DAYS;
    days.truncate(MAX_DAYS);
    let mut ms = 0u64;
    let mut by_energy: BTreeMap<String, u64> = BTreeMap::new();
    for (_, d) in &days {
        ms += d.ms;
        for (band, t) in &d.by_energy {
            *by_energy.entry(band.clone()).or_default() += t;
        }
    }
    let list: Vec<Value> = days
        .iter()
        .filter(|(_, d)| d.ms > 0)
        .map(|(_, d)| json!({ "day": d.day, "ms": d.ms, "human": human(d.ms), "by_energy": d.by_energy }))
        .collect();
    Ok(json!({
        "from": p.from,
        "to": p.to,
        "ms": ms,
        "human": human(ms),
        "by_energy": by_energy,
        "days": list,
        "more_days": more,
    }))
}

fn require<D: Docs>(store: &D, dim: &str, id: &str) -> Result<Total, Error> {
    match store.read::<Total>(TOTALS, &format!("{dim}:{id}"))? {
        Some((total, _)) => Ok(total),
        None => Err(
            Error::not_found(format!("no time recorded for {dim} `{id}`"))
                .with_context(json!({ dim: id })),
        ),
    }
}
