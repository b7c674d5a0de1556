//! The Eviction subresource's decision (kube-apiserver's `EvictionREST.Create`), as a pure
//! function of the pod, the namespace's PodDisruptionBudgets and the time: whether the pod may
//! be deleted, through which budget, and what that budget's status becomes.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::kinds::pod_disruption_budget::covers;

/// The message of an eviction a budget refuses.
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";
/// The message of an eviction of a pod several budgets cover.
pub const MULTIPLE_BUDGETS: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";
/// The `type` of the cause attached to a refusal.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// How many approved evictions a budget's `disruptedPods` may hold before evictions stop.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// What the eviction does.
#[derive(Clone, Debug, PartialEq)]
pub enum EvictionPlan {
    /// Delete the pod without consulting budgets: it is terminal, pending or already being
    /// deleted. `resource_version` is the precondition to delete with, when one is needed (a
    /// pending pod might turn ready meanwhile).
    DeleteIgnoringBudgets {
        /// The pod's resourceVersion as precondition, or none.
        resource_version: Option<String>,
    },
    /// No budget covers the pod: delete it.
    Delete,
    /// The pod is not ready and the budget lets unhealthy pods go: delete it on the condition
    /// that it has not changed (a conflict answers 429 so the client tries again).
    DeleteUnready {
        /// The budget's name, for the 429.
        budget: String,
        /// The pod's resourceVersion.
        resource_version: String,
    },
    /// Write the budget with one disruption fewer and the pod recorded in `disruptedPods`,
    /// then delete the pod (in a dry run, write nothing).
    Decrement {
        /// The budget with its new status.
        budget: Value,
    },
    /// Refuse.
    Refuse(Refusal),
}

/// Why an eviction is refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// 429 TooManyRequests with a `DisruptionBudget` cause.
    TooManyRequests {
        /// The cause's message.
        cause: String,
        /// `details.retryAfterSeconds` (0: not set).
        retry_after_seconds: u32,
    },
    /// 500 with [`MULTIPLE_BUDGETS`].
    MultipleBudgets,
    /// 403 Forbidden on the budget.
    Forbidden {
        /// The budget's name.
        budget: String,
        /// Why.
        reason: String,
    },
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Kubernetes' `IsPodReady`: the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

/// The refusal of a budget whose status the controller has not caught up with.
pub fn still_processing(budget: &str) -> Refusal {
    Refusal::TooManyRequests {
        cause: format!("The disruption budget {budget} is still being processed by the server."),
        retry_after_seconds: 10,
    }
}

/// Decides the eviction of `pod` given the PodDisruptionBudgets of its namespace, at `now`.
pub fn plan_eviction(
    pod: &Value,
    budgets: &[Value],
    now: Timestamp,
    dry_run: bool,
) -> EvictionPlan {
    let phase = text(pod, "/status/phase");
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let terminal = phase == "Succeeded" || phase == "Failed";
    if terminal || phase == "Pending" || deleting {
        let resource_version =
            (!terminal && !deleting).then(|| text(pod, "/metadata/resourceVersion").to_string());
        return EvictionPlan::DeleteIgnoringBudgets { resource_version };
    }
    let covering: Vec<&Value> = budgets.iter().filter(|b| covers(b, pod)).collect();
    let budget = match covering[..] {
        [] => return EvictionPlan::Delete,
        [one] => one,
        _ => return EvictionPlan::Refuse(Refusal::MultipleBudgets),
    };
    let name = text(budget, "/metadata/name").to_string();
    let current_healthy = int(budget, "/status/currentHealthy");
    let desired_healthy = int(budget, "/status/desiredHealthy");
    if !is_pod_ready(pod) {
        let always = text(budget, "/spec/unhealthyPodEvictionPolicy") == "AlwaysAllow";
        if always || (current_healthy >= desired_healthy && desired_healthy > 0) {
            return EvictionPlan::DeleteUnready {
                budget: name,
                resource_version: text(pod, "/metadata/resourceVersion").to_string(),
            };
        }
    }
    if int(budget, "/status/observedGeneration") < int(budget, "/metadata/generation") {
        return EvictionPlan::Refuse(still_processing(&name));
    }
    let allowed = int(budget, "/status/disruptionsAllowed");
    if allowed < 0 {
        return EvictionPlan::Refuse(Refusal::Forbidden {
            budget: name,
            reason: "pdb disruptions allowed is negative".to_string(),
        });
    }
    let disrupted = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_POD_SIZE {
        return EvictionPlan::Refuse(Refusal::Forbidden {
            budget: name,
            reason:
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
                    .to_string(),
        });
    }
    if allowed == 0 {
        return EvictionPlan::Refuse(Refusal::TooManyRequests {
            cause: format!(
                "The disruption budget {name} needs {desired_healthy} healthy pods and has {current_healthy} currently"
            ),
            retry_after_seconds: 0,
        });
    }
    let mut updated = budget.clone();
    let status = &mut updated["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        set_disruption_allowed_condition(status, false, now);
    }
    if !dry_run {
        if !status.get("disruptedPods").is_some_and(Value::is_object) {
            status["disruptedPods"] = json!({});
        }
        status["disruptedPods"][text(pod, "/metadata/name")] =
            json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    EvictionPlan::Decrement { budget: updated }
}

/// Kubernetes' `UpdateDisruptionAllowedCondition` on a budget's status: `DisruptionAllowed`
/// `True` (`SufficientPods`) or `False` (`InsufficientPods`), its transition time moved only
/// when the status changes.
pub fn set_disruption_allowed_condition(status: &mut Value, allowed: bool, now: Timestamp) {
    let (wanted, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let observed = status
        .get("observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("set above");
    let stamp = json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionAllowed")
    {
        Some(c) => {
            if c["status"] != wanted {
                c["lastTransitionTime"] = stamp;
            }
            c["status"] = json!(wanted);
            c["reason"] = json!(reason);
            c["message"] = json!("");
            c["observedGeneration"] = observed;
        }
        None => conditions.push(json!({
            "type": "DisruptionAllowed",
            "status": wanted,
            "observedGeneration": observed,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": "",
        })),
    }
}

#[cfg(test)]
mod tests {
    //! Cases after kubernetes/pkg/registry/core/pod/storage/eviction_test.go.
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("time")
    }

    fn pod(phase: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}, "resourceVersion": "7"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        })
    }

    fn budget(allowed: i64, current: i64, desired: i64) -> Value {
        json!({
            "metadata": {"name": "web-pdb", "namespace": "default", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": desired},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
                       "expectedPods": 3, "observedGeneration": 1},
        })
    }

    #[test]
    fn terminal_pending_and_deleting_pods_ignore_budgets() {
        for (phase, precondition) in [
            ("Succeeded", None),
            ("Failed", None),
            ("Pending", Some("7")),
        ] {
            assert_eq!(
                plan_eviction(&pod(phase, false), &[budget(0, 0, 3)], now(), false),
                EvictionPlan::DeleteIgnoringBudgets {
                    resource_version: precondition.map(str::to_string)
                },
                "{phase}"
            );
        }
        let mut deleting = pod("Running", true);
        deleting["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(
            plan_eviction(&deleting, &[budget(0, 3, 3)], now(), false),
            EvictionPlan::DeleteIgnoringBudgets {
                resource_version: None
            }
        );
    }

    #[test]
    fn an_exhausted_budget_refuses_with_kubernetes_cause() {
        assert_eq!(
            plan_eviction(&pod("Running", true), &[budget(0, 2, 2)], now(), false),
            EvictionPlan::Refuse(Refusal::TooManyRequests {
                cause: "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
                    .into(),
                retry_after_seconds: 0,
            })
        );
    }

    #[test]
    fn an_allowing_budget_is_decremented_and_records_the_pod() {
        let EvictionPlan::Decrement { budget: b } =
            plan_eviction(&pod("Running", true), &[budget(1, 3, 2)], now(), false)
        else {
            panic!("the budget allows one disruption");
        };
        assert_eq!(b["status"]["disruptionsAllowed"], 0);
        assert_eq!(b["status"]["disruptedPods"]["p"], NOW);
        let condition = &b["status"]["conditions"][0];
        assert_eq!(condition["type"], "DisruptionAllowed");
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["reason"], "InsufficientPods");
        // A dry run decrements but records nothing.
        let EvictionPlan::Decrement { budget: b } =
            plan_eviction(&pod("Running", true), &[budget(2, 4, 2)], now(), true)
        else {
            panic!("the budget allows two disruptions");
        };
        assert_eq!(b["status"]["disruptionsAllowed"], 1);
        assert!(b["status"].get("disruptedPods").is_none());
        assert!(b["status"].get("conditions").is_none());
    }

    #[test]
    fn unready_pods_go_when_the_budget_is_healthy_or_the_policy_always_allows() {
        assert_eq!(
            plan_eviction(&pod("Running", false), &[budget(0, 2, 2)], now(), false),
            EvictionPlan::DeleteUnready {
                budget: "web-pdb".into(),
                resource_version: "7".into()
            }
        );
        // Too few healthy: the default policy keeps it.
        assert!(matches!(
            plan_eviction(&pod("Running", false), &[budget(0, 1, 2)], now(), false),
            EvictionPlan::Refuse(Refusal::TooManyRequests { .. })
        ));
        let mut always = budget(0, 1, 2);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(matches!(
            plan_eviction(&pod("Running", false), &[always], now(), false),
            EvictionPlan::DeleteUnready { .. }
        ));
    }

    #[test]
    fn stale_negative_and_multiple_budgets_refuse() {
        let mut stale = budget(1, 3, 2);
        stale["metadata"]["generation"] = json!(2);
        assert_eq!(
            plan_eviction(&pod("Running", true), &[stale], now(), false),
            EvictionPlan::Refuse(still_processing("web-pdb"))
        );
        assert!(matches!(
            plan_eviction(&pod("Running", true), &[budget(-1, 3, 2)], now(), false),
            EvictionPlan::Refuse(Refusal::Forbidden { .. })
        ));
        let mut second = budget(1, 3, 2);
        second["metadata"]["name"] = json!("other");
        assert_eq!(
            plan_eviction(
                &pod("Running", true),
                &[budget(1, 3, 2), second],
                now(),
                false
            ),
            EvictionPlan::Refuse(Refusal::MultipleBudgets)
        );
        // A budget selecting other pods does not count.
        let mut elsewhere = budget(0, 0, 2);
        elsewhere["spec"]["selector"] = json!({"matchLabels": {"app": "db"}});
        assert_eq!(
            plan_eviction(&pod("Running", true), &[elsewhere], now(), false),
            EvictionPlan::Delete
        );
    }
}
