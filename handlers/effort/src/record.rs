//! Applying one thread event to the read model.

use parallel_you_sdk::{CommandToSend, Ctx, CtxKind, Delivered, Error, ReactorCtx};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::model::{self, delta, run_id, Day, EndReason, Fact, Run, ThreadEvent, Total};

pub(crate) const RUNS: &str = "runs";
pub(crate) const TOTALS: &str = "totals";
pub(crate) const DAYS: &str = "days";

/// The store as the read model uses it: documents read with their version
/// and written only over that version (0: only if absent). The host's store
/// in the component, a map in the tests.
pub(crate) trait Docs {
    fn read<T: DeserializeOwned>(&self, coll: &str, id: &str) -> Result<Option<(T, u64)>, Error>;
    fn write<T: Serialize>(
        &self,
        coll: &str,
        id: &str,
        value: &T,
        version: u64,
    ) -> Result<(), Error>;
    /// (id, document) of those matching a store filter, ordered by id.
    fn find<T: DeserializeOwned>(
        &self,
        coll: &str,
        filter: Value,
    ) -> Result<Vec<(String, T)>, Error>;
}

impl<K: CtxKind> Docs for Ctx<K> {
    fn read<T: DeserializeOwned>(&self, coll: &str, id: &str) -> Result<Option<(T, u64)>, Error> {
        Ok(self
            .collection::<T>(coll)
            .get(id)?
            .map(|doc| (doc.value, doc.version)))
    }

    fn write<T: Serialize>(
        &self,
        coll: &str,
        id: &str,
        value: &T,
        version: u64,
    ) -> Result<(), Error> {
        self.collection::<T>(coll).put(id, value, Some(version))?;
        Ok(())
    }

    fn find<T: DeserializeOwned>(
        &self,
        coll: &str,
        filter: Value,
    ) -> Result<Vec<(String, T)>, Error> {
        Ok(self
            .collection::<T>(coll)
            .list(filter)?
            .into_iter()
            .map(|doc| (doc.id, doc.value))
            .collect())
    }
}

/// The reactor function for one kind of fact: `on("thread.parked",
/// records(Fact::Ended(EndReason::Parked)))`.
pub(crate) fn records(
    fact: Fact,
) -> impl Fn(&ReactorCtx, Delivered<ThreadEvent>) -> Result<Vec<CommandToSend>, Error> {
    move |ctx, ev| {
        match record(ctx, &ev.body, fact, ev.timestamp_ms())? {
            Some(what) => ctx.info(what),
            None => ctx.debug(format!("{}: nothing new", ev.routing_key())),
        }
        Ok(vec![])
    }
}

/// Adds what the event says about its thread's run, and moves the totals
/// by the difference it makes. Every write is conditional on the version
/// read, so two hosts on the same thread at once conflict (and the event
/// is retried) instead of losing an update; a duplicate event changes
/// nothing.
pub(crate) fn record(
    store: &impl Docs,
    t: &ThreadEvent,
    fact: Fact,
    at_ms: u64,
) -> Result<Option<String>, Error> {
    t.check()?;
    if t.run == 0 {
        // Never started (parked or blocked from `ready`): no run to count.
        return Ok(None);
    }
    let running = t.state.as_deref() == Some("running");
    if matches!(fact, Fact::Ended(EndReason::Deleted) | Fact::Resumed) && !running {
        // Only a running thread's deletion ends a run, and only a restore
        // back to running resumes one (other restores move no time).
        return Ok(None);
    }
    let id = run_id(&t.id, t.run);
    let (mut run, version) = store
        .read::<Run>(RUNS, &id)?
        .unwrap_or_else(|| (Run::new(t), 0));
    let was_started = run.started_ms.is_some();
    if !run.observe(fact, at_ms) {
        return Ok(None);
    }
    let old = run.credited;
    run.credited = run.span();
    let d = delta(old, run.credited);
    store.write(RUNS, &id, &run, version)?;

    let started_now = !was_started && run.started_ms.is_some();
    let mut dims = vec![
        ("thread", run.thread_id.as_str()),
        ("energy", run.energy.as_str()),
    ];
    if let Some(saga) = &run.saga_id {
        dims.push(("saga", saga));
    }
    if let Some(sprint) = &run.sprint_id {
        dims.push(("sprint", sprint));
    }
    for (dim, key) in dims {
        if d.ms != 0 || started_now {
            add_total(store, dim, key, d.ms, started_now, t, &run)?;
        }
    }
    for (day, ms) in &d.days {
        add_day(store, day, &run.energy, *ms)?;
    }
    Ok(Some(format!(
        "{id}: {} ms credited ({:+} ms)",
        run.credited.map_or(0, model::Span::ms),
        d.ms
    )))
}

/// Moves one total by `ms`. A thread's total also keeps the thread's saga,
/// sprint and band as this event has them; a saga's and a sprint's keep
/// the time per thread and per band within them (the run's attribution,
/// so a story moved to another sprint keeps its earlier runs' time where
/// it was spent).
fn add_total(
    store: &impl Docs,
    dim: &str,
    key: &str,
    ms: i64,
    new_run: bool,
    t: &ThreadEvent,
    run: &Run,
) -> Result<(), Error> {
    let id = format!("{dim}:{key}");
    let (mut total, version) = store.read::<Total>(TOTALS, &id)?.unwrap_or_else(|| {
        let fresh = Total {
            dim: dim.to_owned(),
            key: key.to_owned(),
            ..Total::default()
        };
        (fresh, 0)
    });
    total.ms = model::add(total.ms, ms);
    total.runs += u64::from(new_run);
    match dim {
        "thread" => {
            total.saga_id.clone_from(&t.saga_id);
            total.sprint_id.clone_from(&t.sprint_id);
            total.energy = Some(t.band().to_owned());
        }
        "saga" | "sprint" => {
            let per_thread = total.by_thread.entry(run.thread_id.clone()).or_default();
            *per_thread = model::add(*per_thread, ms);
            let per_band = total.by_energy.entry(run.energy.clone()).or_default();
            *per_band = model::add(*per_band, ms);
        }
        _ => {}
    }
    store.write(TOTALS, &id, &total, version)
}

fn add_day(store: &impl Docs, day: &str, band: &str, ms: i64) -> Result<(), Error> {
    let (mut doc, version) = store.read::<Day>(DAYS, day)?.unwrap_or_else(|| {
        let fresh = Day {
            day: day.to_owned(),
            ..Day::default()
        };
        (fresh, 0)
    });
    doc.ms = model::add(doc.ms, ms);
    let by_band = doc.by_energy.entry(band.to_owned()).or_default();
    *by_band = model::add(*by_band, ms);
    store.write(DAYS, day, &doc, version)
}
