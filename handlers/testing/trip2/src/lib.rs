//! Test saga `trip` 2.0.0: the same steps as `handlers/testing/trip`,
//! state schema 2 (it adds `migrated_from`), migrating schema 1.

/// The manifest's version.
const VERSION: &str = "2.0.0";
/// How long a finished instance is kept: the SDK's default.
const RETENTION_MS: Option<u64> = None;
/// The state's schema version.
const SCHEMA: u32 = 2;

include!("../../trip/src/saga.rs");
