//! Namespaces (`v1`): DNS-label names, the `kubernetes` finalizer and the namespace lifecycle.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, NameRule, RegistryHook, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` Namespaces.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ns"],
    subresources: &[Status],
    ..res("", "v1", "Namespace", "namespaces", "namespace", false)
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Namespace>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_namespace(root);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Label
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_namespace(obj, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Status", "string", "The phase of the namespace."),
                age_col(),
            ],
            namespace_cells,
        ))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "status.phase"])
    }

    /// Kubernetes serves no `deletecollection` on namespaces.
    fn serves_delete_collection(&self) -> bool {
        false
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Namespace
    }
}

fn validate_namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, finalizer) in array_at(field(obj, "spec"), "finalizers")
        .iter()
        .enumerate()
    {
        let name = finalizer.as_str().unwrap_or("");
        for msg in qualified_name_errors(name) {
            errs.push(FieldError::invalid(
                index("spec.finalizers", i),
                &Value::from(name),
                msg,
            ));
        }
    }
}

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), text(obj, "/status/phase").into(), age(obj, now)]
}

fn default_namespace(root: &mut Map<String, Value>) {
    // SetDefaults_Namespace: every named namespace carries its own name as a label, so that
    // namespace selectors can pick namespaces by name.
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        if let Some(labels) = child(root, "metadata").and_then(|m| child(m, "labels")) {
            labels.insert(
                "kubernetes.io/metadata.name".to_string(),
                Value::String(name),
            );
        }
    }
    // The `kubernetes` finalizer is not a default: the namespace strategy adds it on create
    // only (the registry does), because the namespace lifecycle removes it later and a default
    // would put it back on that very update.
    if let Some(status) = child(root, "status") {
        default_str(status, "phase", "Active");
    }
}
