//! Sagas: workflows that issue a sequence of commands, and undo the
//! completed ones when a later one fails, built on the reactor world.
//!
//! A [`Saga`] is a reactor whose state is one document per instance (the
//! `instances` collection of its domain), keyed by the command that
//! started it. It declares:
//!
//! * the events that start an instance ([`Saga::starts_on`]) and the state
//!   each starts with;
//! * its [`Step`]s, in order: the requests each makes from the state (a
//!   command and the key its answer carries), the events that complete or
//!   fail a request (a pattern and a JSON pointer to the key in the body),
//!   a timeout per try (a timer through the scheduler, delivered back to
//!   the saga), a [`Retry`] policy (tries, backoff, which codes), and the
//!   compensating command of each completed request;
//! * the state's schema version and a [`migrate`](Saga::migrate)
//!   function for instances an older version wrote.
//!
//! A step completes when every one of its requests is answered; then the
//! next one starts. A request that fails for good (or a try without an
//! answer once the tries are used up) fails the step: the compensations of
//! every completed request, and of the step's requests still unanswered
//! (they may yet take effect, so a compensation must be harmless where its
//! request did nothing), run one at a time, last first, each with the
//! retry policy of the step that made it (whatever the code: a
//! compensation has to happen). If one still fails, the instance is
//! `failed` and `stuck` until an operator's retry (`<saga>.retry {id}`,
//! `pyou sagas retry <id>`).
//!
//! Every transition is an event of the saga's domain: `<saga>.started`,
//! `.step_completed`, `.step_failed`, `.compensating`, `.compensated`,
//! `.completed`, `.failed` (with what was undone), `.parked`, `.resumed`,
//! on the session of the event it reacted to (the starting command's, as
//! long as the answers are to the saga's own commands). An instance whose
//! state this version cannot read (a schema version it cannot migrate) is
//! parked: status `parked`, its state left as written, answers held until
//! a retry reads it again.
//!
//! Events reach an instance through the `waits` collection (request key →
//! instance), so a key is waited for by one instance at a time (the last
//! to ask); an answer for a key nobody waits for is ignored, and so is an
//! error event that names another command than the request's.
//!
//! The queries `saga_list {status?, limit?}` and `saga_show {id}` show the
//! instances. A finished instance (completed, or failed and not stuck) is
//! kept for the saga's [`retention`](Saga::retention) (30 days by
//! default), then deleted by a later start. `handlers/sprintclose` is a whole saga.

mod def;
mod instance;
mod machine;
mod queries;
mod run;

pub use def::{Request, Retry, Saga, Step, DEFAULT_RETENTION, MAX_REQUESTS};
pub use instance::{
    Cmd, Done, Entry, Failure, Held, Instance, Parked, Status, Timer, TimerKind, MAX_HELD,
    MAX_HISTORY,
};
pub use queries::MAX_LIST;
pub use run::SWEEP_PER_START;

#[cfg(test)]
mod tests;
