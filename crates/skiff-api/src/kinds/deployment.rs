//! Deployments (`apps/v1`): defaults, spec validation with the pod template, an immutable selector.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::selector::LabelSelector;
use crate::validation::*;
use crate::wire::object_at;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{
        res, ResourceInfo,
        Subresource::{Scale, Status},
    },
    validation,
};

/// `apps/v1` Deployments.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["deploy"],
    categories: &["all"],
    subresources: &[Status, Scale],
    has_generation: true,
    ..res(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        object_at(root, "status");
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::apps::v1::Deployment>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_deployment(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_deployment_spec(validation::field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        validation::immutable_selector(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(deployment_columns(), deployment_cells))
    }
}

fn validate_deployment_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    validate_selector_and_template(spec, "deployment", errs);
    validate_replica_set_template_rules(spec, errs);
    validate_deployment_strategy(field(spec, "strategy"), errs);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonnegative(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        nonnegative(
            spec.get("progressDeadlineSeconds"),
            "spec.progressDeadlineSeconds",
            errs,
        );
        if deadline <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &Value::from(deadline),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn validate_deployment_strategy(strategy: &Value, errs: &mut Vec<FieldError>) {
    let rolling = field(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "Recreate" => {
            if !rolling.is_null() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if rolling.is_null() {
                errs.push(FieldError::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ));
            } else {
                validate_rolling_update(rolling, errs);
            }
        }
        other => {
            let rendered = format!(
                "apps.DeploymentStrategy{{Type:{:?}, RollingUpdate:{}}}",
                other,
                if rolling.is_null() {
                    "(*apps.RollingUpdateDeployment)(nil)".to_string()
                } else {
                    go_struct_json(Some(rolling))
                }
            );
            errs.push(not_supported_raw(
                "spec.strategy",
                rendered,
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

fn validate_rolling_update(rolling: &Value, errs: &mut Vec<FieldError>) {
    let max_unavailable = field(rolling, "maxUnavailable");
    let max_surge = field(rolling, "maxSurge");
    let unavailable_path = "spec.strategy.rollingUpdate.maxUnavailable";
    validate_int_or_percent(max_unavailable, unavailable_path, errs);
    validate_int_or_percent(max_surge, "spec.strategy.rollingUpdate.maxSurge", errs);
    if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
        errs.push(invalid_raw(
            unavailable_path,
            go_stringer(max_unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if let Value::String(s) = max_unavailable {
        if is_valid_percent(s) && int_or_percent_value(max_unavailable) > 100 {
            errs.push(invalid_raw(
                unavailable_path,
                s.clone(),
                "must not be greater than 100%",
            ));
        }
    }
}

fn deployment_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Ready",
            "string",
            "Ready pods out of the desired number of pods.",
        ),
        col(
            "Up-to-date",
            "string",
            "Pods running the current pod template.",
        ),
        col(
            "Available",
            "string",
            "Pods ready for at least minReadySeconds.",
        ),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "The label selector of the pods."),
    ]
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let desired = int(obj, "/spec/replicas", 1);
    let ready = int(obj, "/status/readyReplicas", 0);
    let selector = obj.get("spec").and_then(|s| s.get("selector"));
    let selector = match LabelSelector::from_label_selector(selector.unwrap_or(&Value::Null)) {
        Ok(sel) => sel.to_string(),
        Err(_) => "<invalid>".to_string(),
    };
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        format!("{ready}/{desired}").into(),
        int(obj, "/status/updatedReplicas", 0).into(),
        int(obj, "/status/availableReplicas", 0).into(),
        age(obj, now),
        containers,
        images,
        selector.into(),
    ]
}

fn default_deployment(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                default_value(rolling, "maxUnavailable", json!("25%"));
                default_value(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    default_template(spec);
}
