//! Informers: a local, always-fresh copy of one resource, and change notifications.
//!
//! An [`Informer`] lists the resource, then watches from the list's resourceVersion. Every
//! change updates an in-memory cache first and is then announced to handlers and subscribers,
//! so a handler that looks the object up finds it. When a watch ends it resumes from the last
//! resourceVersion seen; when the server says that version is gone (410 Expired) or anything
//! fails, it lists again (after a backoff for failures) and announces the difference between
//! the cache and the fresh list as synthetic adds, updates and deletes.
//!
//! Reads ([`Informer::get`], [`Informer::list`], ...) are snapshots of `Arc`s taken under a
//! short read lock: many workers can read concurrently while one task writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, ClientError, ListOptions, Scope};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Items per list page: large lists arrive in chunks, as client-go's pager does.
const LIST_PAGE_SIZE: usize = 500;
/// First and longest wait after a failed list or watch.
const BACKOFF_INITIAL: Duration = Duration::from_millis(800);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A watch that ends this quickly (or within half its own timeout) without any event is
/// treated as a failure, so a server that closes watches at once is not hammered.
const SHORT_WATCH: Duration = Duration::from_secs(1);

/// The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects.
pub fn key_for(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The cache key of `object`, `None` if it has no name.
pub fn object_key(object: &Value) -> Option<String> {
    let name = meta_str(object, "name").filter(|n| !n.is_empty())?;
    Some(key_for(meta_str(object, "namespace"), name))
}

/// Splits a cache key into namespace and name.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// `object` without `metadata.managedFields`, as kube-controller-manager and the scheduler
/// cache objects: no controller reads them, an update that carries none keeps the stored
/// ones, and decoding them (a tree per field manager on every object) would be most of the
/// work of every typed read of a cached object.
fn without_managed_fields(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

/// A change to the cache, delivered in the order the changes happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Notification {
    /// The object appeared.
    Added(Arc<Value>),
    /// The object changed.
    Updated {
        /// The cached state before the change.
        old: Arc<Value>,
        /// The new state.
        new: Arc<Value>,
    },
    /// The object disappeared; this is its last known state.
    Deleted(Arc<Value>),
}

impl Notification {
    /// The object as it is now (or was last, for a deletion).
    pub fn object(&self) -> &Arc<Value> {
        match self {
            Notification::Added(o) | Notification::Deleted(o) => o,
            Notification::Updated { new, .. } => new,
        }
    }

    /// The cache key of the object.
    pub fn key(&self) -> Option<String> {
        object_key(self.object())
    }
}

/// What one informer watches.
#[derive(Clone, Debug)]
pub struct InformerConfig {
    /// The resource, in the version the cache should hold.
    pub resource: &'static ResourceInfo,
    /// One namespace, or `None` for all namespaces (and cluster-scoped resources).
    pub namespace: Option<String>,
    /// Only objects with matching labels.
    pub label_selector: Option<String>,
    /// Only objects with matching fields.
    pub field_selector: Option<String>,
    /// How long each watch request lasts before the server ends it and the informer resumes;
    /// `None` picks a random 5 to 10 minutes, as client-go does, to spread reconnections.
    pub watch_timeout: Option<Duration>,
}

impl InformerConfig {
    /// Every object of `resource`, in all namespaces.
    pub fn new(resource: &'static ResourceInfo) -> Self {
        InformerConfig {
            resource,
            namespace: None,
            label_selector: None,
            field_selector: None,
            watch_timeout: None,
        }
    }

    /// Every object of the resource serving `K`.
    pub fn for_kind<K: k8s_openapi::Resource>() -> Result<Self, ClientError> {
        skiff_api::resources::find_by_kind(K::API_VERSION, K::KIND)
            .map(Self::new)
            .ok_or_else(|| ClientError::UnknownResource(format!("{}/{}", K::API_VERSION, K::KIND)))
    }

    /// Restricts the informer to `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Restricts the informer to objects matching a label selector.
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    /// Restricts the informer to objects matching a field selector.
    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            resource: self.resource,
            namespace: self.namespace.as_deref(),
        }
    }

    fn list_options(&self) -> ListOptions {
        ListOptions {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            ..ListOptions::default()
        }
    }
}

/// The cached objects with their indexes.
#[derive(Default)]
struct Cache {
    objects: BTreeMap<String, Arc<Value>>,
    by_namespace: HashMap<String, BTreeSet<String>>,
    by_owner: HashMap<String, BTreeSet<String>>,
    /// The revision the cache reflects.
    resource_version: String,
}

impl Cache {
    fn index(&mut self, key: &str, object: &Value) {
        if let Some(ns) = meta_str(object, "namespace") {
            self.by_namespace
                .entry(ns.to_string())
                .or_default()
                .insert(key.to_string());
        }
        for uid in owner_uids(object) {
            self.by_owner
                .entry(uid.to_string())
                .or_default()
                .insert(key.to_string());
        }
    }

    fn unindex(&mut self, key: &str, object: &Value) {
        fn remove(index: &mut HashMap<String, BTreeSet<String>>, value: &str, key: &str) {
            if let Some(keys) = index.get_mut(value) {
                keys.remove(key);
                if keys.is_empty() {
                    index.remove(value);
                }
            }
        }
        if let Some(ns) = meta_str(object, "namespace") {
            remove(&mut self.by_namespace, ns, key);
        }
        for uid in owner_uids(object) {
            remove(&mut self.by_owner, uid, key);
        }
    }

    /// Inserts or replaces an object; the notification to announce, if any.
    fn upsert(&mut self, object: Value) -> Option<Notification> {
        let key = object_key(&object)?;
        let new = Arc::new(without_managed_fields(object));
        let old = self.objects.insert(key.clone(), new.clone());
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &new);
        Some(match old {
            Some(old) => Notification::Updated { old, new },
            None => Notification::Added(new),
        })
    }

    /// Removes an object; announces its last state as the watch reported it.
    fn remove(&mut self, last: Value) -> Option<Notification> {
        let key = object_key(&last)?;
        let cached = self.objects.remove(&key)?;
        self.unindex(&key, &cached);
        Some(Notification::Deleted(Arc::new(without_managed_fields(
            last,
        ))))
    }

    /// Replaces the whole cache with a fresh list; announces the differences. Objects whose
    /// resourceVersion did not change are not announced.
    fn replace(&mut self, items: Vec<Value>, resource_version: String) -> Vec<Notification> {
        let mut notifications = Vec::new();
        let mut fresh = BTreeMap::new();
        for item in items {
            if let Some(key) = object_key(&item) {
                fresh.insert(key, item);
            }
        }
        let gone: Vec<String> = self
            .objects
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(old) = self.objects.remove(&key) {
                self.unindex(&key, &old);
                notifications.push(Notification::Deleted(old));
            }
        }
        for (key, item) in fresh {
            let unchanged = self.objects.get(&key).is_some_and(|old| {
                meta_str(old, "resourceVersion") == meta_str(&item, "resourceVersion")
            });
            if unchanged {
                continue;
            }
            notifications.extend(self.upsert(item));
        }
        self.resource_version = resource_version;
        notifications
    }

    fn select(&self, keys: Option<&BTreeSet<String>>) -> Vec<Arc<Value>> {
        keys.into_iter()
            .flatten()
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }
}

type Handler = Box<dyn Fn(&Notification) + Send + Sync>;

/// Who hears about changes.
#[derive(Default)]
struct Listeners {
    handlers: Vec<Handler>,
    subscribers: Vec<mpsc::UnboundedSender<Notification>>,
}

/// Calls one handler; a handler that panics on one object loses that notification only,
/// never the informer.
fn call_handler(handler: &(dyn Fn(&Notification) + Send + Sync), notification: &Notification) {
    if let Err(panic) = crate::panics::catch_sync(|| handler(notification)) {
        let object = notification.object();
        tracing::error!(
            namespace = meta_str(object, "namespace").unwrap_or(""),
            name = meta_str(object, "name").unwrap_or(""),
            "an informer handler panicked: {panic}"
        );
    }
}

impl Listeners {
    fn announce(&mut self, notifications: &[Notification]) {
        for n in notifications {
            for handler in &self.handlers {
                call_handler(handler.as_ref(), n);
            }
            self.subscribers.retain(|s| s.send(n.clone()).is_ok());
        }
    }
}

struct Shared {
    config: InformerConfig,
    cache: RwLock<Cache>,
    /// Held while a change is applied and announced, and while a listener joins, so each
    /// listener sees every change exactly once and in order.
    listeners: Mutex<Listeners>,
    synced: watch::Sender<bool>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Cache> {
        // The cache is only mutated by short, non-panicking map operations.
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn listeners(&self) -> MutexGuard<'_, Listeners> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a change to the cache, then announces it.
    fn apply(&self, change: impl FnOnce(&mut Cache) -> Vec<Notification>) {
        let mut listeners = self.listeners();
        let notifications = change(&mut self.write());
        listeners.announce(&notifications);
    }
}

/// Stops the reflector task when the last handle goes away.
struct Running {
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A cached, watched view of one resource. Cloning is cheap and shares the cache; the
/// background task stops when the last clone is dropped.
#[derive(Clone)]
pub struct Informer {
    running: Arc<Running>,
}

impl Informer {
    /// Starts listing and watching in a background task on the current tokio runtime.
    pub fn start(client: Arc<dyn Client>, config: InformerConfig) -> Informer {
        let (synced, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            cache: RwLock::new(Cache::default()),
            listeners: Mutex::new(Listeners::default()),
            synced,
        });
        let task = tokio::spawn(reflect(shared.clone(), client)).abort_handle();
        Informer {
            running: Arc::new(Running { shared, task }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.running.shared
    }

    /// A handle that does not keep the informer running, for handlers reading their own
    /// informer (a handler holding an [`Informer`] clone would keep it alive forever).
    pub fn downgrade(&self) -> WeakInformer {
        WeakInformer {
            running: Arc::downgrade(&self.running),
        }
    }

    /// What this informer watches.
    pub fn config(&self) -> &InformerConfig {
        &self.shared().config
    }

    /// Waits until the first list has filled the cache; reads before that see a partial or
    /// empty world.
    pub async fn wait_synced(&self) {
        let mut synced = self.shared().synced.subscribe();
        // The sender lives as long as `self`, so this only ends once synced.
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Whether the first list has filled the cache.
    pub fn has_synced(&self) -> bool {
        *self.shared().synced.borrow()
    }

    /// The revision the cache reflects (empty before the first list).
    pub fn resource_version(&self) -> String {
        self.shared().read().resource_version.clone()
    }

    /// The cached object `namespace/name` (`None` namespace for cluster-scoped objects).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.get_by_key(&key_for(namespace, name))
    }

    /// The cached object with cache key `key`.
    pub fn get_by_key(&self, key: &str) -> Option<Arc<Value>> {
        self.shared().read().objects.get(key).cloned()
    }

    /// Every cached object, ordered by key.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.shared().read().objects.values().cloned().collect()
    }

    /// The cached objects of one namespace, ordered by key.
    pub fn list_by_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        let cache = self.shared().read();
        cache.select(cache.by_namespace.get(namespace))
    }

    /// The cached objects listing `uid` among their owner references, ordered by key.
    pub fn by_owner(&self, uid: &str) -> Vec<Arc<Value>> {
        let cache = self.shared().read();
        cache.select(cache.by_owner.get(uid))
    }

    /// The number of cached objects.
    pub fn len(&self) -> usize {
        self.shared().read().objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `handler` for every change, starting with an `Added` for each object already
    /// cached. Handlers run on the informer's task, in order: keep them short (enqueue a key)
    /// and do not add listeners to the same informer from inside one. Reading the cache from
    /// a handler is fine and already shows the change; capture a [`WeakInformer`] for that.
    pub fn add_handler(&self, handler: impl Fn(&Notification) + Send + Sync + 'static) {
        let shared = self.shared();
        let mut listeners = shared.listeners();
        // Snapshot first: the handler may read the cache itself.
        let existing: Vec<Arc<Value>> = shared.read().objects.values().cloned().collect();
        for object in existing {
            call_handler(&handler, &Notification::Added(object));
        }
        listeners.handlers.push(Box::new(handler));
    }

    /// A stream of every change, starting with an `Added` for each object already cached.
    /// Unbounded, like client-go's listener buffers: a slow reader delays nothing else.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Notification> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.shared();
        let mut listeners = shared.listeners();
        let existing: Vec<Arc<Value>> = shared.read().objects.values().cloned().collect();
        for object in existing {
            // The receiver is in our hands, so the send cannot fail.
            let _ = tx.send(Notification::Added(object));
        }
        listeners.subscribers.push(tx);
        rx
    }
}

/// An [`Informer`] handle that does not keep it running.
#[derive(Clone)]
pub struct WeakInformer {
    running: Weak<Running>,
}

impl WeakInformer {
    /// The informer, if it still runs.
    pub fn upgrade(&self) -> Option<Informer> {
        self.running.upgrade().map(|running| Informer { running })
    }
}

/// Exponential backoff between failed attempts.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: BACKOFF_INITIAL,
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }

    fn reset(&mut self) {
        self.next = BACKOFF_INITIAL;
    }
}

/// How one watch ended.
enum WatchEnd {
    /// The stream ended normally; resume from this revision.
    Closed { resume_from: String, events: usize },
    /// The revision is too old: list again now.
    Expired,
    /// The watch failed; list again after a backoff.
    Failed(String),
}

/// The reflector: list, watch, resume or relist, forever.
async fn reflect(shared: Arc<Shared>, client: Arc<dyn Client>) {
    let mut backoff = Backoff::new();
    let mut resume_from: Option<String> = None;
    loop {
        let revision = match resume_from.take() {
            Some(rv) => rv,
            None => match list_all(&*client, &shared.config).await {
                Ok((items, rv)) => {
                    shared.apply(|cache| cache.replace(items, rv.clone()));
                    shared.synced.send_replace(true);
                    rv
                }
                Err(e) => {
                    tracing::warn!(resource = shared.config.resource.plural, "list failed: {e}");
                    backoff.wait().await;
                    continue;
                }
            },
        };
        let timeout = shared
            .config
            .watch_timeout
            .unwrap_or_else(|| Duration::from_secs(rand::random_range(300..600)));
        let started = Instant::now();
        match watch_once(&shared, &*client, revision, timeout).await {
            WatchEnd::Closed {
                resume_from: rv,
                events,
            } => {
                if events == 0 && started.elapsed() < SHORT_WATCH.min(timeout / 2) {
                    backoff.wait().await;
                } else {
                    backoff.reset();
                }
                resume_from = Some(rv);
            }
            WatchEnd::Expired => {
                tracing::debug!(
                    resource = shared.config.resource.plural,
                    "watch revision expired, listing again"
                );
            }
            WatchEnd::Failed(message) => {
                tracing::warn!(
                    resource = shared.config.resource.plural,
                    "watch failed, listing again: {message}"
                );
                backoff.wait().await;
            }
        }
    }
}

/// Lists every page; the revision is the first page's, which the continuation pages share.
async fn list_all(
    client: &dyn Client,
    config: &InformerConfig,
) -> Result<(Vec<Value>, String), ClientError> {
    let mut options = config.list_options();
    options.limit = Some(LIST_PAGE_SIZE);
    let mut items = Vec::new();
    let mut revision = None;
    loop {
        let page = match client.list(config.scope(), &options).await {
            Ok(page) => page,
            Err(e) if e.code() == 410 && options.continue_token.is_some() => {
                // The snapshot the pages came from was compacted: take it all in one go.
                let whole = client.list(config.scope(), &config.list_options()).await?;
                return Ok((whole.items, whole.resource_version));
            }
            Err(e) => return Err(e),
        };
        revision.get_or_insert(page.resource_version);
        items.extend(page.items);
        match page.continue_token {
            Some(token) if !token.is_empty() => options.continue_token = Some(token),
            _ => break,
        }
    }
    Ok((items, revision.unwrap_or_default()))
}

/// Watches from `revision` until the stream ends, applying every event.
async fn watch_once(
    shared: &Shared,
    client: &dyn Client,
    mut revision: String,
    timeout: Duration,
) -> WatchEnd {
    let config = &shared.config;
    let mut options = config.list_options();
    options.resource_version = Some(revision.clone());
    options.allow_bookmarks = true;
    options.timeout = Some(timeout);
    let mut stream = match client.watch(config.scope(), &options).await {
        Ok(stream) => stream,
        Err(e) if e.code() == 410 => return WatchEnd::Expired,
        Err(e) => return WatchEnd::Failed(e.to_string()),
    };
    let mut events = 0;
    while let Some(event) = stream.next().await {
        events += 1;
        let object = event.object;
        if event.event_type == "ERROR" {
            let code = object.get("code").and_then(Value::as_u64);
            if code == Some(410) {
                return WatchEnd::Expired;
            }
            let message = object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("watch error")
                .to_string();
            return WatchEnd::Failed(message);
        }
        let Some(rv) = meta_str(&object, "resourceVersion").map(str::to_string) else {
            continue;
        };
        match event.event_type {
            "ADDED" | "MODIFIED" => {
                shared.apply(|cache| {
                    cache.resource_version = rv.clone();
                    cache.upsert(object).into_iter().collect()
                });
            }
            "DELETED" => {
                shared.apply(|cache| {
                    cache.resource_version = rv.clone();
                    cache.remove(object).into_iter().collect()
                });
            }
            _ => {
                // BOOKMARK: nothing changed, but resuming from here is cheaper.
                shared.write().resource_version = rv.clone();
            }
        }
        revision = rv;
    }
    WatchEnd::Closed {
        resume_from: revision,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(ns: &str, name: &str, rv: &str, owner: Option<&str>) -> Value {
        let mut v = json!({"metadata": {"namespace": ns, "name": name, "resourceVersion": rv}});
        if let Some(uid) = owner {
            v["metadata"]["ownerReferences"] = json!([{"uid": uid}]);
        }
        v
    }

    fn names(objects: &[Arc<Value>]) -> Vec<&str> {
        objects.iter().filter_map(|o| meta_str(o, "name")).collect()
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(key_for(Some("ns"), "a"), "ns/a");
        assert_eq!(key_for(None, "node-1"), "node-1");
        assert_eq!(key_for(Some(""), "node-1"), "node-1");
        assert_eq!(split_key("ns/a"), (Some("ns"), "a"));
        assert_eq!(split_key("node-1"), (None, "node-1"));
        assert_eq!(
            object_key(&cm("ns", "a", "1", None)).as_deref(),
            Some("ns/a")
        );
        assert_eq!(object_key(&json!({"metadata": {}})), None);
    }

    #[test]
    fn indexes_follow_changes() {
        let mut cache = Cache::default();
        cache.upsert(cm("a", "x", "1", Some("u1")));
        cache.upsert(cm("a", "y", "2", Some("u1")));
        cache.upsert(cm("b", "z", "3", None));
        assert_eq!(names(&cache.select(cache.by_owner.get("u1"))), ["x", "y"]);
        assert_eq!(
            names(&cache.select(cache.by_namespace.get("a"))),
            ["x", "y"]
        );
        // Re-owning moves the object between owner index entries.
        cache.upsert(cm("a", "y", "4", Some("u2")));
        assert_eq!(names(&cache.select(cache.by_owner.get("u1"))), ["x"]);
        assert_eq!(names(&cache.select(cache.by_owner.get("u2"))), ["y"]);
        cache.remove(cm("a", "x", "5", Some("u1")));
        assert!(!cache.by_owner.contains_key("u1"));
        assert_eq!(names(&cache.select(cache.by_namespace.get("a"))), ["y"]);
    }

    #[test]
    fn replace_announces_only_differences() {
        let mut cache = Cache::default();
        cache.replace(
            vec![
                cm("a", "keep", "1", None),
                cm("a", "change", "2", None),
                cm("a", "gone", "3", None),
            ],
            "3".into(),
        );
        let notes = cache.replace(
            vec![
                cm("a", "keep", "1", None),
                cm("a", "change", "5", None),
                cm("a", "new", "6", None),
            ],
            "6".into(),
        );
        let summary: Vec<(&str, &str)> = notes
            .iter()
            .map(|n| {
                let kind = match n {
                    Notification::Added(_) => "added",
                    Notification::Updated { .. } => "updated",
                    Notification::Deleted(_) => "deleted",
                };
                (kind, meta_str(n.object(), "name").unwrap_or(""))
            })
            .collect();
        assert_eq!(
            summary,
            [("deleted", "gone"), ("updated", "change"), ("added", "new")]
        );
        assert_eq!(cache.resource_version, "6");
        assert_eq!(cache.objects.len(), 3);
    }

    #[test]
    fn deleting_an_unknown_object_announces_nothing() {
        let mut cache = Cache::default();
        assert_eq!(cache.remove(cm("a", "x", "1", None)), None);
    }

    #[test]
    fn cached_and_announced_objects_carry_no_managed_fields() {
        let mut cache = Cache::default();
        let mut object = cm("default", "a", "1", None);
        object["metadata"]["managedFields"] = json!([
            {"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:data": {}}}
        ]);
        let announced = cache.upsert(object.clone()).expect("announced");
        assert!(announced
            .object()
            .pointer("/metadata/managedFields")
            .is_none());
        let cached = cache.objects.get("default/a").expect("cached");
        assert!(cached.pointer("/metadata/managedFields").is_none());
        assert_eq!(
            cached.pointer("/metadata/name"),
            object.pointer("/metadata/name")
        );
        let gone = cache.remove(object).expect("announced");
        assert!(gone.object().pointer("/metadata/managedFields").is_none());
    }
}
