//! API Priority and Fairness configuration as kube-apiserver bootstraps it: the mandatory and
//! suggested FlowSchemas and PriorityLevelConfigurations (names, precedences, subjects, rules,
//! shares and queuing as Kubernetes 1.36 ships them), and the pure plan of what keeping them
//! takes: mandatory objects are created whenever missing (so deleting one brings it back) and
//! put back to their spec while they carry `apf.kubernetes.io/autoupdate-spec: "true"`;
//! suggested ones are created when missing at start; every FlowSchema's `Dangling` condition
//! says whether its priority level exists.

use serde_json::{json, Value};

/// The annotation allowing the server to keep a bootstrap object's spec.
pub const AUTOUPDATE_ANNOTATION: &str = "apf.kubernetes.io/autoupdate-spec";

/// The API version of both kinds.
pub const API_VERSION: &str = "flowcontrol.apiserver.k8s.io/v1";

const EVERY: &str = "*";

fn metadata(name: &str) -> Value {
    json!({"name": name, "annotations": {AUTOUPDATE_ANNOTATION: "true"}})
}

fn exempt_level(name: &str) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration",
        "metadata": metadata(name),
        "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}})
}

fn rejecting_level(name: &str, shares: i64) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration",
        "metadata": metadata(name),
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
            "lendablePercent": 0, "limitResponse": {"type": "Reject"}}}})
}

fn queuing_level(name: &str, shares: i64, lendable: i64, queues: i64, hand_size: i64) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration",
        "metadata": metadata(name),
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
            "lendablePercent": lendable, "limitResponse": {"type": "Queue",
                "queuing": {"queues": queues, "handSize": hand_size, "queueLengthLimit": 50}}}}})
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "group": {"name": name}})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "user": {"name": name}})
}

fn kube_system_service_account(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "serviceAccount": {"name": name, "namespace": "kube-system"}})
}

fn resource_rule(
    verbs: &[&str],
    groups: &[&str],
    resources: &[&str],
    namespaces: &[&str],
    cluster_scope: bool,
) -> Value {
    let mut rule = json!({"verbs": verbs, "apiGroups": groups, "resources": resources,
        "namespaces": namespaces});
    if cluster_scope {
        rule["clusterScope"] = json!(true);
    }
    rule
}

fn everything() -> Value {
    resource_rule(&[EVERY], &[EVERY], &[EVERY], &[EVERY], true)
}

fn every_url() -> Value {
    json!({"verbs": [EVERY], "nonResourceURLs": [EVERY]})
}

/// A FlowSchema with one rule; `method` is the distinguisher method, if any.
fn schema(
    name: &str,
    level: &str,
    precedence: i64,
    method: Option<&str>,
    subjects: Vec<Value>,
    resource_rules: Vec<Value>,
    non_resource_rules: Vec<Value>,
) -> Value {
    let mut rule = json!({"subjects": subjects});
    if !resource_rules.is_empty() {
        rule["resourceRules"] = json!(resource_rules);
    }
    if !non_resource_rules.is_empty() {
        rule["nonResourceRules"] = json!(non_resource_rules);
    }
    let mut spec = json!({"priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence, "rules": [rule]});
    if let Some(method) = method {
        spec["distinguisherMethod"] = json!({"type": method});
    }
    json!({"apiVersion": API_VERSION, "kind": "FlowSchema", "metadata": metadata(name),
        "spec": spec})
}

/// A FlowSchema matching every request of its subjects.
fn schema_for_all(
    name: &str,
    level: &str,
    precedence: i64,
    method: Option<&str>,
    subjects: Vec<Value>,
) -> Value {
    schema(
        name,
        level,
        precedence,
        method,
        subjects,
        vec![everything()],
        vec![every_url()],
    )
}

const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
const SCHEDULER: &str = "system:kube-scheduler";
const LEADER_ELECTION_VERBS: &[&str] = &["get", "create", "update"];

/// The priority levels every server keeps whatever the administrator does.
pub fn mandatory_priority_levels() -> Vec<Value> {
    vec![exempt_level("exempt"), rejecting_level("catch-all", 5)]
}

/// The FlowSchemas every server keeps whatever the administrator does.
pub fn mandatory_flow_schemas() -> Vec<Value> {
    vec![
        schema_for_all("exempt", "exempt", 1, None, vec![group("system:masters")]),
        schema_for_all(
            "catch-all",
            "catch-all",
            10000,
            Some("ByUser"),
            vec![group(UNAUTHENTICATED), group(AUTHENTICATED)],
        ),
    ]
}

/// The priority levels created when missing at start.
pub fn suggested_priority_levels() -> Vec<Value> {
    vec![
        queuing_level("system", 30, 33, 64, 6),
        queuing_level("node-high", 40, 25, 64, 6),
        queuing_level("leader-election", 10, 0, 16, 4),
        queuing_level("workload-high", 40, 50, 128, 6),
        queuing_level("workload-low", 100, 90, 128, 6),
        queuing_level("global-default", 20, 50, 128, 6),
    ]
}

/// The FlowSchemas created when missing at start.
pub fn suggested_flow_schemas() -> Vec<Value> {
    let leases = |namespaces: &[&str]| {
        resource_rule(
            LEADER_ELECTION_VERBS,
            &["coordination.k8s.io"],
            &["leases"],
            namespaces,
            false,
        )
    };
    let mut leader_electors = vec![user(CONTROLLER_MANAGER), user(SCHEDULER)];
    leader_electors.push(kube_system_service_account(EVERY));
    vec![
        schema_for_all(
            "system-nodes",
            "system",
            500,
            Some("ByUser"),
            vec![group("system:nodes")],
        ),
        schema(
            "system-node-high",
            "node-high",
            400,
            Some("ByUser"),
            vec![group("system:nodes")],
            vec![
                resource_rule(&[EVERY], &[""], &["nodes", "nodes/status"], &[EVERY], true),
                resource_rule(
                    &[EVERY],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &[EVERY],
                    false,
                ),
            ],
            vec![],
        ),
        schema(
            "probes",
            "exempt",
            2,
            None,
            vec![group(UNAUTHENTICATED), group(AUTHENTICATED)],
            vec![],
            vec![json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]})],
        ),
        schema(
            "system-leader-election",
            "leader-election",
            100,
            Some("ByUser"),
            leader_electors,
            vec![
                resource_rule(
                    LEADER_ELECTION_VERBS,
                    &[""],
                    &["endpoints", "configmaps"],
                    &["kube-system"],
                    false,
                ),
                leases(&[EVERY]),
            ],
            vec![],
        ),
        schema(
            "workload-leader-election",
            "leader-election",
            200,
            Some("ByUser"),
            vec![kube_system_service_account(EVERY)],
            vec![
                resource_rule(
                    LEADER_ELECTION_VERBS,
                    &[""],
                    &["endpoints", "configmaps"],
                    &[EVERY],
                    false,
                ),
                leases(&[EVERY]),
            ],
            vec![],
        ),
        schema(
            "endpoint-controller",
            "workload-high",
            150,
            Some("ByUser"),
            vec![
                user(CONTROLLER_MANAGER),
                kube_system_service_account("endpoint-controller"),
            ],
            vec![resource_rule(
                LEADER_ELECTION_VERBS,
                &[""],
                &["endpoints"],
                &[EVERY],
                false,
            )],
            vec![],
        ),
        schema_for_all(
            "kube-controller-manager",
            "workload-high",
            800,
            Some("ByNamespace"),
            vec![user(CONTROLLER_MANAGER)],
        ),
        schema_for_all(
            "kube-scheduler",
            "workload-high",
            800,
            Some("ByNamespace"),
            vec![user(SCHEDULER)],
        ),
        schema_for_all(
            "kube-system-service-accounts",
            "workload-high",
            900,
            Some("ByNamespace"),
            vec![kube_system_service_account(EVERY)],
        ),
        schema_for_all(
            "service-accounts",
            "workload-low",
            9000,
            Some("ByUser"),
            vec![group("system:serviceaccounts")],
        ),
        schema_for_all(
            "global-default",
            "global-default",
            9900,
            Some("ByUser"),
            vec![group(UNAUTHENTICATED), group(AUTHENTICATED)],
        ),
    ]
}

/// Which kind a [`Step`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// A FlowSchema.
    FlowSchema,
    /// A PriorityLevelConfiguration.
    PriorityLevel,
}

/// One write keeping the configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create a missing bootstrap object.
    Create(ConfigKind, Value),
    /// Put a mandatory object's spec back: the object as stored, with the bootstrap spec.
    RestoreSpec(ConfigKind, Value),
    /// Write a FlowSchema's status: the object as stored, with its new conditions.
    WriteStatus(Value),
}

/// What the server's view of the configuration needs, given the stored FlowSchemas and
/// priority levels. `at_start` adds the suggested objects that are missing; `now` is the
/// RFC 3339 time a changed condition records.
pub fn plan(flow_schemas: &[Value], levels: &[Value], at_start: bool, now: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut wanted = vec![
        (ConfigKind::PriorityLevel, mandatory_priority_levels(), true),
        (ConfigKind::FlowSchema, mandatory_flow_schemas(), true),
    ];
    if at_start {
        wanted.push((
            ConfigKind::PriorityLevel,
            suggested_priority_levels(),
            false,
        ));
        wanted.push((ConfigKind::FlowSchema, suggested_flow_schemas(), false));
    }
    let mut level_names: Vec<&str> = levels.iter().map(name_of).collect();
    let mut created_levels = Vec::new();
    for (kind, objects, mandatory) in wanted {
        let stored = match kind {
            ConfigKind::FlowSchema => flow_schemas,
            ConfigKind::PriorityLevel => levels,
        };
        for object in objects {
            let name = name_of(&object);
            match stored.iter().find(|s| name_of(s) == name) {
                None => {
                    if kind == ConfigKind::PriorityLevel {
                        created_levels.push(name.to_string());
                    }
                    steps.push(Step::Create(kind, object));
                }
                Some(current) if mandatory && keeps_spec_updated(current) => {
                    if current.get("spec") != object.get("spec") {
                        let mut restored = current.clone();
                        restored["spec"] = object["spec"].clone();
                        steps.push(Step::RestoreSpec(kind, restored));
                    }
                }
                Some(_) => {}
            }
        }
    }
    level_names.extend(created_levels.iter().map(String::as_str));
    for fs in flow_schemas {
        let level = fs
            .pointer("/spec/priorityLevelConfiguration/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let wanted = dangling_condition(level, level_names.contains(&level));
        let conditions = fs
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let current = conditions.iter().find(|c| c["type"] == "Dangling");
        let same = current.is_some_and(|c| {
            ["status", "reason", "message"]
                .iter()
                .all(|k| c.get(*k) == wanted.get(*k))
        });
        if same {
            continue;
        }
        let mut condition = wanted;
        condition["lastTransitionTime"] = match current {
            Some(c) if c.get("status") == condition.get("status") => {
                c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
            }
            _ => json!(now),
        };
        let mut updated = fs.clone();
        let mut others: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != "Dangling")
            .collect();
        others.push(condition);
        updated["status"] = json!({"conditions": others});
        steps.push(Step::WriteStatus(updated));
    }
    steps
}

/// The `Dangling` condition of a FlowSchema whose priority level is `level`.
pub fn dangling_condition(level: &str, exists: bool) -> Value {
    if exists {
        json!({"type": "Dangling", "status": "False", "reason": "Found",
            "message": format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} and it exists")})
    } else {
        json!({"type": "Dangling", "status": "True", "reason": "NotFound",
            "message": format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} but there is no such object")})
    }
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn keeps_spec_updated(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-06T10:00:00Z";

    fn names(steps: &[Step], wanted: ConfigKind) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Create(kind, obj) if *kind == wanted => Some(name_of(obj).to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_empty_store_gets_every_bootstrap_object_at_start() {
        let steps = plan(&[], &[], true, NOW);
        let mut levels = names(&steps, ConfigKind::PriorityLevel);
        levels.sort();
        assert_eq!(
            levels,
            [
                "catch-all",
                "exempt",
                "global-default",
                "leader-election",
                "node-high",
                "system",
                "workload-high",
                "workload-low"
            ]
        );
        let mut schemas = names(&steps, ConfigKind::FlowSchema);
        schemas.sort();
        assert_eq!(
            schemas,
            [
                "catch-all",
                "endpoint-controller",
                "exempt",
                "global-default",
                "kube-controller-manager",
                "kube-scheduler",
                "kube-system-service-accounts",
                "probes",
                "service-accounts",
                "system-leader-election",
                "system-node-high",
                "system-nodes",
                "workload-leader-election"
            ]
        );
    }

    #[test]
    fn every_bootstrap_schema_references_a_bootstrap_level() {
        let levels: Vec<Value> = mandatory_priority_levels()
            .into_iter()
            .chain(suggested_priority_levels())
            .collect();
        for fs in mandatory_flow_schemas()
            .into_iter()
            .chain(suggested_flow_schemas())
        {
            let level = fs["spec"]["priorityLevelConfiguration"]["name"]
                .as_str()
                .unwrap_or("");
            assert!(
                levels.iter().any(|l| name_of(l) == level),
                "{}",
                name_of(&fs)
            );
        }
    }

    #[test]
    fn later_passes_recreate_only_the_mandatory_objects() {
        // Everything but the mandatory catch-all schema and the suggested global-default.
        let levels: Vec<Value> = mandatory_priority_levels()
            .into_iter()
            .chain(suggested_priority_levels())
            .filter(|l| name_of(l) != "global-default")
            .collect();
        let schemas: Vec<Value> = mandatory_flow_schemas()
            .into_iter()
            .chain(suggested_flow_schemas())
            .filter(|f| name_of(f) != "catch-all")
            .collect();
        let steps = plan(&schemas, &levels, false, NOW);
        assert_eq!(names(&steps, ConfigKind::FlowSchema), ["catch-all"]);
        assert!(names(&steps, ConfigKind::PriorityLevel).is_empty());
        let at_start = plan(&schemas, &levels, true, NOW);
        assert_eq!(
            names(&at_start, ConfigKind::PriorityLevel),
            ["global-default"]
        );
    }

    #[test]
    fn a_changed_mandatory_spec_is_put_back_unless_autoupdate_is_off() {
        let mut exempt = mandatory_priority_levels().remove(0);
        exempt["spec"]["exempt"]["lendablePercent"] = json!(10);
        let levels = vec![exempt.clone(), mandatory_priority_levels().remove(1)];
        let steps = plan(&mandatory_flow_schemas(), &levels, false, NOW);
        let restored: Vec<&Value> = steps
            .iter()
            .filter_map(|s| match s {
                Step::RestoreSpec(ConfigKind::PriorityLevel, obj) => Some(obj),
                _ => None,
            })
            .collect();
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0]["spec"]["exempt"]["lendablePercent"], 0);
        exempt["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = json!("false");
        let levels = vec![exempt, mandatory_priority_levels().remove(1)];
        let steps = plan(&mandatory_flow_schemas(), &levels, false, NOW);
        assert!(!steps.iter().any(|s| matches!(s, Step::RestoreSpec(..))));
    }

    #[test]
    fn flow_schemas_say_whether_their_level_exists() {
        let mut fs = schema_for_all("mine", "nowhere", 500, Some("ByUser"), vec![group("g")]);
        let steps = plan(
            std::slice::from_ref(&fs),
            &mandatory_priority_levels(),
            false,
            NOW,
        );
        let Some(Step::WriteStatus(written)) = steps
            .iter()
            .find(|s| matches!(s, Step::WriteStatus(o) if name_of(o) == "mine"))
        else {
            panic!("no status written for mine: {steps:?}");
        };
        assert_eq!(
            written["status"]["conditions"],
            json!([{"type": "Dangling", "status": "True", "reason": "NotFound",
                "message": "This FlowSchema references the PriorityLevelConfiguration object named \"nowhere\" but there is no such object",
                "lastTransitionTime": NOW}])
        );
        // Once written, the same condition is not written again.
        fs = written.clone();
        let again = plan(
            std::slice::from_ref(&fs),
            &mandatory_priority_levels(),
            false,
            NOW,
        );
        assert!(!again
            .iter()
            .any(|s| matches!(s, Step::WriteStatus(o) if name_of(o) == "mine")));
        // The level appearing flips it to Found.
        fs["spec"]["priorityLevelConfiguration"]["name"] = json!("exempt");
        let found = plan(
            std::slice::from_ref(&fs),
            &mandatory_priority_levels(),
            false,
            "later",
        );
        let Some(Step::WriteStatus(written)) = found
            .iter()
            .find(|s| matches!(s, Step::WriteStatus(o) if name_of(o) == "mine"))
        else {
            panic!("no status written for mine: {found:?}");
        };
        assert_eq!(written["status"]["conditions"][0]["reason"], "Found");
        assert_eq!(
            written["status"]["conditions"][0]["lastTransitionTime"],
            "later"
        );
    }
}
