//! HorizontalPodAutoscalers (`autoscaling/v2`, stored, and `autoscaling/v1`).

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::wire::{object_at, or_insert};
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
    validation,
};

/// `autoscaling/v2` HorizontalPodAutoscalers, the preferred and storage version.
pub static V2: ResourceInfo = ResourceInfo {
    short_names: &["hpa"],
    categories: &["all"],
    subresources: &[Status],
    // The autoscaler's strategy sets no generation.
    ..res(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
    )
};

/// `autoscaling/v1` HorizontalPodAutoscalers, converted to v2 for storage.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["hpa"],
    categories: &["all"],
    subresources: &[Status],
    storage_version: "v2",
    ..res(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V2, &V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn fill_never_omitted(&self, version: &str, root: &mut Map<String, Value>) {
        let status = object_at(root, "status");
        match version {
            "v1" => or_insert(status, "currentReplicas", json!(0)),
            _ => or_insert(status, "currentMetrics", Value::Null),
        }
        or_insert(status, "desiredReplicas", json!(0));
    }

    fn typed(&self, version: &str) -> Option<TypedVersion> {
        use k8s_openapi::api::autoscaling::{v1, v2};
        Some(match version {
            "v1" => TypedVersion::of::<v1::HorizontalPodAutoscaler>(),
            _ => TypedVersion::of::<v2::HorizontalPodAutoscaler>(),
        })
    }

    fn apply_defaults(&self, version: &str, root: &mut Map<String, Value>) {
        match version {
            "v1" => default_hpa_v1(root),
            _ => default_hpa_v2(root),
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_hpa_spec(validation::field(obj, "spec"), errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(hpa_columns(), hpa_cells))
    }
}

fn validate_hpa_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let min = int_at(spec, "minReplicas");
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if let Some(min) = min {
        if min < 1 {
            errs.push(FieldError::invalid(
                "spec.minReplicas",
                &Value::from(min),
                "must be greater than or equal to 1",
            ));
        }
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than 0",
        ));
    }
    if let Some(min) = min {
        if max < min {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                &Value::from(max),
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    // Kubernetes looks at the metrics only once the target is sound, and at the behavior only
    // once the metrics are.
    let before = errs.len();
    validate_object_reference(field(spec, "scaleTargetRef"), "spec.scaleTargetRef", errs);
    if errs.len() > before {
        return;
    }
    for (i, metric) in array_at(spec, "metrics").iter().enumerate() {
        validate_metric_spec(metric, &index("spec.metrics", i), errs);
    }
    if errs.len() > before {
        return;
    }
    let behavior = field(spec, "behavior");
    if !behavior.is_null() {
        for key in ["scaleUp", "scaleDown"] {
            let rules = field(behavior, key);
            if !rules.is_null() {
                validate_scaling_rules(rules, &join("spec.behavior", key), errs);
            }
        }
    }
}

fn validate_object_reference(reference: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in ["kind", "name"] {
        let value = str_at(reference, key);
        if value.is_empty() {
            errs.push(FieldError::required(join(path, key), ""));
        } else {
            for msg in path_segment_errors(value) {
                errs.push(FieldError::invalid(
                    join(path, key),
                    &Value::from(value),
                    msg,
                ));
            }
        }
    }
}

const METRIC_SOURCES: &[(&str, &str)] = &[
    ("Object", "object"),
    ("Pods", "pods"),
    ("Resource", "resource"),
    ("External", "external"),
    ("ContainerResource", "containerResource"),
];

fn validate_metric_spec(metric: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let metric_type = str_at(metric, "type");
    if metric_type.is_empty() {
        errs.push(FieldError::required(
            join(path, "type"),
            "must specify a metric source type",
        ));
    }
    let present: Vec<&str> = METRIC_SOURCES
        .iter()
        .map(|(_, f)| *f)
        .filter(|f| metric.get(*f).is_some_and(|v| !v.is_null()))
        .collect();
    if let Some(first) = present.first() {
        let source = field(metric, first);
        let source_path = join(path, first);
        match *first {
            "resource" => validate_resource_source(source, &source_path, false, errs),
            "containerResource" => validate_resource_source(source, &source_path, true, errs),
            "pods" => validate_pods_source(source, &source_path, errs),
            "object" => validate_object_source(source, &source_path, errs),
            "external" => validate_external_source(source, &source_path, errs),
            _ => {}
        }
    }
    let expected = METRIC_SOURCES
        .iter()
        .find(|(t, _)| *t == metric_type)
        .map(|(_, f)| *f);
    match expected {
        Some(expected) => {
            if !present.contains(&expected) {
                errs.push(FieldError::required(
                    join(path, expected),
                    "must populate information for the given metric source",
                ));
            }
        }
        None => errs.push(FieldError::not_supported(
            join(path, "type"),
            &Value::from(metric_type),
            &[
                "ContainerResource",
                "External",
                "Object",
                "Pods",
                "Resource",
            ],
        )),
    }
    if present.len() != 1 {
        for extra in present.iter().filter(|p| Some(**p) != expected) {
            errs.push(FieldError::forbidden(
                join(path, extra),
                "must populate the given metric source only",
            ));
        }
    }
}

/// The sign of a Kubernetes quantity string: -1, 0 or 1.
fn quantity_sign(q: &Value) -> i32 {
    let s = match q {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return 0,
    };
    let digits: String = s
        .trim_start_matches(['+', '-'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if digits.chars().all(|c| c == '0' || c == '.') {
        0
    } else if s.starts_with('-') {
        -1
    } else {
        1
    }
}

fn validate_metric_target(target: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let target_type = str_at(target, "type");
    if target_type.is_empty() {
        errs.push(FieldError::required(
            join(path, "type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(target_type, "Utilization" | "Value" | "AverageValue") {
        errs.push(FieldError::invalid(
            join(path, "type"),
            &Value::from(target_type),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for key in ["value", "averageValue"] {
        if let Some(q) = target.get(key).filter(|v| !v.is_null()) {
            if quantity_sign(q) != 1 {
                errs.push(invalid_raw(
                    join(path, key),
                    go_stringer(q),
                    "must be positive",
                ));
            }
        }
    }
    if let Some(utilization) = int_at(target, "averageUtilization") {
        if utilization < 1 {
            errs.push(FieldError::invalid(
                join(path, "averageUtilization"),
                &Value::from(utilization),
                "must be greater than 0",
            ));
        }
    }
}

fn validate_resource_source(
    source: &Value,
    path: &str,
    container: bool,
    errs: &mut Vec<FieldError>,
) {
    if str_at(source, "name").is_empty() {
        errs.push(FieldError::required(
            join(path, "name"),
            "must specify a resource name",
        ));
    }
    if container && str_at(source, "container").is_empty() {
        errs.push(FieldError::required(
            join(path, "container"),
            "must specify a container",
        ));
    }
    let target = field(source, "target");
    let target_path = join(path, "target");
    validate_metric_target(target, &target_path, errs);
    let (utilization, average) = (
        has(target, "averageUtilization"),
        has(target, "averageValue"),
    );
    if !utilization && !average {
        errs.push(FieldError::required(
            join(&target_path, "averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if utilization && average {
        errs.push(FieldError::forbidden(
            join(&target_path, "averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

fn validate_metric_identifier(source: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let metric = field(source, "metric");
    let name = str_at(metric, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            join(&join(path, "metric"), "name"),
            "must specify a metric name",
        ));
    } else {
        for msg in path_segment_errors(name) {
            errs.push(FieldError::invalid(
                join(&join(path, "metric"), "name"),
                &Value::from(name),
                msg,
            ));
        }
    }
}

fn validate_pods_source(source: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_metric_identifier(source, path, errs);
    let target = field(source, "target");
    let target_path = join(path, "target");
    validate_metric_target(target, &target_path, errs);
    if !has(target, "averageValue") {
        errs.push(FieldError::required(
            join(&target_path, "averageValue"),
            "must specify a positive target averageValue",
        ));
    }
}

fn validate_object_source(source: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_object_reference(
        field(source, "describedObject"),
        &join(path, "describedObject"),
        errs,
    );
    validate_metric_identifier(source, path, errs);
    let target = field(source, "target");
    let target_path = join(path, "target");
    validate_metric_target(target, &target_path, errs);
    if !has(target, "value") && !has(target, "averageValue") {
        errs.push(FieldError::required(
            join(&target_path, "value"),
            "must set either a target value or averageValue",
        ));
    }
}

fn validate_external_source(source: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_metric_identifier(source, path, errs);
    let target = field(source, "target");
    let target_path = join(path, "target");
    validate_metric_target(target, &target_path, errs);
    let (value, average) = (has(target, "value"), has(target, "averageValue"));
    if !value && !average {
        errs.push(FieldError::required(
            join(&target_path, "value"),
            "must set either a target value for metric or a per-pod target",
        ));
    }
    if value && average {
        errs.push(FieldError::forbidden(
            join(&target_path, "value"),
            "may not set both a target value for metric and a per-pod target",
        ));
    }
}

fn validate_scaling_rules(rules: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(window) = int_at(rules, "stabilizationWindowSeconds") {
        if window < 0 {
            errs.push(FieldError::invalid(
                join(path, "stabilizationWindowSeconds"),
                &Value::from(window),
                "must be greater than or equal to zero",
            ));
        }
        if window > 3600 {
            errs.push(FieldError::invalid(
                join(path, "stabilizationWindowSeconds"),
                &Value::from(window),
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(policy) = rules.get("selectPolicy").and_then(Value::as_str) {
        if !matches!(policy, "Disabled" | "Max" | "Min") {
            errs.push(FieldError::not_supported(
                join(path, "selectPolicy"),
                &Value::from(policy),
                &["Disabled", "Max", "Min"],
            ));
        }
    }
    let policies = array_at(rules, "policies");
    let policies_path = join(path, "policies");
    if policies.is_empty() {
        errs.push(FieldError::required(
            policies_path.as_str(),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let p_path = index(&policies_path, i);
        let policy_type = str_at(policy, "type");
        if !matches!(policy_type, "Pods" | "Percent") {
            errs.push(FieldError::not_supported(
                join(&p_path, "type"),
                &Value::from(policy_type),
                &["Percent", "Pods"],
            ));
        }
        let value = int_at(policy, "value").unwrap_or(0);
        if value <= 0 {
            errs.push(FieldError::invalid(
                join(&p_path, "value"),
                &Value::from(value),
                "must be greater than zero",
            ));
        }
        let period = int_at(policy, "periodSeconds").unwrap_or(0);
        if period <= 0 {
            errs.push(FieldError::invalid(
                join(&p_path, "periodSeconds"),
                &Value::from(period),
                "must be greater than zero",
            ));
        }
        if period > 1800 {
            errs.push(FieldError::invalid(
                join(&p_path, "periodSeconds"),
                &Value::from(period),
                "must be less than or equal to 1800",
            ));
        }
    }
}

fn hpa_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Reference", "string", "The workload the autoscaler scales."),
        col(
            "Targets",
            "string",
            "Current and target values of the metrics.",
        ),
        col("MinPods", "string", "The lower limit of replicas."),
        col("MaxPods", "string", "The upper limit of replicas."),
        col("Replicas", "string", "The current number of replicas."),
        age_col(),
    ]
}

/// `Quantity.String()` of an optional quantity: a missing one prints `<nil>`, as in Go.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<nil>".to_string(),
    }
}

fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// `formatHPAMetrics`: up to two `current/target` pairs, in spec order, matched to statuses by
/// position as Kubernetes matches them.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let mut shown: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let source_of = |key: &str| status.and_then(|s| present(s, key));
        let entry = match text(spec, "/type") {
            kind @ ("External" | "Object") => {
                let key = if kind == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.get(key).and_then(|s| s.get("target"));
                let avg = target.and_then(|t| present(t, "averageValue"));
                let current = source_of(key).and_then(|s| s.get("current"));
                match avg {
                    Some(avg) => {
                        let cur = current
                            .and_then(|c| present(c, "averageValue"))
                            .map(|c| quantity(Some(c)))
                            .unwrap_or_else(|| "<unknown>".to_string());
                        format!("{cur}/{} (avg)", quantity(Some(avg)))
                    }
                    None => {
                        let cur = match source_of(key) {
                            Some(_) => quantity(current.and_then(|c| present(c, "value"))),
                            None => "<unknown>".to_string(),
                        };
                        let want = quantity(target.and_then(|t| present(t, "value")));
                        format!("{cur}/{want}")
                    }
                }
            }
            "Pods" => {
                let cur = match source_of("pods") {
                    Some(s) => quantity(s.pointer("/current/averageValue")),
                    None => "<unknown>".to_string(),
                };
                format!(
                    "{cur}/{}",
                    quantity(spec.pointer("/pods/target/averageValue"))
                )
            }
            kind @ ("Resource" | "ContainerResource") => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source = spec.get(key);
                let resource_name = source.map(|s| text(s, "/name")).unwrap_or("");
                let target = source.and_then(|s| s.get("target"));
                match target.and_then(|t| present(t, "averageValue")) {
                    Some(avg) => {
                        let cur = match source_of(key) {
                            Some(s) => quantity(s.pointer("/current/averageValue")),
                            None => "<unknown>".to_string(),
                        };
                        format!("{resource_name}: {cur}/{}", quantity(Some(avg)))
                    }
                    None => {
                        let cur = source_of(key)
                            .and_then(|s| s.pointer("/current/averageUtilization"))
                            .and_then(Value::as_i64)
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<unknown>".to_string());
                        let want = target
                            .and_then(|t| t.get("averageUtilization"))
                            .and_then(Value::as_i64)
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<auto>".to_string());
                        format!("{resource_name}: {cur}/{want}")
                    }
                }
            }
            _ => "<unknown type>".to_string(),
        };
        shown.push(entry);
    }
    let count = shown.len();
    if count > MAX {
        shown.truncate(MAX);
        format!("{} + {} more...", shown.join(", "), count - MAX)
    } else {
        shown.join(", ")
    }
}

/// The metric specs and statuses of an HPA in either served version; autoscaling/v1's single
/// CPU target is read as the v2 `Resource` metric it converts to.
fn hpa_metrics(hpa: &Value) -> (Vec<Value>, Vec<Value>) {
    if hpa.pointer("/spec/metrics").is_some() || hpa.pointer("/status/currentMetrics").is_some() {
        return (
            list(hpa, "/spec/metrics").to_vec(),
            list(hpa, "/status/currentMetrics").to_vec(),
        );
    }
    let specs = hpa
        .pointer("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .map(|target| {
            vec![json!({"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}
            }})]
        })
        .unwrap_or_default();
    let statuses = hpa
        .pointer("/status/currentCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .map(|current| {
            vec![json!({"type": "Resource", "resource": {
                "name": "cpu",
                "current": {"averageUtilization": current}
            }})]
        })
        .unwrap_or_default();
    (specs, statuses)
}

fn hpa_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(hpa, "/spec/scaleTargetRef/kind"),
        text(hpa, "/spec/scaleTargetRef/name")
    );
    let (specs, statuses) = hpa_metrics(hpa);
    let min_pods = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<unset>".to_string());
    vec![
        name(hpa),
        reference.into(),
        format_hpa_metrics(&specs, &statuses).into(),
        min_pods.into(),
        int(hpa, "/spec/maxReplicas", 0).into(),
        int(hpa, "/status/currentReplicas", 0).into(),
        age(hpa, now),
    ]
}

fn default_hpa_v1(root: &mut Map<String, Value>) {
    if let Some(spec) = child(root, "spec") {
        default_value(spec, "minReplicas", json!(1));
    }
}

fn default_hpa_v2(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_value(spec, "minReplicas", json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(|m| m.is_empty());
    if no_metrics {
        spec.insert(
            "metrics".to_string(),
            json!([{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}
                }
            }]),
        );
    }
    // Behavior is only filled in when the client gave one; an absent behavior keeps the
    // controller's built-in rules.
    if let Some(behavior) = existing(spec, "behavior") {
        let scale_up = behavior.get("scaleUp").cloned();
        behavior.insert(
            "scaleUp".to_string(),
            merge_scaling_rules(scale_up, default_scale_up_rules()),
        );
        let scale_down = behavior.get("scaleDown").cloned();
        behavior.insert(
            "scaleDown".to_string(),
            merge_scaling_rules(scale_down, default_scale_down_rules()),
        );
    }
}

/// The scale-up rules an HPA behavior gets when it gives none: no stabilization, and the
/// larger of four pods or doubling every fifteen seconds.
fn default_scale_up_rules() -> Value {
    json!({
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}
        ]
    })
}

/// The scale-down rules an HPA behavior gets when it gives none: all pods may go every fifteen
/// seconds. The stabilization window stays unset so the controller's flag decides it.
fn default_scale_down_rules() -> Value {
    json!({
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}
        ]
    })
}

/// Overlays the fields a client set on the default rules, field by field.
fn merge_scaling_rules(given: Option<Value>, mut defaults: Value) -> Value {
    let (Some(given), Some(target)) = (given, defaults.as_object_mut()) else {
        return defaults;
    };
    let Some(given) = given.as_object() else {
        return defaults;
    };
    for key in [
        "selectPolicy",
        "stabilizationWindowSeconds",
        "policies",
        "tolerance",
    ] {
        if let Some(value) = given.get(key).filter(|v| !v.is_null()) {
            target.insert(key.to_string(), value.clone());
        }
    }
    defaults
}
