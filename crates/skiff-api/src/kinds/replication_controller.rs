//! ReplicationControllers (`v1`): the ReplicaSet's predecessor, with an equality-based
//! selector (a plain label map) that defaults to the template's labels.

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
    resources::{
        res, ResourceInfo,
        Subresource::{Scale, Status},
    },
};

/// `v1` ReplicationControllers.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["rc"],
    categories: &["all"],
    subresources: &[Status, Scale],
    has_generation: true,
    ..res(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
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
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::core::v1::ReplicationController,
        >())
    }

    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        or_insert(object_at(root, "status"), "replicas", json!(0));
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        let template_labels = root
            .get("spec")
            .and_then(|s| s.pointer("/template/metadata/labels"))
            .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
            .cloned();
        if let Some(labels) = template_labels {
            if let Some(spec) = child(root, "spec") {
                if spec
                    .get("selector")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                {
                    spec.insert("selector".into(), labels.clone());
                }
            }
            if let Some(metadata) = child(root, "metadata") {
                if metadata
                    .get("labels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                {
                    metadata.insert("labels".into(), labels);
                }
            }
        }
        if let Some(spec) = child(root, "spec") {
            default_value(spec, "replicas", json!(1));
            default_template(spec);
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = field(obj, "spec");
        nonnegative(spec.get("replicas"), "spec.replicas", errs);
        nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
        let selector = field(spec, "selector")
            .as_object()
            .cloned()
            .unwrap_or_default();
        if selector.is_empty() {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            validate_labels(field(spec, "selector"), "spec.selector", errs);
        }
        let template = field(spec, "template");
        if template.is_null() {
            errs.push(FieldError::required("spec.template", ""));
            return;
        }
        let labels = field(field(template, "metadata"), "labels");
        let matches = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        if !selector.is_empty() && !matches {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            ));
        }
        validate_pod_template(template, "spec.template", errs);
        let policy = field(field(template, "spec"), "restartPolicy");
        if policy.as_str().is_some_and(|p| p != "Always") {
            errs.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                policy,
                &["Always"],
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Desired", "integer", "Number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
                col("Current", "integer", "Replicas is the most recently observed number of replicas."),
                col("Ready", "integer", "The number of ready replicas for this replication controller."),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template."),
            ],
            rc_cells,
        ))
    }
}

fn rc_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    let mut selector: Vec<String> = obj
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    selector.sort();
    vec![
        name(obj),
        int(obj, "/spec/replicas", 1).into(),
        int(obj, "/status/replicas", 0).into(),
        int(obj, "/status/readyReplicas", 0).into(),
        age(obj, now),
        containers,
        images,
        or_none(&selector.join(",")).into(),
    ]
}
