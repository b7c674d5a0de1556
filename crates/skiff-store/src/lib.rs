//! Skiff's versioned key-value store.
//!
//! The model is etcd's: one global revision counter that every write advances, a current value
//! per key stamped with the revision that created it and the one that last changed it, and a
//! history of changes that watchers replay from any revision not yet compacted away. The API
//! server keeps Kubernetes objects here; `metadata.resourceVersion` is a key's `mod_revision`.
//!
//! The store knows nothing about Kubernetes kinds or HTTP: keys are strings, values are bytes.
//! [`Store`] is the boundary that the SQLite and etcd backends implement;
//! [`conformance`] is the suite every backend must pass.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub mod conformance;
pub mod etcd;
pub mod sqlite;
pub mod test_etcd;

pub use etcd::{EtcdOptions, EtcdStore, EtcdTls};
pub use sqlite::{SqliteOptions, SqliteStats, SqliteStore};

/// A global revision: every successful write gets the next one, starting at 1.
pub type Revision = i64;

/// One key's current value, as stored at `mod_revision`.
#[derive(Clone, Debug)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/apps/deployments/default/web`.
    pub key: String,
    /// The stored bytes. Shared, because watchers and caches hand the same value around.
    pub value: Arc<[u8]>,
    /// The revision of the write that created this key (its latest incarnation).
    pub create_revision: Revision,
    /// The revision of the latest write to this key.
    pub mod_revision: Revision,
    /// What the installed [`ValueExtractor`] computed from `value`, kept beside it so that
    /// readers filtering many values need not parse each one again. `None` when no extractor is
    /// installed, the extractor declined, or the backend keeps nothing (readers then parse
    /// `value` themselves). Never stale: it is recomputed whenever `value` changes.
    pub extracted: Option<Extracted>,
}

/// Two key-values are equal when key, bytes and revisions are: `extracted` is a function of the
/// bytes, so comparing it too would only tell whether an extractor ran.
impl PartialEq for KeyValue {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.value == other.value
            && self.create_revision == other.create_revision
            && self.mod_revision == other.mod_revision
    }
}

impl Eq for KeyValue {}

/// An opaque part of a value computed once by a [`ValueExtractor`] (for the API server, an
/// object's parsed labels). The store never looks inside; the code that installed the extractor
/// gets its own type back with [`Extracted::downcast_ref`].
#[derive(Clone)]
pub struct Extracted(Arc<dyn Any + Send + Sync>);

impl Extracted {
    /// Wraps what an extractor computed.
    pub fn new<T: Any + Send + Sync>(part: T) -> Self {
        Extracted(Arc::new(part))
    }

    /// The extracted part, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl fmt::Debug for Extracted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Extracted(..)")
    }
}

/// Computes the [`Extracted`] part kept beside each current value. Supplied by the store's
/// user (the API server's registry parses an object's labels), so the store stays ignorant of
/// what values mean. It must be a pure function of key and bytes: the store may call it at any
/// time, on any thread, and more than once for one value.
pub trait ValueExtractor: Send + Sync + 'static {
    /// The part of `value` worth keeping parsed, or `None` to keep nothing for it.
    fn extract(&self, key: &str, value: &[u8]) -> Option<Extracted>;
}

/// What happened to a key at one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key did not exist before this revision.
    Created,
    /// The key existed and got a new value.
    Updated,
    /// The key was removed.
    Deleted,
}

/// One change, as delivered to watchers in revision order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The kind of change.
    pub kind: EventKind,
    /// The revision at which the change happened.
    pub revision: Revision,
    /// For `Created`/`Updated`, the new value (its `mod_revision` equals `revision`). For
    /// `Deleted`, the last value the key had, with `mod_revision` set to the deletion's revision,
    /// so a watcher can tell what disappeared and when.
    pub kv: KeyValue,
    /// The value before this change, for `Updated` and `Deleted`.
    pub prev: Option<KeyValue>,
}

/// The answer to a list: the items and the revision the list reflects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The store's revision when the list was taken; a watch from it misses nothing.
    pub revision: Revision,
    /// How many more keys under the prefix follow the last returned item (non-zero only when a
    /// limit cut the list short).
    pub remaining: usize,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create found the key already present.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// Update or delete found no such key.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's current mod_revision differs from the one the caller required.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller required.
        expected: Revision,
        /// The key's actual mod_revision.
        actual: Revision,
    },
    /// A watch asked to start at a revision that compaction has already discarded.
    #[error("required revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The latest compacted revision; watches must start after it.
        compacted: Revision,
    },
    /// A watcher fell so far behind that events it had not read were dropped; it must re-list.
    #[error("watcher fell behind and was closed")]
    WatcherTooSlow,
    /// The backend failed (I/O, database corruption, a closed store, an error etcd answered
    /// with, whose own text is then the message).
    #[error("storage backend failure: {0}")]
    Backend(String),
    /// The backend did not answer within the store's request timeout (etcd unreachable or
    /// frozen); a write may or may not have been applied.
    #[error("storage backend did not answer: {0}")]
    Timeout(String),
}

/// The versioned key-value store every Skiff server writes through.
///
/// # Guarantees
/// - Every successful write is durable (committed and synced) before its future resolves.
/// - Writes are totally ordered by revision; a revision is never reused.
/// - A watch delivers every change under its prefix after its start revision, in revision order,
///   with no gap and no duplicate, until the caller drops it or it ends with an error.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if present.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError>;

    /// Replaces the value of an existing `key`. With `expected_revision`, fails with
    /// [`StoreError::Conflict`] unless the key's `mod_revision` equals it.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError>;

    /// Removes `key` and returns its last value, with `mod_revision` set to the deletion's
    /// revision. With `expected_revision`, fails with [`StoreError::Conflict`] unless the key's
    /// `mod_revision` equals it.
    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError>;

    /// Reads the current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Lists keys starting with `prefix` in key order, beginning after `start_after` (exclusive)
    /// and returning at most `limit` items.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError>;

    /// Lists like [`Store::list`] but does not count the keys after the page: `remaining` is 1
    /// when at least one more key under `prefix` follows the last returned item and 0 when none
    /// does. Paging through n keys `limit` at a time then costs O(n) in all instead of the
    /// O(n²/limit) of exact counts, so callers that only need "is there more" use this. The
    /// default counts and clamps, which suits backends where counting is free.
    async fn list_uncounted(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        let mut result = self.list(prefix, start_after, limit).await?;
        result.remaining = result.remaining.min(1);
        Ok(result)
    }

    /// Streams every change to keys under `prefix` with a revision greater than
    /// `after_revision`. Fails with [`StoreError::Compacted`] if `after_revision` is older than
    /// the compacted revision.
    async fn watch(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError>;

    /// The latest revision written.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// Discards history at and below `revision`; watches must then start after it.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The latest revision compacted away (0 if none).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;

    /// Installs the extractor whose result every current value then carries in
    /// [`KeyValue::extracted`]: values already present are extracted at once, later writes as
    /// they are applied. Replaces any earlier extractor. Values in watch events and history need
    /// not carry it. The default keeps nothing, which is always correct: readers fall back to
    /// parsing the bytes.
    fn set_extractor(&self, extractor: Arc<dyn ValueExtractor>) -> Result<(), StoreError> {
        let _ = extractor;
        Ok(())
    }

    /// A short name of the backend (`"sqlite"`, `"etcd"`), for health reports that name the
    /// store the way operators know it. Wrappers that only delegate may keep the default.
    fn backend_name(&self) -> &'static str {
        "store"
    }
}
