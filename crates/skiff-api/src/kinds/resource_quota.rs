//! ResourceQuotas (`v1`): per-namespace limits on object counts and compute resources. The
//! resource quota controller keeps `status.hard` and `status.used`; admission
//! (`crate::quota`) refuses what would exceed them.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::quantity::Quantity;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` ResourceQuotas.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["quota"],
    subresources: &[Status],
    ..res(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The scopes `spec.scopes` accepts.
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::ResourceQuota>())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = field(obj, "spec");
        validate_quantities(field(spec, "hard"), "spec.hard", errs);
        validate_quantities(field(field(obj, "status"), "hard"), "status.hard", errs);
        validate_quantities(field(field(obj, "status"), "used"), "status.used", errs);
        for (i, scope) in array_at(spec, "scopes").iter().enumerate() {
            if !scope.as_str().is_some_and(|s| SCOPES.contains(&s)) {
                errs.push(FieldError::not_supported(
                    index("spec.scopes", i),
                    scope,
                    SCOPES,
                ));
            }
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                age_col(),
                col(
                    "Request",
                    "string",
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                col(
                    "Limit",
                    "string",
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                ),
            ],
            quota_cells,
        ))
    }
}

/// Each quantity of a resource list must parse and not be negative, in Kubernetes' words.
fn validate_quantities(list: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(map) = list.as_object() else {
        return;
    };
    for (name, value) in map {
        let at = format!("{path}[{name}]");
        match value.as_str().map(Quantity::parse) {
            Some(Ok(q)) if q.milli_value() < 0 => errs.push(FieldError::invalid(
                at,
                value,
                "must be greater than or equal to 0",
            )),
            Some(Ok(_)) => {}
            _ => errs.push(FieldError::invalid(
                at,
                value,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )),
        }
    }
}

/// `printResourceQuota`: `name: used/hard` for each resource of `spec.hard` in name order,
/// those named `limits.*` in the Limit column and all others in the Request column.
fn quota_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let empty = Map::new();
    let hard = obj
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut names: Vec<&String> = hard.keys().collect();
    names.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for resource in names {
        let status = |which: &str| {
            obj.pointer(&format!("/status/{which}"))
                .and_then(|m| m.get(resource.as_str()))
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_string()
        };
        let entry = format!("{resource}: {}/{}", status("used"), status("hard"));
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(entry),
            _ => requests.push(entry),
        }
    }
    vec![
        name(obj),
        age(obj, now),
        requests.join(", ").into(),
        limits.join(", ").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_split_limits_from_requests_in_name_order() {
        let quota = json!({
            "metadata": {"name": "q", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"hard": {"pods": "2", "limits.memory": "1Gi", "requests.cpu": "1"}},
            "status": {"hard": {"pods": "2", "limits.memory": "1Gi", "requests.cpu": "1"},
                       "used": {"pods": "1", "limits.memory": "512Mi"}}
        });
        let now: Timestamp = "2024-01-01T00:00:10Z".parse().unwrap();
        let cells = quota_cells(&quota, now);
        assert_eq!(cells[2], json!("pods: 1/2, requests.cpu: 0/1"));
        assert_eq!(cells[3], json!("limits.memory: 512Mi/1Gi"));
    }

    #[test]
    fn negative_and_malformed_quantities_and_unknown_scopes_are_refused() {
        let mut errs = Vec::new();
        Strategy.validate(
            &json!({"spec": {"hard": {"pods": "-1", "cpu": "lots"}, "scopes": ["Sometimes"]}}),
            &mut errs,
        );
        let texts: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(
            texts.iter().any(|t| t.starts_with(
                "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0"
            )),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.hard[cpu]: Invalid value: \"lots\"")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.scopes[0]: Unsupported value: \"Sometimes\"")),
            "{texts:?}"
        );
    }
}
