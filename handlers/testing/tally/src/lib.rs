//! Test reactor (domain `tally`), written with wit-bindgen directly.
//!
//! It subscribes to `noop.ponged`, `counter.incremented` and `tally.*` (its
//! own timers) and keeps, in collection `counts`, how many events of each
//! routing key it saw. An event body may ask for more:
//!
//! * `{"send": "<key>", "name": "a"}` returns the command `<key>` with
//!   `{"name": "a"}` (`counter.increment` is declared in `sends`; any other
//!   key is not, and fails the event);
//! * `{"flood": n}` returns `n` `counter.increment` commands;
//! * `{"timer_ms": n}` schedules `tally.tick` after `n` ms;
//! * `{"poison": true}` fails with `poisoned`, `{"trap": true}` panics
//!   (this build; `tally2` counts them instead).
//!
//! Queries: `counts` answers `{<key>: n, …}`; `count {key}` answers `n`
//! (its params schema requires `key`); `write` tries to write (and must be
//! refused: queries are read-only).

/// This build fails on poisoned events.
const FIXED: bool = false;
/// The manifest's version.
const VERSION: &str = "1.0.0";

include!("reactor.rs");
