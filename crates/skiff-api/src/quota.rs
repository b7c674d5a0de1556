//! Resource quota accounting, shared by the ResourceQuota admission plugin and the resource
//! quota controller: what an object counts against a quota (object counts, pod compute
//! resources, Service ports), which quotas a pod falls under (scopes), the check admission
//! makes with Kubernetes' refusal messages, and the usage the controller recomputes. Pure:
//! objects and the time come in, decisions go out.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::quantity::Quantity;

/// An amount of one quota resource, in thousandths, with whether it came from binary-suffixed
/// quantities (`Mi`), so it is printed back in the same family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amount {
    /// The value times 1000.
    pub milli: i64,
    /// Whether the quantities summed were written with binary suffixes.
    pub binary: bool,
}

impl Amount {
    /// A whole count (objects).
    pub fn count(n: i64) -> Amount {
        Amount {
            milli: n.saturating_mul(1000),
            binary: false,
        }
    }

    /// Parses a quantity string; `None` when it is not a quantity.
    pub fn parse(text: &str) -> Option<Amount> {
        let q = Quantity::parse(text).ok()?;
        Some(Amount {
            milli: q.milli_value(),
            binary: text.ends_with('i'),
        })
    }

    /// The sum, saturating (quantities beyond `i64` thousandths are beyond any quota).
    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            milli: self.milli.saturating_add(other.milli),
            binary: self.binary || other.binary,
        }
    }

    /// The larger of two amounts.
    fn max(self, other: Amount) -> Amount {
        if other.milli > self.milli {
            other
        } else {
            self
        }
    }

    /// The amount as Kubernetes' canonical quantity string: thousandths as `m`, whole values
    /// with the largest exact suffix of their family (`512Mi`, `2k`, `3`).
    pub fn to_quantity(self) -> String {
        if self.milli % 1000 != 0 {
            return format!("{}m", self.milli);
        }
        let value = self.milli / 1000;
        if value == 0 {
            return "0".to_string();
        }
        let suffixes: &[(&str, i64)] = if self.binary {
            &[
                ("Ei", 1 << 60),
                ("Pi", 1 << 50),
                ("Ti", 1 << 40),
                ("Gi", 1 << 30),
                ("Mi", 1 << 20),
                ("Ki", 1 << 10),
            ]
        } else {
            &[
                ("E", 1_000_000_000_000_000_000),
                ("P", 1_000_000_000_000_000),
                ("T", 1_000_000_000_000),
                ("G", 1_000_000_000),
                ("M", 1_000_000),
                ("k", 1_000),
            ]
        };
        for (suffix, unit) in suffixes {
            if value % unit == 0 {
                return format!("{}{suffix}", value / unit);
            }
        }
        value.to_string()
    }
}

/// Quota resource names with amounts.
pub type Usage = BTreeMap<String, Amount>;

/// The core kinds whose plain plural also names their object count (Kubernetes' legacy
/// quota names), beside `count/<plural>`.
const LEGACY_COUNTED: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// The compute resources whose quota requires every container to state them.
const CONSTRAINED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `count/<plural>` for core kinds, `count/<plural>.<group>` for the others.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The kind (group, plural) whose objects a quota resource name counts, or `None` when
/// Skiff does not track it.
pub fn source_of(resource_name: &str) -> Option<(String, String)> {
    if let Some(counted) = resource_name.strip_prefix("count/") {
        return Some(match counted.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), counted.to_string()),
        });
    }
    if LEGACY_COUNTED.contains(&resource_name) {
        return Some((String::new(), resource_name.to_string()));
    }
    match resource_name {
        "services.nodeports" | "services.loadbalancers" => {
            Some((String::new(), "services".to_string()))
        }
        "requests.storage" => Some((String::new(), "persistentvolumeclaims".to_string())),
        _ if is_pod_resource(resource_name) => Some((String::new(), "pods".to_string())),
        _ => None,
    }
}

/// Whether a quota resource name is one the pod evaluator tracks.
fn is_pod_resource(name: &str) -> bool {
    const NATIVE: &[&str] = &[
        "pods",
        "count/pods",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    ];
    NATIVE.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
        || name
            .strip_prefix("requests.")
            .is_some_and(is_extended_resource)
}

/// Kubernetes' `IsExtendedResourceName`: a qualified name outside `kubernetes.io/`.
fn is_extended_resource(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn resource_list<'a>(obj: &'a Value, pointer: &str) -> impl Iterator<Item = (&'a String, Amount)> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, Amount::parse(v.as_str()?)?)))
}

/// Kubernetes' `QuotaV1Pod`: whether a pod still counts, not terminal and not past its
/// graceful deletion.
pub fn pod_counts(pod: &Value, now: Timestamp) -> bool {
    if matches!(text(pod, "/status/phase"), "Succeeded" | "Failed") {
        return false;
    }
    let deletion = text(pod, "/metadata/deletionTimestamp");
    if let (Ok(at), Some(grace)) = (
        deletion.parse::<Timestamp>(),
        pod.pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64),
    ) {
        let ends = at
            .checked_add(jiff::SignedDuration::from_secs(grace))
            .unwrap_or(at);
        if now > ends {
            return false;
        }
    }
    true
}

/// The pod's effective requests or limits (`which`): its containers summed, raised to any
/// one init container's, plus the pod overhead.
fn pod_resources(pod: &Value, which: &str) -> Usage {
    let mut sum = Usage::new();
    for container in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (name, amount) in resource_list(container, &format!("/resources/{which}")) {
            let entry = sum.entry(name.clone()).or_default();
            *entry = entry.plus(amount);
        }
    }
    for init in pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (name, amount) in resource_list(init, &format!("/resources/{which}")) {
            let entry = sum.entry(name.clone()).or_default();
            *entry = entry.max(amount);
        }
    }
    for (name, amount) in resource_list(pod, "/spec/overhead") {
        if let Some(entry) = sum.get_mut(name) {
            *entry = entry.plus(amount);
        }
    }
    sum
}

/// What a pod counts against quotas (Kubernetes' pod evaluator).
pub fn pod_usage(pod: &Value) -> Usage {
    let mut usage = Usage::new();
    usage.insert("pods".into(), Amount::count(1));
    usage.insert("count/pods".into(), Amount::count(1));
    let requests = pod_resources(pod, "requests");
    let limits = pod_resources(pod, "limits");
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(request) = requests.get(name) {
            usage.insert(name.to_string(), *request);
            usage.insert(format!("requests.{name}"), *request);
        }
        if let Some(limit) = limits.get(name) {
            usage.insert(format!("limits.{name}"), *limit);
        }
    }
    for (name, request) in &requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), *request);
            usage.insert(format!("requests.{name}"), *request);
        } else if is_extended_resource(name) {
            usage.insert(format!("requests.{name}"), *request);
        }
    }
    usage
}

/// What an object of the kind `(group, plural)` counts against quotas when it exists.
pub fn object_usage(group: &str, plural: &str, obj: &Value) -> Usage {
    if group.is_empty() && plural == "pods" {
        return pod_usage(obj);
    }
    let mut usage = Usage::new();
    usage.insert(count_name(group, plural), Amount::count(1));
    if group.is_empty() && LEGACY_COUNTED.contains(&plural) {
        usage.insert(plural.to_string(), Amount::count(1));
    }
    if group.is_empty() && plural == "services" {
        let kind = text(obj, "/spec/type");
        let node_ports = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, |ports| ports.len());
        let node_ports = i64::try_from(node_ports).unwrap_or(i64::MAX);
        let (node_ports, balancers) = match kind {
            "NodePort" => (node_ports, 0),
            "LoadBalancer" => (node_ports, 1),
            _ => (0, 0),
        };
        usage.insert("services.nodeports".into(), Amount::count(node_ports));
        usage.insert("services.loadbalancers".into(), Amount::count(balancers));
    }
    if group.is_empty() && plural == "persistentvolumeclaims" {
        if let Some(storage) = obj
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(Amount::parse)
        {
            usage.insert("requests.storage".into(), storage);
        }
    }
    usage
}

/// Kubernetes' QoS `BestEffort`: no container (or init container) requests or limits cpu or
/// memory.
fn is_best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|list| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|c| {
                ["requests", "limits"].iter().all(|which| {
                    c.pointer(&format!("/resources/{which}"))
                        .and_then(Value::as_object)
                        .is_none_or(|m| !m.contains_key("cpu") && !m.contains_key("memory"))
                })
            })
    })
}

/// Whether a pod falls under one scope selector requirement (`spec.scopes` entries are
/// `Exists` requirements).
fn pod_matches_scope(pod: &Value, scope: &str, operator: &str, values: &[&str]) -> bool {
    let terminating = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0);
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = text(pod, "/spec/priorityClassName");
            match operator {
                "In" => values.contains(&class),
                "NotIn" => !values.contains(&class),
                "DoesNotExist" => class.is_empty(),
                _ => !class.is_empty(),
            }
        }
        // Pod affinity across namespaces and volume attributes classes are not tracked.
        _ => false,
    }
}

/// The scope requirements of a quota: `spec.scopes` and `spec.scopeSelector`.
fn scope_requirements(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for requirement in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values = requirement
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.push((
            text(requirement, "/scopeName").to_string(),
            text(requirement, "/operator").to_string(),
            values,
        ));
    }
    out
}

/// Whether an object of `(group, plural)` falls under the quota: a quota with scopes covers
/// only the pods that match every scope; one without covers everything in its namespace.
pub fn quota_covers(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let requirements = scope_requirements(quota);
    if requirements.is_empty() {
        return true;
    }
    if !(group.is_empty() && plural == "pods") {
        return false;
    }
    requirements.iter().all(|(scope, operator, values)| {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        pod_matches_scope(obj, scope, operator, &values)
    })
}

fn resource_map<'a>(quota: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    quota.pointer(pointer).and_then(Value::as_object)
}

/// Kubernetes' `prettyPrint` of a resource list: `name=quantity` sorted, comma-joined.
fn pretty(list: &BTreeMap<String, String>) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod evaluator's constraint: a quota on cpu or memory requires every container to state
/// it. Returns `must specify ...` naming the missing resources and containers.
fn missing_constraints(pod: &Value, restricted: &[&String]) -> Option<String> {
    let required: Vec<&str> = restricted
        .iter()
        .map(|s| s.as_str())
        .filter(|s| CONSTRAINED.contains(s))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for container in pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let has = |which: &str, name: &str| {
                container
                    .pointer(&format!("/resources/{which}/{name}"))
                    .is_some()
            };
            for resource in &required {
                let stated = match *resource {
                    "cpu" | "requests.cpu" => has("requests", "cpu"),
                    "memory" | "requests.memory" => has("requests", "memory"),
                    "limits.cpu" => has("limits", "cpu"),
                    _ => has("limits", "memory"),
                };
                if !stated {
                    missing
                        .entry(resource)
                        .or_default()
                        .insert(text(container, "/name"));
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(resource, names)| {
            format!(
                "{resource} for: {}",
                names.iter().copied().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// A quota whose `status.used` admission raises: its index among the quotas given and its new
/// `status.used`.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// Which quota.
    pub index: usize,
    /// Its `status.used` with the new object counted.
    pub used: Map<String, Value>,
}

/// The ResourceQuota admission check of a new object of `(group, plural)` against the
/// namespace's quotas (in name order): the charges to write, or the refusal's text (the
/// caller prefixes `<plural> "<name>" is forbidden: `).
pub fn admit(
    quotas: &[Value],
    group: &str,
    plural: &str,
    obj: &Value,
) -> Result<Vec<Charge>, String> {
    let delta = object_usage(group, plural, obj);
    let mut charges = Vec::new();
    for (index, quota) in quotas.iter().enumerate() {
        if !quota_covers(quota, group, plural, obj) {
            continue;
        }
        let quota_name = text(quota, "/metadata/name");
        let empty = Map::new();
        let hard = resource_map(quota, "/status/hard").unwrap_or(&empty);
        let used = resource_map(quota, "/status/used").unwrap_or(&empty);
        let tracked = |name: &String| match source_of(name) {
            Some((g, p)) => g == group && p == plural,
            None => false,
        };
        let restricted: Vec<&String> = hard.keys().filter(|n| tracked(n)).collect();
        if restricted.is_empty() {
            continue;
        }
        if group.is_empty() && plural == "pods" {
            if let Some(missing) = missing_constraints(obj, &restricted) {
                return Err(format!("failed quota: {quota_name}: {missing}"));
            }
        }
        let unknown: Vec<&str> = restricted
            .iter()
            .filter(|n| !used.contains_key(n.as_str()))
            .map(|n| n.as_str())
            .collect();
        if !unknown.is_empty() {
            let mut names: Vec<&str> = restricted.iter().map(|n| n.as_str()).collect();
            names.sort();
            return Err(format!(
                "status unknown for quota: {quota_name}, resources: {}",
                names.join(",")
            ));
        }
        let mut new_used = used.clone();
        let mut failed_requested = BTreeMap::new();
        let mut failed_used = BTreeMap::new();
        let mut failed_hard = BTreeMap::new();
        let mut changed = false;
        for name in &restricted {
            let Some(requested) = delta.get(name.as_str()) else {
                continue;
            };
            let hard_text = hard[name.as_str()].as_str().unwrap_or("0");
            let used_text = used
                .get(name.as_str())
                .and_then(Value::as_str)
                .unwrap_or("0");
            let hard_amount = Amount::parse(hard_text).unwrap_or_default();
            let used_amount = Amount::parse(used_text).unwrap_or_default();
            let total = used_amount.plus(*requested);
            if total.milli > hard_amount.milli {
                failed_requested.insert(name.to_string(), requested.to_quantity());
                failed_used.insert(name.to_string(), used_text.to_string());
                failed_hard.insert(name.to_string(), hard_text.to_string());
            }
            new_used.insert(
                name.to_string(),
                Value::String(
                    Amount {
                        binary: total.binary || hard_amount.binary,
                        ..total
                    }
                    .to_quantity(),
                ),
            );
            changed |= requested.milli != 0;
        }
        if !failed_hard.is_empty() {
            return Err(format!(
                "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                pretty(&failed_requested),
                pretty(&failed_used),
                pretty(&failed_hard)
            ));
        }
        if changed {
            charges.push(Charge {
                index,
                used: new_used,
            });
        }
    }
    Ok(charges)
}

/// The resource quota controller's sync as a planner: the quota's status recomputed from the
/// objects of its namespace (`objects` gives them by `(group, plural)`), `None` when it is
/// already current. `status.hard` copies `spec.hard`; `status.used` sums every tracked
/// resource of `spec.hard` over the objects the quota covers (pods only while they count).
pub fn plan_status(
    quota: &Value,
    objects: &dyn Fn(&str, &str) -> Vec<Value>,
    now: Timestamp,
) -> Option<Value> {
    let empty = Map::new();
    let hard = resource_map(quota, "/spec/hard").unwrap_or(&empty);
    let mut sources: BTreeMap<(String, String), Vec<&String>> = BTreeMap::new();
    for name in hard.keys() {
        if let Some(source) = source_of(name) {
            sources.entry(source).or_default().push(name);
        }
    }
    let mut used = Map::new();
    for ((group, plural), names) in &sources {
        let mut totals: Usage = names
            .iter()
            .map(|n| ((*n).clone(), Amount::default()))
            .collect();
        for obj in objects(group, plural) {
            if group.is_empty() && plural == "pods" && !pod_counts(&obj, now) {
                continue;
            }
            if !quota_covers(quota, group, plural, &obj) {
                continue;
            }
            for (name, amount) in object_usage(group, plural, &obj) {
                if let Some(total) = totals.get_mut(&name) {
                    *total = total.plus(amount);
                }
            }
        }
        for (name, total) in totals {
            let hard_binary = hard
                .get(&name)
                .and_then(Value::as_str)
                .is_some_and(|h| h.ends_with('i'));
            let total = Amount {
                binary: total.binary || hard_binary,
                ..total
            };
            used.insert(name, Value::String(total.to_quantity()));
        }
    }
    let mut sorted_hard: Vec<(&String, &Value)> = hard.iter().collect();
    sorted_hard.sort_by(|a, b| a.0.cmp(b.0));
    let mut sorted_used: Vec<(String, Value)> = used.into_iter().collect();
    sorted_used.sort_by(|a, b| a.0.cmp(&b.0));
    let status = serde_json::json!({
        "hard": sorted_hard.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Map<_, _>>(),
        "used": sorted_used.into_iter().collect::<Map<_, _>>(),
    });
    let current = quota.get("status").cloned().unwrap_or(Value::Null);
    let same = |key: &str| current.get(key).cloned().unwrap_or_else(|| Value::Object(Map::new())) == status[key];
    if same("hard") && same("used") {
        None
    } else {
        Some(status)
    }
}
