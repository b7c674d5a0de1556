//! Planner tables after the daemon controller's own unit tests (`daemon_controller_test.go`,
//! `update_test.go`): placement, existing pods, failed pods, surge and unavailability, history
//! and status. Each table asserts its row count, so a lost case fails.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::*;

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().expect("a timestamp")
}

fn node(name: &str, extra: Value) -> Node {
    let mut node = json!({
        "metadata": {"name": name, "labels": {}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut node, extra);
    serde_json::from_value(node).expect("a node")
}

fn nodes(count: usize) -> Vec<Node> {
    (0..count)
        .map(|i| node(&format!("node-{i}"), json!({})))
        .collect()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A DaemonSet `foo` in `default` selecting `name: simple-daemon`, with `spec_extra` merged
/// into its spec (a `template.spec` key merges into the pod spec).
fn daemon_set(spec_extra: Value) -> DaemonSet {
    let mut ds = json!({
        "metadata": {"name": "foo", "namespace": "default", "uid": "ds-uid", "generation": 1},
        "spec": {
            "selector": {"matchLabels": {"name": "simple-daemon"}},
            "template": {
                "metadata": {"labels": {"name": "simple-daemon"}},
                "spec": {"containers": [{"name": "foo", "image": "foo/bar"}], "restartPolicy": "Always"},
            },
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10,
        },
    });
    merge(&mut ds["spec"], spec_extra);
    serde_json::from_value(ds).expect("a daemon set")
}

/// The revision the current template is stored as.
fn current_revision(ds: &DaemonSet) -> ControllerRevision {
    let mut backoff = FailedPodBackoff::new();
    let plan = plan(
        &DaemonSetObservation {
            daemon_set: ds,
            nodes: &[],
            pods: &[],
            revisions: &[],
            expectations_satisfied: true,
        },
        &mut backoff,
        now(),
    );
    let mut revision = plan.create_revision.expect("a first revision");
    revision.metadata.uid = Some("rev-uid".into());
    revision
}

/// A pod of `ds` on `node` with revision `hash`, `Running` and Ready since an hour unless
/// `extra` says otherwise.
fn pod(name: &str, node: &str, hash: &str, extra: Value) -> Pod {
    let mut pod = json!({
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-01T10:00:00Z",
            "labels": {"name": "simple-daemon", "controller-revision-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "foo", "uid": "ds-uid", "controller": true}],
        },
        "spec": {"nodeName": node, "containers": [{"name": "foo", "image": "foo/bar"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T11:00:00Z"}]},
    });
    merge(&mut pod, extra);
    serde_json::from_value(pod).expect("a pod")
}

fn not_ready() -> Value {
    json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
}

struct Run {
    plan: DaemonSetPlan,
}

fn run(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], backoff: &mut FailedPodBackoff) -> Run {
    let revisions = vec![current_revision(ds)];
    Run {
        plan: plan(
            &DaemonSetObservation {
                daemon_set: ds,
                nodes,
                pods,
                revisions: &revisions,
                expectations_satisfied: true,
            },
            backoff,
            now(),
        ),
    }
}

fn hash_of(ds: &DaemonSet) -> String {
    current_revision(ds).metadata.labels.expect("labels")[CONTROLLER_REVISION_HASH_LABEL].clone()
}

#[test]
fn placement_follows_the_daemon_controller_cases() {
    let tainted = |effect: &str| json!({"spec": {"taints": [{"key": "dedicated", "value": "x", "effect": effect}]}});
    let toleration = json!({"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}});
    // (case, daemon set spec changes, nodes, expected creations)
    let cases: Vec<(&str, Value, Vec<Node>, Vec<&str>)> = vec![
        (
            "SimpleDaemonSetLaunchesPods",
            json!({}),
            nodes(5),
            vec!["node-0", "node-1", "node-2", "node-3", "node-4"],
        ),
        ("NoNodesDoesNothing", json!({}), vec![], vec![]),
        (
            "OneNodeDaemonLaunchesPod",
            json!({}),
            nodes(1),
            vec!["node-0"],
        ),
        (
            "NotReadyNodeDaemonDoesLaunchPod",
            json!({}),
            vec![node(
                "node-0",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            )],
            vec!["node-0"],
        ),
        (
            "SelectorDaemonLaunchesPods",
            json!({"template": {"spec": {"nodeSelector": {"color": "blue"}}}}),
            vec![
                node("node-0", json!({})),
                node("node-1", json!({"metadata": {"labels": {"color": "blue"}}})),
                node("node-2", json!({"metadata": {"labels": {"color": "red"}}})),
                node(
                    "node-3",
                    json!({"metadata": {"labels": {"color": "blue", "shape": "square"}}}),
                ),
            ],
            vec!["node-1", "node-3"],
        ),
        (
            "NodeNameDaemonLaunchesPods",
            json!({"template": {"spec": {"nodeName": "node-2"}}}),
            nodes(4),
            vec!["node-2"],
        ),
        (
            "NodeAffinityDaemonLaunchesPods",
            json!({"template": {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "color", "operator": "In", "values": ["blue"]}]}]}}}}}}),
            vec![
                node("node-0", json!({"metadata": {"labels": {"color": "blue"}}})),
                node("node-1", json!({"metadata": {"labels": {"color": "red"}}})),
            ],
            vec!["node-0"],
        ),
        (
            "TaintedNodeDaemonDoesNotLaunchIntolerantPods",
            json!({}),
            vec![node("node-0", tainted("NoSchedule"))],
            vec![],
        ),
        (
            "NoExecuteTaintedNodeDoesNotLaunchIntolerantPods",
            json!({}),
            vec![node("node-0", tainted("NoExecute"))],
            vec![],
        ),
        (
            "PreferNoScheduleTaintDoesNotKeepPodsOff",
            json!({}),
            vec![node("node-0", tainted("PreferNoSchedule"))],
            vec!["node-0"],
        ),
        (
            "TaintedNodeDaemonLaunchesToleratePod",
            toleration.clone(),
            vec![node("node-0", tainted("NoSchedule"))],
            vec!["node-0"],
        ),
        (
            "TaintPressureNodeDaemonLaunchesPod",
            json!({}),
            vec![node(
                "node-0",
                json!({"spec": {"taints": [
                {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/pid-pressure", "effect": "NoSchedule"}]}}),
            )],
            vec!["node-0"],
        ),
        (
            "UnschedulableNodeDaemonDoesLaunchPod",
            json!({}),
            vec![node(
                "node-0",
                json!({"spec": {"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
            )],
            vec!["node-0"],
        ),
        (
            "NetworkUnavailableNodeDaemonLaunchesHostNetworkPod",
            json!({"template": {"spec": {"hostNetwork": true}}}),
            vec![node(
                "node-0",
                json!({"spec": {"taints": [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]}}),
            )],
            vec!["node-0"],
        ),
        (
            "NetworkUnavailableNodeKeepsOffPodNetworkPods",
            json!({}),
            vec![node(
                "node-0",
                json!({"spec": {"taints": [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]}}),
            )],
            vec![],
        ),
    ];
    assert_eq!(cases.len(), 15);
    for (name, extra, nodes, expected) in cases {
        let ds = daemon_set(extra);
        let out = run(&ds, &nodes, &[], &mut FailedPodBackoff::new());
        assert_eq!(out.plan.create_on_nodes, expected, "{name}");
        assert!(out.plan.delete.is_empty(), "{name}: {:?}", out.plan.delete);
        assert_eq!(
            out.plan.status.as_ref().map(|s| s.desired_number_scheduled),
            Some(expected.len() as i32),
            "{name}"
        );
    }
}

#[test]
fn creations_go_in_slow_start_batches_up_to_the_burst() {
    let ds = daemon_set(json!({}));
    let five = run(&ds, &nodes(5), &[], &mut FailedPodBackoff::new());
    assert_eq!(five.plan.create_batches, [1, 2, 2]);
    let many = run(&ds, &nodes(300), &[], &mut FailedPodBackoff::new());
    assert_eq!(many.plan.create_on_nodes.len(), BURST_REPLICAS);
    assert_eq!(many.plan.create_batches, [1, 2, 4, 8, 16, 32, 64, 123]);
    assert_eq!(
        many.plan.status.map(|s| s.desired_number_scheduled),
        Some(300)
    );
}

#[test]
fn existing_pods_are_kept_deleted_or_completed() {
    let ds = daemon_set(json!({}));
    let h = hash_of(&ds);
    let many = |node: &str, count: usize| -> Vec<Pod> {
        (0..count)
            .map(|i| {
                pod(
                    &format!("{node}-p{i}"),
                    node,
                    &h,
                    json!({"metadata": {"creationTimestamp": format!("2026-01-01T10:0{i}:00Z")}}),
                )
            })
            .collect()
    };
    let no_execute = json!({"spec": {"taints": [{"key": "dedicated", "effect": "NoExecute"}]}});
    let no_schedule = json!({"spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}});
    // (case, nodes, pods, expected creations, expected deletions)
    type Case = (
        &'static str,
        Vec<Node>,
        Vec<Pod>,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "DealsWithExistingPods",
            nodes(5),
            [many("node-1", 1), many("node-2", 2), many("node-3", 5)].concat(),
            vec!["node-0", "node-4"],
            vec!["node-2-p1", "node-3-p1", "node-3-p2", "node-3-p3", "node-3-p4"],
        ),
        (
            "SelectorDaemonDeletesUnselectedPods",
            vec![node("node-0", json!({"metadata": {"labels": {"color": "red"}}}))],
            many("node-0", 1),
            vec![],
            vec!["node-0-p0"],
        ),
        ("NoScheduleTaintedDoesntEvictRunningIntolerantPod", vec![node("node-0", no_schedule)], many("node-0", 1), vec![], vec![]),
        ("NoExecuteTaintedDoesEvictRunningIntolerantPod", vec![node("node-0", no_execute)], many("node-0", 1), vec![], vec!["node-0-p0"]),
        (
            "PodsOnRemovedNodeNeverScheduledAreDeleted",
            nodes(1),
            [
                many("node-0", 1),
                vec![pod("ghost", "", &h, json!({"spec": {"nodeName": null, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gone"]}]}]}}}}}))],
            ]
            .concat(),
            vec![],
            vec!["ghost"],
        ),
        (
            "SucceededPodIsDeleted",
            nodes(1),
            vec![pod("done", "node-0", &h, json!({"status": {"phase": "Succeeded"}}))],
            vec![],
            vec!["done"],
        ),
        (
            "TerminatingPodIsLeftAlone",
            nodes(1),
            vec![pod("going", "node-0", &h, json!({"metadata": {"deletionTimestamp": "2026-01-01T11:59:00Z"}}))],
            vec![],
            vec![],
        ),
        (
            "ForeignPodsAreNotCounted",
            nodes(1),
            vec![pod("other", "node-0", &h, json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "bar", "uid": "other-uid", "controller": true}]}}))],
            vec!["node-0"],
            vec![],
        ),
    ];
    assert_eq!(cases.len(), 8);
    for (name, nodes, pods, creations, deletions) in cases {
        let ds = if name == "SelectorDaemonDeletesUnselectedPods" {
            daemon_set(json!({"template": {"spec": {"nodeSelector": {"color": "blue"}}}}))
        } else {
            ds.clone()
        };
        let out = run(&ds, &nodes, &pods, &mut FailedPodBackoff::new());
        let deleted: Vec<&str> = out.plan.delete.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(out.plan.create_on_nodes, creations, "{name}");
        assert_eq!(deleted, deletions, "{name}");
    }
}

#[test]
fn failed_pods_are_deleted_with_back_off() {
    let ds = daemon_set(json!({}));
    let h = hash_of(&ds);
    let failed = vec![pod(
        "bad",
        "node-0",
        &h,
        json!({"status": {"phase": "Failed"}}),
    )];
    let mut backoff = FailedPodBackoff::new();
    let first = run(&ds, &nodes(1), &failed, &mut backoff);
    assert_eq!(
        first
            .plan
            .delete
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["bad"]
    );
    assert!(
        first.plan.create_on_nodes.is_empty(),
        "the next sync recreates it"
    );
    assert_eq!(first.plan.events.len(), 1);
    assert_eq!(first.plan.events[0].reason, "FailedDaemonPod");
    assert_eq!(
        first.plan.events[0].message,
        "Found failed daemon pod default/bad on node node-0, will try to kill it"
    );
    // The replacement fails too, within the back-off: it is left for a later sync.
    let again = run(&ds, &nodes(1), &failed, &mut backoff);
    assert!(again.plan.delete.is_empty(), "{:?}", again.plan.delete);
    assert_eq!(again.plan.requeue_after, Some(Duration::from_secs(1)));
    // Once the delay passed, the next failure doubles it.
    let later = now() + jiff::SignedDuration::from_secs(2);
    let mut observation_revisions = vec![current_revision(&ds)];
    observation_revisions[0].metadata.uid = Some("r".into());
    let plan_later = plan(
        &DaemonSetObservation {
            daemon_set: &ds,
            nodes: &nodes(1),
            pods: &failed,
            revisions: &observation_revisions,
            expectations_satisfied: true,
        },
        &mut backoff,
        later,
    );
    assert_eq!(plan_later.delete.len(), 1);
    assert_eq!(backoff.delay("default/foo/node-0"), Duration::from_secs(2));
}

#[test]
fn created_pods_are_pinned_labelled_and_tolerant() {
    let ds = daemon_set(json!({"template": {"spec": {
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["elsewhere"]}]}]}}},
    }}}));
    let pod = placement::daemon_pod(&ds, "node-7", "abc");
    let value = serde_json::to_value(&pod).expect("json");
    assert_eq!(value["metadata"]["generateName"], "foo-");
    assert_eq!(
        value["metadata"]["labels"]["controller-revision-hash"],
        "abc"
    );
    assert_eq!(value["metadata"]["labels"]["pod-template-generation"], "1");
    assert_eq!(value["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(
        value["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]}]})
    );
    let tolerations = value["spec"]["tolerations"]
        .as_array()
        .expect("tolerations")
        .clone();
    assert_eq!(tolerations.len(), 6, "{tolerations:?}");
    assert_eq!(
        tolerations[0],
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        "the controller's toleration replaces the template's, without seconds"
    );
    assert_eq!(placement::target_node(&pod).as_deref(), Some("node-7"));
}

/// `n` nodes each running an old pod (hash `old`), with the current template's revision and
/// the old one in history.
fn old_pods(count: usize, extra: Value) -> Vec<Pod> {
    (0..count)
        .map(|i| {
            pod(
                &format!("old-{i}"),
                &format!("node-{i}"),
                "old",
                extra.clone(),
            )
        })
        .collect()
}

/// `pods` plus a pod of revision `hash` on each listed node, ready or not.
fn with_new(mut pods: Vec<Pod>, ready: bool, hash: &str, nodes: &[usize]) -> Vec<Pod> {
    for i in nodes {
        let extra = if ready { json!({}) } else { not_ready() };
        pods.push(pod(&format!("new-{i}"), &format!("node-{i}"), hash, extra));
    }
    pods
}

#[test]
fn rolling_updates_respect_max_unavailable_and_max_surge() {
    let surge = |v: Value| json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": v}}});
    let unavailable = |v: Value| json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": v, "maxSurge": 0}}});
    type Case = (
        &'static str,
        Value,
        Box<dyn Fn(&str) -> Vec<Pod>>,
        usize,
        Vec<&'static str>,
    );
    // (case, spec, pods given the current hash, expected creations, expected deletions)
    let cases: Vec<Case> = vec![
        (
            "UpdatesPods maxUnavailable 1",
            unavailable(json!(1)),
            Box::new(|_| old_pods(5, json!({}))),
            0,
            vec!["old-0"],
        ),
        (
            "UpdatesPods maxUnavailable 2",
            unavailable(json!(2)),
            Box::new(|_| old_pods(5, json!({}))),
            0,
            vec!["old-0", "old-1"],
        ),
        (
            "UpdatesPods maxUnavailable 40%",
            unavailable(json!("40%")),
            Box::new(|_| old_pods(5, json!({}))),
            0,
            vec!["old-0", "old-1"],
        ),
        (
            "UpdatesWhenNewPodIsNotReady",
            unavailable(json!(1)),
            Box::new(move |h| with_new(old_pods(5, json!({}))[1..].to_vec(), false, h, &[0])),
            0,
            vec![],
        ),
        (
            "UpdatesNextOnceNewPodIsAvailable",
            unavailable(json!(1)),
            Box::new(move |h| with_new(old_pods(5, json!({}))[1..].to_vec(), true, h, &[0])),
            0,
            vec!["old-1"],
        ),
        (
            "UpdatesAllOldPodsNotReady",
            unavailable(json!(1)),
            Box::new(|_| old_pods(3, not_ready())),
            0,
            vec!["old-0", "old-1", "old-2"],
        ),
        (
            "NoTemplateChanged",
            unavailable(json!(1)),
            Box::new(|h| with_new(Vec::new(), true, h, &[0, 1, 2, 3, 4])),
            0,
            vec![],
        ),
        (
            "UpdatesPodsWithMaxSurge 2",
            surge(json!(2)),
            Box::new(|_| old_pods(5, json!({}))),
            2,
            vec![],
        ),
        (
            "UpdatesPodsWithMaxSurge 100%",
            surge(json!("100%")),
            Box::new(|_| old_pods(5, json!({}))),
            5,
            vec![],
        ),
        (
            "SurgeWaitsForNewPods",
            surge(json!(1)),
            Box::new(move |h| with_new(old_pods(5, json!({})), false, h, &[0])),
            0,
            vec![],
        ),
        (
            "SurgeDeletesOldPodOnceNewIsAvailable",
            surge(json!(1)),
            Box::new(move |h| with_new(old_pods(5, json!({})), true, h, &[0])),
            1,
            vec!["old-0"],
        ),
        (
            "SurgeReplacesUnavailableOldPodsAtOnce",
            surge(json!(1)),
            Box::new(|_| old_pods(3, not_ready())),
            3,
            vec![],
        ),
        (
            "OnDeleteLeavesOldPods",
            json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}),
            Box::new(|_| old_pods(5, json!({}))),
            0,
            vec![],
        ),
    ];
    assert_eq!(cases.len(), 13);
    for (name, spec, pods, creations, deletions) in cases {
        let ds = daemon_set(spec);
        let h = hash_of(&ds);
        let out = run(
            &ds,
            &nodes(5)
                .into_iter()
                .take(if name.contains("AllOld") || name.contains("AtOnce") {
                    3
                } else {
                    5
                })
                .collect::<Vec<_>>(),
            &pods(&h),
            &mut FailedPodBackoff::new(),
        );
        let deleted: Vec<&str> = out.plan.delete.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            out.plan.create_on_nodes.len(),
            creations,
            "{name}: {:?}",
            out.plan.create_on_nodes
        );
        assert_eq!(deleted, deletions, "{name}");
    }
}

#[test]
fn status_counts_nodes_by_their_oldest_pod() {
    let ds = daemon_set(json!({"minReadySeconds": 600}));
    let h = hash_of(&ds);
    let mut labelled = nodes(4);
    labelled.push(node(
        "off",
        json!({"spec": {"taints": [{"key": "x", "effect": "NoExecute"}]}}),
    ));
    let pods = vec![
        pod("a", "node-0", &h, json!({})),
        pod(
            "b",
            "node-1",
            &h,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T11:55:00Z"}]}}),
        ),
        pod("c", "node-2", "old", not_ready()),
        pod("d", "off", &h, json!({})),
    ];
    let out = run(&ds, &labelled, &pods, &mut FailedPodBackoff::new());
    let status = out.plan.status.expect("a status");
    assert_eq!(status.desired_number_scheduled, 4);
    assert_eq!(status.current_number_scheduled, 3);
    assert_eq!(status.number_ready, 2);
    assert_eq!(status.number_available, Some(1));
    assert_eq!(status.number_unavailable, Some(3));
    assert_eq!(status.updated_number_scheduled, Some(2));
    assert_eq!(status.number_misscheduled, 1);
    assert_eq!(status.observed_generation, Some(1));
    // `b` becomes available five minutes on.
    assert_eq!(out.plan.requeue_after, Some(Duration::from_secs(300)));
    assert_eq!(out.plan.create_on_nodes, ["node-3"]);
    // `d` is on a node it may not stay on; `c` is an old pod that is not available, which a
    // rolling update replaces at once.
    assert_eq!(
        out.plan
            .delete
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["d", "c"]
    );
}

#[test]
fn unsatisfied_expectations_only_report_status() {
    let ds = daemon_set(json!({}));
    let revisions = vec![current_revision(&ds)];
    let out = plan(
        &DaemonSetObservation {
            daemon_set: &ds,
            nodes: &nodes(3),
            pods: &[],
            revisions: &revisions,
            expectations_satisfied: false,
        },
        &mut FailedPodBackoff::new(),
        now(),
    );
    assert!(out.create_on_nodes.is_empty());
    assert_eq!(out.status.map(|s| s.desired_number_scheduled), Some(3));
}

fn revision(name: &str, number: i64, template_image: &str, hash: &str) -> ControllerRevision {
    let ds = daemon_set(
        json!({"template": {"spec": {"containers": [{"name": "foo", "image": template_image}]}}}),
    );
    let mut r = current_revision(&ds);
    r.metadata.name = Some(name.to_string());
    r.revision = number;
    r.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.into());
    r
}

#[test]
fn history_is_created_renumbered_and_pruned() {
    let ds = daemon_set(json!({"revisionHistoryLimit": 1}));
    // (case, existing revisions, revision created (number), renumbered, pruned)
    type Case = (
        &'static str,
        Vec<ControllerRevision>,
        Option<i64>,
        Option<(&'static str, i64)>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("FirstRevision", vec![], Some(1), None, vec![]),
        (
            "NewTemplate",
            vec![revision("foo-a", 1, "foo/a", "a")],
            Some(2),
            None,
            vec![],
        ),
        (
            "CurrentIsNewest",
            vec![
                revision("foo-a", 1, "foo/a", "a"),
                revision("foo-b", 2, "foo/bar", "b"),
            ],
            None,
            None,
            vec![],
        ),
        (
            "RollbackRenumbers",
            vec![
                revision("foo-b", 1, "foo/bar", "b"),
                revision("foo-a", 2, "foo/a", "a"),
            ],
            None,
            Some(("foo-b", 3)),
            vec![],
        ),
        (
            "PrunesBeyondLimit",
            vec![
                revision("foo-x", 1, "foo/x", "x"),
                revision("foo-y", 2, "foo/y", "y"),
                revision("foo-z", 3, "foo/bar", "z"),
            ],
            None,
            None,
            vec!["foo-x"],
        ),
    ];
    assert_eq!(cases.len(), 5);
    for (name, revisions, created, renumbered, pruned) in cases {
        let out = plan(
            &DaemonSetObservation {
                daemon_set: &ds,
                nodes: &[],
                pods: &[],
                revisions: &revisions,
                expectations_satisfied: true,
            },
            &mut FailedPodBackoff::new(),
            now(),
        );
        assert_eq!(
            out.create_revision.as_ref().map(|r| r.revision),
            created,
            "{name}"
        );
        if let Some(r) = &out.create_revision {
            assert_eq!(
                r.metadata.name.as_deref(),
                Some(format!("foo-{}", out.hash).as_str()),
                "{name}"
            );
            assert_eq!(
                r.metadata.labels.as_ref().expect("labels")[CONTROLLER_REVISION_HASH_LABEL],
                out.hash
            );
            assert_eq!(
                r.data.as_ref().expect("data").0["spec"]["template"]["$patch"],
                "replace"
            );
        }
        assert_eq!(
            out.renumber_revision,
            renumbered.map(|(n, r)| (n.to_string(), r)),
            "{name}"
        );
        assert_eq!(out.delete_revisions, pruned, "{name}");
    }
}

#[test]
fn surge_and_unavailable_counts_resolve_like_upstream() {
    // (maxSurge, maxUnavailable, desired, expected (surge, unavailable))
    let cases: Vec<(Value, Value, i32, (i32, i32))> = vec![
        (json!(0), json!(1), 5, (0, 1)),
        (json!(0), json!("50%"), 5, (0, 3)),
        (json!("10%"), json!(0), 5, (1, 0)),
        (json!(0), json!(0), 5, (0, 1)),
        (json!(0), json!(0), 0, (0, 0)),
    ];
    assert_eq!(cases.len(), 5);
    for (surge, unavailable, desired, expected) in cases {
        let ds = daemon_set(
            json!({"updateStrategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}),
        );
        assert_eq!(
            surge_and_unavailable(&ds, desired),
            expected,
            "{surge} {unavailable} {desired}"
        );
    }
}
