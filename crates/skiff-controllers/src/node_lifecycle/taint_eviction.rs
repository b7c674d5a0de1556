//! The NoExecute taint manager (kube-controller-manager's `taint-eviction-controller`) as a
//! pure planner: a pod on a node with NoExecute taints goes at once if it tolerates one of
//! them not, else when the shortest `tolerationSeconds` among the tolerations it relies on
//! runs out, else never.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

/// The reason of the Event on an evicted pod.
pub const EVICTION_REASON: &str = "TaintManagerEviction";
/// The reason of the `DisruptionTarget` condition set on a pod before it is deleted.
pub const DISRUPTION_REASON: &str = "DeletionByTaintManager";
/// The message of that condition.
pub const DISRUPTION_MESSAGE: &str = "Taint manager: deleting due to NoExecute taint";

/// The Event message of a pod marked for deletion.
pub fn eviction_message(namespace: &str, name: &str) -> String {
    format!("Marking for deletion Pod {namespace}/{name}")
}

/// The Event message of a pod whose planned deletion was called off.
pub fn cancel_message(namespace: &str, name: &str) -> String {
    format!("Cancelling deletion of Pod {namespace}/{name}")
}

/// Whether one toleration tolerates one taint (Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// What becomes of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodEviction {
    /// It stays: no NoExecute taint, or every one tolerated for ever.
    Stays,
    /// It goes at this time, unless the taints change first.
    At(Timestamp),
    /// It goes now.
    Now,
}

/// When `pod`, bound to a node with `taints`, must go, seen at `now`. Only NoExecute taints
/// count. The toleration time runs from the earliest `timeAdded` of those taints, or from the
/// pod's creation if it came later (a taint without `timeAdded` counts from the pod's creation).
pub fn plan_pod_eviction(pod: &Pod, taints: &[Taint], now: Timestamp) -> PodEviction {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return PodEviction::Stays;
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    // The first toleration that tolerates each taint, as upstream picks them.
    let mut used = Vec::with_capacity(no_execute.len());
    for taint in &no_execute {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return PodEviction::Now,
        }
    }
    let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
        return PodEviction::Stays;
    };
    if seconds <= 0 {
        return PodEviction::Now;
    }
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tainted = no_execute
        .iter()
        .filter_map(|t| t.time_added.as_ref().map(|t| t.0))
        .min();
    let start = match (tainted, created) {
        (Some(t), Some(c)) => t.max(c),
        (Some(t), None) => t,
        (None, Some(c)) => c,
        (None, None) => now,
    };
    // Beyond the clock's range the pod stays for good, which is what such a value means.
    match start.checked_add(SignedDuration::from_secs(seconds)) {
        Ok(at) if at <= now => PodEviction::Now,
        Ok(at) => PodEviction::At(at),
        Err(_) => PodEviction::Stays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "tolerations": tolerations},
        }))
        .expect("a pod")
    }

    fn taint(key: &str, effect: &str, added: Option<&str>) -> Taint {
        Taint {
            key: key.to_string(),
            effect: effect.to_string(),
            value: None,
            time_added: added.map(|a| Time(ts(a))),
        }
    }

    const NOW: &str = "2026-01-01T01:00:00Z";

    // Cases after kubernetes/pkg/controller/tainteviction/taint_eviction_test.go.

    #[test]
    fn a_pod_without_tolerations_goes_at_once_and_no_taint_keeps_it() {
        let p = pod(json!([]));
        assert_eq!(
            plan_pod_eviction(&p, &[taint("k", "NoExecute", Some(NOW))], ts(NOW)),
            PodEviction::Now
        );
        assert_eq!(plan_pod_eviction(&p, &[], ts(NOW)), PodEviction::Stays);
        // NoSchedule taints never evict.
        assert_eq!(
            plan_pod_eviction(&p, &[taint("k", "NoSchedule", Some(NOW))], ts(NOW)),
            PodEviction::Stays
        );
    }

    #[test]
    fn a_toleration_without_seconds_keeps_the_pod_for_ever() {
        let p = pod(json!([{"key": "k", "operator": "Exists", "effect": "NoExecute"}]));
        assert_eq!(
            plan_pod_eviction(&p, &[taint("k", "NoExecute", Some(NOW))], ts(NOW)),
            PodEviction::Stays
        );
    }

    #[test]
    fn toleration_seconds_run_from_the_taint_and_the_shortest_used_one_wins() {
        let p = pod(json!([
            {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 100},
            {"key": "c", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        ]));
        let taints = [
            taint("a", "NoExecute", Some("2026-01-01T00:59:00Z")),
            taint("b", "NoExecute", Some("2026-01-01T00:59:30Z")),
        ];
        // `c` tolerates no taint there, so its 5 s do not count; 100 s from the first taint.
        assert_eq!(
            plan_pod_eviction(&p, &taints, ts(NOW)),
            PodEviction::At(ts("2026-01-01T01:00:40Z"))
        );
        assert_eq!(
            plan_pod_eviction(&p, &taints, ts("2026-01-01T01:00:40Z")),
            PodEviction::Now
        );
    }

    #[test]
    fn one_untolerated_taint_evicts_whatever_else_is_tolerated() {
        let p = pod(json!([
            {"key": "a", "operator": "Exists", "effect": "NoExecute"},
        ]));
        let taints = [
            taint("a", "NoExecute", Some(NOW)),
            taint("b", "NoExecute", Some(NOW)),
        ];
        assert_eq!(plan_pod_eviction(&p, &taints, ts(NOW)), PodEviction::Now);
    }

    #[test]
    fn zero_or_negative_seconds_evict_at_once() {
        for seconds in [0, -5] {
            let p = pod(json!([
                {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds},
            ]));
            assert_eq!(
                plan_pod_eviction(&p, &[taint("a", "NoExecute", Some(NOW))], ts(NOW)),
                PodEviction::Now
            );
        }
    }

    #[test]
    fn huge_seconds_never_overflow_the_clock() {
        let p = pod(json!([
            {"operator": "Exists", "tolerationSeconds": i64::MAX},
        ]));
        assert_eq!(
            plan_pod_eviction(&p, &[taint("a", "NoExecute", Some(NOW))], ts(NOW)),
            PodEviction::Stays
        );
    }

    #[test]
    fn a_pod_created_after_the_taint_counts_from_its_creation() {
        let mut p = pod(json!([
            {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        ]));
        p.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:59:50Z")));
        assert_eq!(
            plan_pod_eviction(
                &p,
                &[taint("a", "NoExecute", Some("2026-01-01T00:00:00Z"))],
                ts(NOW)
            ),
            PodEviction::At(ts("2026-01-01T01:00:50Z"))
        );
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t =
            |v: serde_json::Value| -> Toleration { serde_json::from_value(v).expect("toleration") };
        let mut valued = taint("k", "NoExecute", None);
        valued.value = Some("v".into());
        assert!(tolerates(&t(json!({"operator": "Exists"})), &valued));
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &valued));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &valued));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &valued
        ));
        assert!(!tolerates(
            &t(json!({"key": "j", "operator": "Exists"})),
            &valued
        ));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Bogus"})),
            &valued
        ));
    }
}
