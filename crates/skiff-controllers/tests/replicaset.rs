//! The ReplicaSet planner: deletion order (upstream `TestSortingActivePods`,
//! `TestSortingActivePodsWithRanks`, `TestGetPodsToDelete`), status (`TestCalculateStatus`,
//! `TestCalculateStatusConditions`), and what one sync plans.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_controllers::deployment::Timestamp;
use skiff_controllers::replicaset::pods::{delete_before, RankedPod};
use skiff_controllers::replicaset::status::{
    CONDITION_REPLICA_FAILURE, REASON_FAILED_CREATE, REASON_FAILED_DELETE,
};
use skiff_controllers::replicaset::{
    calculate_status, failed_create_event, failed_delete_event, plan, plan_with_related,
    pod_name_prefix, pods_to_delete, slow_start_batches, sort_for_deletion,
    successful_create_event, successful_delete_event, EventType, ManageError, ReplicaSetPlanError,
    BURST_REPLICAS,
};

const NOW: &str = "2025-03-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("valid time")
}

fn ago(seconds: i64) -> String {
    now()
        .checked_sub(jiff::SignedDuration::from_secs(seconds))
        .expect("in range")
        .to_string()
}

fn pod_from(value: Value) -> Pod {
    serde_json::from_value(value).expect("valid pod")
}

// ---------------------------------------------------------------------------------------------
// Deletion order

/// A pod as the upstream sorting tests build them.
fn sorting_pod(name: &str, spec: &Value) -> Pod {
    let time = |key: &str| -> Option<String> {
        match spec[key].as_str().expect("time name") {
            "zero" => None,
            "now" => Some(ago(0)),
            "then1Month" => Some(ago(30 * 24 * 3600)),
            "then2Hours" => Some(ago(2 * 3600)),
            "then5Hours" => Some(ago(5 * 3600)),
            "then8Hours" => Some(ago(8 * 3600)),
            other => panic!("unknown time {other}"),
        }
    };
    let ready = spec["ready"].as_bool().expect("bool");
    let mut status = json!({"phase": spec["phase"]});
    if ready {
        let mut condition = json!({"type": "Ready", "status": "True"});
        if let Some(t) = time("readySince") {
            condition["lastTransitionTime"] = json!(t);
        }
        status["conditions"] = json!([condition]);
        status["containerStatuses"] = json!([{
            "name": "c", "image": "i", "imageID": "", "ready": true,
            "restartCount": spec["restarts"]
        }]);
    }
    let mut metadata = json!({"name": name});
    if let Some(t) = time("created") {
        metadata["creationTimestamp"] = json!(t);
    }
    if let Some(cost) = spec.get("deletionCost") {
        metadata["annotations"] =
            json!({"controller.kubernetes.io/pod-deletion-cost": cost.clone()});
    }
    let mut pod = json!({"metadata": metadata, "status": status, "spec": {"containers": []}});
    if let Some(node) = spec["node"].as_str().filter(|n| !n.is_empty()) {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod_from(pod)
}

#[test]
fn sorting_active_pods_with_ranks_matches_upstream_vectors() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/TestSortingActivePodsWithRanks.json");
    let text = std::fs::read_to_string(path).expect("vector file");
    let vectors: Value = serde_json::from_str(&text).expect("json");
    let pods = vectors["pods"].as_object().expect("pods");
    let pod = |name: &Value| {
        sorting_pod(
            name.as_str().expect("name"),
            &pods[name.as_str().expect("name")],
        )
    };

    let mut ran = 0;
    for row in vectors["equal"].as_array().expect("rows") {
        let (a, b) = (pod(&row[0]), pod(&row[1]));
        let (ra, rb) = (
            RankedPod { pod: &a, rank: 1 },
            RankedPod { pod: &b, rank: 1 },
        );
        assert!(
            !delete_before(ra, rb, now()) && !delete_before(rb, ra, now()),
            "expected {row} to be equivalent"
        );
        ran += 1;
    }
    for row in vectors["lessThan"].as_array().expect("rows") {
        let (a, b) = (pod(&row["lesser"][0]), pod(&row["greater"][0]));
        let rank = |v: &Value| v.as_u64().expect("rank") as usize;
        let lesser = RankedPod {
            pod: &a,
            rank: rank(&row["lesser"][1]),
        };
        let greater = RankedPod {
            pod: &b,
            rank: rank(&row["greater"][1]),
        };
        assert!(
            delete_before(lesser, greater, now()),
            "{row}: expected lesser first"
        );
        assert!(
            !delete_before(greater, lesser, now()),
            "{row}: expected not the other way"
        );
        ran += 1;
    }
    assert_eq!(ran, 26);
}

/// Upstream `TestSortingActivePods`: the full order, whatever the input order.
#[test]
fn sorting_active_pods_gives_the_upstream_order_for_every_rotation() {
    let then = ago(30 * 24 * 3600);
    let now_s = ago(0);
    let ready_pod = |name: &str,
                     ready_since: Option<&str>,
                     restarts: [i32; 2],
                     created: Option<&str>| {
        let mut condition = json!({"type": "Ready", "status": "True"});
        if let Some(t) = ready_since {
            condition["lastTransitionTime"] = json!(t);
        }
        let mut metadata = json!({"name": name});
        if let Some(t) = created {
            metadata["creationTimestamp"] = json!(t);
        }
        pod_from(json!({
            "metadata": metadata,
            "spec": {"nodeName": "foo", "containers": []},
            "status": {"phase": "Running", "conditions": [condition], "containerStatuses": [
                {"name": "a", "image": "i", "imageID": "", "ready": true, "restartCount": restarts[0]},
                {"name": "b", "image": "i", "imageID": "", "ready": true, "restartCount": restarts[1]}
            ]}
        }))
    };
    let simple = |name: &str, node: &str, phase: &str| {
        pod_from(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase}
        }))
    };
    let pods = vec![
        simple("unscheduled", "", "Pending"),
        simple("scheduledButPending", "bar", "Pending"),
        simple("unknownPhase", "foo", "Unknown"),
        simple("runningButNotReady", "foo", "Running"),
        ready_pod("runningNoLastTransitionTime", None, [3, 0], None),
        ready_pod("runningWithLastTransitionTime", Some(&now_s), [3, 0], None),
        ready_pod("runningLongerTime", Some(&then), [3, 0], None),
        ready_pod(
            "lowerContainerRestartCount",
            Some(&then),
            [2, 1],
            Some(&now_s),
        ),
        ready_pod("oldest", Some(&then), [2, 1], Some(&then)),
    ];
    let want: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    for rotation in 0..pods.len() {
        let mut input = pods.clone();
        input.rotate_left(rotation);
        input.reverse();
        // Ranks are taken over a single node per pod, so every ranked pod ties on rank.
        let got: Vec<String> = sort_for_deletion(&input, &[], now())
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(got, want, "rotation {rotation}");
    }
}

fn rs_pod(name: &str, node: Option<&str>, phase: &str, ready: Option<bool>) -> Pod {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"name": "foo"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": "foobar", "uid": "rs-uid", "controller": true}]},
        "spec": {"containers": []},
        "status": {"phase": phase}
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    if let Some(ready) = ready {
        pod["status"]["conditions"] =
            json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
    }
    pod_from(pod)
}

/// Upstream `TestGetPodsToDelete`.
#[test]
fn get_pods_to_delete_table() {
    let unscheduled_pending = rs_pod("unscheduled-pending-pod", None, "Pending", None);
    let scheduled_pending = rs_pod("scheduled-pending-pod", Some("fake-node"), "Pending", None);
    let not_ready = rs_pod(
        "scheduled-running-not-ready-pod",
        Some("fake-node"),
        "Running",
        Some(false),
    );
    let ready_node1 = rs_pod(
        "scheduled-running-ready-pod-on-node-1",
        Some("fake-node-1"),
        "Running",
        Some(true),
    );
    let ready_node2 = rs_pod(
        "scheduled-running-ready-pod-on-node-2",
        Some("fake-node-2"),
        "Running",
        Some(true),
    );

    struct Case<'a> {
        name: &'a str,
        pods: Vec<&'a Pod>,
        related: Option<Vec<&'a Pod>>,
        diff: usize,
        expected: Vec<&'a Pod>,
    }
    let cases = vec![
        Case {
            name: "len(pods) = 0 (i.e., diff = 0 too)",
            pods: vec![],
            related: None,
            diff: 0,
            expected: vec![],
        },
        Case {
            name: "diff = len(pods)",
            pods: vec![&not_ready, &ready_node1],
            related: None,
            diff: 2,
            expected: vec![&not_ready, &ready_node1],
        },
        Case {
            name: "diff < len(pods)",
            pods: vec![&ready_node1, &not_ready],
            related: None,
            diff: 1,
            expected: vec![&not_ready],
        },
        Case {
            name: "various pod phases and conditions, diff = len(pods)",
            pods: vec![
                &ready_node1,
                &ready_node2,
                &not_ready,
                &scheduled_pending,
                &unscheduled_pending,
            ],
            related: None,
            diff: 5,
            expected: vec![
                &ready_node1,
                &ready_node2,
                &not_ready,
                &scheduled_pending,
                &unscheduled_pending,
            ],
        },
        Case {
            name: "scheduled vs unscheduled, diff < len(pods)",
            pods: vec![&scheduled_pending, &unscheduled_pending],
            related: None,
            diff: 1,
            expected: vec![&unscheduled_pending],
        },
        Case {
            name: "ready vs not-ready, diff < len(pods)",
            pods: vec![&ready_node1, &not_ready, &not_ready],
            related: None,
            diff: 2,
            expected: vec![&not_ready, &not_ready],
        },
        Case {
            name: "ready and colocated with another ready pod vs not colocated, diff < len(pods)",
            pods: vec![&ready_node1, &ready_node2],
            related: Some(vec![&ready_node1, &ready_node2, &ready_node2]),
            diff: 1,
            expected: vec![&ready_node2],
        },
        Case {
            name: "pending vs running, diff < len(pods)",
            pods: vec![&scheduled_pending, &not_ready],
            related: None,
            diff: 1,
            expected: vec![&scheduled_pending],
        },
        Case {
            name: "various pod phases and conditions, diff < len(pods)",
            pods: vec![
                &ready_node1,
                &ready_node2,
                &not_ready,
                &scheduled_pending,
                &unscheduled_pending,
            ],
            related: None,
            diff: 3,
            expected: vec![&unscheduled_pending, &scheduled_pending, &not_ready],
        },
    ];
    for case in cases {
        let candidates: Vec<Pod> = case.pods.iter().map(|p| (*p).clone()).collect();
        let related = case.related.unwrap_or_else(|| case.pods.clone());
        let got: Vec<&str> = pods_to_delete(&candidates, &related, case.diff, now())
            .into_iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or(""))
            .collect();
        let want: Vec<&str> = case
            .expected
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn deletion_cost_annotation_overrides_age_and_invalid_costs_count_as_zero() {
    let make = |name: &str, cost: Option<&str>, created: i64| {
        let mut meta = json!({"name": name, "uid": name, "creationTimestamp": ago(created)});
        if let Some(cost) = cost {
            meta["annotations"] = json!({"controller.kubernetes.io/pod-deletion-cost": cost});
        }
        pod_from(json!({
            "metadata": meta,
            "spec": {"nodeName": "n", "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ago(created)}]}
        }))
    };
    let pods = vec![
        make("newest-expensive", Some("100"), 10),
        make("oldest-cheap", Some("-5"), 100_000),
        make("invalid-cost", Some("not-a-number"), 1000),
        make("no-cost", None, 50_000),
    ];
    let order: Vec<&str> = sort_for_deletion(&pods, &[], now())
        .into_iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        order,
        [
            "oldest-cheap",
            "invalid-cost",
            "no-cost",
            "newest-expensive"
        ]
    );
}

#[test]
fn slow_start_batches_double_from_one_and_sum_to_the_count() {
    let cases: [(usize, Vec<usize>); 6] = [
        (0, vec![]),
        (1, vec![1]),
        (2, vec![1, 1]),
        (3, vec![1, 2]),
        (10, vec![1, 2, 4, 3]),
        (500, vec![1, 2, 4, 8, 16, 32, 64, 128, 245]),
    ];
    for (count, want) in cases {
        let got = slow_start_batches(count, 1);
        assert_eq!(got, want, "count {count}");
        assert_eq!(got.iter().sum::<usize>(), count);
    }
}

// ---------------------------------------------------------------------------------------------
// Status

fn replica_set(replicas: i32, min_ready_seconds: i32, extra_status: Value) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": "foobar", "namespace": "default", "uid": "rs-uid", "generation": 3},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready_seconds,
            "selector": {"matchLabels": {"name": "foo"}},
            "template": {
                "metadata": {"labels": {"name": "foo", "type": "production"},
                             "annotations": {"team": "web"}},
                "spec": {"containers": [{"name": "c", "image": "foo/bar"}]}
            }
        },
        "status": extra_status
    }))
    .expect("valid replica set")
}

fn status_pod(name: &str, labels: Value, ready_since: Option<i64>) -> Pod {
    let mut status = json!({"phase": if ready_since.is_some() { "Running" } else { "Pending" }});
    if let Some(seconds) = ready_since {
        status["conditions"] =
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": ago(seconds)}]);
    }
    pod_from(json!({
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": "foobar", "uid": "rs-uid", "controller": true}]},
        "spec": {"containers": []},
        "status": status
    }))
}

/// Upstream `TestCalculateStatus`: (replicas, fullyLabeled, ready, available).
#[test]
fn calculate_status_table() {
    let full = json!({"name": "foo", "type": "production"});
    let partial = json!({"name": "foo"});
    let cases: Vec<(&str, i32, Vec<Pod>, [i32; 4])> = vec![
        (
            "1 fully labelled pod",
            0,
            vec![status_pod("a", full.clone(), Some(10))],
            [1, 1, 1, 1],
        ),
        (
            "1 not fully labelled pod",
            0,
            vec![status_pod("a", partial.clone(), Some(10))],
            [1, 0, 1, 1],
        ),
        (
            "2 fully labelled pods",
            0,
            vec![
                status_pod("a", full.clone(), Some(10)),
                status_pod("b", full.clone(), Some(10)),
            ],
            [2, 2, 2, 2],
        ),
        (
            "2 not fully labelled pods",
            0,
            vec![
                status_pod("a", partial.clone(), Some(10)),
                status_pod("b", partial.clone(), Some(10)),
            ],
            [2, 0, 2, 2],
        ),
        (
            "1 fully labelled pod and 1 not fully labelled pod",
            0,
            vec![
                status_pod("a", partial.clone(), Some(10)),
                status_pod("b", full.clone(), Some(10)),
            ],
            [2, 1, 2, 2],
        ),
        (
            "1 non-ready pod",
            0,
            vec![status_pod("a", full.clone(), None)],
            [1, 1, 0, 0],
        ),
        (
            "1 ready but non-available pod",
            3600,
            vec![status_pod("a", full.clone(), Some(0))],
            [1, 1, 1, 0],
        ),
        (
            "ready exactly minReadySeconds ago is not yet available",
            10,
            vec![status_pod("a", full.clone(), Some(10))],
            [1, 1, 1, 0],
        ),
        (
            "ready longer than minReadySeconds is available",
            10,
            vec![status_pod("a", full.clone(), Some(11))],
            [1, 1, 1, 1],
        ),
    ];
    for (name, min_ready, pods, [replicas, fully, ready, available]) in cases {
        let rs = replica_set(1, min_ready, json!({}));
        let status = calculate_status(&rs, &pods, 0, None, now());
        assert_eq!(status.replicas, replicas, "{name}: replicas");
        assert_eq!(
            status.fully_labeled_replicas.unwrap_or(0),
            fully,
            "{name}: fullyLabeled"
        );
        assert_eq!(status.ready_replicas.unwrap_or(0), ready, "{name}: ready");
        assert_eq!(
            status.available_replicas.unwrap_or(0),
            available,
            "{name}: available"
        );
    }
}

/// Upstream `TestCalculateStatusConditions`.
#[test]
fn calculate_status_conditions_table() {
    let existing = json!({"replicas": 1, "conditions": [{
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "old error", "lastTransitionTime": "2025-01-01T00:00:00Z"}]});
    let labels = json!({"name": "foo", "type": "production"});
    let one = vec![status_pod("a", labels.clone(), Some(10))];
    let two = vec![
        status_pod("a", labels.clone(), Some(10)),
        status_pod("b", labels, Some(10)),
    ];
    let error = ManageError {
        message: "fake manageReplicasErr".into(),
    };
    struct Case<'a> {
        name: &'a str,
        replicas: i32,
        stored: Value,
        pods: &'a [Pod],
        error: Option<&'a ManageError>,
        /// (reason, message) of the expected ReplicaFailure condition, or none at all.
        expected: Option<(&'a str, &'a str)>,
    }
    let cases = vec![
        Case {
            name: "error, no condition yet, too few pods",
            replicas: 2,
            stored: json!({}),
            pods: &one,
            error: Some(&error),
            expected: Some((REASON_FAILED_CREATE, "fake manageReplicasErr")),
        },
        Case {
            name: "error, no condition yet, too many pods",
            replicas: 1,
            stored: json!({}),
            pods: &two,
            error: Some(&error),
            expected: Some((REASON_FAILED_DELETE, "fake manageReplicasErr")),
        },
        Case {
            name: "error, condition already there: kept as is",
            replicas: 2,
            stored: existing.clone(),
            pods: &one,
            error: Some(&error),
            expected: Some((REASON_FAILED_CREATE, "old error")),
        },
        Case {
            name: "no error, condition there: removed",
            replicas: 1,
            stored: existing,
            pods: &one,
            error: None,
            expected: None,
        },
    ];
    for Case {
        name,
        replicas,
        stored,
        pods,
        error,
        expected,
    } in cases
    {
        let rs = replica_set(replicas, 0, stored);
        let status = calculate_status(&rs, pods, 0, error, now());
        let condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == CONDITION_REPLICA_FAILURE);
        match expected {
            None => assert!(condition.is_none(), "{name}: {condition:?}"),
            Some((reason, message)) => {
                let c = condition.unwrap_or_else(|| panic!("{name}: no condition"));
                assert_eq!(c.status, "True", "{name}");
                assert_eq!(c.reason.as_deref(), Some(reason), "{name}");
                assert_eq!(c.message.as_deref(), Some(message), "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// plan

#[test]
fn too_few_pods_plans_a_slow_start_create_of_the_template_pod() {
    let rs = replica_set(3, 0, json!({}));
    let pods = vec![status_pod(
        "a",
        json!({"name": "foo", "type": "production"}),
        Some(10),
    )];
    let p = plan(&rs, &pods, now());
    let create = p.create.expect("creates");
    assert_eq!(create.count, 2);
    assert_eq!(create.batches, vec![1, 1]);
    assert!(p.delete.is_empty());
    let pod = serde_json::to_value(&create.pod).expect("json");
    assert_eq!(
        pod,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "annotations": {"team": "web"},
                "generateName": "foobar-",
                "labels": {"name": "foo", "type": "production"},
                "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true,
                    "controller": true, "kind": "ReplicaSet", "name": "foobar", "uid": "rs-uid"}]
            },
            "spec": {"containers": [{"name": "c", "image": "foo/bar"}]}
        })
    );
}

#[test]
fn creates_and_deletes_are_capped_at_the_burst_size() {
    let rs = replica_set(1200, 0, json!({}));
    let p = plan(&rs, &[], now());
    let create = p.create.expect("creates");
    assert_eq!(create.count, BURST_REPLICAS);
    assert_eq!(create.batches.iter().sum::<usize>(), BURST_REPLICAS);

    let rs = replica_set(0, 0, json!({}));
    let labels = json!({"name": "foo"});
    let pods: Vec<Pod> = (0..600)
        .map(|i| status_pod(&format!("p{i}"), labels.clone(), None))
        .collect();
    let p = plan(&rs, &pods, now());
    assert_eq!(p.delete.len(), BURST_REPLICAS);
    assert!(p.create.is_none());
}

#[test]
fn too_many_pods_deletes_the_least_valuable_first() {
    let rs = replica_set(1, 0, json!({}));
    let labels = json!({"name": "foo", "type": "production"});
    let pods = vec![
        status_pod("ready-long", labels.clone(), Some(100_000)),
        status_pod("pending", labels.clone(), None),
        status_pod("ready-recently", labels, Some(5)),
    ];
    let p = plan(&rs, &pods, now());
    let names: Vec<&str> = p.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["pending", "ready-recently"]);
    assert_eq!(p.delete[0].uid.as_deref(), Some("pending"));
}

#[test]
fn inactive_pods_are_neither_counted_nor_deleted_and_get_replaced() {
    let rs = replica_set(2, 0, json!({}));
    let labels = json!({"name": "foo"});
    let mut terminating = status_pod("terminating", labels.clone(), Some(10));
    terminating.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let mut succeeded = status_pod("succeeded", labels.clone(), None);
    succeeded.status.get_or_insert_with(Default::default).phase = Some("Succeeded".into());
    let mut failed = status_pod("failed", labels.clone(), None);
    failed.status.get_or_insert_with(Default::default).phase = Some("Failed".into());
    let live = status_pod("live", labels.clone(), Some(10));
    let mut other_owner = status_pod("someone-elses", labels, Some(10));
    other_owner.metadata.deletion_timestamp = terminating.metadata.deletion_timestamp.clone();
    if let Some(owner) = other_owner.metadata.owner_references.as_mut() {
        owner[0].uid = "other-uid".into();
    }
    let p = plan(
        &rs,
        &[terminating, succeeded, failed, live, other_owner],
        now(),
    );
    assert_eq!(p.status.replicas, 1);
    assert_eq!(
        p.status.terminating_replicas,
        Some(1),
        "only the pod this ReplicaSet controls counts as terminating"
    );
    assert_eq!(p.create.map(|c| c.count), Some(1));
    assert!(p.delete.is_empty());
}

#[test]
fn orphans_matching_the_selector_are_adopted_and_mismatches_released() {
    let rs = replica_set(2, 0, json!({}));
    let orphan = pod_from(json!({
        "metadata": {"name": "orphan", "namespace": "default", "uid": "orphan-uid",
                     "labels": {"name": "foo"}},
        "spec": {"containers": []}, "status": {"phase": "Running"}
    }));
    let stray = pod_from(json!({
        "metadata": {"name": "stray", "namespace": "default", "uid": "stray-uid",
                     "labels": {"name": "other"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": "foobar", "uid": "rs-uid", "controller": true}]},
        "spec": {"containers": []}, "status": {"phase": "Running"}
    }));
    let foreign = pod_from(json!({
        "metadata": {"name": "foreign", "namespace": "default", "uid": "foreign-uid",
                     "labels": {"name": "foo"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": "other", "uid": "other-uid", "controller": true}]},
        "spec": {"containers": []}, "status": {"phase": "Running"}
    }));
    let other_namespace = pod_from(json!({
        "metadata": {"name": "elsewhere", "namespace": "other", "uid": "elsewhere-uid",
                     "labels": {"name": "foo"}},
        "spec": {"containers": []}, "status": {"phase": "Running"}
    }));
    let p = plan(&rs, &[orphan, stray, foreign, other_namespace], now());
    assert_eq!(p.adopt.len(), 1);
    assert_eq!(p.adopt[0].pod_name, "orphan");
    assert_eq!(
        p.adopt[0].patch,
        json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
            "blockOwnerDeletion": true, "controller": true, "kind": "ReplicaSet",
            "name": "foobar", "uid": "rs-uid"}], "uid": "orphan-uid"}})
    );
    assert_eq!(p.release.len(), 1);
    assert_eq!(p.release[0].pod_name, "stray");
    assert_eq!(
        p.release[0].patch,
        json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "rs-uid"}],
            "uid": "stray-uid"}})
    );
    // Only the adopted pod counts; one more is created.
    assert_eq!(p.owned_pods.len(), 1);
    assert_eq!(p.create.map(|c| c.count), Some(1));
}

#[test]
fn a_replica_set_being_deleted_only_updates_its_status() {
    let mut rs = replica_set(3, 0, json!({}));
    rs.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let orphan = pod_from(json!({
        "metadata": {"name": "orphan", "namespace": "default", "uid": "o", "labels": {"name": "foo"}},
        "spec": {"containers": []}, "status": {"phase": "Running"}
    }));
    let owned = status_pod("owned", json!({"name": "foo"}), Some(10));
    let p = plan(&rs, &[orphan, owned], now());
    assert!(p.adopt.is_empty() && p.release.is_empty() && p.delete.is_empty());
    assert!(p.create.is_none());
    assert_eq!(p.status.replicas, 1);
}

#[test]
fn status_write_is_skipped_in_the_steady_state_and_records_the_generation() {
    let labels = json!({"name": "foo", "type": "production"});
    let pods = vec![status_pod("a", labels, Some(10))];
    let stale = replica_set(
        1,
        0,
        json!({"replicas": 1, "fullyLabeledReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2}),
    );
    let p = plan(&stale, &pods, now());
    let update = p.status_update.expect("generation not yet observed");
    assert_eq!(update.observed_generation, Some(3));
    assert_eq!(update.available_replicas, Some(1));

    let current = replica_set(
        1,
        0,
        json!({"replicas": 1, "fullyLabeledReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 3,
        "terminatingReplicas": 0}),
    );
    assert_eq!(plan(&current, &pods, now()).status_update, None);
}

#[test]
fn min_ready_seconds_requeues_when_the_first_pod_becomes_available() {
    let rs = replica_set(2, 30, json!({}));
    let labels = json!({"name": "foo", "type": "production"});
    let pods = vec![
        status_pod("ready-10s", labels.clone(), Some(10)),
        status_pod("ready-25s", labels.clone(), Some(25)),
    ];
    let p = plan(&rs, &pods, now());
    assert_eq!(p.status.ready_replicas, Some(2));
    assert_eq!(p.status.available_replicas, None);
    // 5 s left for the older pod, plus one second of skew.
    assert_eq!(p.requeue_after, Some(Duration::from_secs(6)));

    let available = vec![status_pod("old", labels, Some(100))];
    let rs = replica_set(1, 30, json!({}));
    assert_eq!(plan(&rs, &available, now()).requeue_after, None);
}

#[test]
fn failed_manage_produces_the_replica_failure_status() {
    let rs = replica_set(3, 0, json!({}));
    let pods = vec![status_pod("a", json!({"name": "foo"}), None)];
    let p = plan(&rs, &pods, now());
    let error = ManageError {
        message: "pods \"foobar-x\" is forbidden: exceeded quota".into(),
    };
    let status = p
        .status_after_manage_error(&rs, &error, now())
        .expect("a write");
    let condition = &status.conditions.expect("conditions")[0];
    assert_eq!(condition.type_, "ReplicaFailure");
    assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
    assert_eq!(condition.message.as_deref(), Some(error.message.as_str()));
    assert_eq!(status.replicas, 1);
}

#[test]
fn an_invalid_selector_stops_the_sync() {
    let mut rs = replica_set(1, 0, json!({}));
    let spec = rs.spec.as_mut().expect("spec");
    spec.selector = serde_json::from_value(json!({"matchExpressions": [
        {"key": "name", "operator": "Near", "values": ["foo"]}]}))
    .expect("selector");
    let p = plan(&rs, &[], now());
    assert!(matches!(
        p.error,
        Some(ReplicaSetPlanError::InvalidSelector(_))
    ));
    assert!(p.create.is_none() && p.status_update.is_none());
}

#[test]
fn related_replica_sets_of_the_same_deployment_shape_the_scale_down() {
    let owner = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
        "uid": "deploy-uid", "controller": true}]);
    let mut rs: ReplicaSet = replica_set(1, 0, json!({}));
    rs.metadata.owner_references = serde_json::from_value(owner.clone()).expect("refs");
    let sibling: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "sibling", "namespace": "default", "uid": "sibling-uid",
                     "ownerReferences": owner},
        "spec": {"selector": {"matchLabels": {"name": "old"}}, "template": {}}
    }))
    .expect("sibling");
    let on_node = |name: &str, node: &str, labels: Value, owner_uid: &str| {
        pod_from(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels,
                         "creationTimestamp": ago(100),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": "x", "uid": owner_uid, "controller": true}]},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ago(100)}]}
        }))
    };
    let pods = vec![
        on_node("mine-a", "node-a", json!({"name": "foo"}), "rs-uid"),
        on_node("mine-b", "node-b", json!({"name": "foo"}), "rs-uid"),
        on_node("old-b", "node-b", json!({"name": "old"}), "sibling-uid"),
    ];
    // Alone, the two pods tie and the first one goes; with the sibling's pod on node-b, the
    // pod sharing that node goes.
    let alone = plan(&rs, &pods, now());
    assert_eq!(alone.delete[0].name, "mine-a");
    let related = plan_with_related(&rs, &[sibling], &pods, now());
    assert_eq!(related.delete.len(), 1);
    assert_eq!(related.delete[0].name, "mine-b");
}

#[test]
fn event_messages_are_worded_as_upstream() {
    let cases = [
        (
            successful_create_event("web-abc12"),
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-abc12",
        ),
        (
            successful_delete_event("web-abc12"),
            EventType::Normal,
            "SuccessfulDelete",
            "Deleted pod: web-abc12",
        ),
        (
            failed_create_event("quota exceeded"),
            EventType::Warning,
            "FailedCreate",
            "Error creating: quota exceeded",
        ),
        (
            failed_delete_event("boom"),
            EventType::Warning,
            "FailedDelete",
            "Error deleting: boom",
        ),
    ];
    for (event, type_, reason, message) in cases {
        assert_eq!(event.type_, type_);
        assert_eq!(event.reason, reason);
        assert_eq!(event.message, message);
    }
}

#[test]
fn pod_name_prefix_drops_the_dash_only_when_the_name_would_be_too_long() {
    assert_eq!(pod_name_prefix("web-7d9f8c6b5d"), "web-7d9f8c6b5d-");
    let long = "a".repeat(253);
    assert_eq!(pod_name_prefix(&long), long);
    let fits = "a".repeat(252);
    assert_eq!(pod_name_prefix(&fits), format!("{fits}-"));
}
