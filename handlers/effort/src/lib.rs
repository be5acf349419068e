//! `effort`, a Parallel You reactor: a read model of the time actually
//! spent per thread, saga, sprint, energy band and UTC day, from the
//! thread domain's events (seed 000 §1's "dashboard to visualize time and
//! effort").
//!
//! A *run* of a story or task starts with `thread.started` and ends with
//! the first of `thread.parked`, `thread.blocked`, `thread.completed` and
//! `thread.deleted` (of a running thread) for the same run number (every
//! thread event carries the whole thread, its `run` included).
//! `thread.quantum.expired` leaves the thread running: the run is counted
//! up to the expiry until it ends. `thread.restored` back to `running` on
//! the same run (a failed sprint close putting back a story its saga had
//! parked) resumes the run: the ends before it are void, the time between
//! the park and the restore counts (the person was working; the close that
//! parked the story was undone), and the run ends at its next end. Instants are the events' meta
//! `timestamp-ms`. A run counts at most 31 days.
//!
//! Collections: `runs` (one per thread and run: the facts seen and the
//! span credited), `totals` (`thread:<id>`, `saga:<id>` and `sprint:<id>`
//! with the time per thread and band, `energy:<band>`), `days`
//! (`YYYY-MM-DD`, with the time per band). A run counts for the saga and
//! sprint its thread had when the run was first seen.
//! Facts keep their earliest instant and totals move by the difference a
//! fact makes to its run's span, so duplicate and out-of-order events
//! give the same totals as one delivery in order.
//!
//! Queries: `by_thread {id}`, `by_saga {id}`, `by_sprint {id}`,
//! `by_day {from?, to?}`.

mod day;
mod model;
mod queries;
mod record;

use parallel_you_sdk::{export_reactor, EventReactor, Reactor};

use model::{EndReason, Fact};
use queries::{by_day, by_saga, by_sprint, by_thread, BY_ID_SCHEMA, DAY_RANGE_SCHEMA};
use record::{records, DAYS, RUNS};

struct Effort;

impl EventReactor for Effort {
    fn reactor() -> Reactor {
        Reactor::new("effort", env!("CARGO_PKG_VERSION"))
            .on("thread.started", records(Fact::Started))
            .on("thread.quantum.expired", records(Fact::Expired))
            .on("thread.parked", records(Fact::Ended(EndReason::Parked)))
            .on("thread.blocked", records(Fact::Ended(EndReason::Blocked)))
            .on(
                "thread.completed",
                records(Fact::Ended(EndReason::Completed)),
            )
            .on("thread.deleted", records(Fact::Ended(EndReason::Deleted)))
            .on("thread.restored", records(Fact::Resumed))
            .query(
                "by_thread",
                "Time spent on one story or task, run by run",
                by_thread,
            )
            .schema(BY_ID_SCHEMA)
            .query(
                "by_saga",
                "Time spent on one saga, per thread and energy band",
                by_saga,
            )
            .schema(BY_ID_SCHEMA)
            .query(
                "by_sprint",
                "Time spent in one sprint, per story and energy band",
                by_sprint,
            )
            .schema(BY_ID_SCHEMA)
            .query(
                "by_day",
                "Time spent per UTC day and energy band, `from`/`to` YYYY-MM-DD",
                by_day,
            )
            .schema(DAY_RANGE_SCHEMA)
            .index(RUNS, &["thread_id"])
            .index(DAYS, &["day"])
    }
}

export_reactor!(Effort);

#[cfg(test)]
mod tests;
