use super::*;
use serde_json::{json, Value};

/// Merges `patch` into `base` (objects recursively, everything else replaced).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A Ready node with the given allocatable CPU, memory and pod count, and `extra` merged in.
fn node(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("test node")
}

/// A pending pod in `default` with one container requesting `cpu`/`memory`, and `extra`.
fn pod(name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut requests = serde_json::Map::new();
    if !cpu.is_empty() {
        requests.insert("cpu".into(), json!(cpu));
    }
    if !memory.is_empty() {
        requests.insert("memory".into(), json!(memory));
    }
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": [{"name": "c", "image": "i", "resources": {"requests": requests}}]
        }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("test pod")
}

fn owned_by(owner_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
        "uid": owner_uid, "controller": true
    }]}})
}

fn bound(entries: &[(&str, Vec<Pod>)]) -> PodsByNode {
    entries
        .iter()
        .map(|(n, pods)| (n.to_string(), pods.clone()))
        .collect()
}

const CONTROL_PLANE_TAINT: &str = r#"{"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}"#;

fn control_plane(name: &str) -> Node {
    node(
        name,
        "8",
        "16Gi",
        serde_json::from_str(CONTROL_PLANE_TAINT).expect("taint json"),
    )
}

#[test]
fn needs_scheduling_only_for_pending_pods_of_this_scheduler() {
    let cases = [
        ("pending", json!({}), true),
        (
            "scheduler name defaulted",
            json!({"spec": {"schedulerName": null}}),
            true,
        ),
        (
            "other scheduler",
            json!({"spec": {"schedulerName": "custom"}}),
            false,
        ),
        ("already bound", json!({"spec": {"nodeName": "n"}}), false),
        (
            "being deleted",
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
            false,
        ),
        (
            "succeeded",
            json!({"status": {"phase": "Succeeded"}}),
            false,
        ),
        ("failed", json!({"status": {"phase": "Failed"}}), false),
        (
            "gated",
            json!({"spec": {"schedulingGates": [{"name": "wait"}]}}),
            false,
        ),
    ];
    for (name, extra, want) in cases {
        assert_eq!(needs_scheduling(&pod("p", "", "", extra)), want, "{name}");
    }
}

/// One filtering scenario: the nodes, the pods bound to them, the pod, and the node it must
/// land on or the exact `FailedScheduling` message.
struct FilterCase {
    name: &'static str,
    nodes: Vec<Node>,
    bound: PodsByNode,
    pod: Pod,
    want: Result<&'static str, &'static str>,
}

#[test]
fn filters_and_failed_scheduling_messages() {
    let small = || node("node-small", "1", "1Gi", json!({}));
    let cases = vec![
        FilterCase {
            name: "the one node with room",
            nodes: vec![small(), node("node-big", "4", "8Gi", json!({}))],
            bound: PodsByNode::new(),
            pod: pod("p", "2", "1Gi", json!({})),
            want: Ok("node-big"),
        },
        FilterCase {
            name: "the documented control-plane example",
            nodes: vec![small(), control_plane("cp-1"), control_plane("cp-2")],
            bound: PodsByNode::new(),
            pod: pod("p", "2", "", json!({})),
            want: Err("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint(s). no new claims to deallocate, preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."),
        },
        FilterCase {
            name: "only untolerated taints",
            nodes: vec![control_plane("cp-1"), control_plane("cp-2")],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({})),
            want: Err("0/2 nodes are available: 2 node(s) had untolerated taint(s). no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."),
        },
        FilterCase {
            name: "a tolerated taint lets the pod in",
            nodes: vec![control_plane("cp-1")],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({"spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}})),
            want: Ok("cp-1"),
        },
        FilterCase {
            name: "NoExecute taints filter, PreferNoSchedule ones do not",
            nodes: vec![
                node("a", "1", "1Gi", json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]}})),
                node("b", "1", "1Gi", json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]}})),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({})),
            want: Ok("b"),
        },
        FilterCase {
            name: "cordoned nodes",
            nodes: vec![node("a", "1", "1Gi", json!({"spec": {"unschedulable": true}}))],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({})),
            want: Err("0/1 nodes are available: 1 node(s) were unschedulable. no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."),
        },
        FilterCase {
            name: "a pod tolerating the unschedulable taint may use a cordoned node",
            nodes: vec![node("a", "1", "1Gi", json!({"spec": {"unschedulable": true}}))],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]}})),
            want: Ok("a"),
        },
        FilterCase {
            name: "nodes that are not Ready",
            nodes: vec![
                node("a", "1", "1Gi", json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})),
                node("b", "1", "1Gi", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({})),
            want: Err("0/2 nodes are available: 2 node(s) had untolerated taint(s). no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."),
        },
        FilterCase {
            name: "a pod tolerating not-ready may use a node that is not Ready",
            nodes: vec![node("a", "1", "1Gi", json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}))],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}})),
            want: Ok("a"),
        },
        FilterCase {
            name: "node selector",
            nodes: vec![
                node("a", "1", "1Gi", json!({"metadata": {"labels": {"disk": "hdd"}}})),
                node("b", "1", "1Gi", json!({"metadata": {"labels": {"disk": "ssd"}}})),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            want: Ok("b"),
        },
        FilterCase {
            name: "node selector matching nothing",
            nodes: vec![node("a", "1", "1Gi", json!({}))],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            want: Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."),
        },
        FilterCase {
            name: "required node affinity",
            nodes: vec![
                node("a", "1", "1Gi", json!({"metadata": {"labels": {"zone": "x"}}})),
                node("b", "1", "1Gi", json!({"metadata": {"labels": {"zone": "y"}}})),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "100m", "", json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}]}}}}})),
            want: Ok("b"),
        },
        FilterCase {
            name: "too many pods",
            nodes: vec![node("a", "1", "1Gi", json!({"status": {"allocatable": {"pods": "1"}}}))],
            bound: bound(&[("a", vec![pod("x", "", "", json!({}))])]),
            pod: pod("p", "", "", json!({})),
            want: Err("0/1 nodes are available: 1 Too many pods. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        },
        FilterCase {
            name: "every missing resource is a reason",
            nodes: vec![node("a", "1", "1Gi", json!({}))],
            bound: PodsByNode::new(),
            pod: pod("p", "2", "2Gi", json!({})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        },
        FilterCase {
            name: "bound pods use up the node",
            nodes: vec![node("a", "2", "4Gi", json!({}))],
            bound: bound(&[("a", vec![pod("x", "1500m", "1Gi", json!({}))])]),
            pod: pod("p", "1", "1Gi", json!({})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        },
        FilterCase {
            name: "an init container larger than the node",
            nodes: vec![node("a", "2", "4Gi", json!({}))],
            bound: PodsByNode::new(),
            pod: pod("p", "1", "", json!({"spec": {"initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "3"}}}]}})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        },
        FilterCase {
            name: "pod overhead counts",
            nodes: vec![node("a", "1", "4Gi", json!({}))],
            bound: PodsByNode::new(),
            pod: pod("p", "1", "", json!({"spec": {"overhead": {"cpu": "100m"}}})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        },
        FilterCase {
            name: "extended resources",
            nodes: vec![
                node("a", "4", "4Gi", json!({})),
                node("b", "4", "4Gi", json!({"status": {"allocatable": {"example.com/gpu": "1"}}})),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "1", "", json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1", "example.com/gpu": "2"}}}]}})),
            want: Err("0/2 nodes are available: 2 Insufficient example.com/gpu. no new claims to deallocate, preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."),
        },
        FilterCase {
            name: "a pod that never preempts",
            nodes: vec![node("a", "1", "1Gi", json!({}))],
            bound: PodsByNode::new(),
            pod: pod("p", "2", "", json!({"spec": {"preemptionPolicy": "Never"}})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never."),
        },
        FilterCase {
            name: "removing lower-priority pods would not be enough",
            nodes: vec![node("a", "2", "4Gi", json!({}))],
            bound: bound(&[("a", vec![
                pod("low", "500m", "", json!({"spec": {"priority": -1}})),
                pod("same", "1", "", json!({})),
            ])]),
            pod: pod("p", "1500m", "", json!({})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: 0/1 nodes are available: 1 Insufficient cpu."),
        },
        FilterCase {
            name: "when preemption would help there is no preemption part",
            nodes: vec![node("a", "2", "4Gi", json!({}))],
            bound: bound(&[("a", vec![pod("low", "1500m", "", json!({"spec": {"priority": -1}}))])]),
            pod: pod("p", "1", "", json!({})),
            want: Err("0/1 nodes are available: 1 Insufficient cpu."),
        },
        FilterCase {
            name: "a DoNotSchedule spread constraint",
            nodes: vec![
                node("a", "4", "4Gi", json!({})),
                node("b", "4", "4Gi", json!({})),
            ],
            bound: bound(&[("a", vec![pod("w1", "", "", json!({"metadata": {"labels": {"app": "web"}}}))])]),
            pod: pod("p", "", "", json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}
            })),
            want: Ok("b"),
        },
        FilterCase {
            name: "spread constraints that cannot be met",
            nodes: vec![
                node("a", "4", "4Gi", json!({"metadata": {"labels": {"zone": "z1"}}})),
                node("b", "1", "4Gi", json!({"metadata": {"labels": {"zone": "z2"}}})),
                node("c", "4", "4Gi", json!({})),
            ],
            bound: bound(&[("a", vec![pod("w1", "", "", json!({"metadata": {"labels": {"app": "web"}}}))])]),
            pod: pod("p", "2", "", json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}
            })),
            want: Err("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints, 1 node(s) didn't match pod topology spread constraints (missing required label). no new claims to deallocate, preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."),
        },
    ];
    for case in cases {
        let got = schedule(&case.pod, &case.nodes, &case.bound);
        let got = got
            .as_ref()
            .map(|c| c.node_name.as_str())
            .map_err(|e| e.message.as_str());
        assert_eq!(got, case.want, "{}", case.name);
    }
}

#[test]
fn no_nodes_at_all() {
    let err = schedule(&pod("p", "", "", json!({})), &[], &PodsByNode::new()).unwrap_err();
    assert_eq!(err.message, "no nodes available to schedule pods");
}

#[test]
fn reasons_are_sorted_as_formatted_strings() {
    // "10 ..." sorts before "2 ..." because Kubernetes sorts the formatted text.
    let mut nodes: Vec<Node> = (0..10)
        .map(|i| node(&format!("small-{i}"), "1", "1Gi", json!({})))
        .collect();
    nodes.push(control_plane("cp-1"));
    nodes.push(control_plane("cp-2"));
    let err = schedule(
        &pod("p", "2", "", json!({"spec": {"preemptionPolicy": "Never"}})),
        &nodes,
        &PodsByNode::new(),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) had untolerated taint(s). no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never."
    );
}

/// One scoring scenario: which of several feasible nodes wins.
struct ScoreCase {
    name: &'static str,
    nodes: Vec<Node>,
    bound: PodsByNode,
    pod: Pod,
    want: &'static str,
}

#[test]
fn scores_pick_the_best_node() {
    let plain = |name: &str| node(name, "4", "8Gi", json!({}));
    let sibling = |name: &str| pod(name, "", "", owned_by("rs-1"));
    let stranger = |name: &str| pod(name, "", "", json!({}));
    let cases = vec![
        ScoreCase {
            name: "equal nodes: the first by name",
            nodes: vec![plain("b"), plain("a"), plain("c")],
            bound: PodsByNode::new(),
            pod: pod("p", "1", "1Gi", json!({})),
            want: "a",
        },
        ScoreCase {
            name: "least allocated: the emptier node",
            nodes: vec![plain("a"), plain("b")],
            bound: bound(&[("a", vec![pod("x", "2", "2Gi", json!({}))])]),
            pod: pod("p", "1", "1Gi", json!({})),
            want: "b",
        },
        ScoreCase {
            name: "least allocated: the bigger node",
            nodes: vec![
                node("a", "2", "4Gi", json!({})),
                node("b", "8", "16Gi", json!({})),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "1", "1Gi", json!({})),
            want: "b",
        },
        ScoreCase {
            name: "an untolerated PreferNoSchedule taint",
            nodes: vec![
                node(
                    "a",
                    "4",
                    "8Gi",
                    json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
                ),
                plain("b"),
            ],
            bound: PodsByNode::new(),
            pod: pod("p", "1", "1Gi", json!({})),
            want: "b",
        },
        ScoreCase {
            name: "a tolerated PreferNoSchedule taint",
            nodes: vec![
                node(
                    "a",
                    "4",
                    "8Gi",
                    json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
                ),
                node(
                    "b",
                    "4",
                    "8Gi",
                    json!({"spec": {"taints": [{"key": "j", "effect": "PreferNoSchedule"}]}}),
                ),
            ],
            bound: PodsByNode::new(),
            pod: pod(
                "p",
                "1",
                "1Gi",
                json!({"spec": {"tolerations": [{"key": "j", "operator": "Exists"}]}}),
            ),
            want: "b",
        },
        ScoreCase {
            name: "preferred node affinity",
            nodes: vec![
                plain("a"),
                node(
                    "b",
                    "4",
                    "8Gi",
                    json!({"metadata": {"labels": {"disk": "ssd"}}}),
                ),
            ],
            bound: PodsByNode::new(),
            pod: pod(
                "p",
                "1",
                "1Gi",
                json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}}),
            ),
            want: "b",
        },
        ScoreCase {
            name: "default spreading away from siblings",
            nodes: vec![plain("a"), plain("b")],
            bound: bound(&[
                ("a", vec![sibling("s1"), sibling("s2")]),
                ("b", vec![stranger("x1"), stranger("x2")]),
            ]),
            pod: pod("p", "", "", owned_by("rs-1")),
            want: "b",
        },
        ScoreCase {
            name: "no spreading for a pod without owner",
            nodes: vec![plain("a"), plain("b")],
            bound: bound(&[
                ("a", vec![sibling("s1"), sibling("s2")]),
                ("b", vec![stranger("x1"), stranger("x2")]),
            ]),
            pod: pod("p", "", "", json!({})),
            want: "a",
        },
        ScoreCase {
            name: "explicit ScheduleAnyway spreading",
            nodes: vec![plain("a"), plain("b")],
            bound: bound(&[
                (
                    "a",
                    vec![pod(
                        "w1",
                        "",
                        "",
                        json!({"metadata": {"labels": {"app": "web"}}}),
                    )],
                ),
                ("b", vec![stranger("x1")]),
            ]),
            pod: pod(
                "p",
                "",
                "",
                json!({
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]}
                }),
            ),
            want: "b",
        },
    ];
    for case in cases {
        let got = schedule(&case.pod, &case.nodes, &case.bound)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got.node_name, case.want, "{}", case.name);
        assert_eq!(got.feasible_nodes, case.nodes.len(), "{}", case.name);
    }
}

#[test]
fn resource_scores_match_kubernetes_arithmetic() {
    let r = |cpu, mem| Resources {
        milli_cpu: cpu,
        memory: mem,
        ..Resources::default()
    };
    // (requested, allocatable, least allocated, balanced allocation)
    let cases = [
        (r(0, 0), r(4000, 10000), 100, 100),
        (r(3000, 5000), r(4000, 10000), 37, 87),
        (r(3000, 5000), r(6000, 10000), 50, 100),
        (r(5000, 5000), r(4000, 10000), 25, 75),
        (r(1000, 0), r(4000, 0), 75, 100),
    ];
    for (requested, allocatable, least, balanced) in cases {
        assert_eq!(
            least_allocated(&requested, &allocatable),
            least,
            "{requested:?}"
        );
        assert_eq!(
            balanced_allocation(&requested, &allocatable),
            balanced,
            "{requested:?}"
        );
    }
}

#[test]
fn normalization_scales_and_reverses() {
    assert_eq!(normalize(&[0, 2, 4], false), vec![0, 50, 100]);
    assert_eq!(normalize(&[0, 2, 4], true), vec![100, 50, 0]);
    assert_eq!(normalize(&[0, 0], true), vec![100, 100]);
    assert_eq!(normalize(&[0, 0], false), vec![0, 0]);
}

#[test]
fn claims_reject_the_pod_before_any_node_or_pin_it_to_their_volumes_node() {
    let nodes = vec![
        node("n1", "4", "8Gi", json!({})),
        node("n2", "4", "8Gi", json!({})),
    ];
    let unbound = PodVolumes {
        rejection: Some(crate::volumes::REASON_UNBOUND_IMMEDIATE.to_string()),
        ..PodVolumes::default()
    };
    let p = pod("p", "100m", "", json!({}));
    assert_eq!(
        schedule_with_volumes(&p, &nodes, &PodsByNode::new(), &unbound),
        Err(Unschedulable {
            message: "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.".to_string()
        })
    );
    let pinned = PodVolumes {
        node_affinities: vec![serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                   "values": ["n2"]}]}]}))
        .unwrap()],
        ..PodVolumes::default()
    };
    assert_eq!(
        schedule_with_volumes(&p, &nodes, &PodsByNode::new(), &pinned).map(|c| c.node_name),
        Ok("n2".to_string())
    );
    let elsewhere = PodVolumes {
        node_affinities: vec![serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                   "values": ["n9"]}]}]}))
        .unwrap()],
        ..PodVolumes::default()
    };
    assert_eq!(
        schedule_with_volumes(&p, &nodes, &PodsByNode::new(), &elsewhere),
        Err(Unschedulable {
            message: "0/2 nodes are available: 2 node(s) had volume node affinity conflict. no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.".to_string()
        })
    );
}
