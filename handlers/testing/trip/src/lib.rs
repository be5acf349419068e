//! Test and benchmark saga `trip` 1.0.0 (state schema 1).

/// The manifest's version.
const VERSION: &str = "1.0.0";
/// How long a finished instance is kept: the SDK's default.
const RETENTION_MS: Option<u64> = None;
/// The state's schema version.
const SCHEMA: u32 = 1;

include!("saga.rs");
