//! The Job controller's and the TTL-after-finished controller's shells: informer events in,
//! pods created, deleted and released, Job status and deletions out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Expectations, Informer, Notification, WorkQueue};

use super::ttl::{decide, TtlDecision};
use super::{
    failed_create_event, plan, successful_create_event, successful_delete_event, JobPlan, PodRef,
    TRACKING_FINALIZER,
};
use crate::shell::{
    cached_for_key, controller_of, enqueue_own_key, enqueue_own_key_forgetting, namespace_of, now,
    observe_owned_pod, record_events, QueuedController, SyncError,
};

fn jobs_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::job::V1
}

fn pods_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::pod::V1
}

/// Queue keys naming a pod whose Job is gone but which still carries the tracking finalizer.
const ORPHAN_POD_PREFIX: &str = "pod:";

/// Everything one Job sync reads and writes through.
#[derive(Clone)]
pub struct JobController {
    client: Arc<dyn Client>,
    jobs: Informer,
    pods: Informer,
    recorder: EventRecorder,
    expectations: Arc<Expectations>,
    removed_finalizers: Arc<RemovedFinalizers>,
    queue: WorkQueue<String>,
}

/// The pods each Job removed the tracking finalizer from and whose change the pod cache has
/// not shown yet (upstream's finalizer expectations): until it does, such a pod is taken as
/// already released, so a stale cache never counts it twice.
#[derive(Default)]
struct RemovedFinalizers(Mutex<HashMap<String, HashSet<String>>>);

impl RemovedFinalizers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn expect(&self, job_key: &str, uid: &str) {
        self.lock()
            .entry(job_key.to_string())
            .or_default()
            .insert(uid.to_string());
    }

    fn observed(&self, job_key: &str, uid: &str) {
        let mut map = self.lock();
        if let Some(uids) = map.get_mut(job_key) {
            uids.remove(uid);
            if uids.is_empty() {
                map.remove(job_key);
            }
        }
    }

    fn pending(&self, job_key: &str) -> HashSet<String> {
        self.lock().get(job_key).cloned().unwrap_or_default()
    }

    fn forget(&self, job_key: &str) {
        self.lock().remove(job_key);
    }
}

impl QueuedController for JobController {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        match key.strip_prefix(ORPHAN_POD_PREFIX) {
            Some(pod_key) => self.release_orphan(pod_key).await,
            None => self.sync(key).await,
        }
    }
}

fn has_tracking_finalizer(pod: &Value) -> bool {
    pod.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(TRACKING_FINALIZER)))
}

/// The `namespace/name` of the Job controlling `pod`, with that Job's uid.
fn owning_job(pod: &Value) -> Option<(String, String)> {
    match controller_of(pod) {
        Some(("Job", name, uid)) => {
            Some((format!("{}/{}", namespace_of(pod), name), uid.to_string()))
        }
        _ => None,
    }
}

impl JobController {
    /// Wires the controller to shared informers; call [`JobController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        jobs: Informer,
        pods: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let controller = JobController {
            client,
            jobs,
            pods,
            recorder,
            expectations: Arc::new(Expectations::new()),
            removed_finalizers: Arc::new(RemovedFinalizers::default()),
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    /// Routes changes to Job keys: the Job's own, and its pods' (by controller reference,
    /// observing the creations and deletions it expects). A pod still holding the tracking
    /// finalizer whose Job is gone is queued for release.
    fn watch_changes(&self) {
        self.jobs
            .add_handler(enqueue_own_key_forgetting(&self.queue, &self.expectations));
        let queue = self.queue.clone();
        let expectations = self.expectations.clone();
        let jobs = self.jobs.clone();
        let removed = self.removed_finalizers.clone();
        self.pods.add_handler(move |n| {
            let owner_key = |p: &Value| owning_job(p).map(|(key, _)| key);
            for key in observe_owned_pod(n, &expectations, owner_key) {
                queue.add(key);
            }
            let pod = n.object();
            let gone = matches!(n, Notification::Deleted(_));
            if gone || !has_tracking_finalizer(pod) {
                if let Some((key, _)) = owning_job(pod) {
                    let uid = pod
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    removed.observed(&key, uid);
                }
            }
            if has_tracking_finalizer(pod) {
                let orphan = match owning_job(pod) {
                    None => true,
                    Some((key, uid)) => jobs.get_by_key(&key).is_none_or(|job| {
                        job.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str())
                    }),
                };
                if let (true, Some(key)) = (orphan, n.key()) {
                    queue.add(format!("{ORPHAN_POD_PREFIX}{key}"));
                }
            }
        });
    }

    /// Removes the tracking finalizer from a pod whose Job no longer exists.
    async fn release_orphan(&self, pod_key: &str) -> Result<Option<Duration>, SyncError> {
        let Some(pod) = self.pods.get_by_key(pod_key) else {
            return Ok(None);
        };
        if !has_tracking_finalizer(&pod) {
            return Ok(None);
        }
        if let Some((job_key, uid)) = owning_job(&pod) {
            let alive = self.jobs.get_by_key(&job_key).is_some_and(|job| {
                job.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid.as_str())
            });
            if alive {
                return Ok(None);
            }
        }
        let namespace = namespace_of(&pod).to_string();
        let target = PodRef {
            name: pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            uid: pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        };
        self.remove_finalizer(&namespace, &target).await?;
        Ok(None)
    }

    /// Drops the tracking finalizer from one pod, keeping every other finalizer. As upstream,
    /// the pod is not read again (the controller's role may not `get` pods): the cache says
    /// whether there is anything to drop, and a strategic merge patch deletes the one entry,
    /// carrying the pod's uid so that a namesake replacing it is refused rather than changed.
    async fn remove_finalizer(&self, namespace: &str, target: &PodRef) -> Result<(), SyncError> {
        let scope = Scope {
            resource: pods_resource(),
            namespace: Some(namespace),
        };
        let Some(cached) = self.pods.get(Some(namespace), &target.name) else {
            return Ok(());
        };
        if cached.pointer("/metadata/uid").and_then(Value::as_str) != Some(target.uid.as_str())
            || !has_tracking_finalizer(&cached)
        {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
            "uid": target.uid,
        }});
        match self
            .client
            .patch(scope, &target.name, PatchType::StrategicMerge, patch, false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One sync of one Job.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, _, cached)) = cached_for_key(&self.jobs, key) else {
            self.expectations.delete(key);
            self.removed_finalizers.forget(key);
            return Ok(None);
        };
        if cached.pointer("/metadata/deletionTimestamp").is_some() {
            // A Job being deleted lets go of its pods; the garbage collector deletes them.
            let pods = self.owned_pods(&cached);
            for pod in pods.iter().filter(|p| has_tracking_finalizer(p)) {
                self.remove_finalizer(namespace, &super::pod_ref(pod))
                    .await?;
            }
            return Ok(None);
        }
        let may_manage = self.expectations.satisfied(key);
        let mut pods = self.owned_pods(&cached);
        // Pods whose finalizer this controller already removed count as released even
        // while the cache still shows the finalizer.
        let released = self.removed_finalizers.pending(key);
        for pod in &mut pods {
            let uid = pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if released.contains(uid) {
                if let Some(finalizers) = pod
                    .pointer_mut("/metadata/finalizers")
                    .and_then(Value::as_array_mut)
                {
                    finalizers.retain(|f| f.as_str() != Some(TRACKING_FINALIZER));
                }
            }
        }
        let plan = plan(&cached, &pods, now(), may_manage);
        self.apply(key, namespace, &cached, plan).await
    }

    fn owned_pods(&self, job: &Value) -> Vec<Value> {
        let uid = job
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.pods
            .by_owner(uid)
            .iter()
            .filter(|p| matches!(controller_of(p), Some(("Job", _, owner)) if owner == uid))
            .map(|p| (**p).clone())
            .collect()
    }

    async fn write_status(
        &self,
        namespace: &str,
        job: &Value,
        status: Value,
    ) -> Result<Option<Value>, SyncError> {
        let mut updated = job.clone();
        updated["status"] = status;
        let scope = Scope {
            resource: jobs_resource(),
            namespace: Some(namespace),
        };
        match self.client.update_status(scope, updated).await {
            Ok(written) => Ok(Some(written)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn apply(
        &self,
        key: &str,
        namespace: &str,
        cached: &Value,
        plan: JobPlan,
    ) -> Result<Option<Duration>, SyncError> {
        let mut job = cached.clone();
        if let Some(status) = plan.uncounted_status.clone() {
            match self.write_status(namespace, &job, status).await? {
                Some(written) => job = written,
                None => return Ok(None),
            }
        }
        for target in &plan.remove_finalizers {
            self.remove_finalizer(namespace, target).await?;
            self.removed_finalizers.expect(key, &target.uid);
        }
        let pod_scope = Scope {
            resource: pods_resource(),
            namespace: Some(namespace),
        };
        let mut failure = None;
        let mut not_created = 0usize;
        if !plan.create.is_empty() {
            self.expectations.expect_creations(key, plan.create.len());
            let mut bodies = plan.create.iter();
            let batches = super::slow_start_batches(plan.create.len());
            let mut remaining = plan.create.len();
            for batch in batches {
                let results = join_all(
                    bodies
                        .by_ref()
                        .take(batch)
                        .map(|body| self.client.create(pod_scope, body.clone())),
                )
                .await;
                remaining = remaining.saturating_sub(batch);
                let mut failed = false;
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
                            not_created += 1;
                            record_events(
                                &self.recorder,
                                cached,
                                &[failed_create_event(&e.message())],
                            );
                            failure = Some(SyncError::Plan(e.to_string()));
                            failed = true;
                        }
                    }
                }
                if failed {
                    // Nor will the batches skipped after a failure.
                    self.expectations
                        .lower(key, i64::try_from(remaining).unwrap_or(i64::MAX), 0);
                    not_created += remaining;
                    break;
                }
            }
        }
        if !plan.delete.is_empty() {
            self.expectations.expect_deletions(key, plan.delete.len());
            let results = join_all(plan.delete.iter().map(|d| {
                let options = DeleteOptions {
                    precondition_uid: Some(d.uid.clone()),
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
                        failure = Some(SyncError::Plan(e.to_string()));
                    }
                }
            }
        }
        if let Some(mut status) = plan.status {
            if not_created > 0 {
                let active = status.get("active").and_then(Value::as_u64).unwrap_or(0);
                let active = active.saturating_sub(u64::try_from(not_created).unwrap_or(u64::MAX));
                status["active"] = json!(active);
            }
            if self.write_status(namespace, &job, status).await?.is_none() {
                return Ok(None);
            }
        }
        record_events(&self.recorder, cached, &plan.events);
        match failure {
            Some(error) => Err(error),
            None => Ok(plan.requeue_after),
        }
    }
}

/// Deletes finished Jobs whose `ttlSecondsAfterFinished` has passed.
#[derive(Clone)]
pub struct TtlAfterFinishedController {
    client: Arc<dyn Client>,
    jobs: Informer,
    queue: WorkQueue<String>,
}

impl QueuedController for TtlAfterFinishedController {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl TtlAfterFinishedController {
    /// Wires the controller to the shared Job informer; call
    /// [`TtlAfterFinishedController::run`] to start.
    pub fn new(client: Arc<dyn Client>, jobs: Informer) -> Self {
        let queue = WorkQueue::new();
        jobs.add_handler(enqueue_own_key(&queue));
        TtlAfterFinishedController {
            client,
            jobs,
            queue,
        }
    }

    /// One look at one Job.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, name, job)) = cached_for_key(&self.jobs, key) else {
            return Ok(None);
        };
        match decide(&job, now()) {
            TtlDecision::Keep => Ok(None),
            TtlDecision::WaitFor(delay) => Ok(Some(delay)),
            TtlDecision::Delete => {
                let scope = Scope {
                    resource: jobs_resource(),
                    namespace: Some(namespace),
                };
                let options = DeleteOptions {
                    propagation_policy: Some("Background".to_string()),
                    precondition_uid: job
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    ..Default::default()
                };
                match self.client.delete(scope, name, &options).await {
                    Ok(_) => Ok(None),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}
