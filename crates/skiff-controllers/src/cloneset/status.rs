//! The status a CloneSet reports, counted over its active pods, and when it is worth writing.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skiff_api::cloneset::{condition_type, CloneSet, CloneSetCondition, CloneSetStatus};

use super::arithmetic::partition_replicas;
use super::pods::{is_at_revision, is_available, is_update_ready};

/// Progressing reasons, as OpenKruise names them.
pub mod progressing_reason {
    /// Every pod is updated and available.
    pub const AVAILABLE: &str = "CloneSetAvailable";
    /// The update is paused.
    pub const PAUSED: &str = "CloneSetPaused";
    /// The pods outside the partition are updated and available.
    pub const PARTITION_AVAILABLE: &str = "ProgressPartitionAvailable";
    /// The rollout made no progress within the deadline.
    pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// The rollout is under way.
    pub const UPDATED: &str = "CloneSetUpdated";
}

/// The identity of the status a sync computes, besides the pod counts.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusInputs<'a> {
    /// The revision pods were last all on.
    pub current_revision: &'a str,
    /// The revision of the current template.
    pub update_revision: &'a str,
    /// Hash-collision counter for revision names.
    pub collision_count: i32,
    /// `spec.selector` as a string.
    pub label_selector: String,
}

/// The status after a sync (`calculateStatus`), with the requeue the Progressing condition
/// asks for, if any. Conditions other than Progressing carry over from `cs`.
pub fn calculate_status(
    cs: &CloneSet,
    pods: &[Pod],
    inputs: &StatusInputs<'_>,
    now: Timestamp,
) -> (CloneSetStatus, Option<Duration>) {
    let spec = cs.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut status = CloneSetStatus {
        observed_generation: cs.metadata.generation,
        update_revision: Some(inputs.update_revision.to_string()),
        current_revision: Some(inputs.current_revision.to_string()),
        collision_count: Some(inputs.collision_count),
        label_selector: Some(inputs.label_selector.clone()),
        conditions: cs.status.as_ref().and_then(|s| s.conditions.clone()),
        ..CloneSetStatus::default()
    };
    let mut updated_available = 0;
    for pod in pods {
        let ready = is_update_ready(pod, 0, now);
        let available = is_available(pod, min_ready, now);
        let updated = is_at_revision(pod, inputs.update_revision);
        status.replicas += 1;
        status.ready_replicas += i32::from(ready);
        status.available_replicas += i32::from(available);
        status.updated_replicas += i32::from(updated);
        status.updated_ready_replicas += i32::from(updated && ready);
        updated_available += i32::from(updated && available);
    }
    status.updated_available_replicas = Some(updated_available).filter(|n| *n != 0);
    if status.updated_replicas == status.replicas && status.replicas == replicas {
        status.current_revision = Some(inputs.update_revision.to_string());
    }
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.partition.as_ref());
    if let Ok(partition) = partition_replicas(partition, Some(replicas)) {
        status.expected_updated_replicas = Some(replicas - partition).filter(|n| *n != 0);
    }
    let requeue = progressing(cs, &mut status, now);
    (status, requeue)
}

fn set_condition(status: &mut CloneSetStatus, condition: CloneSetCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            // Only a change of status or reason rewrites the condition, so its times say when
            // the current state began.
            if existing.status != condition.status || existing.reason != condition.reason {
                *existing = condition;
            }
        }
        None => conditions.push(condition),
    }
}

fn progressing(cs: &CloneSet, status: &mut CloneSetStatus, now: Timestamp) -> Option<Duration> {
    let spec = cs.spec.clone().unwrap_or_default();
    let Some(deadline) = spec.progress_deadline_seconds else {
        if let Some(conditions) = status.conditions.as_mut() {
            conditions.retain(|c| c.type_ != condition_type::PROGRESSING);
            if conditions.is_empty() {
                status.conditions = None;
            }
        }
        return None;
    };
    let replicas = spec.replicas.unwrap_or(1);
    let updated_available = status.updated_available_replicas.unwrap_or(0);
    let expected = status.expected_updated_replicas.unwrap_or(0);
    let paused = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.paused)
        .unwrap_or(false);
    let previous = status
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == condition_type::PROGRESSING))
        .cloned();
    let condition = |state: &str, reason: &str, message: String| CloneSetCondition {
        type_: condition_type::PROGRESSING.to_string(),
        status: state.to_string(),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
        reason: Some(reason.to_string()),
        message: Some(message),
    };
    let deadline_at = |c: &CloneSetCondition| {
        c.last_update_time
            .as_ref()
            .map(|t| t.0.as_nanosecond() + i128::from(deadline) * 1_000_000_000)
    };
    if status.current_revision == status.update_revision
        && status.replicas == replicas
        && status.updated_replicas == replicas
        && updated_available == replicas
    {
        let c = condition(
            "True",
            progressing_reason::AVAILABLE,
            "CloneSet is available".into(),
        );
        set_condition(status, c);
        None
    } else if paused {
        let c = condition(
            "True",
            progressing_reason::PAUSED,
            "CloneSet is paused".into(),
        );
        set_condition(status, c);
        None
    } else if expected < replicas && expected <= updated_available {
        let c = condition(
            "True",
            progressing_reason::PARTITION_AVAILABLE,
            "CloneSet has been paused due to partition ready".into(),
        );
        set_condition(status, c);
        None
    } else if previous
        .as_ref()
        .and_then(deadline_at)
        .is_some_and(|at| at < now.as_nanosecond())
    {
        let c = condition(
            "False",
            progressing_reason::DEADLINE_EXCEEDED,
            format!(
                "CloneSet revision {} has timed out progressing",
                status.update_revision.clone().unwrap_or_default()
            ),
        );
        set_condition(status, c);
        None
    } else {
        let c = condition(
            "True",
            progressing_reason::UPDATED,
            "CloneSet is progressing".into(),
        );
        set_condition(status, c);
        let current = status
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == condition_type::PROGRESSING))
            .and_then(deadline_at)?;
        let left = current - now.as_nanosecond();
        let left = u64::try_from(left.max(0)).unwrap_or(0);
        Some(Duration::from_nanos(left) + Duration::from_secs(1))
    }
}

/// Whether `new` differs from the stored status in anything OpenKruise writes for
/// (`inconsistentStatus`): a counter, a revision, the selector, a newer generation, or the
/// Progressing condition's status or reason.
pub fn status_changed(old: Option<&CloneSetStatus>, new: &CloneSetStatus) -> bool {
    let default = CloneSetStatus::default();
    let old = old.unwrap_or(&default);
    let progressing = |s: &CloneSetStatus| {
        s.conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == condition_type::PROGRESSING))
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    new.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0)
        || new.replicas != old.replicas
        || new.ready_replicas != old.ready_replicas
        || new.available_replicas != old.available_replicas
        || new.updated_replicas != old.updated_replicas
        || new.updated_ready_replicas != old.updated_ready_replicas
        || new.updated_available_replicas != old.updated_available_replicas
        || new.expected_updated_replicas != old.expected_updated_replicas
        || new.update_revision != old.update_revision
        || new.current_revision != old.current_revision
        || new.label_selector != old.label_selector
        || new.collision_count != old.collision_count
        || new.conditions.as_ref().map(|c| c.len()) != old.conditions.as_ref().map(|c| c.len())
        || progressing(new) != progressing(old)
}
