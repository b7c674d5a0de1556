//! FlowSchemas (`flowcontrol.apiserver.k8s.io/v1`): which requests go to which priority level.
//! The bootstrap objects every server keeps are in [`crate::flow_control`].

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::child;
use crate::errors::FieldError;
use crate::printers::*;
use crate::resources::{res, ResourceInfo, Subresource::Status};
use crate::wire::object_at;

/// `flowcontrol.apiserver.k8s.io/v1` FlowSchemas.
pub static V1: ResourceInfo = ResourceInfo {
    subresources: &[Status],
    has_generation: true,
    ..res(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "FlowSchema",
        "flowschemas",
        "flowschema",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The precedence a FlowSchema without one gets.
pub const DEFAULT_MATCHING_PRECEDENCE: i64 = 1000;

/// The highest precedence a FlowSchema may have.
pub const MAX_MATCHING_PRECEDENCE: i64 = 10000;

/// The distinguisher methods Kubernetes accepts.
const DISTINGUISHER_METHODS: &[&str] = &["ByUser", "ByNamespace"];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::flowcontrol::v1::FlowSchema,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        if let Some(spec) = child(root, "spec") {
            let zero = spec
                .get("matchingPrecedence")
                .is_none_or(|p| p.is_null() || p.as_i64() == Some(0));
            if zero {
                spec.insert(
                    "matchingPrecedence".into(),
                    DEFAULT_MATCHING_PRECEDENCE.into(),
                );
            }
        }
    }

    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        // The status is a struct, which Go never omits.
        object_at(root, "status");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let precedence = obj.pointer("/spec/matchingPrecedence");
        let value = precedence.and_then(Value::as_i64).unwrap_or(0);
        if !(1..=MAX_MATCHING_PRECEDENCE).contains(&value) {
            errs.push(FieldError::invalid(
                "spec.matchingPrecedence",
                precedence.unwrap_or(&Value::Null),
                format!("must be between 1 and {MAX_MATCHING_PRECEDENCE}, inclusive"),
            ));
        }
        if text(obj, "/spec/priorityLevelConfiguration/name").is_empty() {
            errs.push(FieldError::required(
                "spec.priorityLevelConfiguration.name",
                "must reference a priority level",
            ));
        }
        if let Some(method) = obj.pointer("/spec/distinguisherMethod/type") {
            if !method
                .as_str()
                .is_some_and(|m| DISTINGUISHER_METHODS.contains(&m))
            {
                errs.push(FieldError::not_supported(
                    "spec.distinguisherMethod.type",
                    method,
                    DISTINGUISHER_METHODS,
                ));
            }
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "PriorityLevel",
                    "string",
                    "The priority level the matched requests go to.",
                ),
                col(
                    "MatchingPrecedence",
                    "string",
                    "Lower values are matched first.",
                ),
                col(
                    "DistinguisherMethod",
                    "string",
                    "How matched requests are divided into flows.",
                ),
                age_col(),
                col(
                    "MissingPL",
                    "string",
                    "Whether the referenced priority level is missing.",
                ),
            ],
            flow_schema_cells,
        ))
    }
}

fn flow_schema_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let method = or_none(text(obj, "/spec/distinguisherMethod/type"));
    let missing = list(obj, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == "Dangling")
        .map(|c| text(c, "/status").to_string())
        .unwrap_or_else(|| "?".to_string());
    vec![
        name(obj),
        text(obj, "/spec/priorityLevelConfiguration/name").into(),
        int(obj, "/spec/matchingPrecedence", 0).into(),
        method.into(),
        age(obj, now),
        missing.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn precedence_defaults_and_is_bounded() {
        let mut obj = json!({"spec": {"priorityLevelConfiguration": {"name": "p"}}});
        Strategy.apply_defaults("v1", obj.as_object_mut().expect("object"));
        assert_eq!(obj["spec"]["matchingPrecedence"], 1000);
        let mut errs = Vec::new();
        Strategy.validate(&obj, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        obj["spec"]["matchingPrecedence"] = json!(10001);
        obj["spec"]["distinguisherMethod"] = json!({"type": "ByGroup"});
        Strategy.validate(&obj, &mut errs);
        let messages: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert_eq!(
            messages,
            [
                "spec.matchingPrecedence: Invalid value: 10001: must be between 1 and 10000, inclusive",
                "spec.distinguisherMethod.type: Unsupported value: \"ByGroup\": supported values: \"ByUser\", \"ByNamespace\"",
            ]
        );
    }

    #[test]
    fn rows_show_the_dangling_condition_or_a_question_mark() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().expect("time");
        let mut fs = json!({"metadata": {"name": "exempt", "creationTimestamp": "2026-12-06T09:00:00Z"},
            "spec": {"priorityLevelConfiguration": {"name": "exempt"}, "matchingPrecedence": 1}});
        assert_eq!(
            flow_schema_cells(&fs, now),
            [
                json!("exempt"),
                json!("exempt"),
                json!(1),
                json!("<none>"),
                json!("60m"),
                json!("?")
            ]
        );
        fs["spec"]["distinguisherMethod"] = json!({"type": "ByUser"});
        fs["status"] = json!({"conditions": [{"type": "Dangling", "status": "False"}]});
        let row = flow_schema_cells(&fs, now);
        assert_eq!((&row[3], &row[5]), (&json!("ByUser"), &json!("False")));
    }
}
