//! PodTemplates (`v1`): stored pod templates, validated and defaulted as a workload's.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo},
};

/// `v1` PodTemplates.
pub static V1: ResourceInfo = res("", "v1", "PodTemplate", "podtemplates", "podtemplate", true);

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::PodTemplate>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        crate::defaults::default_template(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_pod_template(field(obj, "template"), "template", errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Containers",
                    "string",
                    "Names of each container in the template.",
                ),
                col(
                    "Images",
                    "string",
                    "Images referenced by each container in the template.",
                ),
                col("Pod Labels", "string", "The labels for the pod template."),
            ],
            pod_template_cells,
        ))
    }
}

fn pod_template_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let containers = list(obj, "/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    let mut labels: Vec<String> = obj
        .pointer("/template/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    vec![
        name(obj),
        names.join(",").into(),
        images.join(",").into(),
        or_none(&labels.join(",")).into(),
    ]
}
