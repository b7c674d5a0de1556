//! The ReplicaSet controller's shell: informer events in, pods created and deleted, status out.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_api::patch::PatchType;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Expectations, Informer, Notification, WorkQueue};

use super::{
    failed_create_event, failed_delete_event, plan_with_related, successful_create_event,
    successful_delete_event, ManageError,
};
use crate::shell::{
    cached_for_key, controller_of, enqueue_own_key_forgetting, key_of, namespace_of, now,
    observe_owned_pod, record_events, typed, QueuedController, SyncError,
};

fn pods_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::pod::V1
}

/// What differs between the kinds this shell manages: ReplicaSets, and ReplicationControllers,
/// which upstream also runs through the ReplicaSet controller's logic after converting them.
pub struct Flavor {
    /// The managed resource.
    pub resource: &'static ResourceInfo,
    /// The `kind` its pods' controller references name.
    pub owner_kind: &'static str,
    /// The object as the ReplicaSet the planner reads, `None` when it does not convert.
    pub as_replica_set: fn(&Value) -> Option<ReplicaSet>,
    /// Makes a plan made for the converted object right for the managed kind (its controller
    /// references).
    pub adapt_plan: fn(&mut super::ReplicaSetPlan),
}

/// ReplicaSets as they are.
pub static REPLICA_SETS: Flavor = Flavor {
    resource: &skiff_api::kinds::replica_set::V1,
    owner_kind: "ReplicaSet",
    as_replica_set: |object| serde_json::from_value(object.clone()).ok(),
    adapt_plan: |_| {},
};

/// Everything one ReplicaSet sync reads and writes through.
#[derive(Clone)]
pub struct ReplicaSetController {
    flavor: &'static Flavor,
    client: Arc<dyn Client>,
    replica_sets: Informer,
    pods: Informer,
    recorder: EventRecorder,
    expectations: Arc<Expectations>,
    queue: WorkQueue<String>,
}

impl QueuedController for ReplicaSetController {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl ReplicaSetController {
    /// Wires the controller to shared informers; call [`ReplicaSetController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        replica_sets: Informer,
        pods: Informer,
        recorder: EventRecorder,
    ) -> Self {
        Self::with_flavor(&REPLICA_SETS, client, replica_sets, pods, recorder)
    }

    /// Like [`ReplicaSetController::new`], for the kind `flavor` describes; `replica_sets`
    /// is the informer of that kind.
    pub fn with_flavor(
        flavor: &'static Flavor,
        client: Arc<dyn Client>,
        replica_sets: Informer,
        pods: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let controller = ReplicaSetController {
            flavor,
            client,
            replica_sets,
            pods,
            recorder,
            expectations: Arc::new(Expectations::new()),
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    /// Routes changes to ReplicaSet keys: the ReplicaSet's own changes, and its pods' (by
    /// controller reference, observing the creations and deletions it expects); an orphan pod
    /// wakes every ReplicaSet of its namespace, one of which may adopt it.
    fn watch_changes(&self) {
        self.replica_sets
            .add_handler(enqueue_own_key_forgetting(&self.queue, &self.expectations));
        let queue = self.queue.clone();
        let expectations = self.expectations.clone();
        let replica_sets = self.replica_sets.clone();
        let owner_kind = self.flavor.owner_kind;
        self.pods.add_handler(move |n| {
            let pod = n.object();
            let ns = namespace_of(pod).to_string();
            let owner_key = |p: &Value| match controller_of(p) {
                Some((kind, name, _)) if kind == owner_kind => {
                    Some(format!("{}/{}", namespace_of(p), name))
                }
                _ => None,
            };
            let owners = observe_owned_pod(n, &expectations, owner_key);
            // An orphan may be adopted by any ReplicaSet of its namespace: a new pod owned by
            // no ReplicaSet, or an update leaving the pod with no controller at all.
            let orphan = match n {
                Notification::Added(_) => owners.is_empty(),
                Notification::Updated { new, .. } => controller_of(new).is_none(),
                Notification::Deleted(_) => false,
            };
            for key in owners {
                queue.add(key);
            }
            if orphan {
                for rs in replica_sets.list_by_namespace(&ns) {
                    if let Some(key) = key_of(&rs) {
                        queue.add(key);
                    }
                }
            }
        });
    }

    /// One sync of one ReplicaSet.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, _, cached)) = cached_for_key(&self.replica_sets, key) else {
            self.expectations.delete(key);
            return Ok(None);
        };
        let Some(rs) = (self.flavor.as_replica_set)(&cached) else {
            return Ok(None);
        };
        // Expectations are read before the pods, as upstream does: once they are satisfied the
        // cache holds every pod event they waited for, so the list below cannot show a pod this
        // controller already deleted as active. Read after the list, an event landing in
        // between satisfies them while the list still counts that pod; deleting it again
        // changes nothing, no event follows, and the ReplicaSet stalls until the TTL expires.
        let may_manage = self.expectations.satisfied(key);
        let pods: Vec<Pod> = self
            .pods
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let others: Vec<ReplicaSet> = self
            .replica_sets
            .list_by_namespace(namespace)
            .iter()
            .filter(|o| o.pointer("/metadata/uid") != cached.pointer("/metadata/uid"))
            .filter_map(|o| (self.flavor.as_replica_set)(o))
            .collect();
        let mut plan = plan_with_related(&rs, &others, &pods, now());
        (self.flavor.adapt_plan)(&mut plan);
        if let Some(error) = &plan.error {
            return Err(SyncError::Plan(error.to_string()));
        }
        let pod_scope = Scope {
            resource: pods_resource(),
            namespace: Some(namespace),
        };
        for patch in plan.adopt.iter().chain(plan.release.iter()) {
            match self
                .client
                .patch(
                    pod_scope,
                    &patch.pod_name,
                    PatchType::StrategicMerge,
                    patch.patch.clone(),
                    false,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }

        let mut manage_error = None;
        if may_manage {
            manage_error = self.manage(key, &cached, &plan, pod_scope).await;
        }
        let status = match &manage_error {
            Some(error) => plan.status_after_manage_error(&rs, error, now()),
            None => plan.status_update.clone(),
        };
        if let Some(status) = status {
            // The stored object with the new status: both kinds share the status fields.
            let mut updated = (*cached).clone();
            updated["status"] = serde_json::to_value(&status)?;
            let scope = Scope {
                resource: self.flavor.resource,
                namespace: Some(namespace),
            };
            match self.client.update_status(scope, updated).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(error) = manage_error {
            return Err(SyncError::Plan(error.message));
        }
        Ok(plan.requeue_after)
    }

    /// Creates or deletes pods as planned, in slow-start batches, keeping expectations so the
    /// next sync waits until the informer has seen these writes.
    async fn manage(
        &self,
        key: &str,
        cached: &Value,
        plan: &super::ReplicaSetPlan,
        pod_scope: Scope<'_>,
    ) -> Option<ManageError> {
        if let Some(creation) = &plan.create {
            self.expectations.expect_creations(key, creation.count);
            let body = match serde_json::to_value(&creation.pod) {
                Ok(body) => body,
                Err(e) => {
                    return Some(ManageError {
                        message: e.to_string(),
                    })
                }
            };
            let mut remaining = creation.count;
            for batch in &creation.batches {
                let results =
                    join_all((0..*batch).map(|_| self.client.create(pod_scope, body.clone())))
                        .await;
                remaining -= batch;
                let mut failure = None;
                for result in results {
                    match result {
                        Ok(pod) => {
                            let name = pod
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            record_events(&self.recorder, cached, &[successful_create_event(name)]);
                        }
                        Err(e) => {
                            // This creation will never be observed.
                            self.expectations.lower(key, 1, 0);
                            record_events(
                                &self.recorder,
                                cached,
                                &[failed_create_event(&e.message())],
                            );
                            failure = Some(ManageError {
                                message: e.to_string(),
                            });
                        }
                    }
                }
                if failure.is_some() {
                    // Skipped batches will never be observed either.
                    self.expectations.lower(key, remaining as i64, 0);
                    return failure;
                }
            }
        }
        if !plan.delete.is_empty() {
            self.expectations.expect_deletions(key, plan.delete.len());
            let results = join_all(plan.delete.iter().map(|d| {
                let options = DeleteOptions {
                    precondition_uid: d.uid.clone(),
                    ..Default::default()
                };
                async move { (d, self.client.delete(pod_scope, &d.name, &options).await) }
            }))
            .await;
            let mut failure = None;
            for (deletion, result) in results {
                match result {
                    Ok(_) => record_events(
                        &self.recorder,
                        cached,
                        &[successful_delete_event(&deletion.name)],
                    ),
                    Err(e) if e.is_not_found() => self.expectations.deletion_observed(key),
                    Err(e) => {
                        self.expectations.deletion_observed(key);
                        record_events(&self.recorder, cached, &[failed_delete_event(&e.message())]);
                        failure = Some(ManageError {
                            message: e.to_string(),
                        });
                    }
                }
            }
            return failure;
        }
        None
    }
}
