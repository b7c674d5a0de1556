//! The scheduling decision for one pod: filter the nodes it may run on, score the rest, pick
//! the best. Pure: it sees a snapshot of nodes and of the pods bound to them, and does no I/O.
//!
//! It follows kube-scheduler's default profile: the filters NodeUnschedulable, TaintToleration,
//! NodeAffinity, NodeResourcesFit and PodTopologySpread run in that order and the first one to
//! reject a node names the reason; the scores TaintToleration (weight 3), NodeAffinity (2),
//! NodeResourcesFit with LeastAllocated (1), NodeResourcesBalancedAllocation (1) and
//! PodTopologySpread (2) are added up. Where kube-scheduler picks at random among nodes with
//! the same score, this planner takes the first by name, so the same input gives the same node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use crate::matching;
use crate::requests::{self, Allocatable, Resources};
use crate::spread::Spread;
use crate::volumes::PodVolumes;

/// The best score one scoring plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;
/// The `spec.schedulerName` this scheduler answers to.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Reason of a cordoned node.
pub const REASON_NODE_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason of a node with a `NoSchedule`/`NoExecute` taint the pod does not tolerate. Kubernetes
/// stopped naming the taint in this message because taints may be sensitive.
pub const REASON_UNTOLERATED_TAINT: &str = "node(s) had untolerated taint(s)";
/// Reason of a node outside the pod's node selector or required node affinity.
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason of a node that already runs as many pods as it may.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// Message when the cluster has no nodes at all.
pub const MESSAGE_NO_NODES: &str = "no nodes available to schedule pods";
/// What the DynamicResources PostFilter reports for a pod that claims no devices.
pub const NO_CLAIMS_TO_DEALLOCATE: &str = "no new claims to deallocate";
/// Preemption reason of a node where removing pods would not help.
pub const REASON_PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Preemption reason of a node with no pod of lower priority to remove.
pub const REASON_NO_VICTIMS: &str = "No preemption victims found for incoming pod";

const WEIGHT_TAINT_TOLERATION: i64 = 3;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_RESOURCES_FIT: i64 = 1;
const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
const WEIGHT_TOPOLOGY_SPREAD: i64 = 2;

/// The pods bound to each node, by node name: what the node's resources are already spent on.
pub type PodsByNode = BTreeMap<String, Vec<Pod>>;

/// Where a pod should go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChoice {
    /// The chosen node.
    pub node_name: String,
    /// Its total weighted score.
    pub score: i64,
    /// How many nodes passed the filters.
    pub feasible_nodes: usize,
}

/// Why no node fits; `message` is what kube-scheduler writes into the `FailedScheduling`
/// event and the `PodScheduled` condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unschedulable {
    /// The user-facing explanation.
    pub message: String,
}

/// Whether this scheduler is the one to place `pod` now: it asks for the default scheduler,
/// is not bound yet, is not being deleted, has not finished and carries no scheduling gates.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    spec.scheduler_name
        .as_deref()
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
        == DEFAULT_SCHEDULER_NAME
        && spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
}

/// A node's rejection of the pod.
#[derive(Clone, Debug)]
struct Rejection {
    reasons: Vec<String>,
    /// Whether removing pods from the node could make room (only resources and spread skew).
    resolvable: bool,
}

impl Rejection {
    fn unresolvable(reason: &str) -> Rejection {
        Rejection {
            reasons: vec![reason.to_string()],
            resolvable: false,
        }
    }
}

/// One node as the planner sees it.
struct NodeView<'a> {
    node: &'a Node,
    name: &'a str,
    pods: &'a [Pod],
    taints: Vec<Taint>,
    allocatable: Allocatable,
}

fn sum_requests(pods: &[Pod], fill_missing: bool) -> Resources {
    let mut used = Resources::default();
    for p in pods {
        used.add(&requests::pod_requests(p, fill_missing));
    }
    used
}

/// NodeResourcesFit's filter: every reason the node lacks room, in Kubernetes' order.
fn fit_reasons(request: &Resources, allocatable: &Allocatable, pods: &[Pod]) -> Vec<String> {
    let mut reasons = Vec::new();
    if i64::try_from(pods.len()).unwrap_or(i64::MAX) + 1 > allocatable.pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    if request.is_empty() {
        return reasons;
    }
    let used = sum_requests(pods, false);
    let free = &allocatable.resources;
    let short = |want: i64, have: i64, used: i64| want > 0 && want > have.saturating_sub(used);
    if short(request.milli_cpu, free.milli_cpu, used.milli_cpu) {
        reasons.push("Insufficient cpu".to_string());
    }
    if short(request.memory, free.memory, used.memory) {
        reasons.push("Insufficient memory".to_string());
    }
    if short(
        request.ephemeral_storage,
        free.ephemeral_storage,
        used.ephemeral_storage,
    ) {
        reasons.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, want) in &request.scalar {
        let have = free.scalar.get(name).copied().unwrap_or(0);
        let spent = used.scalar.get(name).copied().unwrap_or(0);
        if short(*want, have, spent) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// Runs the filters in kube-scheduler's order against `pods` (the node's pods, or what would
/// remain after preemption); the first filter that rejects decides.
fn run_filters(
    pod: &Pod,
    request: &Resources,
    spread_filter: &dyn Fn(&Node) -> Option<(&'static str, bool)>,
    view: &NodeView<'_>,
    pods: &[Pod],
) -> Result<(), Rejection> {
    let tolerations = matching::pod_tolerations(pod);
    let cordoned = view
        .node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let cordon_taint = Taint {
        key: matching::TAINT_UNSCHEDULABLE.to_string(),
        effect: "NoSchedule".to_string(),
        ..Taint::default()
    };
    if cordoned && !matching::tolerated(tolerations, &cordon_taint) {
        return Err(Rejection::unresolvable(REASON_NODE_UNSCHEDULABLE));
    }
    if matching::untolerated_taint(&view.taints, tolerations).is_some() {
        return Err(Rejection::unresolvable(REASON_UNTOLERATED_TAINT));
    }
    if !matching::node_matches_pod_affinity(pod, view.node) {
        return Err(Rejection::unresolvable(REASON_NODE_AFFINITY));
    }
    let reasons = fit_reasons(request, &view.allocatable, pods);
    if !reasons.is_empty() {
        return Err(Rejection {
            reasons,
            resolvable: true,
        });
    }
    if let Some((reason, resolvable)) = spread_filter(view.node) {
        return Err(Rejection {
            reasons: vec![reason.to_string()],
            resolvable,
        });
    }
    Ok(())
}

/// kube-scheduler's `DefaultNormalizeScore`: scale to 0..=100 by the highest raw score,
/// optionally reversed so that fewer is better.
fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|s| {
            if max == 0 {
                return if reverse { MAX_NODE_SCORE } else { 0 };
            }
            let scaled = MAX_NODE_SCORE * s / max;
            if reverse {
                MAX_NODE_SCORE - scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// LeastAllocated: the mean share of CPU and memory left free after placing the pod.
fn least_allocated(requested: &Resources, allocatable: &Resources) -> i64 {
    let mut total = 0;
    let mut weights = 0;
    for (req, cap) in [
        (requested.milli_cpu, allocatable.milli_cpu),
        (requested.memory, allocatable.memory),
    ] {
        if cap == 0 {
            continue;
        }
        total += if req > cap {
            0
        } else {
            (cap - req).saturating_mul(MAX_NODE_SCORE) / cap
        };
        weights += 1;
    }
    if weights == 0 {
        0
    } else {
        total / weights
    }
}

/// BalancedAllocation: how evenly CPU and memory would be used after placing the pod.
fn balanced_allocation(requested: &Resources, allocatable: &Resources) -> i64 {
    let fractions: Vec<f64> = [
        (requested.milli_cpu, allocatable.milli_cpu),
        (requested.memory, allocatable.memory),
    ]
    .into_iter()
    .filter(|(_, cap)| *cap != 0)
    .map(|(req, cap)| (req as f64 / cap as f64).min(1.0))
    .collect();
    let std = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// The `FailedScheduling` text: a sorted histogram of the nodes' reasons.
fn fit_message<'a>(total_nodes: usize, reasons: impl Iterator<Item = &'a str>) -> String {
    let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *histogram.entry(r).or_insert(0) += 1;
    }
    let mut parts: Vec<String> = histogram
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    // Kubernetes sorts the formatted strings, counts included.
    parts.sort();
    let mut message = format!("0/{total_nodes} nodes are available:");
    if !parts.is_empty() {
        message.push_str(&format!(" {}.", parts.join(", ")));
    }
    message
}

/// What DefaultPreemption would report. `None` when evicting lower-priority pods would make
/// room somewhere: kube-scheduler would then preempt, which this scheduler does not do.
fn preemption_message(
    pod: &Pod,
    request: &Resources,
    spread_filter: &dyn Fn(&Node) -> Option<(&'static str, bool)>,
    rejected: &[(&NodeView<'_>, Rejection)],
) -> Option<String> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("preemption: not eligible due to preemptionPolicy=Never.".to_string());
    }
    let priority = spec.and_then(|s| s.priority).unwrap_or(0);
    let mut reasons: Vec<String> = Vec::new();
    for (view, rejection) in rejected {
        if !rejection.resolvable {
            reasons.push(REASON_PREEMPTION_NOT_HELPFUL.to_string());
            continue;
        }
        let (victims, survivors): (Vec<Pod>, Vec<Pod>) = view
            .pods
            .iter()
            .cloned()
            .partition(|p| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) < priority);
        if victims.is_empty() {
            reasons.push(REASON_NO_VICTIMS.to_string());
            continue;
        }
        match run_filters(pod, request, spread_filter, view, &survivors) {
            Ok(()) => return None,
            Err(still) => reasons.extend(still.reasons),
        }
    }
    Some(format!(
        "preemption: {}",
        fit_message(rejected.len(), reasons.iter().map(String::as_str))
    ))
}

/// Chooses the node for `pod` among `nodes`, given the pods already bound to each node.
///
/// Nodes that are cordoned, not Ready (treated as carrying the `not-ready`/`unreachable`
/// taint), carry untolerated taints, miss the pod's node selector or affinity, lack room, or
/// would break a `DoNotSchedule` spread constraint are filtered out; the rest are scored and
/// the best wins, the first by name among equals.
pub fn schedule(
    pod: &Pod,
    nodes: &[Node],
    pods_on_nodes: &PodsByNode,
) -> Result<NodeChoice, Unschedulable> {
    schedule_with_volumes(pod, nodes, pods_on_nodes, &PodVolumes::default())
}

/// [`schedule`] with the constraints of the pod's claims: a PreFilter rejection makes every
/// node unfit with that one message, and nodes its bound volumes exclude are filtered out
/// after the resource fit, where kube-scheduler runs VolumeBinding.
pub fn schedule_with_volumes(
    pod: &Pod,
    nodes: &[Node],
    pods_on_nodes: &PodsByNode,
    volumes: &PodVolumes,
) -> Result<NodeChoice, Unschedulable> {
    if nodes.is_empty() {
        return Err(Unschedulable {
            message: MESSAGE_NO_NODES.to_string(),
        });
    }
    let mut views: Vec<NodeView<'_>> = nodes
        .iter()
        .map(|node| {
            let name = node.metadata.name.as_deref().unwrap_or("");
            NodeView {
                node,
                name,
                pods: pods_on_nodes.get(name).map(Vec::as_slice).unwrap_or(&[]),
                taints: matching::effective_taints(node),
                allocatable: requests::node_allocatable(node),
            }
        })
        .collect();
    views.sort_by(|a, b| a.name.cmp(b.name));

    let request = requests::pod_requests(pod, false);
    let spread = Spread::for_pod(pod);
    let all: Vec<(&Node, &[Pod])> = views.iter().map(|v| (v.node, v.pods)).collect();
    let topology_filter = spread.filter(&all);
    let spread_filter = |node: &Node| {
        if !crate::volumes::node_fits_volumes(volumes, node) {
            return Some((crate::volumes::REASON_VOLUME_NODE_CONFLICT, false));
        }
        topology_filter(node)
    };

    if let Some(reason) = &volumes.rejection {
        // The VolumeBinding PreFilter rejected the pod: no node is tried, every node counts as
        // unresolvably unfit, and the message is the PreFilter's alone.
        let rejected: Vec<(&NodeView<'_>, Rejection)> = views
            .iter()
            .map(|v| (v, Rejection::unresolvable(reason)))
            .collect();
        let mut message = format!("0/{} nodes are available: {reason}.", views.len());
        if let Some(post) = preemption_message(pod, &request, &spread_filter, &rejected) {
            message.push(' ');
            message.push_str(NO_CLAIMS_TO_DEALLOCATE);
            message.push_str(", ");
            message.push_str(&post);
        }
        return Err(Unschedulable { message });
    }

    let mut feasible: Vec<&NodeView<'_>> = Vec::new();
    let mut rejected: Vec<(&NodeView<'_>, Rejection)> = Vec::new();
    for view in &views {
        match run_filters(pod, &request, &spread_filter, view, view.pods) {
            Ok(()) => feasible.push(view),
            Err(r) => rejected.push((view, r)),
        }
    }

    if feasible.is_empty() {
        let mut message = fit_message(
            views.len(),
            rejected
                .iter()
                .flat_map(|(_, r)| r.reasons.iter().map(String::as_str)),
        );
        if let Some(post) = preemption_message(pod, &request, &spread_filter, &rejected) {
            // Since 1.34 the DynamicResources plugin's PostFilter runs before preemption and,
            // for a pod without resource claims, adds its reason first.
            message.push(' ');
            message.push_str(NO_CLAIMS_TO_DEALLOCATE);
            message.push_str(", ");
            message.push_str(&post);
        }
        return Err(Unschedulable { message });
    }

    let tolerations = matching::pod_tolerations(pod);
    let taint_raw: Vec<i64> = feasible
        .iter()
        .map(|v| matching::intolerable_prefer_no_schedule(&v.taints, tolerations))
        .collect();
    let affinity_raw: Vec<i64> = feasible
        .iter()
        .map(|v| matching::preferred_affinity_weight(pod, v.node))
        .collect();
    let taint_scores = normalize(&taint_raw, true);
    let affinity_scores = normalize(&affinity_raw, false);
    let score_request = requests::pod_requests(pod, true);
    let feasible_pairs: Vec<(&Node, &[Pod])> = feasible.iter().map(|v| (v.node, v.pods)).collect();
    let spread_scores = spread.scores(&all, &feasible_pairs);
    let best_effort = request.milli_cpu == 0 && request.memory == 0;

    let mut best: Option<(i64, &str)> = None;
    for (i, view) in feasible.iter().enumerate() {
        let alloc = &view.allocatable.resources;
        let mut non_zero = sum_requests(view.pods, true);
        non_zero.add(&score_request);
        let mut actual = sum_requests(view.pods, false);
        actual.add(&request);
        let balanced = if best_effort {
            0
        } else {
            balanced_allocation(&actual, alloc)
        };
        let total = WEIGHT_TAINT_TOLERATION * taint_scores[i]
            + WEIGHT_NODE_AFFINITY * affinity_scores[i]
            + WEIGHT_RESOURCES_FIT * least_allocated(&non_zero, alloc)
            + WEIGHT_BALANCED_ALLOCATION * balanced
            + WEIGHT_TOPOLOGY_SPREAD * spread_scores.as_ref().map_or(0, |s| s[i]);
        if best.is_none_or(|(score, _)| total > score) {
            best = Some((total, view.name));
        }
    }
    let (score, node_name) = best.unwrap_or((0, feasible[0].name));
    Ok(NodeChoice {
        node_name: node_name.to_string(),
        score,
        feasible_nodes: feasible.len(),
    })
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
