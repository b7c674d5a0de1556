//! Scripted resource usage of pods on simulated nodes, for `metrics.k8s.io`.
//!
//! Simulated pods run nothing, so their usage is what their annotations say:
//! [`CPU_USAGE_ANNOTATION`] (a CPU quantity such as `250m`, the whole pod's use, split evenly
//! across its containers) and [`MEMORY_USAGE_ANNOTATION`] (e.g. `64Mi`). A missing or
//! unparsable annotation means no use; the pod is reported all the same, as an idle pod would
//! be. Sampling works as for the real node ([`crate::metrics`]): every resolution the
//! annotations are read again, so a changed annotation shows from the next sample on, and a pod
//! is reported once it has been sampled twice while running, with the time between the two as
//! its window.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde_json::{Map, Value};
use skiff_api::quantity;
use skiff_api::resources;
use skiff_client::metrics::{ContainerUsage, NodeUsage, PodUsage, ResourceMetrics};
use skiff_client::{Client, ClientError};
use skiff_runtime::{Informer, InformerConfig};

use crate::metrics::{spawn_sampler, Sampler};

/// The pod's total CPU use, as a CPU quantity (`250m`, `1.5`).
pub const CPU_USAGE_ANNOTATION: &str = "sim.skiff.dev/cpu-usage";
/// The pod's total working-set memory, as a quantity (`64Mi`).
pub const MEMORY_USAGE_ANNOTATION: &str = "sim.skiff.dev/memory-usage";

/// The usage a pod's annotations script.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptedUsage {
    /// CPU in nanocores.
    pub cpu_nanocores: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

/// Reads [`CPU_USAGE_ANNOTATION`] and [`MEMORY_USAGE_ANNOTATION`]; what is missing, negative
/// or not a quantity counts as zero.
pub fn scripted_usage(annotations: Option<&Map<String, Value>>) -> ScriptedUsage {
    let read = |key: &str| -> Option<quantity::Quantity> {
        let text = annotations?.get(key)?.as_str()?;
        match quantity::Quantity::parse(text) {
            Ok(q) => Some(q),
            Err(error) => {
                tracing::debug!(annotation = key, value = text, %error, "ignoring a usage annotation");
                None
            }
        }
    };
    let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
    ScriptedUsage {
        cpu_nanocores: read(CPU_USAGE_ANNOTATION)
            .map(|q| non_negative(q.milli_value()).saturating_mul(1_000_000))
            .unwrap_or(0),
        memory_bytes: read(MEMORY_USAGE_ANNOTATION)
            .map(|q| non_negative(q.value()))
            .unwrap_or(0),
    }
}

/// Splits a pod's usage evenly across its containers, the first ones taking the remainder so
/// the parts add up to the whole.
pub fn split_evenly(total: ScriptedUsage, containers: &[String]) -> Vec<ContainerUsage> {
    let count = containers.len() as u64;
    if count == 0 {
        return Vec::new();
    }
    let share = |value: u64, index: u64| value / count + u64::from(index < value % count);
    containers
        .iter()
        .enumerate()
        .map(|(i, name)| ContainerUsage {
            name: name.clone(),
            cpu_nanocores: share(total.cpu_nanocores, i as u64),
            memory_bytes: share(total.memory_bytes, i as u64),
        })
        .collect()
}

/// The last two sample times of a pod or node, with the usage its last sample read.
///
/// The scripted rate holds from one sample to the next, so the mean over the window is simply
/// the rate read at its end; no cumulative counter (and no rounding) is needed.
#[derive(Clone, Copy, Debug)]
struct Reading {
    previous: Option<Instant>,
    taken: Instant,
    at: SystemTime,
    usage: ScriptedUsage,
}

impl Reading {
    fn first(taken: Instant, at: SystemTime, usage: ScriptedUsage) -> Reading {
        Reading {
            previous: None,
            taken,
            at,
            usage,
        }
    }

    fn next(&mut self, taken: Instant, at: SystemTime, usage: ScriptedUsage) {
        self.previous = Some(self.taken).filter(|p| *p < taken);
        self.taken = taken;
        self.at = at;
        self.usage = usage;
    }

    /// `(timestamp, window)` once two samples were taken.
    fn window(&self) -> Option<(SystemTime, Duration)> {
        let window = self.taken.checked_duration_since(self.previous?)?;
        Some((self.at, window))
    }
}

/// One sampled pod.
#[derive(Debug)]
struct SimulatedPod {
    namespace: String,
    name: String,
    containers: Vec<String>,
    reading: Reading,
}

#[derive(Debug, Default)]
struct SimulatedState {
    pods: HashMap<String, SimulatedPod>,
    nodes: HashMap<String, Reading>,
}

/// Usage of the simulated nodes and their pods.
pub struct SimulatedMetrics {
    nodes: HashSet<String>,
    informer: Option<Informer>,
    state: Mutex<SimulatedState>,
}

impl SimulatedMetrics {
    /// A source for `nodes` whose samples come only from [`SimulatedMetrics::sample_pods`].
    pub fn new(nodes: impl IntoIterator<Item = String>) -> SimulatedMetrics {
        SimulatedMetrics {
            nodes: nodes.into_iter().collect(),
            informer: None,
            state: Mutex::new(SimulatedState::default()),
        }
    }

    /// Watches the pods bound to `nodes` through `client` and samples them every `resolution`
    /// (needs a Tokio runtime); sampling stops when the returned source is dropped.
    pub fn start(
        client: Arc<dyn Client>,
        nodes: impl IntoIterator<Item = String>,
        resolution: Duration,
    ) -> Result<Arc<SimulatedMetrics>, ClientError> {
        let pods = resources::find("", "v1", "pods")
            .ok_or_else(|| ClientError::UnknownResource("v1/pods".to_string()))?;
        let informer = Informer::start(client, InformerConfig::new(pods).fields("spec.nodeName!="));
        let source = Arc::new(SimulatedMetrics {
            informer: Some(informer),
            ..SimulatedMetrics::new(nodes)
        });
        spawn_sampler(&source, resolution);
        Ok(source)
    }

    /// Takes one sample of `pods` (pod objects; those not running on one of this source's
    /// nodes are skipped) as of `at`/`taken`.
    pub fn sample_pods(&self, pods: &[Arc<Value>], at: SystemTime, taken: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let mut seen = HashSet::new();
        let mut node_totals: HashMap<&str, ScriptedUsage> = self
            .nodes
            .iter()
            .map(|n| (n.as_str(), ScriptedUsage::default()))
            .collect();
        for pod in pods {
            let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
                continue;
            };
            let Some(total) = node_totals.get_mut(node) else {
                continue;
            };
            if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
                continue;
            }
            let Some(uid) = pod.pointer("/metadata/uid").and_then(Value::as_str) else {
                continue;
            };
            let usage = scripted_usage(
                pod.pointer("/metadata/annotations")
                    .and_then(Value::as_object),
            );
            total.cpu_nanocores = total.cpu_nanocores.saturating_add(usage.cpu_nanocores);
            total.memory_bytes = total.memory_bytes.saturating_add(usage.memory_bytes);
            seen.insert(uid.to_string());
            let text = |pointer: &str| {
                pod.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let containers: Vec<String> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            match state.pods.get_mut(uid) {
                Some(entry) => {
                    entry.containers = containers;
                    entry.reading.next(taken, at, usage);
                }
                None => {
                    state.pods.insert(
                        uid.to_string(),
                        SimulatedPod {
                            namespace: text("/metadata/namespace"),
                            name: text("/metadata/name"),
                            containers,
                            reading: Reading::first(taken, at, usage),
                        },
                    );
                }
            }
        }
        state.pods.retain(|uid, _| seen.contains(uid));
        for (node, total) in node_totals {
            match state.nodes.get_mut(node) {
                Some(reading) => reading.next(taken, at, total),
                None => {
                    state
                        .nodes
                        .insert(node.to_string(), Reading::first(taken, at, total));
                }
            }
        }
    }
}

impl Sampler for SimulatedMetrics {
    fn sample(&self) {
        let Some(informer) = &self.informer else {
            return;
        };
        if !informer.has_synced() {
            return;
        }
        self.sample_pods(&informer.list(), SystemTime::now(), Instant::now());
    }
}

#[async_trait]
impl ResourceMetrics for SimulatedMetrics {
    async fn pods(&self) -> Vec<PodUsage> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut out: Vec<PodUsage> = state
            .pods
            .values()
            .filter_map(|pod| {
                let (timestamp, window) = pod.reading.window()?;
                Some(PodUsage {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    timestamp,
                    window,
                    containers: split_evenly(pod.reading.usage, &pod.containers),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    async fn nodes(&self) -> Vec<NodeUsage> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut out: Vec<NodeUsage> = state
            .nodes
            .iter()
            .filter_map(|(name, reading)| {
                let (timestamp, window) = reading.window()?;
                Some(NodeUsage {
                    name: name.clone(),
                    timestamp,
                    window,
                    cpu_nanocores: reading.usage.cpu_nanocores,
                    memory_bytes: reading.usage.memory_bytes,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotations(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    }

    #[test]
    fn annotations_script_cpu_and_memory() {
        type Annotations<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Annotations, u64, u64)> = vec![
            (vec![], 0, 0),
            (vec![(CPU_USAGE_ANNOTATION, "250m")], 250_000_000, 0),
            (vec![(CPU_USAGE_ANNOTATION, "1.5")], 1_500_000_000, 0),
            (vec![(CPU_USAGE_ANNOTATION, "2")], 2_000_000_000, 0),
            (vec![(MEMORY_USAGE_ANNOTATION, "64Mi")], 0, 64 << 20),
            (vec![(MEMORY_USAGE_ANNOTATION, "1G")], 0, 1_000_000_000),
            (
                vec![
                    (CPU_USAGE_ANNOTATION, "lots"),
                    (MEMORY_USAGE_ANNOTATION, "-5Mi"),
                ],
                0,
                0,
            ),
        ];
        for (pairs, cpu, memory) in cases {
            let map = annotations(&pairs);
            assert_eq!(
                scripted_usage(Some(&map)),
                ScriptedUsage {
                    cpu_nanocores: cpu,
                    memory_bytes: memory
                },
                "{pairs:?}"
            );
        }
        assert_eq!(scripted_usage(None), ScriptedUsage::default());
    }

    #[test]
    fn usage_splits_evenly_and_adds_up() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let parts = split_evenly(
            ScriptedUsage {
                cpu_nanocores: 100,
                memory_bytes: 3,
            },
            &names,
        );
        let cpu: Vec<u64> = parts.iter().map(|p| p.cpu_nanocores).collect();
        let memory: Vec<u64> = parts.iter().map(|p| p.memory_bytes).collect();
        assert_eq!(cpu, [34, 33, 33]);
        assert_eq!(memory, [1, 1, 1]);
        assert!(split_evenly(ScriptedUsage::default(), &[]).is_empty());
    }

    fn pod(name: &str, node: &str, phase: &str, cpu: Option<&str>) -> Arc<Value> {
        let mut annotations = Map::new();
        if let Some(cpu) = cpu {
            annotations.insert(CPU_USAGE_ANNOTATION.to_string(), json!(cpu));
        }
        annotations.insert(MEMORY_USAGE_ANNOTATION.to_string(), json!("64Mi"));
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "annotations": annotations},
            "spec": {"nodeName": node, "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"phase": phase},
        }))
    }

    fn cpu_of(pods: &[PodUsage], name: &str) -> Option<u64> {
        pods.iter()
            .find(|p| p.name == name)
            .map(|p| p.containers.iter().map(|c| c.cpu_nanocores).sum())
    }

    #[tokio::test]
    async fn pods_report_their_scripted_rate_from_the_second_sample_on() {
        let metrics = SimulatedMetrics::new(["sim-1".to_string(), "sim-2".to_string()]);
        let at = SystemTime::now();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let pods = vec![
            pod("busy", "sim-1", "Running", Some("500m")),
            pod("idle", "sim-1", "Running", None),
            pod("pending", "sim-1", "Pending", Some("1")),
            pod("elsewhere", "real-node", "Running", Some("1")),
        ];
        metrics.sample_pods(&pods, at, start);
        assert!(metrics.pods().await.is_empty());
        metrics.sample_pods(&pods, at + 5 * second, start + 5 * second);
        let reported = metrics.pods().await;
        let names: Vec<&str> = reported.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["busy", "idle"]);
        assert_eq!(cpu_of(&reported, "busy"), Some(500_000_000));
        assert_eq!(cpu_of(&reported, "idle"), Some(0));
        let busy = reported.iter().find(|p| p.name == "busy").unwrap();
        assert_eq!(busy.window, 5 * second);
        assert_eq!(busy.containers.len(), 2);
        assert_eq!(busy.containers[0].cpu_nanocores, 250_000_000);
        assert_eq!(busy.containers[1].memory_bytes, 32 << 20);

        let nodes = metrics.nodes().await;
        let summary: Vec<(&str, u64, u64)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.cpu_nanocores, n.memory_bytes))
            .collect();
        assert_eq!(
            summary,
            [("sim-1", 500_000_000, 128 << 20), ("sim-2", 0, 0)]
        );

        // A changed annotation shows from the next sample on, without a restart.
        let changed = vec![pod("busy", "sim-1", "Running", Some("1200m"))];
        metrics.sample_pods(&changed, at + 10 * second, start + 10 * second);
        let reported = metrics.pods().await;
        assert_eq!(cpu_of(&reported, "busy"), Some(1_200_000_000));
        assert_eq!(cpu_of(&reported, "idle"), None, "gone pods are forgotten");
        assert_eq!(metrics.nodes().await[0].cpu_nanocores, 1_200_000_000);
    }

    #[tokio::test]
    async fn a_pod_that_starts_running_waits_for_a_second_sample() {
        let metrics = SimulatedMetrics::new(["sim-1".to_string()]);
        let at = SystemTime::now();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        metrics.sample_pods(&[pod("web", "sim-1", "Pending", Some("1"))], at, start);
        metrics.sample_pods(
            &[pod("web", "sim-1", "Running", Some("1"))],
            at + second,
            start + second,
        );
        assert!(metrics.pods().await.is_empty());
        metrics.sample_pods(
            &[pod("web", "sim-1", "Running", Some("1"))],
            at + 2 * second,
            start + 2 * second,
        );
        assert_eq!(cpu_of(&metrics.pods().await, "web"), Some(1_000_000_000));
    }
}
