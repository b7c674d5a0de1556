//! StatefulSets (`apps/v1`): defaults, spec validation with Kubernetes' messages, the fields
//! an update may change, the scale subresource and the `kubectl get sts` columns.

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
    validation,
};

/// `apps/v1` StatefulSets.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["sts"],
    categories: &["all"],
    subresources: &[Status, Scale],
    has_generation: true,
    ..res(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
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

/// The spec fields an update may change; Kubernetes lists them in its refusal.
const UPDATABLE_FIELDS: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

impl KindStrategy for Strategy {
    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        // Go's `StatefulSetStatus` declares these two without `omitempty`.
        let status = object_at(root, "status");
        or_insert(status, "replicas", json!(0));
        or_insert(status, "availableReplicas", json!(0));
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::apps::v1::StatefulSet>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_stateful_set(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_stateful_set_spec(validation::field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        let strip = |obj: &Value| {
            let mut spec = field(obj, "spec").as_object().cloned().unwrap_or_default();
            for key in UPDATABLE_FIELDS {
                spec.remove(*key);
            }
            spec
        };
        if strip(new) != strip(old) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(stateful_set_columns(), stateful_set_cells))
    }
}

/// `ValidateStatefulSetSpec`.
fn validate_stateful_set_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            &Value::from(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = field(spec, "updateStrategy");
    let rolling = field(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if !rolling.is_null() {
                errs.push(invalid_raw(
                    "spec.updateStrategy.rollingUpdate",
                    go_struct_json(Some(rolling)),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if !rolling.is_null() {
                validate_rolling_update(rolling, errs);
            }
        }
        _ => errs.push(invalid_raw(
            "spec.updateStrategy",
            go_struct_json(Some(strategy)),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    nonnegative(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonnegative(
        field(spec, "ordinals").get("start"),
        "spec.ordinals.start",
        errs,
    );
    let retention = field(spec, "persistentVolumeClaimRetentionPolicy");
    for key in ["whenDeleted", "whenScaled"] {
        let value = str_at(retention, key);
        if !matches!(value, "Retain" | "Delete") {
            errs.push(FieldError::not_supported(
                format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                &Value::from(value),
                &["Delete", "Retain"],
            ));
        }
    }
    let service_name = str_at(spec, "serviceName");
    if !service_name.is_empty() {
        for message in dns1123_label_errors(service_name) {
            errs.push(FieldError::invalid(
                "spec.serviceName",
                &Value::from(service_name),
                message,
            ));
        }
    }
    if validate_selector_and_template_labels(spec, "statefulset", errs) {
        validate_template_metadata(field(spec, "template"), "spec.template", errs);
        let pod_spec = field(field(spec, "template"), "spec");
        let restart = str_at(pod_spec, "restartPolicy");
        if restart != "Always" {
            errs.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                &Value::from(restart),
                &["Always"],
            ));
        }
        if pod_spec
            .get("activeDeadlineSeconds")
            .is_some_and(|v| !v.is_null())
        {
            errs.push(FieldError::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in StatefulSet is not Supported",
            ));
        }
    }
}

/// `validateRollingUpdateStatefulSet`: a non-negative partition and a maxUnavailable that is
/// a positive number or a percentage of at most 100.
fn validate_rolling_update(rolling: &Value, errs: &mut Vec<FieldError>) {
    const UNAVAILABLE: &str = "spec.updateStrategy.rollingUpdate.maxUnavailable";
    nonnegative(
        rolling.get("partition"),
        "spec.updateStrategy.rollingUpdate.partition",
        errs,
    );
    let max_unavailable = field(rolling, "maxUnavailable");
    if max_unavailable.is_null() {
        return;
    }
    validate_int_or_percent(max_unavailable, UNAVAILABLE, errs);
    if int_or_percent_value(max_unavailable) == 0 {
        errs.push(invalid_raw(
            UNAVAILABLE,
            go_stringer(max_unavailable),
            "cannot be 0",
        ));
    }
    if let Value::String(s) = max_unavailable {
        if is_valid_percent(s) && int_or_percent_value(max_unavailable) > 100 {
            errs.push(invalid_raw(
                UNAVAILABLE,
                s.clone(),
                "must not be greater than 100%",
            ));
        }
    }
}

fn stateful_set_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", "Number of the pod with ready state"),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
    ]
}

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let desired = int(obj, "/spec/replicas", 1);
    let ready = int(obj, "/status/readyReplicas", 0);
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        format!("{ready}/{desired}").into(),
        age(obj, now),
        containers,
        images,
    ]
}

/// `SetDefaults_StatefulSet`: OrderedReady, RollingUpdate with partition 0 and maxUnavailable
/// 1, claims retained, one replica, ten revisions kept; then the pod template's defaults and
/// each claim template's (`volumeMode: Filesystem`, `status.phase: Pending`).
fn default_stateful_set(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                default_value(rolling, "partition", json!(0));
                default_value(rolling, "maxUnavailable", json!(1));
            }
        }
    }
    if let Some(retention) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(retention, "whenDeleted", "Retain");
        default_str(retention, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_template(spec);
    if let Some(claims) = spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for claim in claims.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(claim_spec) = child(claim, "spec") {
                default_str(claim_spec, "volumeMode", "Filesystem");
            }
            if let Some(status) = child(claim, "status") {
                default_str(status, "phase", "Pending");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stateful_set(spec_extra: Value) -> Value {
        let mut spec = json!({
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}],
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn defaulted(spec_extra: Value) -> Value {
        let mut obj = stateful_set(spec_extra);
        Strategy.apply_defaults("v1", obj.as_object_mut().expect("object"));
        obj
    }

    fn errors_of(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        Strategy.validate(obj, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn defaults_follow_set_defaults_stateful_set() {
        let obj = defaulted(json!({}));
        let spec = &obj["spec"];
        assert_eq!(spec["podManagementPolicy"], json!("OrderedReady"));
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], json!(1));
        assert_eq!(spec["revisionHistoryLimit"], json!(10));
        assert_eq!(spec["template"]["spec"]["restartPolicy"], json!("Always"));
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            json!("Filesystem")
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"],
            json!({"phase": "Pending"})
        );
        let on_delete = defaulted(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
        // Mounts of claim templates are not volumes of the template, and that is valid.
        assert!(errors_of(&obj).is_empty(), "{:?}", errors_of(&obj));
    }

    #[test]
    fn validation_answers_with_kubernetes_messages() {
        // (spec changes, expected message)
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"selector": {"matchLabels": {"app": "other"}}}),
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ),
            (
                json!({"replicas": -1}),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"podManagementPolicy": "Sometimes"}),
                "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
            ),
            (
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1, "maxUnavailable": 1}}}),
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 0}}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0",
            ),
            (
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%"}}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 120%: must not be greater than 100%",
            ),
            (
                json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}),
                "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":1}: only allowed for updateStrategy 'RollingUpdate'",
            ),
            (
                json!({"ordinals": {"start": -3}}),
                "spec.ordinals.start: Invalid value: -3: must be greater than or equal to 0",
            ),
            (
                json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep", "whenScaled": "Retain"}}),
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": supported values: \"Delete\", \"Retain\"",
            ),
            (
                json!({"revisionHistoryLimit": -1}),
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ),
        ];
        assert_eq!(cases.len(), 10);
        for (i, (extra, expected)) in cases.into_iter().enumerate() {
            let obj = defaulted(extra);
            let errors = errors_of(&obj);
            assert!(
                errors.iter().any(|e| e == expected),
                "case {i}: {errors:?} lacks {expected}"
            );
        }
    }

    #[test]
    fn template_restart_policy_deadline_and_service_name_are_checked() {
        let mut obj = defaulted(json!({"serviceName": "Web_Service"}));
        obj["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        let errors = errors_of(&obj);
        for expected in [
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
        ] {
            assert!(errors.iter().any(|e| e == expected), "{errors:?} lacks {expected}");
        }
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.serviceName: Invalid value: \"Web_Service\"")),
            "{errors:?}"
        );
    }

    #[test]
    fn an_update_may_change_only_the_listed_fields() {
        let old = defaulted(json!({}));
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        scaled["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        let mut errs = Vec::new();
        Strategy.validate_update(&scaled, &old, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let mut renamed = old.clone();
        renamed["spec"]["serviceName"] = json!("other");
        let mut errs = Vec::new();
        Strategy.validate_update(&renamed, &old, &mut errs);
        assert_eq!(
            errs.iter().map(FieldError::full).collect::<Vec<_>>(),
            ["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
        );
    }

    #[test]
    fn printer_cells_follow_kubectl_get_sts() {
        let mut obj = defaulted(json!({"replicas": 3}));
        obj["status"] = json!({"replicas": 3, "readyReplicas": 2});
        let printer = Strategy.printer().expect("a printer");
        let names: Vec<&str> = printer.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Ready", "Age", "Containers", "Images"]);
        let cells = (printer.cells)(&obj, Timestamp::now());
        assert_eq!(cells[1], json!("2/3"));
        assert_eq!(cells[3], json!("nginx"));
        assert_eq!(cells[4], json!("nginx:1"));
        let mut root = defaulted(json!({})).as_object().expect("object").clone();
        Strategy.fill_never_omitted("v1", &mut root);
        assert_eq!(
            root["status"],
            json!({"replicas": 0, "availableReplicas": 0})
        );
    }
}
