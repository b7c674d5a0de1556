//! PriorityLevelConfigurations (`flowcontrol.apiserver.k8s.io/v1`): the concurrency shares and
//! queuing of each priority level. The bootstrap objects every server keeps are in
//! [`crate::flow_control`].

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::{default_value, existing};
use crate::errors::FieldError;
use crate::printers::*;
use crate::resources::{res, ResourceInfo, Subresource::Status};
use crate::wire::object_at;

/// `flowcontrol.apiserver.k8s.io/v1` PriorityLevelConfigurations.
pub static V1: ResourceInfo = ResourceInfo {
    subresources: &[Status],
    has_generation: true,
    ..res(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        "prioritylevelconfiguration",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The shares a limited level without `nominalConcurrencyShares` gets.
pub const DEFAULT_NOMINAL_CONCURRENCY_SHARES: i64 = 30;

/// The priority level types Kubernetes accepts.
const TYPES: &[&str] = &["Exempt", "Limited"];

/// The limit response types Kubernetes accepts.
const LIMIT_RESPONSES: &[&str] = &["Queue", "Reject"];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        if let Some(spec) = existing(root, "spec") {
            if let Some(exempt) = existing(spec, "exempt") {
                default_value(exempt, "nominalConcurrencyShares", json!(0));
                default_value(exempt, "lendablePercent", json!(0));
            }
            if let Some(limited) = existing(spec, "limited") {
                default_value(
                    limited,
                    "nominalConcurrencyShares",
                    json!(DEFAULT_NOMINAL_CONCURRENCY_SHARES),
                );
                default_value(limited, "lendablePercent", json!(0));
                let queuing = existing(limited, "limitResponse")
                    .and_then(|response| existing(response, "queuing"));
                if let Some(queuing) = queuing {
                    for (key, value) in [("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)]
                    {
                        if queuing.get(key).is_none_or(|v| v.is_null() || v == 0) {
                            queuing.insert(key.into(), json!(value));
                        }
                    }
                }
            }
        }
    }

    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        // The status is a struct, which Go never omits.
        object_at(root, "status");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let level_type = obj.pointer("/spec/type").unwrap_or(&Value::Null);
        match level_type.as_str() {
            None | Some("") => errs.push(FieldError::required(
                "spec.type",
                "must be 'Exempt' or 'Limited'",
            )),
            Some("Limited") if obj.pointer("/spec/limited").is_none_or(Value::is_null) => errs
                .push(FieldError::required(
                    "spec.limited",
                    "must not be empty when type is Limited",
                )),
            Some("Limited") => {
                let response = obj.pointer("/spec/limited/limitResponse/type");
                let response = response.unwrap_or(&Value::Null);
                if !response
                    .as_str()
                    .is_some_and(|r| LIMIT_RESPONSES.contains(&r))
                {
                    errs.push(FieldError::not_supported(
                        "spec.limited.limitResponse.type",
                        response,
                        LIMIT_RESPONSES,
                    ));
                }
            }
            Some(t) if !TYPES.contains(&t) => {
                errs.push(FieldError::not_supported("spec.type", level_type, TYPES))
            }
            Some(_) => {}
        }
        for pointer in [
            "/spec/limited/lendablePercent",
            "/spec/exempt/lendablePercent",
        ] {
            if let Some(value) = obj.pointer(pointer).filter(|v| !v.is_null()) {
                if !value.as_i64().is_some_and(|p| (0..=100).contains(&p)) {
                    errs.push(FieldError::invalid(
                        pointer[1..].replace('/', "."),
                        value,
                        "must be between 0 and 100, inclusive",
                    ));
                }
            }
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Type", "string", "Exempt or Limited."),
                col(
                    "NominalConcurrencyShares",
                    "string",
                    "The level's share of the server's concurrency.",
                ),
                col("Queues", "string", "The number of queues."),
                col("HandSize", "string", "The queues each flow is dealt."),
                col(
                    "QueueLengthLimit",
                    "string",
                    "The requests a queue may hold.",
                ),
                age_col(),
            ],
            priority_level_cells,
        ))
    }
}

fn priority_level_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let none = || json!("<none>");
    let limited = obj.pointer("/spec/limited").filter(|l| l.is_object());
    let shares = limited
        .and_then(|l| l.get("nominalConcurrencyShares"))
        .filter(|v| v.is_number())
        .cloned()
        .unwrap_or_else(none);
    let queuing = limited
        .and_then(|l| l.pointer("/limitResponse/queuing"))
        .filter(|q| q.is_object());
    let of_queuing = |key: &str| {
        queuing
            .and_then(|q| q.get(key))
            .filter(|v| v.is_number())
            .cloned()
            .unwrap_or_else(none)
    };
    vec![
        name(obj),
        text(obj, "/spec/type").into(),
        shares,
        of_queuing("queues"),
        of_queuing("handSize"),
        of_queuing("queueLengthLimit"),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_levels_get_kubernetes_defaults() {
        let mut obj = json!({"spec": {"type": "Limited", "limited": {
            "limitResponse": {"type": "Queue", "queuing": {}}}}});
        Strategy.apply_defaults("v1", obj.as_object_mut().expect("object"));
        assert_eq!(
            obj["spec"]["limited"],
            json!({"nominalConcurrencyShares": 30, "lendablePercent": 0,
                "limitResponse": {"type": "Queue",
                    "queuing": {"handSize": 8, "queues": 64, "queueLengthLimit": 50}}})
        );
        let mut errs = Vec::new();
        Strategy.validate(&obj, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn invalid_levels_are_refused_in_kubernetes_words() {
        let mut errs = Vec::new();
        Strategy.validate(&json!({"spec": {"type": "Limited"}}), &mut errs);
        Strategy.validate(&json!({"spec": {"type": "Fast"}}), &mut errs);
        Strategy.validate(
            &json!({"spec": {"type": "Exempt", "exempt": {"lendablePercent": 101}}}),
            &mut errs,
        );
        let messages: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert_eq!(
            messages,
            [
                "spec.limited: Required value: must not be empty when type is Limited",
                "spec.type: Unsupported value: \"Fast\": supported values: \"Exempt\", \"Limited\"",
                "spec.exempt.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive",
            ]
        );
    }

    #[test]
    fn rows_show_none_where_a_level_has_no_limit_or_queues() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().expect("time");
        let created = json!({"name": "x", "creationTimestamp": "2026-12-06T09:59:00Z"});
        let exempt = json!({"metadata": created, "spec": {"type": "Exempt",
            "exempt": {"nominalConcurrencyShares": 0}}});
        assert_eq!(
            priority_level_cells(&exempt, now),
            [
                json!("x"),
                json!("Exempt"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("60s")
            ]
        );
        let queued = json!({"metadata": created, "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 20, "limitResponse": {"type": "Queue",
            "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(
            priority_level_cells(&queued, now)[2..6],
            [json!(20), json!(128), json!(6), json!(50)]
        );
    }
}
