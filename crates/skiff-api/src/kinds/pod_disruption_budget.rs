//! PodDisruptionBudgets (`policy/v1`): how many of a set of pods voluntary disruptions (the
//! Eviction subresource, hence `kubectl drain`) must leave running. The disruption controller
//! keeps their status; evictions read and decrement it.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::validation::*;
use crate::wire::{object_at, or_insert};
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `policy/v1` PodDisruptionBudgets.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["pdb"],
    subresources: &[Status],
    has_generation: true,
    ..res(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The values `spec.unhealthyPodEvictionPolicy` accepts.
pub const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["IfHealthyBudget", "AlwaysAllow"];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::policy::v1::PodDisruptionBudget,
        >())
    }

    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        // Go writes these four counts even when zero.
        let status = object_at(root, "status");
        for key in [
            "disruptionsAllowed",
            "currentHealthy",
            "desiredHealthy",
            "expectedPods",
        ] {
            or_insert(status, key, json!(0));
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_spec(field(obj, "spec"), errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Min Available",
                    "string",
                    "The minimum number of pods that must be available.",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    "The maximum number of pods that may be unavailable.",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "Calculated number of pods that may be disrupted at this time.",
                ),
                age_col(),
            ],
            pdb_cells,
        ))
    }
}

/// Kubernetes' `ValidatePodDisruptionBudgetSpec`.
fn validate_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let min_available = field(spec, "minAvailable");
    let max_unavailable = field(spec, "maxUnavailable");
    if !min_available.is_null() && !max_unavailable.is_null() {
        errs.push(FieldError::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (value, path) in [
        (min_available, "spec.minAvailable"),
        (max_unavailable, "spec.maxUnavailable"),
    ] {
        validate_int_or_percent(value, path, errs);
        if let Value::String(s) = value {
            if is_valid_percent(s) && int_or_percent_value(value) > 100 {
                errs.push(invalid_raw(
                    path,
                    s.clone(),
                    "must not be greater than 100%",
                ));
            }
        }
    }
    let selector = field(spec, "selector");
    if !selector.is_null() {
        validate_label_selector(selector, "spec.selector", errs);
    }
    let policy = field(spec, "unhealthyPodEvictionPolicy");
    if let Some(p) = policy.as_str() {
        if !UNHEALTHY_POD_EVICTION_POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                policy,
                UNHEALTHY_POD_EVICTION_POLICIES,
            ));
        }
    }
}

/// Whether the budget covers the pod: same namespace and a selector that matches its labels.
/// A missing or empty selector covers nothing, as the eviction subresource and the
/// disruption controller both hold.
pub fn covers(pdb: &Value, pod: &Value) -> bool {
    let namespace = |o: &Value| {
        o.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if namespace(pdb) != namespace(pod) {
        return false;
    }
    match crate::selector::LabelSelector::from_label_selector(field(field(pdb, "spec"), "selector"))
    {
        Ok(selector) if !selector.is_empty() => selector.matches_object(pod),
        _ => false,
    }
}

/// Go's `GetScaledValueFromIntOrPercent` rounding up: an integer as it is, a percentage of
/// `total`.
pub fn scaled_value(value: &Value, total: i64) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
        Value::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .to_string()
                })?;
            let product = percent.checked_mul(total).ok_or_else(|| {
                format!("invalid value for IntOrString: {s} of {total} overflows")
            })?;
            Ok(product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0))
        }
        _ => Err("invalid value for IntOrString: neither an integer nor a percentage".to_string()),
    }
}

/// An IntOrString as Go's `String()` prints it, or `N/A` when unset.
fn int_or_string_cell(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_string(),
    }
}

fn pdb_cells(pdb: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(pdb),
        int_or_string_cell(pdb, "/spec/minAvailable").into(),
        int_or_string_cell(pdb, "/spec/maxUnavailable").into(),
        int(pdb, "/status/disruptionsAllowed", 0).into(),
        age(pdb, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(spec: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_spec(&spec, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn validation_follows_kubernetes() {
        assert!(
            errors(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "a"}}}))
                .is_empty()
        );
        assert!(errors(json!({"maxUnavailable": "50%"})).is_empty());
        let both = errors(json!({"minAvailable": 1, "maxUnavailable": 1}));
        assert_eq!(both.len(), 1);
        assert!(
            both[0].contains("minAvailable and maxUnavailable cannot be both set"),
            "{both:?}"
        );
        let negative = errors(json!({"minAvailable": -1}));
        assert!(
            negative[0].starts_with("spec.minAvailable: Invalid value: -1"),
            "{negative:?}"
        );
        let over = errors(json!({"maxUnavailable": "150%"}));
        assert!(
            over[0].contains("must not be greater than 100%"),
            "{over:?}"
        );
        let policy = errors(json!({"unhealthyPodEvictionPolicy": "Never"}));
        assert!(
            policy[0].starts_with("spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\""),
            "{policy:?}"
        );
    }

    #[test]
    fn percentages_round_up_and_empty_selectors_cover_nothing() {
        assert_eq!(scaled_value(&json!("50%"), 3), Ok(2));
        assert_eq!(scaled_value(&json!("50%"), 4), Ok(2));
        assert_eq!(scaled_value(&json!("10%"), 0), Ok(0));
        assert_eq!(scaled_value(&json!(2), 10), Ok(2));
        assert!(scaled_value(&json!("x"), 10).is_err());
        let pod = json!({"metadata": {"namespace": "a", "labels": {"app": "web"}}});
        let pdb = |selector: Value| json!({"metadata": {"namespace": "a"}, "spec": {"selector": selector}});
        assert!(covers(&pdb(json!({"matchLabels": {"app": "web"}})), &pod));
        assert!(!covers(&pdb(json!({"matchLabels": {"app": "db"}})), &pod));
        assert!(!covers(&pdb(json!({})), &pod));
        assert!(!covers(&pdb(Value::Null), &pod));
        let other = json!({"metadata": {"namespace": "b"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}});
        assert!(!covers(&other, &pod));
    }

    #[test]
    fn the_table_prints_na_for_the_unset_bound() {
        let pdb = json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"minAvailable": 2},
            "status": {"disruptionsAllowed": 1},
        });
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().expect("time");
        let cells = pdb_cells(&pdb, now);
        assert_eq!(
            cells[..4],
            [json!("web"), json!("2"), json!("N/A"), json!(1)]
        );
        let percent = json!({"metadata": {"name": "p"}, "spec": {"maxUnavailable": "25%"}});
        let cells = pdb_cells(&percent, now);
        assert_eq!(cells[1..4], [json!("N/A"), json!("25%"), json!(0)]);
    }
}
