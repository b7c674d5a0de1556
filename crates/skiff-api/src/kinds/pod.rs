//! Pods (`v1`): pod defaults and validation, the pod printer and the graceful deletion hook.

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, RegistryHook, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, Printer},
    resources::{
        res, ResourceInfo,
        Subresource::{Binding, Log, Status},
    },
    validation,
};

/// `v1` Pods.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["po"],
    categories: &["all"],
    subresources: &[Status, Binding, Log],
    ..res("", "v1", "Pod", "pods", "pod", true)
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Pod>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_pod(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_pod_spec(validation::field(obj, "spec"), "spec", errs);
    }

    /// A pod update checks only what may change in a running pod, not the whole spec again.
    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_pod_update(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer {
            row_conditions: Some(printers::pod_row_conditions),
            ..Printer::new(printers::pod_columns(), printers::pod_cells)
        })
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
            "spec.host",
        ])
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Pod
    }
}
