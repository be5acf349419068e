//! Test saga `trip` 1.0.0 as `handlers/testing/trip`, keeping a finished
//! instance only 500 ms, so a test sees the next start sweep it.

/// The manifest's version.
const VERSION: &str = "1.0.0";
/// How long a finished instance is kept.
const RETENTION_MS: Option<u64> = Some(500);
/// The state's schema version.
const SCHEMA: u32 = 1;

include!("../../trip/src/saga.rs");
