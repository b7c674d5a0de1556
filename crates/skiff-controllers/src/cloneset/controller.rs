//! The CloneSet controller's shell: informer events in; pods, revisions and status out.
//!
//! One sync mirrors OpenKruise's `doReconcile`: wait for its own creates, deletes and pod edits
//! to be observed, pick the current and update revisions, run one Scale or Update pass planned
//! by [`super::sync`], then write the status, drop vanished names from `podsToDelete` and prune
//! old revisions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rand::Rng;
use serde_json::Value;
use skiff_api::cloneset::{condition_type, CloneSet, CloneSetCondition, CloneSetStatus};
use skiff_api::patch::PatchType;
use skiff_api::resources::ResourceInfo;
use skiff_api::selector::LabelSelector;
use skiff_client::{Client, ClientError, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Expectations, Informer, WorkQueue};

use super::inplace::{self, GraceStep};
use super::revision::{
    choose_update_revision, revisions_to_prune, same_template, sort_revisions, UpdateRevisionChoice,
};
use super::status::{calculate_status, status_changed, StatusInputs};
use super::sync::{
    claim_name, live_revisions, new_claims, plan_pass, truncated_pods_to_delete, PodAction, Step,
    SyncInput,
};
use super::{
    failed_create_event, failed_delete_event, failed_in_place_event, failed_recreate_event,
    successful_create_event, successful_delete_event, successful_in_place_event,
    successful_recreate_event,
};
use crate::replicaset::slow_start_batches;
use crate::shell::{
    controller_of, enqueue_own_key_forgetting, namespace_of, now, observe_owned_pod, record_events,
    run_key_syncs, typed, KeySync, SyncError,
};

/// How long a sync waits for its own writes to show up in the cache before going ahead anyway.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How often conflicting pod writes are retried on a fresh copy.
const CONFLICT_RETRIES: usize = 4;

fn clonesets_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::clone_set::V1ALPHA1
}

fn pods_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::pod::V1
}

fn revisions_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::controller_revision::V1
}

fn resource_version(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
}

fn random_instance_id() -> String {
    let alphabet = crate::deployment::SAFE_ALPHABET;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Pod writes this controller made and waits to see in the cache (OpenKruise's
/// `ResourceVersionExpectations`), so a pass never plans from a pod older than its own edit.
#[derive(Default)]
struct WrittenVersions {
    by_pod: Mutex<HashMap<String, (u64, Instant)>>,
}

impl WrittenVersions {
    fn expect(&self, pod_key: &str, written: &Value) {
        if let Some(rv) = resource_version(written) {
            if let Ok(mut map) = self.by_pod.lock() {
                map.insert(pod_key.to_string(), (rv, Instant::now()));
            }
        }
    }

    /// Whether the cached copy is at least as new as the last write; expired or observed
    /// entries are forgotten.
    fn observed(&self, pod_key: &str, cached: &Value) -> bool {
        let Ok(mut map) = self.by_pod.lock() else {
            return true;
        };
        let Some((rv, at)) = map.get(pod_key).copied() else {
            return true;
        };
        let seen = resource_version(cached).is_some_and(|c| c >= rv);
        if seen || at.elapsed() > EXPECTATION_TIMEOUT {
            map.remove(pod_key);
            return true;
        }
        false
    }
}

/// Everything one CloneSet sync reads and writes through.
#[derive(Clone)]
pub struct CloneSetController {
    client: Arc<dyn Client>,
    clonesets: Informer,
    pods: Informer,
    revisions: Informer,
    recorder: EventRecorder,
    expectations: Arc<Expectations>,
    written: Arc<WrittenVersions>,
    queue: WorkQueue<String>,
}

fn owner_key(object: &Value) -> Option<String> {
    match controller_of(object) {
        Some(("CloneSet", name, _)) => Some(format!("{}/{}", namespace_of(object), name)),
        _ => None,
    }
}

impl KeySync for CloneSetController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl CloneSetController {
    /// Wires the controller to shared informers; call [`CloneSetController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        clonesets: Informer,
        pods: Informer,
        revisions: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let controller = CloneSetController {
            client,
            clonesets,
            pods,
            revisions,
            recorder,
            expectations: Arc::new(Expectations::new()),
            written: Arc::new(WrittenVersions::default()),
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    /// Routes changes to CloneSet keys: the CloneSet's own, and those of the pods and
    /// revisions it controls, observing the pod creations and deletions it expects.
    fn watch_changes(&self) {
        self.clonesets
            .add_handler(enqueue_own_key_forgetting(&self.queue, &self.expectations));
        let queue = self.queue.clone();
        let expectations = self.expectations.clone();
        self.pods.add_handler(move |n| {
            for key in observe_owned_pod(n, &expectations, owner_key) {
                queue.add(key);
            }
        });
        let queue = self.queue.clone();
        self.revisions.add_handler(move |n| {
            if let Some(key) = owner_key(n.object()) {
                queue.add(key);
            }
        });
    }

    /// Processes CloneSets with `workers` concurrent syncs until the queue shuts down.
    pub async fn run(self, workers: usize) {
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    fn pod_scope<'a>(&self, namespace: &'a str) -> Scope<'a> {
        Scope {
            resource: pods_resource(),
            namespace: Some(namespace),
        }
    }

    /// One sync of one CloneSet.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(cached) = self.clonesets.get(Some(namespace), name) else {
            self.expectations.delete(key);
            return Ok(None);
        };
        let Some(cs) = typed::<CloneSet>(&cached) else {
            return Ok(None);
        };
        if cs.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let Some(spec) = cs.spec.clone() else {
            return Ok(None);
        };
        let selector_value = serde_json::to_value(&spec.selector)?;
        let Ok(selector) = LabelSelector::from_label_selector(&selector_value) else {
            // A selector that does not parse never will; wait for the spec to change.
            return Ok(None);
        };
        if !self.expectations.satisfied(key) {
            return Ok(Some(Duration::from_secs(1)));
        }
        let uid = cs.metadata.uid.clone().unwrap_or_default();
        let owned: Vec<Arc<Value>> = self
            .pods
            .list_by_namespace(namespace)
            .into_iter()
            .filter(|p| controller_of(p).is_some_and(|(_, _, owner)| owner == uid))
            .collect();
        for pod in &owned {
            let pod_key = format!("{namespace}/{}", pod_name_of(pod));
            if !self.written.observed(&pod_key, pod) {
                return Ok(Some(Duration::from_secs(1)));
            }
        }
        let pods: Vec<Pod> = owned
            .iter()
            .filter_map(typed::<Pod>)
            .filter(crate::replicaset::is_pod_active)
            .collect();

        let (revisions, current, update, collision_count) =
            self.active_revisions(&cs, namespace).await?;
        let claim_ids = self.claim_ids(&cs, namespace).await?;
        let now_ts = now();
        let input = SyncInput {
            cloneset: &cs,
            pods: &pods,
            current_revision: &current,
            update_revision: &update,
            revisions: &revisions,
            claim_ids: &claim_ids,
            now: now_ts,
        };
        let mut plan = plan_pass(&input, &mut random_instance_id);
        record_events(&self.recorder, &cached, &plan.events);
        let mut failure = plan.error.take();
        if failure.is_none() {
            failure = self.apply(key, &cached, namespace, &plan.actions).await;
        }

        // Status, from the pods as this pass found them.
        let inputs = StatusInputs {
            current_revision: current.metadata.name.as_deref().unwrap_or(""),
            update_revision: update.metadata.name.as_deref().unwrap_or(""),
            collision_count,
            label_selector: selector.to_string(),
        };
        let (mut status, status_requeue) = calculate_status(&cs, &pods, &inputs, now_ts);
        if let Some(message) = &failure {
            let type_ = match plan.step {
                Step::Scale => condition_type::FAILED_SCALE,
                Step::Update => condition_type::FAILED_UPDATE,
            };
            set_failure_condition(&mut status, type_, message, now_ts);
        }
        if status_changed(cs.status.as_ref(), &status) {
            self.write_status(namespace, name, status.clone()).await?;
        }
        if let Some(kept) = truncated_pods_to_delete(&cs, &pods) {
            self.write_pods_to_delete(namespace, name, kept).await?;
        }
        self.prune_history(&cs, namespace, &revisions, &current, &update, &pods)
            .await?;

        if let Some(message) = failure {
            return Err(SyncError::Plan(message));
        }
        let mut requeue = [plan.requeue_after, status_requeue]
            .into_iter()
            .flatten()
            .min();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && status.available_replicas != status.ready_replicas {
            let wait = Duration::from_secs(min_ready.unsigned_abs().into());
            requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
        }
        Ok(requeue)
    }

    /// The CloneSet's revisions (oldest first), its current and update revisions, and the
    /// collision count used (`getActiveRevisions`).
    async fn active_revisions(
        &self,
        cs: &CloneSet,
        namespace: &str,
    ) -> Result<
        (
            Vec<ControllerRevision>,
            ControllerRevision,
            ControllerRevision,
            i32,
        ),
        SyncError,
    > {
        let uid = cs.metadata.uid.clone().unwrap_or_default();
        let mut revisions: Vec<ControllerRevision> = self
            .revisions
            .list_by_namespace(namespace)
            .iter()
            .filter(|r| {
                controller_of(r).is_some_and(|(kind, _, owner)| kind == "CloneSet" && owner == uid)
            })
            .filter_map(typed)
            .collect();
        sort_revisions(&mut revisions);
        let mut collision_count = cs
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let scope = Scope {
            resource: revisions_resource(),
            namespace: Some(namespace),
        };
        let update = match choose_update_revision(cs, &revisions, collision_count) {
            UpdateRevisionChoice::Latest(r) => r,
            UpdateRevisionChoice::Renumber(mut r, number) => {
                r.revision = number;
                let written = self.client.update(scope, serde_json::to_value(&r)?).await?;
                let r: ControllerRevision =
                    serde_json::from_value(written).map_err(SyncError::Encode)?;
                if let Some(slot) = revisions
                    .iter_mut()
                    .find(|x| x.metadata.name == r.metadata.name)
                {
                    *slot = r.clone();
                }
                sort_revisions(&mut revisions);
                r
            }
            UpdateRevisionChoice::Create(candidate) => {
                let mut candidate = candidate;
                loop {
                    match self
                        .client
                        .create(scope, serde_json::to_value(&candidate)?)
                        .await
                    {
                        Ok(written) => {
                            let r: ControllerRevision = serde_json::from_value(written)?;
                            revisions.push(r.clone());
                            break r;
                        }
                        Err(e) if e.is_conflict() => {
                            let name = candidate.metadata.name.clone().unwrap_or_default();
                            let existing: ControllerRevision =
                                serde_json::from_value(self.client.get(scope, &name).await?)?;
                            if same_template(&existing, &candidate) {
                                break existing;
                            }
                            // A foreign revision holds the name: try the next hash.
                            collision_count += 1;
                            let number = candidate.revision;
                            candidate = super::revision::new_revision(cs, number, collision_count);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        let current_name = cs.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = revisions
            .iter()
            .find(|r| r.metadata.name.is_some() && r.metadata.name == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((revisions, current, update, collision_count))
    }

    /// Applies a pass's writes in order, stopping at the first failure, whose message it
    /// returns.
    async fn apply(
        &self,
        key: &str,
        cached: &Value,
        namespace: &str,
        actions: &[PodAction],
    ) -> Option<String> {
        let creates: Vec<(&Pod, &str)> = actions
            .iter()
            .filter_map(|a| match a {
                PodAction::Create { pod, revision } => Some((&**pod, revision.as_str())),
                _ => None,
            })
            .collect();
        if !creates.is_empty() {
            if let Some(error) = self.create_claims(cached, namespace, &creates).await {
                return Some(error);
            }
            if let Some(error) = self.create_pods(key, cached, namespace, &creates).await {
                return Some(error);
            }
        }
        let deletes: Vec<(&str, &Option<String>)> = actions
            .iter()
            .filter_map(|a| match a {
                PodAction::Delete { name, uid } => Some((name.as_str(), uid)),
                _ => None,
            })
            .collect();
        if !deletes.is_empty() {
            if let Some(error) = self.delete_pods(key, cached, namespace, &deletes).await {
                return Some(error);
            }
            if let Some(error) = self.delete_claims(cached, namespace, &deletes).await {
                return Some(error);
            }
        }
        for action in actions {
            let result = match action {
                PodAction::Create { .. } | PodAction::Delete { .. } => continue,
                PodAction::Patch { name, patch } => {
                    self.patch_pod(namespace, name, patch.clone()).await
                }
                PodAction::MarkForRecreate { name, revision } => {
                    let patch = serde_json::json!({"metadata": {"labels": {
                        skiff_api::cloneset::SPECIFIED_DELETE_LABEL: "true"
                    }}});
                    let result = self.patch_pod(namespace, name, patch).await;
                    let event = match &result {
                        Ok(()) => successful_recreate_event(name, revision),
                        Err(e) => failed_recreate_event(name, revision, &e.to_string()),
                    };
                    record_events(&self.recorder, cached, &[event]);
                    result
                }
                PodAction::SetInPlaceReady { name, ready } => {
                    self.set_in_place_ready(namespace, name, *ready).await
                }
                PodAction::StartInPlace {
                    name,
                    change,
                    grace_seconds,
                } => {
                    let result = self
                        .start_in_place(namespace, name, change, *grace_seconds)
                        .await;
                    let event = match &result {
                        Ok(()) => successful_in_place_event(name, &change.revision),
                        Err(e) => failed_in_place_event(name, &change.revision, &e.to_string()),
                    };
                    record_events(&self.recorder, cached, &[event]);
                    result
                }
                PodAction::FinishGrace { name } => self.finish_grace(namespace, name).await,
            };
            match result {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    }

    /// The instance ids of the claims the CloneSet's templates made that still exist.
    async fn claim_ids(&self, cs: &CloneSet, namespace: &str) -> Result<Vec<String>, SyncError> {
        let has_templates = cs
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.as_ref())
            .is_some_and(|t| !t.is_empty());
        if !has_templates {
            return Ok(Vec::new());
        }
        let scope = Scope {
            resource: &skiff_api::kinds::persistent_volume_claim::V1,
            namespace: Some(namespace),
        };
        let uid = cs.metadata.uid.clone().unwrap_or_default();
        let list = self
            .client
            .list(scope, &skiff_client::ListOptions::default())
            .await?;
        let mut ids: Vec<String> = list
            .items
            .iter()
            .filter(|c| controller_of(c).is_some_and(|(_, _, owner)| owner == uid))
            .filter(|c| c.pointer("/metadata/deletionTimestamp").is_none())
            .filter_map(|c| {
                c.pointer("/metadata/labels")
                    .and_then(|l| l.get(skiff_api::cloneset::INSTANCE_ID_LABEL))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Creates the claims of the pods about to be created (those that exist are kept, so a
    /// pod reusing an instance id finds its data), before the pods, as OpenKruise does.
    async fn create_claims(
        &self,
        cached: &Value,
        namespace: &str,
        creates: &[(&Pod, &str)],
    ) -> Option<String> {
        let cs: CloneSet = serde_json::from_value(cached.clone()).ok()?;
        let scope = Scope {
            resource: &skiff_api::kinds::persistent_volume_claim::V1,
            namespace: Some(namespace),
        };
        for (pod, _) in creates {
            let Some(id) = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(skiff_api::cloneset::INSTANCE_ID_LABEL))
            else {
                continue;
            };
            for claim in new_claims(&cs, id) {
                let body = match serde_json::to_value(&claim) {
                    Ok(body) => body,
                    Err(e) => return Some(e.to_string()),
                };
                match self.client.create(scope, body).await {
                    Ok(_) => {}
                    Err(e) if e.is_conflict() => {}
                    Err(e) => return Some(e.message()),
                }
            }
        }
        None
    }

    /// Deletes the claims of the pods this pass deleted: a pod the controller removes (scale
    /// in, or a recreate update) takes its claims with it, as OpenKruise's does.
    async fn delete_claims(
        &self,
        cached: &Value,
        namespace: &str,
        deletes: &[(&str, &Option<String>)],
    ) -> Option<String> {
        let cs: CloneSet = serde_json::from_value(cached.clone()).ok()?;
        let cs_name = cs.metadata.name.clone().unwrap_or_default();
        let templates = cs
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.clone())
            .unwrap_or_default();
        let scope = Scope {
            resource: &skiff_api::kinds::persistent_volume_claim::V1,
            namespace: Some(namespace),
        };
        for (pod, _) in deletes {
            let Some(id) = pod.strip_prefix(&format!("{cs_name}-")) else {
                continue;
            };
            for template in &templates {
                let name = claim_name(
                    template.metadata.name.as_deref().unwrap_or(""),
                    &cs_name,
                    id,
                );
                match self
                    .client
                    .delete(scope, &name, &DeleteOptions::default())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Some(e.message()),
                }
            }
        }
        None
    }

    async fn create_pods(
        &self,
        key: &str,
        cached: &Value,
        namespace: &str,
        creates: &[(&Pod, &str)],
    ) -> Option<String> {
        let scope = self.pod_scope(namespace);
        self.expectations.expect_creations(key, creates.len());
        let mut remaining = creates;
        for batch in slow_start_batches(creates.len(), 1) {
            let (now_batch, rest) = remaining.split_at(batch.min(remaining.len()));
            remaining = rest;
            let results = join_all(now_batch.iter().map(|(pod, _)| async move {
                let body = serde_json::to_value(pod).map_err(|e| e.to_string())?;
                self.client
                    .create(scope, body.clone())
                    .await
                    .map_err(|e| format!("{e}|{body}"))
            }))
            .await;
            let mut failure = None;
            for ((pod, _), result) in now_batch.iter().zip(results) {
                let name = pod.metadata.name.as_deref().unwrap_or("");
                match result {
                    Ok(_) => {
                        record_events(&self.recorder, cached, &[successful_create_event(name)])
                    }
                    Err(e) => {
                        self.expectations.lower(key, 1, 0);
                        let (error, body) = e.split_once('|').unwrap_or((e.as_str(), ""));
                        record_events(&self.recorder, cached, &[failed_create_event(error, body)]);
                        failure = Some(error.to_string());
                    }
                }
            }
            if failure.is_some() {
                self.expectations.lower(key, remaining.len() as i64, 0);
                return failure;
            }
        }
        None
    }

    async fn delete_pods(
        &self,
        key: &str,
        cached: &Value,
        namespace: &str,
        deletes: &[(&str, &Option<String>)],
    ) -> Option<String> {
        let scope = self.pod_scope(namespace);
        self.expectations.expect_deletions(key, deletes.len());
        let results = join_all(deletes.iter().map(|(name, uid)| async move {
            let options = DeleteOptions {
                precondition_uid: (*uid).clone(),
                ..Default::default()
            };
            (*name, self.client.delete(scope, name, &options).await)
        }))
        .await;
        let mut failure = None;
        for (name, result) in results {
            match result {
                Ok(_) => record_events(&self.recorder, cached, &[successful_delete_event(name)]),
                Err(e) if e.is_not_found() => self.expectations.deletion_observed(key),
                Err(e) => {
                    self.expectations.deletion_observed(key);
                    record_events(
                        &self.recorder,
                        cached,
                        &[failed_delete_event(name, &e.to_string())],
                    );
                    failure = Some(e.to_string());
                }
            }
        }
        failure
    }

    async fn patch_pod(
        &self,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<(), ClientError> {
        let written = self
            .client
            .patch(
                self.pod_scope(namespace),
                name,
                PatchType::Merge,
                patch,
                false,
            )
            .await?;
        self.written
            .expect(&format!("{namespace}/{name}"), &written);
        Ok(())
    }

    async fn fresh_pod(&self, namespace: &str, name: &str) -> Result<Pod, ClientError> {
        let value = self.client.get(self.pod_scope(namespace), name).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Re-reads the pod, edits it with `edit` and writes it back (status or whole object),
    /// retrying on conflicts. `edit` returning `None` means nothing to write.
    async fn edit_pod(
        &self,
        namespace: &str,
        name: &str,
        status: bool,
        edit: impl Fn(&Pod) -> Option<Pod>,
    ) -> Result<(), ClientError> {
        let scope = self.pod_scope(namespace);
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let pod = self.fresh_pod(namespace, name).await?;
            let Some(edited) = edit(&pod) else {
                return Ok(());
            };
            let body =
                serde_json::to_value(&edited).map_err(|e| ClientError::Decode(e.to_string()))?;
            let result = if status {
                self.client.update_status(scope, body).await
            } else {
                self.client.update(scope, body).await
            };
            match result {
                Ok(written) => {
                    self.written
                        .expect(&format!("{namespace}/{name}"), &written);
                    return Ok(());
                }
                Err(e) if e.is_conflict() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Decode("conflict retries exhausted".into())))
    }

    async fn set_in_place_ready(
        &self,
        namespace: &str,
        name: &str,
        ready: bool,
    ) -> Result<(), ClientError> {
        let at = now();
        self.edit_pod(namespace, name, true, |pod| {
            // Only a finished update turns the condition True; a pod that started another
            // update since the plan keeps it False.
            if ready && inplace::update_completed(pod).is_err() {
                return None;
            }
            inplace::with_in_place_condition(pod, ready, at)
        })
        .await
    }

    async fn start_in_place(
        &self,
        namespace: &str,
        name: &str,
        change: &super::revision::InPlaceChange,
        grace_seconds: i32,
    ) -> Result<(), ClientError> {
        let at = now();
        self.edit_pod(namespace, name, true, |pod| {
            inplace::with_in_place_condition(pod, false, at)
        })
        .await?;
        self.edit_pod(namespace, name, false, |pod| {
            Some(inplace::start_update(pod, change, grace_seconds, at))
        })
        .await
    }

    async fn finish_grace(&self, namespace: &str, name: &str) -> Result<(), ClientError> {
        let at = now();
        self.edit_pod(namespace, name, false, |pod| {
            match inplace::finish_grace(pod, at) {
                GraceStep::Write(pod) => Some(*pod),
                _ => None,
            }
        })
        .await
    }

    async fn write_status(
        &self,
        namespace: &str,
        name: &str,
        status: CloneSetStatus,
    ) -> Result<(), SyncError> {
        let scope = Scope {
            resource: clonesets_resource(),
            namespace: Some(namespace),
        };
        for _ in 0..CONFLICT_RETRIES {
            let mut fresh: CloneSet = match self.client.get(scope, name).await {
                Ok(v) => serde_json::from_value(v)?,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            fresh.status = Some(status.clone());
            match self
                .client
                .update_status(scope, serde_json::to_value(&fresh)?)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(SyncError::Plan("status update kept conflicting".into()))
    }

    /// Removes names of vanished pods from `scaleStrategy.podsToDelete` (a spec write, as
    /// OpenKruise does).
    async fn write_pods_to_delete(
        &self,
        namespace: &str,
        name: &str,
        kept: Vec<String>,
    ) -> Result<(), SyncError> {
        let scope = Scope {
            resource: clonesets_resource(),
            namespace: Some(namespace),
        };
        let patch = serde_json::json!({"spec": {"scaleStrategy": {"podsToDelete": kept}}});
        match self
            .client
            .patch(scope, name, PatchType::Merge, patch, false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn prune_history(
        &self,
        cs: &CloneSet,
        namespace: &str,
        revisions: &[ControllerRevision],
        current: &ControllerRevision,
        update: &ControllerRevision,
        pods: &[Pod],
    ) -> Result<(), SyncError> {
        let limit = cs
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let live = live_revisions(pods);
        let scope = Scope {
            resource: revisions_resource(),
            namespace: Some(namespace),
        };
        for revision in revisions_to_prune(
            revisions,
            &live,
            current.metadata.name.as_deref().unwrap_or(""),
            update.metadata.name.as_deref().unwrap_or(""),
            limit,
        ) {
            let name = revision.metadata.name.as_deref().unwrap_or("");
            match self
                .client
                .delete(scope, name, &DeleteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn pod_name_of(pod: &Value) -> &str {
    pod.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn set_failure_condition(status: &mut CloneSetStatus, type_: &str, message: &str, at: Timestamp) {
    let condition = CloneSetCondition {
        type_: type_.to_string(),
        status: "True".into(),
        last_update_time: None,
        last_transition_time: Some(Time(at)),
        reason: None,
        message: Some(message.to_string()),
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}
