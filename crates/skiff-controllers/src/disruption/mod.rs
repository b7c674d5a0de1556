//! kube-controller-manager's disruption controller as a pure planner: a PodDisruptionBudget's
//! status (expected, desired and current healthy pods, the disruptions allowed, the pods
//! evictions were approved for, the `DisruptionAllowed` condition) from the pods it covers,
//! the scale of their controllers and the time. [`controller`] is its shell.

pub mod controller;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};
use skiff_api::eviction::{is_pod_ready, set_disruption_allowed_condition};
use skiff_api::kinds::pod_disruption_budget::scaled_value;

/// How long an approved eviction counts its pod as disrupted before the controller stops
/// expecting its deletion (upstream `DeletionTimeout`, 2 minutes).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// Who controls a pod, as the shell's controller finders tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodController {
    /// The pod has no controller reference.
    Unmanaged,
    /// Its controller (the Deployment above a ReplicaSet, else the ReplicaSet, ...): a uid and
    /// the replicas it asks for.
    Found {
        /// The controller's uid, so several pods of one controller count it once.
        uid: String,
        /// Its `spec.replicas`.
        scale: i64,
    },
    /// The pod names a controller no finder knows.
    Missing,
}

/// What one sync decided.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPlan {
    /// The budget's new status, or `None` when it stays as it is.
    pub status: Option<Value>,
    /// When the status must be computed again even if nothing changes (an approved eviction
    /// whose pod is still there times out then).
    pub recheck: Option<Timestamp>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Upstream `getExpectedScale`: the summed scale of the pods' controllers, each counted once.
fn expected_scale(
    pods: &[&Value],
    controller_of: &dyn Fn(&Value) -> PodController,
) -> Result<i64, String> {
    let mut scales: BTreeMap<String, i64> = BTreeMap::new();
    for pod in pods {
        match controller_of(pod) {
            PodController::Unmanaged => {}
            PodController::Found { uid, scale } => {
                scales.entry(uid).or_insert(scale);
            }
            PodController::Missing => {
                return Err(format!(
                    "found no controllers for pod {:?}",
                    text(pod, "/metadata/name")
                ))
            }
        }
    }
    scales.values().try_fold(0i64, |sum, s| {
        sum.checked_add(*s)
            .ok_or_else(|| "the controllers' scales overflow".to_string())
    })
}

/// Upstream `getExpectedPodCount`: (expected pods, desired healthy pods).
fn expected_and_desired(
    spec: &Value,
    pods: &[&Value],
    controller_of: &dyn Fn(&Value) -> PodController,
) -> Result<(i64, i64), String> {
    let max_unavailable = spec.get("maxUnavailable").filter(|v| !v.is_null());
    let min_available = spec.get("minAvailable").filter(|v| !v.is_null());
    if let Some(max_unavailable) = max_unavailable {
        let expected = expected_scale(pods, controller_of)?;
        let unavailable = scaled_value(max_unavailable, expected)?;
        Ok((expected, expected.saturating_sub(unavailable).max(0)))
    } else if let Some(min_available) = min_available {
        match min_available {
            Value::Number(n) => Ok((
                i64::try_from(pods.len()).unwrap_or(i64::MAX),
                n.as_i64().unwrap_or(0),
            )),
            _ => {
                let expected = expected_scale(pods, controller_of)?;
                Ok((expected, scaled_value(min_available, expected)?))
            }
        }
    } else {
        Ok((0, 0))
    }
}

/// The budget's status after a sync at `now`, given the pods it covers (selected by the
/// shell) and who controls each.
pub fn plan_status(
    pdb: &Value,
    pods: &[&Value],
    controller_of: &dyn Fn(&Value) -> PodController,
    now: Timestamp,
) -> StatusPlan {
    let old = pdb.get("status").cloned().unwrap_or_else(|| json!({}));
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let spec = pdb.get("spec").cloned().unwrap_or_else(|| json!({}));
    let (expected, desired) = match expected_and_desired(&spec, pods, controller_of) {
        Ok(counts) => counts,
        Err(message) => return fail_safe(&old, &message, now),
    };

    // Approved evictions whose pods are still there and not yet past the timeout.
    let recorded = old
        .get("disruptedPods")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut disrupted = Map::new();
    let mut recheck: Option<Timestamp> = None;
    for pod in pods {
        if deleting(pod) {
            continue;
        }
        let name = text(pod, "/metadata/name");
        let Some(at) = recorded
            .get(name)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
        else {
            continue;
        };
        let Ok(expected_deletion) = at.checked_add(DELETION_TIMEOUT) else {
            continue;
        };
        if expected_deletion < now {
            continue;
        }
        recheck = Some(recheck.map_or(expected_deletion, |r| r.min(expected_deletion)));
        disrupted.insert(name.to_string(), recorded[name].clone());
    }
    let healthy = pods
        .iter()
        .filter(|p| !deleting(p) && !disrupted.contains_key(text(p, "/metadata/name")))
        .filter(|p| is_pod_ready(p))
        .count();
    let current = i64::try_from(healthy).unwrap_or(i64::MAX);
    let mut allowed = current.saturating_sub(desired);
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }

    let mut status = json!({
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": current,
        "desiredHealthy": desired,
        "expectedPods": expected,
    });
    if !disrupted.is_empty() {
        status["disruptedPods"] = Value::Object(disrupted);
    }
    if let Some(conditions) = old.get("conditions") {
        status["conditions"] = conditions.clone();
    }
    set_disruption_allowed_condition(&mut status, allowed > 0, now);
    let unchanged = [
        "observedGeneration",
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
        "disruptedPods",
        "conditions",
    ]
    .iter()
    .all(|k| old.get(*k).filter(|v| !v.is_null()) == status.get(*k));
    StatusPlan {
        status: (!unchanged).then_some(status),
        recheck,
    }
}

/// Upstream `failSafe`: no disruption allowed, the condition `False` with `SyncFailed` and
/// the error.
fn fail_safe(old: &Value, message: &str, now: Timestamp) -> StatusPlan {
    let mut status = old.clone();
    if !status.is_object() {
        status = json!({});
    }
    status["disruptionsAllowed"] = json!(0);
    let observed = status
        .get("observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let stamp = json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    let conditions = status["conditions"].as_array_mut().expect("set above");
    let wanted = json!({"type": "DisruptionAllowed", "status": "False", "observedGeneration": observed,
        "lastTransitionTime": stamp, "reason": "SyncFailed", "message": message});
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionAllowed")
    {
        Some(c) => {
            if c["status"] == "False" {
                // The transition time stays that of the last change of status.
                let kept = c["lastTransitionTime"].clone();
                *c = wanted;
                c["lastTransitionTime"] = kept;
            } else {
                *c = wanted;
            }
        }
        None => conditions.push(wanted),
    }
    StatusPlan {
        status: (status != *old).then_some(status),
        recheck: None,
    }
}

#[cfg(test)]
mod tests;
