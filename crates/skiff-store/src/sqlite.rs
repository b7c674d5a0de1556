//! The SQLite backend of [`crate::Store`].
//!
//! # Design
//! - One SQLite file in WAL mode with `synchronous=FULL`, opened with an exclusive lock so only
//!   one process owns it.
//! - One writer thread owns the connection. It folds every request queued at that moment into one
//!   transaction (group commit), so many concurrent writers share one fsync.
//! - Reads, lists and watches are served from an in-memory copy of the current state and the
//!   un-compacted history, updated by the writer only after its transaction commits. They never
//!   touch SQLite.
//! - Watches replay the in-memory history and then follow a bounded broadcast of live events.
//!
//! # Guarantees
//! - A write's future resolves only after its transaction is committed and synced, and after the
//!   change is visible to reads on this store (read-your-writes).
//! - A watch snapshots history and subscribes to live events under the same lock the writer
//!   publishes under, so it sees every event after its start revision exactly once, in order.
//!
//! # Caveats
//! - The whole current state and the history since the last compaction live in memory; callers
//!   are expected to compact regularly, as the Kubernetes API server does.
//! - The watch buffer is shared by all keys: a watcher that does not read while
//!   [`SqliteOptions::watch_buffer`] events are committed anywhere in the store is ended with
//!   [`StoreError::WatcherTooSlow`].

mod disk;
mod memory;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{broadcast, oneshot};

use self::memory::{Counting, MemoryState, SharedState};
use self::writer::{Command, Counters, WriteOp};
use crate::{KeyValue, ListResult, Revision, Store, StoreError, ValueExtractor, WatchEvent};

/// Tuning knobs for [`SqliteStore::open_with`]; the defaults suit an API server.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How many committed events a watcher may fall behind before it is ended with
    /// [`StoreError::WatcherTooSlow`]. Bounds the memory a stalled watcher can pin.
    pub watch_buffer: usize,
    /// How long to wait for a lock held by another connection before failing, so a second
    /// process opening the same file fails instead of hanging.
    pub busy_timeout: Duration,
    /// The largest size the database file may grow to; writes beyond it fail with
    /// [`StoreError::Backend`] until compaction frees space (like etcd's backend quota).
    pub quota_bytes: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            watch_buffer: 16 * 1024,
            busy_timeout: Duration::from_secs(5),
            quota_bytes: None,
        }
    }
}

/// How well group commit is batching, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Transactions committed since open.
    pub transactions: u64,
    /// Successful writes committed since open; `writes / transactions` is the mean batch size.
    pub writes: u64,
}

/// A store kept in one SQLite file.
///
/// Dropping it finishes the writes already queued, closes the file (releasing its lock) and ends
/// every watch with a [`StoreError::Backend`] item. The drop blocks until the writer thread has
/// finished its last transaction, so the same file can be reopened right after.
pub struct SqliteStore {
    shared: Arc<SharedState>,
    counters: Arc<Counters>,
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with default options.
    ///
    /// Synchronous: it reads the whole current state and history into memory, so call it from
    /// `tokio::task::spawn_blocking` when the database may be large. It needs no async runtime.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the store at `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened or created, another process holds it,
    /// its schema is newer than this code, or its contents are corrupt.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let conn = disk::open_connection(path, options.busy_timeout, options.quota_bytes)?;
        let loaded = disk::load(&conn)?;
        let (live, _) = broadcast::channel(options.watch_buffer.max(1));
        let shared = Arc::new(SharedState::new(MemoryState {
            current: loaded.current,
            revision: loaded.revision,
            compacted: loaded.compacted,
            history: loaded.history,
            live: Some(live),
            failure: None,
            extractor: None,
        }));
        let counters = Arc::new(Counters::default());
        let (commands, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("skiff-store-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                let counters = Arc::clone(&counters);
                move || writer::run(conn, shared, counters, receiver)
            })
            .map_err(|error| StoreError::Backend(format!("starting writer thread: {error}")))?;
        Ok(SqliteStore {
            shared,
            counters,
            commands: Some(commands),
            writer: Some(writer),
        })
    }

    /// Batching counters since open.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.commands
            .as_ref()
            .ok_or_else(closed)?
            .send(command)
            .map_err(|_| self.failure_or_closed())
    }

    async fn write(&self, op: WriteOp) -> Result<KeyValue, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write { op, reply })?;
        answer.await.map_err(|_| self.failure_or_closed())?
    }

    /// The reason the writer stopped, when it did, for callers that found it gone.
    fn failure_or_closed(&self) -> StoreError {
        match self.shared.read() {
            Ok(state) => state.ensure_usable().err().unwrap_or_else(closed),
            Err(error) => error,
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store is closed".to_owned())
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Disconnecting lets the writer finish what is queued and exit; waiting for it means the
        // file is closed (and its lock released) once the store is gone.
        drop(self.commands.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        self.write(WriteOp::Create {
            key: key.to_owned(),
            value,
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        self.write(WriteOp::Update {
            key: key.to_owned(),
            value,
            expected: expected_revision,
        })
        .await
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        self.write(WriteOp::Delete {
            key: key.to_owned(),
            expected: expected_revision,
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let state = self.shared.read()?;
        state.ensure_usable()?;
        Ok(state.current.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        let state = self.shared.read()?;
        state.ensure_usable()?;
        Ok(state.list(prefix, start_after, limit, Counting::Exact))
    }

    async fn list_uncounted(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        let state = self.shared.read()?;
        state.ensure_usable()?;
        Ok(state.list(prefix, start_after, limit, Counting::AnyMore))
    }

    async fn watch(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
        let start = self.shared.read()?.start_watch(prefix, after_revision)?;
        let replay = stream::iter(start.replay).map(|event| Ok(WatchEvent::clone(&event)));
        Ok(replay
            .chain(live_events(
                start.live,
                prefix.to_owned(),
                start.replayed_up_to,
            ))
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let state = self.shared.read()?;
        state.ensure_usable()?;
        Ok(state.revision)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Compact { revision, reply })?;
        answer.await.map_err(|_| self.failure_or_closed())?
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let state = self.shared.read()?;
        state.ensure_usable()?;
        Ok(state.compacted)
    }

    fn set_extractor(&self, extractor: Arc<dyn ValueExtractor>) -> Result<(), StoreError> {
        self.shared.write()?.set_extractor(extractor);
        Ok(())
    }
}

/// Follows the broadcast, skipping events the replay already covered or outside `prefix`; ends
/// with an error item when the watcher lagged or the store stopped.
fn live_events(
    receiver: broadcast::Receiver<Arc<WatchEvent>>,
    prefix: String,
    replayed_up_to: Revision,
) -> impl futures::Stream<Item = Result<WatchEvent, StoreError>> {
    stream::unfold(Some((receiver, prefix)), move |following| async move {
        let (mut receiver, prefix) = following?;
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if event.revision > replayed_up_to && event.kv.key.starts_with(&prefix) {
                        let event = WatchEvent::clone(&event);
                        return Some((Ok(event), Some((receiver, prefix))));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((Err(StoreError::WatcherTooSlow), None));
                }
                Err(broadcast::error::RecvError::Closed) => return Some((Err(closed()), None)),
            }
        }
    })
}
