//! A typed view of an informer's cache.
//!
//! Controllers want `Arc<Pod>`, not JSON. [`Store`] decodes each object once, when it
//! changes, so reads stay as cheap as the informer's own.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::informer::{key_for, object_key, Informer, Notification};

type Objects<K> = RwLock<BTreeMap<String, Arc<K>>>;

/// Decoded objects of one informer, kept current by an informer handler.
pub struct Store<K> {
    informer: Informer,
    objects: Arc<Objects<K>>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            informer: self.informer.clone(),
            objects: self.objects.clone(),
            kind: PhantomData,
        }
    }
}

fn read<K>(objects: &Objects<K>) -> RwLockReadGuard<'_, BTreeMap<String, Arc<K>>> {
    // Writers only insert or remove one entry; a panic cannot leave the map torn.
    objects.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<K>(objects: &Objects<K>) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<K>>> {
    objects.write().unwrap_or_else(PoisonError::into_inner)
}

impl<K> Store<K>
where
    K: DeserializeOwned + Send + Sync + 'static,
{
    /// A typed view of `informer`, filled with what it already holds.
    pub fn new(informer: &Informer) -> Store<K> {
        let objects: Arc<Objects<K>> = Arc::default();
        let target = objects.clone();
        informer.add_handler(move |notification| apply(&target, notification));
        Store {
            informer: informer.clone(),
            objects,
            kind: PhantomData,
        }
    }

    /// The informer underneath, for handlers and untyped reads.
    pub fn informer(&self) -> &Informer {
        &self.informer
    }

    /// Waits until the informer's first list is in.
    pub async fn wait_synced(&self) {
        self.informer.wait_synced().await
    }

    /// The object `namespace/name` (`None` namespace for cluster-scoped objects).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        self.get_by_key(&key_for(namespace, name))
    }

    /// The object with cache key `key`.
    pub fn get_by_key(&self, key: &str) -> Option<Arc<K>> {
        read(&self.objects).get(key).cloned()
    }

    /// Every object, ordered by key.
    pub fn list(&self) -> Vec<Arc<K>> {
        read(&self.objects).values().cloned().collect()
    }

    /// The objects of one namespace, ordered by key.
    pub fn list_by_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.typed(self.informer.list_by_namespace(namespace))
    }

    /// The objects owned by `uid`, ordered by key.
    pub fn by_owner(&self, uid: &str) -> Vec<Arc<K>> {
        self.typed(self.informer.by_owner(uid))
    }

    fn typed(&self, untyped: Vec<Arc<Value>>) -> Vec<Arc<K>> {
        let objects = read(&self.objects);
        untyped
            .iter()
            .filter_map(|o| object_key(o))
            .filter_map(|k| objects.get(&k).cloned())
            .collect()
    }
}

fn apply<K: DeserializeOwned>(objects: &Objects<K>, notification: &Notification) {
    let Some(key) = notification.key() else {
        return;
    };
    if let Notification::Deleted(_) = notification {
        write(objects).remove(&key);
        return;
    }
    match K::deserialize(&**notification.object()) {
        Ok(decoded) => {
            write(objects).insert(key, Arc::new(decoded));
        }
        Err(e) => {
            tracing::warn!(key, "cached object does not decode, leaving it out: {e}");
            write(objects).remove(&key);
        }
    }
}
