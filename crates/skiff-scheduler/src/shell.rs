//! The scheduling loop: keeps a cache of nodes and pods, asks the planner where each pending
//! pod goes, binds it, and reports the outcome as kube-scheduler does.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::{self, ResourceInfo};
use skiff_client::{Client, ClientError, Scope};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::{ClientEventRecorder, EventRecorder, PodEvent};
use crate::planner::{self, PodsByNode};
use crate::volumes::{ClaimFacts, PodVolumes, ANN_SELECTED_NODE};
use crate::watch::{self, Change};
use skiff_api::kinds;

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The API does not serve a resource the scheduler needs.
    #[error("resource {0} is not served")]
    MissingResource(&'static str),
}

/// Timing of retries.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// The wait before retrying a pod after its first failure; it doubles with each failure.
    pub initial_backoff: Duration,
    /// The longest wait between retries once the cluster changed.
    pub max_backoff: Duration,
    /// How long a pod that fit nowhere waits for a relevant change before it is retried anyway.
    pub unschedulable_retry: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            unschedulable_retry: Duration::from_secs(60),
        }
    }
}

/// Schedules pods until `shutdown` resolves, writing events through the client.
pub async fn run(
    client: Arc<dyn Client>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SchedulerError> {
    let recorder = Arc::new(ClientEventRecorder::new(
        client.clone(),
        crate::events::reporting_instance(&host_name()),
    ));
    recorder.spawn_upkeep();
    run_with(client, recorder, SchedulerConfig::default(), shutdown).await
}

/// The machine's host name, as kube-scheduler's reporting instance names it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Schedules pods until `shutdown` resolves, with the given event recorder and timing.
pub async fn run_with(
    client: Arc<dyn Client>,
    recorder: Arc<dyn EventRecorder>,
    config: SchedulerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SchedulerError> {
    let pods = resources::find("", "v1", "pods").ok_or(SchedulerError::MissingResource("pods"))?;
    let nodes =
        resources::find("", "v1", "nodes").ok_or(SchedulerError::MissingResource("nodes"))?;
    let (pod_tx, mut pod_rx) = mpsc::channel(256);
    let (node_tx, mut node_rx) = mpsc::channel(64);
    // Finished pods neither wait for a node nor use one, as in kube-scheduler's informer.
    let pod_watch = tokio::spawn(watch::reflect(
        client.clone(),
        pods,
        Some("status.phase!=Succeeded,status.phase!=Failed".to_string()),
        pod_tx,
    ));
    let node_watch = tokio::spawn(watch::reflect(client.clone(), nodes, None, node_tx));

    let mut scheduler = Scheduler {
        client,
        recorder,
        config,
        pods_resource: pods,
        state: State::default(),
    };
    tokio::pin!(shutdown);
    loop {
        let wake_at = scheduler
            .state
            .next_due()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut shutdown => break,
            Some(change) = pod_rx.recv() => {
                scheduler.state.apply_guarded(change, State::apply_pod_change);
                while let Ok(more) = pod_rx.try_recv() {
                    scheduler.state.apply_guarded(more, State::apply_pod_change);
                }
            }
            Some(change) = node_rx.recv() => {
                scheduler.state.apply_guarded(change, State::apply_node_change);
                while let Ok(more) = node_rx.try_recv() {
                    scheduler.state.apply_guarded(more, State::apply_node_change);
                }
            }
            _ = tokio::time::sleep_until(wake_at) => {}
        }
        scheduler.schedule_due().await;
    }
    pod_watch.abort();
    node_watch.abort();
    Ok(())
}

fn key_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn node_name_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether a node changed in a way that could let a waiting pod fit.
fn node_changed_for_scheduling(old: &Node, new: &Node) -> bool {
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    let allocatable = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || allocatable(old) != allocatable(new)
        || ready(old) != ready(new)
}

/// A pod waiting for a node.
#[derive(Clone, Debug)]
struct Waiting {
    /// Failed attempts so far.
    attempts: u32,
    /// When to try next if nothing changes.
    due: Instant,
    /// The earliest retry after a change in the cluster.
    backoff_until: Instant,
}

/// What the scheduler knows of the cluster.
#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    /// Every pod that has not finished, by `namespace/name`.
    pods: BTreeMap<String, Pod>,
    waiting: BTreeMap<String, Waiting>,
    nodes_listed: bool,
    pods_listed: bool,
}

impl State {
    fn next_due(&self) -> Option<Instant> {
        if !(self.nodes_listed && self.pods_listed) {
            return None;
        }
        self.waiting.values().map(|w| w.due).min()
    }

    /// Something changed that may let waiting pods fit: retry them once their backoff ends.
    fn cluster_changed(&mut self) {
        for w in self.waiting.values_mut() {
            w.due = w.due.min(w.backoff_until);
        }
    }

    fn track(&mut self, pod: Pod) -> bool {
        let key = key_of(&pod);
        let pending = planner::needs_scheduling(&pod);
        let assigned = node_name_of(&pod).is_some();
        let previous = self.pods.insert(key.clone(), pod);
        let current = self.pods.get(&key);
        if pending {
            let now = Instant::now();
            let spec_changed = match (&previous, current) {
                (Some(old), Some(new)) => {
                    old.spec != new.spec || old.metadata.labels != new.metadata.labels
                }
                _ => true,
            };
            let entry = self.waiting.entry(key).or_insert(Waiting {
                attempts: 0,
                due: now,
                backoff_until: now,
            });
            if spec_changed {
                entry.due = entry.due.min(entry.backoff_until);
            }
        } else {
            self.waiting.remove(&key);
        }
        // A pod newly placed, moved, or changed on a node changes what that node has left.
        assigned
            && match (&previous, current) {
                (Some(old), Some(new)) => {
                    old.spec != new.spec
                        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
                }
                _ => true,
            }
    }

    fn forget(&mut self, key: &str) -> bool {
        self.waiting.remove(key);
        self.pods
            .remove(key)
            .is_some_and(|old| node_name_of(&old).is_some())
    }

    /// Applies a watched change; one that panics is logged and skipped, and every waiting
    /// pod is retried, since the cache may now lack it.
    fn apply_guarded(&mut self, change: Change, apply: fn(&mut State, Change)) {
        if let Err(panic) = skiff_runtime::panics::catch_sync(|| apply(self, change)) {
            tracing::error!("applying a watched change panicked: {panic}");
            self.cluster_changed();
        }
    }

    fn apply_pod_change(&mut self, change: Change) {
        let changed = match change {
            Change::Listed(items) => {
                let fresh: Vec<Pod> = items.into_iter().filter_map(decode).collect();
                let keep: std::collections::BTreeSet<String> = fresh.iter().map(key_of).collect();
                self.pods.retain(|k, _| keep.contains(k));
                self.waiting.retain(|k, _| keep.contains(k));
                for pod in fresh {
                    self.track(pod);
                }
                self.pods_listed = true;
                true
            }
            Change::Applied(object) => match decode::<Pod>(object) {
                Some(pod) => self.track(pod),
                None => false,
            },
            Change::Deleted(object) => match decode::<Pod>(object) {
                Some(pod) => self.forget(&key_of(&pod)),
                None => false,
            },
        };
        if changed {
            self.cluster_changed();
        }
    }

    fn apply_node_change(&mut self, change: Change) {
        let changed = match change {
            Change::Listed(items) => {
                self.nodes = items
                    .into_iter()
                    .filter_map(decode::<Node>)
                    .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
                    .collect();
                self.nodes_listed = true;
                true
            }
            Change::Applied(object) => match decode::<Node>(object) {
                Some(node) => {
                    let name = node.metadata.name.clone().unwrap_or_default();
                    match self.nodes.insert(name.clone(), node) {
                        Some(old) => self
                            .nodes
                            .get(&name)
                            .is_some_and(|new| node_changed_for_scheduling(&old, new)),
                        None => true,
                    }
                }
                None => false,
            },
            Change::Deleted(object) => match decode::<Node>(object) {
                Some(node) => self
                    .nodes
                    .remove(node.metadata.name.as_deref().unwrap_or(""))
                    .is_some(),
                None => false,
            },
        };
        if changed {
            self.cluster_changed();
        }
    }

    /// The bound pods of each node, for resource accounting.
    fn pods_by_node(&self) -> PodsByNode {
        let mut by_node = PodsByNode::new();
        for pod in self.pods.values() {
            if let Some(node) = node_name_of(pod) {
                by_node
                    .entry(node.to_string())
                    .or_default()
                    .push(pod.clone());
            }
        }
        by_node
    }

    /// Records a failed attempt: retry after the backoff if the cluster changes, or after
    /// `unschedulable_retry` anyway.
    fn failed(&mut self, key: &str, config: &SchedulerConfig, wait_for_change: bool) {
        if let Some(w) = self.waiting.get_mut(key) {
            let now = Instant::now();
            w.attempts = w.attempts.saturating_add(1);
            let factor = 2u32.saturating_pow(w.attempts.saturating_sub(1).min(16));
            let backoff = config
                .initial_backoff
                .saturating_mul(factor)
                .min(config.max_backoff);
            w.backoff_until = now + backoff;
            w.due = if wait_for_change {
                now + config.unschedulable_retry
            } else {
                w.backoff_until
            };
        }
    }
}

fn decode<K: k8s_openapi::serde::de::DeserializeOwned>(object: Value) -> Option<K> {
    match serde_json::from_value(object) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an object that does not decode");
            None
        }
    }
}

struct Scheduler {
    client: Arc<dyn Client>,
    recorder: Arc<dyn EventRecorder>,
    config: SchedulerConfig,
    pods_resource: &'static ResourceInfo,
    state: State,
}

impl Scheduler {
    /// Tries every pod whose turn has come, higher priority and older pods first.
    async fn schedule_due(&mut self) {
        if !(self.state.nodes_listed && self.state.pods_listed) {
            return;
        }
        let now = Instant::now();
        let mut due: Vec<(i32, String, String)> = self
            .state
            .waiting
            .iter()
            .filter(|(_, w)| w.due <= now)
            .filter_map(|(key, _)| {
                let pod = self.state.pods.get(key)?;
                let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                let created = pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                Some((-priority, created, key.clone()))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        due.sort();
        let nodes: Vec<Node> = self.state.nodes.values().cloned().collect();
        let mut by_node = self.state.pods_by_node();
        for (_, _, key) in due {
            let Some(pod) = self.state.pods.get(&key).cloned() else {
                continue;
            };
            let volumes = match self.pod_volumes(&pod).await {
                Ok(volumes) => volumes,
                Err(error) => {
                    tracing::warn!(pod = key, %error, "reading the pod's claims failed");
                    self.state.failed(&key, &self.config, false);
                    continue;
                }
            };
            let planned = skiff_runtime::panics::catch_sync(|| {
                planner::schedule_with_volumes(&pod, &nodes, &by_node, &volumes)
            });
            let planned = match planned {
                Ok(planned) => planned,
                Err(panic) => {
                    // One pod's bug must not stop scheduling: retry it with back-off.
                    tracing::error!(pod = key, "scheduling panicked: {panic}");
                    self.state.failed(&key, &self.config, false);
                    continue;
                }
            };
            match planned {
                Ok(choice) => {
                    if let Err(error) = self
                        .select_node_for_claims(&pod, &volumes.delayed_claims, &choice.node_name)
                        .await
                    {
                        tracing::warn!(pod = key, %error, "annotating the pod's claims failed");
                        self.state.failed(&key, &self.config, false);
                        continue;
                    }
                    if let Some(bound) = self.bind(&key, pod, &choice.node_name).await {
                        by_node.entry(choice.node_name).or_default().push(bound);
                    }
                }
                Err(unschedulable) => {
                    self.report_unschedulable(&pod, &unschedulable.message)
                        .await;
                    // Claims bind without any node or pod changing, so a pod waiting on its
                    // claims is retried with back-off rather than on the next cluster change.
                    let wait_for_change = volumes.rejection.is_none();
                    self.state.failed(&key, &self.config, wait_for_change);
                }
            }
        }
    }

    /// Reads the claims the pod names, with each claim's volume or class, and works out the
    /// pod's volume constraints.
    async fn pod_volumes(&self, pod: &Pod) -> Result<PodVolumes, ClientError> {
        let names: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .map(|vols| {
                vols.iter()
                    .filter_map(|v| v.persistent_volume_claim.as_ref())
                    .map(|c| c.claim_name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            return Ok(PodVolumes::default());
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let get = |resource: &'static ResourceInfo, namespace: Option<String>, name: String| {
            let client = self.client.clone();
            async move {
                let scope = Scope {
                    resource,
                    namespace: namespace.as_deref(),
                };
                match client.get(scope, &name).await {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        let mut facts = Vec::new();
        for name in names {
            let claim = get(
                &kinds::persistent_volume_claim::V1,
                Some(namespace.clone()),
                name.clone(),
            )
            .await?;
            let text = |v: &Option<Value>, p: &str| {
                v.as_ref()
                    .and_then(|v| v.pointer(p))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let volume_name = text(&claim, "/spec/volumeName");
            let class_name = text(&claim, "/spec/storageClassName");
            let volume = if volume_name.is_empty() {
                None
            } else {
                get(&kinds::persistent_volume::V1, None, volume_name).await?
            };
            let class = if class_name.is_empty() {
                None
            } else {
                get(&kinds::storage_class::V1, None, class_name).await?
            };
            facts.push(ClaimFacts {
                name,
                claim,
                volume,
                class,
            });
        }
        Ok(crate::volumes::pod_volumes(&facts))
    }

    /// Names the chosen node on each claim waiting for its first consumer, as the
    /// VolumeBinding plugin's PreBind does before the pod is bound.
    async fn select_node_for_claims(
        &self,
        pod: &Pod,
        claims: &[String],
        node: &str,
    ) -> Result<(), ClientError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let scope = Scope {
            resource: &kinds::persistent_volume_claim::V1,
            namespace: Some(&namespace),
        };
        for claim in claims {
            let patch = json!({"metadata": {"annotations": {ANN_SELECTED_NODE: node}}});
            self.client
                .patch(scope, claim, PatchType::Merge, patch, false)
                .await?;
        }
        Ok(())
    }

    /// Binds the pod and, on success, assumes it on the node until the watch confirms it.
    async fn bind(&mut self, key: &str, pod: Pod, node: &str) -> Option<Pod> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        match self.client.bind_pod(&namespace, &name, node).await {
            Ok(()) => {
                let mut assumed = pod;
                if let Some(spec) = assumed.spec.as_mut() {
                    spec.node_name = Some(node.to_string());
                }
                self.state.waiting.remove(key);
                self.state.pods.insert(key.to_string(), assumed.clone());
                let message = format!("Successfully assigned {namespace}/{name} to {node}");
                self.recorder
                    .record(PodEvent::about(
                        &assumed,
                        "Normal",
                        "Scheduled",
                        "Binding",
                        message,
                    ))
                    .await;
                Some(assumed)
            }
            // Bound by someone else, being deleted, or gone: the watch will tell.
            Err(e) if e.is_conflict() || e.is_not_found() => {
                self.state.waiting.remove(key);
                None
            }
            Err(e) => {
                tracing::warn!(pod = key, node, error = %e, "binding failed");
                self.recorder
                    .record(PodEvent::about(
                        &pod,
                        "Warning",
                        "FailedScheduling",
                        "Scheduling",
                        format!("Binding rejected: {e}"),
                    ))
                    .await;
                self.state.failed(key, &self.config, false);
                None
            }
        }
    }

    /// Writes the `FailedScheduling` event and the `PodScheduled=False` condition.
    async fn report_unschedulable(&mut self, pod: &Pod, message: &str) {
        self.recorder
            .record(PodEvent::about(
                pod,
                "Warning",
                "FailedScheduling",
                "Scheduling",
                message.to_string(),
            ))
            .await;
        if let Err(e) = self.set_unschedulable_condition(pod, message).await {
            tracing::warn!(pod = key_of(pod), error = %e, "updating PodScheduled failed");
        }
    }

    async fn set_unschedulable_condition(
        &self,
        pod: &Pod,
        message: &str,
    ) -> Result<(), ClientError> {
        let existing = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        let same = existing.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        });
        if same {
            return Ok(());
        }
        let mut condition = json!({
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
        });
        // The transition time moves only when the status does.
        if existing.is_none_or(|c| c.status != "False") {
            condition["lastTransitionTime"] = json!(jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string());
        }
        let scope = Scope {
            resource: self.pods_resource,
            namespace: pod.metadata.namespace.as_deref(),
        };
        let name = pod.metadata.name.as_deref().unwrap_or("");
        self.client
            .patch(
                scope,
                name,
                PatchType::StrategicMerge,
                json!({"status": {"conditions": [condition]}}),
                true,
            )
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"schedulerName": "default-scheduler", "nodeName": node,
                     "containers": [{"name": "c", "image": "i"}]}
        })
    }

    fn node(cpu: &str, heartbeat: &str) -> Value {
        json!({
            "metadata": {"name": "n"},
            "status": {
                "allocatable": {"cpu": cpu, "pods": "10"},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}]
            }
        })
    }

    fn listed_state() -> State {
        let mut state = State::default();
        state.apply_node_change(Change::Listed(vec![node("1", "2024-01-01T00:00:00Z")]));
        state.apply_pod_change(Change::Listed(vec![pod("a", None), pod("b", Some("n"))]));
        state
    }

    #[test]
    fn only_pending_pods_wait_and_bound_pods_count_on_their_node() {
        let state = listed_state();
        assert_eq!(state.waiting.keys().collect::<Vec<_>>(), ["default/a"]);
        let by_node = state.pods_by_node();
        assert_eq!(by_node["n"].len(), 1);
        assert!(state.next_due().is_some());
    }

    #[test]
    fn a_pod_that_fit_nowhere_waits_for_a_relevant_change() {
        let config = SchedulerConfig::default();
        let mut state = listed_state();
        state.failed("default/a", &config, true);
        let parked = state.waiting["default/a"].due;
        assert!(parked >= Instant::now() + Duration::from_secs(50));

        // A heartbeat changes nothing the scheduler cares about.
        state.apply_node_change(Change::Applied(node("1", "2024-01-01T00:00:10Z")));
        assert_eq!(state.waiting["default/a"].due, parked);
        // Its own status update does not count either.
        let mut with_status = pod("a", None);
        with_status["status"] =
            json!({"conditions": [{"type": "PodScheduled", "status": "False"}]});
        state.apply_pod_change(Change::Applied(with_status));
        assert_eq!(state.waiting["default/a"].due, parked);

        // More CPU on the node does: retry once the backoff has passed.
        state.apply_node_change(Change::Applied(node("2", "2024-01-01T00:00:20Z")));
        let w = &state.waiting["default/a"];
        assert_eq!(w.due, w.backoff_until);
        assert!(w.due <= Instant::now() + config.initial_backoff);
    }

    #[test]
    fn a_deleted_bound_pod_frees_room_and_a_bound_pod_stops_waiting() {
        let config = SchedulerConfig::default();
        let mut state = listed_state();
        state.failed("default/a", &config, true);
        state.apply_pod_change(Change::Deleted(pod("b", Some("n"))));
        let w = &state.waiting["default/a"];
        assert_eq!(w.due, w.backoff_until);
        assert!(state.pods_by_node().is_empty());

        state.apply_pod_change(Change::Applied(pod("a", Some("n"))));
        assert!(state.waiting.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let config = SchedulerConfig::default();
        let mut state = listed_state();
        let mut waits = Vec::new();
        for _ in 0..6 {
            let before = Instant::now();
            state.failed("default/a", &config, false);
            let w = &state.waiting["default/a"];
            waits.push((w.backoff_until - before).as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }
}
