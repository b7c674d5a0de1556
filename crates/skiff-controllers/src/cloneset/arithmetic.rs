//! The scale and update arithmetic of a CloneSet: how many pods to create, delete and move
//! between revisions in one pass.
//!
//! Everything here works on counts and on a few facts per pod ([`PodFacts`]), so it can be
//! checked against OpenKruise's own table tests without building pods. The rounding rules are
//! user-visible (a `"20%"` budget of 3 replicas is 1 pod, not 0), which is why they follow
//! OpenKruise exactly: partition accepts fractional percents and rounds up, maxSurge and
//! maxUnavailable accept integer percents only.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_api::cloneset::{CloneSetSpec, DEFAULT_MAX_UNAVAILABLE};

/// Why an int-or-percent value could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PercentError {
    /// A string that does not end in `%`.
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    /// The number before `%` does not parse.
    #[error("invalid value {0:?}: not a number")]
    NotANumber(String),
}

/// OpenKruise's percent helper, used for partitions: fractional percents such as `"99.99%"` are
/// allowed, and the result rounds up or down as asked.
pub fn scaled_value_from_int_or_percent(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, PercentError> {
    scaled_by_percent(value, total, round_up, |number| number.parse().ok())
}

/// apimachinery's `GetScaledValueFromIntOrPercent`, used for maxSurge and maxUnavailable: the
/// percent must be an integer (`"0.5%"` is an error).
pub fn int_percent_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, PercentError> {
    scaled_by_percent(value, total, round_up, |number| {
        number.parse::<i64>().ok().map(|percent| percent as f64)
    })
}

/// Resolves an int-or-percent against `total`; `parse_percent` reads the number before `%`,
/// which is where the two helpers above differ.
fn scaled_by_percent(
    value: &IntOrString,
    total: i32,
    round_up: bool,
    parse_percent: impl Fn(&str) -> Option<f64>,
) -> Result<i32, PercentError> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let number = s.strip_suffix('%').ok_or(PercentError::NotAPercentage)?;
            let percent =
                parse_percent(number).ok_or_else(|| PercentError::NotANumber(s.clone()))?;
            let scaled = percent * f64::from(total) / 100.0;
            let rounded = if round_up {
                scaled.ceil()
            } else {
                scaled.floor()
            };
            // The cast saturates, like a Go conversion of an out-of-range float would not; no
            // valid spec gets near the limits.
            Ok(rounded as i32)
        }
    }
}

/// How many pods the partition keeps at old revisions (`CalculatePartitionReplicas`). A percent
/// that resolves to every replica, other than exactly `"100%"`, keeps one pod less so that a
/// rollout always moves at least one pod. Unset replicas count as 1.
pub fn partition_replicas(
    partition: Option<&IntOrString>,
    replicas: Option<i32>,
) -> Result<i32, PercentError> {
    let Some(partition) = partition else {
        return Ok(0);
    };
    let replicas = replicas.unwrap_or(1);
    let mut value = scaled_value_from_int_or_percent(partition, replicas, true)?;
    if let IntOrString::String(s) = partition {
        if replicas > 1 && value == replicas && s != "100%" {
            value = replicas - 1;
        }
    }
    Ok(value.clamp(0, replicas.max(0)))
}

/// The update strategy's numbers, resolved against the replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffParams {
    /// Desired replicas.
    pub replicas: i32,
    /// Pods to keep at old revisions.
    pub partition: i32,
    /// Pods allowed above `replicas` (0 while paused).
    pub max_surge: i32,
    /// Pods allowed to be unavailable during updates and specified deletions.
    pub max_unavailable: i32,
    /// Pods allowed to be unavailable while scaling up.
    pub scale_max_unavailable: i32,
    /// Whether PreparingDelete pods are left out of the scale arithmetic.
    pub exclude_preparing_delete: bool,
    /// Whether pods may be moved back from the update revision to the current one: only when
    /// the revisions differ and partition rollback is enabled (it is off by default upstream).
    pub allow_rollback: bool,
}

/// Whether partition rollback is enabled; OpenKruise's `CloneSetPartitionRollback` gate is off
/// by default and Skiff has no switch for it.
pub const PARTITION_ROLLBACK_ENABLED: bool = false;

/// The label on a CloneSet that makes PreparingDelete pods not count towards replicas.
pub const EXCLUDE_PREPARING_DELETE_LABEL: &str =
    "apps.kruise.io/cloneset-scaling-exclude-preparing-delete";

impl DiffParams {
    /// Resolves the spec's strategy numbers as `calculateDiffsWithExpectation` does; values
    /// that do not resolve count as 0 (a bad partition, for instance, updates every pod).
    pub fn resolve(spec: &CloneSetSpec, revisions_differ: bool, rollback_gate: bool) -> Self {
        let replicas = spec.replicas.unwrap_or(1);
        let update = spec.update_strategy.clone().unwrap_or_default();
        let paused = update.paused.unwrap_or(false);
        let partition = partition_replicas(update.partition.as_ref(), Some(replicas)).unwrap_or(0);
        let max_surge = match (&update.max_surge, paused) {
            (Some(surge), false) => int_percent_value(surge, replicas, true).unwrap_or(0),
            _ => 0,
        };
        let max_unavailable_value = update
            .max_unavailable
            .clone()
            .unwrap_or_else(|| IntOrString::String(DEFAULT_MAX_UNAVAILABLE.to_string()));
        let max_unavailable =
            int_percent_value(&max_unavailable_value, replicas, max_surge == 0).unwrap_or(0);
        let scale_max_unavailable = spec
            .scale_strategy
            .as_ref()
            .and_then(|s| s.max_unavailable.as_ref())
            .map_or(i32::MAX, |v| {
                int_percent_value(v, replicas, true).unwrap_or(0)
            });
        DiffParams {
            replicas,
            partition,
            max_surge,
            max_unavailable,
            scale_max_unavailable,
            exclude_preparing_delete: false,
            allow_rollback: revisions_differ && rollback_gate,
        }
    }
}

/// What the arithmetic needs to know about one active pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PodFacts {
    /// At the update revision.
    pub updated: bool,
    /// In lifecycle state PreparingDelete.
    pub preparing_delete: bool,
    /// Marked for deletion (label or `podsToDelete`).
    pub specified_delete: bool,
    /// Available: lifecycle Normal (or none), running, ready for minReadySeconds, and its
    /// in-place update finished.
    pub available: bool,
}

/// The result of `calculateDiffsWithExpectation`: the moves one pass may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Diffs {
    /// Pods to create.
    pub scale_up_num: i32,
    /// How many of the created pods should be at the current (old) revision; may exceed
    /// `scale_up_num`.
    pub scale_up_num_old_revision: i32,
    /// Pods to delete beyond those already specified for deletion.
    pub scale_down_num: i32,
    /// How many of the deleted pods should be old; may exceed `scale_down_num`.
    pub scale_down_num_old_revision: i32,
    /// Most pods this pass may create (scaleStrategy.maxUnavailable budget).
    pub scale_up_limit: i32,
    /// Most ready pods this pass may delete.
    pub delete_ready_limit: i32,
    /// Pods in use above replicas.
    pub use_surge: i32,
    /// The old-revision part of `use_surge`.
    pub use_surge_old_revision: i32,
    /// Positive: pods to move to the update revision; negative: pods to move back.
    pub update_num: i32,
    /// Unavailable budget for updating; may be negative.
    pub update_max_unavailable: i32,
}

/// OpenKruise's core arithmetic (`calculateDiffsWithExpectation`) over the CloneSet's active
/// pods.
pub fn calculate_diffs(params: &DiffParams, pods: &[PodFacts]) -> Diffs {
    let DiffParams {
        replicas,
        partition,
        max_surge,
        max_unavailable,
        scale_max_unavailable,
        ..
    } = *params;
    let (mut new_active, mut old_count, mut old_active) = (0, 0, 0);
    let (mut unavailable, mut to_delete_new, mut to_delete_old) = (0, 0, 0);
    let (mut pre_deleting_new, mut pre_deleting_old) = (0, 0);
    for pod in pods {
        if !pod.updated {
            old_count += 1;
        }
        if pod.preparing_delete {
            if pod.updated {
                pre_deleting_new += 1;
            } else {
                pre_deleting_old += 1;
            }
            continue;
        }
        if pod.updated {
            new_active += 1;
        } else {
            old_active += 1;
        }
        if pod.specified_delete {
            if pod.updated {
                to_delete_new += 1;
            } else {
                to_delete_old += 1;
            }
        } else if !pod.available {
            unavailable += 1;
        }
    }
    let mut old_diff = old_active - partition;
    let mut new_diff = new_active - (replicas - partition);
    let total_unavailable = pre_deleting_new + pre_deleting_old + unavailable;
    if !params.allow_rollback {
        old_diff = old_diff.max(0);
        new_diff = new_diff.min(0);
    }

    let mut res = Diffs::default();
    if max_surge > 0 {
        let to_delete = to_delete_new + to_delete_old;
        let (mut scale_surge, mut scale_old_surge) = (0, 0);
        if to_delete > 0 {
            scale_surge = (total_unavailable + to_delete - max_unavailable)
                .max(0)
                .min(to_delete);
            if scale_surge > to_delete_new {
                scale_old_surge = scale_surge - to_delete_new;
            }
        }
        let (mut update_surge, mut update_old_surge) = (0, 0);
        let opposite_signs = (old_diff > 0 && new_diff < 0) || (old_diff < 0 && new_diff > 0);
        if opposite_signs {
            if old_diff.abs() <= new_diff.abs() {
                update_surge = old_diff.abs();
                if old_diff < 0 {
                    update_old_surge = update_surge;
                }
            } else {
                update_surge = new_diff.abs();
                if new_diff > 0 {
                    update_old_surge = update_surge;
                }
            }
        }
        // Scale and update never happen in the same pass, so only the larger need counts.
        let (surge, old_surge) = if scale_surge >= update_surge {
            (scale_surge, scale_old_surge)
        } else {
            (update_surge, update_old_surge)
        };
        res.use_surge = max_surge.min(surge);
        res.use_surge_old_revision = res.use_surge.min(old_surge);
    }

    let all_pods = pods.len() as i32;
    let (mut total, mut total_old) = (all_pods, old_count);
    if params.exclude_preparing_delete {
        total -= pre_deleting_new + pre_deleting_old;
        total_old -= pre_deleting_old;
    }
    let expected_total = replicas + res.use_surge;
    let expected_old = partition + res.use_surge_old_revision;

    let up = expected_total - total;
    if up > 0 {
        res.scale_up_num = up;
        res.scale_up_num_old_revision = (expected_old - total_old).max(0);
        res.scale_up_limit =
            up.min((scale_max_unavailable.saturating_sub(total_unavailable)).max(0));
    }
    let down = total - to_delete_old - to_delete_new - expected_total;
    if down > 0 {
        res.scale_down_num = down;
        res.scale_down_num_old_revision = (total_old - to_delete_old - expected_old).max(0);
    }
    if to_delete_new > 0 || to_delete_old > 0 || res.scale_down_num > 0 {
        res.delete_ready_limit =
            (max_unavailable + (all_pods - replicas) - total_unavailable).max(0);
    }
    res.update_num = if old_diff.abs() <= new_diff.abs() {
        old_diff
    } else {
        -new_diff
    };
    if res.update_num != 0 {
        res.update_max_unavailable = max_unavailable + all_pods - replicas;
    }
    res
}

/// How many of the sorted `candidates` may start updating now (`limitUpdateIndexes`): at most
/// `|update_num|`, while the unavailable pods at the target revision plus those chosen stay
/// under the budget, and while updating an available pod keeps all unavailable pods within it.
/// Updating a pod that is already unavailable costs nothing.
///
/// `pods` are all active pods; `candidates` index into them. `targets_update` says whether the
/// target is the update revision (true) or the current one (rollback).
pub fn limit_update_count(
    diffs: &Diffs,
    pods: &[PodFacts],
    candidates: &[usize],
    targets_update: bool,
) -> usize {
    let wanted = (diffs.update_num.unsigned_abs() as usize).min(candidates.len());
    let mut unavailable = 0;
    let mut target_unavailable = 0;
    for pod in pods.iter().filter(|p| !p.available) {
        unavailable += 1;
        if pod.updated == targets_update {
            target_unavailable += 1;
        }
    }
    let mut chosen = 0;
    for &index in &candidates[..wanted] {
        if target_unavailable + chosen >= diffs.update_max_unavailable {
            break;
        }
        if pods.get(index).is_some_and(|p| p.available) {
            if unavailable >= diffs.update_max_unavailable {
                break;
            }
            unavailable += 1;
        }
        chosen += 1;
    }
    chosen as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.to_string())
    }

    #[test]
    fn max_unavailable_rounds_down_only_with_surge() {
        let mut spec = CloneSetSpec {
            replicas: Some(3),
            ..CloneSetSpec::default()
        };
        let params = DiffParams::resolve(&spec, false, false);
        assert_eq!((params.max_unavailable, params.max_surge), (1, 0));
        spec.update_strategy = Some(skiff_api::cloneset::CloneSetUpdateStrategy {
            max_surge: Some(pct("50%")),
            ..Default::default()
        });
        let params = DiffParams::resolve(&spec, false, false);
        assert_eq!((params.max_unavailable, params.max_surge), (0, 2));
    }

    #[test]
    fn paused_forces_surge_to_zero() {
        let spec = CloneSetSpec {
            replicas: Some(4),
            update_strategy: Some(skiff_api::cloneset::CloneSetUpdateStrategy {
                max_surge: Some(IntOrString::Int(2)),
                paused: Some(true),
                ..Default::default()
            }),
            ..CloneSetSpec::default()
        };
        assert_eq!(DiffParams::resolve(&spec, true, false).max_surge, 0);
    }

    #[test]
    fn integer_percent_parser_rejects_fractions() {
        assert!(int_percent_value(&pct("0.5%"), 10, true).is_err());
        assert_eq!(int_percent_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(int_percent_value(&pct("25%"), 10, true), Ok(3));
    }
}
