//! The conformance suite against [`SqliteStore`], plus what only a file-backed store can show:
//! durability across reopen, group commit, the exclusive lock, quota failures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_store::conformance;
use skiff_store::{EventKind, Revision, SqliteOptions, SqliteStore, Store, StoreError, WatchEvent};
use tempfile::TempDir;

fn temp() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("store.db");
    (dir, path)
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("open store")
}

macro_rules! conformance_tests {
    ($($property:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $property() {
                let (_dir, path) = temp();
                conformance::$property(&open(&path)).await;
            }
        )*
    };
}

conformance_tests!(
    create_rejects_existing_key,
    update_and_delete_of_missing_key_fail_not_found,
    revisions_advance_by_one_per_write,
    create_and_mod_revisions_track_writes,
    concurrent_updates_with_same_expected_revision_one_wins,
    delete_honours_expected_revision,
    list_returns_keys_in_order_at_current_revision,
    list_isolates_sibling_prefixes,
    list_paginates_with_start_after_and_limit,
    list_uncounted_pages_like_list_and_only_says_whether_more_follow,
    watch_replays_exactly_the_later_events,
    watch_started_during_concurrent_writes_sees_each_event_once,
    watch_filters_by_prefix,
    delete_event_carries_last_value,
    compaction_limits_where_watches_start,
    watch_from_future_revision_waits_for_it,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_with_a_fresh_store_per_property() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut count = 0;
    conformance::run_all(|| {
        count += 1;
        let store = open(&dir.path().join(format!("store-{count}.db")));
        async move { Box::new(store) as Box<dyn Store> }
    })
    .await;
    assert_eq!(count, 16, "run_all makes one store per property");
}

async fn collect(store: &SqliteStore, prefix: &str, after: Revision) -> Vec<WatchEvent> {
    let last = store.current_revision().await.expect("revision");
    let mut watch = store.watch(prefix, after).await.expect("watch");
    let mut events = Vec::new();
    while events
        .last()
        .map_or(after, |event: &WatchEvent| event.revision)
        < last
    {
        let next = tokio::time::timeout(conformance::WAIT, watch.next()).await;
        match next {
            Ok(Some(Ok(event))) => events.push(event),
            other => panic!("replay ended early: {other:?}"),
        }
    }
    events
}

#[tokio::test]
async fn reopen_finds_every_key_and_continues_the_revision() {
    let (_dir, path) = temp();
    let (listed, last) = {
        let store = open(&path);
        store
            .create("/r/a", b"a1".to_vec())
            .await
            .expect("create a");
        store
            .create("/r/b", b"b1".to_vec())
            .await
            .expect("create b");
        store
            .update("/r/a", b"a2".to_vec(), None)
            .await
            .expect("update a");
        store
            .create("/r/c", b"c1".to_vec())
            .await
            .expect("create c");
        // The last write is a delete, compacted away, so no key or event row carries the
        // latest revision any more.
        let deleted = store.delete("/r/c", None).await.expect("delete c");
        store.compact(deleted.mod_revision).await.expect("compact");
        let listed = store.list("/", None, None).await.expect("list");
        (listed, deleted.mod_revision)
    };
    assert_eq!(last, 5);
    assert_eq!(event_rows(&path), 0);

    let store = open(&path);
    assert_eq!(store.current_revision().await.expect("revision"), last);
    assert_eq!(store.compacted_revision().await.expect("compacted"), last);
    assert_eq!(store.list("/", None, None).await.expect("list"), listed);
    assert!(matches!(
        store.watch("/", last - 1).await,
        Err(StoreError::Compacted { .. })
    ));
    let mut watch = store
        .watch("/", last)
        .await
        .expect("watch from compacted revision");
    let next = store
        .create("/r/d", b"d1".to_vec())
        .await
        .expect("create after reopen");
    assert_eq!(
        next.mod_revision,
        last + 1,
        "revisions are never reused after reopen"
    );
    match watch.next().await {
        Some(Ok(event)) => assert_eq!(event.revision, last + 1),
        other => panic!("want the new event, got {other:?}"),
    }
}

#[tokio::test]
async fn history_survives_reopen() {
    let (_dir, path) = temp();
    let before = {
        let store = open(&path);
        for n in 0..20 {
            let key = format!("/s/{}", n % 3);
            if store.create(&key, vec![n]).await.is_err() {
                store.update(&key, vec![n], None).await.expect("update");
            }
        }
        store.delete("/s/1", None).await.expect("delete");
        store.compact(4).await.expect("compact");
        collect(&store, "/", 4).await
    };
    assert_eq!(before.len(), 17);
    let store = open(&path);
    assert_eq!(collect(&store, "/", 4).await, before);
}

#[tokio::test]
async fn reopened_history_keeps_kinds_and_previous_values() {
    let (_dir, path) = temp();
    let before = {
        let store = open(&path);
        store.create("/h/k", b"v1".to_vec()).await.expect("create");
        store
            .update("/h/k", b"v2".to_vec(), Some(1))
            .await
            .expect("update");
        store.delete("/h/k", Some(2)).await.expect("delete");
        store
            .create("/h/k", b"v3".to_vec())
            .await
            .expect("re-create");
        collect(&store, "/h/", 0).await
    };
    let kinds: Vec<EventKind> = before.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::Updated,
            EventKind::Deleted,
            EventKind::Created
        ]
    );
    let store = open(&path);
    assert_eq!(collect(&store, "/h/", 0).await, before);
}

fn event_rows(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open for inspection");
    conn.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .expect("count events")
}

#[tokio::test]
async fn compaction_deletes_the_log_on_disk() {
    let (_dir, path) = temp();
    {
        let store = open(&path);
        for n in 0..50 {
            store
                .create(&format!("/e/{n}"), vec![0; 100])
                .await
                .expect("create");
        }
        store.compact(40).await.expect("compact");
    }
    assert_eq!(
        event_rows(&path),
        10,
        "only events after the compacted revision remain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_succeed_in_shared_transactions() {
    const TASKS: usize = 64;
    const WRITES_EACH: usize = 10;
    let (_dir, path) = temp();
    let store = Arc::new(open(&path));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for n in 0..WRITES_EACH {
                    let kv = store
                        .create(&format!("/cw/{task}/{n}"), vec![1; 64])
                        .await
                        .expect("concurrent create");
                    revisions.push(kv.mod_revision);
                }
                revisions
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.extend(task.await.expect("writer task"));
    }
    revisions.sort_unstable();
    let total = (TASKS * WRITES_EACH) as Revision;
    assert_eq!(
        revisions,
        (1..=total).collect::<Vec<_>>(),
        "distinct, gapless revisions"
    );
    let stats = store.stats();
    assert_eq!(stats.writes, total as u64);
    assert!(
        stats.transactions < stats.writes,
        "group commit should fold concurrent writes together: {stats:?}"
    );
}

#[tokio::test]
async fn second_open_of_the_same_file_fails_while_the_first_is_open() {
    let (_dir, path) = temp();
    let first = open(&path);
    first.create("/lock", b"x".to_vec()).await.expect("create");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..SqliteOptions::default()
    };
    match SqliteStore::open_with(&path, options.clone()) {
        Err(StoreError::Backend(_)) => {}
        Err(other) => panic!("want Backend, got {other}"),
        Ok(_) => panic!("a second store on the same file must be refused"),
    }
    drop(first);
    let reopened = SqliteStore::open_with(&path, options).expect("open after close");
    assert_eq!(reopened.current_revision().await.expect("revision"), 1);
}

#[tokio::test]
async fn writes_beyond_the_quota_fail_with_backend_and_leave_no_trace() {
    let (_dir, path) = temp();
    let options = SqliteOptions {
        quota_bytes: Some(256 * 1024),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options.clone()).expect("open");
    let mut written = 0;
    let failure = loop {
        match store
            .create(&format!("/q/{written}"), vec![7; 8 * 1024])
            .await
        {
            Ok(_) => written += 1,
            Err(error) => break error,
        }
        assert!(written < 1000, "quota never hit");
    };
    assert!(matches!(failure, StoreError::Backend(_)), "got {failure}");
    let revision = store.current_revision().await.expect("reads still work");
    assert_eq!(revision, written, "the failed write took no revision");
    assert_eq!(
        store.get(&format!("/q/{written}")).await.expect("get"),
        None
    );

    // Compacting frees the log's pages, which makes room to delete, and compacting again frees
    // the deleted values; then writes succeed again.
    store.compact(revision).await.expect("compact under quota");
    for n in 0..written {
        store
            .delete(&format!("/q/{n}"), None)
            .await
            .expect("delete under quota");
    }
    let last = store.current_revision().await.expect("revision");
    store.compact(last).await.expect("compact after deletes");
    let created = store
        .create("/q/again", vec![7; 8 * 1024])
        .await
        .expect("write after freeing space");
    assert_eq!(created.mod_revision, last + 1);
    drop(store);
    let reopened = SqliteStore::open_with(&path, options).expect("reopen");
    assert_eq!(
        reopened.current_revision().await.expect("revision"),
        last + 1
    );
}

#[tokio::test]
async fn lagging_watcher_gets_too_slow_then_ends() {
    let (_dir, path) = temp();
    let options = SqliteOptions {
        watch_buffer: 8,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options).expect("open");
    let mut watch = store.watch("/", 0).await.expect("watch");
    for n in 0..40 {
        store
            .create(&format!("/slow/{n}"), vec![])
            .await
            .expect("create");
    }
    let mut delivered = Vec::new();
    let ending = loop {
        match watch.next().await {
            Some(Ok(event)) => delivered.push(event.revision),
            Some(Err(error)) => break error,
            None => panic!("the stream must end with an error item"),
        }
    };
    assert!(matches!(ending, StoreError::WatcherTooSlow), "got {ending}");
    assert!(
        watch.next().await.is_none(),
        "nothing follows WatcherTooSlow"
    );
    let expected: Vec<Revision> = (1..=delivered.len() as Revision).collect();
    assert_eq!(
        delivered, expected,
        "events before the error are still gapless"
    );
}

#[tokio::test]
async fn dropping_the_store_ends_watches_with_backend_error() {
    let (_dir, path) = temp();
    let store = open(&path);
    let mut watch = store.watch("/", 0).await.expect("watch");
    store.create("/x", vec![]).await.expect("create");
    drop(store);
    match watch.next().await {
        Some(Ok(event)) => assert_eq!(event.revision, 1),
        other => panic!("the committed event is delivered first, got {other:?}"),
    }
    assert!(matches!(
        watch.next().await,
        Some(Err(StoreError::Backend(_)))
    ));
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let (_dir, path) = temp();
    drop(open(&path));
    {
        let conn = rusqlite::Connection::open(&path).expect("open for edit");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
    }
    match SqliteStore::open(&path) {
        Err(StoreError::Backend(message)) => assert!(message.contains("99"), "{message}"),
        Err(other) => panic!("want Backend, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_log_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = temp();
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{} is missing: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let wal = dir.path().join("store.db-wal");
    {
        let store = open(&path);
        store.create("/k", b"v".to_vec()).await.expect("create");
        assert_eq!(mode(&path), 0o600, "a new database");
        assert_eq!(mode(&wal), 0o600, "the write-ahead log of a new database");
    }
    // Files a looser older run left are tightened at the next open.
    for file in [&path, &wal] {
        if file.exists() {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("loosen");
        }
    }
    let store = open(&path);
    store.create("/k2", b"v".to_vec()).await.expect("create");
    assert_eq!(mode(&path), 0o600, "a reopened database");
    assert_eq!(
        mode(&wal),
        0o600,
        "the write-ahead log of a reopened database"
    );
}

/// Extracts the value's text upper-cased; declines values starting with
/// `#`, so a test can tell "declined" from "never asked".
struct UpperCase;

impl skiff_store::ValueExtractor for UpperCase {
    fn extract(&self, _key: &str, value: &[u8]) -> Option<skiff_store::Extracted> {
        let text = std::str::from_utf8(value).ok()?;
        if text.starts_with('#') {
            return None;
        }
        Some(skiff_store::Extracted::new(text.to_uppercase()))
    }
}

fn extracted(kv: &skiff_store::KeyValue) -> Option<&str> {
    kv.extracted
        .as_ref()
        .map(|part| part.downcast_ref::<String>().expect("a String").as_str())
}

#[tokio::test]
async fn every_current_value_carries_what_the_installed_extractor_computed() {
    let (_dir, path) = temp();
    {
        let store = open(&path);
        store.create("/k/before", b"old".to_vec()).await.unwrap();
    }
    let store = open(&path);
    let before = store.get("/k/before").await.unwrap().expect("present");
    assert!(
        before.extracted.is_none(),
        "nothing is extracted before an extractor is installed"
    );

    store.set_extractor(Arc::new(UpperCase)).unwrap();
    let before = store.get("/k/before").await.unwrap().expect("present");
    assert_eq!(
        extracted(&before),
        Some("OLD"),
        "values loaded from disk are extracted when the extractor is installed"
    );

    store.create("/k/a", b"first".to_vec()).await.unwrap();
    store.create("/k/b", b"#declined".to_vec()).await.unwrap();
    let written = store
        .update("/k/before", b"new".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(
        extracted(&written),
        Some("NEW"),
        "the answer to a write carries it"
    );

    let listed = store.list("/k/", None, None).await.unwrap();
    let seen: Vec<(&str, Option<&str>)> = listed
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), extracted(kv)))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/k/a", Some("FIRST")),
            ("/k/b", None),
            ("/k/before", Some("NEW")),
        ],
        "lists carry each value's own extraction, recomputed on update"
    );

    store.delete("/k/a", None).await.unwrap();
    store.create("/k/a", b"again".to_vec()).await.unwrap();
    let again = store.get("/k/a").await.unwrap().expect("recreated");
    assert_eq!(extracted(&again), Some("AGAIN"));
}
