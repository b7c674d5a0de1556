//! PriorityClasses (`scheduling.k8s.io/v1`): named pod priorities. The two built-in classes
//! exist in every cluster; the Priority admission plugin ([`admit_pod`]) turns a pod's
//! `priorityClassName` into its `spec.priority`.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::default_str;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo},
};

/// `scheduling.k8s.io/v1` PriorityClasses.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["pc"],
    ..res(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The highest priority a user-defined class may have (`HighestUserDefinablePriority`).
pub const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;

/// The prefix reserved for the built-in classes.
pub const SYSTEM_PREFIX: &str = "system-";

/// The built-in classes every cluster serves: name, value and description.
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The values `preemptionPolicy` accepts.
pub const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

/// The built-in classes as objects to create at start.
pub fn system_classes() -> Vec<Value> {
    SYSTEM_CLASSES
        .iter()
        .map(|(name, value, description)| {
            json!({
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": description,
                "preemptionPolicy": "PreemptLowerPriority",
            })
        })
        .collect()
}

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::scheduling::v1::PriorityClass,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_str(root, "preemptionPolicy", "PreemptLowerPriority");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let name = str_at(field(obj, "metadata"), "name");
        let value = int_at(obj, "value").unwrap_or(0);
        let global = field(obj, "globalDefault").as_bool().unwrap_or(false);
        if name.starts_with(SYSTEM_PREFIX) {
            let known = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name);
            let error = match known {
                None => Some(format!("{name:?} is not a known system priority class")),
                Some((_, v, _)) if *v != value => {
                    Some(format!("value of {name:?} PriorityClass must be {v}"))
                }
                Some(_) if global => Some(format!(
                    "globalDefault of {name:?} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(error) = error {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {error}"),
                ));
            }
        } else if value > HIGHEST_USER_DEFINABLE {
            errs.push(FieldError::forbidden(
                "value",
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"
                ),
            ));
        }
        let policy = field(obj, "preemptionPolicy");
        if let Some(p) = policy.as_str() {
            if !PREEMPTION_POLICIES.contains(&p) {
                errs.push(FieldError::not_supported(
                    "preemptionPolicy",
                    policy,
                    PREEMPTION_POLICIES,
                ));
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        if field(new, "value") != field(old, "value") {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if field(new, "preemptionPolicy") != field(old, "preemptionPolicy") {
            errs.push(FieldError::invalid(
                "preemptionPolicy",
                field(new, "preemptionPolicy"),
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Value",
                    "integer",
                    "The value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.",
                ),
                col(
                    "Global-Default",
                    "boolean",
                    "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
                ),
                age_col(),
                col(
                    "PreemptionPolicy",
                    "string",
                    "PreemptionPolicy is the Policy for preempting pods with lower priority.",
                ),
            ],
            class_cells,
        ))
    }
}

fn class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        int(obj, "/value", 0).into(),
        obj.get("globalDefault")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .into(),
        age(obj, now),
        text(obj, "/preemptionPolicy").into(),
    ]
}

/// The message refusing a second `globalDefault` class.
pub fn second_default_message(existing: &str) -> String {
    format!("PriorityClass {existing} is already marked as default. Only one default can exist")
}

/// The Priority admission plugin on a new pod, given the classes that exist: a named class
/// gives the pod its value and preemption policy; a pod naming none gets the global default
/// class, if one exists, else priority 0. Returns the refusal's text (the caller prefixes
/// `pods "<name>" is forbidden: `).
pub fn admit_pod(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &named {
        Some(name) => Some(
            classes
                .iter()
                .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                .ok_or_else(|| format!("no PriorityClass with name {name} was found"))?,
        ),
        None => classes
            .iter()
            .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0)),
    };
    let (priority, policy) = match class {
        Some(c) => (
            c.get("value").and_then(Value::as_i64).unwrap_or(0),
            c.get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("PreemptLowerPriority")
                .to_string(),
        ),
        None => (0, "PreemptLowerPriority".to_string()),
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != priority {
            return Err(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"));
        }
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != policy {
            return Err(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"));
        }
    }
    if let (None, Some(c)) = (&named, class) {
        if let Some(name) = c.pointer("/metadata/name") {
            spec.insert("priorityClassName".into(), name.clone());
        }
    }
    spec.insert("priority".into(), json!(priority));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64, global: bool) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": global, "preemptionPolicy": "PreemptLowerPriority"})
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    /// Shaped after upstream's Priority admission `TestPodAdmission`: each case's classes, pod
    /// spec, and the priority and class name it ends with or the refusal.
    #[test]
    fn priority_admission_table() {
        let mut classes = system_classes();
        classes.push(class("default1", 1000, true));
        classes.push(class("nondefault1", 2000, false));
        let no_default: Vec<Value> = system_classes();
        /// A case: its name, the classes, the pod spec, and the priority and class name the
        /// pod ends with or the refusal.
        type Case<'a> = (&'a str, &'a [Value], Value, Result<(i64, &'a str), &'a str>);
        let cases: Vec<Case> = vec![
            ("default priority class", &classes, json!({}), Ok((1000, "default1"))),
            ("no default class", &no_default, json!({}), Ok((0, ""))),
            ("named class", &classes, json!({"priorityClassName": "nondefault1"}), Ok((2000, "nondefault1"))),
            ("system cluster critical", &classes, json!({"priorityClassName": "system-cluster-critical"}), Ok((2_000_000_000, "system-cluster-critical"))),
            ("system node critical", &classes, json!({"priorityClassName": "system-node-critical"}), Ok((2_000_001_000, "system-node-critical"))),
            ("unknown class", &classes, json!({"priorityClassName": "foo"}), Err("no PriorityClass with name foo was found")),
            ("conflicting priority given", &classes, json!({"priorityClassName": "nondefault1", "priority": 7}), Err("the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 2000 from the given PriorityClass name")),
            ("matching priority given", &classes, json!({"priorityClassName": "nondefault1", "priority": 2000}), Ok((2000, "nondefault1"))),
        ];
        assert_eq!(cases.len(), 8);
        for (name, classes, spec, expected) in cases {
            let mut p = pod(spec);
            let got = admit_pod(&mut p, classes).map(|()| {
                (
                    p["spec"]["priority"].as_i64().unwrap_or(-1),
                    p["spec"]["priorityClassName"].as_str().unwrap_or(""),
                )
            });
            assert_eq!(got, expected.map_err(str::to_string), "case {name}");
        }
    }

    #[test]
    fn reserved_names_and_user_values_are_validated() {
        let mut errs = Vec::new();
        Strategy.validate(&class("system-mine", 5, false), &mut errs);
        Strategy.validate(&class("huge", HIGHEST_USER_DEFINABLE + 1, false), &mut errs);
        for c in system_classes() {
            Strategy.validate(&c, &mut errs);
        }
        let texts: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].starts_with("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only."), "{texts:?}");
        assert_eq!(
            texts[1],
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        );
    }
}
