//! Snapshots of objects the request path reads on every request or write, kept until a write to
//! their kind, instead of re-listing them from the store each time: the RBAC objects the
//! authorizer decides from, the webhook configurations dynamic admission matches against, each
//! namespace's ResourceQuotas quota admission charges, and the admission policies and bindings.
//!
//! Freshness: [`WriteTrackingStore`] wraps the registry's store and bumps a cache's generation
//! counter after every write to a key under that cache's prefixes returns, so before the
//! writer's caller is answered. A snapshot is tagged with the generation read *before* its
//! lists began; it is used only while the generation still equals its tag. A write
//! acknowledged before a request therefore always makes that request re-list (or use a
//! snapshot listed after the write), never a stale one.
//!
//! Writes through other servers sharing the store (several servers on one etcd) are seen
//! through the store's watch: [`WriteTrackingStore::follow_store`] watches every cache's
//! prefixes and retires a cache for each change under them that this server did not already
//! retire it for. While those watches are not running (before the first one starts, or after
//! one broke until it is watching again) the caches serve nothing, so every request reads the
//! store: a broken watch never leaves a stale snapshot in use.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use skiff_auth::rbac::RbacSnapshot;
use skiff_store::{KeyValue, ListResult, Revision, Store, StoreError, ValueExtractor, WatchEvent};

/// The store prefix of the four RBAC kinds (`/registry/<group>/<plural>/...`).
pub const RBAC_KEY_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// Snapshots of type `T`, one per key `K` (a namespace, or `()` for one snapshot), and the
/// generation of writes they reflect; shared by every clone of a registry.
pub struct SnapshotCache<T, K = ()> {
    generation: AtomicU64,
    /// Set while writes through other servers could go unseen (the store's watch is not
    /// running): nothing is served then.
    suspended: AtomicBool,
    snapshots: Mutex<HashMap<K, (u64, Arc<T>)>>,
}

impl<T, K> Default for SnapshotCache<T, K> {
    fn default() -> Self {
        SnapshotCache {
            generation: AtomicU64::new(0),
            suspended: AtomicBool::new(false),
            snapshots: Mutex::new(HashMap::new()),
        }
    }
}

/// The authorizer's cached RBAC snapshot.
pub type RbacCache = SnapshotCache<RbacSnapshot>;

/// The webhooks of every MutatingWebhookConfiguration, then of every
/// ValidatingWebhookConfiguration, each kind's configurations taken by name.
pub type WebhookConfigurations = (Vec<Value>, Vec<Value>);

/// The webhook configurations dynamic admission matches writes against.
pub type WebhookCache = SnapshotCache<WebhookConfigurations>;

/// Each namespace's ResourceQuotas, sorted by name, as quota admission reads them.
pub type QuotaCache = SnapshotCache<Vec<Value>, String>;

impl<T, K: Eq + Hash> SnapshotCache<T, K> {
    /// The number of writes seen so far; read before listing to tag a new snapshot.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Marks every cached snapshot out of date; called once a write of the kind has returned.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    /// The snapshot kept under `key`, if no write happened since its lists began.
    pub fn current_for(&self, key: &K) -> Option<Arc<T>> {
        self.current_tagged_for(key).map(|(_, snapshot)| snapshot)
    }

    /// The snapshot kept under `key` with the generation its lists began at, if no write
    /// happened since.
    pub fn current_tagged_for(&self, key: &K) -> Option<(u64, Arc<T>)> {
        if self.suspended.load(Ordering::SeqCst) {
            return None;
        }
        let generation = self.generation();
        match self.lock().get(key) {
            Some((tag, snapshot)) if *tag == generation => Some((*tag, snapshot.clone())),
            _ => None,
        }
    }

    /// Keeps `snapshot` under `key`, built from lists begun at generation `tag`, if no write
    /// happened since (an older one would be out of date already).
    pub fn offer_for(&self, key: K, tag: u64, snapshot: Arc<T>) {
        let mut slots = self.lock();
        // Under the lock: `invalidate` bumps before it clears, so a snapshot kept here after
        // the check is either current or cleared by that write.
        if tag == self.generation() {
            slots.insert(key, (tag, snapshot));
        }
    }

    /// Serves nothing until [`SnapshotCache::resume`]: writes elsewhere may go unseen.
    pub fn suspend(&self) {
        self.suspended.store(true, Ordering::SeqCst);
        self.invalidate();
    }

    /// Serves snapshots again, once every later write is seen; what was listed before is
    /// retired.
    pub fn resume(&self) {
        self.invalidate();
        self.suspended.store(false, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u64, Arc<T>)>> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> SnapshotCache<T> {
    /// The cached snapshot, if no write happened since its lists began.
    pub fn current(&self) -> Option<Arc<T>> {
        self.current_for(&())
    }

    /// Keeps `snapshot`, built from lists begun at generation `tag`, if no write happened since.
    pub fn offer(&self, tag: u64, snapshot: Arc<T>) {
        self.offer_for((), tag, snapshot)
    }
}

/// A cache a [`WriteTrackingStore`] retires when a key it watches is written.
pub trait Retire: Send + Sync {
    /// Marks the cache's snapshots out of date.
    fn retire(&self);
    /// Stops serving snapshots: writes may happen unseen until [`Retire::resume`].
    fn suspend(&self);
    /// Serves snapshots listed from now on again: every later write will be seen.
    fn resume(&self);
}

impl<T: Send + Sync, K: Eq + Hash + Send> Retire for SnapshotCache<T, K> {
    fn retire(&self) {
        self.invalidate();
    }

    fn suspend(&self) {
        SnapshotCache::suspend(self);
    }

    fn resume(&self) {
        SnapshotCache::resume(self);
    }
}

/// How long the store's watch waits before it is started again after it failed.
const REWATCH_DELAY: Duration = Duration::from_millis(500);

/// How many revisions of this server's own writes are remembered until their watch events
/// arrive; past that they are forgotten, which only costs a cache an extra retirement.
const REMEMBERED_LOCAL_WRITES: usize = 4096;

/// A store that tells caches about every write under their key prefixes, whatever path in the
/// registry made it (create, update, patch, delete, finalization, namespace clean-up).
pub struct WriteTrackingStore {
    inner: Arc<dyn Store>,
    watched: Vec<(String, Arc<dyn Retire>)>,
    /// The revisions of this server's writes that retired caches already, so that their
    /// watch events need not retire them again (quota admission keeps the quotas it wrote as
    /// the new snapshot, which a second retirement would throw away).
    retired_locally: Mutex<HashSet<Revision>>,
    /// The revision of the latest change the store's watch delivered.
    seen_through: AtomicI64,
}

impl WriteTrackingStore {
    /// Wraps `inner`, retiring each cache after every write to a key under its prefix.
    pub fn new(inner: Arc<dyn Store>, watched: Vec<(String, Arc<dyn Retire>)>) -> Self {
        WriteTrackingStore {
            inner,
            watched,
            retired_locally: Mutex::new(HashSet::new()),
            seen_through: AtomicI64::new(0),
        }
    }

    /// Retires the caches watching `key`; true when there were any.
    fn retire_for(&self, key: &str) -> bool {
        let mut any = false;
        for (prefix, cache) in &self.watched {
            if key.starts_with(prefix.as_str()) {
                cache.retire();
                any = true;
            }
        }
        any
    }

    fn wrote(&self, key: &str, written: Option<Revision>) {
        if self.retire_for(key) {
            if let Some(revision) = written {
                let mut remembered = self.remembered();
                if remembered.len() >= REMEMBERED_LOCAL_WRITES {
                    remembered.clear();
                }
                remembered.insert(revision);
            }
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<Revision>> {
        self.retired_locally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A change seen by the store's watch: retires the caches watching its key, unless this
    /// server's own write retired them for this very revision.
    fn saw(&self, key: &str, revision: Revision) {
        if !self.remembered().remove(&revision) {
            self.retire_for(key);
        }
    }

    fn suspend_all(&self) {
        for (_, cache) in &self.watched {
            cache.suspend();
        }
    }

    /// Watches every cache's prefixes for as long as the process runs, retiring caches for
    /// writes made through any server of the store. The caches are suspended from now until
    /// the watches run, and again from the moment one fails until they all run again.
    pub fn follow_store(self: &Arc<Self>) {
        self.suspend_all();
        tokio::spawn(self.clone().follow());
    }

    async fn follow(self: Arc<Self>) {
        loop {
            match self.watch_all().await {
                Ok(mut changes) => {
                    self.remembered().clear();
                    for (_, cache) in &self.watched {
                        cache.resume();
                    }
                    let ended = loop {
                        match changes.next().await {
                            Some(Ok(change)) => {
                                self.saw(&change.kv.key, change.revision);
                                self.seen_through
                                    .fetch_max(change.revision, Ordering::SeqCst);
                            }
                            Some(Err(error)) => break error.to_string(),
                            None => break "every watch ended".to_string(),
                        }
                    };
                    self.suspend_all();
                    tracing::warn!(error = %ended, "watching the cached kinds failed; caches are off until it resumes");
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot watch the cached kinds; caches stay off");
                }
            }
            tokio::time::sleep(REWATCH_DELAY).await;
        }
    }

    /// One stream of the changes under every watched prefix after the current revision.
    async fn watch_all(
        &self,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
        let from = self.inner.current_revision().await?;
        let mut prefixes: Vec<&str> = self.watched.iter().map(|(p, _)| p.as_str()).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        let mut streams = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            // A watch that ends without an error still leaves its prefix unwatched.
            let ended = futures::stream::once(async {
                Err(StoreError::Backend("the watch ended".to_string()))
            });
            streams.push(self.inner.watch(prefix, from).await?.chain(ended).boxed());
        }
        Ok(futures::stream::select_all(streams).boxed())
    }
}

#[async_trait]
impl Store for WriteTrackingStore {
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let result = self.inner.create(key, value).await;
        self.wrote(key, result.as_ref().ok().map(|kv| kv.mod_revision));
        result
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let result = self.inner.update(key, value, expected_revision).await;
        self.wrote(key, result.as_ref().ok().map(|kv| kv.mod_revision));
        result
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let result = self.inner.delete(key, expected_revision).await;
        self.wrote(key, result.as_ref().ok().map(|kv| kv.mod_revision));
        result
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        self.inner.list(prefix, start_after, limit).await
    }

    async fn list_uncounted(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        self.inner.list_uncounted(prefix, start_after, limit).await
    }

    async fn watch(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
        self.inner.watch(prefix, after_revision).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.inner.compacted_revision().await
    }

    fn set_extractor(&self, extractor: Arc<dyn ValueExtractor>) -> Result<(), StoreError> {
        self.inner.set_extractor(extractor)
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_served_until_the_next_rbac_write() {
        let cache = RbacCache::default();
        assert!(cache.current().is_none());
        let tag = cache.generation();
        cache.offer(tag, Arc::new(RbacSnapshot::new()));
        assert!(cache.current().is_some());
        cache.invalidate();
        assert!(
            cache.current().is_none(),
            "a write must retire the snapshot"
        );
    }

    #[test]
    fn a_snapshot_listed_before_a_write_is_never_served_after_it() {
        let cache = RbacCache::default();
        let tag = cache.generation();
        // The write lands while the lists run; the finished snapshot may miss it.
        cache.invalidate();
        cache.offer(tag, Arc::new(RbacSnapshot::new()));
        assert!(cache.current().is_none());
        // An older snapshot never replaces a newer one.
        let newer = cache.generation();
        cache.offer(newer, Arc::new(RbacSnapshot::new()));
        cache.offer(tag, Arc::new(RbacSnapshot::new()));
        assert!(cache.current().is_some());
    }

    #[test]
    fn keyed_snapshots_are_served_per_key_until_any_write() {
        let cache = QuotaCache::default();
        let tag = cache.generation();
        cache.offer_for("a".into(), tag, Arc::new(vec![Value::from(1)]));
        assert_eq!(
            cache.current_tagged_for(&"a".to_string()),
            Some((tag, Arc::new(vec![Value::from(1)])))
        );
        assert!(cache.current_for(&"b".to_string()).is_none());
        cache.invalidate();
        assert!(cache.current_for(&"a".to_string()).is_none());
    }

    #[tokio::test]
    async fn writes_retire_only_the_caches_watching_their_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let inner = Arc::new(skiff_store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let rbac = Arc::new(RbacCache::default());
        let quotas = Arc::new(QuotaCache::default());
        let store = WriteTrackingStore::new(
            inner,
            vec![
                (RBAC_KEY_PREFIX.to_string(), rbac.clone() as Arc<dyn Retire>),
                ("/registry/core/resourcequotas/".to_string(), quotas.clone()),
            ],
        );
        store
            .create("/registry/core/resourcequotas/ns/q", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!((rbac.generation(), quotas.generation()), (0, 1));
        store
            .create("/registry/core/configmaps/ns/c", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!((rbac.generation(), quotas.generation()), (0, 1));
        let kv = store
            .create(
                "/registry/rbac.authorization.k8s.io/roles/ns/r",
                b"{}".to_vec(),
            )
            .await
            .unwrap();
        store.delete(&kv.key, Some(kv.mod_revision)).await.unwrap();
        assert_eq!((rbac.generation(), quotas.generation()), (2, 1));
    }

    /// A SQLite store whose watches can be broken on demand, as a lost etcd connection
    /// breaks them.
    struct BreakableStore {
        inner: skiff_store::SqliteStore,
        breakers: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
        watches_started: AtomicU64,
    }

    impl BreakableStore {
        fn open(dir: &std::path::Path) -> Arc<Self> {
            Arc::new(BreakableStore {
                inner: skiff_store::SqliteStore::open(&dir.join("s.db")).unwrap(),
                breakers: Mutex::new(Vec::new()),
                watches_started: AtomicU64::new(0),
            })
        }

        /// Ends every watch started so far with a backend failure.
        fn break_watches(&self) {
            for breaker in self.breakers.lock().unwrap().drain(..) {
                let _ = breaker.send(());
            }
        }
    }

    #[async_trait]
    impl Store for BreakableStore {
        async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
            self.inner.create(key, value).await
        }
        async fn update(
            &self,
            key: &str,
            value: Vec<u8>,
            expected_revision: Option<Revision>,
        ) -> Result<KeyValue, StoreError> {
            self.inner.update(key, value, expected_revision).await
        }
        async fn delete(
            &self,
            key: &str,
            expected_revision: Option<Revision>,
        ) -> Result<KeyValue, StoreError> {
            self.inner.delete(key, expected_revision).await
        }
        async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
            self.inner.get(key).await
        }
        async fn list(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: Option<usize>,
        ) -> Result<ListResult, StoreError> {
            self.inner.list(prefix, start_after, limit).await
        }
        async fn watch(
            &self,
            prefix: &str,
            after_revision: Revision,
        ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
            let events = self.inner.watch(prefix, after_revision).await?;
            let (breaker, broken) = tokio::sync::oneshot::channel::<()>();
            self.breakers.lock().unwrap().push(breaker);
            self.watches_started.fetch_add(1, Ordering::SeqCst);
            let failure = futures::stream::once(broken)
                .map(|_| Err(StoreError::Backend("connection lost".into())));
            Ok(futures::stream::select(events, failure).boxed())
        }
        async fn current_revision(&self) -> Result<Revision, StoreError> {
            self.inner.current_revision().await
        }
        async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
            self.inner.compact(revision).await
        }
        async fn compacted_revision(&self) -> Result<Revision, StoreError> {
            self.inner.compacted_revision().await
        }
    }

    const QUOTA_PREFIX: &str = "/registry/core/resourcequotas/";

    /// A server's tracker over `store`, with its RBAC and quota caches.
    fn server_on(
        store: Arc<dyn Store>,
    ) -> (Arc<WriteTrackingStore>, Arc<RbacCache>, Arc<QuotaCache>) {
        let rbac = Arc::new(RbacCache::default());
        let quotas = Arc::new(QuotaCache::default());
        let tracker = Arc::new(WriteTrackingStore::new(
            store,
            vec![
                (RBAC_KEY_PREFIX.to_string(), rbac.clone() as Arc<dyn Retire>),
                (QUOTA_PREFIX.to_string(), quotas.clone()),
            ],
        ));
        (tracker, rbac, quotas)
    }

    /// Waits up to two seconds for `condition`, failing with `what` past that.
    async fn within_two_seconds(what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !condition() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not within 2 s: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Offers an empty RBAC snapshot at the current generation; true when it is then served.
    fn serves_a_new_snapshot(rbac: &RbacCache) -> bool {
        rbac.offer(rbac.generation(), Arc::new(RbacSnapshot::new()));
        rbac.current().is_some()
    }

    #[tokio::test]
    async fn a_write_through_another_server_retires_the_cache_through_the_watch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = BreakableStore::open(dir.path());
        let (a, a_rbac, _) = server_on(shared.clone());
        let (b, _, _) = server_on(shared.clone());
        a.follow_store();
        within_two_seconds("server A's caches serve once its watch runs", || {
            serves_a_new_snapshot(&a_rbac)
        })
        .await;
        b.create(
            "/registry/rbac.authorization.k8s.io/rolebindings/ns/granted",
            b"{}".to_vec(),
        )
        .await
        .unwrap();
        within_two_seconds("server A retires its RBAC snapshot", || {
            a_rbac.current().is_none()
        })
        .await;
    }

    #[tokio::test]
    async fn a_servers_own_write_is_not_retired_again_by_its_watch_event() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = BreakableStore::open(dir.path());
        let (a, a_rbac, a_quotas) = server_on(shared.clone());
        let (b, _, _) = server_on(shared.clone());
        a.follow_store();
        within_two_seconds("server A's caches serve once its watch runs", || {
            serves_a_new_snapshot(&a_rbac)
        })
        .await;
        a.create(&format!("{QUOTA_PREFIX}ns/mine"), b"{}".to_vec())
            .await
            .unwrap();
        let after_own_write = a_quotas.generation();
        a_quotas.offer_for("ns".into(), after_own_write, Arc::new(vec![]));
        // B's write comes after A's in the same watch, so once it is seen A's was too.
        let theirs = b
            .create(&format!("{QUOTA_PREFIX}ns/theirs"), b"{}".to_vec())
            .await
            .unwrap();
        within_two_seconds("server A's watch sees B's quota", || {
            a.seen_through.load(Ordering::SeqCst) >= theirs.mod_revision
        })
        .await;
        assert_eq!(
            a_quotas.generation(),
            after_own_write + 1,
            "only B's write retires A's quotas; A's own was retired when it returned"
        );
    }

    #[tokio::test]
    async fn a_broken_watch_turns_the_caches_off_until_it_watches_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = BreakableStore::open(dir.path());
        let (a, a_rbac, _) = server_on(shared.clone());
        let (b, _, _) = server_on(shared.clone());
        assert!(serves_a_new_snapshot(&a_rbac), "unfollowed, a cache serves");
        a.follow_store();
        // The watch task has not run yet on this single-threaded runtime.
        assert!(
            !serves_a_new_snapshot(&a_rbac),
            "before its watch runs, a followed cache serves nothing"
        );
        within_two_seconds("server A's caches serve once its watch runs", || {
            serves_a_new_snapshot(&a_rbac)
        })
        .await;
        let watches_before = a_watches(&shared);
        shared.break_watches();
        within_two_seconds("the broken watch retires A's RBAC snapshot", || {
            a_rbac.current().is_none()
        })
        .await;
        // Until the watch runs again, nothing offered is served.
        let served = serves_a_new_snapshot(&a_rbac);
        assert!(
            !served || a_watches(&shared) > watches_before,
            "a snapshot was served while the watch was broken"
        );
        // B's write while A does not watch is never hidden by a snapshot taken before it.
        b.create(
            "/registry/rbac.authorization.k8s.io/roles/ns/during",
            b"{}".to_vec(),
        )
        .await
        .unwrap();
        within_two_seconds("A watches again and its caches serve", || {
            serves_a_new_snapshot(&a_rbac)
        })
        .await;
        b.create(
            "/registry/rbac.authorization.k8s.io/roles/ns/after",
            b"{}".to_vec(),
        )
        .await
        .unwrap();
        within_two_seconds("the new watch retires A's RBAC snapshot", || {
            a_rbac.current().is_none()
        })
        .await;
    }

    fn a_watches(store: &BreakableStore) -> u64 {
        store.watches_started.load(Ordering::SeqCst)
    }
}
