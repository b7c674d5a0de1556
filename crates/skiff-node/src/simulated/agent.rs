//! The asynchronous shell around [`plan_pod`]: one list-and-watch of the pods bound to the
//! simulated nodes, one delay queue for every pod's next look-in, and a bounded number of writes
//! in flight.
//!
//! A pod is planned whenever the watch delivers a new version of it or its next look-in comes
//! due; the plan's writes run concurrently with everything else, never two for the same pod.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, ClientError, DeleteOptions, ListOptions, Scope, WatchEvent};
use tokio::time::Instant;

use super::delay_queue::DelayQueue;
use super::ipam::PodIpPool;
use super::node::SimulatedNode;
use super::timeline::{is_terminal, plan_pod, PodContext, PodPlan, PodTimelineConfig};

/// How long to wait before trying a failed list, watch or write again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a pod whose planning panicked waits before it is planned again.
const PANIC_RETRY_DELAY: Duration = Duration::from_secs(10);
/// Selects the pods that are bound to some node.
const BOUND_PODS: &str = "spec.nodeName!=";

/// `namespace/name`.
type PodKey = String;

/// One simulated node as the pod agent needs it.
struct NodeSlot {
    host_ip: Ipv4Addr,
    pool: PodIpPool,
}

/// What one write task did.
struct Outcome {
    key: PodKey,
    /// The pod as stored after a status write.
    written: Option<Value>,
    /// The deletion was confirmed (or the pod was already gone).
    gone: bool,
    error: Option<ClientError>,
}

/// Drives the pods of a set of simulated nodes.
pub(crate) struct PodAgent {
    client: Arc<dyn Client>,
    pods: &'static ResourceInfo,
    nodes: HashMap<String, NodeSlot>,
    timeline: PodTimelineConfig,
    max_in_flight: usize,
    cache: HashMap<PodKey, Pod>,
    queue: DelayQueue<PodKey>,
    in_flight: HashSet<PodKey>,
    /// Pods that changed while a write for them was in flight: plan again once it is done.
    dirty: HashSet<PodKey>,
}

impl PodAgent {
    pub(crate) fn new(
        client: Arc<dyn Client>,
        pods: &'static ResourceInfo,
        nodes: &[SimulatedNode],
        timeline: PodTimelineConfig,
        max_in_flight: usize,
    ) -> PodAgent {
        let nodes = nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NodeSlot {
                        host_ip: n.internal_ip,
                        pool: PodIpPool::new(n.pod_cidr.0, n.pod_cidr.1),
                    },
                )
            })
            .collect();
        PodAgent {
            client,
            pods,
            nodes,
            timeline,
            max_in_flight: max_in_flight.max(1),
            cache: HashMap::new(),
            queue: DelayQueue::new(),
            in_flight: HashSet::new(),
            dirty: HashSet::new(),
        }
    }

    /// Runs until `shutdown` completes. Lost watches are re-established with a fresh list;
    /// failed writes are retried.
    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut tasks = FuturesUnordered::new();
        'resync: loop {
            let mut events = match self.resync().await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "listing pods of simulated nodes failed");
                    tokio::select! {
                        _ = &mut shutdown => break 'resync,
                        _ = tokio::time::sleep(RETRY_DELAY) => continue 'resync,
                    }
                }
            };
            loop {
                self.start_due(&mut tasks);
                let wake = self.queue.next_deadline();
                let can_start = tasks.len() < self.max_in_flight;
                tokio::select! {
                    _ = &mut shutdown => break 'resync,
                    Some(outcome) = tasks.next(), if !tasks.is_empty() => self.finish(outcome),
                    event = events.next() => match event {
                        Some(event) => {
                            match skiff_runtime::panics::catch_sync(|| self.on_event(event)) {
                                Ok(true) => {}
                                Ok(false) => continue 'resync,
                                Err(panic) => {
                                    tracing::error!("handling a pod event panicked: {panic}");
                                }
                            }
                        }
                        None => continue 'resync,
                    },
                    _ = sleep_until(wake), if wake.is_some() && can_start => {}
                }
            }
        }
    }

    /// Pods in every namespace.
    fn all_namespaces(&self) -> Scope<'static> {
        Scope {
            resource: self.pods,
            namespace: None,
        }
    }

    /// Lists the bound pods, adopts their addresses, plans them all, and watches from there.
    async fn resync(&mut self) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
        let options = ListOptions {
            field_selector: Some(BOUND_PODS.to_string()),
            ..ListOptions::default()
        };
        let list = self.client.list(self.all_namespaces(), &options).await?;
        let mut seen = HashMap::new();
        for item in list.items {
            match serde_json::from_value::<Pod>(item) {
                Ok(pod) if self.node_of(&pod).is_some() => {
                    seen.insert(key_of(&pod), pod);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "skipping a pod that does not decode"),
            }
        }
        let vanished: Vec<PodKey> = self
            .cache
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for key in vanished {
            self.forget(&key);
        }
        // Addresses pods already report come first, so new pods cannot be handed them.
        for pod in seen.values() {
            self.adopt_address(pod);
        }
        let now = Instant::now();
        for (key, pod) in seen {
            self.remember(key.clone(), pod);
            self.queue.schedule(key, now);
        }
        let watch = ListOptions {
            resource_version: Some(list.resource_version),
            ..options
        };
        self.client.watch(self.all_namespaces(), &watch).await
    }

    fn node_of<'p>(&self, pod: &'p Pod) -> Option<&'p str> {
        let node = pod.spec.as_ref()?.node_name.as_deref()?;
        self.nodes.contains_key(node).then_some(node)
    }

    fn adopt_address(&mut self, pod: &Pod) {
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
            return;
        };
        if is_terminal(status) {
            return;
        }
        let uid = uid_of(pod).to_string();
        let Some(node) = self.node_of(pod).map(str::to_string) else {
            return;
        };
        if let Some(slot) = self.nodes.get_mut(&node) {
            if !slot.pool.reserve(&uid, ip) {
                tracing::warn!(pod = %key_of(pod), %ip, "pod reports an address that is taken or out of range");
            }
        }
    }

    /// Keeps the newest version of a pod; a finished pod gives its address back.
    fn remember(&mut self, key: PodKey, pod: Pod) {
        if let Some(known) = self.cache.get(&key) {
            if uid_of(known) == uid_of(&pod) && revision(known) > revision(&pod) {
                return;
            }
            if uid_of(known) != uid_of(&pod) {
                self.release(&key);
            }
        }
        let finished = pod.status.as_ref().is_some_and(is_terminal);
        self.cache.insert(key.clone(), pod);
        if finished {
            self.release(&key);
        }
    }

    fn release(&mut self, key: &PodKey) {
        let Some(pod) = self.cache.get(key) else {
            return;
        };
        let uid = uid_of(pod).to_string();
        if let Some(node) = self.node_of(pod).map(str::to_string) {
            if let Some(slot) = self.nodes.get_mut(&node) {
                slot.pool.release(&uid);
            }
        }
    }

    fn forget(&mut self, key: &PodKey) {
        self.release(key);
        self.cache.remove(key);
        self.queue.remove(key);
        self.dirty.remove(key);
    }

    /// Handles one watch event; false when the watch must be re-established.
    fn on_event(&mut self, event: WatchEvent) -> bool {
        match event.event_type {
            "ADDED" | "MODIFIED" => {
                let pod: Pod = match serde_json::from_value(event.object) {
                    Ok(pod) => pod,
                    Err(error) => {
                        tracing::warn!(%error, "skipping a pod that does not decode");
                        return true;
                    }
                };
                if self.node_of(&pod).is_none() {
                    return true;
                }
                let key = key_of(&pod);
                self.remember(key.clone(), pod);
                self.touch(key);
            }
            "DELETED" => {
                if let Ok(pod) = serde_json::from_value::<Pod>(event.object) {
                    let key = key_of(&pod);
                    if self
                        .cache
                        .get(&key)
                        .is_some_and(|known| uid_of(known) == uid_of(&pod))
                    {
                        self.forget(&key);
                    }
                }
            }
            "ERROR" => {
                tracing::debug!(status = %event.object, "pod watch ended with an error; listing again");
                return false;
            }
            _ => {}
        }
        true
    }

    /// Plans `key` as soon as possible.
    fn touch(&mut self, key: PodKey) {
        if self.in_flight.contains(&key) {
            self.dirty.insert(key);
        } else {
            self.queue.schedule(key, Instant::now());
        }
    }

    /// Plans every due pod while writes may start.
    fn start_due(
        &mut self,
        tasks: &mut FuturesUnordered<futures::future::BoxFuture<'static, Outcome>>,
    ) {
        let now = Instant::now();
        while tasks.len() < self.max_in_flight {
            let Some(key) = self.queue.pop_due(now) else {
                break;
            };
            if self.in_flight.contains(&key) {
                self.dirty.insert(key);
                continue;
            }
            if let Some(task) = self.plan(&key) {
                self.in_flight.insert(key);
                tasks.push(task);
            }
        }
    }

    /// Plans one pod: schedules its next look-in and returns the writes to make, if any.
    fn plan(&mut self, key: &PodKey) -> Option<futures::future::BoxFuture<'static, Outcome>> {
        let pod = self.cache.get(key)?.clone();
        let node = self.node_of(&pod)?.to_string();
        let slot = self.nodes.get_mut(&node)?;
        let status = pod.status.as_ref();
        let needs_address = status.is_none_or(|s| s.pod_ip.is_none() && !is_terminal(s))
            && pod.metadata.deletion_timestamp.is_none();
        let pod_ip = if needs_address {
            slot.pool.allocate(uid_of(&pod))
        } else {
            None
        };
        let ctx = PodContext {
            host_ip: slot.host_ip,
            pod_ip,
            config: &self.timeline,
        };
        let now = Timestamp::now();
        let plan = match skiff_runtime::panics::catch_sync(|| plan_pod(&pod, now, &ctx)) {
            Ok(plan) => plan,
            Err(panic) => {
                // One pod's bug must not stop the node: look at it again later.
                tracing::error!(pod = %key, "planning a simulated pod panicked: {panic}");
                self.queue
                    .schedule(key.clone(), Instant::now() + PANIC_RETRY_DELAY);
                return None;
            }
        };
        if let Some(next) = plan.next_check {
            self.queue.schedule(key.clone(), instant_of(next, now));
        }
        if plan.status.is_none() && !plan.delete {
            return None;
        }
        let write = write(self.client.clone(), self.pods, key.clone(), pod, plan);
        let key = key.clone();
        Some(
            async move {
                skiff_runtime::panics::catch(write)
                    .await
                    .unwrap_or_else(|panic| Outcome {
                        key,
                        written: None,
                        gone: false,
                        error: Some(ClientError::Decode(format!("writing panicked: {panic}"))),
                    })
            }
            .boxed(),
        )
    }

    fn finish(&mut self, outcome: Outcome) {
        let key = outcome.key;
        self.in_flight.remove(&key);
        if outcome.gone {
            self.forget(&key);
            return;
        }
        if let Some(stored) = outcome.written {
            match serde_json::from_value::<Pod>(stored) {
                Ok(pod) => self.remember(key.clone(), pod),
                Err(error) => tracing::warn!(%error, pod = %key, "stored pod does not decode"),
            }
        }
        match outcome.error {
            Some(error) if error.is_not_found() => self.forget(&key),
            Some(error) => {
                // A conflict means a newer version is on its way through the watch; anything
                // else is retried after a pause.
                if !error.is_conflict() {
                    tracing::warn!(%error, pod = %key, "writing the status of a simulated pod failed");
                }
                self.dirty.remove(&key);
                self.queue.schedule(key, Instant::now() + RETRY_DELAY);
            }
            None => {
                self.dirty.remove(&key);
                self.queue.schedule(key, Instant::now());
            }
        }
    }
}

/// Writes what the plan decided: the status first, then the confirmation of the deletion.
async fn write(
    client: Arc<dyn Client>,
    pods: &'static ResourceInfo,
    key: PodKey,
    pod: Pod,
    plan: PodPlan,
) -> Outcome {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone();
    let scope = Scope {
        resource: pods,
        namespace: Some(&namespace),
    };
    let mut outcome = Outcome {
        key,
        written: None,
        gone: false,
        error: None,
    };
    if let Some(status) = plan.status {
        let mut next = pod;
        // The status describes the spec of this generation, as kubelet reports it.
        next.status = Some(crate::observed::observe_generation(
            status,
            next.metadata.generation,
        ));
        match serde_json::to_value(&next) {
            Ok(mut body) => {
                spell_out_probe_times(&mut body);
                match client.update_status(scope, body).await {
                    Ok(stored) => outcome.written = Some(stored),
                    Err(error) => {
                        outcome.error = Some(error);
                        return outcome;
                    }
                }
            }
            Err(error) => {
                outcome.error = Some(ClientError::Decode(error.to_string()));
                return outcome;
            }
        }
    }
    if plan.delete {
        let options = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: uid,
            ..DeleteOptions::default()
        };
        match client.delete(scope, &name, &options).await {
            Ok(_) => outcome.gone = true,
            Err(error) if error.is_not_found() => outcome.gone = true,
            Err(error) => outcome.error = Some(error),
        }
    }
    outcome
}

/// Pod conditions carry `lastProbeTime: null` in Kubernetes' JSON; typed conditions drop it.
fn spell_out_probe_times(pod: &mut Value) {
    if let Some(conditions) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for condition in conditions {
            if let Some(map) = condition.as_object_mut() {
                map.entry("lastProbeTime").or_insert(Value::Null);
            }
        }
    }
}

fn key_of(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

fn revision(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The monotonic instant of a wall-clock moment, a millisecond late so the planner sees it
/// as reached.
fn instant_of(at: Timestamp, now: Timestamp) -> Instant {
    let ahead = at.duration_since(now);
    let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
    Instant::now() + ahead + Duration::from_millis(1)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
