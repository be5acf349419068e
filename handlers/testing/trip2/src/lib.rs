//! Test saga `trip` 2.0.0: the same steps as `handlers/testing/trip`,
//! state schema 2 (it adds `migrated_from`), migrating schema 1.

/// The manifest's version.
const VERSION: &str = "2.0.0";
/// The state's schema version.
const SCHEMA: u32 = 2;

include!("../../trip/src/saga.rs");
