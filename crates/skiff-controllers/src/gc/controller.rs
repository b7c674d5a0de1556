//! The garbage collector's shell: watches every kind that owns or is owned, and applies the
//! planner's cascades.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skiff_api::patch::PatchType;
use skiff_api::resources;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{Informer, Notification, WorkQueue};

use super::{plan, plan_for_owner, GcAction, ObjectRef};
use crate::shell::SyncError;

/// How often the whole object graph is checked, catching references whose owner vanished while
/// nobody was watching (for example while the server was down).
pub const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(60);

/// A unit of garbage-collection work.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Work {
    /// Everything that concerns one uid (an owner that changed or vanished).
    Owner(String),
    /// The whole graph.
    Everything,
}

/// The garbage collector over a set of informers (one per kind that takes part).
#[derive(Clone)]
pub struct GarbageCollector {
    client: Arc<dyn Client>,
    informers: Vec<Informer>,
    queue: WorkQueue<Work>,
}

fn uid_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The metadata the planner decides on; a change elsewhere (status, spec, labels) cannot make
/// or unmake garbage.
const GC_RELEVANT_METADATA: [&str; 3] = [
    "/metadata/ownerReferences",
    "/metadata/deletionTimestamp",
    "/metadata/finalizers",
];

/// The uids whose work a notification may have changed: the object itself once it is deleted
/// or being deleted, and its owners (old and new) whenever it appears, goes, or changes its
/// references, deletion state or finalizers. Status-only updates, the bulk of a rollout's
/// traffic, name nobody, as upstream's graph builder ignores them.
fn uids_to_recheck(notification: &Notification) -> Vec<String> {
    let object = notification.object();
    let mut uids = Vec::new();
    let deleting = object.pointer("/metadata/deletionTimestamp").is_some();
    if matches!(notification, Notification::Deleted(_)) || deleting {
        uids.extend(uid_of(object));
    }
    match notification {
        Notification::Added(_) | Notification::Deleted(_) => uids.extend(owner_uids(object)),
        Notification::Updated { old, new } => {
            let relevant_change = GC_RELEVANT_METADATA
                .iter()
                .any(|path| old.pointer(path) != new.pointer(path));
            if relevant_change || deleting {
                for uid in owner_uids(new).into_iter().chain(owner_uids(old)) {
                    if !uids.contains(&uid) {
                        uids.push(uid);
                    }
                }
            }
        }
    }
    uids
}

impl GarbageCollector {
    /// A collector over `informers`.
    pub fn new(client: Arc<dyn Client>, informers: Vec<Informer>) -> GarbageCollector {
        let gc = GarbageCollector {
            client,
            informers,
            queue: WorkQueue::new(),
        };
        for informer in &gc.informers {
            let queue = gc.queue.clone();
            informer.add_handler(move |n| {
                for uid in uids_to_recheck(n) {
                    queue.add(Work::Owner(uid));
                }
            });
        }
        gc
    }

    /// Runs until the queue shuts down, with a periodic full scan.
    pub async fn run(self, workers: usize) {
        for informer in &self.informers {
            informer.wait_synced().await;
        }
        let queue = self.queue.clone();
        let ticker = queue.clone();
        let scanner = tokio::spawn(async move {
            loop {
                tokio::time::sleep(FULL_SCAN_INTERVAL).await;
                if ticker.is_shutting_down() {
                    break;
                }
                ticker.add(Work::Everything);
            }
        });
        let this = Arc::new(self);
        skiff_runtime::run_workers(queue, workers, move |work: Work| {
            let this = this.clone();
            async move { this.sync(&work).await.map(|_| None) }
        })
        .await;
        scanner.abort();
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn sync(&self, work: &Work) -> Result<(), SyncError> {
        // Shared handles to the cached objects: a pass reads them, it never needs copies.
        let objects: Vec<Arc<Value>> = self.informers.iter().flat_map(|i| i.list()).collect();
        let planned = match work {
            Work::Owner(uid) => plan_for_owner(uid, &objects),
            Work::Everything => plan(&objects),
        };
        for action in planned.actions {
            // Stop at the first failure, as the plan's order requires; retry later.
            self.apply(&action).await?;
        }
        Ok(())
    }

    /// Whether every owner the planner considers gone really is: owners of kinds this
    /// collector does not watch, and owners its caches have not seen yet, are looked up.
    async fn owners_confirmed_gone(
        &self,
        target: &ObjectRef,
        keep: &[String],
    ) -> Result<bool, SyncError> {
        let scope = Scope {
            resource: match resources::find_by_kind(&target.api_version, &target.kind) {
                Some(r) => r,
                None => return Ok(false),
            },
            namespace: target.namespace.as_deref(),
        };
        let current = match self.client.get(scope, &target.name).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        for reference in current
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let uid = reference.get("uid").and_then(Value::as_str).unwrap_or("");
            if keep.iter().any(|k| k == uid) {
                continue;
            }
            let api_version = reference
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            let Some(resource) = resources::find_by_kind(api_version, kind) else {
                // An owner of a kind this server does not serve cannot be checked: keep.
                return Ok(false);
            };
            let owner_scope = Scope {
                resource,
                namespace: if resource.namespaced {
                    target.namespace.as_deref()
                } else {
                    None
                },
            };
            match self.client.get(owner_scope, name).await {
                Ok(owner)
                    if owner.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid) =>
                {
                    // An owner being deleted with a collector finalizer (foreground or orphan)
                    // is waiting for exactly this work.
                    let collecting = owner.pointer("/metadata/deletionTimestamp").is_some()
                        && owner
                            .pointer("/metadata/finalizers")
                            .and_then(Value::as_array)
                            .is_some_and(|f| {
                                f.iter().any(|x| x == "foregroundDeletion" || x == "orphan")
                            });
                    if !collecting {
                        return Ok(false);
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    async fn apply(&self, action: &GcAction) -> Result<(), SyncError> {
        let target = action.target();
        let Some(resource) = resources::find_by_kind(&target.api_version, &target.kind) else {
            return Ok(());
        };
        let scope = Scope {
            resource,
            namespace: target.namespace.as_deref(),
        };
        match action {
            GcAction::Delete { propagation, .. } => {
                if !self.owners_confirmed_gone(target, &[]).await? {
                    return Ok(());
                }
                let options = DeleteOptions {
                    propagation_policy: Some(propagation.as_str().to_string()),
                    precondition_uid: Some(target.uid.clone()),
                    ..Default::default()
                };
                match self.client.delete(scope, &target.name, &options).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            GcAction::PatchOwnerReferences {
                owner_references, ..
            } => {
                let keep: Vec<String> = owner_references.iter().map(|r| r.uid.clone()).collect();
                if !self.owners_confirmed_gone(target, &keep).await? {
                    return Ok(());
                }
                self.patch(scope, action).await
            }
            GcAction::RemoveFinalizer { .. } => self.patch(scope, action).await,
        }
    }

    async fn patch(&self, scope: Scope<'_>, action: &GcAction) -> Result<(), SyncError> {
        let Some(patch) = action.merge_patch() else {
            return Ok(());
        };
        match self
            .client
            .patch(scope, &action.target().name, PatchType::Merge, patch, false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(owner: &str, phase: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {
                "name": "p", "namespace": "default", "uid": "pod-uid",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "rs", "uid": owner, "controller": true}],
            },
            "status": {"phase": phase},
        }))
    }

    fn with_metadata(object: &Arc<Value>, field: &str, value: Value) -> Arc<Value> {
        let mut changed = Value::clone(object);
        changed["metadata"][field] = value;
        Arc::new(changed)
    }

    #[test]
    fn planning_over_shared_handles_matches_planning_over_values() {
        // A pod whose ReplicaSet is gone is garbage either way.
        let objects = vec![Value::clone(&pod("gone-rs", "Running"))];
        let shared: Vec<Arc<Value>> = objects.iter().cloned().map(Arc::new).collect();
        let from_values = format!("{:?}", plan_for_owner("gone-rs", &objects).actions);
        let from_handles = format!("{:?}", plan_for_owner("gone-rs", &shared).actions);
        assert!(from_values.contains("Delete"), "{from_values}");
        assert_eq!(from_handles, from_values);
    }

    #[test]
    fn notifications_name_the_uids_whose_garbage_may_have_changed() {
        let running = pod("rs-a", "Running");
        let deleting = with_metadata(&running, "deletionTimestamp", json!("2024-01-01T00:00:00Z"));
        let cases: Vec<(&str, Notification, Vec<&str>)> = vec![
            (
                "added dependent",
                Notification::Added(running.clone()),
                vec!["rs-a"],
            ),
            (
                "deleted dependent",
                Notification::Deleted(running.clone()),
                vec!["pod-uid", "rs-a"],
            ),
            (
                "status-only update",
                Notification::Updated {
                    old: pod("rs-a", "Pending"),
                    new: running.clone(),
                },
                vec![],
            ),
            (
                "owner changed",
                Notification::Updated {
                    old: running.clone(),
                    new: pod("rs-b", "Running"),
                },
                vec!["rs-b", "rs-a"],
            ),
            (
                "deletion started",
                Notification::Updated {
                    old: running.clone(),
                    new: deleting.clone(),
                },
                vec!["pod-uid", "rs-a"],
            ),
            (
                "finalizers changed",
                Notification::Updated {
                    old: running.clone(),
                    new: with_metadata(&running, "finalizers", json!(["orphan"])),
                },
                vec!["rs-a"],
            ),
            (
                "update while being deleted",
                Notification::Updated {
                    old: deleting.clone(),
                    new: with_metadata(&deleting, "labels", json!({"a": "b"})),
                },
                vec!["pod-uid", "rs-a"],
            ),
        ];
        for (name, notification, want) in cases {
            assert_eq!(uids_to_recheck(&notification), want, "{name}");
        }
    }
}
