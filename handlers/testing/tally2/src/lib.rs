//! Test reactor `tally` 2.0.0: the same as `handlers/testing/tally`, but a
//! poisoned event is counted like any other (the fix a dead-letter replay
//! waits for).

/// This build counts poisoned events instead of failing on them.
const FIXED: bool = true;
/// The manifest's version.
const VERSION: &str = "2.0.0";

include!("../../tally/src/reactor.rs");
