//! The stores the host adds to the in-memory one of `parallel-you-core`:
//! the embedded SQLite default (feature `sqlite`) and MongoDB (feature
//! `mongo`).

#[cfg(feature = "mongo")]
pub mod mongo;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "mongo")]
pub use mongo::MongoStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
