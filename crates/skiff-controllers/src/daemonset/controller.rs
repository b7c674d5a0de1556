//! The DaemonSet controller's shell: informer events in; revisions, pods, events and status out,
//! as the planner decided.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Expectations, Informer, Notification, WorkQueue};

use super::{
    failed_create_event, failed_delete_event, placement, plan, successful_create_event,
    successful_delete_event, DaemonSetObservation, DaemonSetPlan, FailedPodBackoff,
};
use crate::shell::{
    cached_for_key, controller_of, create_or_find_revision, delete_revisions,
    enqueue_own_key_forgetting, finish_sync, key_of, namespace_of, now, observe_owned_pod,
    record_events, renumber_revision, report_collision, typed, QueuedController, SyncError,
};

fn daemon_sets_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::daemon_set::V1
}

fn pods_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::pod::V1
}

fn revisions_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::controller_revision::V1
}

/// Everything one DaemonSet sync reads and writes through.
#[derive(Clone)]
pub struct DaemonSetController {
    client: Arc<dyn Client>,
    daemon_sets: Informer,
    pods: Informer,
    nodes: Informer,
    revisions: Informer,
    recorder: EventRecorder,
    expectations: Arc<Expectations>,
    backoff: Arc<Mutex<FailedPodBackoff>>,
    queue: WorkQueue<String>,
}

impl QueuedController for DaemonSetController {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

/// What of a node decides where daemons run: labels, taints, unschedulable, and whether it is
/// Ready. Heartbeats change none of it.
fn placement_facts(node: &Value) -> Value {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").cloned());
    json!([
        node.pointer("/metadata/labels"),
        node.pointer("/spec/taints"),
        node.pointer("/spec/unschedulable"),
        ready,
    ])
}

impl DaemonSetController {
    /// Wires the controller to shared informers; call [`DaemonSetController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        daemon_sets: Informer,
        pods: Informer,
        nodes: Informer,
        revisions: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let controller = DaemonSetController {
            client,
            daemon_sets,
            pods,
            nodes,
            revisions,
            recorder,
            expectations: Arc::new(Expectations::new()),
            backoff: Arc::new(Mutex::new(FailedPodBackoff::new())),
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    /// Routes changes to DaemonSet keys: its own changes, its pods' (observing the creations and
    /// deletions it expects), and every node change that can move daemons (all DaemonSets).
    fn watch_changes(&self) {
        self.daemon_sets
            .add_handler(enqueue_own_key_forgetting(&self.queue, &self.expectations));
        let queue = self.queue.clone();
        let expectations = self.expectations.clone();
        self.pods.add_handler(move |n| {
            let owner_key = |p: &Value| match controller_of(p) {
                Some(("DaemonSet", name, _)) => Some(format!("{}/{}", namespace_of(p), name)),
                _ => None,
            };
            for key in observe_owned_pod(n, &expectations, owner_key) {
                queue.add(key);
            }
        });
        let queue = self.queue.clone();
        let daemon_sets = self.daemon_sets.clone();
        self.nodes.add_handler(move |n| {
            let moved = match n {
                Notification::Updated { old, new } => placement_facts(old) != placement_facts(new),
                Notification::Added(_) | Notification::Deleted(_) => true,
            };
            if moved {
                for ds in daemon_sets.list() {
                    if let Some(key) = key_of(&ds) {
                        queue.add(key);
                    }
                }
            }
        });
        let queue = self.queue.clone();
        self.revisions.add_handler(move |n| {
            let revision = n.object();
            if let Some(("DaemonSet", name, _)) = controller_of(revision) {
                queue.add(format!("{}/{}", namespace_of(revision), name));
            }
        });
    }

    /// One sync of one DaemonSet.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, _, cached)) = cached_for_key(&self.daemon_sets, key) else {
            self.expectations.delete(key);
            return Ok(None);
        };
        let Some(ds) = typed::<DaemonSet>(&cached) else {
            return Ok(None);
        };
        // Read before the pods, as the ReplicaSet controller does, so satisfied expectations
        // mean the pod list already holds every write they waited for.
        let expectations_satisfied = self.expectations.satisfied(key);
        let pods: Vec<Pod> = self
            .pods
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let nodes: Vec<Node> = self.nodes.list().iter().filter_map(typed).collect();
        let revisions: Vec<ControllerRevision> = self
            .revisions
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let plan = {
            let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
            let now = now();
            backoff.forget_expired(now);
            plan(
                &DaemonSetObservation {
                    daemon_set: &ds,
                    nodes: &nodes,
                    pods: &pods,
                    revisions: &revisions,
                    expectations_satisfied,
                },
                &mut backoff,
                now,
            )
        };
        record_events(&self.recorder, &cached, &plan.events);
        let revision_scope = Scope {
            resource: revisions_resource(),
            namespace: Some(namespace),
        };
        if let Some(revision) = &plan.create_revision {
            if let Some(requeue) = self.create_revision(&ds, revision, revision_scope).await? {
                return Ok(Some(requeue));
            }
        }
        let client = self.client.as_ref();
        renumber_revision(client, revision_scope, plan.renumber_revision.as_ref()).await?;
        let pod_scope = Scope {
            resource: pods_resource(),
            namespace: Some(namespace),
        };
        let manage_error = self.manage(key, &ds, &cached, &plan, pod_scope).await;
        delete_revisions(client, revision_scope, &plan.delete_revisions).await?;
        let with_status = plan.status.as_ref().map(|status| DaemonSet {
            status: Some(status.clone()),
            ..ds.clone()
        });
        let scope = Scope {
            resource: daemon_sets_resource(),
            namespace: Some(namespace),
        };
        finish_sync(client, scope, with_status, manage_error, plan.requeue_after).await
    }

    /// Creates the current template's revision. A revision of another template already
    /// holding the name is a hash collision: the status' `collisionCount` goes up and the sync
    /// runs again with the next hash.
    async fn create_revision(
        &self,
        ds: &DaemonSet,
        revision: &ControllerRevision,
        scope: Scope<'_>,
    ) -> Result<Option<Duration>, SyncError> {
        let client = self.client.as_ref();
        let Some(existing) = create_or_find_revision(client, scope, revision).await? else {
            return Ok(None);
        };
        let ours = existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| Some(&r.uid) == ds.metadata.uid.as_ref() && r.controller == Some(true));
        if ours && existing.data == revision.data {
            // The cache has not seen it yet.
            return Ok(Some(Duration::from_millis(100)));
        }
        let mut raised = ds.clone();
        let status = raised.status.get_or_insert_with(Default::default);
        status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
        let ds_scope = Scope {
            resource: daemon_sets_resource(),
            namespace: scope.namespace,
        };
        let name = revision.metadata.name.as_deref().unwrap_or_default();
        report_collision(client, ds_scope, &raised, name).await
    }

    /// Creates and deletes pods as planned, creations in slow-start batches, keeping
    /// expectations so the next sync waits until the informer has seen these writes. Returns
    /// the first error.
    async fn manage(
        &self,
        key: &str,
        ds: &DaemonSet,
        cached: &Value,
        plan: &DaemonSetPlan,
        pod_scope: Scope<'_>,
    ) -> Option<String> {
        if plan.create_on_nodes.is_empty() && plan.delete.is_empty() {
            return None;
        }
        self.expectations.set(
            key,
            plan.create_on_nodes.len() as i64,
            plan.delete.len() as i64,
        );
        let mut failure = None;
        let mut nodes = plan.create_on_nodes.iter();
        let mut remaining = plan.create_on_nodes.len();
        for batch in &plan.create_batches {
            let bodies: Vec<Value> = nodes
                .by_ref()
                .take(*batch)
                .filter_map(|node| {
                    serde_json::to_value(placement::daemon_pod(ds, node, &plan.hash)).ok()
                })
                .collect();
            remaining = remaining.saturating_sub(*batch);
            let results = join_all(
                bodies
                    .into_iter()
                    .map(|body| self.client.create(pod_scope, body)),
            )
            .await;
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
                        self.expectations.lower(key, 1, 0);
                        record_events(
                            &self.recorder,
                            cached,
                            &[failed_create_event(&e.to_string())],
                        );
                        failure = Some(e.to_string());
                    }
                }
            }
            if failure.is_some() {
                // The skipped batches will never be observed.
                self.expectations.lower(key, remaining as i64, 0);
                break;
            }
        }
        let results = join_all(plan.delete.iter().map(|d| {
            let options = DeleteOptions {
                precondition_uid: d.uid.clone(),
                ..Default::default()
            };
            async move { (d, self.client.delete(pod_scope, &d.name, &options).await) }
        }))
        .await;
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
                    record_events(
                        &self.recorder,
                        cached,
                        &[failed_delete_event(&e.to_string())],
                    );
                    failure.get_or_insert(e.to_string());
                }
            }
        }
        failure
    }
}
