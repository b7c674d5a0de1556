//! Pod predicates and the deletion order shared by the ReplicaSet controller and its callers.
//!
//! These mirror the helpers of the upstream `controller_utils.go` and `pod/util.go` because the
//! order in which a scale-down picks victims is user-visible (and documented through the
//! `controller.kubernetes.io/pod-deletion-cost` annotation).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// Annotation by which users tell scale-down which pods to prefer (lower cost goes first).
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Whether a pod still counts towards a ReplicaSet: not finished (Succeeded/Failed) and not
/// being deleted. Terminating pods are replaced right away, as upstream does.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// Whether a pod is on its way out: it has a deletion timestamp but has not finished
/// (`FilterTerminatingPods`), so it counts as a terminating replica.
pub fn is_pod_terminating(pod: &Pod) -> bool {
    let phase = phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_some()
}

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became Ready, if it is Ready and the time is recorded.
pub fn pod_ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Whether the pod has been Ready for longer than `min_ready_seconds` at `now`: with a zero
/// minimum any Ready pod is available; otherwise the Ready transition time must be known and
/// strictly more than `min_ready_seconds` in the past.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_since(pod) {
        Some(since) => {
            since.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000
                < now.as_nanosecond()
        }
        None => false,
    }
}

/// How long until a Ready but not yet available pod becomes available: `None` when it is not
/// Ready, already available, or its Ready time is unknown (then it never becomes available by
/// waiting).
pub fn pod_available_in(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 || !is_pod_ready(pod) || is_pod_available(pod, min_ready_seconds, now)
    {
        return None;
    }
    let since = pod_ready_since(pod)?;
    let at = since.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000;
    let left = at - now.as_nanosecond();
    u64::try_from(left).ok().map(Duration::from_nanos)
}

/// The pod-deletion-cost annotation as an int32; missing or invalid values count as 0.
pub fn pod_deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_container_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
        .max(0)
}

fn phase_ordinal(phase: &str) -> u8 {
    match phase {
        "Unknown" => 1,
        "Running" => 2,
        // Pending, and anything unrecognised (Go's map lookup yields 0).
        _ => 0,
    }
}

/// `floor(log2(now - t))` in nanoseconds, or -1 when `t` is not in the past: the bucket used
/// by logarithmic scale-down, so that pods of similar age are treated alike.
fn log2_age_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let age = now.as_nanosecond() - t.as_nanosecond();
    if age <= 0 {
        return -1;
    }
    i64::from(127 - age.leading_zeros() as i32)
}

/// Go's `afterOrZero` as an ordering question: is `a` "less" (deleted first) than `b`?
/// A missing time sorts before any known time; otherwise later times come first.
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// A comparison of two times with logarithmic buckets (`LogarithmicScaleDown`, on by default):
/// `Some(true/false)` when decided, with a UID tie-break inside one bucket.
fn less_by_time(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    a_uid: &str,
    b_uid: &str,
    now: Timestamp,
) -> bool {
    match (a, b) {
        (Some(ta), Some(tb)) => {
            let diff = log2_age_bucket(ta, now) - log2_age_bucket(tb, now);
            if diff == 0 {
                a_uid < b_uid
            } else {
                diff < 0
            }
        }
        _ => after_or_zero(a, b),
    }
}

/// A pod with its rank: the number of active related pods on the same node.
#[derive(Debug, Clone, Copy)]
pub struct RankedPod<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Active pods of the same owner family on this pod's node (the pod itself included when it
    /// is part of the related set).
    pub rank: usize,
}

/// Whether `a` should be deleted before `b` (`ActivePodsWithRanks.Less` with the default
/// feature gates `PodDeletionCost` and `LogarithmicScaleDown` on).
pub fn delete_before(a: RankedPod<'_>, b: RankedPod<'_>, now: Timestamp) -> bool {
    let (pa, pb) = (a.pod, b.pod);
    // 1. Unassigned before assigned.
    let (na, nb) = (node_name(pa), node_name(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (oa, ob) = (phase_ordinal(phase(pa)), phase_ordinal(phase(pb)));
    if oa != ob {
        return oa < ob;
    }
    // 3. Not ready before ready.
    let (ra, rb) = (is_pod_ready(pa), is_pod_ready(pb));
    if ra != rb {
        return !ra;
    }
    // 4. Lower deletion cost first.
    let (ca, cb) = (pod_deletion_cost(pa), pod_deletion_cost(pb));
    if ca != cb {
        return ca < cb;
    }
    // 5. More co-located related pods first.
    if a.rank != b.rank {
        return a.rank > b.rank;
    }
    let uid_a = pa.metadata.uid.as_deref().unwrap_or("");
    let uid_b = pb.metadata.uid.as_deref().unwrap_or("");
    // 6. Both ready: ready for less time first.
    if ra && rb {
        let (ta, tb) = (pod_ready_since(pa), pod_ready_since(pb));
        if ta != tb {
            return less_by_time(ta, tb, uid_a, uid_b, now);
        }
    }
    // 7. Higher restart count first.
    let (ka, kb) = (max_container_restarts(pa), max_container_restarts(pb));
    if ka != kb {
        return ka > kb;
    }
    // 8. Newer first.
    let ta = pa.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = pb.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if ta != tb {
        return less_by_time(ta, tb, uid_a, uid_b, now);
    }
    false
}

/// Ranks each candidate by how many active `related` pods share its node.
pub fn rank_by_related_pods_on_same_node<'a>(
    candidates: &'a [Pod],
    related: &[&Pod],
) -> Vec<RankedPod<'a>> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_pod_active(p)) {
        *per_node.entry(node_name(pod)).or_default() += 1;
    }
    candidates
        .iter()
        .map(|pod| RankedPod {
            pod,
            rank: per_node.get(node_name(pod)).copied().unwrap_or(0),
        })
        .collect()
}

/// The `count` pods to delete first among `candidates` (`getPodsToDelete`); no sorting when
/// every candidate goes. The sort is stable, so equal pods keep their input order.
pub fn pods_to_delete<'a>(
    candidates: &'a [Pod],
    related: &[&Pod],
    count: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if count >= candidates.len() {
        return candidates.iter().collect();
    }
    let mut sorted = sort_for_deletion(candidates, related, now);
    sorted.truncate(count);
    sorted
}

/// Every candidate, in the order scale-down would delete them (first = first to go).
pub fn sort_for_deletion<'a>(
    candidates: &'a [Pod],
    related: &[&Pod],
    now: Timestamp,
) -> Vec<&'a Pod> {
    let ranked = rank_by_related_pods_on_same_node(candidates, related);
    let sorted = merge_sort_by(ranked, &|a: &RankedPod<'a>, b: &RankedPod<'a>| {
        delete_before(*a, *b, now)
    });
    sorted.into_iter().map(|r| r.pod).collect()
}

/// A stable merge sort driven by a "less" predicate. The upstream comparator is not a strict
/// weak order in every corner (its UID tie-break applies only inside one age bucket), and the
/// standard library's sorts may panic on such comparators, so this one never asks more of it
/// than "is a before b".
fn merge_sort_by<T: Copy>(items: Vec<T>, less: &dyn Fn(&T, &T) -> bool) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let mut right = items;
    let left = right.drain(..right.len() / 2).collect::<Vec<T>>();
    let left = merge_sort_by(left, less);
    let right = merge_sort_by(right, less);
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if less(&right[j], &left[i]) {
            merged.push(right[j]);
            j += 1;
        } else {
            merged.push(left[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&left[i..]);
    merged.extend_from_slice(&right[j..]);
    merged
}

/// Batch sizes of a slow start: `initial`, then doubling, the last one trimmed so the sizes
/// add up to `count`. A failure in one batch stops the rest, so a broken template (or a quota)
/// costs few failed calls.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = initial.max(1).min(remaining);
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = size.saturating_mul(2).min(remaining);
    }
    batches
}
