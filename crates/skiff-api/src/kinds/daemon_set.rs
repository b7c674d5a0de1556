//! DaemonSets (`apps/v1`): defaults, spec and update-strategy validation with Kubernetes'
//! messages, an immutable selector, and the `kubectl get ds` columns.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::selector::LabelSelector;
use crate::validation::*;
use crate::wire::{object_at, or_insert};
use crate::{
    errors::{FieldError, FieldErrorType},
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
    validation,
};

/// `apps/v1` DaemonSets.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ds"],
    categories: &["all"],
    subresources: &[Status],
    has_generation: true,
    ..res("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true)
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
        // The four counts Go's `DaemonSetStatus` declares without `omitempty`.
        let status = object_at(root, "status");
        for key in [
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ] {
            or_insert(status, key, json!(0));
        }
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::apps::v1::DaemonSet>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_daemon_set(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_daemon_set_spec(validation::field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        validation::immutable_selector(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(daemon_set_columns(), daemon_set_cells))
    }

    /// The template generation `apps/v1` shows as an annotation: 1 on create, one more on
    /// each template change, never what the client sent.
    fn prepare_for_write(&self, new: &mut Value, old: Option<&Value>) {
        let generation = match old {
            None => 1,
            Some(old) => {
                let before = template_generation(old);
                let changed = new.pointer("/spec/template") != old.pointer("/spec/template");
                if changed {
                    before.saturating_add(1)
                } else {
                    before
                }
            }
        };
        let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        let annotations = object_at(metadata, "annotations");
        annotations.insert(
            TEMPLATE_GENERATION_ANNOTATION.to_string(),
            Value::String(generation.to_string()),
        );
    }
}

/// The annotation in which `apps/v1` carries a DaemonSet's template generation.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The stored template generation (0 when absent or unreadable, as for an object stored
/// before the annotation was kept).
fn template_generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// `ValidateDaemonSetSpec`: the selector against the template, the template's restart policy
/// and deadline, the counts, and the update strategy.
fn validate_daemon_set_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let start = errs.len();
    validate_selector_and_template(spec, "daemonset", errs);
    // Unlike the Deployment's, Kubernetes' DaemonSet validation does not require a selector:
    // a missing one matches no labels, which the template check reports.
    let mut own = errs.split_off(start);
    if field(spec, "selector").is_null() {
        own.retain(|e| !(e.field == "spec.selector" && e.error_type == FieldErrorType::Required));
    }
    errs.extend(own);
    let template_spec = field(field(spec, "template"), "spec");
    if !field(spec, "template").is_null() {
        let restart = str_at(template_spec, "restartPolicy");
        if restart != "Always" {
            errs.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                &Value::from(restart),
                &["Always"],
            ));
        }
        if template_spec
            .get("activeDeadlineSeconds")
            .is_some_and(|v| !v.is_null())
        {
            errs.push(FieldError::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in DaemonSet is not Supported",
            ));
        }
    }
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    validate_update_strategy(field(spec, "updateStrategy"), errs);
    nonnegative(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
}

/// `ValidateDaemonSetUpdateStrategy` and `ValidateRollingUpdateDaemonSet`.
fn validate_update_strategy(strategy: &Value, errs: &mut Vec<FieldError>) {
    let rolling = field(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            if rolling.is_null() {
                errs.push(FieldError::required(
                    "spec.updateStrategy.rollingUpdate",
                    "",
                ));
                return;
            }
            validate_rolling_update(rolling, errs);
        }
        other => {
            let rendered = format!(
                "apps.DaemonSetUpdateStrategy{{Type:{:?}, RollingUpdate:{}}}",
                other,
                if rolling.is_null() {
                    "(*apps.RollingUpdateDaemonSet)(nil)".to_string()
                } else {
                    go_struct_json(Some(rolling))
                }
            );
            errs.push(not_supported_raw(
                "spec.updateStrategy",
                rendered,
                &["RollingUpdate", "OnDelete"],
            ));
        }
    }
}

fn validate_rolling_update(rolling: &Value, errs: &mut Vec<FieldError>) {
    const UNAVAILABLE: &str = "spec.updateStrategy.rollingUpdate.maxUnavailable";
    const SURGE: &str = "spec.updateStrategy.rollingUpdate.maxSurge";
    let max_unavailable = field(rolling, "maxUnavailable");
    let max_surge = field(rolling, "maxSurge");
    validate_int_or_percent(max_unavailable, UNAVAILABLE, errs);
    validate_int_or_percent(max_surge, SURGE, errs);
    for (value, path) in [(max_unavailable, UNAVAILABLE), (max_surge, SURGE)] {
        if let Value::String(s) = value {
            if is_valid_percent(s) && int_or_percent_value(value) > 100 {
                errs.push(invalid_raw(
                    path,
                    s.clone(),
                    "must not be greater than 100%",
                ));
            }
        }
    }
    let has_unavailable = int_or_percent_value(max_unavailable) != 0;
    let has_surge = int_or_percent_value(max_surge) != 0;
    if has_unavailable && has_surge {
        errs.push(invalid_raw(
            SURGE,
            go_stringer(max_surge),
            "may not be set when maxUnavailable is non-zero",
        ));
    } else if !has_unavailable && !has_surge {
        errs.push(FieldError::required(
            UNAVAILABLE,
            "cannot be 0 when maxSurge is 0",
        ));
    }
}

fn daemon_set_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Desired",
            "integer",
            "The number of nodes that should run the daemon pod.",
        ),
        col(
            "Current",
            "integer",
            "The number of nodes running at least one daemon pod that should.",
        ),
        col(
            "Ready",
            "integer",
            "The number of nodes whose daemon pod is ready.",
        ),
        col(
            "Up-to-date",
            "integer",
            "The number of nodes running the current pod template.",
        ),
        col(
            "Available",
            "integer",
            "The number of nodes whose daemon pod is available.",
        ),
        col(
            "Node Selector",
            "string",
            "The node labels the pod template selects nodes by.",
        ),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "The label selector of the pods."),
    ]
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let pairs: std::collections::BTreeMap<&str, &str> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or_none(&joined)
}

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    let selector = match LabelSelector::from_label_selector(
        obj.pointer("/spec/selector").unwrap_or(&Value::Null),
    ) {
        Ok(sel) => or_none(&sel.to_string()),
        Err(_) => "<error>".to_string(),
    };
    vec![
        name(obj),
        int(obj, "/status/desiredNumberScheduled", 0).into(),
        int(obj, "/status/currentNumberScheduled", 0).into(),
        int(obj, "/status/numberReady", 0).into(),
        int(obj, "/status/updatedNumberScheduled", 0).into(),
        int(obj, "/status/numberAvailable", 0).into(),
        format_labels(obj.pointer("/spec/template/spec/nodeSelector")).into(),
        age(obj, now),
        containers,
        images,
        selector.into(),
    ]
}

/// `SetDefaults_DaemonSet`: RollingUpdate with maxUnavailable 1 and maxSurge 0, ten revisions
/// kept, and the pod template's defaults.
fn default_daemon_set(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    if let Some(strategy) = child(spec, "updateStrategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                default_value(rolling, "maxUnavailable", json!(1));
                default_value(rolling, "maxSurge", json!(0));
            }
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_template(spec);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_set(spec_extra: Value) -> Value {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "agent:1"}]},
            },
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        json!({"metadata": {"name": "agent", "namespace": "default"}, "spec": spec})
    }

    fn defaulted(spec_extra: Value) -> Value {
        let mut obj = daemon_set(spec_extra);
        Strategy.apply_defaults("v1", obj.as_object_mut().expect("object"));
        obj
    }

    fn errors_of(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        Strategy.validate(obj, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn defaults_are_rolling_update_one_unavailable_no_surge_and_ten_revisions() {
        let obj = defaulted(json!({}));
        assert_eq!(
            obj["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(obj["spec"]["revisionHistoryLimit"], json!(10));
        assert_eq!(
            obj["spec"]["template"]["spec"]["restartPolicy"],
            json!("Always")
        );
        let on_delete = defaulted(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
        assert!(errors_of(&obj).is_empty(), "{:?}", errors_of(&obj));
    }

    #[test]
    fn validation_answers_with_kubernetes_messages() {
        // (spec changes, expected message)
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"selector": {"matchLabels": {"app": "other"}}}),
                "spec.template.metadata.labels: Invalid value: {\"app\":\"agent\"}: `selector` does not match template `labels`",
            ),
            (
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
            ),
            (
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}}),
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero",
            ),
            (
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%", "maxSurge": 0}}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater than 100%",
            ),
            (
                json!({"revisionHistoryLimit": -1}),
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"minReadySeconds": -2}),
                "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
            ),
        ];
        assert_eq!(cases.len(), 6);
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
    fn template_restart_policy_and_deadline_are_refused() {
        let mut obj = defaulted(json!({}));
        obj["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        let errors = errors_of(&obj);
        assert!(
            errors.iter().any(|e| e
                == "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e
                == "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in DaemonSet is not Supported"),
            "{errors:?}"
        );
    }

    #[test]
    fn template_generation_starts_at_one_and_counts_template_changes() {
        let generation =
            |obj: &Value| obj["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION].clone();
        let mut created = defaulted(json!({}));
        created["metadata"]["annotations"] = json!({TEMPLATE_GENERATION_ANNOTATION: "7"});
        Strategy.prepare_for_write(&mut created, None);
        assert_eq!(
            generation(&created),
            json!("1"),
            "a client's value is not kept"
        );
        let mut same_template = created.clone();
        same_template["spec"]["minReadySeconds"] = json!(5);
        same_template["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION] = json!("9");
        Strategy.prepare_for_write(&mut same_template, Some(&created));
        assert_eq!(generation(&same_template), json!("1"));
        let mut new_image = created.clone();
        new_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        Strategy.prepare_for_write(&mut new_image, Some(&created));
        assert_eq!(generation(&new_image), json!("2"));
    }

    #[test]
    fn a_missing_selector_matches_no_labels_and_an_empty_one_is_invalid() {
        let mut missing = defaulted(json!({}));
        missing["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("selector");
        assert_eq!(
            errors_of(&missing),
            ["spec.template.metadata.labels: Invalid value: {\"app\":\"agent\"}: `selector` does not match template `labels`"]
        );
        let empty = defaulted(json!({"selector": {}}));
        let errors = errors_of(&empty);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.selector: Invalid value")
                && errors[0].ends_with("empty selector is invalid for daemonset"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_selector_cannot_change() {
        let old = defaulted(json!({}));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "tier": "x"}});
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let mut errs = Vec::new();
        Strategy.validate_update(&new, &old, &mut errs);
        assert!(
            errs.iter()
                .any(|e| e.full().starts_with("spec.selector: Invalid value")
                    && e.full().ends_with("field is immutable")),
            "{errs:?}"
        );
    }

    #[test]
    fn printer_cells_follow_kubectl_get_ds() {
        let mut obj = defaulted(json!({}));
        obj["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "b", "disk": "ssd"});
        obj["status"] = json!({
            "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
            "updatedNumberScheduled": 1, "numberAvailable": 2, "numberMisscheduled": 0,
        });
        let printer = Strategy.printer().expect("a printer");
        let names: Vec<&str> = printer.columns.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let cells = (printer.cells)(&obj, Timestamp::now());
        assert_eq!(
            cells[1..7],
            [
                json!(3),
                json!(3),
                json!(2),
                json!(1),
                json!(2),
                json!("disk=ssd,zone=b")
            ]
        );
        assert_eq!(cells[10], json!("app=agent"));
        let mut bare = defaulted(json!({}));
        let mut root = bare.as_object_mut().expect("object").clone();
        Strategy.fill_never_omitted("v1", &mut root);
        bare = Value::Object(root);
        assert_eq!(
            bare["status"],
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0})
        );
        let cells = (printer.cells)(&bare, Timestamp::now());
        assert_eq!(cells[6], json!("<none>"));
    }
}
