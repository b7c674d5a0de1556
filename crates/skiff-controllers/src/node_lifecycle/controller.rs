//! The shell of the node lifecycle and taint eviction controllers: every monitor period, and
//! whenever a Node changes, it reads Nodes, their Leases and pods from informers, asks the
//! planners, and writes node conditions, taints, pod readiness and pod deletions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::patch::PatchType;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, EventSource, EventType, Informer, InformerConfig, ObjectRef};

use super::taint_eviction::{self, PodEviction};
use super::{
    needs_new_no_execute, plan_conditions, plan_taints, ready_status, zone_of, zone_rates,
    zone_states, LifecycleConfig, NoExecuteGate, TokenBucket,
};
use crate::shell::typed;

/// The namespace of the nodes' Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The rate limiter's burst, as kube-controller-manager's (`EvictionRateLimiterBurst`).
const EVICTION_BURST: f64 = 1.0;

/// How the node lifecycle controller runs.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeLifecycleSettings {
    /// The planners' settings.
    pub config: LifecycleConfig,
    /// `--node-monitor-period` (5 s): how often every node is checked.
    pub monitor_period: Duration,
}

impl Default for NodeLifecycleSettings {
    fn default() -> Self {
        NodeLifecycleSettings {
            config: LifecycleConfig::default(),
            monitor_period: Duration::from_secs(5),
        }
    }
}

/// Runs the node lifecycle and taint eviction controllers until `shutdown` resolves: informers
/// read through `client`, as kube-controller-manager's shared informers do, and every write and
/// event goes through `writer`, the controller's own identity.
pub async fn run(
    client: Arc<dyn Client>,
    writer: Arc<dyn Client>,
    settings: NodeLifecycleSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let nodes = Informer::start(client.clone(), InformerConfig::new(&kinds::node::V1));
    let leases = Informer::start(
        client.clone(),
        InformerConfig::new(&kinds::lease::V1).namespace(NODE_LEASE_NAMESPACE),
    );
    let pods = Informer::start(client.clone(), InformerConfig::new(&kinds::pod::V1));
    tokio::pin!(shutdown);
    // Told to stop while the store does not answer, it must not wait for unsynced informers.
    for i in [&nodes, &leases, &pods] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }
    let mut node_changes = nodes.subscribe();
    let mut shell = Shell {
        node_events: EventRecorder::new(writer.clone(), EventSource::component("node-controller")),
        eviction_events: EventRecorder::new(
            writer.clone(),
            EventSource::component("taint-eviction-controller"),
        ),
        client: writer,
        nodes,
        leases,
        pods,
        settings,
        buckets: HashMap::new(),
        scheduled: HashSet::new(),
        watching_since: Timestamp::now(),
    };
    let mut ticks = tokio::time::interval(shell.settings.monitor_period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
            change = node_changes.recv() => {
                if change.is_none() {
                    return;
                }
                // One pass for a burst of changes.
                while node_changes.try_recv().is_ok() {}
            }
        }
        let now = Timestamp::now();
        let guarded = std::panic::AssertUnwindSafe(shell.pass(now));
        if let Err(panic) = futures::FutureExt::catch_unwind(guarded).await {
            tracing::error!(
                panic = skiff_runtime::panics::message(&*panic),
                "a node lifecycle pass panicked"
            );
        }
    }
}

struct Shell {
    client: Arc<dyn Client>,
    nodes: Informer,
    leases: Informer,
    pods: Informer,
    settings: NodeLifecycleSettings,
    node_events: EventRecorder,
    eviction_events: EventRecorder,
    /// Each zone's rate limiter for new NoExecute taints.
    buckets: HashMap<String, TokenBucket>,
    /// Pods whose eviction is planned, so a called-off one is announced.
    scheduled: HashSet<String>,
    /// When the controller started: no node is judged silent for longer than that.
    watching_since: Timestamp,
}

fn scope<'a>(
    resource: &'static skiff_api::resources::ResourceInfo,
    namespace: Option<&'a str>,
) -> Scope<'a> {
    Scope {
        resource,
        namespace,
    }
}

impl Shell {
    async fn pass(&mut self, now: Timestamp) {
        let mut nodes: Vec<Node> = self.nodes.list().iter().filter_map(typed).collect();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

        // Health: conditions of silent nodes turn Unknown.
        for node in &mut nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let renewed = self
                .leases
                .get(Some(NODE_LEASE_NAMESPACE), &name)
                .and_then(|l| typed::<Lease>(&l))
                .and_then(|l| l.spec?.renew_time)
                .map(|t| t.0);
            let was_ready = ready_status(node) == Some("True");
            let Some(conditions) = plan_conditions(
                node,
                renewed,
                self.watching_since,
                now,
                &self.settings.config,
            ) else {
                continue;
            };
            let mut updated = node.clone();
            updated
                .status
                .get_or_insert_with(Default::default)
                .conditions = Some(conditions);
            match self.write_status(&updated).await {
                Ok(stored) => {
                    if was_ready {
                        if let Ok(reference) = ObjectRef::from_object(&stored) {
                            self.node_events.record(
                                &reference,
                                EventType::Normal,
                                "NodeNotReady",
                                format!("Node {name} status is now: NodeNotReady"),
                            );
                        }
                    }
                    *node = stored;
                }
                // The node wrote meanwhile: judged again on the next pass.
                Err(error) if error.is_conflict() => {
                    tracing::debug!(node = %name, %error, "node changed while marking it Unknown");
                }
                Err(error) => {
                    tracing::warn!(node = %name, %error, "marking a silent node Unknown failed");
                }
            }
        }

        // Pods on nodes whose kubelet is silent are not ready.
        let unknown: HashSet<String> = nodes
            .iter()
            .filter(|n| ready_status(n) == Some("Unknown"))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if !unknown.is_empty() {
            self.mark_pods_not_ready(&unknown, now).await;
        }

        // Taints, with the zones' rate limiters for new NoExecute taints.
        let config = &self.settings.config;
        let states = zone_states(&nodes, config);
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for node in &nodes {
            *sizes.entry(zone_of(node)).or_insert(0) += 1;
        }
        let rates = zone_rates(&states, &sizes, config);
        let mut taints_by_node: HashMap<String, Vec<Taint>> = HashMap::new();
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let zone = zone_of(node);
            let gate = if rates.all_fully_disrupted {
                NoExecuteGate::Lifted
            } else if needs_new_no_execute(node) {
                let rate = rates.rates.get(&zone).copied().unwrap_or(0.0);
                let bucket = self.buckets.entry(zone).or_default();
                if bucket.try_take(now, rate, EVICTION_BURST) {
                    NoExecuteGate::Open
                } else {
                    NoExecuteGate::Closed
                }
            } else {
                NoExecuteGate::Closed
            };
            let plan = plan_taints(node, gate, now);
            let current = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            match plan.taints {
                None => {
                    taints_by_node.insert(name, current);
                }
                Some(taints) => match self.write_taints(node, &taints).await {
                    Ok(()) => {
                        taints_by_node.insert(name, taints);
                    }
                    // Planned again on the next pass; meanwhile its pods' plans stand.
                    Err(error) if error.is_conflict() => {
                        tracing::debug!(node = %name, %error, "node changed while tainting it");
                    }
                    Err(error) => {
                        tracing::warn!(node = %name, %error, "writing node taints failed");
                    }
                },
            }
        }

        self.evict(&taints_by_node, now).await;
    }

    async fn write_status(&self, node: &Node) -> Result<Node, skiff_client::ClientError> {
        let value = serde_json::to_value(node)
            .map_err(|e| skiff_client::ClientError::Decode(e.to_string()))?;
        let stored = self
            .client
            .update_status(scope(&kinds::node::V1, None), value)
            .await?;
        serde_json::from_value(stored).map_err(|e| skiff_client::ClientError::Decode(e.to_string()))
    }

    async fn write_taints(
        &self,
        node: &Node,
        taints: &[Taint],
    ) -> Result<(), skiff_client::ClientError> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        // The resourceVersion makes this a compare-and-swap: a node changed meanwhile is
        // planned again on the next pass.
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": if taints.is_empty() { Value::Null } else { serde_json::to_value(taints).unwrap_or(Value::Null) }},
        });
        self.client
            .patch(
                scope(&kinds::node::V1, None),
                name,
                PatchType::Merge,
                patch,
                false,
            )
            .await
            .map(|_| ())
    }

    /// Kubernetes' `MarkPodsNotReady`: the Ready condition of every pod on the nodes goes
    /// `False`.
    async fn mark_pods_not_ready(&self, nodes: &HashSet<String>, now: Timestamp) {
        for object in self.pods.list() {
            let Some(pod) = typed::<Pod>(&object) else {
                continue;
            };
            let on_node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| nodes.contains(n));
            if !on_node {
                continue;
            }
            let Some(mut conditions) = pod.status.as_ref().and_then(|s| s.conditions.clone())
            else {
                continue;
            };
            let Some(ready) = conditions.iter_mut().find(|c| c.type_ == "Ready") else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            ready.status = "False".to_string();
            ready.last_transition_time =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let patch = json!({
                "metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": conditions},
            });
            match self
                .client
                .patch(
                    scope(&kinds::pod::V1, Some(namespace)),
                    name,
                    PatchType::Merge,
                    patch,
                    true,
                )
                .await
            {
                Ok(_) => {
                    if let Ok(reference) = ObjectRef::from_object(&pod) {
                        self.node_events.record(
                            &reference,
                            EventType::Warning,
                            "NodeNotReady",
                            "Node is not ready",
                        );
                    }
                }
                Err(error) => {
                    tracing::debug!(pod = %name, %error, "marking a pod not ready failed");
                }
            }
        }
    }

    /// The taint manager: pods on NoExecute-tainted nodes go when their tolerations run out.
    async fn evict(&mut self, taints_by_node: &HashMap<String, Vec<Taint>>, now: Timestamp) {
        let mut still_scheduled = HashSet::new();
        for object in self.pods.list() {
            let Some(pod) = typed::<Pod>(&object) else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) else {
                continue;
            };
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let key = format!("{namespace}/{name}");
            // A node whose taints are not known this pass (a write lost a race, or the node
            // is gone) leaves its pods' plans as they were.
            let Some(taints) = taints_by_node.get(node) else {
                if self.scheduled.contains(&key) {
                    still_scheduled.insert(key);
                }
                continue;
            };
            match taint_eviction::plan_pod_eviction(&pod, taints, now) {
                PodEviction::Stays => {
                    if self.scheduled.remove(&key) {
                        if let Ok(reference) = ObjectRef::from_object(&pod) {
                            self.eviction_events.record(
                                &reference,
                                EventType::Normal,
                                taint_eviction::EVICTION_REASON,
                                taint_eviction::cancel_message(&namespace, &name),
                            );
                        }
                    }
                }
                PodEviction::At(_) => {
                    still_scheduled.insert(key);
                }
                PodEviction::Now => {
                    self.scheduled.remove(&key);
                    self.delete_pod(&pod, &namespace, &name, now).await;
                }
            }
        }
        self.scheduled.retain(|k| still_scheduled.contains(k));
        self.scheduled.extend(still_scheduled);
    }

    async fn delete_pod(&self, pod: &Pod, namespace: &str, name: &str, now: Timestamp) {
        if let Ok(reference) = ObjectRef::from_object(pod) {
            self.eviction_events.record(
                &reference,
                EventType::Normal,
                taint_eviction::EVICTION_REASON,
                taint_eviction::eviction_message(namespace, name),
            );
        }
        // The DisruptionTarget condition says why, before the deletion, as upstream does.
        let mut conditions = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if !conditions.iter().any(|c| c.type_ == "DisruptionTarget") {
            conditions.push(k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".to_string(),
                status: "True".to_string(),
                reason: Some(taint_eviction::DISRUPTION_REASON.to_string()),
                message: Some(taint_eviction::DISRUPTION_MESSAGE.to_string()),
                last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    now,
                )),
                ..Default::default()
            });
            let patch = json!({"status": {"conditions": conditions}});
            if let Err(error) = self
                .client
                .patch(
                    scope(&kinds::pod::V1, Some(namespace)),
                    name,
                    PatchType::Merge,
                    patch,
                    true,
                )
                .await
            {
                tracing::debug!(pod = %name, %error, "setting DisruptionTarget failed");
            }
        }
        match self
            .client
            .delete(
                scope(&kinds::pod::V1, Some(namespace)),
                name,
                &DeleteOptions::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => tracing::warn!(pod = %name, %error, "evicting a pod failed"),
        }
    }
}
