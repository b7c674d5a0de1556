//! kube-controller-manager's node lifecycle controller, as pure planners: whether a node's
//! kubelet still reports (its Lease and its Ready heartbeat), the conditions and taints that
//! follow, the zones' disruption states that decide whether NoExecute taints may be added,
//! and the per-zone rate at which they are. [`taint_eviction`] then decides which pods on a
//! NoExecute-tainted node go, and when; [`controller`] is the shell that applies both.

pub mod controller;
pub mod taint_eviction;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The taint of a node whose Ready condition is `Unknown`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose Ready condition is `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a cordoned node (`spec.unschedulable`).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node reporting `MemoryPressure`.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The taint of a node reporting `DiskPressure`.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The taint of a node reporting `PIDPressure`.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The taint of a node reporting `NetworkUnavailable`.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Reason of a condition the controller turned `Unknown`.
pub const REASON_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// Message of a condition the controller turned `Unknown`.
pub const MESSAGE_STATUS_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// Reason of a condition the kubelet never reported.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
/// Message of a condition the kubelet never reported.
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// The conditions the controller turns `Unknown` when the kubelet goes silent, in order.
const MONITORED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The NoSchedule taints conditions imply (kube-controller-manager's taint-by-condition map):
/// condition type, the status that taints, the taint key.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_PID_PRESSURE),
];

/// The NoSchedule taint keys this controller owns: it adds and removes only these.
const MANAGED_NO_SCHEDULE: [&str; 7] = [
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_PID_PRESSURE,
    TAINT_UNSCHEDULABLE,
];

/// The controller's settings, with kube-controller-manager's flag names and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleConfig {
    /// `--node-monitor-grace-period` (50 s since Kubernetes 1.32): how long a node may go
    /// without renewing its Lease or Ready heartbeat before it is `Unknown`.
    pub grace_period: SignedDuration,
    /// `--node-startup-grace-period` (60 s): the same for a node that never reported Ready.
    pub startup_grace_period: SignedDuration,
    /// `--node-eviction-rate` (0.1): nodes per second that may get a NoExecute taint, per zone.
    pub eviction_rate: f64,
    /// `--secondary-node-eviction-rate` (0.01): the rate in a partially disrupted large zone.
    pub secondary_eviction_rate: f64,
    /// `--large-cluster-size-threshold` (50): zones above it keep the secondary rate when
    /// partially disrupted; smaller ones stop tainting.
    pub large_cluster_size_threshold: usize,
    /// `--unhealthy-zone-threshold` (0.55): the share of unready nodes (at least three) that
    /// makes a zone partially disrupted.
    pub unhealthy_zone_threshold: f64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            grace_period: SignedDuration::from_secs(50),
            startup_grace_period: SignedDuration::from_secs(60),
            eviction_rate: 0.1,
            secondary_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// The status of the node's Ready condition, `None` when it has none.
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// When the node was last heard from: the latest of its Lease's renewal, its Ready
/// condition's heartbeat, its creation and `watching_since`, when the controller started
/// watching. (kube-controller-manager stamps its own clock when it first sees a node and
/// whenever either time changes, to bear clock skew between machines; Skiff's nodes share the
/// server's clock, so the recorded times serve, and counting from the controller's start gives
/// every node a full grace period after a restart, as upstream's first observation does.)
pub fn last_heard(
    node: &Node,
    lease_renewed: Option<Timestamp>,
    watching_since: Timestamp,
) -> Timestamp {
    let heartbeat = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [heartbeat, lease_renewed, created]
        .into_iter()
        .flatten()
        .fold(watching_since, Timestamp::max)
}

/// The node's conditions after a health check at `now`, or `None` when they stay as they are:
/// once the grace period has passed since the node was last heard from (see [`last_heard`]), every monitored
/// condition that is not already `Unknown` becomes `Unknown` ("Kubelet stopped posting node
/// status."), and a monitored condition the node never reported is added as `Unknown`
/// ("Kubelet never posted node status.").
pub fn plan_conditions(
    node: &Node,
    lease_renewed: Option<Timestamp>,
    watching_since: Timestamp,
    now: Timestamp,
    config: &LifecycleConfig,
) -> Option<Vec<NodeCondition>> {
    let grace = if condition(node, "Ready").is_some() {
        config.grace_period
    } else {
        config.startup_grace_period
    };
    let heard = last_heard(node, lease_renewed, watching_since);
    let deadline = heard.checked_add(grace).ok()?;
    if now <= deadline {
        return None;
    }
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for kind in MONITORED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".to_string();
                c.reason = Some(REASON_STATUS_UNKNOWN.to_string());
                c.message = Some(MESSAGE_STATUS_UNKNOWN.to_string());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: kind.to_string(),
                    status: "Unknown".to_string(),
                    reason: Some(REASON_NEVER_UPDATED.to_string()),
                    message: Some(MESSAGE_NEVER_UPDATED.to_string()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The NoExecute taint the node's Ready condition calls for: `unreachable` when `Unknown`,
/// `not-ready` when `False`, none when `True` (or absent).
pub fn wanted_no_execute(node: &Node) -> Option<&'static str> {
    match ready_status(node) {
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        Some("False") => Some(TAINT_NOT_READY),
        _ => None,
    }
}

fn is_controller_no_execute(taint: &Taint) -> bool {
    taint.effect == "NoExecute" && (taint.key == TAINT_UNREACHABLE || taint.key == TAINT_NOT_READY)
}

/// What the taint pass decided for one node.
#[derive(Clone, Debug, PartialEq)]
pub struct TaintPlan {
    /// The node's new `spec.taints`, or `None` when they stay as they are.
    pub taints: Option<Vec<Taint>>,
    /// Whether a NoExecute taint was added to a node that had none of the controller's, which
    /// the zone's rate limiter must allow first.
    pub adds_no_execute: bool,
}

/// Whether the taint pass may add a NoExecute taint to a node that holds none of the
/// controller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoExecuteGate {
    /// The zone's rate limiter gave a token.
    Open,
    /// Not yet: existing NoExecute taints stay (and may be swapped), none is added.
    Closed,
    /// Every zone is fully disrupted: the controller's NoExecute taints are lifted.
    Lifted,
}

/// The node's taints after the taint pass at `now`: the NoSchedule taints its conditions and
/// `spec.unschedulable` imply (exactly those among the keys the controller owns), and the
/// NoExecute taint its Ready condition calls for, swapped at once when the other one is
/// there, added (stamped `timeAdded`) only through an open `gate`, removed at once when
/// the node is Ready again or the gate is lifted. Taints of other owners are kept as they are.
pub fn plan_taints(node: &Node, gate: NoExecuteGate, now: Timestamp) -> TaintPlan {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut wanted_no_schedule: Vec<&str> = CONDITION_TAINTS
        .iter()
        .filter(|(kind, status, _)| {
            condition(node, kind).is_some_and(|c| c.status.as_str() == *status)
        })
        .map(|(_, _, key)| *key)
        .collect();
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        wanted_no_schedule.push(TAINT_UNSCHEDULABLE);
    }
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let managed_no_schedule =
                t.effect == "NoSchedule" && MANAGED_NO_SCHEDULE.contains(&t.key.as_str());
            !managed_no_schedule || wanted_no_schedule.contains(&t.key.as_str())
        })
        .cloned()
        .collect();
    for key in wanted_no_schedule {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.to_string(),
                effect: "NoSchedule".to_string(),
                ..Taint::default()
            });
        }
    }

    let wanted = match gate {
        NoExecuteGate::Lifted => None,
        NoExecuteGate::Open | NoExecuteGate::Closed => wanted_no_execute(node),
    };
    let had_controller_no_execute = taints.iter().any(is_controller_no_execute);
    let mut adds_no_execute = false;
    match wanted {
        None => taints.retain(|t| !is_controller_no_execute(t)),
        Some(key) => {
            let present = taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoExecute");
            if !present && (had_controller_no_execute || gate == NoExecuteGate::Open) {
                taints.retain(|t| !is_controller_no_execute(t));
                taints.push(Taint {
                    key: key.to_string(),
                    effect: "NoExecute".to_string(),
                    time_added: Some(Time(now)),
                    value: None,
                });
                adds_no_execute = !had_controller_no_execute;
            }
        }
    }
    TaintPlan {
        taints: (taints != current).then_some(taints),
        adds_no_execute,
    }
}

/// Whether the node wants a NoExecute taint it does not have yet and holds none of the
/// controller's: the case the zone's rate limiter governs.
pub fn needs_new_no_execute(node: &Node) -> bool {
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    wanted_no_execute(node).is_some() && !taints.iter().any(is_controller_no_execute)
}

/// The zone a node belongs to, as kube-controller-manager keys it: region and zone labels
/// (the GA ones, else the beta ones); "" for a node without them.
pub fn zone_of(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let label = |ga: &str, beta: &str| {
        labels
            .and_then(|l| l.get(ga).or_else(|| l.get(beta)))
            .cloned()
            .unwrap_or_default()
    };
    let region = label(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = label(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\u{0}:{zone}")
    }
}

/// A zone's health, as kube-controller-manager's `ComputeZoneState` judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    /// Few enough nodes unready.
    Normal,
    /// At least three nodes and the unhealthy threshold's share of them unready.
    PartialDisruption,
    /// Every node unready.
    FullDisruption,
}

/// The state of a zone whose nodes' Ready statuses are `ready` (one flag per node).
pub fn zone_state(ready: &[bool], config: &LifecycleConfig) -> ZoneState {
    let not_ready = ready.iter().filter(|r| !**r).count();
    let ready_count = ready.len() - not_ready;
    if ready_count == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && not_ready as f64 / ready.len() as f64 >= config.unhealthy_zone_threshold
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// Every zone's state, from the nodes' conditions as the health check left them.
pub fn zone_states(nodes: &[Node], config: &LifecycleConfig) -> BTreeMap<String, ZoneState> {
    let mut ready: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for node in nodes {
        ready
            .entry(zone_of(node))
            .or_default()
            .push(ready_status(node) == Some("True"));
    }
    ready
        .into_iter()
        .map(|(zone, flags)| (zone, zone_state(&flags, config)))
        .collect()
}

/// How fast NoExecute taints may be added in each zone: kube-controller-manager's
/// `handleDisruption`. When every zone is fully disrupted the controller itself is probably
/// cut off, so nothing is tainted (and NoExecute taints are lifted); otherwise a normal or
/// fully disrupted zone gets the eviction rate, and a partially disrupted one the secondary
/// rate if large, else none.
pub fn zone_rates(
    states: &BTreeMap<String, ZoneState>,
    zone_sizes: &BTreeMap<String, usize>,
    config: &LifecycleConfig,
) -> ZoneRates {
    let all_fully_disrupted =
        !states.is_empty() && states.values().all(|s| *s == ZoneState::FullDisruption);
    if all_fully_disrupted {
        return ZoneRates {
            all_fully_disrupted,
            rates: states.keys().map(|z| (z.clone(), 0.0)).collect(),
        };
    }
    let rates = states
        .iter()
        .map(|(zone, state)| {
            let size = zone_sizes.get(zone).copied().unwrap_or(0);
            let rate = match state {
                ZoneState::Normal | ZoneState::FullDisruption => config.eviction_rate,
                ZoneState::PartialDisruption if size > config.large_cluster_size_threshold => {
                    config.secondary_eviction_rate
                }
                ZoneState::PartialDisruption => 0.0,
            };
            (zone.clone(), rate)
        })
        .collect();
    ZoneRates {
        all_fully_disrupted,
        rates,
    }
}

/// The result of [`zone_rates`].
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneRates {
    /// Every zone is fully disrupted: no NoExecute taint is added and the existing ones go.
    pub all_fully_disrupted: bool,
    /// Nodes per second that may get a NoExecute taint, per zone.
    pub rates: BTreeMap<String, f64>,
}

/// A token bucket with time passed in, as client-go's `TokenBucketRateLimiter` (burst 1 in
/// the node lifecycle controller): a token every `1/rate` seconds, at most `burst` saved.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Option<Timestamp>,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket {
            tokens: 1.0,
            last: None,
        }
    }
}

impl TokenBucket {
    /// Takes a token at `now` if one is there at `rate` per second; a rate of zero (or
    /// less, or not a number) never gives one.
    pub fn try_take(&mut self, now: Timestamp, rate: f64, burst: f64) -> bool {
        if rate.is_nan() || rate <= 0.0 {
            self.last = Some(now);
            return false;
        }
        let elapsed = match self.last {
            Some(last) => now.duration_since(last).as_secs_f64().max(0.0),
            None => 0.0,
        };
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
