//! Version conversion: HorizontalPodAutoscaler between `autoscaling/v1` and `autoscaling/v2`,
//! and Events between core `v1` and `events.k8s.io/v1` (in `kinds/events_event.rs`).
//!
//! HPAs are stored as v2; clients such as `kubectl autoscale` still speak v1. Conversion
//! follows Kubernetes: v1's `targetCPUUtilizationPercentage` is the v2 CPU-utilization
//! `Resource` metric, and everything v1 cannot express (other metrics, current metrics,
//! conditions and behavior) rides in `autoscaling.alpha.kubernetes.io/*` annotations so that a
//! v1 round trip loses nothing. Those annotations are removed again on the way back to v2.
//!
//! The annotations hold exactly what Kubernetes writes there: metric lists in the old
//! `autoscaling/v1` metric shape (`targetAverageUtilization`, `metricName`, ...), and the
//! behavior in the internal type's Go field names (`ScaleUp`, `StabilizationWindowSeconds`).

use serde_json::{json, Map, Value};

use crate::kinds::events_event;

/// Non-CPU-utilization metric specs carried on a v1 object.
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Current metric values carried on a v1 object.
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// Status conditions carried on a v1 object.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// Scaling behavior carried on a v1 object.
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// Every annotation the v1 conversion uses to carry v2-only data.
const ROUND_TRIP_ANNOTATIONS: &[&str] = &[
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

/// The CPU utilization a v1 HPA without a target aims for.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// Why an object could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// The object is not a JSON object with an `apiVersion`.
    #[error("object has no apiVersion")]
    MissingApiVersion,
    /// No conversion exists between the two versions of this kind.
    #[error("no conversion for kind {kind:?} from {from} to {to}")]
    Unsupported {
        /// The object's kind.
        kind: String,
        /// The object's current `apiVersion`.
        from: String,
        /// The requested `apiVersion`.
        to: String,
    },
}

/// Converts `obj` to `to_api_version`. Objects already in that version come back unchanged;
/// only HorizontalPodAutoscalers and Events convert between versions.
pub fn convert(obj: Value, to_api_version: &str) -> Result<Value, ConversionError> {
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ConversionError::MissingApiVersion)?
        .to_string();
    if from == to_api_version {
        return Ok(obj);
    }
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (from_group, _) = crate::resources::split_api_version(&from);
    let (to_group, _) = crate::resources::split_api_version(to_api_version);
    if from_group == to_group && is_custom_kind(to_group, &kind) {
        // Custom resources convert with strategy `None`: only `apiVersion` changes.
        let mut obj = obj;
        obj["apiVersion"] = Value::String(to_api_version.to_string());
        return Ok(obj);
    }
    match (kind.as_str(), from.as_str(), to_api_version) {
        ("HorizontalPodAutoscaler", "autoscaling/v2", "autoscaling/v1") => Ok(hpa_v2_to_v1(&obj)),
        ("HorizontalPodAutoscaler", "autoscaling/v1", "autoscaling/v2") => Ok(hpa_v1_to_v2(&obj)),
        ("Event", "v1", events_event::API_VERSION) => Ok(events_event::from_core(obj)),
        ("Event", events_event::API_VERSION, "v1") => Ok(events_event::to_core(obj)),
        _ => Err(ConversionError::Unsupported {
            kind,
            from,
            to: to_api_version.to_string(),
        }),
    }
}

/// Whether a kind of `group` was registered from a CustomResourceDefinition.
fn is_custom_kind(group: &str, kind: &str) -> bool {
    crate::kinds::custom_kinds().iter().any(|k| {
        k.versions
            .iter()
            .any(|v| v.group == group && v.kind == kind)
    })
}

static NULL: Value = Value::Null;

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

fn present(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

fn copy(from: &Value, key: &str, to: &mut Map<String, Value>, as_key: &str) {
    if let Some(value) = from.get(key).filter(|v| !v.is_null()) {
        to.insert(as_key.to_string(), value.clone());
    }
}

/// A quantity that Go serializes even when zero.
fn quantity_or_zero(v: &Value) -> Value {
    if v.is_null() {
        json!("0")
    } else {
        v.clone()
    }
}

fn is_cpu_resource(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && get(metric, "resource").get("name").and_then(Value::as_str) == Some("cpu")
}

/// The object's metadata with the round-trip annotations removed, the annotation map dropped
/// when that leaves it empty.
fn metadata_without_round_trip(obj: &Value) -> Map<String, Value> {
    let mut meta = obj
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let now_empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
        Some(annotations) => {
            for key in ROUND_TRIP_ANNOTATIONS {
                annotations.remove(*key);
            }
            annotations.is_empty()
        }
        None => false,
    };
    if now_empty {
        meta.remove("annotations");
    }
    meta
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// v2 -> v1

fn hpa_v2_to_v1(obj: &Value) -> Value {
    let spec = get(obj, "spec");
    let status = get(obj, "status");
    let mut meta = metadata_without_round_trip(obj);

    let mut out_spec = Map::new();
    out_spec.insert(
        "scaleTargetRef".to_string(),
        get(spec, "scaleTargetRef").clone(),
    );
    copy(spec, "minReplicas", &mut out_spec, "minReplicas");
    out_spec.insert(
        "maxReplicas".to_string(),
        spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    );
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // The first CPU resource metric decides the v1 target, whatever its target type.
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m)) {
        let utilization = get(get(get(cpu, "resource"), "target"), "averageUtilization");
        if !utilization.is_null() {
            out_spec.insert(
                "targetCPUUtilizationPercentage".to_string(),
                utilization.clone(),
            );
        }
    }
    let other_metrics: Vec<Value> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu_resource(m)
                && present(get(get(m, "resource"), "target"), "averageUtilization"))
        })
        .map(metric_spec_to_v1)
        .collect();

    let mut out_status = Map::new();
    copy(
        status,
        "observedGeneration",
        &mut out_status,
        "observedGeneration",
    );
    copy(status, "lastScaleTime", &mut out_status, "lastScaleTime");
    out_status.insert(
        "currentReplicas".to_string(),
        status.get("currentReplicas").cloned().unwrap_or(json!(0)),
    );
    out_status.insert(
        "desiredReplicas".to_string(),
        status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
    );
    let current_metrics = status
        .get("currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for metric in &current_metrics {
        if is_cpu_resource(metric) {
            let utilization = get(
                get(get(metric, "resource"), "current"),
                "averageUtilization",
            );
            if !utilization.is_null() {
                out_status.insert(
                    "currentCPUUtilizationPercentage".to_string(),
                    utilization.clone(),
                );
            }
        }
    }

    let mut carried = Map::new();
    if !other_metrics.is_empty() {
        carried.insert(
            METRIC_SPECS_ANNOTATION.to_string(),
            json!(compact(&Value::Array(other_metrics))),
        );
    }
    if !current_metrics.is_empty() {
        let statuses: Vec<Value> = current_metrics.iter().map(metric_status_to_v1).collect();
        carried.insert(
            METRIC_STATUSES_ANNOTATION.to_string(),
            json!(compact(&Value::Array(statuses))),
        );
    }
    if let Some(conditions) = status
        .get("conditions")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        carried.insert(
            CONDITIONS_ANNOTATION.to_string(),
            json!(compact(&Value::Array(conditions.clone()))),
        );
    }
    if let Some(behavior) = spec.get("behavior").filter(|b| !b.is_null()) {
        carried.insert(
            BEHAVIOR_ANNOTATION.to_string(),
            json!(compact(&behavior_to_internal(behavior))),
        );
    }
    if !carried.is_empty() {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.extend(carried);
        }
    }

    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": out_spec,
        "status": out_status,
    })
}

fn metric_spec_to_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".to_string(), get(metric, "type").clone());
    if let Some(object) = metric.get("object").filter(|v| !v.is_null()) {
        let target = get(object, "target");
        let identifier = get(object, "metric");
        let mut m = Map::new();
        m.insert("target".to_string(), get(object, "describedObject").clone());
        m.insert("metricName".to_string(), name_of(identifier));
        m.insert(
            "targetValue".to_string(),
            quantity_or_zero(get(target, "value")),
        );
        copy(identifier, "selector", &mut m, "selector");
        copy(target, "averageValue", &mut m, "averageValue");
        out.insert("object".to_string(), Value::Object(m));
    }
    if let Some(pods) = metric.get("pods").filter(|v| !v.is_null()) {
        let identifier = get(pods, "metric");
        let mut m = Map::new();
        m.insert("metricName".to_string(), name_of(identifier));
        m.insert(
            "targetAverageValue".to_string(),
            quantity_or_zero(get(get(pods, "target"), "averageValue")),
        );
        copy(identifier, "selector", &mut m, "selector");
        out.insert("pods".to_string(), Value::Object(m));
    }
    for key in ["resource", "containerResource"] {
        if let Some(resource) = metric.get(key).filter(|v| !v.is_null()) {
            let target = get(resource, "target");
            let mut m = Map::new();
            m.insert("name".to_string(), get(resource, "name").clone());
            copy(
                target,
                "averageUtilization",
                &mut m,
                "targetAverageUtilization",
            );
            copy(target, "averageValue", &mut m, "targetAverageValue");
            if key == "containerResource" {
                m.insert(
                    "container".to_string(),
                    string_or_empty(get(resource, "container")),
                );
            }
            out.insert(key.to_string(), Value::Object(m));
        }
    }
    if let Some(external) = metric.get("external").filter(|v| !v.is_null()) {
        let target = get(external, "target");
        let identifier = get(external, "metric");
        let mut m = Map::new();
        m.insert("metricName".to_string(), name_of(identifier));
        copy(identifier, "selector", &mut m, "metricSelector");
        copy(target, "value", &mut m, "targetValue");
        copy(target, "averageValue", &mut m, "targetAverageValue");
        out.insert("external".to_string(), Value::Object(m));
    }
    Value::Object(out)
}

fn metric_status_to_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".to_string(), get(metric, "type").clone());
    if let Some(object) = metric.get("object").filter(|v| !v.is_null()) {
        let current = get(object, "current");
        let identifier = get(object, "metric");
        let mut m = Map::new();
        m.insert("target".to_string(), get(object, "describedObject").clone());
        m.insert("metricName".to_string(), name_of(identifier));
        m.insert(
            "currentValue".to_string(),
            quantity_or_zero(get(current, "value")),
        );
        copy(identifier, "selector", &mut m, "selector");
        copy(current, "averageValue", &mut m, "averageValue");
        out.insert("object".to_string(), Value::Object(m));
    }
    if let Some(pods) = metric.get("pods").filter(|v| !v.is_null()) {
        let identifier = get(pods, "metric");
        let mut m = Map::new();
        m.insert("metricName".to_string(), name_of(identifier));
        m.insert(
            "currentAverageValue".to_string(),
            quantity_or_zero(get(get(pods, "current"), "averageValue")),
        );
        copy(identifier, "selector", &mut m, "selector");
        out.insert("pods".to_string(), Value::Object(m));
    }
    for key in ["resource", "containerResource"] {
        if let Some(resource) = metric.get(key).filter(|v| !v.is_null()) {
            let current = get(resource, "current");
            let mut m = Map::new();
            m.insert("name".to_string(), get(resource, "name").clone());
            copy(
                current,
                "averageUtilization",
                &mut m,
                "currentAverageUtilization",
            );
            m.insert(
                "currentAverageValue".to_string(),
                quantity_or_zero(get(current, "averageValue")),
            );
            if key == "containerResource" {
                m.insert(
                    "container".to_string(),
                    string_or_empty(get(resource, "container")),
                );
            }
            out.insert(key.to_string(), Value::Object(m));
        }
    }
    if let Some(external) = metric.get("external").filter(|v| !v.is_null()) {
        let current = get(external, "current");
        let identifier = get(external, "metric");
        let mut m = Map::new();
        m.insert("metricName".to_string(), name_of(identifier));
        copy(identifier, "selector", &mut m, "metricSelector");
        m.insert(
            "currentValue".to_string(),
            quantity_or_zero(get(current, "value")),
        );
        copy(current, "averageValue", &mut m, "currentAverageValue");
        out.insert("external".to_string(), Value::Object(m));
    }
    Value::Object(out)
}

fn name_of(identifier: &Value) -> Value {
    string_or_empty(get(identifier, "name"))
}

fn string_or_empty(v: &Value) -> Value {
    if v.is_null() {
        json!("")
    } else {
        v.clone()
    }
}

/// The behavior as Go marshals Kubernetes' internal type, which has no JSON tags: field names
/// capitalized and unset pointers as `null`.
fn behavior_to_internal(behavior: &Value) -> Value {
    let rules = |key: &str| -> Value {
        let rules = get(behavior, key);
        if rules.is_null() {
            return Value::Null;
        }
        let policies = match rules.get("policies").and_then(Value::as_array) {
            Some(list) => Value::Array(
                list.iter()
                    .map(|p| {
                        json!({
                            "Type": string_or_empty(get(p, "type")),
                            "Value": get(p, "value").as_i64().unwrap_or(0),
                            "PeriodSeconds": get(p, "periodSeconds").as_i64().unwrap_or(0),
                        })
                    })
                    .collect(),
            ),
            None => Value::Null,
        };
        json!({
            "StabilizationWindowSeconds": get(rules, "stabilizationWindowSeconds").clone(),
            "SelectPolicy": get(rules, "selectPolicy").clone(),
            "Policies": policies,
            "Tolerance": get(rules, "tolerance").clone(),
        })
    };
    json!({"ScaleUp": rules("scaleUp"), "ScaleDown": rules("scaleDown")})
}

// ---------------------------------------------------------------------------------------------
// v1 -> v2

/// Looks a key up the way Go's JSON decoder matches struct fields: case-insensitively.
fn get_folded<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_object()
        .and_then(|m| {
            m.get(key).or_else(|| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
        })
        .unwrap_or(&NULL)
}

fn behavior_from_internal(encoded: &str) -> Option<Value> {
    let parsed: Value = serde_json::from_str(encoded).ok()?;
    parsed.as_object()?;
    let rules = |key: &str| -> Option<Value> {
        let rules = get_folded(&parsed, key);
        rules.as_object()?;
        let mut out = Map::new();
        let field = |name: &str| get_folded(rules, name).clone();
        let window = field("StabilizationWindowSeconds");
        if !window.is_null() {
            out.insert("stabilizationWindowSeconds".to_string(), window);
        }
        let select = field("SelectPolicy");
        if !select.is_null() {
            out.insert("selectPolicy".to_string(), select);
        }
        if let Some(policies) = get_folded(rules, "Policies").as_array() {
            let converted = policies
                .iter()
                .map(|p| {
                    json!({
                        "type": get_folded(p, "Type").clone(),
                        "value": get_folded(p, "Value").clone(),
                        "periodSeconds": get_folded(p, "PeriodSeconds").clone(),
                    })
                })
                .collect();
            out.insert("policies".to_string(), Value::Array(converted));
        }
        let tolerance = field("Tolerance");
        if !tolerance.is_null() {
            out.insert("tolerance".to_string(), tolerance);
        }
        Some(Value::Object(out))
    };
    let mut behavior = Map::new();
    if let Some(up) = rules("ScaleUp") {
        behavior.insert("scaleUp".to_string(), up);
    }
    if let Some(down) = rules("ScaleDown") {
        behavior.insert("scaleDown".to_string(), down);
    }
    // Only well-formed, non-empty behavior moves from the annotation into the spec.
    (!behavior.is_empty()).then_some(Value::Object(behavior))
}

fn hpa_v1_to_v2(obj: &Value) -> Value {
    let spec = get(obj, "spec");
    let status = get(obj, "status");
    let annotations = get(get(obj, "metadata"), "annotations");
    let annotation = |key: &str| annotations.get(key).and_then(Value::as_str);

    let mut out_spec = Map::new();
    out_spec.insert(
        "scaleTargetRef".to_string(),
        get(spec, "scaleTargetRef").clone(),
    );
    copy(spec, "minReplicas", &mut out_spec, "minReplicas");
    out_spec.insert(
        "maxReplicas".to_string(),
        spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    );
    let mut metrics: Vec<Value> = annotation(METRIC_SPECS_ANNOTATION)
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        .map(|list| list.iter().map(metric_spec_from_v1).collect())
        .unwrap_or_default();
    let cpu_target = get(spec, "targetCPUUtilizationPercentage");
    let cpu_utilization = if cpu_target.is_null() {
        None
    } else {
        Some(cpu_target.clone())
    };
    if let Some(utilization) = cpu_utilization {
        metrics.push(cpu_metric(utilization));
    }
    // v1 used to leave the CPU target to the controller; v2 makes the default explicit.
    if metrics.is_empty() {
        metrics.push(cpu_metric(json!(DEFAULT_CPU_UTILIZATION)));
    }
    out_spec.insert("metrics".to_string(), Value::Array(metrics));
    if let Some(behavior) = annotation(BEHAVIOR_ANNOTATION).and_then(behavior_from_internal) {
        out_spec.insert("behavior".to_string(), behavior);
    }

    let mut out_status = Map::new();
    copy(
        status,
        "observedGeneration",
        &mut out_status,
        "observedGeneration",
    );
    copy(status, "lastScaleTime", &mut out_status, "lastScaleTime");
    if status
        .get("currentReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        copy(
            status,
            "currentReplicas",
            &mut out_status,
            "currentReplicas",
        );
    }
    out_status.insert(
        "desiredReplicas".to_string(),
        status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
    );
    let carried_statuses = annotation(METRIC_STATUSES_ANNOTATION)
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok());
    match carried_statuses {
        // The annotation has more detail than the single CPU percentage, so it wins.
        Some(list) => {
            let converted: Vec<Value> = list.iter().map(metric_status_from_v1).collect();
            out_status.insert("currentMetrics".to_string(), Value::Array(converted));
        }
        None => {
            let cpu = get(status, "currentCPUUtilizationPercentage");
            if !cpu.is_null() {
                out_status.insert(
                    "currentMetrics".to_string(),
                    json!([{
                        "type": "Resource",
                        "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}
                    }]),
                );
            }
        }
    }
    if let Some(conditions) =
        annotation(CONDITIONS_ANNOTATION).and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
    {
        out_status.insert("conditions".to_string(), Value::Array(conditions));
    }

    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata_without_round_trip(obj),
        "spec": out_spec,
        "status": out_status,
    })
}

fn cpu_metric(utilization: Value) -> Value {
    json!({
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization}
        }
    })
}

fn identifier(name: &Value, selector: &Value) -> Value {
    let mut m = Map::new();
    m.insert("name".to_string(), string_or_empty(name));
    if !selector.is_null() {
        m.insert("selector".to_string(), selector.clone());
    }
    Value::Object(m)
}

fn metric_spec_from_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".to_string(), get(metric, "type").clone());
    if let Some(object) = metric.get("object").filter(|v| !v.is_null()) {
        let average = get(object, "averageValue");
        let mut target = Map::new();
        let target_type = if average.is_null() {
            "Value"
        } else {
            "AverageValue"
        };
        target.insert("type".to_string(), json!(target_type));
        target.insert(
            "value".to_string(),
            quantity_or_zero(get(object, "targetValue")),
        );
        copy(object, "averageValue", &mut target, "averageValue");
        out.insert(
            "object".to_string(),
            json!({
                "describedObject": get(object, "target").clone(),
                "target": target,
                "metric": identifier(get(object, "metricName"), get(object, "selector")),
            }),
        );
    }
    if let Some(pods) = metric.get("pods").filter(|v| !v.is_null()) {
        out.insert(
            "pods".to_string(),
            json!({
                "metric": identifier(get(pods, "metricName"), get(pods, "selector")),
                "target": {
                    "type": "AverageValue",
                    "averageValue": quantity_or_zero(get(pods, "targetAverageValue")),
                },
            }),
        );
    }
    for key in ["resource", "containerResource"] {
        if let Some(resource) = metric.get(key).filter(|v| !v.is_null()) {
            let utilization = get(resource, "targetAverageUtilization");
            let mut target = Map::new();
            let target_type = if utilization.is_null() {
                "AverageValue"
            } else {
                "Utilization"
            };
            target.insert("type".to_string(), json!(target_type));
            copy(
                resource,
                "targetAverageUtilization",
                &mut target,
                "averageUtilization",
            );
            copy(resource, "targetAverageValue", &mut target, "averageValue");
            let mut m = Map::new();
            m.insert("name".to_string(), get(resource, "name").clone());
            if key == "containerResource" {
                m.insert(
                    "container".to_string(),
                    string_or_empty(get(resource, "container")),
                );
            }
            m.insert("target".to_string(), Value::Object(target));
            out.insert(key.to_string(), Value::Object(m));
        }
    }
    if let Some(external) = metric.get("external").filter(|v| !v.is_null()) {
        let value = get(external, "targetValue");
        let mut target = Map::new();
        let target_type = if value.is_null() {
            "AverageValue"
        } else {
            "Value"
        };
        target.insert("type".to_string(), json!(target_type));
        copy(external, "targetValue", &mut target, "value");
        copy(external, "targetAverageValue", &mut target, "averageValue");
        out.insert(
            "external".to_string(),
            json!({
                "metric": identifier(get(external, "metricName"), get(external, "metricSelector")),
                "target": target,
            }),
        );
    }
    Value::Object(out)
}

fn metric_status_from_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".to_string(), get(metric, "type").clone());
    if let Some(object) = metric.get("object").filter(|v| !v.is_null()) {
        let mut current = Map::new();
        current.insert(
            "value".to_string(),
            quantity_or_zero(get(object, "currentValue")),
        );
        copy(object, "averageValue", &mut current, "averageValue");
        out.insert(
            "object".to_string(),
            json!({
                "metric": identifier(get(object, "metricName"), get(object, "selector")),
                "current": current,
                "describedObject": get(object, "target").clone(),
            }),
        );
    }
    if let Some(pods) = metric.get("pods").filter(|v| !v.is_null()) {
        out.insert(
            "pods".to_string(),
            json!({
                "metric": identifier(get(pods, "metricName"), get(pods, "selector")),
                "current": {"averageValue": quantity_or_zero(get(pods, "currentAverageValue"))},
            }),
        );
    }
    for key in ["resource", "containerResource"] {
        if let Some(resource) = metric.get(key).filter(|v| !v.is_null()) {
            let mut current = Map::new();
            current.insert(
                "averageValue".to_string(),
                quantity_or_zero(get(resource, "currentAverageValue")),
            );
            copy(
                resource,
                "currentAverageUtilization",
                &mut current,
                "averageUtilization",
            );
            let mut m = Map::new();
            m.insert("name".to_string(), get(resource, "name").clone());
            if key == "containerResource" {
                m.insert(
                    "container".to_string(),
                    string_or_empty(get(resource, "container")),
                );
            }
            m.insert("current".to_string(), Value::Object(current));
            out.insert(key.to_string(), Value::Object(m));
        }
    }
    if let Some(external) = metric.get("external").filter(|v| !v.is_null()) {
        let mut current = Map::new();
        current.insert(
            "value".to_string(),
            quantity_or_zero(get(external, "currentValue")),
        );
        copy(
            external,
            "currentAverageValue",
            &mut current,
            "averageValue",
        );
        out.insert(
            "external".to_string(),
            json!({
                "metric": identifier(get(external, "metricName"), get(external, "metricSelector")),
                "current": current,
            }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl autoscale deployment web --min=2 --max=5 --cpu-percent=50` sends.
    fn kubectl_autoscale() -> Value {
        json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50
            }
        })
    }

    /// A v2 HPA using everything v1 cannot express.
    fn rich_v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "metric": {"name": "requests", "selector": {"matchLabels": {"path": "/"}}},
                        "target": {"type": "Value", "value": "2k"}
                    }},
                    {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}
                ],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                    "scaleDown": {"selectPolicy": "Min",
                                  "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}
                }
            },
            "status": {
                "observedGeneration": 3,
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "120m", "averageUtilization": 72}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "12"}}}
                ],
                "conditions": [
                    {"type": "AbleToScale", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z",
                     "reason": "ReadyForNewScale", "message": "recommended size matches current size"}
                ]
            }
        })
    }

    #[test]
    fn v1_cpu_target_becomes_a_v2_resource_metric() {
        let v2 = convert(kubectl_autoscale(), "autoscaling/v2").expect("converts");
        assert_eq!(
            v2,
            json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
                },
                "status": {"desiredReplicas": 0}
            })
        );
    }

    #[test]
    fn v1_without_target_gets_the_explicit_80_percent_default() {
        let mut v1 = kubectl_autoscale();
        v1["spec"]
            .as_object_mut()
            .map(|s| s.remove("targetCPUUtilizationPercentage"));
        let v2 = convert(v1, "autoscaling/v2").expect("converts");
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
    }

    #[test]
    fn v2_to_v1_carries_the_rest_in_annotations() {
        let v1 = convert(rich_v2(), "autoscaling/v1").expect("converts");
        assert_eq!(v1["apiVersion"], json!("autoscaling/v1"));
        assert_eq!(
            v1["spec"],
            json!({
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 60
            })
        );
        assert_eq!(
            v1["status"],
            json!({"observedGeneration": 3, "currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 72})
        );
        let annotations = &v1["metadata"]["annotations"];
        assert_eq!(annotations["team"], json!("a"));
        assert_eq!(
            annotations[METRIC_SPECS_ANNOTATION],
            json!(concat!(
                r#"[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"500Mi"}},"#,
                r#"{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"10"}},"#,
                r#"{"type":"Object","object":{"target":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","name":"main"},"#,
                r#""metricName":"requests","targetValue":"2k","selector":{"matchLabels":{"path":"/"}}}},"#,
                r#"{"type":"External","external":{"metricName":"queue","targetValue":"30"}}]"#
            ))
        );
        assert_eq!(
            annotations[METRIC_STATUSES_ANNOTATION],
            json!(concat!(
                r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":72,"currentAverageValue":"120m"}},"#,
                r#"{"type":"Pods","pods":{"metricName":"qps","currentAverageValue":"12"}}]"#
            ))
        );
        assert_eq!(
            annotations[BEHAVIOR_ANNOTATION],
            json!(concat!(
                r#"{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15}],"Tolerance":null},"#,
                r#""ScaleDown":{"StabilizationWindowSeconds":null,"SelectPolicy":"Min","Policies":[{"Type":"Percent","Value":50,"PeriodSeconds":60}],"Tolerance":null}}"#
            ))
        );
        assert!(annotations[CONDITIONS_ANNOTATION]
            .as_str()
            .is_some_and(|c| c.contains("ReadyForNewScale")));
    }

    #[test]
    fn v2_survives_a_v1_round_trip() {
        let original = rich_v2();
        let v1 = convert(original.clone(), "autoscaling/v1").expect("to v1");
        let back = convert(v1, "autoscaling/v2").expect("back to v2");
        // The CPU metric comes back last: v1 keeps it outside the annotation.
        let mut expected = original;
        if let Some(metrics) = expected["spec"]["metrics"].as_array_mut() {
            let cpu = metrics.remove(0);
            metrics.push(cpu);
        }
        assert_eq!(back, expected);
    }

    #[test]
    fn v1_survives_a_v2_round_trip() {
        let mut original = kubectl_autoscale();
        original["status"] = json!({"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 40});
        let v2 = convert(original.clone(), "autoscaling/v2").expect("to v2");
        assert_eq!(
            v2["status"]["currentMetrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}])
        );
        let back = convert(v2, "autoscaling/v1").expect("back to v1");
        let mut expected = original;
        // The current CPU value is now carried in full, as Kubernetes does.
        expected["metadata"]["annotations"] = json!({
            METRIC_STATUSES_ANNOTATION:
                r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":40,"currentAverageValue":"0"}}]"#
        });
        assert_eq!(back, expected);
    }

    #[test]
    fn stale_round_trip_annotations_are_dropped() {
        let mut v2 = rich_v2();
        v2["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]);
        v2["spec"].as_object_mut().map(|s| s.remove("behavior"));
        v2["status"] = json!({"desiredReplicas": 1});
        v2["metadata"]["annotations"] =
            json!({BEHAVIOR_ANNOTATION: "{}", METRIC_SPECS_ANNOTATION: "garbage"});
        let v1 = convert(v2, "autoscaling/v1").expect("converts");
        assert!(
            v1["metadata"].get("annotations").is_none(),
            "{}",
            v1["metadata"]
        );

        let mut garbage = kubectl_autoscale();
        garbage["metadata"]["annotations"] =
            json!({METRIC_SPECS_ANNOTATION: "not json", "keep": "me"});
        let v2 = convert(garbage, "autoscaling/v2").expect("malformed annotations are ignored");
        assert_eq!(v2["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(v2["spec"]["metrics"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn same_version_is_identity_and_other_kinds_do_not_convert() {
        let deployment =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}});
        assert_eq!(
            convert(deployment.clone(), "apps/v1"),
            Ok(deployment.clone())
        );
        assert_eq!(
            convert(deployment, "apps/v1beta2"),
            Err(ConversionError::Unsupported {
                kind: "Deployment".to_string(),
                from: "apps/v1".to_string(),
                to: "apps/v1beta2".to_string(),
            })
        );
        assert_eq!(
            convert(json!({"kind": "Pod"}), "v1"),
            Err(ConversionError::MissingApiVersion)
        );
        let v1 = kubectl_autoscale();
        assert_eq!(convert(v1.clone(), "autoscaling/v1"), Ok(v1));
    }
}
