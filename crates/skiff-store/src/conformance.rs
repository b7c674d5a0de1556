//! The behaviour every [`crate::Store`] backend must show.
//!
//! Each property is a public async function taking a fresh, empty store and panicking with a
//! message naming what broke, so a backend's test file can run each as its own test, or all of
//! them through [`run_all`]. The properties make no assumption about the store's starting
//! revision, so they also hold for a backend shared with other data under other prefixes.
//!
//! Watch assertions wait at most [`WAIT`] for an event; absence of unwanted events is proven by
//! writing a later sentinel and checking that it is the next event delivered, never by sleeping.

use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::{EventKind, KeyValue, Revision, Store, StoreError, WatchEvent};

/// How long a watch assertion waits for an event before declaring it missing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A watch stream as the trait returns it.
type Watch = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// Runs every property, each against a fresh store from `make`.
pub async fn run_all<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    create_rejects_existing_key(&*make().await).await;
    update_and_delete_of_missing_key_fail_not_found(&*make().await).await;
    revisions_advance_by_one_per_write(&*make().await).await;
    create_and_mod_revisions_track_writes(&*make().await).await;
    concurrent_updates_with_same_expected_revision_one_wins(&*make().await).await;
    delete_honours_expected_revision(&*make().await).await;
    list_returns_keys_in_order_at_current_revision(&*make().await).await;
    list_isolates_sibling_prefixes(&*make().await).await;
    list_paginates_with_start_after_and_limit(&*make().await).await;
    list_uncounted_pages_like_list_and_only_says_whether_more_follow(&*make().await).await;
    watch_replays_exactly_the_later_events(&*make().await).await;
    watch_started_during_concurrent_writes_sees_each_event_once(&*make().await).await;
    watch_filters_by_prefix(&*make().await).await;
    delete_event_carries_last_value(&*make().await).await;
    compaction_limits_where_watches_start(&*make().await).await;
    watch_from_future_revision_waits_for_it(&*make().await).await;
}

fn value(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn ok<T>(result: Result<T, StoreError>, doing: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{doing}: unexpected error: {error}"),
    }
}

async fn revision(store: &dyn Store) -> Revision {
    ok(store.current_revision().await, "reading current revision")
}

async fn open_watch(store: &dyn Store, prefix: &str, after: Revision) -> Watch {
    ok(
        store.watch(prefix, after).await,
        &format!("watching {prefix} after {after}"),
    )
}

async fn next_event(watch: &mut Watch, context: &str) -> WatchEvent {
    match tokio::time::timeout(WAIT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => panic!("{context}: watch failed: {error}"),
        Ok(None) => panic!("{context}: watch ended early"),
        Err(_) => panic!("{context}: no event within {WAIT:?}"),
    }
}

fn assert_event(
    event: &WatchEvent,
    kind: EventKind,
    key: &str,
    revision: Revision,
    data: &str,
    context: &str,
) {
    assert_eq!(event.kind, kind, "{context}: kind of event {event:?}");
    assert_eq!(event.kv.key, key, "{context}: key of event {event:?}");
    assert_eq!(
        event.revision, revision,
        "{context}: revision of event {event:?}"
    );
    assert_eq!(
        event.kv.mod_revision, revision,
        "{context}: an event's kv.mod_revision is the event's revision"
    );
    assert_eq!(
        &*event.kv.value,
        data.as_bytes(),
        "{context}: value of event {event:?}"
    );
}

/// Create fails with `AlreadyExists` on a present key, leaving value and revision untouched.
pub async fn create_rejects_existing_key(store: &dyn Store) {
    let created = ok(store.create("/c/key", value("one")).await, "first create");
    let before = revision(store).await;
    match store.create("/c/key", value("two")).await {
        Err(StoreError::AlreadyExists(key)) => assert_eq!(key, "/c/key"),
        other => panic!("second create of /c/key: want AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        revision(store).await,
        before,
        "a failed create must not take a revision"
    );
    let stored = ok(store.get("/c/key").await, "get after failed create");
    assert_eq!(
        stored,
        Some(created),
        "a failed create must not change the value"
    );
}

/// Update and delete of an absent key fail with `NotFound` and take no revision.
pub async fn update_and_delete_of_missing_key_fail_not_found(store: &dyn Store) {
    let before = revision(store).await;
    for expected in [None, Some(before)] {
        match store.update("/missing", value("x"), expected).await {
            Err(StoreError::NotFound(key)) => assert_eq!(key, "/missing"),
            other => panic!("update of missing key (expected {expected:?}): got {other:?}"),
        }
        match store.delete("/missing", expected).await {
            Err(StoreError::NotFound(key)) => assert_eq!(key, "/missing"),
            other => panic!("delete of missing key (expected {expected:?}): got {other:?}"),
        }
    }
    let created = ok(store.create("/gone", value("x")).await, "create /gone");
    ok(store.delete("/gone", None).await, "delete /gone");
    match store.update("/gone", value("y"), None).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("update of deleted key: want NotFound, got {other:?}"),
    }
    assert_eq!(
        revision(store).await,
        created.mod_revision + 1,
        "failed writes must not take revisions"
    );
    assert_eq!(ok(store.get("/missing").await, "get /missing"), None);
}

/// Every successful write takes exactly the next revision; failed ones take none.
pub async fn revisions_advance_by_one_per_write(store: &dyn Store) {
    let base = revision(store).await;
    let mut expected = base;
    for step in 0..5 {
        let key = format!("/rev/{step}");
        let created = ok(store.create(&key, value("a")).await, "create");
        expected += 1;
        assert_eq!(created.mod_revision, expected, "create #{step} revision");
        assert_eq!(
            revision(store).await,
            expected,
            "current revision after create"
        );
        let _ = store.create(&key, value("again")).await;
        let updated = ok(store.update(&key, value("b"), None).await, "update");
        expected += 1;
        assert_eq!(updated.mod_revision, expected, "update #{step} revision");
        let _ = store
            .update(&key, value("c"), Some(created.mod_revision))
            .await;
        let deleted = ok(store.delete(&key, None).await, "delete");
        expected += 1;
        assert_eq!(deleted.mod_revision, expected, "delete #{step} revision");
        assert_eq!(
            revision(store).await,
            expected,
            "current revision after delete"
        );
    }
    assert_eq!(expected, base + 15);
}

/// `create_revision` is set by the creating write and kept by updates; `mod_revision` follows
/// every write; re-creating a deleted key starts a new incarnation.
pub async fn create_and_mod_revisions_track_writes(store: &dyn Store) {
    let created = ok(store.create("/m/key", value("v1")).await, "create");
    assert_eq!(created.create_revision, created.mod_revision, "fresh key");
    assert_eq!(&*created.value, b"v1");
    let updated = ok(store.update("/m/key", value("v2"), None).await, "update");
    assert_eq!(
        updated.create_revision, created.create_revision,
        "update keeps create_revision"
    );
    assert!(
        updated.mod_revision > created.mod_revision,
        "update moves mod_revision"
    );
    assert_eq!(ok(store.get("/m/key").await, "get"), Some(updated.clone()));
    let conditional = ok(
        store
            .update("/m/key", value("v3"), Some(updated.mod_revision))
            .await,
        "update with current revision",
    );
    assert_eq!(conditional.create_revision, created.create_revision);
    assert_eq!(&*conditional.value, b"v3");
    ok(store.delete("/m/key", None).await, "delete");
    let recreated = ok(store.create("/m/key", value("v4")).await, "re-create");
    assert!(
        recreated.create_revision > conditional.mod_revision,
        "a re-created key has a new create_revision"
    );
    assert_eq!(recreated.create_revision, recreated.mod_revision);
}

/// Of many concurrent updates requiring the same revision, exactly one wins; every other one
/// fails with a `Conflict` naming the winner's revision.
pub async fn concurrent_updates_with_same_expected_revision_one_wins(store: &dyn Store) {
    let created = ok(store.create("/occ/key", value("start")).await, "create");
    let attempts = join_all((0..16).map(|attempt| {
        store.update(
            "/occ/key",
            value(&format!("writer {attempt}")),
            Some(created.mod_revision),
        )
    }))
    .await;
    let winners: Vec<&KeyValue> = attempts.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one update may win, got {attempts:?}"
    );
    let winner = winners[0];
    for attempt in &attempts {
        match attempt {
            Ok(_) => {}
            Err(StoreError::Conflict {
                key,
                expected,
                actual,
            }) => {
                assert_eq!(key, "/occ/key");
                assert_eq!(*expected, created.mod_revision);
                assert_eq!(
                    *actual, winner.mod_revision,
                    "conflict reports the winner's revision"
                );
            }
            Err(other) => panic!("losing update: want Conflict, got {other}"),
        }
    }
    let stored = ok(store.get("/occ/key").await, "get").expect("key exists");
    assert_eq!(&stored, winner, "the stored value is the winner's");
    assert_eq!(
        revision(store).await,
        created.mod_revision + 1,
        "losers take no revision"
    );
}

/// Delete with a stale expected revision conflicts and keeps the key; with the current one it
/// returns the last value stamped with the deletion's revision.
pub async fn delete_honours_expected_revision(store: &dyn Store) {
    let created = ok(store.create("/del/key", value("v1")).await, "create");
    let updated = ok(store.update("/del/key", value("v2"), None).await, "update");
    match store.delete("/del/key", Some(created.mod_revision)).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!(expected, created.mod_revision);
            assert_eq!(actual, updated.mod_revision);
        }
        other => panic!("delete with stale revision: want Conflict, got {other:?}"),
    }
    assert_eq!(
        ok(store.get("/del/key").await, "get"),
        Some(updated.clone())
    );
    let deleted = ok(
        store.delete("/del/key", Some(updated.mod_revision)).await,
        "delete with current revision",
    );
    assert_eq!(&*deleted.value, b"v2", "delete returns the last value");
    assert_eq!(deleted.create_revision, created.create_revision);
    assert_eq!(
        deleted.mod_revision,
        updated.mod_revision + 1,
        "delete takes a revision"
    );
    assert_eq!(revision(store).await, deleted.mod_revision);
    assert_eq!(ok(store.get("/del/key").await, "get after delete"), None);
}

fn keys(items: &[KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

/// Lists come back in byte order of keys and report the store's current revision.
pub async fn list_returns_keys_in_order_at_current_revision(store: &dyn Store) {
    for key in ["/k/c", "/k/a/x", "/k/b", "/k/a", "/k/B"] {
        ok(store.create(key, value(key)).await, "create");
    }
    ok(store.create("/other", value("x")).await, "create /other");
    let listed = ok(store.list("/k/", None, None).await, "list /k/");
    assert_eq!(
        keys(&listed.items),
        ["/k/B", "/k/a", "/k/a/x", "/k/b", "/k/c"]
    );
    for kv in &listed.items {
        assert_eq!(&*kv.value, kv.key.as_bytes(), "value of {}", kv.key);
    }
    assert_eq!(listed.remaining, 0);
    assert_eq!(
        listed.revision,
        revision(store).await,
        "a list reflects the latest revision, even when written elsewhere"
    );
    let empty = ok(
        store.list("/nothing/", None, None).await,
        "list empty prefix",
    );
    assert!(empty.items.is_empty());
    assert_eq!(empty.revision, listed.revision);
}

/// Listing `/a/b/` never returns keys of the sibling `/a/bc/`, nor the key `/a/b` itself.
pub async fn list_isolates_sibling_prefixes(store: &dyn Store) {
    for key in ["/a/b", "/a/b/1", "/a/b/2", "/a/bc/1", "/a/bc"] {
        ok(store.create(key, value("x")).await, "create");
    }
    let b = ok(store.list("/a/b/", None, None).await, "list /a/b/");
    assert_eq!(keys(&b.items), ["/a/b/1", "/a/b/2"]);
    let bc = ok(store.list("/a/bc/", None, None).await, "list /a/bc/");
    assert_eq!(keys(&bc.items), ["/a/bc/1"]);
    let page = ok(
        store.list("/a/b/", Some("/a/b/1"), None).await,
        "list /a/b/ after 1",
    );
    assert_eq!(
        keys(&page.items),
        ["/a/b/2"],
        "paging stays within the prefix"
    );
}

/// `start_after` + `limit` walk a prefix page by page, with `remaining` counting what is left.
pub async fn list_paginates_with_start_after_and_limit(store: &dyn Store) {
    let all: Vec<String> = (0..25).map(|n| format!("/page/{n:02}")).collect();
    for key in &all {
        ok(store.create(key, value(key)).await, "create");
    }
    ok(
        store.create("/pagez", value("outside")).await,
        "create outside prefix",
    );
    let mut seen = Vec::new();
    let mut start_after: Option<String> = None;
    let mut remainders = Vec::new();
    loop {
        let page = ok(
            store.list("/page/", start_after.as_deref(), Some(10)).await,
            "list page",
        );
        assert!(page.items.len() <= 10, "a page holds at most limit items");
        seen.extend(page.items.iter().map(|kv| kv.key.clone()));
        remainders.push(page.remaining);
        start_after = page.items.last().map(|kv| kv.key.clone());
        if page.remaining == 0 {
            break;
        }
        assert!(
            remainders.len() < 10,
            "pagination does not terminate: {remainders:?}"
        );
    }
    assert_eq!(seen, all, "pages cover every key once, in order");
    assert_eq!(remainders, [15, 5, 0]);

    // A page boundary key deleted between pages still works as a cursor.
    ok(store.delete("/page/09", None).await, "delete cursor key");
    let next = ok(
        store.list("/page/", Some("/page/09"), Some(2)).await,
        "list after deleted",
    );
    assert_eq!(keys(&next.items), ["/page/10", "/page/11"]);
    assert_eq!(next.remaining, 13);
    let whole = ok(
        store.list("/page/", None, Some(100)).await,
        "list with large limit",
    );
    assert_eq!(whole.items.len(), 24);
    assert_eq!(whole.remaining, 0);
}

/// `list_uncounted` returns the same pages as `list`, with `remaining` reduced to 1 (more keys
/// follow) or 0 (the prefix is exhausted).
pub async fn list_uncounted_pages_like_list_and_only_says_whether_more_follow(store: &dyn Store) {
    for n in 0..7 {
        let key = format!("/unc/{n}");
        ok(store.create(&key, value(&key)).await, "create");
    }
    ok(
        store.create("/uncz", value("outside")).await,
        "create outside prefix",
    );
    let cases: [(Option<&str>, Option<usize>, usize); 6] = [
        (None, None, 0),
        (None, Some(3), 1),
        (Some("/unc/2"), Some(3), 1),
        (Some("/unc/3"), Some(3), 0),
        (Some("/unc/6"), Some(3), 0),
        (None, Some(0), 1),
    ];
    for (start_after, limit, want_remaining) in cases {
        let counted = ok(store.list("/unc/", start_after, limit).await, "list");
        let uncounted = ok(
            store.list_uncounted("/unc/", start_after, limit).await,
            "list_uncounted",
        );
        assert_eq!(
            keys(&uncounted.items),
            keys(&counted.items),
            "same page after {start_after:?} limit {limit:?}"
        );
        assert_eq!(uncounted.revision, counted.revision);
        assert_eq!(
            uncounted.remaining, want_remaining,
            "more-follow flag after {start_after:?} limit {limit:?}"
        );
    }
}

/// A watch from revision R replays exactly the events after R, in order, with their previous
/// values, then continues with live ones.
pub async fn watch_replays_exactly_the_later_events(store: &dyn Store) {
    let first = ok(store.create("/w/a", value("a1")).await, "create a");
    let second = ok(store.update("/w/a", value("a2"), None).await, "update a");
    ok(store.create("/w/b", value("b1")).await, "create b");
    ok(store.delete("/w/a", None).await, "delete a");
    let start = first.mod_revision;

    let mut watch = open_watch(store, "/w/", start).await;
    let updated = next_event(&mut watch, "replayed update").await;
    assert_event(
        &updated,
        EventKind::Updated,
        "/w/a",
        start + 1,
        "a2",
        "replayed update",
    );
    assert_eq!(
        updated.prev,
        Some(first.clone()),
        "an update carries the previous value"
    );
    assert_eq!(updated.kv.create_revision, first.create_revision);
    let created = next_event(&mut watch, "replayed create").await;
    assert_event(
        &created,
        EventKind::Created,
        "/w/b",
        start + 2,
        "b1",
        "replayed create",
    );
    assert_eq!(created.prev, None, "a create has no previous value");
    let deleted = next_event(&mut watch, "replayed delete").await;
    assert_event(
        &deleted,
        EventKind::Deleted,
        "/w/a",
        start + 3,
        "a2",
        "replayed delete",
    );
    assert_eq!(deleted.prev, Some(second));

    ok(store.create("/w/c", value("c1")).await, "create c");
    let live = next_event(&mut watch, "live create").await;
    assert_event(
        &live,
        EventKind::Created,
        "/w/c",
        start + 4,
        "c1",
        "live create",
    );

    let mut from_start = open_watch(store, "/w/", start - 1).await;
    let replayed_first = next_event(&mut from_start, "watch from before the first write").await;
    assert_event(
        &replayed_first,
        EventKind::Created,
        "/w/a",
        start,
        "a1",
        "first event",
    );
}

/// Watches opened while many writers run each see every later event exactly once, in order.
pub async fn watch_started_during_concurrent_writes_sees_each_event_once(store: &dyn Store) {
    const WRITERS: usize = 8;
    const WRITES_EACH: usize = 40;
    let base = revision(store).await;
    let writers = join_all((0..WRITERS).map(|writer| async move {
        for n in 0..WRITES_EACH {
            let key = format!("/race/{writer}/{n}");
            ok(store.create(&key, value(&key)).await, "concurrent create");
        }
    }));
    let watchers = async {
        let mut watches = Vec::new();
        for round in 0..12 {
            // Half start from the beginning (replay while writes race), half from "now".
            let after = if round % 2 == 0 {
                base
            } else {
                revision(store).await
            };
            watches.push((after, open_watch(store, "/race/", after).await));
            tokio::task::yield_now().await;
        }
        watches
    };
    let (_, watches) = futures::join!(writers, watchers);
    let last = base + (WRITERS * WRITES_EACH) as Revision;
    assert_eq!(revision(store).await, last, "every write took one revision");
    for (after, mut watch) in watches {
        let mut expected = after + 1;
        while expected <= last {
            let context = format!("watch after {after}");
            let event = next_event(&mut watch, &context).await;
            assert_eq!(
                event.revision, expected,
                "{context}: gap, duplicate or reordering"
            );
            assert_eq!(event.kind, EventKind::Created);
            expected += 1;
        }
    }
}

/// A watch sees only keys under its prefix; `/p/` does not see `/p2/` or `/q/`.
pub async fn watch_filters_by_prefix(store: &dyn Store) {
    let start = revision(store).await;
    ok(
        store.create("/p2/replayed", value("no")).await,
        "create /p2/replayed",
    );
    ok(
        store.create("/p/replayed", value("yes")).await,
        "create /p/replayed",
    );
    let mut watch = open_watch(store, "/p/", start).await;
    let replayed = next_event(&mut watch, "replay under prefix").await;
    assert_eq!(
        replayed.kv.key, "/p/replayed",
        "replay skips other prefixes"
    );
    for key in ["/p2/x", "/q/x", "/p", "/"] {
        ok(
            store.create(key, value("no")).await,
            "create outside prefix",
        );
    }
    let inside = ok(
        store.create("/p/live", value("yes")).await,
        "create /p/live",
    );
    let live = next_event(&mut watch, "live under prefix").await;
    assert_eq!(
        live.kv.key, "/p/live",
        "live events outside the prefix are skipped"
    );
    assert_eq!(live.revision, inside.mod_revision);
}

/// A delete event carries the deleted key's last value, its create revision and the deletion's
/// revision, and the value before as `prev`.
pub async fn delete_event_carries_last_value(store: &dyn Store) {
    let created = ok(store.create("/d/key", value("first")).await, "create");
    let updated = ok(store.update("/d/key", value("last"), None).await, "update");
    let mut watch = open_watch(store, "/d/", updated.mod_revision).await;
    let deleted = ok(store.delete("/d/key", None).await, "delete");
    let event = next_event(&mut watch, "delete event").await;
    assert_event(
        &event,
        EventKind::Deleted,
        "/d/key",
        deleted.mod_revision,
        "last",
        "delete event",
    );
    assert_eq!(event.kv.create_revision, created.create_revision);
    assert_eq!(event.kv, deleted, "the event's kv is what delete returned");
    assert_eq!(event.prev, Some(updated));
}

/// After compaction at C, a watch needing an event at or below C fails with `Compacted`; a watch
/// after C works; current state is untouched; compaction never goes backwards.
pub async fn compaction_limits_where_watches_start(store: &dyn Store) {
    let base = revision(store).await;
    for n in 1..=4 {
        ok(
            store.create(&format!("/cmp/{n}"), value("x")).await,
            "create",
        );
    }
    let compact_at = base + 2;
    ok(store.compact(compact_at).await, "compact");
    assert_eq!(
        ok(store.compacted_revision().await, "compacted revision"),
        compact_at
    );

    match store.watch("/cmp/", compact_at - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, compact_at - 1);
            assert_eq!(compacted, compact_at);
        }
        Err(other) => panic!("watch before compaction point: want Compacted, got {other}"),
        Ok(_) => panic!("watch before compaction point: want Compacted, got a stream"),
    }
    let mut watch = open_watch(store, "/cmp/", compact_at).await;
    let event = next_event(&mut watch, "watch right after compaction point").await;
    assert_eq!(event.revision, compact_at + 1);
    assert_eq!(
        next_event(&mut watch, "second event").await.revision,
        compact_at + 2
    );

    let listed = ok(
        store.list("/cmp/", None, None).await,
        "list after compaction",
    );
    assert_eq!(listed.items.len(), 4, "compaction keeps current values");
    ok(
        store.compact(base + 1).await,
        "compacting an older revision is a no-op",
    );
    assert_eq!(
        ok(store.compacted_revision().await, "compacted revision"),
        compact_at
    );
    let future = revision(store).await + 10;
    assert!(
        store.compact(future).await.is_err(),
        "compacting a future revision must fail"
    );
    assert_eq!(
        ok(store.compacted_revision().await, "compacted revision"),
        compact_at
    );
}

/// A watch from a revision not yet reached waits and starts delivering after it.
pub async fn watch_from_future_revision_waits_for_it(store: &dyn Store) {
    let now = revision(store).await;
    let mut watch = open_watch(store, "/f/", now + 2).await;
    for n in 1..=3 {
        ok(store.create(&format!("/f/{n}"), value("x")).await, "create");
    }
    let event = next_event(&mut watch, "first event after the future revision").await;
    assert_eq!(event.revision, now + 3);
    assert_eq!(event.kv.key, "/f/3");
}
