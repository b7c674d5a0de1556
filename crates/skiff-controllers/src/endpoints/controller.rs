//! The Endpoints controller's shell: Service and pod changes in, Endpoints objects out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde_json::{Map, Value};
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, EventType, Informer, Notification, ObjectRef, WorkQueue};

use super::trigger::TriggerTimeTracker;
use super::written::WrittenVersions;
use super::{plan, EndpointsWrite};
use crate::shell::{
    enqueue_own_key, key_of, namespace_of, run_key_syncs, typed, KeySync, SyncError,
};

fn endpoints_resource() -> &'static ResourceInfo {
    &skiff_api::kinds::endpoints::V1
}

/// The pod fields that decide its place in a Service's endpoints; an update leaving all of
/// them alone (a status heartbeat, an annotation) wakes no Service.
const RELEVANT_POD_FIELDS: &[&str] = &[
    "/metadata/labels",
    "/metadata/deletionTimestamp",
    "/spec/nodeName",
    "/spec/hostname",
    "/spec/subdomain",
    "/status/phase",
    "/status/podIP",
    "/status/podIPs",
];

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

/// Whether a pod update can change any Service's endpoints.
pub fn pod_change_matters(old: &Value, new: &Value) -> bool {
    RELEVANT_POD_FIELDS
        .iter()
        .any(|p| old.pointer(p) != new.pointer(p))
        || ready_condition(old) != ready_condition(new)
}

/// The Service selector of a cached Service, if it has a non-empty one.
fn selector_of(service: &Value) -> Option<&Map<String, Value>> {
    service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
}

/// Keys of the Services of the pod's namespace whose selector matches the pod's labels
/// (`GetPodServiceMemberships`).
pub fn services_selecting(services: &Informer, pod: &Value) -> BTreeSet<String> {
    let empty = Map::new();
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    services
        .list_by_namespace(namespace_of(pod))
        .iter()
        .filter(|svc| {
            selector_of(svc)
                .is_some_and(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
        .filter_map(|svc| key_of(svc))
        .collect()
}

/// Routes pod notifications to the keys of the Services selecting the pod before or after the
/// change, at once (no batching delay: a proxy must see a pod leave within milliseconds).
pub fn enqueue_for_pod(services: &Informer, queue: &WorkQueue<String>, n: &Notification) {
    let keys = match n {
        Notification::Added(pod) | Notification::Deleted(pod) => services_selecting(services, pod),
        Notification::Updated { old, new } => {
            if !pod_change_matters(old, new) {
                return;
            }
            let mut keys = services_selecting(services, new);
            if old.pointer("/metadata/labels") != new.pointer("/metadata/labels") {
                keys.extend(services_selecting(services, old));
            }
            keys
        }
    };
    for key in keys {
        queue.add(key);
    }
}

/// Queues a Service on its own changes and on those of the pods it selects: what wakes both
/// the Endpoints and the EndpointSlice controller.
pub fn watch_services_and_pods(services: &Informer, pods: &Informer, queue: &WorkQueue<String>) {
    services.add_handler(enqueue_own_key(queue));
    let queue = queue.clone();
    let services = services.clone();
    pods.add_handler(move |n| enqueue_for_pod(&services, &queue, n));
}

/// Everything one Endpoints sync reads and writes through.
#[derive(Clone)]
pub struct EndpointsController {
    client: Arc<dyn Client>,
    services: Informer,
    pods: Informer,
    endpoints: Informer,
    recorder: EventRecorder,
    triggers: Arc<TriggerTimeTracker>,
    written: Arc<WrittenVersions>,
    queue: WorkQueue<String>,
}

impl KeySync for EndpointsController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl EndpointsController {
    /// Wires the controller to shared informers; call [`EndpointsController::run`] to start.
    pub fn new(
        client: Arc<dyn Client>,
        services: Informer,
        pods: Informer,
        endpoints: Informer,
        recorder: EventRecorder,
    ) -> Self {
        let controller = EndpointsController {
            client,
            services,
            pods,
            endpoints,
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
        // A deleted Endpoints object of a live Service is written again.
        let queue = self.queue.clone();
        self.endpoints.add_handler(move |n| {
            if let (Notification::Deleted(_), Some(key)) = (n, n.key()) {
                queue.add(key);
            }
        });
    }

    /// Processes Services with `workers` concurrent syncs until the queue shuts down. Every
    /// existing Endpoints object is checked once first, so one left behind by a Service deleted
    /// while nothing was running goes away (`checkLeftoverEndpoints`).
    pub async fn run(self, workers: usize) {
        for endpoints in self.endpoints.list() {
            if let Some(key) = key_of(&endpoints) {
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

    /// One sync of the Service `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let scope = Scope {
            resource: endpoints_resource(),
            namespace: Some(namespace),
        };
        let Some(cached) = self.services.get(Some(namespace), name) else {
            // The Service is gone: so are its endpoints.
            self.triggers.forget(namespace, name);
            self.written.forget(key);
            if self.endpoints.get(Some(namespace), name).is_some() {
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
            return Ok(None);
        };
        let Some(service) = typed::<Service>(&cached) else {
            return Ok(None);
        };
        let current_cached = self.endpoints.get(Some(namespace), name);
        let cached_version = |_: &str| {
            current_cached
                .as_ref()
                .and_then(|e| e.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if self.written.is_stale(key, cached_version) {
            // The cache has not caught up with the last write; its event requeues the key.
            return Ok(Some(Duration::from_millis(50)));
        }
        let current: Option<Endpoints> = current_cached.as_ref().and_then(typed);
        let pods: Vec<Pod> = self
            .pods
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let selected = super::pods::selected_pods(&service, &pods);
        let trigger_time = self.triggers.compute(&service, &selected);
        let Some(write) = plan(&service, &pods, current.as_ref(), trigger_time) else {
            return Ok(None);
        };
        let (result, creating, object) = match write {
            EndpointsWrite::Create(e) => {
                let body = serde_json::to_value(&e)?;
                (self.client.create(scope, body.clone()).await, true, body)
            }
            EndpointsWrite::Update(e) => {
                let body = serde_json::to_value(&e)?;
                (self.client.update(scope, body.clone()).await, false, body)
            }
        };
        match result {
            Ok(stored) => {
                self.written.written(
                    key,
                    name,
                    stored
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str),
                );
                Ok(None)
            }
            Err(e) => {
                if let Ok(reference) = ObjectRef::from_value(&object) {
                    let (reason, message) = if creating {
                        (
                            "FailedToCreateEndpoint",
                            format!("Failed to create endpoint for service {key}: {e}"),
                        )
                    } else {
                        (
                            "FailedToUpdateEndpoint",
                            format!("Failed to update endpoint {key}: {e}"),
                        )
                    };
                    self.recorder
                        .record(&reference, EventType::Warning, reason, message);
                }
                Err(e.into())
            }
        }
    }
}
