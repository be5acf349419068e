//! The stores the host adds to the in-memory one of `parallel-you-core`:
//! the embedded SQLite default and MongoDB.

pub mod mongo;
pub mod sqlite;

pub use mongo::MongoStore;
pub use sqlite::SqliteStore;
