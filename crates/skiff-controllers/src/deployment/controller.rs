//! The Deployment controller's shell: informer events in, the planner's writes out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::ResourceInfo;
use skiff_api::selector::LabelSelector;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Informer, Notification, WorkQueue};

use super::util::{strategy_type, STRATEGY_RECREATE};
use super::{next_collision_count, plan, Action, DeploymentObservation, Requeue};
use crate::shell::{
    controller_of, enqueue_own_key, key_of, namespace_of, now, record_events, run_key_syncs, typed,
    KeySync, SyncError,
};

/// Everything one Deployment sync reads and writes through.
#[derive(Clone)]
pub struct DeploymentController {
    client: Arc<dyn Client>,
    deployments: Informer,
    replica_sets: Informer,
    pods: Informer,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
}

fn deployments_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::deployment::V1
}

fn replica_sets_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::replica_set::V1
}

/// Whether a sync must look at the Deployment's pods: only Recreate does (it waits for old
/// pods to be gone), and decoding every pod of the namespace on each RollingUpdate sync makes
/// a large rollout quadratic.
fn needs_pods(deployment: &Deployment) -> bool {
    strategy_type(deployment) == STRATEGY_RECREATE
}

impl KeySync for DeploymentController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl DeploymentController {
    /// Wires the controller to shared informers; call [`DeploymentController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        deployments: Informer,
        replica_sets: Informer,
        pods: Informer,
        recorder: EventRecorder,
    ) -> DeploymentController {
        let controller = DeploymentController {
            client,
            deployments,
            replica_sets,
            pods,
            recorder,
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    /// Routes informer events to Deployment keys, as the upstream handlers do: a Deployment's
    /// own changes, its ReplicaSets' changes (by controller reference, or every Deployment of the
    /// namespace for an orphan that might be adopted), and pod deletions (Recreate waits for
    /// them).
    fn watch_changes(&self) {
        self.deployments.add_handler(enqueue_own_key(&self.queue));
        let queue = self.queue.clone();
        let deployments = self.deployments.clone();
        self.replica_sets.add_handler(move |n| {
            let mut objects = vec![n.object().clone()];
            if let Notification::Updated { old, .. } = n {
                objects.push(old.clone());
            }
            for rs in objects {
                let ns = namespace_of(&rs).to_string();
                match controller_of(&rs) {
                    Some(("Deployment", name, _)) => queue.add(format!("{ns}/{name}")),
                    Some(_) => {}
                    None => {
                        for d in deployments.list_by_namespace(&ns) {
                            if let Some(key) = key_of(&d) {
                                queue.add(key);
                            }
                        }
                    }
                }
            }
        });
        let queue = self.queue.clone();
        let replica_sets = self.replica_sets.clone();
        self.pods.add_handler(move |n| {
            if let Notification::Deleted(pod) = n {
                let ns = namespace_of(pod);
                if let Some(("ReplicaSet", rs_name, _)) = controller_of(pod) {
                    if let Some(rs) = replica_sets.get(Some(ns), rs_name) {
                        if let Some(("Deployment", name, _)) = controller_of(&rs) {
                            queue.add(format!("{ns}/{name}"));
                        }
                    }
                }
            }
        });
    }

    /// Processes Deployments with `workers` concurrent syncs until the queue shuts down.
    pub async fn run(self, workers: usize) {
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    fn scope<'a>(&self, resource: &'static ResourceInfo, namespace: &'a str) -> Scope<'a> {
        Scope {
            resource,
            namespace: Some(namespace),
        }
    }

    /// One sync of one Deployment.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let (namespace, name) = match key.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => return Ok(None),
        };
        let Some(cached) = self.deployments.get(Some(&namespace), &name) else {
            return Ok(None);
        };
        let Some(deployment) = typed::<Deployment>(&cached) else {
            return Ok(None);
        };
        let replica_sets = self.claim_replica_sets(&deployment, &namespace).await?;
        let selector = deployment
            .spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.selector).ok())
            .and_then(|s| LabelSelector::from_label_selector(&s).ok());
        let pods: Vec<Pod> = if needs_pods(&deployment) {
            self.pods
                .list_by_namespace(&namespace)
                .iter()
                .filter(|p| {
                    selector
                        .as_ref()
                        .is_some_and(|s| !s.is_empty() && s.matches_object(p))
                })
                .filter_map(typed)
                .collect()
        } else {
            Vec::new()
        };
        let observation = DeploymentObservation {
            deployment: deployment.clone(),
            replica_sets,
            pods,
        };
        let planned = plan(&observation, now());
        // Events are recorded even when a later write fails, but only for the ReplicaSet writes
        // that went through, as upstream records each right after its write.
        let mut written = HashSet::new();
        let mut failure = None;
        for action in &planned.actions {
            let rs_name = action.replica_set_name().map(str::to_string);
            match self.apply(&deployment, &namespace, action.clone()).await {
                Ok(true) => written.extend(rs_name),
                Ok(false) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let events = planned.events_for_writes(|name| written.contains(name));
        record_events(&self.recorder, &cached, &events);
        if let Some(failure) = failure {
            return Err(failure);
        }
        if let Some(error) = planned.error {
            return Err(SyncError::Plan(error.to_string()));
        }
        match planned.requeue {
            Requeue::None => Ok(None),
            Requeue::After(delay) => Ok(Some(delay)),
            Requeue::RateLimited => Err(SyncError::Plan("progress check due".into())),
        }
    }

    /// The ReplicaSets this Deployment controls, adopting matching orphans and releasing owned
    /// ones that no longer match, as the upstream controller-ref manager does.
    async fn claim_replica_sets(
        &self,
        deployment: &Deployment,
        namespace: &str,
    ) -> Result<Vec<ReplicaSet>, SyncError> {
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let deleting = deployment.metadata.deletion_timestamp.is_some();
        let selector = deployment
            .spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.selector).ok())
            .and_then(|s| LabelSelector::from_label_selector(&s).ok());
        let mut owned = Vec::new();
        for cached in self.replica_sets.list_by_namespace(namespace) {
            let matches = selector
                .as_ref()
                .is_some_and(|s| !s.is_empty() && s.matches_object(&cached));
            let rs_name = cached
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match controller_of(&cached) {
                Some((_, _, owner_uid)) if owner_uid == uid => {
                    if matches || deleting {
                        owned.extend(typed::<ReplicaSet>(&cached));
                    } else {
                        // Release: drop our controller reference.
                        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": cached.pointer("/metadata/uid")}});
                        let _ = self
                            .client
                            .patch(
                                self.scope(replica_sets_resource(), namespace),
                                &rs_name,
                                PatchType::StrategicMerge,
                                patch,
                                false,
                            )
                            .await;
                    }
                }
                None if matches
                    && !deleting
                    && cached.pointer("/metadata/deletionTimestamp").is_none() =>
                {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{
                            "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
                            "controller": true, "blockOwnerDeletion": true
                        }],
                        "uid": cached.pointer("/metadata/uid"),
                    }});
                    match self
                        .client
                        .patch(
                            self.scope(replica_sets_resource(), namespace),
                            &rs_name,
                            PatchType::StrategicMerge,
                            patch,
                            false,
                        )
                        .await
                    {
                        Ok(adopted) => {
                            owned.extend(serde_json::from_value::<ReplicaSet>(adopted).ok())
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                _ => {}
            }
        }
        Ok(owned)
    }

    /// Makes one write; `Ok(false)` when it turned out to be unnecessary (the ReplicaSet to
    /// create exists already, as ours), so nothing happened that an event could report.
    async fn apply(
        &self,
        deployment: &Deployment,
        namespace: &str,
        action: Action,
    ) -> Result<bool, SyncError> {
        let rs_scope = self.scope(replica_sets_resource(), namespace);
        let d_scope = self.scope(deployments_resource(), namespace);
        match action {
            Action::CreateReplicaSet { replica_set } => {
                let name = replica_set.metadata.name.clone().unwrap_or_default();
                match self
                    .client
                    .create(rs_scope, serde_json::to_value(&replica_set)?)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_conflict() => {
                        // A ReplicaSet of that name exists: ours already (a stale cache), or a
                        // hash collision that a new collision count resolves.
                        let existing: ReplicaSet =
                            serde_json::from_value(self.client.get(rs_scope, &name).await?)?;
                        match next_collision_count(deployment, &existing) {
                            None => Ok(false),
                            Some(count) => {
                                let mut d = deployment.clone();
                                d.status
                                    .get_or_insert_with(Default::default)
                                    .collision_count = Some(count);
                                self.client
                                    .update_status(d_scope, serde_json::to_value(&d)?)
                                    .await?;
                                Err(SyncError::Plan(format!(
                                    "hash collision on ReplicaSet {name}"
                                )))
                            }
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Action::UpdateReplicaSet { replica_set, .. } => {
                self.client
                    .update(rs_scope, serde_json::to_value(&replica_set)?)
                    .await?;
                Ok(true)
            }
            Action::DeleteReplicaSet { name, uid } => {
                let options = DeleteOptions {
                    precondition_uid: uid,
                    ..Default::default()
                };
                match self.client.delete(rs_scope, &name, &options).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_not_found() => Ok(true),
                    Err(e) => Err(e.into()),
                }
            }
            Action::UpdateDeployment { deployment } => {
                self.client
                    .update(d_scope, serde_json::to_value(&deployment)?)
                    .await?;
                Ok(true)
            }
            Action::UpdateDeploymentStatus { deployment } => {
                self.client
                    .update_status(d_scope, serde_json::to_value(&deployment)?)
                    .await?;
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recreate_syncs_read_pods() {
        for (strategy, want) in [
            (json!({"type": "Recreate"}), true),
            (json!({"type": "RollingUpdate"}), false),
            (json!({}), false),
        ] {
            let deployment: Deployment = serde_json::from_value(json!({
                "metadata": {"name": "d"},
                "spec": {"selector": {}, "template": {}, "strategy": strategy.clone()},
            }))
            .expect("a valid Deployment");
            assert_eq!(needs_pods(&deployment), want, "{strategy}");
        }
    }
}
