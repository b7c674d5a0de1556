//! Jobs (`batch/v1`): defaults, the generated selector and pod labels, spec validation with
//! Kubernetes' messages, an immutable template, and the printer columns `kubectl get jobs`
//! shows.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::selector::LabelSelector;
use crate::validation::*;
use crate::wire::object_at;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
    validation,
};

/// The label holding the Job's uid on its pods, which the generated selector matches.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label holding the Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The unprefixed uid label Kubernetes still adds for older selectors.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// The unprefixed name label Kubernetes still adds for older selectors.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// The most completions (and parallelism) an Indexed Job may ask for.
const MAX_INDEXED_COMPLETIONS: i64 = 100_000;

/// `batch/v1` Jobs.
pub static V1: ResourceInfo = ResourceInfo {
    categories: &["all"],
    subresources: &[Status],
    has_generation: true,
    ..res("batch", "v1", "Job", "jobs", "job", true)
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
        object_at(root, "status");
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::batch::v1::Job>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_job(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = validation::field(obj, "spec");
        validate_job_spec(spec, "spec", errs);
        if spec.get("selector").is_none_or(Value::is_null) {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            validate_label_selector(field(spec, "selector"), "spec.selector", errs);
        }
        selector_matches_template(spec, errs);
        validate_generated_selector(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        let (new_spec, old_spec) = (field(new, "spec"), field(old, "spec"));
        validation::immutable_selector(new, old, errs);
        for key in ["completions", "completionMode"] {
            if new_spec.get(key) != old_spec.get(key) {
                errs.push(FieldError::invalid(
                    format!("spec.{key}"),
                    field(new_spec, key),
                    IMMUTABLE,
                ));
            }
        }
        if new_spec.get("template") != old_spec.get("template") {
            errs.push(invalid_raw(
                "spec.template",
                go_struct_json(new_spec.get("template")),
                IMMUTABLE,
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(job_columns(), job_cells))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "metadata.namespace", "status.successful"])
    }

    fn default_propagation(&self) -> Option<(&'static str, &'static str)> {
        Some(("Orphan", "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"))
    }
}

/// `SetDefaults_Job`, then the selector and pod labels the Job strategy generates on create
/// (the object's uid is already set when defaults run), then the pod template's defaults.
fn default_job(root: &mut Map<String, Value>) {
    let uid = root
        .get("metadata")
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = child(root, "spec") else {
        return;
    };
    if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i64::from(i32::MAX)
    };
    default_value(spec, "backoffLimit", json!(backoff));
    default_str(spec, "completionMode", "NonIndexed");
    default_value(spec, "suspend", json!(false));
    let replacement = if is_unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default_str(spec, "podReplacementPolicy", replacement);
    default_value(spec, "manualSelector", json!(false));
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && !uid.is_empty() {
        generate_selector(spec, &uid, &name);
    }
    default_template(spec);
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, child(root, "metadata")) {
        let empty = meta
            .get("labels")
            .is_none_or(|l| l.as_object().is_none_or(Map::is_empty));
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
}

/// `generateSelector`: the four labels on the pod template (a value the user already set is
/// kept, and validation then refuses it) and a selector on the uid label.
fn generate_selector(spec: &mut Map<String, Value>, uid: &str, name: &str) {
    if let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
    {
        for (key, value) in [
            (LEGACY_CONTROLLER_UID_LABEL, uid),
            (LEGACY_JOB_NAME_LABEL, name),
            (CONTROLLER_UID_LABEL, uid),
            (JOB_NAME_LABEL, name),
        ] {
            if !labels.contains_key(key) {
                labels.insert(key.into(), json!(value));
            }
        }
    }
    if is_unset(spec, "selector") {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {CONTROLLER_UID_LABEL: uid}}),
        );
    }
}

/// `validateGeneratedSelector`: without `manualSelector`, the template must carry the generated
/// labels and the selector must be the generated one.
fn validate_generated_selector(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field(obj, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true)
        || spec.get("selector").is_none_or(Value::is_null)
    {
        return;
    }
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let labels = field(field(field(spec, "template"), "metadata"), "labels");
    for (key, expected) in [
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ] {
        let path = format!("spec.template.metadata.labels[{key}]");
        match labels.get(key).and_then(Value::as_str) {
            None => errs.push(FieldError::required(path, expected)),
            Some(actual) if actual != expected => errs.push(FieldError::invalid(
                path,
                labels,
                format!("must be '{expected}'"),
            )),
            Some(_) => {}
        }
    }
    let selects_uid = LabelSelector::from_label_selector(field(spec, "selector"))
        .map(|s| {
            let mut expected = Map::new();
            expected.insert(CONTROLLER_UID_LABEL.into(), json!(uid));
            s.matches(&expected)
        })
        .unwrap_or(false);
    if !selects_uid {
        errs.push(FieldError::invalid(
            "spec.selector",
            field(spec, "selector"),
            "`selector` not auto-generated",
        ));
    }
}

/// `validateJobSpec` on a Job's or a CronJob template's spec at `path`: counts, completion mode,
/// and a pod template whose restart policy is `OnFailure` or `Never`.
pub(crate) fn validate_job_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec.get(key), &join(path, key), errs);
    }
    validate_failure_and_success_policies(spec, path, errs);
    if let Some(mode) = spec.get("completionMode").filter(|m| !m.is_null()) {
        match mode.as_str() {
            Some("NonIndexed") => {}
            Some("Indexed") => {
                let when = "when completion mode is Indexed";
                match int_at(spec, "completions") {
                    None => errs.push(FieldError::required(join(path, "completions"), when)),
                    Some(c)
                        if c > MAX_INDEXED_COMPLETIONS
                            && spec.get("backoffLimitPerIndex").is_none_or(Value::is_null) =>
                    {
                        errs.push(FieldError::invalid(
                            join(path, "completions"),
                            &Value::from(c),
                            format!(
                                "must be less than or equal to {MAX_INDEXED_COMPLETIONS} {when}"
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                if let Some(p) =
                    int_at(spec, "parallelism").filter(|p| *p > MAX_INDEXED_COMPLETIONS)
                {
                    errs.push(FieldError::invalid(
                        join(path, "parallelism"),
                        &Value::from(p),
                        format!("must be less than or equal to {MAX_INDEXED_COMPLETIONS} {when}"),
                    ));
                }
            }
            _ => errs.push(FieldError::not_supported(
                join(path, "completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            )),
        }
    }
    let has_failure_policy = spec.get("podFailurePolicy").is_some_and(|p| !p.is_null());
    if let Some(policy) = spec.get("podReplacementPolicy").filter(|p| !p.is_null()) {
        if has_failure_policy && policy.as_str() != Some("Failed") {
            errs.push(FieldError::not_supported(
                join(path, "podReplacementPolicy"),
                policy,
                &["Failed"],
            ));
        } else if !matches!(policy.as_str(), Some("TerminatingOrFailed" | "Failed")) {
            errs.push(FieldError::not_supported(
                join(path, "podReplacementPolicy"),
                policy,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template = field(spec, "template");
    let template_path = join(path, "template");
    validate_pod_template(template, &template_path, errs);
    let restart = str_at(field(template, "spec"), "restartPolicy");
    if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported(
            join(&template_path, "spec.restartPolicy"),
            &Value::from(restart),
            &["OnFailure", "Never"],
        ));
    } else if has_failure_policy && restart != "Never" {
        errs.push(FieldError::invalid(
            join(&template_path, "spec.restartPolicy"),
            &Value::from(restart),
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

/// An `Invalid value` error whose value Kubernetes leaves out of the message.
fn invalid_without_value(path: String, detail: &str) -> FieldError {
    let mut err = FieldError::invalid(path, &Value::Null, detail);
    err.bad_value = None;
    err
}

/// The rules for `backoffLimitPerIndex`, `maxFailedIndexes`, `podFailurePolicy` and
/// `successPolicy`, with Kubernetes' messages: the per-index fields and the success policy
/// need Indexed mode, `FailIndex` needs a limit per index, each failure rule names exit codes
/// or pod conditions (not both) of containers the template has.
fn validate_failure_and_success_policies(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let indexed = str_at(spec, "completionMode") == "Indexed";
    let per_index = spec.get("backoffLimitPerIndex").filter(|v| !v.is_null());
    if let Some(max) = spec.get("maxFailedIndexes").filter(|v| !v.is_null()) {
        if per_index.is_none() {
            errs.push(FieldError::required(
                join(path, "backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
        if indexed {
            if let (Some(m), Some(c)) = (max.as_i64(), int_at(spec, "completions")) {
                if m > c {
                    errs.push(FieldError::invalid(
                        join(path, "maxFailedIndexes"),
                        max,
                        "must be less than or equal to completions",
                    ));
                }
            }
        }
    }
    if !indexed {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
                errs.push(FieldError::invalid(
                    join(path, key),
                    v,
                    "requires indexed completion mode",
                ));
            }
        }
        if let Some(v) = spec.get("successPolicy").filter(|v| !v.is_null()) {
            errs.push(invalid_raw(
                join(path, "successPolicy"),
                go_struct_json(Some(v)),
                "requires indexed completion mode",
            ));
        }
    }
    let Some(policy) = spec.get("podFailurePolicy").filter(|v| !v.is_null()) else {
        return;
    };
    let template_spec = spec.pointer("/template/spec");
    let container_names: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .filter_map(|key| {
            template_spec
                .and_then(|s| s.get(*key))
                .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let rules_path = join(path, "podFailurePolicy.rules");
    let rules = policy.get("rules").and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let action_path = format!("{rule_path}.action");
        let supported = ["Count", "FailIndex", "FailJob", "Ignore"];
        match rule.get("action").and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(
                action_path,
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "FailIndex" if per_index.is_none() => errs.push(FieldError::invalid(
                action_path,
                &Value::from("FailIndex"),
                "requires the backoffLimitPerIndex to be set",
            )),
            a if !supported.contains(&a) => errs.push(FieldError::not_supported(
                action_path,
                &Value::from(a),
                &supported,
            )),
            _ => {}
        }
        let on_exit_codes = rule.get("onExitCodes").filter(|v| !v.is_null());
        let on_conditions = rule
            .get("onPodConditions")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if let Some(codes) = on_exit_codes {
            let codes_path = format!("{rule_path}.onExitCodes");
            match codes.get("operator").and_then(Value::as_str).unwrap_or("") {
                "" => errs.push(FieldError::required(
                    format!("{codes_path}.operator"),
                    "valid values: [\"In\" \"NotIn\"]",
                )),
                "In" | "NotIn" => {}
                other => errs.push(FieldError::not_supported(
                    format!("{codes_path}.operator"),
                    &Value::from(other),
                    &["In", "NotIn"],
                )),
            }
            if let Some(name) = codes.get("containerName").and_then(Value::as_str) {
                if !container_names.contains(&name) {
                    errs.push(FieldError::invalid(
                        format!("{codes_path}.containerName"),
                        &Value::from(name),
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            let values = codes.get("values").and_then(Value::as_array);
            if values.is_none_or(|v| v.is_empty()) {
                errs.push(FieldError::invalid(
                    format!("{codes_path}.values"),
                    &json!([]),
                    "at least one value is required",
                ));
            }
        }
        if on_exit_codes.is_some() && on_conditions {
            errs.push(invalid_without_value(
                rule_path.clone(),
                "specifying both OnExitCodes and OnPodConditions is not supported",
            ));
        }
        if on_exit_codes.is_none() && !on_conditions {
            errs.push(invalid_without_value(
                rule_path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
}

fn job_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "Status of the job."),
        col("Completions", "string", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."),
        col("Duration", "string", "Time required to complete the job."),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
    ]
}

/// Whether the Job has a condition of `type_` with status `True`.
fn has_condition(obj: &Value, type_: &str) -> bool {
    list(obj, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == type_ && text(c, "/status") == "True")
}

/// `printJob`'s status word.
fn job_status(obj: &Value) -> &'static str {
    if has_condition(obj, "Complete") {
        "Complete"
    } else if has_condition(obj, "Failed") {
        "Failed"
    } else if obj.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(obj, "Suspended") {
        "Suspended"
    } else if has_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(obj, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(obj, "/status/succeeded", 0);
    let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(obj, "/spec/parallelism", 0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        timestamp(obj, "/status/startTime"),
        timestamp(obj, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start).as_secs()),
        (Some(start), Some(end)) => human_duration(end.duration_since(start).as_secs()),
    };
    let [containers, images] = container_cells(obj);
    let selector = match LabelSelector::from_label_selector(
        obj.pointer("/spec/selector").unwrap_or(&Value::Null),
    ) {
        Ok(sel) => or_none(&sel.to_string()),
        Err(_) => "<error>".to_string(),
    };
    vec![
        name(obj),
        job_status(obj).into(),
        completions.into(),
        duration.into(),
        age(obj, now),
        containers,
        images,
        selector.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use crate::validation::{validate_create, validate_update};

    fn job(extra_spec: Value) -> Value {
        let mut spec = json!({
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                                  "restartPolicy": "Never"}},
        });
        for (k, v) in extra_spec.as_object().cloned().unwrap_or_default() {
            spec[k] = v;
        }
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
               "spec": spec})
    }

    fn defaulted(mut obj: Value) -> Value {
        apply_defaults(&V1, &mut obj);
        obj
    }

    fn messages(obj: &Value) -> Vec<String> {
        validate_create(&V1, obj)
            .iter()
            .map(FieldError::full)
            .collect()
    }

    #[test]
    fn defaults_match_kubernetes_for_a_bare_job() {
        let obj = defaulted(job(json!({})));
        let spec = &obj["spec"];
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = json!({
            "batch.kubernetes.io/controller-uid": "u-1",
            "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u-1",
            "job-name": "pi",
        });
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(obj["metadata"]["labels"], labels);
        assert!(messages(&obj).is_empty(), "{:?}", messages(&obj));
    }

    #[test]
    fn completions_alone_default_parallelism_only() {
        let obj = defaulted(job(json!({"completions": 5})));
        assert_eq!(obj["spec"]["completions"], 5);
        assert_eq!(obj["spec"]["parallelism"], 1);
        let obj = defaulted(job(json!({"parallelism": 3})));
        assert!(obj["spec"].get("completions").is_none());
    }

    #[test]
    fn restart_policy_always_is_refused_with_kubernetes_message() {
        let mut obj = job(json!({}));
        obj["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let obj = defaulted(obj);
        assert!(messages(&obj).contains(
            &"spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"".to_string()
        ), "{:?}", messages(&obj));
    }

    #[test]
    fn indexed_jobs_need_completions_and_counts_are_nonnegative() {
        let obj = defaulted(job(json!({"completionMode": "Indexed", "parallelism": 2})));
        assert!(messages(&obj).contains(
            &"spec.completions: Required value: when completion mode is Indexed".to_string()
        ));
        let obj = defaulted(job(json!({"backoffLimit": -1})));
        assert!(messages(&obj).contains(
            &"spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0".to_string()
        ));
        let obj = defaulted(job(json!({"completionMode": "Sometimes"})));
        assert!(messages(&obj).contains(
            &"spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\"".to_string()
        ), "{:?}", messages(&obj));
    }

    #[test]
    fn a_foreign_selector_without_manual_selector_is_refused() {
        let mut obj = job(json!({"selector": {"matchLabels": {"app": "x"}}}));
        obj["spec"]["template"]["metadata"] = json!({"labels": {"app": "x"}});
        let obj = defaulted(obj);
        assert!(
            messages(&obj)
                .iter()
                .any(|m| m.starts_with("spec.selector: Invalid value: ")
                    && m.ends_with(": `selector` not auto-generated")),
            "{:?}",
            messages(&obj)
        );
    }

    #[test]
    fn the_template_and_completions_are_immutable() {
        let old = defaulted(job(json!({})));
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        new["spec"]["completions"] = json!(3);
        let msgs: Vec<String> = validate_update(&V1, &new, &old)
            .iter()
            .map(FieldError::full)
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("spec.template: Invalid value:")
                    && m.ends_with("field is immutable")),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"spec.completions: Invalid value: 3: field is immutable".to_string()),
            "{msgs:?}"
        );
        let mut suspended = old.clone();
        suspended["spec"]["suspend"] = json!(true);
        assert!(validate_update(&V1, &suspended, &old).is_empty());
    }

    #[test]
    fn jobs_orphan_their_pods_by_default_with_kubernetes_warning() {
        let (policy, warning) = Strategy.default_propagation().expect("a default");
        assert_eq!(policy, "Orphan");
        assert!(warning.starts_with("child pods are preserved by default when jobs are deleted"));
        assert!(crate::kinds::strategy_for(&crate::kinds::cron_job::V1)
            .default_propagation()
            .is_none());
    }

    #[test]
    fn printer_shows_status_completions_and_duration_as_kubectl() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let mut obj = defaulted(job(json!({"completions": 5, "parallelism": 2})));
        obj["metadata"]["creationTimestamp"] = json!("2024-05-01T11:59:00Z");
        obj["status"] = json!({"succeeded": 2, "startTime": "2024-05-01T11:59:30Z"});
        let cells = job_cells(&obj, now);
        assert_eq!(
            cells[..5],
            [
                json!("pi"),
                json!("Running"),
                json!("2/5"),
                json!("30s"),
                json!("60s")
            ]
        );
        obj["status"]["completionTime"] = json!("2024-05-01T11:59:50Z");
        obj["status"]["conditions"] = json!([{"type": "Complete", "status": "True"}]);
        let cells = job_cells(&obj, now);
        assert_eq!(cells[1], "Complete");
        assert_eq!(cells[3], "20s");
        assert_eq!(cells[7], "batch.kubernetes.io/controller-uid=u-1");
        let mut work_queue = defaulted(job(json!({"parallelism": 3})));
        work_queue["status"] = json!({});
        let cells = job_cells(&work_queue, now);
        assert_eq!(cells[2], "0/1 of 3");
        assert_eq!(cells[3], "");
        for (conditions, word) in [
            (json!([{"type": "Failed", "status": "True"}]), "Failed"),
            (
                json!([{"type": "Suspended", "status": "True"}]),
                "Suspended",
            ),
            (json!([{"type": "Suspended", "status": "False"}]), "Running"),
            (
                json!([{"type": "FailureTarget", "status": "True"}]),
                "FailureTarget",
            ),
            (
                json!([{"type": "SuccessCriteriaMet", "status": "True"}]),
                "SuccessCriteriaMet",
            ),
        ] {
            work_queue["status"]["conditions"] = conditions;
            assert_eq!(job_status(&work_queue), word);
        }
    }
}
