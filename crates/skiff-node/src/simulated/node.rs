//! The Node and Lease objects a simulated kubelet reports, as pure functions of the node's
//! identity, its configuration and the time.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};

use super::duration::whole_seconds;
use super::ipam::{node_address, pod_range};
use super::NodeCapacity;

/// The label every simulated node carries, so they can be selected (or avoided).
pub const SIMULATED_NODE_LABEL: &str = "skiff.dev/simulated";
/// Annotation on a simulated node's Node: with the value `"true"` the node stops renewing its
/// Lease and reporting status, as a machine that lost its network would, until the annotation
/// goes. A testing knob of the simulation only: real nodes ignore it.
pub const HEARTBEAT_STOPPED_ANNOTATION: &str = "sim.skiff.dev/heartbeat-stopped";

/// Whether the Node asks its simulated kubelet to go silent.
pub fn heartbeat_stopped(node: &Node) -> bool {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HEARTBEAT_STOPPED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether the Node's Ready condition says what a live simulated kubelet reports (`True`);
/// when it does not (the node lifecycle controller marked it `Unknown`), the kubelet reports
/// again at once, as kubelet does when its status differs from the stored one.
pub fn reported_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The namespace of node heartbeats.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// kubelet's default `nodeLeaseDurationSeconds`, for the default heartbeat of 10 s.
const LEASE_TO_HEARTBEAT: u32 = 4;

/// One simulated node's identity, fixed by its position so a restarted agent reports the same
/// node with the same addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedNode {
    /// The Node's name (and its hostname).
    pub name: String,
    /// Its position, from 1.
    pub index: u32,
    /// Its `InternalIP`.
    pub internal_ip: Ipv4Addr,
    /// Its pod range: network address and prefix length.
    pub pod_cidr: (Ipv4Addr, u8),
}

impl SimulatedNode {
    /// Node `index` (from 1) of the nodes named `{prefix}{index}`.
    pub fn new(prefix: &str, index: u32) -> SimulatedNode {
        SimulatedNode {
            name: format!("{prefix}{index}"),
            index,
            internal_ip: node_address(index),
            pod_cidr: pod_range(index),
        }
    }

    /// The pod range in CIDR notation.
    pub fn pod_cidr_string(&self) -> String {
        format!("{}/{}", self.pod_cidr.0, self.pod_cidr.1)
    }
}

/// What the simulated node reports about its software.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSoftware {
    /// `nodeInfo.kubeletVersion`.
    pub kubelet_version: String,
    /// `nodeInfo.architecture` and the `kubernetes.io/arch` label, in Go's spelling.
    pub architecture: String,
}

impl Default for NodeSoftware {
    fn default() -> Self {
        NodeSoftware {
            kubelet_version: "v1.36.0".to_string(),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
        }
    }
}

/// Go's name (`GOARCH`) for a Rust target architecture.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The Node to register: labels as kubelet sets them, the pod range, and a fresh status.
pub fn node_object(
    node: &SimulatedNode,
    capacity: &NodeCapacity,
    software: &NodeSoftware,
    now: Timestamp,
) -> Node {
    let labels: BTreeMap<String, String> = [
        ("beta.kubernetes.io/arch", software.architecture.as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", software.architecture.as_str()),
        ("kubernetes.io/hostname", node.name.as_str()),
        ("kubernetes.io/os", "linux"),
        (SIMULATED_NODE_LABEL, "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations = BTreeMap::from([(
        "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
        "true".to_string(),
    )]);
    Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(node.pod_cidr_string()),
            pod_cidrs: Some(vec![node.pod_cidr_string()]),
            ..NodeSpec::default()
        }),
        status: Some(node_status(node, capacity, software, None, now)),
    }
}

/// The node's status: resources, addresses, software, and refreshed conditions (see
/// [`node_conditions`]); `previous` is the status the API holds, if any.
pub fn node_status(
    node: &SimulatedNode,
    capacity: &NodeCapacity,
    software: &NodeSoftware,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", capacity.cpu.clone()),
        ("ephemeral-storage", capacity.ephemeral_storage.clone()),
        ("hugepages-1Gi", "0".to_string()),
        ("hugepages-2Mi", "0".to_string()),
        ("memory", capacity.memory.clone()),
        ("pods", capacity.pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    let previous_conditions = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    NodeStatus {
        capacity: Some(resources.clone()),
        // Nothing is reserved for system daemons on a node that runs none.
        allocatable: Some(resources),
        conditions: Some(node_conditions(previous_conditions, now)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: node.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: node.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: software.architecture.clone(),
            boot_id: uuid_like(&format!("boot/{}", node.name)),
            container_runtime_version: format!("skiff-sim://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: "simulated".to_string(),
            kube_proxy_version: String::new(),
            kubelet_version: software.kubelet_version.clone(),
            machine_id: hex32(&format!("machine/{}", node.name)),
            operating_system: "linux".to_string(),
            os_image: "Skiff simulated node".to_string(),
            system_uuid: uuid_like(&format!("system/{}", node.name)),
            ..NodeSystemInfo::default()
        }),
        // Images, volumes and runtime handlers: a simulated node has none to report.
        ..previous.cloned().unwrap_or_default()
    }
}

/// The conditions kubelet owns, healthy, with `lastHeartbeatTime` now; a condition keeps its
/// `lastTransitionTime` while its status stays. Conditions others set (the node lifecycle
/// controller's, say) follow unchanged.
pub fn node_conditions(previous: &[NodeCondition], now: Timestamp) -> Vec<NodeCondition> {
    const OWNED: [(&str, &str, &str, &str); 4] = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    let now = Time(whole_seconds(now));
    let mut out: Vec<NodeCondition> = OWNED
        .iter()
        .map(|(type_, status, reason, message)| {
            let before = previous.iter().find(|c| c.type_ == *type_);
            let last_transition_time = match before {
                Some(c) if c.status == *status && c.last_transition_time.is_some() => {
                    c.last_transition_time.clone()
                }
                _ => Some(now.clone()),
            };
            NodeCondition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time,
            }
        })
        .collect();
    out.extend(
        previous
            .iter()
            .filter(|c| !OWNED.iter().any(|(t, ..)| *t == c.type_))
            .cloned(),
    );
    out
}

/// How long a node's lease lasts without renewal, for a heartbeat interval: four heartbeats,
/// as kubelet's 40 s lease is renewed every 10 s.
pub fn lease_duration_seconds(heartbeat: std::time::Duration) -> i32 {
    let seconds = heartbeat.as_secs_f64() * f64::from(LEASE_TO_HEARTBEAT);
    (seconds.ceil() as i64).clamp(1, i64::from(i32::MAX)) as i32
}

/// The node's Lease in `kube-node-lease`, renewed `now`, owned by the Node so it goes with it.
pub fn lease_object(
    node_name: &str,
    node_uid: Option<&str>,
    duration_seconds: i32,
    now: Timestamp,
) -> Lease {
    let owner_references = node_uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".to_string(),
            kind: "Node".to_string(),
            name: node_name.to_string(),
            uid: uid.to_string(),
            ..OwnerReference::default()
        }]
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(NODE_LEASE_NAMESPACE.to_string()),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node_name.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// 32 hex digits derived from `seed`, shaped like a machine ID.
fn hex32(seed: &str) -> String {
    let a = fnv1a(seed.as_bytes(), 0x51);
    let b = fnv1a(seed.as_bytes(), 0x52);
    format!("{a:016x}{b:016x}")
}

/// A UUID-shaped identifier derived from `seed`.
fn uuid_like(seed: &str) -> String {
    let h = hex32(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use serde_json::json;

    fn t(offset: i64) -> Timestamp {
        "2024-05-01T10:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_secs(offset)
    }

    fn software() -> NodeSoftware {
        NodeSoftware {
            kubelet_version: "v1.36.0".into(),
            architecture: "amd64".into(),
        }
    }

    #[test]
    fn registered_nodes_look_like_kubelet_nodes() {
        let node = SimulatedNode::new("sim-node-", 2);
        let object = node_object(&node, &NodeCapacity::default(), &software(), t(0));
        let v = serde_json::to_value(&object).unwrap();
        assert_eq!(v["metadata"]["name"], "sim-node-2");
        assert_eq!(
            v["metadata"]["labels"],
            json!({"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "sim-node-2",
                   "kubernetes.io/os": "linux", "skiff.dev/simulated": "true"})
        );
        assert_eq!(
            v["spec"],
            json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]})
        );
        let status = &v["status"];
        assert_eq!(
            status["capacity"],
            json!({"cpu": "4", "ephemeral-storage": "100Gi", "hugepages-1Gi": "0",
                   "hugepages-2Mi": "0", "memory": "8Gi", "pods": "110"})
        );
        assert_eq!(status["allocatable"], status["capacity"]);
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "127.0.0.2"},
                   {"type": "Hostname", "address": "sim-node-2"}])
        );
        assert_eq!(
            status["daemonEndpoints"],
            json!({"kubeletEndpoint": {"Port": 10250}})
        );
        let info = &status["nodeInfo"];
        assert_eq!(info["kubeletVersion"], "v1.36.0");
        assert_eq!(info["operatingSystem"], "linux");
        assert_eq!(info["architecture"], "amd64");
        assert!(info["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("skiff-sim://"));
        assert_eq!(info["systemUUID"].as_str().unwrap().len(), 36);
        assert_eq!(info["machineID"].as_str().unwrap().len(), 32);
        assert_eq!(
            status["conditions"][3],
            json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                   "message": "kubelet is posting ready status",
                   "lastHeartbeatTime": "2024-05-01T10:00:00Z",
                   "lastTransitionTime": "2024-05-01T10:00:00Z"})
        );
    }

    #[test]
    fn heartbeats_move_only_the_heartbeat_time() {
        let first = node_conditions(&[], t(0));
        let types: Vec<(&str, &str, Option<&str>)> = first
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()))
            .collect();
        assert_eq!(
            types,
            vec![
                (
                    "MemoryPressure",
                    "False",
                    Some("KubeletHasSufficientMemory")
                ),
                ("DiskPressure", "False", Some("KubeletHasNoDiskPressure")),
                ("PIDPressure", "False", Some("KubeletHasSufficientPID")),
                ("Ready", "True", Some("KubeletReady")),
            ]
        );
        let later = node_conditions(&first, t(10));
        for c in &later {
            assert_eq!(c.last_heartbeat_time, Some(Time(t(10))));
            assert_eq!(c.last_transition_time, Some(Time(t(0))), "{}", c.type_);
        }
    }

    #[test]
    fn a_node_marked_unknown_becomes_ready_again_with_a_new_transition() {
        let mut stale = node_conditions(&[], t(0));
        stale[3].status = "Unknown".into();
        stale[3].reason = Some("NodeStatusUnknown".into());
        stale.push(NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: "False".into(),
            ..NodeCondition::default()
        });
        let fresh = node_conditions(&stale, t(60));
        assert_eq!(fresh[3].status, "True");
        assert_eq!(fresh[3].last_transition_time, Some(Time(t(60))));
        assert_eq!(fresh[0].last_transition_time, Some(Time(t(0))));
        assert_eq!(
            fresh[4].type_, "NetworkUnavailable",
            "others' conditions are kept"
        );
    }

    #[test]
    fn leases_are_owned_by_their_node_and_last_four_heartbeats() {
        let lease = lease_object("sim-node-1", Some("uid-7"), 40, t(0));
        let v = serde_json::to_value(&lease).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "sim-node-1", "namespace": "kube-node-lease",
                       "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                           "name": "sim-node-1", "uid": "uid-7"}]},
                   "spec": {"holderIdentity": "sim-node-1", "leaseDurationSeconds": 40,
                            "renewTime": "2024-05-01T10:00:00.000000Z"}})
        );
        assert_eq!(
            lease_duration_seconds(std::time::Duration::from_secs(10)),
            40
        );
        assert_eq!(
            lease_duration_seconds(std::time::Duration::from_millis(100)),
            1
        );
    }

    #[test]
    fn rust_architectures_map_to_go_names() {
        for (rust, go) in [
            ("x86_64", "amd64"),
            ("aarch64", "arm64"),
            ("riscv64", "riscv64"),
        ] {
            assert_eq!(go_arch(rust), go);
        }
    }

    #[test]
    fn the_heartbeat_annotation_silences_a_node_and_an_unknown_ready_calls_for_a_report() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "sim-node-1", "annotations": {HEARTBEAT_STOPPED_ANNOTATION: "true"}},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        }))
        .expect("a node");
        assert!(heartbeat_stopped(&node));
        assert!(!reported_ready(&node));
        let live: Node = serde_json::from_value(json!({
            "metadata": {"name": "sim-node-1", "annotations": {HEARTBEAT_STOPPED_ANNOTATION: "false"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .expect("a node");
        assert!(!heartbeat_stopped(&live));
        assert!(reported_ready(&live));
    }
}
