//! LimitRanges (`v1`): per-namespace defaults and bounds of container, pod and claim
//! resources. The LimitRanger admission plugin applies them to new pods and claims with
//! [`default_pod`] and [`check_pod`] / [`check_claim`].

use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::quantity::Quantity;
use crate::validation::*;
use crate::{
    errors::FieldError,
    resources::{res, ResourceInfo},
};

/// `v1` LimitRanges.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["limits"],
    ..res("", "v1", "LimitRange", "limitranges", "limitrange", true)
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The values `spec.limits[].type` accepts.
pub const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// The annotation LimitRanger leaves on a pod it gave defaults, naming them.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::LimitRange>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        let Some(items) = root
            .get_mut("spec")
            .and_then(|s| s.get_mut("limits"))
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            default_item(item);
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        for (i, item) in array_at(field(obj, "spec"), "limits").iter().enumerate() {
            validate_item(item, &index("spec.limits", i), errs);
        }
    }
}

/// `SetDefaults_LimitRangeItem`: for containers, a missing default limit takes the max, and a
/// missing default request the default limit, else the min.
fn default_item(item: &mut Map<String, Value>) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let list = |item: &Map<String, Value>, key: &str| {
        item.get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let max = list(item, "max");
    let min = list(item, "min");
    let mut default = list(item, "default");
    for (k, v) in &max {
        default.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut default_request = list(item, "defaultRequest");
    for (k, v) in default.iter().chain(min.iter()) {
        default_request
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    if !default.is_empty() {
        item.insert("default".into(), Value::Object(default));
    }
    if !default_request.is_empty() {
        item.insert("defaultRequest".into(), Value::Object(default_request));
    }
}

fn quantity(value: &Value) -> Option<Quantity> {
    value.as_str().and_then(|s| Quantity::parse(s).ok())
}

/// `ValidateLimitRange` for one item, in Kubernetes' words.
fn validate_item(item: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let kind = str_at(item, "type");
    if !LIMIT_TYPES.contains(&kind) {
        errs.push(FieldError::not_supported(
            join(path, "type"),
            field(item, "type"),
            LIMIT_TYPES,
        ));
    }
    let map = |key: &str| field(item, key).as_object().cloned().unwrap_or_default();
    let (max, min, default, default_request, ratio) = (
        map("max"),
        map("min"),
        map("default"),
        map("defaultRequest"),
        map("maxLimitRequestRatio"),
    );
    if kind == "Pod" {
        if !default.is_empty() {
            errs.push(FieldError::forbidden(
                join(path, "default"),
                "may not be specified when `type` is 'Pod'",
            ));
        }
        if !default_request.is_empty() {
            errs.push(FieldError::forbidden(
                join(path, "defaultRequest"),
                "may not be specified when `type` is 'Pod'",
            ));
        }
    }
    if kind == "PersistentVolumeClaim"
        && !min.contains_key("storage")
        && !max.contains_key("storage")
    {
        errs.push(FieldError::required(
            join(path, "limits"),
            "either minimum or maximum storage value is required, but neither was provided",
        ));
    }
    // Each bound is refused at the field it is given in, with that field's value.
    for (name, value) in &min {
        let at = (format!("{path}.min[{name}]"), value);
        refuse_if_greater(&at, ("min", Some(value)), ("max", max.get(name)), errs);
    }
    for (name, value) in &default_request {
        let at = (format!("{path}.defaultRequest[{name}]"), value);
        let request = ("default request", Some(value));
        refuse_if_greater(&at, ("min", min.get(name)), request, errs);
        refuse_if_greater(&at, request, ("max", max.get(name)), errs);
        refuse_if_greater(&at, request, ("default limit", default.get(name)), errs);
    }
    for (name, value) in &default {
        let at = (format!("{path}.default[{name}]"), value);
        let limit = ("default", Some(value));
        refuse_if_greater(&at, ("min", min.get(name)), limit, errs);
        refuse_if_greater(&at, limit, ("max", max.get(name)), errs);
    }
    for (name, value) in &ratio {
        let at = format!("{path}.maxLimitRequestRatio[{name}]");
        if quantity(value).is_some_and(|q| q.milli_value() < 1000) {
            errs.push(FieldError::invalid(
                at,
                value,
                format!("ratio {} is less than 1", value.as_str().unwrap_or("")),
            ));
        }
    }
}

/// Refuses the field `at` (its path and value) when the first of two named bounds, both set,
/// exceeds the second, in Kubernetes' words: `min value 2 is greater than max value 1`.
fn refuse_if_greater(
    (path, value): &(String, &Value),
    (greater_name, greater): (&str, Option<&Value>),
    (lesser_name, lesser): (&str, Option<&Value>),
    errs: &mut Vec<FieldError>,
) {
    let (Some(greater), Some(lesser)) = (greater, lesser) else {
        return;
    };
    let (Some(a), Some(b)) = (quantity(greater), quantity(lesser)) else {
        return;
    };
    if a.milli_value() > b.milli_value() {
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        errs.push(FieldError::invalid(
            path.clone(),
            value,
            format!(
                "{greater_name} value {} is greater than {lesser_name} value {}",
                text(greater),
                text(lesser)
            ),
        ));
    }
}

/// One resource's requests or limits of a container, `None` when unset.
fn amount(container: &Value, which: &str, name: &str) -> Option<(i64, String)> {
    let text = container
        .pointer(&format!("/resources/{which}/{name}"))?
        .as_str()?;
    Some((Quantity::parse(text).ok()?.milli_value(), text.to_string()))
}

/// A bound's quantity: thousandths and its text.
fn bound(value: &Value) -> Option<(i64, String)> {
    let text = value.as_str()?;
    Some((Quantity::parse(text).ok()?.milli_value(), text.to_string()))
}

/// The items of the given type in a set of LimitRanges, in order.
fn items_of<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(move |item| str_at(item, "type") == kind)
}

/// The LimitRanger plugin's mutation of a new pod: each container (and init container) gets
/// the default requests and limits of the namespace's `Container` items it does not state,
/// and the pod the `kubernetes.io/limit-ranger` annotation saying which were set.
pub fn default_pod(pod: &mut Value, ranges: &[Value]) {
    let mut defaults = (Map::new(), Map::new());
    for item in items_of(ranges, "Container") {
        for (key, into) in [
            ("defaultRequest", &mut defaults.0),
            ("default", &mut defaults.1),
        ] {
            if let Some(map) = item.get(key).and_then(Value::as_object) {
                for (k, v) in map {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if defaults.0.is_empty() && defaults.1.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (list, label) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let resources = container.entry("resources").or_insert_with(|| json!({}));
            let Some(resources) = resources.as_object_mut() else {
                continue;
            };
            let mut set_requests = Vec::new();
            let mut set_limits = Vec::new();
            for (which, source, set) in [
                ("limits", &defaults.1, &mut set_limits),
                ("requests", &defaults.0, &mut set_requests),
            ] {
                if source.is_empty() {
                    continue;
                }
                let target = resources.entry(which).or_insert_with(|| json!({}));
                let Some(target) = target.as_object_mut() else {
                    continue;
                };
                for (k, v) in source {
                    if !target.contains_key(k) {
                        target.insert(k.clone(), v.clone());
                        set.push(k.clone());
                    }
                }
            }
            for (set, word) in [(&mut set_requests, "request"), (&mut set_limits, "limit")] {
                if !set.is_empty() {
                    set.sort();
                    notes.push(format!("{} {word} for {label} {name}", set.join(", ")));
                }
            }
        }
    }
    if !notes.is_empty() {
        let metadata = pod
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
        if let Some(Value::Object(metadata)) = metadata {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    ANNOTATION.into(),
                    Value::String(format!("LimitRanger plugin set: {}", notes.join("; "))),
                );
            }
        }
    }
}

/// `minConstraint`.
fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &(i64, String),
    request: Option<(i64, String)>,
    limit: Option<(i64, String)>,
) -> Option<String> {
    let Some(request) = request else {
        return Some(format!(
            "minimum {name} usage per {kind} is {}.  No request is specified",
            enforced.1
        ));
    };
    if request.0 < enforced.0 {
        return Some(format!(
            "minimum {name} usage per {kind} is {}, but request is {}",
            enforced.1, request.1
        ));
    }
    match limit {
        Some(limit) if limit.0 < enforced.0 => Some(format!(
            "minimum {name} usage per {kind} is {}, but limit is {}",
            enforced.1, limit.1
        )),
        _ => None,
    }
}

/// `maxConstraint`.
fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &(i64, String),
    request: Option<(i64, String)>,
    limit: Option<(i64, String)>,
) -> Option<String> {
    let Some(limit) = limit else {
        return Some(format!(
            "maximum {name} usage per {kind} is {}.  No limit is specified",
            enforced.1
        ));
    };
    if limit.0 > enforced.0 {
        return Some(format!(
            "maximum {name} usage per {kind} is {}, but limit is {}",
            enforced.1, limit.1
        ));
    }
    match request {
        Some(request) if request.0 > enforced.0 => Some(format!(
            "maximum {name} usage per {kind} is {}, but request is {}",
            enforced.1, request.1
        )),
        _ => None,
    }
}

/// `limitRequestRatioConstraint`.
fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &(i64, String),
    request: Option<(i64, String)>,
    limit: Option<(i64, String)>,
) -> Option<String> {
    let request = match request {
        Some(r) if r.0 != 0 => r,
        _ => {
            return Some(format!(
                "{name} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
                enforced.1
            ))
        }
    };
    let limit = match limit {
        Some(l) if l.0 != 0 => l,
        _ => {
            return Some(format!(
                "{name} max limit to request ratio per {kind} is {}, but no limit is specified or limit is 0",
                enforced.1
            ))
        }
    };
    // Both sides in thousandths: the ratio is compared as limit * 1000 / request against
    // the bound in thousandths, as Kubernetes compares them below its milli-value ceiling.
    let observed = limit.0 as f64 / request.0 as f64;
    if observed * 1000.0 > enforced.0 as f64 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but provided ratio is {observed:.6}",
            enforced.1
        ));
    }
    None
}

/// A request or limit as observed: thousandths and the quantity's text, `None` when unset.
type Observed = Option<(i64, String)>;

/// One of the three checks: limit type, resource, the bound, the request, the limit.
type Constraint = fn(&str, &str, &(i64, String), Observed, Observed) -> Option<String>;

/// Reads `requests` or `limits` of a resource from what is checked.
type Lookup<'a> = &'a dyn Fn(&str, &str) -> Observed;

/// Checks one set of requests and limits against an item's min, max and ratio.
fn check_item(kind: &str, item: &Value, requested: Lookup<'_>, errors: &mut Vec<String>) {
    let bounds = |key: &str| -> Vec<(String, (i64, String))> {
        item.get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), bound(v)?)))
            .collect()
    };
    let constraints: [(&str, Constraint); 3] = [
        ("min", min_constraint),
        ("max", max_constraint),
        ("maxLimitRequestRatio", ratio_constraint),
    ];
    for (key, check) in constraints {
        for (name, enforced) in bounds(key) {
            let request = requested("requests", &name);
            let limit = requested("limits", &name);
            if let Some(error) = check(kind, &name, &enforced, request, limit) {
                errors.push(error);
            }
        }
    }
}

/// Kubernetes' aggregate of several errors: one alone, several in brackets.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// The pod's total of one resource's requests or limits: containers summed, raised to any
/// init container's; `None` when no container states it.
fn pod_total(pod: &Value, which: &str, name: &str) -> Option<(i64, String)> {
    let list = |key: &str| {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut total: Option<i64> = None;
    for container in list("containers") {
        if let Some((v, _)) = amount(&container, which, name) {
            total = Some(total.unwrap_or(0).saturating_add(v));
        }
    }
    for init in list("initContainers") {
        if let Some((v, _)) = amount(&init, which, name) {
            total = Some(total.unwrap_or(0).max(v));
        }
    }
    total.map(|milli| {
        let binary = name == "memory" || name == "ephemeral-storage";
        let text = crate::quota::Amount { milli, binary }.to_quantity();
        (milli, text)
    })
}

/// The LimitRanger plugin's validation of a new pod against the namespace's `Container` and
/// `Pod` items: the refusal's text (the caller prefixes `pods "<name>" is forbidden: `).
pub fn check_pod(pod: &Value, ranges: &[Value]) -> Result<(), String> {
    let mut errors = Vec::new();
    for item in items_of(ranges, "Container") {
        for list in ["containers", "initContainers"] {
            for container in pod
                .pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_item(
                    "Container",
                    item,
                    &|which, name| amount(container, which, name),
                    &mut errors,
                );
            }
        }
    }
    for item in items_of(ranges, "Pod") {
        check_item(
            "Pod",
            item,
            &|which, name| pod_total(pod, which, name),
            &mut errors,
        );
    }
    aggregate(errors)
}

/// The LimitRanger plugin's validation of a new PersistentVolumeClaim's storage request
/// against the namespace's `PersistentVolumeClaim` items.
pub fn check_claim(claim: &Value, ranges: &[Value]) -> Result<(), String> {
    let mut errors = Vec::new();
    for item in items_of(ranges, "PersistentVolumeClaim") {
        let request = |name: &str| {
            claim
                .pointer(&format!("/spec/resources/requests/{name}"))
                .and_then(bound)
        };
        for (name, enforced) in field(item, "min").as_object().into_iter().flatten() {
            if let Some(enforced) = bound(enforced) {
                if let Some(e) = min_constraint(
                    "PersistentVolumeClaim",
                    name,
                    &enforced,
                    request(name),
                    None,
                ) {
                    errors.push(e);
                }
            }
        }
        for (name, enforced) in field(item, "max").as_object().into_iter().flatten() {
            if let Some(enforced) = bound(enforced) {
                match request(name) {
                    None => errors.push(format!(
                        "maximum {name} usage per PersistentVolumeClaim is {}.  No request is specified",
                        enforced.1
                    )),
                    Some(r) if r.0 > enforced.0 => errors.push(format!(
                        "maximum {name} usage per PersistentVolumeClaim is {}, but request is {}",
                        enforced.1, r.1
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    aggregate(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(items: Value) -> Value {
        let mut range = json!({"spec": {"limits": items}});
        if let Some(root) = range.as_object_mut() {
            Strategy.apply_defaults("v1", root);
        }
        range
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn defaulting_fills_default_limits_from_max_and_requests_from_limits_or_min() {
        let r = range(
            json!([{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}, "default": {"memory": "8Mi"}}]),
        );
        assert_eq!(
            r["spec"]["limits"][0]["default"],
            json!({"memory": "8Mi", "cpu": "2"})
        );
        assert_eq!(
            r["spec"]["limits"][0]["defaultRequest"],
            json!({"memory": "8Mi", "cpu": "2"})
        );
        let pod_items = range(json!([{"type": "Pod", "max": {"cpu": "2"}}]));
        assert!(pod_items["spec"]["limits"][0].get("default").is_none());
    }

    /// Shaped after upstream's LimitRanger `TestPodLimitFunc` (success and error cases) and
    /// `TestDefaultContainerResourceRequirements`.
    #[test]
    fn pod_limit_table() {
        let cases: Vec<(&str, Value, Value, Result<(), &str>)> = vec![
            (
                "within min and max",
                json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}}]),
                json!([{"name": "a", "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "500m"}}}]),
                Ok(()),
            ),
            (
                "request below min",
                json!([{"type": "Container", "min": {"cpu": "100m"}}]),
                json!([{"name": "a", "resources": {"requests": {"cpu": "50m"}}}]),
                Err("minimum cpu usage per Container is 100m, but request is 50m"),
            ),
            (
                "no request against a min",
                json!([{"type": "Container", "min": {"memory": "10Mi"}}]),
                json!([{"name": "a"}]),
                Err("minimum memory usage per Container is 10Mi.  No request is specified"),
            ),
            (
                "limit above max",
                json!([{"type": "Container", "max": {"cpu": "1"}}]),
                json!([{"name": "a", "resources": {"limits": {"cpu": "2"}}}]),
                Err("maximum cpu usage per Container is 1, but limit is 2"),
            ),
            (
                "no limit against a max",
                json!([{"type": "Container", "max": {"memory": "1Gi"}}]),
                json!([{"name": "a"}]),
                Err("maximum memory usage per Container is 1Gi.  No limit is specified"),
            ),
            (
                "ratio exceeded",
                json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]),
                json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "500m"}}}]),
                Err("cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"),
            ),
            (
                "ratio without a request",
                json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]),
                json!([{"name": "a", "resources": {"limits": {"cpu": "500m"}}}]),
                Err("cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"),
            ),
            (
                "pod total above the pod max",
                json!([{"type": "Pod", "max": {"cpu": "1"}}]),
                json!([
                    {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "600m"}}}
                ]),
                Err("maximum cpu usage per Pod is 1, but limit is 1200m"),
            ),
            (
                "several errors are aggregated",
                json!([{"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}}]),
                json!([{"name": "a", "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}]),
                Err("[maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Container is 1Gi, but limit is 2Gi]"),
            ),
        ];
        assert_eq!(cases.len(), 9);
        for (name, items, containers, expected) in cases {
            // Validation only: no defaults (items have no `default`), as upstream's table.
            let ranges = [json!({"spec": {"limits": items}})];
            let got = check_pod(&pod(containers), &ranges);
            assert_eq!(got, expected.map_err(str::to_string), "case {name}");
        }
    }

    #[test]
    fn defaults_are_merged_into_containers_and_noted() {
        let ranges = [range(
            json!([{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}}]),
        )];
        let mut p = pod(json!([
            {"name": "web", "resources": {"limits": {"memory": "1Gi"}}},
        ]));
        p["spec"]["initContainers"] = json!([{"name": "setup"}]);
        default_pod(&mut p, &ranges);
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"memory": "1Gi", "cpu": "500m"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
        );
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container web; cpu limit for container web; cpu, memory request for init container setup; cpu, memory limit for init container setup"
        );
    }

    #[test]
    fn claims_are_bounded_by_storage() {
        let ranges = [
            json!({"spec": {"limits": [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}}),
        ];
        let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        assert_eq!(check_claim(&claim("5Gi"), &ranges), Ok(()));
        assert_eq!(
            check_claim(&claim("20Gi"), &ranges),
            Err(
                "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
                    .to_string()
            )
        );
        assert_eq!(
            check_claim(&claim("500Mi"), &ranges),
            Err(
                "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
                    .to_string()
            )
        );
    }

    #[test]
    fn validation_speaks_kubernetes() {
        let mut errs = Vec::new();
        Strategy.validate(
            &range(json!([
                {"type": "Pod", "default": {"cpu": "1"}},
                {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
                {"type": "Node"}
            ])),
            &mut errs,
        );
        let texts: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert!(
            texts.contains(
                &"spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"
                    .to_string()
            ),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t.starts_with("spec.limits[1].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1")), "{texts:?}");
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.limits[2].type: Unsupported value: \"Node\"")),
            "{texts:?}"
        );
    }

    #[test]
    fn every_bound_out_of_order_is_refused_at_its_own_field() {
        let at = |field: &str, value: &str, message: &str| {
            format!("spec.limits[0].{field}[cpu]: Invalid value: \"{value}\": {message}")
        };
        // Defaults fill `default` from `max` and `defaultRequest` from `default`, so one bound
        // out of order often shows at the fields filled from it too.
        let cases = [
            (
                json!({"min": {"cpu": "2"}, "max": {"cpu": "1"}}),
                vec![
                    at("min", "2", "min value 2 is greater than max value 1"),
                    at(
                        "defaultRequest",
                        "1",
                        "min value 2 is greater than default request value 1",
                    ),
                    at(
                        "default",
                        "1",
                        "min value 2 is greater than default value 1",
                    ),
                ],
            ),
            (
                json!({"defaultRequest": {"cpu": "2"}, "default": {"cpu": "1"}}),
                vec![at(
                    "defaultRequest",
                    "2",
                    "default request value 2 is greater than default limit value 1",
                )],
            ),
            (
                json!({"defaultRequest": {"cpu": "3"}, "default": {"cpu": "2"}, "max": {"cpu": "2"}}),
                vec![
                    at(
                        "defaultRequest",
                        "3",
                        "default request value 3 is greater than max value 2",
                    ),
                    at(
                        "defaultRequest",
                        "3",
                        "default request value 3 is greater than default limit value 2",
                    ),
                ],
            ),
            (
                json!({"min": {"cpu": "2"}, "default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}}),
                vec![
                    at(
                        "defaultRequest",
                        "2",
                        "default request value 2 is greater than default limit value 1",
                    ),
                    at(
                        "default",
                        "1",
                        "min value 2 is greater than default value 1",
                    ),
                ],
            ),
            (
                json!({"default": {"cpu": "3"}, "max": {"cpu": "2"}}),
                vec![
                    at(
                        "defaultRequest",
                        "3",
                        "default request value 3 is greater than max value 2",
                    ),
                    at(
                        "default",
                        "3",
                        "default value 3 is greater than max value 2",
                    ),
                ],
            ),
        ];
        for (mut item, expected) in cases {
            item["type"] = json!("Container");
            let mut errs = Vec::new();
            Strategy.validate(&range(json!([item])), &mut errs);
            let texts: Vec<String> = errs.iter().map(FieldError::full).collect();
            assert_eq!(texts, expected, "{item}");
        }
    }
}
