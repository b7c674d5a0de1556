//! What a pod asks of a node and what a node offers, in comparable numbers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::quantity;

/// The CPU a container without a CPU request is counted as when scoring (not when filtering).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request is counted as when scoring.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource: millicores for CPU, bytes for memory and storage, counts for
/// extended resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `cpu`, in millicores.
    pub milli_cpu: i64,
    /// `memory`, in bytes.
    pub memory: i64,
    /// `ephemeral-storage`, in bytes.
    pub ephemeral_storage: i64,
    /// Extended resources, hugepages and the like, by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list (`requests`, `allocatable`, `overhead`). Quantities the API server
    /// would have refused count as zero rather than failing the whole pod.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut out = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            match name.as_str() {
                "cpu" => out.milli_cpu = quantity::parse_milli(&q.0).unwrap_or(0),
                "memory" => out.memory = quantity::parse_value(&q.0).unwrap_or(0),
                "ephemeral-storage" => {
                    out.ephemeral_storage = quantity::parse_value(&q.0).unwrap_or(0)
                }
                // The pod count is not something a pod requests.
                "pods" => {}
                other => {
                    out.scalar
                        .insert(other.to_string(), quantity::parse_value(&q.0).unwrap_or(0));
                }
            }
        }
        out
    }

    /// Whether nothing at all is asked for.
    pub fn is_empty(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }

    /// Adds `other` to `self`, resource by resource.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_insert(0);
            *slot = slot.saturating_add(*v);
        }
    }

    /// Raises each resource of `self` to at least its amount in `other`.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_insert(0);
            *slot = (*slot).max(*v);
        }
    }
}

fn container_requests(c: &Container, fill_missing: bool) -> Resources {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_list(list);
    if fill_missing {
        let has = |name: &str| list.is_some_and(|l| l.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The resources a pod needs on a node: its containers together, or more if an init container
/// (plus the sidecars started before it) needs more, plus the pod overhead.
///
/// With `fill_missing`, containers that name no CPU or memory request count as
/// [`DEFAULT_MILLI_CPU_REQUEST`] / [`DEFAULT_MEMORY_REQUEST`], as scoring does so that
/// best-effort pods still spread.
pub fn pod_requests(pod: &Pod, fill_missing: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, fill_missing));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c, fill_missing);
        let is_sidecar = c.restart_policy.as_deref() == Some("Always");
        let peak = if is_sidecar {
            sidecars.add(&own);
            sidecars.clone()
        } else {
            let mut p = own;
            p.add(&sidecars);
            p
        };
        init_peak.max_with(&peak);
    }
    total.add(&sidecars);
    total.max_with(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add(&Resources::from_list(Some(overhead)));
    }
    total
}

/// What a node offers pods: its allocatable resources and how many pods it may run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocatable {
    /// Allocatable resources.
    pub resources: Resources,
    /// Allocatable `pods`.
    pub pods: i64,
}

/// The node's `status.allocatable` (a node that reports none can run nothing).
pub fn node_allocatable(node: &Node) -> Allocatable {
    let list = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    Allocatable {
        resources: Resources::from_list(list),
        pods: list
            .and_then(|l| l.get("pods"))
            .and_then(|q| quantity::parse_value(&q.0))
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn c(name: &str, requests: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": requests}})
    }

    #[test]
    fn pod_requests_follow_the_init_container_and_overhead_rules() {
        let cases = [
            (
                "containers add up",
                json!({"containers": [c("a", json!({"cpu": "100m", "memory": "64Mi"})), c("b", json!({"cpu": "0.5"}))]}),
                (600, 64 << 20),
            ),
            (
                "an init container needing more raises the total",
                json!({"initContainers": [c("i", json!({"cpu": "2"}))], "containers": [c("a", json!({"cpu": "1", "memory": "1Gi"}))]}),
                (2000, 1 << 30),
            ),
            (
                "an init container needing less does not add",
                json!({"initContainers": [c("i", json!({"cpu": "500m", "memory": "2Gi"}))], "containers": [c("a", json!({"cpu": "1"}))]}),
                (1000, 2 << 30),
            ),
            (
                "sidecars run beside later init containers and the app",
                json!({"initContainers": [
                    {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                    c("i", json!({"cpu": "1"}))
                ], "containers": [c("a", json!({"cpu": "300m"}))]}),
                (1200, 0),
            ),
            (
                "overhead is added",
                json!({"containers": [c("a", json!({"cpu": "100m"}))], "overhead": {"cpu": "50m", "memory": "10Mi"}}),
                (150, 10 << 20),
            ),
        ];
        for (name, spec, (cpu, mem)) in cases {
            let r = pod_requests(&pod(spec), false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
        }
    }

    #[test]
    fn scoring_counts_missing_requests_as_defaults() {
        let p = pod(json!({"containers": [{"name": "a"}, c("b", json!({"cpu": "0"}))]}));
        let r = pod_requests(&p, true);
        assert_eq!(r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&p, false).is_empty());
    }

    #[test]
    fn allocatable_reads_pods_and_extended_resources() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "example.com/gpu": "2"}}
        }))
        .unwrap();
        let a = node_allocatable(&node);
        assert_eq!(a.pods, 110);
        assert_eq!(a.resources.milli_cpu, 4000);
        assert_eq!(a.resources.memory, 8 << 30);
        assert_eq!(a.resources.scalar["example.com/gpu"], 2);
    }
}
