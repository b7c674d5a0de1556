//! The EndpointSlice controller's shell: Service, pod and node changes in, EndpointSlices out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use skiff_api::resources::{self, ResourceInfo};
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, EventType, Informer, Notification, ObjectRef, WorkQueue};

use super::{
    plan, SliceInputs, CONTROLLER_NAME, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL, ZONE_LABEL,
};
use crate::endpoints::controller::watch_services_and_pods;
use crate::endpoints::pods::selected_pods;
use crate::endpoints::trigger::TriggerTimeTracker;
use crate::endpoints::written::WrittenVersions;
use crate::shell::{key_of, namespace_of, run_key_syncs, typed, KeySync, SyncError};

fn slices_resource() -> &'static ResourceInfo {
    resources::find("discovery.k8s.io", "v1", "endpointslices")
        .expect("endpointslices are registered")
}

/// How a sync that left out pods on unknown nodes ends: as an error, as upstream's does, so
/// the Service is retried with the queue's growing back-off (and dropped after the retry
/// limit) rather than at a fixed rate for as long as the node is missing; a node that appears
/// requeues every Service anyway.
fn skipped_pods_outcome(service: &str, skipped: &[String]) -> Result<Option<Duration>, SyncError> {
    if skipped.is_empty() {
        return Ok(None);
    }
    Err(SyncError::Plan(format!(
        "skipping Pods {} for Service {service}: their Node is not found",
        skipped.join(", ")
    )))
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// The Service key a slice managed by this controller belongs to.
fn managed_service_key(slice: &Value) -> Option<String> {
    if label(slice, MANAGED_BY_LABEL) != Some(CONTROLLER_NAME) {
        return None;
    }
    let service = label(slice, SERVICE_NAME_LABEL)?;
    Some(format!("{}/{}", namespace_of(slice), service))
}

fn zone_of(node: &Value) -> Option<String> {
    label(node, ZONE_LABEL).map(str::to_string)
}

/// Everything one EndpointSlice sync reads and writes through.
#[derive(Clone)]
pub struct EndpointSliceController {
    client: Arc<dyn Client>,
    services: Informer,
    pods: Informer,
    slices: Informer,
    nodes: Informer,
    recorder: EventRecorder,
    triggers: Arc<TriggerTimeTracker>,
    written: Arc<WrittenVersions>,
    queue: WorkQueue<String>,
}

impl KeySync for EndpointSliceController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl EndpointSliceController {
    /// Wires the controller to shared informers; call [`EndpointSliceController::run`] to
    /// start.
    pub fn new(
        client: Arc<dyn Client>,
        services: Informer,
        pods: Informer,
        slices: Informer,
        nodes: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let controller = EndpointSliceController {
            client,
            services,
            pods,
            slices,
            nodes,
            recorder,
            triggers: Arc::new(TriggerTimeTracker::new()),
            written: Arc::new(WrittenVersions::new()),
            queue: WorkQueue::new(),
        };
        controller.watch_changes();
        controller
    }

    fn watch_changes(&self) {
        watch_services_and_pods(&self.services, &self.pods, &self.queue);
        // Someone else changing or deleting a managed slice gets it put right; the
        // controller's own writes come back here too and sync to no change.
        let queue = self.queue.clone();
        self.slices.add_handler(move |n| {
            let keys = match n {
                Notification::Updated { old, new } => {
                    [managed_service_key(old), managed_service_key(new)]
                }
                Notification::Added(s) | Notification::Deleted(s) => [managed_service_key(s), None],
            };
            for key in keys.into_iter().flatten() {
                queue.add(key);
            }
        });
        // A node appearing or changing zone changes the endpoints of every pod on it.
        let queue = self.queue.clone();
        let services = self.services.clone();
        self.nodes.add_handler(move |n| {
            let relevant = match n {
                Notification::Updated { old, new } => zone_of(old) != zone_of(new),
                Notification::Added(_) | Notification::Deleted(_) => true,
            };
            if relevant {
                for svc in services.list() {
                    if let Some(key) = key_of(&svc) {
                        queue.add(key);
                    }
                }
            }
        });
    }

    /// Processes Services with `workers` concurrent syncs until the queue shuts down. Every
    /// managed slice is checked once first, so slices of a Service deleted while nothing was
    /// running go away.
    pub async fn run(self, workers: usize) {
        for slice in self.slices.list() {
            if let Some(key) = managed_service_key(&slice) {
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

    /// The cached slices this controller manages for the Service `namespace/name`.
    fn managed_slices(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.slices
            .list_by_namespace(namespace)
            .into_iter()
            .filter(|s| {
                label(s, SERVICE_NAME_LABEL) == Some(name)
                    && label(s, MANAGED_BY_LABEL) == Some(CONTROLLER_NAME)
            })
            .collect()
    }

    /// One sync of the Service `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let scope = Scope {
            resource: slices_resource(),
            namespace: Some(namespace),
        };
        let cached_slices = self.managed_slices(namespace, name);
        let Some(cached) = self.services.get(Some(namespace), name) else {
            // The Service is gone; its slices go with it (owner references would let the
            // garbage collector do it too, later).
            self.triggers.forget(namespace, name);
            self.written.forget(key);
            for slice in &cached_slices {
                if slice.pointer("/metadata/deletionTimestamp").is_some() {
                    continue;
                }
                if let Some(slice_name) = slice.pointer("/metadata/name").and_then(Value::as_str) {
                    self.delete(scope, slice_name).await?;
                }
            }
            return Ok(None);
        };
        let Some(service) = typed::<Service>(&cached) else {
            return Ok(None);
        };
        let versions: BTreeMap<String, String> = cached_slices
            .iter()
            .filter_map(|s| {
                Some((
                    s.pointer("/metadata/name")?.as_str()?.to_string(),
                    s.pointer("/metadata/resourceVersion")?
                        .as_str()?
                        .to_string(),
                ))
            })
            .collect();
        if self.written.is_stale(key, |n| versions.get(n).cloned()) {
            // The cache has not caught up with the last writes; their events requeue the key.
            return Ok(Some(Duration::from_millis(50)));
        }

        let existing: Vec<EndpointSlice> = cached_slices.iter().filter_map(typed).collect();
        let pods: Vec<Pod> = self
            .pods
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let selected = selected_pods(&service, &pods);
        let nodes: BTreeMap<String, Option<String>> = selected
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .filter_map(|n| {
                let node = self.nodes.get(None, &n)?;
                Some((n, zone_of(&node)))
            })
            .collect();
        let trigger_time = self.triggers.compute(&service, &selected);
        let planned = plan(&SliceInputs {
            service: &service,
            pods: &pods,
            existing: &existing,
            nodes: &nodes,
            trigger_time,
            max_endpoints_per_slice: MAX_ENDPOINTS_PER_SLICE,
        });

        let result = self.apply(key, scope, &planned).await;
        if let Err(e) = &result {
            if let Ok(reference) = ObjectRef::from_value(&cached) {
                self.recorder.record(
                    &reference,
                    EventType::Warning,
                    "FailedToUpdateEndpointSlices",
                    format!("Error updating Endpoint Slices for Service {key}: {e}"),
                );
            }
        }
        result?;
        skipped_pods_outcome(key, &planned.skipped_pods)
    }

    /// Writes one plan: creates, then updates, then deletes, as upstream orders them, so a
    /// reader never sees an endpoint vanish before its replacement slice exists.
    async fn apply(
        &self,
        key: &str,
        scope: Scope<'_>,
        planned: &super::SlicePlan,
    ) -> Result<(), SyncError> {
        for slice in &planned.create {
            let stored = self
                .client
                .create(scope, serde_json::to_value(slice)?)
                .await?;
            self.remember(key, &stored);
        }
        for slice in &planned.update {
            match self
                .client
                .update(scope, serde_json::to_value(slice)?)
                .await
            {
                Ok(stored) => self.remember(key, &stored),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        for slice in &planned.delete {
            if let Some(name) = slice.metadata.name.as_deref() {
                self.delete(scope, name).await?;
                self.written.deleted(key, name);
            }
        }
        Ok(())
    }

    fn remember(&self, key: &str, stored: &Value) {
        if let Some(name) = stored.pointer("/metadata/name").and_then(Value::as_str) {
            self.written.written(
                key,
                name,
                stored
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str),
            );
        }
    }

    async fn delete(&self, scope: Scope<'_>, name: &str) -> Result<(), SyncError> {
        match self
            .client
            .delete(scope, name, &DeleteOptions::default())
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

    #[test]
    fn pods_on_missing_nodes_fail_the_sync_so_retries_back_off() {
        assert!(matches!(skipped_pods_outcome("ns/web", &[]), Ok(None)));
        let outcome = skipped_pods_outcome("ns/web", &["a".to_string(), "b".to_string()]);
        match outcome {
            Err(SyncError::Plan(message)) => assert_eq!(
                message,
                "skipping Pods a, b for Service ns/web: their Node is not found"
            ),
            other => panic!("expected an error for the rate-limited requeue, got {other:?}"),
        }
    }
}
