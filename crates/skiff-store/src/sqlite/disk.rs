//! The on-disk layout: schema, connection settings, loading at open, and writing one batch.
//!
//! Three tables: `kv` holds each key's current value, `events` the change log that watchers
//! replay (trimmed by compaction), and `meta` the revision counter and the compacted revision.
//! The counter lives in `meta` rather than being derived from the other tables, because after a
//! delete and a compaction no row may carry the latest revision, and a revision must never be
//! handed out twice.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// The schema version this code reads and writes, kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind INTEGER NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    prev_value BLOB,
    prev_mod_rev INTEGER
);
";

const KIND_CREATED: i64 = 0;
const KIND_UPDATED: i64 = 1;
const KIND_DELETED: i64 = 2;

/// Turns any SQLite error into the store's backend error, naming what was being done.
pub(crate) fn backend(doing: &str, error: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("{doing}: {error}"))
}

/// Opens the file, applies the durability settings and makes sure the schema exists.
pub(crate) fn open_connection(
    path: &Path,
    busy_timeout: Duration,
    quota_bytes: Option<u64>,
) -> Result<Connection, StoreError> {
    restrict_to_owner(path)?;
    let conn = Connection::open(path)
        .map_err(|error| backend(&format!("opening {}", path.display()), error))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|error| backend("setting busy timeout", error))?;
    // One process owns the store: its in-memory copy is only right if nobody else writes.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(|error| backend("setting exclusive locking", error))?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|error| backend("enabling write-ahead logging", error))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{} cannot use write-ahead logging (journal mode is {journal_mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|error| backend("setting synchronous=FULL", error))?;
    if let Some(quota) = quota_bytes {
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(|error| backend("reading page size", error))?;
        let pages = (quota / page_size.max(1) as u64).max(1);
        let pages = i64::try_from(pages).unwrap_or(i64::MAX);
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|error| backend("setting the size quota", error))?;
    }
    create_schema(&conn)?;
    // SQLite gives the log files the database's mode when it creates them; ones left by an
    // older run may predate that.
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        if side.exists() {
            restrict_to_owner(side)?;
        }
    }
    Ok(conn)
}

/// Makes the file at `path` readable and writable by its owner only, creating it empty if it
/// does not exist: the store holds every Secret, so no other local user may read it.
fn restrict_to_owner(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |error: std::io::Error| {
            StoreError::Backend(format!(
                "restricting {} to its owner: {error}",
                path.display()
            ))
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn create_schema(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|error| backend("reading schema version", error))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than the supported {SCHEMA_VERSION}"
        )));
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(|error| backend("creating schema", error))
}

/// What the database held at open.
pub(crate) struct Loaded {
    pub current: BTreeMap<String, KeyValue>,
    pub revision: Revision,
    pub compacted: Revision,
    pub history: VecDeque<Arc<WatchEvent>>,
}

/// One row of the `events` table.
struct EventRow {
    revision: Revision,
    key: String,
    kind: i64,
    value: Option<Vec<u8>>,
    create_revision: Revision,
    prev_value: Option<Vec<u8>>,
    prev_mod_revision: Option<Revision>,
}

/// Reads the current state and the un-compacted history into memory.
pub(crate) fn load(conn: &Connection) -> Result<Loaded, StoreError> {
    let (mut revision, compacted): (Revision, Revision) = conn
        .query_row(
            "SELECT revision, compacted FROM meta WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(|error| backend("reading meta", error))?
        .ok_or_else(|| StoreError::Backend("meta row is missing".to_owned()))?;

    // The latest value seen per key while replaying the log, so a value shared by an event and
    // its successor's `prev` (or by the current state) is held in memory once.
    let mut latest: HashMap<String, KeyValue> = HashMap::new();
    let mut history = VecDeque::new();
    let mut events = conn
        .prepare(
            "SELECT rev, key, kind, value, create_rev, prev_value, prev_mod_rev
             FROM events WHERE rev > ?1 ORDER BY rev",
        )
        .map_err(|error| backend("reading events", error))?;
    let rows = events
        .query_map([compacted], |row| {
            Ok(EventRow {
                revision: row.get(0)?,
                key: row.get(1)?,
                kind: row.get(2)?,
                value: row.get(3)?,
                create_revision: row.get(4)?,
                prev_value: row.get(5)?,
                prev_mod_revision: row.get(6)?,
            })
        })
        .map_err(|error| backend("reading events", error))?;
    for row in rows {
        let row = row.map_err(|error| backend("reading events", error))?;
        let event = event_from_row(row, &latest)?;
        revision = revision.max(event.revision);
        match event.kind {
            EventKind::Deleted => latest.remove(&event.kv.key),
            EventKind::Created | EventKind::Updated => {
                latest.insert(event.kv.key.clone(), event.kv.clone())
            }
        };
        history.push_back(Arc::new(event));
    }

    let mut current = BTreeMap::new();
    let mut kvs = conn
        .prepare("SELECT key, value, create_rev, mod_rev FROM kv")
        .map_err(|error| backend("reading keys", error))?;
    let rows = kvs
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Revision>(2)?,
                row.get::<_, Revision>(3)?,
            ))
        })
        .map_err(|error| backend("reading keys", error))?;
    for row in rows {
        let (key, value, create_revision, mod_revision) =
            row.map_err(|error| backend("reading keys", error))?;
        revision = revision.max(mod_revision);
        let value = match latest.get(&key) {
            Some(seen) if seen.mod_revision == mod_revision => Arc::clone(&seen.value),
            _ => Arc::from(value),
        };
        current.insert(
            key.clone(),
            KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
                extracted: None,
            },
        );
    }

    Ok(Loaded {
        current,
        revision,
        compacted,
        history,
    })
}

fn event_from_row(
    row: EventRow,
    latest: &HashMap<String, KeyValue>,
) -> Result<WatchEvent, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Backend(format!(
            "event at revision {} is corrupt: {what}",
            row.revision
        ))
    };
    let prev = match (row.prev_value, row.prev_mod_revision) {
        (Some(value), Some(mod_revision)) => {
            let value = match latest.get(&row.key) {
                Some(seen) if seen.mod_revision == mod_revision => Arc::clone(&seen.value),
                _ => Arc::from(value),
            };
            Some(KeyValue {
                key: row.key.clone(),
                value,
                create_revision: row.create_revision,
                mod_revision,
                extracted: None,
            })
        }
        (None, None) => None,
        _ => return Err(corrupt("previous value and revision disagree")),
    };
    let (kind, kv) = match row.kind {
        KIND_CREATED | KIND_UPDATED => {
            let value = row.value.ok_or_else(|| corrupt("missing value"))?;
            let kind = if row.kind == KIND_CREATED {
                EventKind::Created
            } else {
                EventKind::Updated
            };
            let kv = KeyValue {
                key: row.key,
                value: Arc::from(value),
                create_revision: row.create_revision,
                mod_revision: row.revision,
                extracted: None,
            };
            (kind, kv)
        }
        KIND_DELETED => {
            let last = prev
                .as_ref()
                .ok_or_else(|| corrupt("delete without a last value"))?;
            let kv = KeyValue {
                mod_revision: row.revision,
                ..last.clone()
            };
            (EventKind::Deleted, kv)
        }
        other => return Err(corrupt(&format!("unknown kind {other}"))),
    };
    if kind == EventKind::Updated && prev.is_none() {
        return Err(corrupt("update without a previous value"));
    }
    Ok(WatchEvent {
        kind,
        revision: row.revision,
        kv,
        prev,
    })
}

/// One change the writer decided to make, in the order it must be applied.
pub(crate) enum Change<'a> {
    /// Record this event and bring `kv` in line with it.
    Event(&'a WatchEvent),
    /// Drop the log at and below this revision.
    Compact(Revision),
}

/// Writes a batch of changes and the new counters in one durable transaction.
pub(crate) fn commit_batch<'a>(
    conn: &mut Connection,
    changes: impl Iterator<Item = Change<'a>>,
    revision: Revision,
    compacted: Revision,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|error| backend("starting transaction", error))?;
    for change in changes {
        match change {
            Change::Event(event) => write_event(&tx, event)?,
            Change::Compact(revision) => {
                tx.prepare_cached("DELETE FROM events WHERE rev <= ?1")
                    .and_then(|mut statement| statement.execute([revision]))
                    .map_err(|error| backend("compacting events", error))?;
            }
        }
    }
    tx.prepare_cached("UPDATE meta SET revision = ?1, compacted = ?2 WHERE id = 1")
        .and_then(|mut statement| statement.execute([revision, compacted]))
        .map_err(|error| backend("updating meta", error))?;
    tx.commit().map_err(|error| backend("committing", error))
}

fn write_event(tx: &rusqlite::Transaction<'_>, event: &WatchEvent) -> Result<(), StoreError> {
    let kv = &event.kv;
    let prev_value = event.prev.as_ref().map(|prev| &prev.value[..]);
    let prev_mod_revision = event.prev.as_ref().map(|prev| prev.mod_revision);
    let (kind, value) = match event.kind {
        EventKind::Created => (KIND_CREATED, Some(&kv.value[..])),
        EventKind::Updated => (KIND_UPDATED, Some(&kv.value[..])),
        EventKind::Deleted => (KIND_DELETED, None),
    };
    tx.prepare_cached(
        "INSERT INTO events (rev, key, kind, value, create_rev, prev_value, prev_mod_rev)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            event.revision,
            kv.key,
            kind,
            value,
            kv.create_revision,
            prev_value,
            prev_mod_revision
        ])
    })
    .map_err(|error| backend("recording event", error))?;
    match event.kind {
        EventKind::Created | EventKind::Updated => tx
            .prepare_cached(
                "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                     create_rev = excluded.create_rev, mod_rev = excluded.mod_rev",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    kv.key,
                    &kv.value[..],
                    kv.create_revision,
                    kv.mod_revision
                ])
            }),
        EventKind::Deleted => tx
            .prepare_cached("DELETE FROM kv WHERE key = ?1")
            .and_then(|mut statement| statement.execute([&kv.key])),
    }
    .map_err(|error| backend("writing key", error))?;
    Ok(())
}
