//! The autoscaler's shell: every sync period, read the autoscaler, its target's scale, the
//! pods and their usage; plan; resize the target and write status and events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_api::resources::{self, ResourceInfo, Subresource};
use skiff_client::metrics::ResourceMetrics;
use skiff_client::{Client, ClientError, Scope};
use skiff_runtime::{
    EventRecorder, EventSource, Informer, InformerConfig, Notification, WorkQueue,
};

use super::normalize::History;
use super::sync::{plan_sync, HpaConfig, ScaleView};
use crate::shell::{now, record_events, run_key_syncs, typed, KeySync, SyncError};

/// Syncs run one at a time per autoscaler; a few run side by side, as upstream's workers.
const WORKERS: usize = 5;

fn hpa_resource() -> &'static ResourceInfo {
    resources::find("autoscaling", "v2", "horizontalpodautoscalers")
        .expect("horizontalpodautoscalers are registered")
}

fn pods_resource() -> &'static ResourceInfo {
    resources::find("", "v1", "pods").expect("pods are registered")
}

/// An API error as Kubernetes prints it (its message), any other error as it displays.
fn message_of(error: &ClientError) -> String {
    match error {
        ClientError::Api(e) => e.message.clone(),
        other => other.to_string(),
    }
}

/// Everything the autoscaler syncs through.
#[derive(Clone)]
pub struct HpaController {
    client: Arc<dyn Client>,
    metrics: Arc<dyn ResourceMetrics>,
    hpas: Informer,
    pods: Informer,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
    config: HpaConfig,
    histories: Arc<Mutex<HashMap<String, History>>>,
}

impl KeySync for HpaController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl HpaController {
    /// Starts the informers, waits for them to sync and routes autoscaler changes to the
    /// queue; call [`HpaController::run`] next.
    pub async fn start(
        client: Arc<dyn Client>,
        metrics: Arc<dyn ResourceMetrics>,
        config: HpaConfig,
    ) -> HpaController {
        let hpas = Informer::start(client.clone(), InformerConfig::new(hpa_resource()));
        let pods = Informer::start(client.clone(), InformerConfig::new(pods_resource()));
        hpas.wait_synced().await;
        pods.wait_synced().await;
        let controller = HpaController {
            recorder: EventRecorder::new(
                client.clone(),
                EventSource::component("horizontal-pod-autoscaler"),
            ),
            client,
            metrics,
            hpas,
            pods,
            queue: WorkQueue::new(),
            config,
            histories: Arc::new(Mutex::new(HashMap::new())),
        };
        controller.watch_changes();
        controller
    }

    /// A new autoscaler is synced at once; later changes wait for the next period, as upstream
    /// queues every change at its resync interval; a deleted one's memory is dropped.
    fn watch_changes(&self) {
        let queue = self.queue.clone();
        let histories = self.histories.clone();
        let period = self.config.sync_period;
        self.hpas.add_handler(move |n| {
            let Some(key) = n.key() else {
                return;
            };
            match n {
                Notification::Added(_) => queue.add(key),
                Notification::Updated { .. } => queue.add_after(key, period),
                Notification::Deleted(_) => {
                    if let Ok(mut h) = histories.lock() {
                        h.remove(&key);
                    }
                }
            }
        });
    }

    /// Processes autoscalers until [`HpaController::shutdown`].
    pub async fn run(self) {
        let queue = self.queue.clone();
        run_key_syncs(self, queue, WORKERS).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn read_scale(
        &self,
        namespace: &str,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<(&'static ResourceInfo, Value), String> {
        let target = hpa.spec.scale_target_ref.clone();
        let api_version = target.api_version.clone().unwrap_or_default();
        let resource = resources::find_by_kind(&api_version, &target.kind)
            .filter(|r| r.subresources.contains(&Subresource::Scale))
            .ok_or_else(|| {
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                format!(
                    "no matches for kind \"{}\" in group \"{group}\"",
                    target.kind
                )
            })?;
        let scope = Scope {
            resource,
            namespace: Some(namespace),
        };
        let scale = self
            .client
            .get_scale(scope, &target.name)
            .await
            .map_err(|e| message_of(&e))?;
        Ok((resource, scale))
    }

    /// One sync of one autoscaler; always comes back after the sync period.
    pub async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let period = Some(self.config.sync_period);
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(cached) = self.hpas.get(Some(namespace), name) else {
            if let Ok(mut h) = self.histories.lock() {
                h.remove(key);
            }
            return Ok(None);
        };
        let Some(hpa) = typed::<HorizontalPodAutoscaler>(&cached) else {
            return Ok(None);
        };
        let scale = self.read_scale(namespace, &hpa).await;
        let pods: Vec<Pod> = self
            .pods
            .list_by_namespace(namespace)
            .iter()
            .filter_map(typed)
            .collect();
        let usage = self.metrics.pods().await;
        let started = now();
        let mut plan = {
            let Ok(mut histories) = self.histories.lock() else {
                return Ok(period);
            };
            let history = histories.entry(key.to_string()).or_default();
            let view = scale.as_ref().map(|(_, s)| ScaleView::from_scale(s));
            plan_sync(
                &hpa,
                view.as_ref().map_err(|e| e.to_string()),
                &pods,
                &usage,
                history,
                &self.config,
                started,
            )
        };

        if let (Some(rescale), Ok((resource, scale))) = (plan.rescale.clone(), &scale) {
            let mut desired = scale.clone();
            desired["spec"]["replicas"] = Value::from(rescale.replicas);
            let scope = Scope {
                resource,
                namespace: Some(namespace),
            };
            match self.client.update_scale(scope, desired).await {
                Ok(_) => {
                    if let Ok(mut histories) = self.histories.lock() {
                        histories
                            .entry(key.to_string())
                            .or_default()
                            .store_scale_event(
                                hpa.spec.behavior.as_ref(),
                                rescale.previous,
                                rescale.replicas,
                                started,
                            );
                    }
                    tracing::info!(hpa = key, from = rescale.previous, to = rescale.replicas, reason = %rescale.reason, "successfully rescaled");
                }
                Err(e) => plan.rescale_failed(&message_of(&e), started),
            }
        }
        record_events(&self.recorder, &cached, &plan.events);

        if plan.status_changed(hpa.status.as_ref()) {
            let mut object = (*cached).clone();
            object["status"] = serde_json::to_value(&plan.status)?;
            let scope = Scope {
                resource: hpa_resource(),
                namespace: Some(namespace),
            };
            if let Err(e) = self.client.update_status(scope, object).await {
                let message = message_of(&e);
                record_events(
                    &self.recorder,
                    &cached,
                    &[crate::deployment::Event {
                        type_: crate::deployment::EventType::Warning,
                        reason: "FailedUpdateStatus".to_string(),
                        message: message.clone(),
                        replica_set: None,
                    }],
                );
                tracing::warn!(hpa = key, error = %message, "failed to update status");
            }
        }
        if let Some(error) = &plan.error {
            tracing::warn!(hpa = key, %error, "autoscaler sync failed");
        }
        Ok(period)
    }
}
