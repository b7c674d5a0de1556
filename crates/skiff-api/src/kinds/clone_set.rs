//! OpenKruise CloneSets (`apps.kruise.io/v1alpha1`).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{
        res, ResourceInfo,
        Subresource::{Scale, Status},
    },
    validation,
};

/// `apps.kruise.io/v1alpha1` CloneSets.
pub static V1ALPHA1: ResourceInfo = ResourceInfo {
    short_names: &["clone"],
    categories: &["all"],
    subresources: &[Status, Scale],
    has_generation: true,
    ..res(
        "apps.kruise.io",
        "v1alpha1",
        "CloneSet",
        "clonesets",
        "cloneset",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1ALPHA1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<crate::cloneset::CloneSet>())
    }

    fn is_custom_resource(&self) -> bool {
        true
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_clone_set(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_clone_set_spec(validation::field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validate_clone_set_update(new, old, errs);
        self.validate(new, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(clone_set_columns(), clone_set_cells))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "metadata.namespace"])
    }
}

fn validate_clone_set_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let replicas = int_at(spec, "replicas").unwrap_or(1);
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    validate_selector_and_template(&with_claim_volumes(spec), "cloneset", errs);
    let pod_spec = field(field(spec, "template"), "spec");
    let restart = str_at(pod_spec, "restartPolicy");
    if !restart.is_empty() && restart != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &Value::from(restart),
            &["Always"],
        ));
    }
    if has(pod_spec, "activeDeadlineSeconds") {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in cloneset is not Supported",
        ));
    }
    let to_delete = array_at(field(spec, "scaleStrategy"), "podsToDelete");
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<&str> = to_delete
        .iter()
        .filter_map(Value::as_str)
        .filter(|name| !seen.insert(*name))
        .collect();
    if !duplicates.is_empty() {
        errs.push(invalid_raw(
            "spec.scaleStrategy.podsToDelete",
            kruise_string_slice(field(field(spec, "scaleStrategy"), "podsToDelete")),
            format!(
                "duplicated items [{}]",
                duplicates.into_iter().collect::<Vec<_>>().join(" ")
            ),
        ));
    }
    validate_clone_set_update_strategy(field(spec, "updateStrategy"), replicas, errs);
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        nonnegative(
            spec.get("progressDeadlineSeconds"),
            "spec.progressDeadlineSeconds",
            errs,
        );
        if deadline != i64::from(i32::MAX)
            && deadline <= int_at(spec, "minReadySeconds").unwrap_or(0)
        {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &Value::from(deadline),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

/// OpenKruise's `GetScaledValueFromIntOrPercent` with rounding up.
fn scaled_value(v: &Value, total: i64) -> Result<i64, String> {
    match v {
        Value::Null => Err("nil value for IntOrString".to_string()),
        Value::Number(n) => Ok(n.as_i64().unwrap_or(0)),
        Value::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err("invalid type: string is not a percentage".to_string());
            };
            let percent: f64 = number
                .parse()
                .map_err(|_| format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))?;
            // Float arithmetic mirrors OpenKruise; the cast saturates on overflow.
            Ok((percent * total as f64 / 100.0).ceil() as i64)
        }
        _ => Err("invalid type: neither int nor percentage".to_string()),
    }
}

fn validate_clone_set_update_strategy(strategy: &Value, replicas: i64, errs: &mut Vec<FieldError>) {
    let path = "spec.updateStrategy";
    let strategy_type = str_at(strategy, "type");
    if !matches!(
        strategy_type,
        "ReCreate" | "InPlaceIfPossible" | "InPlaceOnly"
    ) {
        errs.push(FieldError::invalid(
            join(path, "type"),
            &Value::from(strategy_type),
            "must be 'ReCreate', InPlaceIfPossible or 'InPlaceOnly'",
        ));
    }
    let partition = field(strategy, "partition");
    let resolved_partition = match scaled_value(partition, replicas) {
        Ok(n) => n,
        Err(e) => {
            errs.push(FieldError::invalid(
                join(path, "partition"),
                &Value::from(go_stringer(partition)),
                format!("failed GetScaledValueFromIntOrPercent for partition: {e}"),
            ));
            0
        }
    };
    if resolved_partition < 0 {
        errs.push(FieldError::invalid(
            join(path, "partition"),
            &Value::from(resolved_partition),
            NEGATIVE,
        ));
    }
    let max_unavailable = field(strategy, "maxUnavailable");
    let mut unavailable = 0;
    if !max_unavailable.is_null() {
        match scaled_value(max_unavailable, replicas) {
            Ok(n) => unavailable = n,
            Err(e) => errs.push(FieldError::invalid(
                join(path, "maxUnavailable"),
                &Value::from(go_stringer(max_unavailable)),
                format!("failed GetScaledValueFromIntOrPercent for maxUnavailable: {e}"),
            )),
        }
    }
    let max_surge = field(strategy, "maxSurge");
    let mut surge = 0;
    if !max_surge.is_null() {
        match scaled_value(max_surge, replicas) {
            Ok(n) => surge = n,
            Err(e) => errs.push(FieldError::invalid(
                join(path, "maxSurge"),
                &Value::from(go_stringer(max_surge)),
                format!("failed GetScaledValueFromIntOrPercent for maxSurge: {e}"),
            )),
        }
        if strategy_type == "InPlaceOnly" && surge > 0 {
            errs.push(FieldError::invalid(
                join(path, "maxSurge"),
                &Value::from(go_stringer(max_surge)),
                "can not use maxSurge with strategy type InPlaceOnly",
            ));
        }
    }
    if replicas > 0 && unavailable < 1 && surge < 1 {
        errs.push(invalid_raw(
            join(path, "maxUnavailable"),
            go_stringer(max_unavailable),
            "maxUnavailable and maxSurge should not both be less than 1",
        ));
    }
}

/// Fields of a CloneSet spec OpenKruise lets an update change.
const CLONE_SET_MUTABLE: &[&str] = &[
    "replicas",
    "template",
    "scaleStrategy",
    "updateStrategy",
    "minReadySeconds",
    "lifecycle",
    "revisionHistoryLimit",
    "volumeClaimTemplates",
    "progressDeadlineSeconds",
];

fn validate_clone_set_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let strip = |spec: &Value| -> Value {
        let mut out = spec.as_object().cloned().unwrap_or_default();
        for key in CLONE_SET_MUTABLE {
            out.remove(*key);
        }
        normalized_selector(&Value::Object(out))
    };
    let (new_spec, old_spec) = (field(new, "spec"), field(old, "spec"));
    let same_selector = normalized_selector(field(new_spec, "selector"))
        == normalized_selector(field(old_spec, "selector"));
    let mut new_rest = strip(new_spec);
    let mut old_rest = strip(old_spec);
    if same_selector {
        for rest in [&mut new_rest, &mut old_rest] {
            if let Some(m) = rest.as_object_mut() {
                m.remove("selector");
            }
        }
    }
    if new_rest != old_rest {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to cloneset spec for fields other than 'replicas', 'template', 'lifecycle', 'scaleStrategy', 'updateStrategy', 'minReadySeconds', 'progressDeadlineSeconds', 'volumeClaimTemplates' and 'revisionHistoryLimit' are forbidden",
        ));
    }
    if str_at(field(new_spec, "updateStrategy"), "type") == "InPlaceOnly" {
        let old_template = field(field(old_spec, "template"), "spec");
        let new_template = field(field(new_spec, "template"), "spec");
        if let Some((op, path)) = first_disallowed_change(old_template, new_template, "") {
            errs.push(FieldError::forbidden(
                "spec",
                format!(
                    "only allowed to update images in spec for InPlaceOnly, but found {op} {path}"
                ),
            ));
        }
    }
}

/// The first JSON-patch operation between two pod specs that is not a container image
/// replacement, as `(op, path)`.
fn first_disallowed_change(old: &Value, new: &Value, path: &str) -> Option<(&'static str, String)> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, ov) in o {
                let child_path = format!("{path}/{k}");
                match n.get(k) {
                    None => return Some(("remove", child_path)),
                    Some(nv) => {
                        if let Some(found) = first_disallowed_change(ov, nv, &child_path) {
                            return Some(found);
                        }
                    }
                }
            }
            n.keys()
                .find(|k| !o.contains_key(*k))
                .map(|k| ("add", format!("{path}/{k}")))
        }
        (Value::Array(o), Value::Array(n)) => {
            for (i, (ov, nv)) in o.iter().zip(n).enumerate() {
                if let Some(found) = first_disallowed_change(ov, nv, &format!("{path}/{i}")) {
                    return Some(found);
                }
            }
            match o.len().cmp(&n.len()) {
                std::cmp::Ordering::Less => Some(("add", format!("{path}/{}", o.len()))),
                std::cmp::Ordering::Greater => Some(("remove", format!("{path}/{}", n.len()))),
                std::cmp::Ordering::Equal => None,
            }
        }
        (o, n) if o == n => None,
        _ => {
            let is_image = {
                let parts: Vec<&str> = path.split('/').collect();
                matches!(parts.as_slice(), ["", "containers", i, "image"] if i.parse::<usize>().is_ok())
            };
            if is_image {
                None
            } else {
                Some(("replace", path.to_string()))
            }
        }
    }
}

/// OpenKruise declares these with `+kubebuilder:printcolumn` on CloneSet; the server prepends
/// `Name` as it does for every custom resource with printer columns. These are the columns of
/// OpenKruise's v1alpha1 CRD before v1.8 added `UPDATED_AVAILABLE`, the set users see in its
/// documentation (`status.updatedAvailableReplicas` is still reported).
fn clone_set_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("DESIRED", "integer", "The desired number of pods."),
        col("UPDATED", "integer", "The number of pods updated."),
        col(
            "UPDATED_READY",
            "integer",
            "The number of pods updated and ready.",
        ),
        col("READY", "integer", "The number of pods ready."),
        col("TOTAL", "integer", "The number of currently all pods."),
        col("AGE", "date", AGE_DESC),
        wide(
            "CONTAINERS",
            "string",
            "The containers of currently cloneset.",
        ),
        wide("IMAGES", "string", "The images of currently cloneset."),
        wide("SELECTOR", "string", "The selector of currently cloneset."),
    ]
}

/// A custom resource's integer printer column: absent values are `null` cells.
fn crd_integer(obj: &Value, pointer: &str) -> Value {
    match obj.pointer(pointer) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        _ => Value::Null,
    }
}

/// A custom resource's string printer column. Only the first match of a `[*]` path is shown,
/// as the server evaluates these paths.
fn crd_string(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::from(s.as_str()),
        Some(other) => Value::from(other.to_string()),
    }
}

fn clone_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let age = match obj.pointer("/metadata/creationTimestamp") {
        Some(Value::String(ts)) => match ts.parse::<Timestamp>() {
            Ok(ts) => since(Some(ts), now).into(),
            Err(_) => "<invalid>".into(),
        },
        _ => Value::Null,
    };
    vec![
        name(obj),
        crd_integer(obj, "/spec/replicas"),
        crd_integer(obj, "/status/updatedReplicas"),
        crd_integer(obj, "/status/updatedReadyReplicas"),
        crd_integer(obj, "/status/readyReplicas"),
        crd_integer(obj, "/status/replicas"),
        age,
        crd_string(obj.pointer("/spec/template/spec/containers/0/name")),
        crd_string(obj.pointer("/spec/template/spec/containers/0/image")),
        crd_string(obj.pointer("/status/labelSelector")),
    ]
}

/// The spec with a volume per claim template in the pod template, as each pod gets it: a
/// container may mount a template's claim by the template's name without declaring the
/// volume, as OpenKruise's webhook allows.
fn with_claim_volumes(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let names: Vec<String> = array_at(&spec, "volumeClaimTemplates")
        .iter()
        .map(|t| str_at(field(t, "metadata"), "name").to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return spec;
    }
    let Some(pod_spec) = spec
        .pointer_mut("/template/spec")
        .and_then(Value::as_object_mut)
    else {
        return spec;
    };
    let volumes = pod_spec
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(volumes) = volumes.as_array_mut() {
        for name in names {
            if !volumes.iter().any(|v| str_at(v, "name") == name) {
                volumes.push(json!({"name": name,
                                    "persistentVolumeClaim": {"claimName": name}}));
            }
        }
    }
    spec
}

fn default_clone_set(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_template(spec);
    for claim in each_object(spec, "volumeClaimTemplates") {
        if let Some(claim_spec) = child(claim, "spec") {
            default_value(claim_spec, "volumeMode", json!("Filesystem"));
        }
        if let Some(status) = child(claim, "status") {
            default_str(status, "phase", "Pending");
        }
    }
    // Both strategies are plain structs in OpenKruise's types, so they always appear.
    default_value(spec, "scaleStrategy", json!({}));
    if let Some(strategy) = child(spec, "updateStrategy") {
        default_str(strategy, "type", "ReCreate");
        if matches!(
            str_of(strategy, "type"),
            "InPlaceIfPossible" | "InPlaceOnly"
        ) {
            default_value(strategy, "inPlaceUpdateStrategy", json!({}));
        }
        default_value(strategy, "partition", json!(0));
        default_value(strategy, "maxUnavailable", json!("20%"));
        default_value(strategy, "maxSurge", json!(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clone_set(templates: Value) -> Value {
        let mut obj = json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "main", "image": "busybox",
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                "volumeClaimTemplates": templates}});
        crate::defaults::apply_defaults(&V1ALPHA1, &mut obj);
        obj
    }

    #[test]
    fn a_container_may_mount_a_claim_template_by_name_but_not_an_undeclared_volume() {
        let templated = clone_set(json!([{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]));
        let errs = crate::validation::validate_create(&V1ALPHA1, &templated);
        assert!(errs.is_empty(), "{errs:?}");
        let untemplated = clone_set(json!([]));
        let errs = crate::validation::validate_create(&V1ALPHA1, &untemplated);
        assert_eq!(
            errs.iter().map(FieldError::full).collect::<Vec<_>>(),
            vec!["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\""]
        );
    }
}
