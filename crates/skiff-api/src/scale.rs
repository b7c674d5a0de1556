//! The `autoscaling/v1` `Scale` view of a workload's replica count, which the `/scale`
//! subresource serves and clients compute alike.

use serde_json::{json, Value};

use crate::selector::LabelSelector;

/// The selector string a Scale reports: the workload's selector, canonically rendered
/// (CloneSets publish theirs in `status.labelSelector`; a ReplicationController's label map
/// reads as `matchLabels`).
fn selector_string(obj: &Value) -> String {
    if let Some(s) = obj.pointer("/status/labelSelector").and_then(Value::as_str) {
        return s.to_string();
    }
    // A ReplicationController's selector is a plain label map.
    let equality_based = obj.get("kind").and_then(Value::as_str) == Some("ReplicationController");
    obj.pointer("/spec/selector")
        .map(|s| {
            if equality_based {
                json!({"matchLabels": s})
            } else {
                s.clone()
            }
        })
        .and_then(|s| LabelSelector::from_label_selector(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The Scale view of a workload object.
pub fn scale_of(obj: &Value) -> Value {
    let md = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = md.get(f) {
            metadata[f] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}
