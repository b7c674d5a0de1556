//! Fields Kubernetes always sends. Go encodes a struct field without `omitempty`, and a struct
//! (such as `metav1.Time`) even with it, as `null`, `0`, `""` or `{}` when it is unset, whereas
//! the `k8s-openapi` types leave unset fields out. Clients built on Go's shapes rely on those
//! keys: the Python client's watch fails on a ReplicaSet without `status.replicas`. Filling them
//! in keeps Skiff's JSON key for key what a Kubernetes 1.36 server sends.

use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// Adds the keys Kubernetes never omits for the kind of `resource`, in its version, leaving
/// every value already present untouched.
pub fn fill_never_omitted(resource: &ResourceInfo, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (resource.group, resource.version, resource.kind) {
        ("apps", "v1", "Deployment") => {
            object_at(root, "status");
        }
        ("apps", "v1", "ReplicaSet") => {
            or_insert(object_at(root, "status"), "replicas", json!(0));
        }
        ("", "v1", "Pod") => fill_pod(root),
        ("", "v1", "Event") => fill_event(root),
        ("", "v1", "Service") => {
            object_at(object_at(root, "status"), "loadBalancer");
        }
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            or_insert(root, "endpoints", Value::Null);
        }
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            let status = object_at(root, "status");
            or_insert(status, "currentMetrics", Value::Null);
            or_insert(status, "desiredReplicas", json!(0));
        }
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            let status = object_at(root, "status");
            or_insert(status, "currentReplicas", json!(0));
            or_insert(status, "desiredReplicas", json!(0));
        }
        _ => {}
    }
}

/// A pod's `status` struct, and in each condition the two `metav1.Time` fields, which Go
/// writes as `null` when unset.
fn fill_pod(root: &mut Map<String, Value>) {
    let status = object_at(root, "status");
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
            or_insert(condition, "lastProbeTime", Value::Null);
            or_insert(condition, "lastTransitionTime", Value::Null);
        }
    }
}

/// A core/v1 Event: the timestamps of both event APIs, the reporting fields and `source`.
fn fill_event(root: &mut Map<String, Value>) {
    for key in ["eventTime", "firstTimestamp", "lastTimestamp"] {
        or_insert(root, key, Value::Null);
    }
    for key in ["reportingComponent", "reportingInstance"] {
        or_insert(root, key, json!(""));
    }
    object_at(root, "source");
    object_at(root, "involvedObject");
}

fn or_insert(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_string()).or_insert(value);
}

/// The object at `key`, created empty when missing or null.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("just made an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    fn filled(api_version: &str, kind: &str, mut obj: Value) -> Value {
        let resource = resources::find_by_kind(api_version, kind).expect("served kind");
        fill_never_omitted(resource, &mut obj);
        obj
    }

    #[test]
    fn a_new_replica_set_says_it_has_zero_replicas() {
        let rs = filled("apps/v1", "ReplicaSet", json!({"spec": {"replicas": 1}}));
        assert_eq!(rs["status"], json!({"replicas": 0}));
        let counted = filled("apps/v1", "ReplicaSet", json!({"status": {"replicas": 3}}));
        assert_eq!(counted["status"], json!({"replicas": 3}));
    }

    #[test]
    fn pod_conditions_carry_null_probe_times() {
        let pod = filled(
            "v1",
            "Pod",
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]}}),
        );
        assert_eq!(
            pod["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True", "lastProbeTime": null,
                   "lastTransitionTime": "2026-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn core_events_carry_both_apis_timestamps() {
        let event = filled(
            "v1",
            "Event",
            json!({"reason": "SuccessfulCreate", "firstTimestamp": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(event["eventTime"], Value::Null);
        assert!(event
            .as_object()
            .is_some_and(|e| e.contains_key("eventTime")));
        assert_eq!(event["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(event["reportingInstance"], "");
        assert_eq!(event["source"], json!({}));
    }

    #[test]
    fn autoscalers_report_their_counts_in_both_versions() {
        let v2 = filled("autoscaling/v2", "HorizontalPodAutoscaler", json!({}));
        assert_eq!(
            v2["status"],
            json!({"currentMetrics": null, "desiredReplicas": 0})
        );
        let v1 = filled("autoscaling/v1", "HorizontalPodAutoscaler", json!({}));
        assert_eq!(
            v1["status"],
            json!({"currentReplicas": 0, "desiredReplicas": 0})
        );
    }
}
