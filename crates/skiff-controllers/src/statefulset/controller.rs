//! The StatefulSet controller's shell: informer events in; revisions, claims, pods, events and
//! status out, as the planner decided.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Informer, WorkQueue};

use super::{claim_event, plan, pod_event, PodAction, StatefulSetObservation, StatefulSetPlan};
use crate::shell::{
    cached_for_key, controller_of, create_or_find_revision, delete_revisions, enqueue_own_key,
    finish_sync, namespace_of, now, record_events, renumber_revision, report_collision, typed,
    QueuedController, SyncError,
};

/// What a claim write answers when the server does not serve claims.
const CLAIMS_NOT_SERVED: &str = "the server could not find the requested resource";

fn stateful_sets_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::stateful_set::V1
}

fn pods_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::pod::V1
}

fn revisions_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::controller_revision::V1
}

/// The claims resource, when this server serves it.
pub fn claims_resource() -> Option<&'static ResourceInfo> {
    skiff_api::resources::find("", "v1", "persistentvolumeclaims")
}

/// Everything one StatefulSet sync reads and writes through.
#[derive(Clone)]
pub struct StatefulSetController {
    client: Arc<dyn Client>,
    stateful_sets: Informer,
    pods: Informer,
    revisions: Informer,
    claims: Option<Informer>,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
}

impl QueuedController for StatefulSetController {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl StatefulSetController {
    /// Wires the controller to shared informers (`claims` when claims are served); call
    /// [`StatefulSetController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        stateful_sets: Informer,
        pods: Informer,
        revisions: Informer,
        claims: Option<Informer>,
        recorder: EventRecorder,
    ) -> Self {
        let controller = StatefulSetController {
            client,
            stateful_sets,
            pods,
            revisions,
            claims,
            recorder,
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    /// Routes changes to StatefulSet keys: its own, and its pods' and revisions'.
    fn watch_changes(&self) {
        self.stateful_sets.add_handler(enqueue_own_key(&self.queue));
        for informer in [&self.pods, &self.revisions] {
            let queue = self.queue.clone();
            informer.add_handler(move |n| {
                let mut objects = vec![n.object()];
                if let skiff_runtime::Notification::Updated { old, .. } = n {
                    objects.push(old);
                }
                for object in objects {
                    if let Some(("StatefulSet", name, _)) = controller_of(object) {
                        queue.add(format!("{}/{}", namespace_of(object), name));
                    }
                }
            });
        }
    }

    /// One sync of one StatefulSet.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, _, cached)) = cached_for_key(&self.stateful_sets, key) else {
            return Ok(None);
        };
        let Some(set) = typed::<StatefulSet>(&cached) else {
            return Ok(None);
        };
        let pods: Vec<Pod> = self
            .pods
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let revisions: Vec<ControllerRevision> = self
            .revisions
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let claims: Vec<PersistentVolumeClaim> = self
            .claims
            .iter()
            .flat_map(|i| i.list_by_namespace(namespace))
            .filter_map(|c| typed(&c))
            .collect();
        let plan = plan(
            &StatefulSetObservation {
                stateful_set: &set,
                pods: &pods,
                revisions: &revisions,
                claims: &claims,
            },
            now(),
        );
        let revision_scope = Scope {
            resource: revisions_resource(),
            namespace: Some(namespace),
        };
        if let Some(revision) = &plan.create_revision {
            if let Some(requeue) = self.create_revision(&set, revision, revision_scope).await? {
                return Ok(Some(requeue));
            }
        }
        let client = self.client.as_ref();
        renumber_revision(client, revision_scope, plan.renumber_revision.as_ref()).await?;
        let failure = self.act(namespace, &set, &cached, &plan).await;
        delete_revisions(client, revision_scope, &plan.delete_revisions).await?;
        let with_status = plan.status.as_ref().map(|status| StatefulSet {
            status: Some(status.clone()),
            ..set.clone()
        });
        let scope = Scope {
            resource: stateful_sets_resource(),
            namespace: Some(namespace),
        };
        finish_sync(client, scope, with_status, failure, plan.requeue_after).await
    }

    /// Creates the template's revision. A revision of another template holding the name is a
    /// hash collision: `collisionCount` goes up and the next sync uses the next hash.
    async fn create_revision(
        &self,
        set: &StatefulSet,
        revision: &ControllerRevision,
        scope: Scope<'_>,
    ) -> Result<Option<Duration>, SyncError> {
        let client = self.client.as_ref();
        let Some(existing) = create_or_find_revision(client, scope, revision).await? else {
            return Ok(None);
        };
        let name = revision.metadata.name.as_deref().unwrap_or_default();
        let controller = existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        let ours = controller.is_some_and(|r| Some(&r.uid) == set.metadata.uid.as_ref());
        if existing.data == revision.data && (ours || controller.is_none()) {
            if controller.is_none() {
                // An orphan of an earlier set of this name (`ClaimControllerRevisions`).
                let mut refs = existing
                    .metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default();
                refs.push(super::controller_ref(set));
                let adopt = json!({"metadata": {"ownerReferences": refs,
                                                "uid": existing.metadata.uid}});
                client
                    .patch(scope, name, PatchType::Merge, adopt, false)
                    .await?;
            }
            // The cache has not seen it (or its adoption) yet.
            return Ok(Some(Duration::from_millis(100)));
        }
        let mut raised = set.clone();
        let status = raised.status.get_or_insert_with(Default::default);
        status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
        let set_scope = Scope {
            resource: stateful_sets_resource(),
            namespace: scope.namespace,
        };
        report_collision(client, set_scope, &raised, name).await
    }

    /// Creates the planned claims; the first failure's message, after recording its event.
    async fn create_claims(
        &self,
        namespace: &str,
        set: &str,
        pod: &str,
        claims: &[PersistentVolumeClaim],
        cached: &Value,
    ) -> Option<String> {
        for claim in claims {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            let result = match claims_resource() {
                None => Err(CLAIMS_NOT_SERVED.to_string()),
                Some(resource) => {
                    let scope = Scope {
                        resource,
                        namespace: Some(namespace),
                    };
                    match serde_json::to_value(claim) {
                        Err(e) => Err(e.to_string()),
                        Ok(body) => match self.client.create(scope, body).await {
                            Ok(_) => Ok(()),
                            Err(e) if e.is_conflict() => Ok(()),
                            Err(e) => Err(e.message()),
                        },
                    }
                }
            };
            match result {
                Ok(()) => record_events(
                    &self.recorder,
                    cached,
                    &[claim_event("create", &claim_name, pod, set, None)],
                ),
                Err(error) => {
                    record_events(
                        &self.recorder,
                        cached,
                        &[claim_event("create", &claim_name, pod, set, Some(&error))],
                    );
                    return Some(format!("failed to create PVC {claim_name}: {error}"));
                }
            }
        }
        None
    }

    /// Makes the planned claim and pod writes in order, recording their events; stops at the
    /// first failure and returns its message.
    async fn act(
        &self,
        namespace: &str,
        set: &StatefulSet,
        cached: &Value,
        plan: &StatefulSetPlan,
    ) -> Option<String> {
        let set_name = set.metadata.name.as_deref().unwrap_or("");
        if let Some(resource) = claims_resource() {
            let scope = Scope {
                resource,
                namespace: Some(namespace),
            };
            for update in &plan.claim_owner_updates {
                let patch = json!({"metadata": {"ownerReferences": update.owner_references}});
                if let Err(e) = self
                    .client
                    .patch(scope, &update.name, PatchType::Merge, patch, false)
                    .await
                {
                    if !e.is_not_found() {
                        return Some(e.message());
                    }
                }
            }
        }
        let pod_scope = Scope {
            resource: pods_resource(),
            namespace: Some(namespace),
        };
        for adoption in &plan.adopt {
            // The uid in the patch is a precondition: a namesake is never adopted instead.
            let patch = json!({"metadata": {"ownerReferences": adoption.owner_references,
                                            "uid": adoption.uid}});
            match self
                .client
                .patch(pod_scope, &adoption.name, PatchType::Merge, patch, false)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Some(e.message()),
            }
        }
        for action in &plan.actions {
            match action {
                PodAction::CreateClaims { pod, claims } => {
                    if let Some(error) = self
                        .create_claims(namespace, set_name, pod, claims, cached)
                        .await
                    {
                        return Some(error);
                    }
                }
                PodAction::Create { pod, claims } => {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    if let Some(error) = self
                        .create_claims(namespace, set_name, &pod_name, claims, cached)
                        .await
                    {
                        record_events(
                            &self.recorder,
                            cached,
                            &[pod_event("create", &pod_name, set_name, Some(&error))],
                        );
                        return Some(error);
                    }
                    let body = match serde_json::to_value(pod.as_ref()) {
                        Ok(body) => body,
                        Err(e) => return Some(e.to_string()),
                    };
                    match self.client.create(pod_scope, body).await {
                        Ok(_) => record_events(
                            &self.recorder,
                            cached,
                            &[pod_event("create", &pod_name, set_name, None)],
                        ),
                        // The cache has not seen it yet; the next sync finds it.
                        Err(e) if e.is_conflict() => {}
                        Err(e) => {
                            let error = e.message();
                            record_events(
                                &self.recorder,
                                cached,
                                &[pod_event("create", &pod_name, set_name, Some(&error))],
                            );
                            return Some(error);
                        }
                    }
                }
                PodAction::Relabel { name, uid, labels } => {
                    let patch = json!({"metadata": {"labels": labels, "uid": uid}});
                    match self
                        .client
                        .patch(pod_scope, name, PatchType::Merge, patch, false)
                        .await
                    {
                        Ok(_) => record_events(
                            &self.recorder,
                            cached,
                            &[pod_event("update", name, set_name, None)],
                        ),
                        Err(e) if e.is_not_found() || e.is_conflict() => {}
                        Err(e) => {
                            let error = e.message();
                            record_events(
                                &self.recorder,
                                cached,
                                &[pod_event("update", name, set_name, Some(&error))],
                            );
                            return Some(error);
                        }
                    }
                }
                PodAction::Delete { name, uid } => {
                    let options = DeleteOptions {
                        precondition_uid: uid.clone(),
                        ..Default::default()
                    };
                    match self.client.delete(pod_scope, name, &options).await {
                        Ok(_) => record_events(
                            &self.recorder,
                            cached,
                            &[pod_event("delete", name, set_name, None)],
                        ),
                        Err(e) if e.is_not_found() || e.is_conflict() => {}
                        Err(e) => {
                            let error = e.message();
                            record_events(
                                &self.recorder,
                                cached,
                                &[pod_event("delete", name, set_name, Some(&error))],
                            );
                            return Some(error);
                        }
                    }
                }
            }
        }
        None
    }
}
