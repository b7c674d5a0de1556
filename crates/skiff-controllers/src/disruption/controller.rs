//! The disruption controller's shell: PodDisruptionBudgets, pods, ReplicaSets, Deployments and
//! CloneSets from informers; each budget's status computed by [`super::plan_status`] and written
//! through the `status` subresource.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use skiff_api::kinds;
use skiff_api::kinds::pod_disruption_budget::covers;
use skiff_client::{Client, Scope};
use skiff_runtime::informer::split_key;
use skiff_runtime::{Informer, InformerConfig, Notification, WorkQueue};

use super::{plan_status, PodController};
use crate::shell::{controller_of, namespace_of, run_key_syncs, KeySync, SyncError};

/// kube-controller-manager runs one disruption worker per budget key at a time; a few keep
/// many budgets moving.
const WORKERS: usize = 2;

/// The shell.
#[derive(Clone)]
pub struct DisruptionController {
    client: Arc<dyn Client>,
    budgets: Informer,
    pods: Informer,
    replica_sets: Informer,
    deployments: Informer,
    clone_sets: Informer,
    queue: WorkQueue<String>,
}

impl KeySync for DisruptionController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

/// Queues every budget of the namespace the notified object lives in (the old and new
/// labels of a pod may both matter, and budgets per namespace are few).
fn enqueue_namespace(
    budgets: &Informer,
    queue: &WorkQueue<String>,
) -> impl Fn(&Notification) + Send + Sync + 'static {
    let budgets = budgets.downgrade();
    let queue = queue.clone();
    move |n| {
        let Some(budgets) = budgets.upgrade() else {
            return;
        };
        for budget in budgets.list_by_namespace(namespace_of(n.object())) {
            if let Some(key) = crate::shell::key_of(&budget) {
                queue.add(key);
            }
        }
    }
}

impl DisruptionController {
    /// Wires the controller to its informers.
    pub fn new(
        client: Arc<dyn Client>,
        budgets: Informer,
        pods: Informer,
        replica_sets: Informer,
        deployments: Informer,
        clone_sets: Informer,
    ) -> Self {
        let controller = DisruptionController {
            client,
            budgets,
            pods,
            replica_sets,
            deployments,
            clone_sets,
            queue: WorkQueue::new(),
        };
        controller
            .budgets
            .add_handler(crate::shell::enqueue_own_key(&controller.queue));
        for informer in [
            &controller.pods,
            &controller.replica_sets,
            &controller.deployments,
            &controller.clone_sets,
        ] {
            informer.add_handler(enqueue_namespace(&controller.budgets, &controller.queue));
        }
        controller
    }

    /// Syncs every budget, then follows changes until the queue shuts down.
    pub async fn run(self, workers: usize) {
        for budget in self.budgets.list() {
            if let Some(key) = crate::shell::key_of(&budget) {
                self.queue.add(key);
            }
        }
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    /// Upstream's controller finders: a ReplicaSet's pods belong to its Deployment when it
    /// has one, else to the ReplicaSet; a CloneSet's to the CloneSet (upstream's finder of
    /// any controller with a `scale` subresource); each looked up by name and checked by uid.
    fn controller_of_pod(&self, pod: &Value) -> PodController {
        let Some((kind, name, uid)) = controller_of(pod) else {
            return PodController::Unmanaged;
        };
        let namespace = namespace_of(pod);
        let replicas = |o: &Value| {
            o.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        };
        let uid_of = |o: &Value| {
            o.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match kind {
            "ReplicaSet" => {
                let Some(rs) = self.replica_sets.get(Some(namespace), name) else {
                    return PodController::Missing;
                };
                if uid_of(&rs) != uid {
                    return PodController::Missing;
                }
                if let Some(("Deployment", deployment, deployment_uid)) = controller_of(&rs) {
                    if let Some(d) = self.deployments.get(Some(namespace), deployment) {
                        if uid_of(&d) == deployment_uid {
                            return PodController::Found {
                                uid: deployment_uid.to_string(),
                                scale: replicas(&d),
                            };
                        }
                    }
                    return PodController::Missing;
                }
                PodController::Found {
                    uid: uid.to_string(),
                    scale: replicas(&rs),
                }
            }
            "CloneSet" => match self.clone_sets.get(Some(namespace), name) {
                Some(set) if uid_of(&set) == uid => PodController::Found {
                    uid: uid.to_string(),
                    scale: replicas(&set),
                },
                _ => PodController::Missing,
            },
            _ => PodController::Missing,
        }
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let (namespace, name) = split_key(key);
        let Some(budget) = self.budgets.get(namespace, name) else {
            return Ok(None);
        };
        let pods: Vec<Arc<Value>> = self
            .pods
            .list_by_namespace(namespace.unwrap_or(""))
            .into_iter()
            .filter(|p| covers(&budget, p))
            .collect();
        let refs: Vec<&Value> = pods.iter().map(|p| &**p).collect();
        let now = Timestamp::now();
        let plan = plan_status(&budget, &refs, &|p| self.controller_of_pod(p), now);
        let recheck = plan
            .recheck
            .map(|at| Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO));
        if let Some(status) = plan.status {
            let mut updated = (*budget).clone();
            updated["status"] = status;
            let scope = Scope {
                resource: &kinds::pod_disruption_budget::V1,
                namespace,
            };
            match self.client.update_status(scope, updated).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(recheck)
    }
}

/// Runs the disruption controller over its own informers until `shutdown` resolves.
///
/// Informers read through `client`, as kube-controller-manager's shared informers do; status
/// writes go through `writer`, the controller's own identity.
pub async fn run(
    client: Arc<dyn Client>,
    writer: Arc<dyn Client>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let informer = |resource| Informer::start(client.clone(), InformerConfig::new(resource));
    let budgets = informer(&kinds::pod_disruption_budget::V1);
    let pods = informer(&kinds::pod::V1);
    let replica_sets = informer(&kinds::replica_set::V1);
    let deployments = informer(&kinds::deployment::V1);
    let clone_sets = informer(&kinds::clone_set::V1ALPHA1);
    tokio::pin!(shutdown);
    // Told to stop while the store does not answer, it must not wait for unsynced informers.
    for i in [&budgets, &pods, &replica_sets, &deployments, &clone_sets] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }
    let controller =
        DisruptionController::new(writer, budgets, pods, replica_sets, deployments, clone_sets);
    let stopper = controller.clone();
    tokio::select! {
        _ = controller.run(WORKERS) => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}
