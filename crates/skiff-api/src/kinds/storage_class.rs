//! StorageClasses (`storage.k8s.io/v1`, cluster-scoped): which provisioner makes volumes for a
//! claim, when (`volumeBindingMode`) and what happens to them after (`reclaimPolicy`).
//! Defaults, validation with Kubernetes' messages (provisioner, parameters, reclaim policy and
//! binding mode are fixed once made), and the `kubectl get sc` columns with the `(default)`
//! marker.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo},
};

/// `storage.k8s.io/v1` StorageClasses.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["sc"],
    ..res(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The annotation marking the class claims without one get.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// The beta spelling of [`DEFAULT_CLASS_ANNOTATION`], still honoured.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// The reclaim policies a class accepts.
const RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
/// The binding modes a class accepts.
pub const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];

/// Whether `class` carries the default-class annotation set to `true`.
pub fn is_default_class(class: &Value) -> bool {
    let annotations = class.pointer("/metadata/annotations");
    [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
        .iter()
        .any(|a| annotations.and_then(|m| m.get(*a)).and_then(Value::as_str) == Some("true"))
}

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::storage::v1::StorageClass,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_str(root, "reclaimPolicy", "Delete");
        default_str(root, "volumeBindingMode", "Immediate");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let provisioner = str_at(obj, "provisioner");
        if provisioner.is_empty() {
            errs.push(FieldError::required("provisioner", ""));
        } else {
            for message in qualified_name_errors(provisioner) {
                errs.push(FieldError::invalid(
                    "provisioner",
                    &Value::from(provisioner),
                    message,
                ));
            }
        }
        let policy = str_at(obj, "reclaimPolicy");
        if !policy.is_empty() && !RECLAIM_POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                &Value::from(policy),
                RECLAIM_POLICIES,
            ));
        }
        let mode = str_at(obj, "volumeBindingMode");
        if mode.is_empty() {
            errs.push(FieldError::required("volumeBindingMode", ""));
        } else if !BINDING_MODES.contains(&mode) {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                &Value::from(mode),
                BINDING_MODES,
            ));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        for key in ["parameters", "provisioner", "reclaimPolicy"] {
            if field(new, key) != field(old, key) {
                errs.push(FieldError::forbidden(
                    key,
                    format!("updates to {key} are forbidden."),
                ));
            }
        }
        if field(new, "volumeBindingMode") != field(old, "volumeBindingMode") {
            errs.push(FieldError::invalid(
                "volumeBindingMode",
                field(new, "volumeBindingMode"),
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Provisioner", "string", "The provisioner making volumes."),
                col(
                    "ReclaimPolicy",
                    "string",
                    "What happens to a volume when its claim is released.",
                ),
                col(
                    "VolumeBindingMode",
                    "string",
                    "When claims are bound and volumes provisioned.",
                ),
                col("AllowVolumeExpansion", "string", "Whether claims may grow."),
                age_col(),
            ],
            class_cells,
        ))
    }
}

/// The Table row of a class, as `printStorageClass`.
fn class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut shown = text(obj, "/metadata/name").to_string();
    if is_default_class(obj) {
        shown.push_str(" (default)");
    }
    let or = |pointer: &str, default: &str| {
        let v = text(obj, pointer);
        if v.is_empty() { default } else { v }.to_string()
    };
    let expansion = obj
        .get("allowVolumeExpansion")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    vec![
        shown.into(),
        text(obj, "/provisioner").into(),
        or("/reclaimPolicy", "Delete").into(),
        or("/volumeBindingMode", "Immediate").into(),
        expansion.to_string().into(),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_delete_and_immediate() {
        let mut obj = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast"});
        Strategy.apply_defaults("v1", obj.as_object_mut().unwrap());
        assert_eq!(obj["reclaimPolicy"], "Delete");
        assert_eq!(obj["volumeBindingMode"], "Immediate");
        let mut errs = Vec::new();
        Strategy.validate(&obj, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn the_provisioner_is_required_and_fixed() {
        let old = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast",
                         "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"});
        let mut errs = Vec::new();
        let mut no_provisioner = old.clone();
        no_provisioner["provisioner"] = json!("");
        Strategy.validate(&no_provisioner, &mut errs);
        assert_eq!(errs[0].full(), "provisioner: Required value");
        let mut changed = old.clone();
        changed["provisioner"] = json!("example.com/slow");
        let mut errs = Vec::new();
        Strategy.validate_update(&changed, &old, &mut errs);
        assert_eq!(
            errs.iter().map(FieldError::full).collect::<Vec<_>>(),
            vec!["provisioner: Forbidden: updates to provisioner are forbidden."]
        );
    }

    #[test]
    fn the_default_class_is_marked_in_its_name_cell() {
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "local-path", "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            class_cells(&obj, now),
            vec![
                json!("local-path (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!("false"),
                json!("10s")
            ]
        );
    }
}
