//! PersistentVolumeClaims (`v1`): a pod's request for storage, bound to a PersistentVolume by
//! the binder. Defaults, validation with Kubernetes' messages (the spec is fixed once made,
//! but for the fields the binder fills in), the `kubernetes.io/pvc-protection` finalizer every
//! new claim gets (as the StorageObjectInUseProtection admission plugin adds it), and the
//! `kubectl get pvc` columns.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::persistent_volume::{
    access_modes_text, add_finalizer, phase_cell, unset_or, validate_access_modes,
    validate_positive_quantity, VOLUME_MODES,
};
use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` PersistentVolumeClaims.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["pvc"],
    subresources: &[Status],
    ..res(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The finalizer that keeps a claim while a pod uses it.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::core::v1::PersistentVolumeClaim,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        if let Some(spec) = child(root, "spec") {
            default_str(spec, "volumeMode", "Filesystem");
        }
        if let Some(status) = child(root, "status") {
            default_str(status, "phase", "Pending");
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_claim_spec(field(obj, "spec"), "spec", errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        if !claim_spec_change_allowed(field(new, "spec"), field(old, "spec"), old) {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Status", "string", "The claim's phase."),
                col("Volume", "string", "The volume bound to the claim."),
                col("Capacity", "string", "The bound volume's capacity."),
                col(
                    "Access Modes",
                    "string",
                    "The ways the bound volume can be mounted.",
                ),
                col("StorageClass", "string", "The claim's storage class."),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "The claim's attributes class.",
                ),
                age_col(),
                wide("VolumeMode", "string", "Filesystem or Block."),
            ],
            claim_cells,
        ))
    }

    fn prepare_for_write(&self, new: &mut Value, old: Option<&Value>) {
        if old.is_none() {
            add_finalizer(new, PVC_PROTECTION_FINALIZER);
        }
    }
}

/// `ValidatePersistentVolumeClaimSpec` for the fields Skiff acts on; `path` is where the spec
/// sits (`spec`, or a template's).
pub fn validate_claim_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_access_modes(
        array_at(spec, "accessModes"),
        &join(path, "accessModes"),
        "at least 1 access mode is required",
        errs,
    );
    let storage_path = format!("{path}.resources[storage]");
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => errs.push(FieldError::required(storage_path, "")),
        Some(quantity) => validate_positive_quantity(quantity, &storage_path, errs),
    }
    let selector = field(spec, "selector");
    if !selector.is_null() {
        validate_label_selector(selector, &join(path, "selector"), errs);
    }
    let class = str_at(spec, "storageClassName");
    if !class.is_empty() {
        for message in dns1123_subdomain_errors(class) {
            errs.push(FieldError::invalid(
                join(path, "storageClassName"),
                &Value::from(class),
                message,
            ));
        }
    }
    let mode = str_at(spec, "volumeMode");
    if !mode.is_empty() && !VOLUME_MODES.contains(&mode) {
        errs.push(FieldError::not_supported(
            join(path, "volumeMode"),
            &Value::from(mode),
            VOLUME_MODES,
        ));
    }
}

/// Whether a claim's spec may change from `old` to `new`: only `volumeName` set where it was
/// empty and `storageClassName` set where it was unset (what the binder and the default class
/// fill in), and the requests and attributes class of a bound claim.
fn claim_spec_change_allowed(new: &Value, old: &Value, old_claim: &Value) -> bool {
    let (Some(new_spec), Some(old_spec)) = (new.as_object(), old.as_object()) else {
        return new == old;
    };
    let mut allowed = new_spec.clone();
    // Takes the old value of `key` back, so that a change there does not count.
    let restore = |allowed: &mut Map<String, Value>, key: &str| {
        match old_spec.get(key) {
            Some(v) => allowed.insert(key.to_string(), v.clone()),
            None => allowed.remove(key),
        };
    };
    let unset = |key: &str| old_spec.get(key).is_none_or(Value::is_null);
    if unset("volumeName") || old_spec.get("volumeName").and_then(Value::as_str) == Some("") {
        restore(&mut allowed, "volumeName");
    }
    if unset("storageClassName") {
        restore(&mut allowed, "storageClassName");
    }
    if old_claim.pointer("/status/phase").and_then(Value::as_str) == Some("Bound") {
        restore(&mut allowed, "volumeAttributesClassName");
        let old_requests = old.pointer("/resources/requests").cloned();
        if let Some(resources) = allowed.get_mut("resources").and_then(Value::as_object_mut) {
            match old_requests {
                Some(r) => resources.insert("requests".to_string(), r),
                None => resources.remove("requests"),
            };
        }
    }
    Value::Object(allowed) == *old
}

/// The Table row of a claim, as `printPersistentVolumeClaim`: capacity and access modes are
/// the bound volume's, from the status, once a volume is named.
fn claim_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let volume = text(obj, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            text(obj, "/status/capacity/storage").to_string(),
            access_modes_text(list(obj, "/status/accessModes")),
        )
    };
    vec![
        name(obj),
        phase_cell(obj).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        text(obj, "/spec/storageClassName").into(),
        unset_or(text(obj, "/spec/volumeAttributesClassName")).into(),
        age(obj, now),
        text(obj, "/spec/volumeMode").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim() -> Value {
        json!({"metadata": {"name": "data", "namespace": "default"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    }

    fn full_errors(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn validation_requires_access_modes_and_a_storage_request() {
        let mut errs = Vec::new();
        Strategy.validate(&claim(), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let mut errs = Vec::new();
        Strategy.validate(&json!({"metadata": {"name": "x"}, "spec": {}}), &mut errs);
        assert_eq!(
            full_errors(&errs),
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ]
        );
    }

    #[test]
    fn the_binder_may_fill_volume_name_and_class_but_users_may_not_change_the_spec() {
        let old = claim();
        let mut bound = claim();
        bound["spec"]["volumeName"] = json!("pv1");
        bound["spec"]["storageClassName"] = json!("local-path");
        let mut errs = Vec::new();
        Strategy.validate_update(&bound, &old, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");

        let mut renamed = bound.clone();
        renamed["spec"]["volumeName"] = json!("pv2");
        let mut errs = Vec::new();
        Strategy.validate_update(&renamed, &bound, &mut errs);
        assert_eq!(
            full_errors(&errs),
            vec!["spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"]
        );
    }

    #[test]
    fn a_bound_claim_may_grow_its_request_a_pending_one_may_not() {
        let mut old = claim();
        let mut grown = claim();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        let mut errs = Vec::new();
        Strategy.validate_update(&grown, &old, &mut errs);
        assert_eq!(errs.len(), 1);
        old["status"] = json!({"phase": "Bound"});
        let mut errs = Vec::new();
        Strategy.validate_update(&grown, &old, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn capacity_and_modes_show_only_once_a_volume_is_named() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut obj = claim();
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        obj["status"] = json!({"phase": "Pending", "capacity": {"storage": "1Gi"},
                               "accessModes": ["ReadWriteOnce"]});
        assert_eq!(claim_cells(&obj, now)[3], json!(""));
        obj["spec"]["volumeName"] = json!("pv1");
        obj["spec"]["storageClassName"] = json!("local-path");
        assert_eq!(
            claim_cells(&obj, now),
            vec![
                json!("data"),
                json!("Pending"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO"),
                json!("local-path"),
                json!("<unset>"),
                json!("60s"),
                json!("")
            ]
        );
    }
}
