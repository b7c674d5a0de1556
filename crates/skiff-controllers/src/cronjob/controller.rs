//! The CronJob controller's shell: CronJob and Job changes in, Jobs created and deleted and
//! CronJob status out, a sync again at each next scheduled time.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, Informer, Notification, WorkQueue};

use super::{plan, successful_create_event, successful_delete_event, JobRef};
use crate::shell::{
    controller_of, enqueue_own_key, namespace_of, now, record_events, run_key_syncs, KeySync,
    SyncError,
};

fn cron_jobs_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::cron_job::V1
}

fn jobs_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::job::V1
}

/// Everything one CronJob sync reads and writes through.
#[derive(Clone)]
pub struct CronJobController {
    client: Arc<dyn Client>,
    cron_jobs: Informer,
    jobs: Informer,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
}

impl KeySync for CronJobController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl CronJobController {
    /// Wires the controller to shared informers; call [`CronJobController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        cron_jobs: Informer,
        jobs: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let queue = WorkQueue::new();
        cron_jobs.add_handler(enqueue_own_key(&queue));
        let owner_queue = queue.clone();
        jobs.add_handler(move |n| {
            let changed: Vec<&Value> = match n {
                Notification::Updated { old, new } => vec![old.as_ref(), new.as_ref()],
                other => vec![other.object().as_ref()],
            };
            for job in changed {
                if let Some(("CronJob", name, _)) = controller_of(job) {
                    owner_queue.add(format!("{}/{}", namespace_of(job), name));
                }
            }
        });
        CronJobController {
            client,
            cron_jobs,
            jobs,
            recorder,
            queue,
        }
    }

    /// Processes CronJobs with `workers` concurrent syncs until the queue shuts down.
    pub async fn run(self, workers: usize) {
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn delete_job(
        &self,
        namespace: &str,
        cron_job: &Value,
        target: &JobRef,
    ) -> Result<(), SyncError> {
        let scope = Scope {
            resource: jobs_resource(),
            namespace: Some(namespace),
        };
        let options = DeleteOptions {
            propagation_policy: Some("Background".to_string()),
            precondition_uid: Some(target.uid.clone()),
            ..Default::default()
        };
        match self.client.delete(scope, &target.name, &options).await {
            Ok(_) => {
                record_events(
                    &self.recorder,
                    cron_job,
                    &[successful_delete_event(&target.name)],
                );
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One sync of one CronJob.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(cached) = self.cron_jobs.get(Some(namespace), name) else {
            return Ok(None);
        };
        let uid = cached
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let jobs: Vec<Value> = self
            .jobs
            .by_owner(uid)
            .iter()
            .filter(|j| matches!(controller_of(j), Some(("CronJob", _, owner)) if owner == uid))
            .map(|j| (**j).clone())
            .collect();
        let plan = plan(&cached, &jobs, now());
        for target in &plan.replace {
            self.delete_job(namespace, &cached, target).await?;
        }
        let mut status = plan.status.clone();
        if let Some(body) = &plan.create {
            let scope = Scope {
                resource: jobs_resource(),
                namespace: Some(namespace),
            };
            match self.client.create(scope, body.clone()).await {
                Ok(created) => {
                    let job_name = created
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    record_events(
                        &self.recorder,
                        &cached,
                        &[successful_create_event(job_name)],
                    );
                    if let Some(status) = status.as_mut() {
                        let reference = json!({
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": job_name,
                            "namespace": namespace,
                            "uid": created.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                            "resourceVersion": created.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
                        });
                        match status.get_mut("active").and_then(Value::as_array_mut) {
                            Some(active) => active.push(reference),
                            None => status["active"] = json!([reference]),
                        }
                    }
                }
                // Already made by an earlier sync whose status write was lost: the next sync
                // sees it as its child.
                Err(e) if e.code() == 409 => {}
                Err(e) => {
                    record_events(
                        &self.recorder,
                        &cached,
                        &[super::event(
                            super::EventType::Warning,
                            "FailedCreate",
                            format!("Error creating job: {e}"),
                        )],
                    );
                    return Err(e.into());
                }
            }
        }
        if let Some(status) = status {
            let mut updated = (*cached).clone();
            updated["status"] = status;
            let scope = Scope {
                resource: cron_jobs_resource(),
                namespace: Some(namespace),
            };
            match self.client.update_status(scope, updated).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        record_events(&self.recorder, &cached, &plan.events);
        for target in &plan.clean_up {
            self.delete_job(namespace, &cached, target).await?;
        }
        Ok(plan.requeue_after)
    }
}
