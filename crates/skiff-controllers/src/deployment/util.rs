//! The Deployment controller's helper arithmetic and bookkeeping, as pure functions.
//!
//! Each function mirrors one helper of the upstream controller (`deployment_util.go`,
//! `controller_utils.go`) with the same edge cases, because `kubectl rollout status` and users'
//! expectations are built on exactly those numbers.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::PlanError;

/// Annotation holding the revision number of a Deployment and of each of its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Annotation listing the revisions a reused ReplicaSet used to have (after rollbacks).
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// Annotation recording `spec.replicas` of the Deployment when the ReplicaSet was last scaled;
/// a mismatch is how a scaling event is detected.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation recording `spec.replicas + maxSurge` when the ReplicaSet was last scaled; it is the
/// denominator of proportional scaling.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// Annotation carrying the deprecated `rollbackTo` request through apps/v1.
pub const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
/// Annotation written by `kubectl apply`; never copied to ReplicaSets.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Label that makes every ReplicaSet's selector (and its pods) unique to one template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Upper bound of the revision-history annotation, in characters.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Condition type: the Deployment has at least `replicas - maxUnavailable` available pods.
pub const CONDITION_AVAILABLE: &str = "Available";
/// Condition type: the rollout is making (or has stopped making) progress.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: a ReplicaSet failed to create or delete pods.
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";

/// Available reason: enough pods are available.
pub const REASON_MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available reason: too few pods are available.
pub const REASON_MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// Progressing reason: this sync created the new ReplicaSet.
pub const REASON_NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
/// Progressing reason: an existing ReplicaSet matches the template.
pub const REASON_FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
/// Progressing reason: the rollout moved forward since the last status.
pub const REASON_REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing reason: the rollout is complete.
pub const REASON_NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing reason: no progress within `progressDeadlineSeconds`.
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// Progressing reason: the Deployment is paused (the deadline clock stops).
pub const REASON_DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
/// Progressing reason: the Deployment was resumed (the deadline clock restarts).
pub const REASON_DEPLOYMENT_RESUMED: &str = "DeploymentResumed";

/// Strategy type that replaces pods gradually.
pub const STRATEGY_ROLLING_UPDATE: &str = "RollingUpdate";
/// Strategy type that removes every old pod before creating new ones.
pub const STRATEGY_RECREATE: &str = "Recreate";

/// `math.MaxInt32`, the value meaning "no limit" for deadlines and history limits.
const MAX_INT32: i32 = i32::MAX;

// ---------------------------------------------------------------------------------------------
// Field access with the API defaults the controller relies on.

/// `spec.replicas` of a Deployment; the API server defaults a missing value to 1.
pub fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet; the API server defaults a missing value to 1.
pub fn rs_spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas` of a ReplicaSet (pods that exist, ready or not).
pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `status.readyReplicas` of a ReplicaSet.
pub fn rs_ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// Name of an object, empty when unset.
pub(crate) fn rs_name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

/// Whether two ReplicaSet values denote the same object: by UID when both have one (as Go
/// compares), else by name.
pub(crate) fn same_replica_set(a: &ReplicaSet, b: &ReplicaSet) -> bool {
    match (&a.metadata.uid, &b.metadata.uid) {
        (Some(x), Some(y)) => x == y,
        _ => a.metadata.name == b.metadata.name,
    }
}

/// The Deployment's strategy type string ("" when unset, as Go sees a missing value).
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("")
}

/// Whether the Deployment uses the RollingUpdate strategy.
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == STRATEGY_ROLLING_UPDATE
}

fn rolling_params(d: &Deployment) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    match rolling {
        Some(r) => (r.max_surge.as_ref(), r.max_unavailable.as_ref()),
        None => (None, None),
    }
}

/// Whether a progress deadline applies (nil and MaxInt32 both mean "none").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    matches!(
        d.spec.as_ref().and_then(|s| s.progress_deadline_seconds),
        Some(v) if v != MAX_INT32
    )
}

/// Whether old ReplicaSets are ever deleted (nil and MaxInt32 both mean "keep all").
pub fn has_revision_history_limit(d: &Deployment) -> bool {
    matches!(
        d.spec.as_ref().and_then(|s| s.revision_history_limit),
        Some(v) if v != MAX_INT32
    )
}

// ---------------------------------------------------------------------------------------------
// maxSurge / maxUnavailable

/// Resolves an int-or-percent against `total`, rounding percentages up or down, with the
/// upstream error texts (`GetScaledValueFromIntOrPercent`).
pub fn scaled_value_from_int_or_percent(
    value: Option<&IntOrString>,
    total: i32,
    round_up: bool,
) -> Result<i32, PlanError> {
    let value = value.ok_or(PlanError::NilIntOrString)?;
    match value {
        IntOrString::Int(v) => Ok(*v),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or(PlanError::NotAPercentage)?;
            let percent: i64 = digits
                .parse()
                .map_err(|_| PlanError::InvalidPercentage { value: s.clone() })?;
            // Wide enough for any user-given percent times any replica count.
            let scaled = i128::from(percent) * i128::from(total);
            let result = if round_up {
                -((-scaled).div_euclid(100))
            } else {
                scaled.div_euclid(100)
            };
            Ok(result.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32)
        }
    }
}

/// Resolves maxSurge (rounded up) and maxUnavailable (rounded down) against `desired`; unset
/// values count as 0 and when both resolve to 0 maxUnavailable becomes 1, so a rollout can
/// always make progress.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), PlanError> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value_from_int_or_percent(Some(max_surge.unwrap_or(&zero)), desired, true)?;
    let mut unavailable =
        scaled_value_from_int_or_percent(Some(max_unavailable.unwrap_or(&zero)), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// How many pods above `spec.replicas` a rollout may create (0 unless RollingUpdate; invalid
/// values, which validation rejects, count as 0).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(surge, unavailable, deployment_replicas(d))
        .map(|(s, _)| s)
        .unwrap_or(0)
}

/// How many pods may be unavailable during a rollout: 0 unless RollingUpdate or when the
/// Deployment is scaled to 0, otherwise capped at `spec.replicas`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    let resolved = resolve_fenceposts(surge, unavailable, replicas)
        .map(|(_, u)| u)
        .unwrap_or(0);
    resolved.min(replicas)
}

/// The least number of available pods a rolling update keeps (0 for other strategies).
pub fn min_available(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    deployment_replicas(d) - max_unavailable(d)
}

/// Sum of `spec.replicas` over ReplicaSets: what the controller has asked for.
pub fn replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_spec_replicas).sum()
}

/// Sum of `status.replicas` over ReplicaSets: what actually exists.
pub fn actual_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_status_replicas).sum()
}

/// Sum of `status.availableReplicas` over ReplicaSets.
pub fn available_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_available_replicas).sum()
}

/// Sum of `status.readyReplicas` over ReplicaSets.
pub fn ready_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_ready_replicas).sum()
}

/// The pods of the ReplicaSets being deleted but not yet gone
/// (`GetTerminatingReplicaCountForReplicaSets`), saturating rather than overflowing.
pub fn terminating_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter()
        .filter_map(|rs| rs.status.as_ref()?.terminating_replicas)
        .fold(0i32, i32::saturating_add)
}

/// The size the new ReplicaSet may grow to in this sync (`NewRSNewReplicas`): up to
/// `replicas + maxSurge` pods in total for RollingUpdate, all at once for Recreate.
/// `all_rss` must include the new ReplicaSet when it exists.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all_rss: &[ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32, PlanError> {
    let replicas = deployment_replicas(d);
    match strategy_type(d) {
        STRATEGY_ROLLING_UPDATE => {
            let (surge, _) = rolling_params(d);
            let surge = scaled_value_from_int_or_percent(surge, replicas, true)?;
            let current = replica_count(all_rss);
            let max_total = replicas.saturating_add(surge);
            let new_spec = rs_spec_replicas(new_rs);
            if current >= max_total {
                return Ok(new_spec);
            }
            let scale_up = (max_total - current).min(replicas - new_spec);
            Ok(new_spec + scale_up)
        }
        STRATEGY_RECREATE => Ok(replicas),
        other => Err(PlanError::UnsupportedStrategy(other.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Annotations

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn non_negative_int32_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v >= 0)
}

/// The desired-replicas annotation, if present and a valid non-negative int32.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_int32_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// The max-replicas annotation, if present and a valid non-negative int32.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_int32_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// Whether the desired/max annotations differ from the given values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// Writes the desired/max annotations; returns whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
        (MAX_REPLICAS_ANNOTATION, max.to_string()),
    ] {
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            updated = true;
        }
    }
    updated
}

/// Annotations that belong to the Deployment or to one ReplicaSet only and are never copied.
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_CONFIG_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | ROLLBACK_TO_ANNOTATION
    )
}

/// Copies the Deployment's annotations (except the skip list) onto the ReplicaSet, so that e.g.
/// `kubernetes.io/change-cause` is recorded per revision. Stale keys are left alone. Returns
/// whether anything changed.
pub fn copy_deployment_annotations_to_replica_set(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(key) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// The revision of a ReplicaSet: 0 when the annotation is missing, an error when it is not an
/// integer.
pub fn revision(rs: &ReplicaSet) -> Result<i64, std::num::ParseIntError> {
    match annotation(rs, REVISION_ANNOTATION) {
        None => Ok(0),
        Some(v) => v.parse::<i64>(),
    }
}

/// The highest parseable revision among the ReplicaSets (0 when none).
pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter()
        .filter_map(|rs| revision(rs).ok())
        .fold(0, i64::max)
}

/// The second-highest revision, the target of "roll back to the previous revision".
pub fn last_revision(rss: &[ReplicaSet]) -> i64 {
    let (mut max, mut second) = (0i64, 0i64);
    for v in rss.iter().filter_map(|rs| revision(rs).ok()) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

/// Brings a ReplicaSet's annotations in line with its Deployment (`SetNewReplicaSetAnnotations`):
/// copies the Deployment's annotations, raises the revision to `new_revision` (recording the
/// previous one in the revision history when an old ReplicaSet is reused), and for a ReplicaSet
/// about to be created also writes the desired/max annotations. Returns whether anything
/// changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    history_limit_chars: usize,
) -> bool {
    let mut changed = copy_deployment_annotations_to_replica_set(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let had_revision = old_revision.is_some();
    let old_revision = old_revision.unwrap_or_default();
    let old_revision_int = match old_revision.parse::<i64>() {
        Ok(v) => v,
        Err(_) if old_revision.is_empty() => 0,
        Err(_) => return false,
    };
    let Ok(new_revision_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_revision_int < new_revision_int {
        annotations.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        if had_revision {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), old_revision);
            } else {
                let entries: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old_revision.len() + 1;
                let mut start = 0;
                while total > history_limit_chars && start < entries.len() {
                    total -= entries[start].len() + 1;
                    start += 1;
                }
                if total <= history_limit_chars {
                    let mut kept: Vec<&str> = entries[start..].to_vec();
                    kept.push(&old_revision);
                    annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), kept.join(","));
                }
            }
        }
    }
    if !exists {
        let replicas = deployment_replicas(d);
        if set_replicas_annotations(rs, replicas, replicas.saturating_add(max_surge(d))) {
            changed = true;
        }
    }
    changed
}

/// Sets the Deployment's revision annotation; returns whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    true
}

// ---------------------------------------------------------------------------------------------
// Ordering and selection of ReplicaSets

/// Oldest first, ties by name (`ReplicaSetsByCreationTimestamp`); a missing timestamp is the
/// zero time and sorts first.
pub fn cmp_by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Larger first; equal sizes newer first (`ReplicaSetsBySizeNewer`, used when scaling up).
pub fn cmp_by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_spec_replicas(b)
        .cmp(&rs_spec_replicas(a))
        .then_with(|| cmp_by_creation(b, a))
}

/// Larger first; equal sizes older first (`ReplicaSetsBySizeOlder`, used when scaling down).
pub fn cmp_by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_spec_replicas(b)
        .cmp(&rs_spec_replicas(a))
        .then_with(|| cmp_by_creation(a, b))
}

/// Lowest revision first, then oldest (`ReplicaSetsByRevision`). An unparseable revision counts
/// as 0 here so that the order stays total.
pub fn cmp_by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ra = revision(a).unwrap_or(0);
    let rb = revision(b).unwrap_or(0);
    ra.cmp(&rb).then_with(|| cmp_by_creation(a, b))
}

/// ReplicaSets with `spec.replicas > 0`.
pub fn filter_active(rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    rss.iter()
        .filter(|rs| rs_spec_replicas(rs) > 0)
        .cloned()
        .collect()
}

/// Normalised JSON of a pod template for comparisons: without the pod-template-hash label, and
/// with empty lists and maps removed (Kubernetes' semantic equality treats nil and empty alike).
fn template_fingerprint(template: &PodTemplateSpec) -> serde_json::Value {
    let mut value = serde_json::to_value(template).unwrap_or(serde_json::Value::Null);
    if let Some(labels) = value
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(|l| l.as_object_mut())
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    prune_empty(&mut value);
    value
}

fn prune_empty(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                prune_empty(v);
            }
            map.retain(|_, v| !is_empty_collection(v));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty_collection(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Whether two pod templates are equal once the pod-template-hash label is ignored: how the
/// controller recognises the ReplicaSet that runs the Deployment's current template.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_fingerprint(a) == template_fingerprint(b)
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// The ReplicaSet running the Deployment's template; the oldest wins when several match.
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<ReplicaSet> {
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| cmp_by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&rs_template(rs), &template))
        .cloned()
}

/// Every ReplicaSet other than the new one, in the given order.
pub fn find_old_replica_sets(d: &Deployment, rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let new_rs = find_new_replica_set(d, rss);
    rss.iter()
        .filter(|rs| !matches!(&new_rs, Some(n) if same_replica_set(n, rs)))
        .cloned()
        .collect()
}

/// The one ReplicaSet proportional scaling may simply resize: the only active one, or, when none
/// is active, the new one or else the newest old one. `None` when two or more are active.
pub fn find_active_or_latest(
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
) -> Option<ReplicaSet> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut newest_first: Vec<ReplicaSet> = old_rss.to_vec();
    newest_first.sort_by(|a, b| cmp_by_creation(b, a));
    let mut all = newest_first.clone();
    all.extend(new_rs.cloned());
    let active = filter_active(&all);
    match active.len() {
        0 => new_rs.cloned().or_else(|| newest_first.first().cloned()),
        1 => active.into_iter().next(),
        _ => None,
    }
}

/// Whether the new ReplicaSet already runs the whole Deployment: right size, annotated for this
/// size, and all of it available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let Some(desired) =
        annotation(rs, DESIRED_REPLICAS_ANNOTATION).and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    let replicas = deployment_replicas(d);
    rs_spec_replicas(rs) == replicas && desired == replicas && rs_available_replicas(rs) == replicas
}

// ---------------------------------------------------------------------------------------------
// Proportional scaling

/// How many replicas this ReplicaSet should gain (negative: lose) for the Deployment's new size,
/// in proportion to its share of the size recorded in its max-replicas annotation.
pub fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    let rs_replicas = rs_spec_replicas(rs);
    if replicas == 0 {
        return -rs_replicas;
    }
    let max_now = i64::from(replicas) + i64::from(max_surge(d));
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let max_before = match max_replicas_annotation(rs) {
        Some(v) if v != 0 => v,
        _ => status_replicas,
    };
    if max_before == 0 {
        return 0;
    }
    let new_size = (i64::from(rs_replicas) * max_now) as f64 / f64::from(max_before);
    // Go's math.Round: halves away from zero, which f64::round also does.
    let rounded = new_size
        .round()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
    rounded - rs_replicas
}

/// The share of `to_add` (bounded by what is left after `added`) this ReplicaSet takes.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

// ---------------------------------------------------------------------------------------------
// Status and conditions

/// Finds a condition of the given type.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// A fresh condition stamped with `now` for both times.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition unless one with the same status and reason exists (then timestamps are kept);
/// keeps the old transition time when only the reason changes. The condition moves to the end.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Removes every condition of the given type.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    if v == T::default() {
        None
    } else {
        Some(v)
    }
}

/// The status as Kubernetes serializes it: zero counts and empty lists are omitted, so a status
/// read from the API compares equal to a freshly computed one.
pub fn normalize_status(status: &DeploymentStatus) -> DeploymentStatus {
    DeploymentStatus {
        available_replicas: status.available_replicas.and_then(nonzero),
        collision_count: status.collision_count,
        conditions: status.conditions.clone().filter(|c| !c.is_empty()),
        observed_generation: status.observed_generation.and_then(nonzero),
        ready_replicas: status.ready_replicas.and_then(nonzero),
        replicas: status.replicas.and_then(nonzero),
        terminating_replicas: status.terminating_replicas,
        unavailable_replicas: status.unavailable_replicas.and_then(nonzero),
        updated_replicas: status.updated_replicas.and_then(nonzero),
    }
}

/// The Deployment status implied by its ReplicaSets (`calculateStatus`), with the Available
/// condition refreshed and every other condition carried over.
pub fn calculate_status(
    all_rss: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = available_replica_count(all_rss);
    let unavailable = (replica_count(all_rss) - available).max(0);
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: nonzero(d.metadata.generation.unwrap_or(0)),
        replicas: nonzero(actual_replica_count(all_rss)),
        updated_replicas: nonzero(new_rs.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: nonzero(ready_replica_count(all_rss)),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero(unavailable),
        collision_count: current.collision_count,
        conditions: current.conditions.clone().filter(|c| !c.is_empty()),
        terminating_replicas: Some(terminating_replica_count(all_rss)),
    };
    let condition = if available >= deployment_replicas(d) - max_unavailable(d) {
        new_condition(
            CONDITION_AVAILABLE,
            "True",
            REASON_MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        new_condition(
            CONDITION_AVAILABLE,
            "False",
            REASON_MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// Whether the rollout is complete: every replica updated and available, and the latest
/// generation observed.
pub fn deployment_complete(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let replicas = deployment_replicas(d);
    new_status.updated_replicas.unwrap_or(0) == replicas
        && new_status.replicas.unwrap_or(0) == replicas
        && new_status.available_replicas.unwrap_or(0) == replicas
        && new_status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the rollout moved forward since the Deployment's current status: more updated, fewer
/// old, more ready or more available pods.
pub fn deployment_progressing(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_updated = old.updated_replicas.unwrap_or(0);
    let new_updated = new_status.updated_replicas.unwrap_or(0);
    let old_old = old.replicas.unwrap_or(0) - old_updated;
    let new_old = new_status.replicas.unwrap_or(0) - new_updated;
    new_updated > old_updated
        || new_old < old_old
        || new_status.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new_status.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn time_nanos(t: Option<&Time>) -> i128 {
    // A missing time is Go's zero time, 0001-01-01T00:00:00Z.
    const GO_ZERO_TIME_SECONDS: i128 = -62_135_596_800;
    t.map(|t| t.0.as_nanosecond())
        .unwrap_or(GO_ZERO_TIME_SECONDS * 1_000_000_000)
}

fn progress_deadline_nanos(d: &Deployment) -> i128 {
    i128::from(
        d.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(0),
    ) * 1_000_000_000
}

/// Whether the rollout exceeded its progress deadline, judged from the Progressing condition of
/// `new_status`: the deadline counts from the condition's last update.
pub fn deployment_timed_out(d: &Deployment, new_status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(condition) = get_condition(new_status, CONDITION_PROGRESSING) else {
        return false;
    };
    match condition.reason.as_deref() {
        Some(REASON_NEW_REPLICA_SET_AVAILABLE) => false,
        Some(REASON_PROGRESS_DEADLINE_EXCEEDED) => true,
        _ => {
            time_nanos(condition.last_update_time.as_ref()) + progress_deadline_nanos(d)
                < now.as_nanosecond()
        }
    }
}

/// When to look at a Deployment again to notice a missed deadline (`requeueStuckDeployment`):
/// `None` when no check is needed (no deadline, no Progressing condition, complete, or already
/// timed out); `Some(ZERO)` for "now, rate-limited" (less than a second left); otherwise the time
/// left until the deadline. Callers add one second of skew before requeueing.
pub fn requeue_stuck_deployment(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let current = d.status.clone().unwrap_or_default();
    let condition = get_condition(&current, CONDITION_PROGRESSING)?;
    if !has_progress_deadline(d) {
        return None;
    }
    if deployment_complete(d, new_status)
        || condition.reason.as_deref() == Some(REASON_PROGRESS_DEADLINE_EXCEEDED)
    {
        return None;
    }
    let after = time_nanos(condition.last_update_time.as_ref()) + progress_deadline_nanos(d)
        - now.as_nanosecond();
    if after < 1_000_000_000 {
        return Some(std::time::Duration::ZERO);
    }
    let after = u64::try_from(after).unwrap_or(u64::MAX);
    Some(std::time::Duration::from_nanos(after))
}

/// A ReplicaSet's ReplicaFailure condition expressed as a Deployment condition.
pub fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

/// ReplicaFailure conditions to surface on the Deployment: the new ReplicaSet's first, else any
/// ReplicaSet's.
pub fn replica_failures(
    all_rss: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Vec<DeploymentCondition> {
    let failures = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == CONDITION_REPLICA_FAILURE)
            .map(replica_set_to_deployment_condition)
            .collect()
    };
    if let Some(new_rs) = new_rs {
        let found = failures(new_rs);
        if !found.is_empty() {
            return found;
        }
    }
    all_rss.iter().flat_map(failures).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_of_extreme_sizes_saturate() {
        let percent = |s: &str| IntOrString::String(s.to_string());
        let max_percent = format!("{}%", i64::MAX);
        let cases: &[(IntOrString, i32, bool, i32)] = &[
            (percent("25%"), 10, true, 3),
            (percent("25%"), 10, false, 2),
            (percent("100%"), i32::MAX, true, i32::MAX),
            (percent("200%"), i32::MAX, false, i32::MAX),
            (percent(&max_percent), i32::MAX, true, i32::MAX),
            (percent(&max_percent), i32::MAX, false, i32::MAX),
            (percent(&max_percent), 1, false, i32::MAX),
            (percent(&max_percent), 0, true, 0),
            (percent("-5%"), i32::MAX, true, -107_374_182),
            (percent(&format!("{}%", i64::MIN)), i32::MAX, true, i32::MIN),
            (IntOrString::Int(i32::MAX), 3, true, i32::MAX),
        ];
        for (value, total, round_up, expected) in cases {
            assert_eq!(
                scaled_value_from_int_or_percent(Some(value), *total, *round_up),
                Ok(*expected),
                "{value:?} of {total}, round up {round_up}"
            );
        }
    }
}
