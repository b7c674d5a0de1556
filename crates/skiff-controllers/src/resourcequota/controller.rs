//! The resource quota controller's shell: ResourceQuotas and pods from informers, other
//! counted kinds listed when a quota needs them; each quota's status computed by
//! [`super::plan_status`] and written through the `status` subresource.
//!
//! As upstream, a quota is synced when it is created or its `spec.hard` changes, and pods
//! replenish it when they are deleted or stop counting (finish, or start terminating); new
//! objects are charged by quota admission, not here, so the controller never races an
//! admitted pod it has not observed yet. Every quota is also recomputed every [`RESYNC`]
//! (one counting kinds without an informer here every [`RESYNC_OTHER_KINDS`]), which corrects
//! a charge for an object whose creation failed after admission, as upstream's resync does.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skiff_api::kinds;
use skiff_api::resources;
use skiff_client::{Client, ListOptions, Scope};
use skiff_runtime::informer::split_key;
use skiff_runtime::{Informer, InformerConfig, Notification, WorkQueue};

use super::{plan_status, sources};
use crate::shell::{namespace_of, run_key_syncs, KeySync, SyncError};

/// kube-controller-manager's `--concurrent-resource-quota-syncs` default.
const WORKERS: usize = 5;

/// How often a quota counting kinds other than pods is recomputed.
pub const RESYNC_OTHER_KINDS: Duration = Duration::from_secs(15);

/// How often every quota is recomputed (kube-controller-manager's
/// `--resource-quota-sync-period`), which corrects a charge admission made for an object
/// whose creation then failed.
pub const RESYNC: Duration = Duration::from_secs(5 * 60);

/// The shell.
#[derive(Clone)]
pub struct ResourceQuotaController {
    client: Arc<dyn Client>,
    quotas: Informer,
    pods: Informer,
    queue: WorkQueue<String>,
}

impl KeySync for ResourceQuotaController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

fn hard_of(quota: &Value, which: &str) -> Value {
    quota
        .pointer(&format!("/{which}/hard"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Whether a pod counts against quotas, as far as a notification can tell without the time.
fn pod_active(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) && pod.pointer("/metadata/deletionTimestamp").is_none()
}

impl ResourceQuotaController {
    /// Wires the controller to its informers.
    pub fn new(client: Arc<dyn Client>, quotas: Informer, pods: Informer) -> Self {
        let controller = ResourceQuotaController {
            client,
            quotas,
            pods,
            queue: WorkQueue::new(),
        };
        let queue = controller.queue.clone();
        controller.quotas.add_handler(move |n| {
            let wanted = match n {
                Notification::Added(_) => true,
                Notification::Updated { old, new } => {
                    hard_of(old, "spec") != hard_of(new, "spec")
                        || hard_of(new, "spec") != hard_of(new, "status")
                }
                Notification::Deleted(_) => false,
            };
            if let (true, Some(key)) = (wanted, n.key()) {
                queue.add(key);
            }
        });
        let quotas = controller.quotas.downgrade();
        let queue = controller.queue.clone();
        controller.pods.add_handler(move |n| {
            let replenish = match n {
                Notification::Added(_) => false,
                Notification::Updated { old, new } => pod_active(old) && !pod_active(new),
                Notification::Deleted(_) => true,
            };
            let Some(quotas) = quotas.upgrade().filter(|_| replenish) else {
                return;
            };
            for quota in quotas.list_by_namespace(namespace_of(n.object())) {
                if let Some(key) = crate::shell::key_of(&quota) {
                    queue.add(key);
                }
            }
        });
        controller
    }

    /// Syncs every quota, then follows changes until the queue shuts down.
    pub async fn run(self, workers: usize) {
        for quota in self.quotas.list() {
            if let Some(key) = crate::shell::key_of(&quota) {
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

    async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let (namespace, name) = split_key(key);
        let Some(quota) = self.quotas.get(namespace, name) else {
            return Ok(None);
        };
        let mut objects: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
        let mut other_kinds = false;
        for (group, plural) in sources(&quota) {
            let listed = if group.is_empty() && plural == "pods" {
                self.pods
                    .list_by_namespace(namespace.unwrap_or(""))
                    .into_iter()
                    .map(|p| (*p).clone())
                    .collect()
            } else {
                other_kinds = true;
                match resources::all().find(|r| r.group == group && r.plural == plural) {
                    Some(resource) if resource.namespaced => {
                        let scope = Scope {
                            resource,
                            namespace,
                        };
                        self.client
                            .list(scope, &ListOptions::default())
                            .await?
                            .items
                    }
                    _ => Vec::new(),
                }
            };
            objects.insert((group, plural), listed);
        }
        let lookup = |group: &str, plural: &str| {
            objects
                .get(&(group.to_string(), plural.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        if let Some(status) = plan_status(&quota, &lookup, crate::shell::now()) {
            let mut updated = (*quota).clone();
            updated["status"] = status;
            let scope = Scope {
                resource: &kinds::resource_quota::V1,
                namespace,
            };
            match self.client.update_status(scope, updated).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(if other_kinds {
            RESYNC_OTHER_KINDS
        } else {
            RESYNC
        }))
    }
}

/// Runs the resource quota controller over its own informers until `shutdown` resolves.
pub async fn run(client: Arc<dyn Client>, shutdown: impl Future<Output = ()> + Send) {
    let informer = |resource| Informer::start(client.clone(), InformerConfig::new(resource));
    let quotas = informer(&kinds::resource_quota::V1);
    let pods = informer(&kinds::pod::V1);
    tokio::pin!(shutdown);
    // A server told to stop (its lease lost) while the store does not answer must not wait
    // for informers that cannot sync.
    for i in [&quotas, &pods] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }
    let controller = ResourceQuotaController::new(client, quotas, pods);
    let stopper = controller.clone();
    tokio::select! {
        _ = controller.run(WORKERS) => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}
