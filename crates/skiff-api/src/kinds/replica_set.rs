//! ReplicaSets (`apps/v1`): defaults, spec validation with the pod template, an immutable selector.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::selector::LabelSelector;
use crate::validation::*;
use crate::wire::{object_at, or_insert};
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{
        res, ResourceInfo,
        Subresource::{Scale, Status},
    },
    validation,
};

/// `apps/v1` ReplicaSets.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["rs"],
    categories: &["all"],
    subresources: &[Status, Scale],
    has_generation: true,
    ..res(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
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
        or_insert(object_at(root, "status"), "replicas", json!(0));
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::apps::v1::ReplicaSet>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_replica_set(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_replica_set_spec(validation::field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        validation::immutable_selector(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(replica_set_columns(), replica_set_cells))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "metadata.namespace", "status.replicas"])
    }
}

fn validate_replica_set_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    // Kubernetes names deployments in this message for replica sets too.
    validate_selector_and_template(spec, "deployment", errs);
    validate_replica_set_template_rules(spec, errs);
}

/// `metav1.FormatLabelSelector`: the canonical string, `<none>` when empty, `<error>` when bad.
fn format_label_selector(selector: Option<&Value>) -> String {
    match LabelSelector::from_label_selector(selector.unwrap_or(&Value::Null)) {
        Ok(sel) => or_none(&sel.to_string()),
        Err(_) => "<error>".to_string(),
    }
}

fn replica_set_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Desired", "integer", "The number of pods wanted."),
        col("Current", "integer", "The number of pods that exist."),
        col("Ready", "integer", "The number of ready pods."),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "The label selector of the pods."),
    ]
}

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        int(obj, "/spec/replicas", 1).into(),
        int(obj, "/status/replicas", 0).into(),
        int(obj, "/status/readyReplicas", 0).into(),
        age(obj, now),
        containers,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

fn default_replica_set(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    default_template(spec);
}
