//! [`EtcdStore`] on a real three-member etcd cluster (Debian's `etcd-server`, on loopback):
//! with one member dead every call succeeds once a leader is elected (a call refused by the
//! dead member is sent to another), without quorum a write fails within the request timeout (`Timeout`, etcd's own refusal, or the lost connection to the member it was sent to), and
//! writes resume when a member returns.

use std::time::{Duration, Instant};

use skiff_store::test_etcd::TestEtcdCluster;
use skiff_store::{EtcdOptions, EtcdStore, Store, StoreError};

/// Short, so the test of a lost quorum is quick; far above a healthy loopback round trip.
const TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_with_a_member_down_and_fail_in_bounded_time_without_quorum() {
    let mut cluster = TestEtcdCluster::start(3);
    let endpoints: Vec<String> = cluster.endpoints().split(',').map(str::to_string).collect();
    let mut options = EtcdOptions::new(endpoints);
    options.request_timeout = TIMEOUT;
    let store = EtcdStore::connect(options).await.expect("connect");
    store
        .create("/k/before", b"v".to_vec())
        .await
        .expect("a write with every member up");

    cluster.kill(0);
    // If the dead member led, the others elect a new leader first: a write in flight meanwhile
    // may time out (as for any etcd client), and may still be applied. Once a leader is there,
    // every call must succeed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.create("/k/after-kill", b"v".to_vec()).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => break,
            Err(error) => assert!(
                Instant::now() < deadline,
                "no write succeeded within 30 s of losing one member of three: {error}"
            ),
        }
    }
    // Enough calls that the client picks the dead member for some of them.
    for n in 0..30 {
        let key = format!("/k/one-down-{n}");
        store
            .create(&key, b"v".to_vec())
            .await
            .unwrap_or_else(|e| panic!("write {n} with one member down: {e}"));
        let read = store.get(&key).await.expect("a read with one member down");
        assert!(read.is_some(), "{key} was written");
        store
            .list("/k/", None, None)
            .await
            .expect("a list with one member down");
    }

    cluster.kill(1);
    let started = Instant::now();
    let error = store
        .create("/k/no-quorum", b"v".to_vec())
        .await
        .expect_err("a write without quorum must fail");
    let took = started.elapsed();
    // The surviving member refuses it (`etcdserver: request timed out`), the member it was
    // sent to dies under it (the client may still hold a connection to the member just
    // killed), or no member answers within the timeout.
    match &error {
        StoreError::Backend(message) => assert!(
            message.starts_with("etcdserver: ")
                || message.contains("the connection to the member closed before it answered"),
            "{message}"
        ),
        StoreError::Timeout(message) => assert!(message.contains("answer"), "{message}"),
        other => panic!("want etcd's refusal or a timeout, got {other:?}"),
    }
    assert!(
        took < TIMEOUT + Duration::from_secs(2),
        "the write failed after {took:?}, not within the {TIMEOUT:?} timeout"
    );

    cluster.restart(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.create("/k/quorum-back", b"v".to_vec()).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => break,
            Err(error) => assert!(
                Instant::now() < deadline,
                "writes did not resume once quorum was back: {error}"
            ),
        }
    }
    let listed = store.list("/k/", None, None).await.expect("list");
    // The refused write may still be applied once quorum is back, as with any timed-out
    // proposal; every acknowledged one must be there.
    let kept = listed
        .items
        .iter()
        .filter(|kv| kv.key != "/k/no-quorum")
        .count();
    assert_eq!(kept, 1 + 1 + 30 + 1, "every acknowledged write is kept");
}
