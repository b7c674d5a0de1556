//! What the controllers' asynchronous shells share: decoding cached objects, owner lookups,
//! routing informer notifications to work-queue keys, the worker loop, the ControllerRevision
//! and status writes workload controllers end their syncs with, and turning planner events into
//! recorded Events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use skiff_api::patch::PatchType;
use skiff_client::{Client, ClientError, DeleteOptions, Scope};
use skiff_runtime::{
    EventRecorder, EventType, Expectations, Informer, Notification, ObjectRef, WorkQueue,
};

use crate::deployment::{Event, EventType as PlannedType};

/// Decodes a cached object into its typed form; objects the cache holds were admitted by the
/// API server, so a failure means a newer schema and the object is skipped. It decodes from
/// the shared value in place: syncs decode whole namespaces of pods, and copying each one
/// first doubled that work.
pub fn typed<K: DeserializeOwned>(object: &Arc<Value>) -> Option<K> {
    match K::deserialize(&**object) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(error = %e, "skipping an object that does not decode");
            None
        }
    }
}

/// The controlling owner reference of an object: (kind, name, uid).
pub fn controller_of(object: &Value) -> Option<(&str, &str, &str)> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| {
            Some((
                r.get("kind")?.as_str()?,
                r.get("name")?.as_str()?,
                r.get("uid")?.as_str()?,
            ))
        })
}

/// `namespace/name` of an object.
pub fn key_of(object: &Value) -> Option<String> {
    skiff_runtime::informer::object_key(object)
}

/// The namespace of an object, or "".
pub fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A controller whose queue holds `namespace/name` keys of the objects it syncs, so one worker
/// loop ([`run_key_syncs`]) serves every such controller.
pub trait KeySync: Send + Sync + 'static {
    /// One sync of the object under `key`; `Ok(Some(delay))` asks for another after `delay`.
    fn sync_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Duration>, SyncError>> + Send;
}

/// Processes `queue` with `workers` concurrent syncs of `controller` until the queue shuts
/// down.
pub async fn run_key_syncs<C: KeySync>(controller: C, queue: WorkQueue<String>, workers: usize) {
    let controller = Arc::new(controller);
    skiff_runtime::run_workers(queue, workers, move |key: String| {
        let controller = controller.clone();
        async move { controller.sync_key(&key).await }
    })
    .await;
}

/// An informer handler queueing the key of every changed object: for the resource a
/// controller syncs, whose own changes each call for a sync.
pub fn enqueue_own_key(
    queue: &WorkQueue<String>,
) -> impl Fn(&Notification) + Send + Sync + 'static {
    let queue = queue.clone();
    move |n| {
        if let Some(key) = n.key() {
            queue.add(key);
        }
    }
}

/// Like [`enqueue_own_key`], for controllers counting their writes with `expectations`: a
/// deleted object's expectations are dropped, so a namesake created later starts afresh.
pub fn enqueue_own_key_forgetting(
    queue: &WorkQueue<String>,
    expectations: &Arc<Expectations>,
) -> impl Fn(&Notification) + Send + Sync + 'static {
    let queue = queue.clone();
    let expectations = expectations.clone();
    move |n| {
        if let Some(key) = n.key() {
            if matches!(n, Notification::Deleted(_)) {
                expectations.delete(&key);
            }
            queue.add(key);
        }
    }
}

/// Counts a pod notification against the creations and deletions its owner expects, and returns
/// the owner keys to sync (before and after an update). `owner_key` names the pod's owner when
/// it is of the controller's kind. A pod whose graceful deletion starts counts as deleted then,
/// not once it is gone.
pub fn observe_owned_pod(
    n: &Notification,
    expectations: &Expectations,
    owner_key: impl Fn(&Value) -> Option<String>,
) -> Vec<String> {
    let deleting = |pod: &Value| pod.pointer("/metadata/deletionTimestamp").is_some();
    match n {
        Notification::Added(pod) => {
            let Some(key) = owner_key(pod) else {
                return Vec::new();
            };
            if deleting(pod) {
                expectations.deletion_observed(&key);
            } else {
                expectations.creation_observed(&key);
            }
            vec![key]
        }
        Notification::Updated { old, new } => {
            let (old_owner, new_owner) = (owner_key(old), owner_key(new));
            if deleting(new) && !deleting(old) {
                if let Some(key) = &new_owner {
                    expectations.deletion_observed(key);
                }
            }
            [old_owner, new_owner].into_iter().flatten().collect()
        }
        Notification::Deleted(pod) => {
            let Some(key) = owner_key(pod) else {
                return Vec::new();
            };
            if !deleting(pod) {
                expectations.deletion_observed(&key);
            }
            vec![key]
        }
    }
}

/// Records the planner's events on `involved`.
pub fn record_events(recorder: &EventRecorder, involved: &Value, events: &[Event]) {
    let Ok(reference) = ObjectRef::from_value(involved) else {
        return;
    };
    for event in events {
        let event_type = match event.type_ {
            PlannedType::Normal => EventType::Normal,
            PlannedType::Warning => EventType::Warning,
        };
        recorder.record(&reference, event_type, &event.reason, event.message.clone());
    }
}

/// A controller that syncs `namespace/name` keys from its own work queue: running it and
/// stopping it are the same for every such controller, and it is a [`KeySync`] by its
/// `sync_key`.
pub trait QueuedController: Send + Sync + Sized + 'static {
    /// The queue its informer handlers fill.
    fn queue(&self) -> &WorkQueue<String>;

    /// One sync of the object under `key`; `Ok(Some(delay))` asks for another after `delay`.
    fn sync_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Duration>, SyncError>> + Send;

    /// Processes keys with `workers` concurrent syncs until the queue shuts down.
    fn run(self, workers: usize) -> impl Future<Output = ()> + Send {
        let queue = self.queue().clone();
        run_key_syncs(self, queue, workers)
    }

    /// Stops taking new work.
    fn shutdown(&self) {
        self.queue().shutdown();
    }
}

impl<C: QueuedController> KeySync for C {
    fn sync_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Duration>, SyncError>> + Send {
        QueuedController::sync_key(self, key)
    }
}

/// The namespace and name of a `namespace/name` key and the informer's object under it, if
/// any.
pub fn cached_for_key<'k>(
    informer: &Informer,
    key: &'k str,
) -> Option<(&'k str, &'k str, Arc<Value>)> {
    let (namespace, name) = key.split_once('/')?;
    Some((namespace, name, informer.get(Some(namespace), name)?))
}

/// Gives a ControllerRevision the number its planner chose; one already gone needs none.
pub async fn renumber_revision(
    client: &dyn Client,
    scope: Scope<'_>,
    renumber: Option<&(String, i64)>,
) -> Result<(), SyncError> {
    let Some((name, number)) = renumber else {
        return Ok(());
    };
    let patch = serde_json::json!({"revision": number});
    match client
        .patch(scope, name, PatchType::Merge, patch, false)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the ControllerRevisions a planner let go; ones already gone are skipped.
pub async fn delete_revisions(
    client: &dyn Client,
    scope: Scope<'_>,
    names: &[String],
) -> Result<(), SyncError> {
    for name in names {
        match client.delete(scope, name, &DeleteOptions::default()).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates a ControllerRevision: `Ok(None)` once created, or the revision already holding its
/// name, for the caller to tell its own (not yet in the cache) from a hash collision.
pub async fn create_or_find_revision(
    client: &dyn Client,
    scope: Scope<'_>,
    revision: &ControllerRevision,
) -> Result<Option<ControllerRevision>, SyncError> {
    match client.create(scope, serde_json::to_value(revision)?).await {
        Ok(_) => Ok(None),
        Err(e) if e.is_conflict() => {
            let name = revision.metadata.name.as_deref().unwrap_or_default();
            Ok(Some(serde_json::from_value(
                client.get(scope, name).await?,
            )?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reports a revision hash collision: writes the workload's status with `collisionCount`
/// already raised, and fails the sync so the next one uses the next hash.
pub async fn report_collision(
    client: &dyn Client,
    scope: Scope<'_>,
    raised: &impl Serialize,
    revision_name: &str,
) -> Result<Option<Duration>, SyncError> {
    client
        .update_status(scope, serde_json::to_value(raised)?)
        .await?;
    Err(SyncError::Plan(format!(
        "found a stale or foreign ControllerRevision {revision_name}: hash collision"
    )))
}

/// Ends a workload sync: writes the planned status if any (an object gone ends the sync
/// quietly), then fails with the first error handling its pods, else asks for the planned
/// requeue.
pub async fn finish_sync(
    client: &dyn Client,
    scope: Scope<'_>,
    with_status: Option<impl Serialize>,
    failure: Option<String>,
    requeue_after: Option<Duration>,
) -> Result<Option<Duration>, SyncError> {
    if let Some(object) = with_status {
        if !write_status(client, scope, &object).await? {
            return Ok(None);
        }
    }
    match failure {
        Some(message) => Err(SyncError::Plan(message)),
        None => Ok(requeue_after),
    }
}

/// Writes an object's planned status; `Ok(false)` when the object is gone, which ends its sync.
pub async fn write_status(
    client: &dyn Client,
    scope: Scope<'_>,
    object: &impl Serialize,
) -> Result<bool, SyncError> {
    match client
        .update_status(scope, serde_json::to_value(object)?)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The current time as planners take it.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A client error the work queue retries.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A write failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The planner stopped early.
    #[error("{0}")]
    Plan(String),
    /// An object could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;
    use skiff_runtime::expectations::Pending;

    #[test]
    fn typed_decodes_admitted_objects_and_skips_undecodable_ones() {
        let pod = Arc::new(json!({
            "metadata": {"name": "p", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }));
        let decoded: Pod = typed(&pod).expect("a valid pod decodes");
        assert_eq!(decoded.metadata.name.as_deref(), Some("p"));
        assert_eq!(
            decoded.spec.map(|s| s.containers[0].image.clone()),
            Some(Some("i".to_string()))
        );
        let broken = Arc::new(json!({"metadata": {"name": 5}}));
        assert!(typed::<Pod>(&broken).is_none());
    }

    fn pod(owner: Option<&str>, deleting: bool) -> Arc<Value> {
        let mut pod = json!({"metadata": {"name": "p", "namespace": "ns"}});
        if let Some(owner) = owner {
            pod["metadata"]["ownerReferences"] =
                json!([{"kind": "ReplicaSet", "name": owner, "uid": "u", "controller": true}]);
        }
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        Arc::new(pod)
    }

    fn replica_set_owner(pod: &Value) -> Option<String> {
        match controller_of(pod) {
            Some(("ReplicaSet", name, _)) => Some(format!("{}/{}", namespace_of(pod), name)),
            _ => None,
        }
    }

    #[test]
    fn observe_owned_pod_counts_expected_changes_and_names_owners() {
        // (notification, keys to sync, creation counted, deletion counted) for owner ns/a,
        // which expects one creation and one deletion.
        let cases: Vec<(Notification, Vec<&str>, bool, bool)> = vec![
            (
                Notification::Added(pod(Some("a"), false)),
                vec!["ns/a"],
                true,
                false,
            ),
            (
                Notification::Added(pod(Some("a"), true)),
                vec!["ns/a"],
                false,
                true,
            ),
            (Notification::Added(pod(None, false)), vec![], false, false),
            (
                Notification::Updated {
                    old: pod(Some("a"), false),
                    new: pod(Some("a"), true),
                },
                vec!["ns/a", "ns/a"],
                false,
                true,
            ),
            (
                Notification::Updated {
                    old: pod(Some("a"), true),
                    new: pod(Some("a"), true),
                },
                vec!["ns/a", "ns/a"],
                false,
                false,
            ),
            (
                Notification::Updated {
                    old: pod(Some("b"), false),
                    new: pod(None, false),
                },
                vec!["ns/b"],
                false,
                false,
            ),
            (
                Notification::Deleted(pod(Some("a"), false)),
                vec!["ns/a"],
                false,
                true,
            ),
            (
                Notification::Deleted(pod(Some("a"), true)),
                vec!["ns/a"],
                false,
                false,
            ),
        ];
        for (i, (notification, keys, created, deleted)) in cases.into_iter().enumerate() {
            let expectations = Expectations::new();
            expectations.set("ns/a", 1, 1);
            assert_eq!(
                observe_owned_pod(&notification, &expectations, replica_set_owner),
                keys,
                "case {i}"
            );
            let pending = Pending {
                adds: 1 - i64::from(created),
                deletes: 1 - i64::from(deleted),
            };
            assert_eq!(expectations.get("ns/a"), Some(pending), "case {i}");
        }
    }
}
