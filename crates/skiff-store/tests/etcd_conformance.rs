//! The conformance suite against [`EtcdStore`] on a real single-member etcd (Debian's
//! `etcd-server`), one per test, plus what only a networked store shows: compaction done by
//! etcd, etcd dying under a watch, calls bounded while etcd is down, durability across an etcd
//! crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skiff_store::conformance;
use skiff_store::test_etcd::{ServerTls, TestEtcd};
use skiff_store::{EtcdOptions, EtcdStore, EtcdTls, Revision, Store, StoreError, WatchEvent};

/// Short, so the tests of a dead etcd are quick; far above a healthy loopback round trip.
const TIMEOUT: Duration = Duration::from_secs(3);

async fn connect(etcd: &TestEtcd) -> EtcdStore {
    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = TIMEOUT;
    EtcdStore::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", etcd.endpoint()))
}

macro_rules! conformance_tests {
    ($($property:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $property() {
                let etcd = TestEtcd::start();
                conformance::$property(&connect(&etcd).await).await;
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
async fn run_all_passes_on_one_etcd_with_a_store_per_prefix() {
    // The suite assumes nothing about the starting revision, so stores under distinct root
    // prefixes of one etcd each count as fresh.
    let etcd = TestEtcd::start();
    let mut count = 0;
    let endpoint = etcd.endpoint();
    conformance::run_all(|| {
        count += 1;
        let mut options = EtcdOptions::new(vec![endpoint.clone()]);
        options.root_prefix = format!("/suite-{count}");
        options.request_timeout = TIMEOUT;
        async move { Box::new(EtcdStore::connect(options).await.expect("connect")) as Box<dyn Store> }
    })
    .await;
    assert_eq!(count, 16, "run_all makes one store per property");
}

async fn next(
    watch: &mut futures::stream::BoxStream<'static, Result<WatchEvent, StoreError>>,
) -> Result<WatchEvent, StoreError> {
    match tokio::time::timeout(conformance::WAIT, watch.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the watch ended without an error item"),
        Err(_) => panic!("no watch item within {:?}", conformance::WAIT),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_did_not_compact_learns_the_compacted_revision_from_etcd() {
    let etcd = TestEtcd::start();
    let compacting = connect(&etcd).await;
    for n in 0..10 {
        compacting
            .create(&format!("/c/{n}"), vec![1])
            .await
            .expect("create");
    }
    let at: Revision = compacting.current_revision().await.expect("revision") - 3;
    compacting.compact(at).await.expect("compact");

    // Another server on the same etcd never saw the compaction.
    let other = connect(&etcd).await;
    assert_eq!(
        other
            .compacted_revision()
            .await
            .expect("compacted revision"),
        at,
        "found by probing etcd"
    );
    match other.watch("/c/", at - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (at - 1, at)),
        Err(other) => panic!("want Compacted, got {other}"),
        Ok(_) => panic!("want Compacted, got a stream"),
    }
    match other.watch("/c/", 0).await {
        Err(StoreError::Compacted { requested: 0, .. }) => {}
        Err(other) => panic!("watch from 0: want Compacted, got {other}"),
        Ok(_) => panic!("watch from 0: want Compacted, got a stream"),
    }
    let mut watch = other
        .watch("/c/", at)
        .await
        .expect("watch after compaction");
    let event = next(&mut watch).await.expect("replayed event");
    assert_eq!(event.revision, at + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restart_ends_a_watch_with_an_error_and_a_new_watch_resumes_without_gap() {
    let mut etcd = TestEtcd::start();
    let store = connect(&etcd).await;
    let first = store.create("/r/1", b"one".to_vec()).await.expect("create");
    let mut watch = store.watch("/r/", 0).await.expect("watch");
    assert_eq!(
        next(&mut watch).await.expect("event").revision,
        first.mod_revision
    );

    etcd.kill();
    match next(&mut watch).await {
        Err(StoreError::Backend(message)) => assert!(message.contains("etcd"), "{message}"),
        Ok(event) => panic!("no event can follow etcd's death, got {event:?}"),
        Err(other) => panic!("want a Backend error, got {other}"),
    }
    let after_error = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
    assert!(
        matches!(after_error, Ok(None)),
        "nothing follows the error: {after_error:?}"
    );

    etcd.restart();
    let second = retry_until_up(|| store.create("/r/2", b"two".to_vec())).await;
    assert_eq!(
        second.mod_revision,
        first.mod_revision + 1,
        "etcd kept its revision across the restart"
    );
    let mut resumed = store
        .watch("/r/", first.mod_revision)
        .await
        .expect("watch again from the last revision seen");
    let event = next(&mut resumed).await.expect("event");
    assert_eq!(
        event.kv.key, "/r/2",
        "the next change, no gap and no repeat"
    );
    assert_eq!(event.revision, second.mod_revision);
}

/// Retries `op` until etcd answers again; fails the test past a deadline.
async fn retry_until_up<T, F, Fut>(mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(StoreError::Backend(message) | StoreError::Timeout(message))
                if Instant::now() < deadline =>
            {
                let _ = message;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the store did not recover after etcd came back: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_within_the_timeout_while_etcd_is_down_and_work_when_it_returns() {
    let mut etcd = TestEtcd::start();
    let store = Arc::new(connect(&etcd).await);
    store
        .create("/down/a", b"a".to_vec())
        .await
        .expect("create");
    etcd.kill();

    let bound = TIMEOUT + Duration::from_secs(2);
    let started = Instant::now();
    let write = tokio::time::timeout(bound, store.create("/down/b", b"b".to_vec())).await;
    match write {
        Ok(Err(StoreError::Timeout(message))) => assert!(message.contains("etcd"), "{message}"),
        Ok(other) => panic!("a write with etcd down: want a Timeout error, got {other:?}"),
        Err(_) => panic!("a write with etcd down hung past {bound:?}"),
    }
    for (what, result) in [
        (
            "get",
            tokio::time::timeout(bound, store.get("/down/a"))
                .await
                .map(|r| r.map(|_| ())),
        ),
        (
            "list",
            tokio::time::timeout(bound, store.list("/down/", None, None))
                .await
                .map(|r| r.map(|_| ())),
        ),
        (
            "watch",
            tokio::time::timeout(bound, store.watch("/down/", 0))
                .await
                .map(|r| r.map(|_| ())),
        ),
    ] {
        match result {
            Ok(Err(StoreError::Timeout(_))) => {}
            Ok(other) => panic!("{what} with etcd down: want a Timeout error, got {other:?}"),
            Err(_) => panic!("{what} with etcd down hung past {bound:?}"),
        }
    }
    assert!(
        started.elapsed() < bound * 4,
        "each call is bounded by the timeout"
    );

    etcd.restart();
    retry_until_up(|| store.create("/down/b", b"b".to_vec())).await;
    let listed = store
        .list("/down/", None, None)
        .await
        .expect("list after recovery");
    let keys: Vec<&str> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["/down/a", "/down/b"],
        "the failed write left nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_an_etcd_that_stopped_answering_fail_after_the_timeout_not_hang() {
    let etcd = TestEtcd::start();
    let store = connect(&etcd).await;
    store
        .create("/frozen/a", b"a".to_vec())
        .await
        .expect("create");
    etcd.pause();
    let bound = TIMEOUT + Duration::from_secs(2);
    let started = Instant::now();
    let write = tokio::time::timeout(bound, store.update("/frozen/a", b"b".to_vec(), None)).await;
    let took = started.elapsed();
    match write {
        Ok(Err(StoreError::Timeout(message))) => {
            assert!(message.contains("no answer within"), "{message}")
        }
        Ok(other) => panic!("a write to a frozen etcd: want a Timeout error, got {other:?}"),
        Err(_) => panic!("a write to a frozen etcd hung past {bound:?}"),
    }
    assert!(
        took >= TIMEOUT,
        "it waited the whole timeout first ({took:?})"
    );
    let read = tokio::time::timeout(bound, store.get("/frozen/a")).await;
    assert!(
        matches!(read, Ok(Err(StoreError::Timeout(_)))),
        "a read to a frozen etcd: {read:?}"
    );

    etcd.resume();
    let value = retry_until_up(|| store.get("/frozen/a"))
        .await
        .expect("the key");
    // The timed-out write may or may not have been applied: the message says so.
    assert!(matches!(&*value.value, b"a" | b"b"));
    store
        .update("/frozen/a", b"c".to_vec(), None)
        .await
        .expect("writes work once etcd answers again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_an_etcd_that_stopped_answering_ends_with_an_error() {
    let etcd = TestEtcd::start();
    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = Duration::from_secs(2);
    options.keepalive_interval = Duration::from_secs(1);
    let store = EtcdStore::connect(options).await.expect("connect");
    let created = store
        .create("/quiet/a", b"a".to_vec())
        .await
        .expect("create");
    let mut watch = store.watch("/quiet/", 0).await.expect("watch");
    assert_eq!(
        next(&mut watch).await.expect("event").revision,
        created.mod_revision
    );

    etcd.pause();
    // An unanswered ping (1 s apart, 2 s to answer) breaks the connection well within this.
    let bound = Duration::from_secs(8);
    match tokio::time::timeout(bound, watch.next()).await {
        Ok(Some(Err(StoreError::Backend(message)))) => {
            assert!(message.contains("etcd"), "{message}")
        }
        Ok(other) => panic!("want a Backend error ending the watch, got {other:?}"),
        Err(_) => panic!("the watch stayed silent past {bound:?} on a frozen etcd"),
    }
    etcd.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_etcd_being_killed() {
    let mut etcd = TestEtcd::start();
    let store = Arc::new(connect(&etcd).await);
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..25 {
                    let kv = store
                        .create(&format!("/dur/{writer}/{n:02}"), vec![writer as u8; 64])
                        .await
                        .expect("create");
                    acknowledged.push(kv);
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    etcd.kill();
    etcd.restart();
    let listed = retry_until_up(|| store.list("/dur/", None, None)).await;
    acknowledged.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        listed.items, acknowledged,
        "same keys, values and revisions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_outlives_the_request_timeout() {
    let etcd = TestEtcd::start();
    let store = connect(&etcd).await;
    let mut watch = store.watch("/idle/", 0).await.expect("watch");
    // The timeout bounds each call, not the life of a watch: idle for longer than it.
    tokio::time::sleep(TIMEOUT * 2).await;
    let created = store
        .create("/idle/k", b"v".to_vec())
        .await
        .expect("create");
    let event = next(&mut watch)
        .await
        .expect("an event after the idle time");
    assert_eq!(event.revision, created.mod_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_watches_larger_than_grpc_s_default_message_limit_come_back_whole() {
    const MIB: usize = 1024 * 1024;
    let etcd = TestEtcd::start();
    let store = connect(&etcd).await;
    // etcd takes requests up to 1.5 MiB; six 1 MiB values make a 6 MiB answer.
    for n in 0..6 {
        store
            .create(&format!("/big/{n}"), vec![n as u8; MIB])
            .await
            .expect("create a 1 MiB value");
    }
    let listed = store.list("/big/", None, None).await.expect("list 6 MiB");
    assert_eq!(listed.items.len(), 6);
    assert!(listed.items.iter().all(|kv| kv.value.len() == MIB));
    let mut watch = store.watch("/big/", 0).await.expect("watch");
    for n in 0..6 {
        let event = next(&mut watch).await.expect("replayed 1 MiB event");
        assert_eq!(event.kv.key, format!("/big/{n}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_outside_the_prefix_pages_within_it() {
    let etcd = TestEtcd::start();
    let store = connect(&etcd).await;
    for key in ["/a", "/m/1", "/m/2", "/z"] {
        store.create(key, b"x".to_vec()).await.expect("create");
    }
    let keys = |list: skiff_store::ListResult| -> Vec<String> {
        list.items.into_iter().map(|kv| kv.key).collect()
    };
    let before = store.list("/m/", Some("/a"), None).await.expect("list");
    assert_eq!(keys(before), ["/m/1", "/m/2"], "a cursor before the prefix");
    let after = store.list("/m/", Some("/y"), None).await.expect("list");
    assert_eq!(after.remaining, 0);
    assert!(keys(after).is_empty(), "a cursor after the prefix");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_values_carry_what_the_installed_extractor_computes() {
    let etcd = TestEtcd::start();
    let store = connect(&etcd).await;
    store
        .create("/k/before", b"old".to_vec())
        .await
        .expect("create");
    let before = store.get("/k/before").await.expect("get").expect("present");
    assert!(
        before.extracted.is_none(),
        "no extractor, nothing extracted"
    );

    store.set_extractor(Arc::new(UpperCase)).expect("install");
    let before = store.get("/k/before").await.expect("get").expect("present");
    assert_eq!(extracted(&before), Some("OLD"), "values already stored");
    store
        .create("/k/a", b"first".to_vec())
        .await
        .expect("create");
    store
        .create("/k/b", b"#declined".to_vec())
        .await
        .expect("create");
    let written = store
        .update("/k/before", b"new".to_vec(), None)
        .await
        .expect("update");
    assert_eq!(extracted(&written), Some("NEW"), "the answer to a write");
    let listed = store.list("/k/", None, None).await.expect("list");
    let seen: Vec<(&str, Option<&str>)> = listed
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), extracted(kv)))
        .collect();
    assert_eq!(
        seen,
        [
            ("/k/a", Some("FIRST")),
            ("/k/b", None),
            ("/k/before", Some("NEW"))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_without_client_certificates_are_refused_at_connect() {
    let options = EtcdOptions::new(vec!["https://127.0.0.1:1".to_string()]);
    match EtcdStore::connect(options).await {
        Err(StoreError::Backend(message)) => assert!(message.contains("certificate"), "{message}"),
        Err(other) => panic!("want Backend, got {other}"),
        Ok(_) => panic!("https without certificates must be refused"),
    }
}

/// A certificate authority, and certificates it signs, written as PEM files into `dir`.
struct Authority {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

impl Authority {
    fn new(dir: &std::path::Path, name: &str) -> (Authority, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-sign CA");
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, cert.pem()).expect("write CA");
        (Authority { params, key }, path)
    }

    /// Signs a certificate for `usage`, valid for 127.0.0.1; returns (cert, key) files.
    fn sign(
        &self,
        dir: &std::path::Path,
        name: &str,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::IpAddr::from([
            127, 0, 0, 1,
        ]))];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        (cert_file, key_file)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_work_with_client_certificates_and_refuse_strangers() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let pki = tempfile::tempdir().expect("temp dir");
    let (ca, ca_file) = Authority::new(pki.path(), "etcd-ca");
    let (server_cert, server_key) = ca.sign(pki.path(), "etcd-server", ServerAuth);
    let (client_cert, client_key) = ca.sign(pki.path(), "skiff", ClientAuth);
    let etcd = TestEtcd::start_tls(ServerTls {
        ca_file: ca_file.clone(),
        cert_file: server_cert,
        key_file: server_key,
    });
    assert!(etcd.endpoint().starts_with("https://"));

    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = TIMEOUT;
    options.tls = Some(EtcdTls {
        ca_file: ca_file.clone(),
        cert_file: client_cert,
        key_file: client_key,
    });
    let store = EtcdStore::connect(options.clone())
        .await
        .expect("connect with a client certificate");
    let created = store
        .create("/tls/k", b"v".to_vec())
        .await
        .expect("create over TLS");
    assert_eq!(store.get("/tls/k").await.expect("get"), Some(created));

    // A client certificate from another authority is refused by etcd.
    let (stranger, _) = Authority::new(pki.path(), "other-ca");
    let (stranger_cert, stranger_key) = stranger.sign(pki.path(), "stranger", ClientAuth);
    options.tls = Some(EtcdTls {
        ca_file,
        cert_file: stranger_cert,
        key_file: stranger_key,
    });
    match EtcdStore::connect(options).await {
        Err(StoreError::Backend(message)) => assert!(message.contains("etcd"), "{message}"),
        Err(other) => panic!("want Backend, got {other}"),
        Ok(_) => panic!("etcd must refuse a client certificate it did not sign"),
    }
}
