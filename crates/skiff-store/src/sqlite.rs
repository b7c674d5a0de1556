//! The SQLite backend of [`crate::Store`].

/// A store kept in one SQLite file.
pub struct SqliteStore;
