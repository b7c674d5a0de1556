//! The planner against a table shaped after upstream's `TestSyncResourceQuota`: a quota, the
//! namespace's objects, and the status a sync must write (or none).

use jiff::Timestamp;
use serde_json::{json, Value};

use super::plan_status;

fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().expect("a valid time")
}

fn pod(name: &str, phase: &str, resources: Value, deadline: Option<i64>) -> Value {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "testing"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]},
        "status": {"phase": phase}
    });
    if let Some(seconds) = deadline {
        pod["spec"]["activeDeadlineSeconds"] = json!(seconds);
    }
    pod
}

fn requests_and_limits() -> Value {
    json!({"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "200m", "memory": "2Gi"}})
}

fn quota(hard: Value, scopes: Value, status: Value) -> Value {
    json!({
        "metadata": {"name": "quota", "namespace": "testing"},
        "spec": {"hard": hard, "scopes": scopes},
        "status": status
    })
}

/// The upstream fixture's three pods: running with resources and a deadline, running best
/// effort without one, and failed.
fn pods() -> Vec<Value> {
    vec![
        pod("pod-running", "Running", requests_and_limits(), Some(30)),
        pod("pod-running-2", "Running", json!({}), None),
        pod("pod-failed", "Failed", requests_and_limits(), Some(30)),
    ]
}

struct Case {
    name: &'static str,
    quota: Value,
    objects: Vec<(&'static str, &'static str, Value)>,
    expected: Option<Value>,
}

fn cases() -> Vec<Case> {
    let compute = json!({"cpu": "3", "memory": "100Gi", "pods": "5"});
    let with_pods = |objects: Vec<Value>| -> Vec<(&'static str, &'static str, Value)> {
        objects.into_iter().map(|p| ("", "pods", p)).collect()
    };
    vec![
        Case {
            name: "pods",
            quota: quota(compute.clone(), json!([]), json!({})),
            objects: with_pods(pods()),
            expected: Some(json!({
                "hard": {"cpu": "3", "memory": "100Gi", "pods": "5"},
                "used": {"cpu": "100m", "memory": "1Gi", "pods": "2"}
            })),
        },
        Case {
            name: "pods-terminating",
            quota: quota(compute.clone(), json!(["Terminating"]), json!({})),
            objects: with_pods(pods()),
            expected: Some(json!({
                "hard": {"cpu": "3", "memory": "100Gi", "pods": "5"},
                "used": {"cpu": "100m", "memory": "1Gi", "pods": "1"}
            })),
        },
        Case {
            name: "pods-not-terminating",
            quota: quota(compute.clone(), json!(["NotTerminating"]), json!({})),
            objects: with_pods(pods()),
            expected: Some(json!({
                "hard": {"cpu": "3", "memory": "100Gi", "pods": "5"},
                "used": {"cpu": "0", "memory": "0", "pods": "1"}
            })),
        },
        Case {
            name: "pods-best-effort",
            quota: quota(json!({"pods": "5"}), json!(["BestEffort"]), json!({})),
            objects: with_pods(pods()),
            expected: Some(json!({"hard": {"pods": "5"}, "used": {"pods": "1"}})),
        },
        Case {
            name: "pods-not-best-effort",
            quota: quota(json!({"pods": "5"}), json!(["NotBestEffort"]), json!({})),
            objects: with_pods(pods()),
            expected: Some(json!({"hard": {"pods": "5"}, "used": {"pods": "1"}})),
        },
        Case {
            name: "pods-limits-and-requests-prefixed",
            quota: quota(
                json!({"requests.cpu": "1", "limits.memory": "4Gi", "count/pods": "9"}),
                json!([]),
                json!({}),
            ),
            objects: with_pods(pods()),
            expected: Some(json!({
                "hard": {"count/pods": "9", "limits.memory": "4Gi", "requests.cpu": "1"},
                "used": {"count/pods": "2", "limits.memory": "2Gi", "requests.cpu": "100m"}
            })),
        },
        Case {
            name: "pods-past-their-grace-period-do-not-count",
            quota: quota(json!({"pods": "5"}), json!([]), json!({})),
            objects: with_pods(vec![
                {
                    let mut p = pod("leaving", "Running", json!({}), None);
                    p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:00:00Z");
                    p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
                    p
                },
                {
                    let mut p = pod("stopping", "Running", json!({}), None);
                    p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:50Z");
                    p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
                    p
                },
            ]),
            expected: Some(json!({"hard": {"pods": "5"}, "used": {"pods": "1"}})),
        },
        Case {
            name: "object-counts",
            quota: quota(
                json!({"services": "3", "services.nodeports": "4", "configmaps": "2",
                       "count/deployments.apps": "1", "secrets": "10"}),
                json!([]),
                json!({}),
            ),
            objects: vec![
                (
                    "",
                    "services",
                    json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}),
                ),
                (
                    "",
                    "services",
                    json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
                ),
                ("", "configmaps", json!({})),
                ("apps", "deployments", json!({})),
            ],
            expected: Some(json!({
                "hard": {"configmaps": "2", "count/deployments.apps": "1", "secrets": "10",
                         "services": "3", "services.nodeports": "4"},
                "used": {"configmaps": "1", "count/deployments.apps": "1", "secrets": "0",
                         "services": "2", "services.nodeports": "2"}
            })),
        },
        Case {
            name: "scoped-quotas-count-no-other-kinds",
            quota: quota(
                json!({"pods": "5", "count/pods": "5"}),
                json!(["NotTerminating"]),
                json!({}),
            ),
            objects: vec![("", "pods", pod("p", "Pending", json!({}), None))],
            expected: Some(json!({"hard": {"count/pods": "5", "pods": "5"},
                                  "used": {"count/pods": "1", "pods": "1"}})),
        },
        Case {
            name: "quota-unchanged",
            quota: quota(
                json!({"pods": "5"}),
                json!([]),
                json!({"hard": {"pods": "5"}, "used": {"pods": "2"}}),
            ),
            objects: with_pods(pods()),
            expected: None,
        },
        Case {
            name: "quota-spec-hard-updated",
            quota: quota(
                json!({"pods": "3", "cpu": "1"}),
                json!([]),
                json!({"hard": {"pods": "5"}, "used": {"pods": "2"}}),
            ),
            objects: with_pods(pods()),
            expected: Some(json!({"hard": {"cpu": "1", "pods": "3"},
                                  "used": {"cpu": "100m", "pods": "2"}})),
        },
        Case {
            name: "untracked-resources-get-no-usage",
            quota: quota(json!({"example.com/widgets": "2"}), json!([]), json!({})),
            objects: vec![],
            expected: Some(json!({"hard": {"example.com/widgets": "2"}, "used": {}})),
        },
    ]
}

#[test]
fn sync_resource_quota_table() {
    let cases = cases();
    assert_eq!(cases.len(), 12);
    for case in cases {
        let objects = case.objects.clone();
        let lookup = move |group: &str, plural: &str| -> Vec<Value> {
            objects
                .iter()
                .filter(|(g, p, _)| *g == group && *p == plural)
                .map(|(_, _, o)| o.clone())
                .collect()
        };
        let planned = plan_status(&case.quota, &lookup, now());
        assert_eq!(planned, case.expected, "case {}", case.name);
    }
}
