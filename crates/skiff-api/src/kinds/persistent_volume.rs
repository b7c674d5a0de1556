//! PersistentVolumes (`v1`, cluster-scoped): a piece of storage a claim binds to. Defaults,
//! validation with Kubernetes' messages, the `kubernetes.io/pv-protection` finalizer every new
//! volume gets (as the PersistentVolumeProtection admission plugin adds it), and the
//! `kubectl get pv` columns. What the PersistentVolume and PersistentVolumeClaim kinds share
//! (access modes, the storage quantity) lives here too.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` PersistentVolumes.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["pv"],
    subresources: &[Status],
    ..res(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The finalizer that keeps a bound volume until its claim lets go of it.
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

/// The access modes Kubernetes accepts, in the order its messages list them.
pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// The volume modes Kubernetes accepts.
pub const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

/// The reclaim policies a volume accepts.
pub const RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];

/// The volume sources Skiff can serve from a node's disk; others are accepted (the object
/// is valid Kubernetes) but no node mounts them.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "local",
    "nfs",
    "csi",
    "iscsi",
    "fc",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "cephfs",
    "rbd",
    "cinder",
    "flexVolume",
    "flocker",
    "glusterfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::core::v1::PersistentVolume,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        if let Some(spec) = child(root, "spec") {
            default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
            default_str(spec, "volumeMode", "Filesystem");
        }
        if let Some(status) = child(root, "status") {
            default_str(status, "phase", "Pending");
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_volume_spec(field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        let source = |v: &Value| -> Vec<(String, Value)> {
            VOLUME_SOURCES
                .iter()
                .filter_map(|k| field(v, "spec").get(*k).map(|s| (k.to_string(), s.clone())))
                .collect()
        };
        if source(new) != source(old) {
            errs.push(FieldError::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        let mode = |v: &Value| str_at(field(v, "spec"), "volumeMode").to_string();
        if mode(new) != mode(old) {
            errs.push(FieldError::invalid(
                "spec.volumeMode",
                &Value::from(mode(new)),
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Capacity", "string", "The volume's storage capacity."),
                col(
                    "Access Modes",
                    "string",
                    "The ways the volume can be mounted.",
                ),
                col(
                    "Reclaim Policy",
                    "string",
                    "What happens to the volume when its claim is released.",
                ),
                col("Status", "string", "The volume's phase."),
                col("Claim", "string", "The claim bound to the volume."),
                col("StorageClass", "string", "The volume's storage class."),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "The volume's attributes class.",
                ),
                col("Reason", "string", "Why the volume is in its phase."),
                age_col(),
                wide("VolumeMode", "string", "Filesystem or Block."),
            ],
            volume_cells,
        ))
    }

    fn prepare_for_write(&self, new: &mut Value, old: Option<&Value>) {
        if old.is_none() {
            add_finalizer(new, PV_PROTECTION_FINALIZER);
        }
    }
}

/// Adds `finalizer` to an object that does not carry it yet.
pub(crate) fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let finalizers = metadata
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if finalizers.is_null() {
        *finalizers = Value::Array(Vec::new());
    }
    if let Some(list) = finalizers.as_array_mut() {
        if !list.iter().any(|f| f.as_str() == Some(finalizer)) {
            list.push(Value::from(finalizer));
        }
    }
}

/// kubectl's short names of access modes, joined by commas (`RWO,ROX`).
pub fn access_modes_text(modes: &[Value]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(mode)) {
            out.push(short);
        }
    }
    out.join(",")
}

/// Checks the access modes of a volume or claim at `path`; `required` is the detail of the
/// error for an empty list, which differs between the two kinds.
pub(crate) fn validate_access_modes(
    modes: &[Value],
    path: &str,
    required: &str,
    errs: &mut Vec<FieldError>,
) {
    if modes.is_empty() {
        errs.push(FieldError::required(path, required));
    }
    let mut once_pod = false;
    for mode in modes {
        let text = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&text) {
            errs.push(FieldError::not_supported(path, mode, ACCESS_MODES));
        }
        once_pod |= text == "ReadWriteOncePod";
    }
    if once_pod && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// `ValidatePersistentVolumeSpec` for the fields Skiff acts on.
fn validate_volume_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    validate_access_modes(
        array_at(spec, "accessModes"),
        "spec.accessModes",
        "must specify at least 1 access mode",
        errs,
    );
    match field(spec, "capacity").as_object() {
        None => errs.push(FieldError::required("spec.capacity", "")),
        Some(capacity) if capacity.is_empty() => {
            errs.push(FieldError::required("spec.capacity", ""))
        }
        Some(capacity) => {
            for (key, quantity) in capacity {
                if key != "storage" || capacity.len() > 1 {
                    errs.push(FieldError::not_supported(
                        "spec.capacity",
                        &Value::from(key.as_str()),
                        &["storage"],
                    ));
                    continue;
                }
                validate_positive_quantity(quantity, "spec.capacity[storage]", errs);
            }
        }
    }
    let policy = str_at(spec, "persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !RECLAIM_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            &Value::from(policy),
            RECLAIM_POLICIES,
        ));
    }
    let class = str_at(spec, "storageClassName");
    if !class.is_empty() {
        for message in dns1123_subdomain_errors(class) {
            errs.push(FieldError::invalid(
                "spec.storageClassName",
                &Value::from(class),
                message,
            ));
        }
    }
    let mode = str_at(spec, "volumeMode");
    if !mode.is_empty() && !VOLUME_MODES.contains(&mode) {
        errs.push(FieldError::not_supported(
            "spec.volumeMode",
            &Value::from(mode),
            VOLUME_MODES,
        ));
    }
    let sources: Vec<&str> = VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|k| spec.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    match sources.len() {
        0 => errs.push(FieldError::required("spec", "must specify a volume type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            format!("spec.{}", sources[1]),
            "may not specify more than 1 volume type",
        )),
    }
    if let Some(host) = spec.get("hostPath").filter(|v| !v.is_null()) {
        let path = str_at(host, "path");
        if path.is_empty() {
            errs.push(FieldError::required("spec.hostPath.path", ""));
        } else if path.split('/').any(|p| p == "..") {
            errs.push(FieldError::invalid(
                "spec.hostPath.path",
                &Value::from(path),
                "must not contain '..'",
            ));
        }
    }
    if let Some(local) = spec.get("local").filter(|v| !v.is_null()) {
        if str_at(local, "path").is_empty() {
            errs.push(FieldError::required("spec.local.path", ""));
        }
        if field(spec, "nodeAffinity").is_null() {
            errs.push(FieldError::required(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
    }
    let claim = field(spec, "claimRef");
    if !claim.is_null() && str_at(claim, "name").is_empty() {
        errs.push(FieldError::required("spec.claimRef.name", ""));
    }
}

/// A storage quantity that parses and is above zero.
pub(crate) fn validate_positive_quantity(quantity: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let text = quantity.as_str().unwrap_or("");
    match crate::quantity::Quantity::parse(text) {
        Err(_) => errs.push(FieldError::invalid(
            path,
            quantity,
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )),
        Ok(q) if q.milli_value() <= 0 => errs.push(FieldError::invalid(
            path,
            quantity,
            "must be greater than zero",
        )),
        Ok(_) => {}
    }
}

/// The Table row of a volume, as `printPersistentVolume`.
fn volume_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim_ref = obj.pointer("/spec/claimRef");
    let claim = match claim_ref {
        Some(c) if !c.is_null() => format!("{}/{}", text(c, "/namespace"), text(c, "/name")),
        _ => String::new(),
    };
    vec![
        name(obj),
        text(obj, "/spec/capacity/storage").into(),
        access_modes_text(list(obj, "/spec/accessModes")).into(),
        text(obj, "/spec/persistentVolumeReclaimPolicy").into(),
        phase_cell(obj).into(),
        claim.into(),
        text(obj, "/spec/storageClassName").into(),
        unset_or(text(obj, "/spec/volumeAttributesClassName")).into(),
        text(obj, "/status/reason").into(),
        age(obj, now),
        text(obj, "/spec/volumeMode").into(),
    ]
}

/// The phase kubectl shows: `Terminating` once deletion started, as `printPersistentVolume`
/// and `printPersistentVolumeClaim` print it.
pub(crate) fn phase_cell(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating".to_string()
    } else {
        text(obj, "/status/phase").to_string()
    }
}

/// `<unset>` for an empty class name, as kubectl prints a missing attributes class.
pub(crate) fn unset_or(s: &str) -> String {
    if s.is_empty() {
        "<unset>".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        Strategy.validate(obj, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    fn volume() -> Value {
        json!({"metadata": {"name": "pv1"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/data/pv1"}}})
    }

    #[test]
    fn defaults_are_retain_filesystem_and_pending() {
        let mut obj = volume();
        Strategy.apply_defaults("v1", obj.as_object_mut().unwrap());
        assert_eq!(obj["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(obj["spec"]["volumeMode"], "Filesystem");
        assert_eq!(obj["status"]["phase"], "Pending");
    }

    #[test]
    fn validation_names_each_missing_or_wrong_field_as_kubernetes_does() {
        assert!(errors_of(&volume()).is_empty());
        let cases: &[(&str, Value, &str)] = &[
            (
                "no access modes",
                json!({"accessModes": []}),
                "spec.accessModes: Required value: must specify at least 1 access mode",
            ),
            (
                "unknown access mode",
                json!({"accessModes": ["Sometimes"]}),
                "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            ),
            (
                "no capacity",
                json!({"capacity": null}),
                "spec.capacity: Required value",
            ),
            (
                "other capacity",
                json!({"capacity": {"cpu": "1"}}),
                "spec.capacity: Unsupported value: \"cpu\": supported values: \"storage\"",
            ),
            (
                "no source",
                json!({"hostPath": null}),
                "spec: Required value: must specify a volume type",
            ),
            (
                "bad reclaim policy",
                json!({"persistentVolumeReclaimPolicy": "Keep"}),
                "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
            ),
        ];
        assert_eq!(cases.len(), 6);
        for (what, patch, expected) in cases {
            let mut obj = volume();
            for (k, v) in patch.as_object().unwrap() {
                obj["spec"][k] = v.clone();
            }
            let errs = errors_of(&obj);
            assert!(
                errs.iter().any(|e| e == expected),
                "{what}: {errs:?} lacks {expected}"
            );
        }
    }

    #[test]
    fn the_volume_source_cannot_change() {
        let old = volume();
        let mut new = volume();
        new["spec"]["hostPath"]["path"] = json!("/elsewhere");
        let mut errs = Vec::new();
        Strategy.validate_update(&new, &old, &mut errs);
        assert_eq!(
            errs.iter().map(FieldError::full).collect::<Vec<_>>(),
            vec!["spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"]
        );
    }

    #[test]
    fn a_new_volume_gets_the_protection_finalizer_once() {
        let mut obj = volume();
        Strategy.prepare_for_write(&mut obj, None);
        Strategy.prepare_for_write(&mut obj, None);
        assert_eq!(
            obj["metadata"]["finalizers"],
            json!([PV_PROTECTION_FINALIZER])
        );
    }

    #[test]
    fn the_row_shows_short_access_modes_and_the_claim() {
        let obj = json!({"metadata": {"name": "pv1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let mut deleting = obj.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:04:00Z");
        assert_eq!(volume_cells(&deleting, now)[4], json!("Terminating"));
        let cells = volume_cells(&obj, now);
        assert_eq!(
            cells,
            vec![
                json!("pv1"),
                json!("1Gi"),
                json!("RWO,ROX"),
                json!("Delete"),
                json!("Bound"),
                json!("default/data"),
                json!("local-path"),
                json!("<unset>"),
                json!(""),
                json!("5m"),
                json!("Filesystem")
            ]
        );
    }
}
