//! What a CloneSet asks of its pods: their revision, lifecycle state and availability, and the
//! orders in which pods are updated and deleted.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use skiff_api::cloneset::{
    IN_PLACE_UPDATE_READY_CONDITION, LIFECYCLE_STATE_LABEL, SPECIFIED_DELETE_LABEL,
};

use super::arithmetic::PodFacts;
use super::CONTROLLER_REVISION_HASH_LABEL;
use crate::replicaset::pods::{delete_before, is_pod_available, is_pod_ready, RankedPod};

/// Lifecycle states OpenKruise records in [`LIFECYCLE_STATE_LABEL`].
pub mod lifecycle_state {
    /// Created, not yet scheduled.
    pub const PREPARING_NORMAL: &str = "PreparingNormal";
    /// Serving normally.
    pub const NORMAL: &str = "Normal";
    /// Held by an in-place-update hook before updating.
    pub const PREPARING_UPDATE: &str = "PreparingUpdate";
    /// Being updated in place.
    pub const UPDATING: &str = "Updating";
    /// Updated in place, held by an in-place-update hook.
    pub const UPDATED: &str = "Updated";
    /// Held by a pre-delete hook instead of being deleted.
    pub const PREPARING_DELETE: &str = "PreparingDelete";
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The pod's name, or "".
pub fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// The part of a revision name after its last `-`: the hash alone.
pub fn short_hash(revision: &str) -> &str {
    revision.rsplit('-').next().unwrap_or(revision)
}

/// Whether the pod's `controller-revision-hash` names `revision`; a label holding the short
/// hash also matches, as OpenKruise's `CloneSetShortHash` mode writes it.
pub fn is_at_revision(pod: &Pod, revision: &str) -> bool {
    match label(pod, CONTROLLER_REVISION_HASH_LABEL) {
        Some(hash) => hash == revision || short_hash(hash) == short_hash(revision),
        None => false,
    }
}

/// The pod's lifecycle state label, "" when unset.
pub fn lifecycle_state(pod: &Pod) -> &str {
    label(pod, LIFECYCLE_STATE_LABEL).unwrap_or("")
}

/// Whether the pod is marked for deletion: by label, or by name in `podsToDelete`.
pub fn is_specified_delete(pod: &Pod, pods_to_delete: &[String]) -> bool {
    label(pod, SPECIFIED_DELETE_LABEL).is_some()
        || pods_to_delete.iter().any(|n| n == pod_name(pod))
}

/// The pod's `InPlaceUpdateReady` condition, if any.
pub fn in_place_update_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == IN_PLACE_UPDATE_READY_CONDITION)
        })
}

/// Whether the pod carries the `InPlaceUpdateReady` readiness gate.
pub fn has_in_place_readiness_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| {
            g.iter()
                .any(|g| g.condition_type == IN_PLACE_UPDATE_READY_CONDITION)
        })
}

/// Running, Ready for `min_ready_seconds`, and not in the middle of an in-place update
/// (`IsPodUpdateReady`). With 0 seconds this is what the status calls ready.
pub fn is_update_ready(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    phase(pod) == "Running"
        && is_pod_available(pod, min_ready_seconds, now)
        && in_place_update_condition(pod).is_none_or(|c| c.status == "True")
}

/// Available as a CloneSet counts it: [`is_update_ready`] and in lifecycle Normal (or none).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    matches!(lifecycle_state(pod), "" | lifecycle_state::NORMAL)
        && is_update_ready(pod, min_ready_seconds, now)
}

/// The facts the arithmetic needs about one pod.
pub fn pod_facts(
    pod: &Pod,
    update_revision: &str,
    pods_to_delete: &[String],
    min_ready_seconds: i32,
    now: Timestamp,
) -> PodFacts {
    PodFacts {
        updated: is_at_revision(pod, update_revision),
        preparing_delete: lifecycle_state(pod) == lifecycle_state::PREPARING_DELETE,
        specified_delete: is_specified_delete(pod, pods_to_delete),
        available: is_available(pod, min_ready_seconds, now),
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn ready_since(pod: &Pod) -> Option<Timestamp> {
    crate::replicaset::pods::pod_ready_since(pod)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// Go's `afterOrZero`: a missing time sorts first, otherwise the later time does.
fn later_or_missing_first(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// Kubernetes' `ActivePods` order, the default update order: unscheduled, then Pending <
/// Unknown < Running, then not ready, then ready for less time, then more restarts, then newer.
/// Broken pods come first because updating them costs no availability.
pub fn update_before(a: &Pod, b: &Pod) -> bool {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    let (pa, pb) = (phase_rank(a), phase_rank(b));
    if pa != pb {
        return pa < pb;
    }
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return !ra;
    }
    if ra && rb {
        let (ta, tb) = (ready_since(a), ready_since(b));
        if ta != tb {
            return later_or_missing_first(ta, tb);
        }
    }
    let (ka, kb) = (restarts(a), restarts(b));
    if ka != kb {
        return ka > kb;
    }
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if ta != tb {
        return later_or_missing_first(ta, tb);
    }
    false
}

/// A stable merge sort driven by a "less" predicate; it never asks more of the predicate than
/// "is a before b", so comparators that are not strict weak orders cannot make it panic.
pub fn stable_sort_by_less<T: Copy>(items: &mut [T], less: &dyn Fn(&T, &T) -> bool) {
    if items.len() <= 1 {
        return;
    }
    let mid = items.len() / 2;
    stable_sort_by_less(&mut items[..mid], less);
    stable_sort_by_less(&mut items[mid..], less);
    let mut merged = Vec::with_capacity(items.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < items.len() {
        if less(&items[j], &items[i]) {
            merged.push(items[j]);
            j += 1;
        } else {
            merged.push(items[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&items[i..mid]);
    merged.extend_from_slice(&items[j..]);
    items.copy_from_slice(&merged);
}

/// Orders the update candidates (indexes into `pods`): the default [`update_before`] order,
/// then pods already PreparingUpdate first.
pub fn sort_update_indexes(pods: &[Pod], candidates: &[usize]) -> Vec<usize> {
    let mut sorted = candidates.to_vec();
    stable_sort_by_less(&mut sorted, &|a: &usize, b: &usize| {
        update_before(&pods[*a], &pods[*b])
    });
    stable_sort_by_less(&mut sorted, &|a: &usize, b: &usize| {
        lifecycle_state(&pods[*a]) == lifecycle_state::PREPARING_UPDATE
            && lifecycle_state(&pods[*b]) != lifecycle_state::PREPARING_UPDATE
    });
    sorted
}

/// Whether `a` goes before `b` on scale-in: unscheduled, then Pending < Unknown < Running, then
/// unavailable, then Kubernetes' ReplicaSet order (not ready, deletion cost, pods sharing a
/// node, ready for less time, restarts, newer).
fn delete_first(
    a: RankedPod<'_>,
    b: RankedPod<'_>,
    min_ready_seconds: i32,
    now: Timestamp,
) -> bool {
    let (na, nb) = (node_name(a.pod), node_name(b.pod));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    let (pa, pb) = (phase_rank(a.pod), phase_rank(b.pod));
    if pa != pb {
        return pa < pb;
    }
    let (aa, ab) = (
        is_available(a.pod, min_ready_seconds, now),
        is_available(b.pod, min_ready_seconds, now),
    );
    if aa != ab {
        return !aa;
    }
    delete_before(a, b, now)
}

/// The `count` pods of `candidates` to delete first; no sorting when all of them go.
pub fn pods_to_delete<'a>(
    candidates: &[&'a Pod],
    all: &[&Pod],
    count: usize,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if count >= candidates.len() {
        return candidates.to_vec();
    }
    let mut per_node = std::collections::HashMap::<&str, usize>::new();
    for pod in all {
        *per_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(usize, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, p)| (i, per_node.get(node_name(p)).copied().unwrap_or(0)))
        .collect();
    stable_sort_by_less(&mut ranked, &|a: &(usize, usize), b: &(usize, usize)| {
        delete_first(
            RankedPod {
                pod: candidates[a.0],
                rank: a.1,
            },
            RankedPod {
                pod: candidates[b.0],
                rank: b.1,
            },
            min_ready_seconds,
            now,
        )
    });
    ranked
        .into_iter()
        .take(count)
        .map(|(i, _)| candidates[i])
        .collect()
}

/// `choosePodsToDelete`: `total` pods to scale in, of which up to `old_wanted` from the old
/// pods and the rest from the updated ones.
pub fn choose_pods_to_delete<'a>(
    total: usize,
    old_wanted: usize,
    old_pods: &[&'a Pod],
    new_pods: &[&'a Pod],
    all: &[&Pod],
    min_ready_seconds: i32,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let pick = |pods: &[&'a Pod], n: usize| pods_to_delete(pods, all, n, min_ready_seconds, now);
    if old_wanted >= total {
        pick(old_pods, total)
    } else if old_wanted > 0 {
        let mut chosen = pick(old_pods, old_wanted);
        chosen.extend(pick(new_pods, total - old_wanted));
        chosen
    } else {
        pick(new_pods, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"controller-revision-hash": "cs-abc"}},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}}
            ]},
        }))
        .expect("pod")
    }

    #[test]
    fn revision_matches_full_and_short_hash() {
        let p = pod("a", "n", "Running", true);
        assert!(is_at_revision(&p, "cs-abc"));
        assert!(is_at_revision(&p, "other-abc"));
        assert!(!is_at_revision(&p, "cs-abd"));
    }

    #[test]
    fn in_place_condition_false_makes_a_ready_pod_unavailable() {
        let mut p = pod("a", "n", "Running", true);
        let now = Timestamp::now();
        assert!(is_available(&p, 0, now));
        if let Some(status) = p.status.as_mut() {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(PodCondition {
                    type_: IN_PLACE_UPDATE_READY_CONDITION.into(),
                    status: "False".into(),
                    ..Default::default()
                });
        }
        assert!(!is_available(&p, 0, now));
    }

    #[test]
    fn scale_in_prefers_unscheduled_then_pending_then_unavailable() {
        let pods = [
            pod("running-ready", "n1", "Running", true),
            pod("running-unready", "n1", "Running", false),
            pod("pending", "n1", "Pending", false),
            pod("unscheduled", "", "Pending", false),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let order: Vec<&str> = pods_to_delete(&refs, &refs, 3, 0, Timestamp::now())
            .into_iter()
            .map(pod_name)
            .collect();
        assert_eq!(order, ["unscheduled", "pending", "running-unready"]);
    }

    #[test]
    fn choose_splits_between_old_and_new() {
        let old = [
            pod("o1", "n", "Running", true),
            pod("o2", "n", "Running", true),
        ];
        let new = [pod("n1", "n", "Running", true)];
        let old_refs: Vec<&Pod> = old.iter().collect();
        let new_refs: Vec<&Pod> = new.iter().collect();
        let all: Vec<&Pod> = old.iter().chain(new.iter()).collect();
        let now = Timestamp::now();
        fn names(v: Vec<&Pod>) -> Vec<String> {
            v.into_iter().map(|p| pod_name(p).to_string()).collect()
        }
        assert_eq!(
            names(choose_pods_to_delete(
                2, 1, &old_refs, &new_refs, &all, 0, now
            ))
            .len(),
            2
        );
        assert_eq!(
            names(choose_pods_to_delete(
                1, 0, &old_refs, &new_refs, &all, 0, now
            )),
            ["n1"]
        );
        assert_eq!(
            names(choose_pods_to_delete(
                2, 5, &old_refs, &new_refs, &all, 0, now
            )),
            ["o1", "o2"]
        );
    }
}
