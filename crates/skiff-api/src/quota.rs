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
    charge(
        quotas,
        group,
        plural,
        obj,
        &object_usage(group, plural, obj),
    )
}

/// The ResourceQuota admission check of an update of an object of `(group, plural)` from
/// `old` to `new`: only what the update adds is charged (a Service turned `NodePort` or
/// `LoadBalancer`, a claim grown), as Kubernetes' evaluators charge updates; an update that
/// adds nothing is admitted without a charge. Pods are charged on creation only.
pub fn admit_update(
    quotas: &[Value],
    group: &str,
    plural: &str,
    old: &Value,
    new: &Value,
) -> Result<Vec<Charge>, String> {
    if group.is_empty() && plural == "pods" {
        return Ok(Vec::new());
    }
    let before = object_usage(group, plural, old);
    let grown: Usage = object_usage(group, plural, new)
        .into_iter()
        .filter_map(|(name, after)| {
            let prior = before.get(&name).map_or(0, |a| a.milli);
            let added = after.milli.checked_sub(prior)?;
            (added > 0).then_some((
                name,
                Amount {
                    milli: added,
                    binary: after.binary,
                },
            ))
        })
        .collect();
    if grown.is_empty() {
        return Ok(Vec::new());
    }
    charge(quotas, group, plural, new, &grown)
}

/// Charges `delta`, the usage a write of `obj` adds, to the quotas covering it, or refuses it
/// in Kubernetes' words.
fn charge(
    quotas: &[Value],
    group: &str,
    plural: &str,
    obj: &Value,
    delta: &Usage,
) -> Result<Vec<Charge>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, resources: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"containers": [{"name": name, "image": "x", "resources": resources}]}
        })
    }

    fn quota(name: &str, hard: Value, used: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"hard": hard.clone()},
            "status": {"hard": hard, "used": used}
        })
    }

    fn scoped(mut q: Value, scopes: Value) -> Value {
        q["spec"]["scopes"] = scopes;
        q
    }

    /// One admission: the quotas, the kind and object created, and either the charges (each
    /// quota's index and new `status.used`) or the refusal's text.
    struct Case {
        name: &'static str,
        quotas: Vec<Value>,
        kind: (&'static str, &'static str),
        object: Value,
        expected: Result<Vec<(usize, Value)>, &'static str>,
    }

    /// Shaped after upstream's ResourceQuota admission tests (`TestAdmitBelowQuotaLimit`,
    /// `TestAdmitExceedQuotaLimit`, `TestAdmitEnforceQuotaConstraints`,
    /// `TestAdmitBelowTerminatingQuotaLimit`, `TestAdmitBelowBestEffortQuotaLimit`, ...).
    fn cases() -> Vec<Case> {
        let compute = json!({"requests": {"cpu": "100m", "memory": "2Gi"}, "limits": {"cpu": "200m", "memory": "3Gi"}});
        let quota_compute = || {
            quota(
                "quota",
                json!({"cpu": "3", "memory": "100Gi", "pods": "5"}),
                json!({"cpu": "1", "memory": "50Gi", "pods": "3"}),
            )
        };
        vec![
            Case {
                name: "below quota limit",
                quotas: vec![quota_compute()],
                kind: ("", "pods"),
                object: pod("123", compute.clone()),
                expected: Ok(vec![(0, json!({"cpu": "1100m", "memory": "52Gi", "pods": "4"}))]),
            },
            Case {
                name: "exceed quota limit",
                quotas: vec![quota_compute()],
                kind: ("", "pods"),
                object: pod("123", json!({"requests": {"cpu": "3", "memory": "2Gi"}})),
                expected: Err("exceeded quota: quota, requested: cpu=3, used: cpu=1, limited: cpu=3"),
            },
            Case {
                name: "the last pod slot",
                quotas: vec![quota("q", json!({"pods": "2"}), json!({"pods": "2"}))],
                kind: ("", "pods"),
                object: pod("x", json!({})),
                expected: Err("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"),
            },
            Case {
                name: "enforce quota constraints",
                quotas: vec![quota(
                    "quota",
                    json!({"cpu": "3", "memory": "100Gi", "pods": "5", "limits.memory": "10Gi"}),
                    json!({"cpu": "1", "memory": "50Gi", "pods": "3", "limits.memory": "1Gi"}),
                )],
                kind: ("", "pods"),
                object: pod("allocate-me", json!({"requests": {"cpu": "100m"}})),
                expected: Err("failed quota: quota: must specify limits.memory for: allocate-me; memory for: allocate-me"),
            },
            Case {
                name: "quota status not yet known",
                quotas: vec![quota("quota", json!({"pods": "5"}), json!({}))],
                kind: ("", "pods"),
                object: pod("p", json!({})),
                expected: Err("status unknown for quota: quota, resources: pods"),
            },
            Case {
                name: "quota without status is not enforced",
                quotas: vec![json!({"metadata": {"name": "fresh"}, "spec": {"hard": {"pods": "0"}}})],
                kind: ("", "pods"),
                object: pod("p", json!({})),
                expected: Ok(vec![]),
            },
            Case {
                name: "below terminating quota limit: only the scoped quota sees a terminating pod",
                quotas: vec![
                    scoped(quota("terminating", json!({"pods": "2"}), json!({"pods": "1"})), json!(["Terminating"])),
                    scoped(quota("not-terminating", json!({"pods": "1"}), json!({"pods": "1"})), json!(["NotTerminating"])),
                ],
                kind: ("", "pods"),
                object: {
                    let mut p = pod("t", json!({}));
                    p["spec"]["activeDeadlineSeconds"] = json!(60);
                    p
                },
                expected: Ok(vec![(0, json!({"pods": "2"}))]),
            },
            Case {
                name: "below best effort quota limit",
                quotas: vec![
                    scoped(quota("best-effort", json!({"pods": "5"}), json!({"pods": "3"})), json!(["BestEffort"])),
                    scoped(quota("not-best-effort", json!({"pods": "0"}), json!({"pods": "0"})), json!(["NotBestEffort"])),
                ],
                kind: ("", "pods"),
                object: pod("be", json!({})),
                expected: Ok(vec![(0, json!({"pods": "4"}))]),
            },
            Case {
                name: "not best effort pod refused by its scoped quota",
                quotas: vec![scoped(
                    quota("not-best-effort", json!({"pods": "1"}), json!({"pods": "1"})),
                    json!(["NotBestEffort"]),
                )],
                kind: ("", "pods"),
                object: pod("nbe", compute.clone()),
                expected: Err("exceeded quota: not-best-effort, requested: pods=1, used: pods=1, limited: pods=1"),
            },
            Case {
                name: "object count of a group kind",
                quotas: vec![quota("q", json!({"count/deployments.apps": "2"}), json!({"count/deployments.apps": "1"}))],
                kind: ("apps", "deployments"),
                object: json!({"metadata": {"name": "d"}}),
                expected: Ok(vec![(0, json!({"count/deployments.apps": "2"}))]),
            },
            Case {
                name: "services and node ports",
                quotas: vec![quota(
                    "q",
                    json!({"services": "10", "services.nodeports": "1"}),
                    json!({"services": "0", "services.nodeports": "0"}),
                )],
                kind: ("", "services"),
                object: json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}),
                expected: Err("exceeded quota: q, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"),
            },
            Case {
                name: "scoped quotas ignore other kinds",
                quotas: vec![scoped(quota("q", json!({"pods": "0"}), json!({"pods": "0"})), json!(["BestEffort"]))],
                kind: ("", "configmaps"),
                object: json!({}),
                expected: Ok(vec![]),
            },
            Case {
                name: "several quotas are all charged",
                quotas: vec![
                    quota("a", json!({"configmaps": "4"}), json!({"configmaps": "1"})),
                    quota("b", json!({"count/configmaps": "9"}), json!({"count/configmaps": "1"})),
                ],
                kind: ("", "configmaps"),
                object: json!({}),
                expected: Ok(vec![
                    (0, json!({"configmaps": "2"})),
                    (1, json!({"count/configmaps": "2"})),
                ]),
            },
        ]
    }

    #[test]
    fn admission_table() {
        let cases = cases();
        assert_eq!(cases.len(), 13);
        for case in cases {
            let got = admit(&case.quotas, case.kind.0, case.kind.1, &case.object).map(|charges| {
                charges
                    .into_iter()
                    .map(|c| (c.index, Value::Object(c.used)))
                    .collect::<Vec<_>>()
            });
            let want = case.expected.map_err(str::to_string);
            assert_eq!(got, want, "case {}", case.name);
        }
    }

    fn service(kind: &str, ports: usize) -> Value {
        let ports: Vec<Value> = (0..ports)
            .map(|i| json!({"name": format!("p{i}"), "port": 80 + i}))
            .collect();
        json!({"metadata": {"name": "svc", "namespace": "test"},
            "spec": {"type": kind, "ports": ports}})
    }

    fn claim(storage: &str) -> Value {
        json!({"metadata": {"name": "data", "namespace": "test"},
            "spec": {"resources": {"requests": {"storage": storage}}}})
    }

    /// Shaped after upstream's update cases (`TestAdmitHandlesOldObjects`,
    /// `TestAdmitHandlesPVCUpdates`, `TestAdmitHandlesNegativePVCUpdates`): only what an
    /// update adds is charged.
    #[test]
    fn updates_charge_only_what_they_add() {
        let service_quota = quota(
            "quota",
            json!({"services": "10", "services.loadbalancers": "10", "services.nodeports": "10"}),
            json!({"services": "1", "services.loadbalancers": "0", "services.nodeports": "0"}),
        );
        let charged = admit_update(
            std::slice::from_ref(&service_quota),
            "",
            "services",
            &service("ClusterIP", 1),
            &service("NodePort", 1),
        )
        .expect("within the quota");
        assert_eq!(charged.len(), 1);
        assert_eq!(
            Value::Object(charged[0].used.clone()),
            json!({"services": "1", "services.loadbalancers": "0", "services.nodeports": "1"}),
            "a Service is not counted twice"
        );
        let balancer = admit_update(
            std::slice::from_ref(&service_quota),
            "",
            "services",
            &service("NodePort", 2),
            &service("LoadBalancer", 2),
        )
        .expect("within the quota");
        assert_eq!(
            Value::Object(balancer[0].used.clone()),
            json!({"services": "1", "services.loadbalancers": "1", "services.nodeports": "0"}),
            "the node ports were counted already"
        );
        let no_node_ports = quota(
            "no-node-ports",
            json!({"services.nodeports": "0"}),
            json!({"services.nodeports": "0"}),
        );
        assert_eq!(
            admit_update(
                std::slice::from_ref(&no_node_ports),
                "",
                "services",
                &service("ClusterIP", 1),
                &service("NodePort", 1),
            )
            .map(|c| c.len()),
            Err("exceeded quota: no-node-ports, requested: services.nodeports=1, used: services.nodeports=0, limited: services.nodeports=0".to_string())
        );
        let no_balancers = quota(
            "no-lb",
            json!({"services.loadbalancers": "0"}),
            json!({"services.loadbalancers": "0"}),
        );
        assert_eq!(
            admit_update(
                &[no_balancers],
                "",
                "services",
                &service("ClusterIP", 1),
                &service("LoadBalancer", 1),
            )
            .map(|c| c.len()),
            Err("exceeded quota: no-lb, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0".to_string())
        );
        assert_eq!(
            admit_update(
                &[no_node_ports],
                "",
                "services",
                &service("ClusterIP", 1),
                &service("ClusterIP", 2),
            )
            .map(|c| c.len()),
            Ok(0),
            "an update adding nothing counted is admitted as is"
        );

        let storage_quota = quota(
            "quota",
            json!({"requests.storage": "50Gi", "persistentvolumeclaims": "10"}),
            json!({"requests.storage": "10Gi", "persistentvolumeclaims": "1"}),
        );
        let grown = admit_update(
            std::slice::from_ref(&storage_quota),
            "",
            "persistentvolumeclaims",
            &claim("10Gi"),
            &claim("15Gi"),
        )
        .expect("within the quota");
        assert_eq!(
            Value::Object(grown[0].used.clone()),
            json!({"requests.storage": "15Gi", "persistentvolumeclaims": "1"})
        );
        assert_eq!(
            admit_update(
                std::slice::from_ref(&storage_quota),
                "",
                "persistentvolumeclaims",
                &claim("10Gi"),
                &claim("5Gi"),
            )
            .map(|c| c.len()),
            Ok(0),
            "a shrinking claim is not charged"
        );
        assert_eq!(
            admit_update(
                &[storage_quota],
                "",
                "persistentvolumeclaims",
                &claim("10Gi"),
                &claim("100Gi"),
            )
            .map(|c| c.len()),
            Err("exceeded quota: quota, requested: requests.storage=90Gi, used: requests.storage=10Gi, limited: requests.storage=50Gi".to_string())
        );
    }

    #[test]
    fn amounts_print_in_their_family() {
        let sum = |a: &str, b: &str| {
            Amount::parse(a)
                .unwrap()
                .plus(Amount::parse(b).unwrap())
                .to_quantity()
        };
        assert_eq!(sum("512Mi", "512Mi"), "1Gi");
        assert_eq!(sum("100m", "900m"), "1");
        assert_eq!(sum("100m", "50m"), "150m");
        assert_eq!(sum("500", "500"), "1k");
        assert_eq!(sum("1Gi", "1"), "1073741825");
        assert_eq!(Amount::count(0).to_quantity(), "0");
    }
}
