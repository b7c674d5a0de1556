//! The RBAC objects the authorizer decides from, kept as one snapshot that is rebuilt only when
//! a Role, ClusterRole, RoleBinding or ClusterRoleBinding changed, instead of re-reading all four
//! kinds for every request.
//!
//! Freshness: [`RbacTrackingStore`] wraps the registry's store and bumps a generation counter
//! after every write to an RBAC key returns, so before the writer's caller is answered. A
//! snapshot is tagged with the generation read *before* its lists began; it is used only while
//! the generation still equals its tag. A write acknowledged before a request therefore always
//! makes that request rebuild (or use a snapshot listed after the write), never a stale one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use skiff_auth::rbac::RbacSnapshot;
use skiff_store::{KeyValue, ListResult, Revision, Store, StoreError, ValueExtractor, WatchEvent};

/// The store prefix of the four RBAC kinds (`/registry/<group>/<plural>/...`).
const RBAC_KEY_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// The authorizer's cached snapshot and the generation of RBAC writes it reflects; shared by
/// every clone of a registry.
#[derive(Default)]
pub struct RbacCache {
    generation: AtomicU64,
    snapshot: Mutex<Option<(u64, Arc<RbacSnapshot>)>>,
}

impl RbacCache {
    /// The number of RBAC writes seen so far; read before listing to tag a new snapshot.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Marks every cached snapshot out of date; called once an RBAC write has returned.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The cached snapshot, if no RBAC write happened since its lists began.
    pub fn current(&self) -> Option<Arc<RbacSnapshot>> {
        let generation = self.generation();
        let slot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((tag, snapshot)) if *tag == generation => Some(snapshot.clone()),
            _ => None,
        }
    }

    /// Keeps `snapshot`, built from lists begun at generation `tag`, unless a newer one is kept.
    pub fn offer(&self, tag: u64, snapshot: Arc<RbacSnapshot>) {
        let mut slot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(kept, _)| *kept <= tag) {
            *slot = Some((tag, snapshot));
        }
    }
}

/// A store that tells an [`RbacCache`] about every write to an RBAC object, whatever path in
/// the registry made it (create, update, patch, delete, finalization, namespace clean-up).
pub struct RbacTrackingStore {
    inner: Arc<dyn Store>,
    cache: Arc<RbacCache>,
    policies: Option<Arc<crate::admission_policies::PolicyCache>>,
}

impl RbacTrackingStore {
    /// Wraps `inner`, invalidating `cache` after each RBAC write.
    pub fn new(inner: Arc<dyn Store>, cache: Arc<RbacCache>) -> RbacTrackingStore {
        RbacTrackingStore {
            inner,
            cache,
            policies: None,
        }
    }

    /// Also retires `policies` after each write to a ValidatingAdmissionPolicy or binding.
    pub fn tracking_policies(
        mut self,
        policies: Arc<crate::admission_policies::PolicyCache>,
    ) -> RbacTrackingStore {
        self.policies = Some(policies);
        self
    }

    fn wrote(&self, key: &str) {
        if key.starts_with(RBAC_KEY_PREFIX) {
            self.cache.invalidate();
        }
        if let Some(policies) = &self.policies {
            if key.starts_with(crate::admission_policies::POLICY_KEY_PREFIX) {
                policies.invalidate();
            }
        }
    }
}

#[async_trait]
impl Store for RbacTrackingStore {
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let result = self.inner.create(key, value).await;
        self.wrote(key);
        result
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let result = self.inner.update(key, value, expected_revision).await;
        self.wrote(key);
        result
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let result = self.inner.delete(key, expected_revision).await;
        self.wrote(key);
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
}
