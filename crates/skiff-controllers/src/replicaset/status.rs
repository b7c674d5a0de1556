//! The ReplicaSet status one sync writes (`calculateStatus` and its condition helpers).

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::pods::{is_pod_available, is_pod_ready};
use super::ManageError;

/// Condition type set while creating or deleting pods fails (quota, admission, ...).
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";
/// ReplicaFailure reason when pods could not be created.
pub const REASON_FAILED_CREATE: &str = "FailedCreate";
/// ReplicaFailure reason when pods could not be deleted.
pub const REASON_FAILED_DELETE: &str = "FailedDelete";

/// `spec.replicas`, defaulted to 1 as the API server does.
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.minReadySeconds` (0 when unset).
pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn template_labels_match(rs: &ReplicaSet, pod: &Pod) -> bool {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let pod_labels = pod.metadata.labels.as_ref();
    template_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| pod_labels.and_then(|l| l.get(k)) == Some(v))
}

/// Finds a condition of the given type.
pub fn get_condition<'a>(
    status: &'a ReplicaSetStatus,
    type_: &str,
) -> Option<&'a ReplicaSetCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Adds or replaces a condition, unless one with the same status and reason is already there
/// (then its transition time is kept).
pub fn set_condition(status: &mut ReplicaSetStatus, condition: ReplicaSetCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Removes every condition of the given type.
pub fn remove_condition(status: &mut ReplicaSetStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// The status as the API serializes it (zero counts and empty lists omitted), so a status read
/// back compares equal to a computed one.
pub fn normalize_status(status: &ReplicaSetStatus) -> ReplicaSetStatus {
    ReplicaSetStatus {
        available_replicas: status.available_replicas.and_then(nonzero),
        conditions: status.conditions.clone().filter(|c| !c.is_empty()),
        fully_labeled_replicas: status.fully_labeled_replicas.and_then(nonzero),
        observed_generation: status.observed_generation.and_then(nonzero),
        ready_replicas: status.ready_replicas.and_then(nonzero),
        replicas: status.replicas,
        terminating_replicas: status.terminating_replicas,
    }
}

/// The status implied by the ReplicaSet's active, owned pods at `now` (`calculateStatus`):
/// counts of all, fully labelled, ready and available pods, `terminating_pods` (owned pods
/// with a deletion timestamp, not yet finished) as `terminatingReplicas`, and the ReplicaFailure condition
/// set when `manage_error` reports a failed create/delete (kept if already present) and
/// cleared when managing succeeded. `observedGeneration` is not touched here; see
/// [`status_to_write`].
pub fn calculate_status(
    rs: &ReplicaSet,
    active_pods: &[Pod],
    terminating_pods: i32,
    manage_error: Option<&ManageError>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let current = rs.status.clone().unwrap_or_default();
    let mut status = current.clone();
    let min_ready = min_ready_seconds(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in active_pods {
        if template_labels_match(rs, pod) {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let existing_failure = get_condition(&current, CONDITION_REPLICA_FAILURE).is_some();
    match manage_error {
        Some(error) if !existing_failure => {
            let count = i64::try_from(active_pods.len()).unwrap_or(i64::MAX);
            let diff = count - i64::from(spec_replicas(rs));
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => REASON_FAILED_CREATE,
                std::cmp::Ordering::Greater => REASON_FAILED_DELETE,
                std::cmp::Ordering::Equal => "",
            };
            set_condition(
                &mut status,
                ReplicaSetCondition {
                    type_: CONDITION_REPLICA_FAILURE.to_string(),
                    status: "True".to_string(),
                    reason: Some(reason.to_string()),
                    message: Some(error.message.clone()),
                    last_transition_time: Some(Time(now)),
                },
            );
        }
        None if existing_failure => remove_condition(&mut status, CONDITION_REPLICA_FAILURE),
        _ => {}
    }
    status.replicas = i32::try_from(active_pods.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.terminating_replicas = Some(terminating_pods);
    normalize_status(&status)
}

/// The status write for `new_status` (`updateReplicaSetStatus`): `None` in the steady state
/// (same counts and conditions, generation already observed), else the status with
/// `observedGeneration` set to the ReplicaSet's generation.
pub fn status_to_write(rs: &ReplicaSet, new_status: &ReplicaSetStatus) -> Option<ReplicaSetStatus> {
    let current = normalize_status(&rs.status.clone().unwrap_or_default());
    let generation = rs.metadata.generation.unwrap_or(0);
    let new_status = normalize_status(new_status);
    let unchanged = current.replicas == new_status.replicas
        && current.fully_labeled_replicas == new_status.fully_labeled_replicas
        && current.ready_replicas == new_status.ready_replicas
        && current.available_replicas == new_status.available_replicas
        && current.terminating_replicas == new_status.terminating_replicas
        && current.observed_generation.unwrap_or(0) == generation
        && current.conditions == new_status.conditions;
    if unchanged {
        return None;
    }
    let mut status = new_status;
    status.observed_generation = nonzero(generation);
    Some(status)
}
