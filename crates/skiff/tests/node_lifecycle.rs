//! Node lifecycle end to end: a simulated node that stops heartbeating goes `Unknown` with
//! Kubernetes' conditions and taints, its pods are evicted once their tolerations run out and
//! replaced on the other nodes, and it loses the taints when it reports again; `kubectl
//! cordon` and `uncordon` mark the node and taint it; `kubectl drain` evicts within a
//! PodDisruptionBudget.
//!
//! Run with `cargo test -p skiff --test node_lifecycle`. Needs `kubectl` on the PATH.

mod support;

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use support::json::{items, str_at};
use support::{wait_for, Kubectl, Skiff, DEADLINE};

/// The simulated node's knob that stops its Lease renewals and status reports.
const HEARTBEAT_STOPPED: &str = "sim.skiff.dev/heartbeat-stopped";

/// Three simulated nodes, a short grace period (the simulated Lease is renewed every 10 s)
/// and ten-second default tolerations.
fn cluster() -> Skiff {
    Skiff::start_with(&[
        "--no-node",
        "--simulated-nodes",
        "3",
        "--node-monitor-grace-period",
        "25s",
        "--node-monitor-period",
        "1s",
        "--default-not-ready-toleration-seconds",
        "10",
        "--default-unreachable-toleration-seconds",
        "10",
    ])
}

fn condition(node: &Value, kind: &str) -> Value {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or(Value::Null)
}

fn taints(node: &Value) -> Vec<(String, String)> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .map(|t| (str_at(t, "/key"), str_at(t, "/effect")))
                .collect()
        })
        .unwrap_or_default()
}

fn pair(key: &str, effect: &str) -> (String, String) {
    (key.to_string(), effect.to_string())
}

/// Live (not terminating) pods of `app`, with their nodes.
fn live_pods(kubectl: &Kubectl, app: &str) -> Vec<(String, String, bool)> {
    items(&kubectl.json(&["get", "pods", "-l", &format!("app={app}")]))
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .map(|p| {
            let ready = condition(p, "Ready")["status"] == "True";
            (
                str_at(p, "/metadata/name"),
                str_at(p, "/spec/nodeName"),
                ready,
            )
        })
        .collect()
}

fn events(kubectl: &Kubectl, reason: &str) -> Vec<Value> {
    items(&kubectl.json(&[
        "get",
        "events",
        "--field-selector",
        &format!("reason={reason}"),
    ]))
}

fn timestamp(value: &Value, pointer: &str) -> Timestamp {
    str_at(value, pointer)
        .parse()
        .unwrap_or_else(|e| panic!("{pointer} of {value} is not a time: {e}"))
}

#[test]
fn a_silent_node_goes_unknown_its_pods_move_after_their_toleration_and_it_comes_back() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    wait_for("three Ready nodes", DEADLINE, || {
        let nodes = items(&kubectl.json(&["get", "nodes"]));
        (nodes.len() == 3
            && nodes
                .iter()
                .all(|n| condition(n, "Ready")["status"] == "True"))
        .then_some(())
    });
    kubectl.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=6",
    ]);
    let placed = wait_for("six ready web pods", DEADLINE, || {
        let pods = live_pods(&kubectl, "web");
        (pods.len() == 6
            && pods
                .iter()
                .all(|(_, node, ready)| !node.is_empty() && *ready))
        .then_some(pods)
    });

    // DefaultTolerationSeconds gave every pod the server's ten seconds.
    let pod = kubectl.json(&["get", "pod", &placed[0].0]);
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        assert!(
            tolerations.iter().any(|t| t["key"] == key
                && t["operator"] == "Exists"
                && t["effect"] == "NoExecute"
                && t["tolerationSeconds"] == 10),
            "no ten-second toleration of {key}: {tolerations:?}"
        );
    }

    // The node with the most pods goes dark.
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (_, node, _) in &placed {
        *counts.entry(node.clone()).or_default() += 1;
    }
    let (dark, _) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(n, c)| (n.clone(), *c))
        .expect("pods were placed");
    let victims: Vec<String> = placed
        .iter()
        .filter(|(_, node, _)| *node == dark)
        .map(|(name, _, _)| name.clone())
        .collect();
    kubectl.ok(&[
        "annotate",
        "node",
        &dark,
        &format!("{HEARTBEAT_STOPPED}=true"),
    ]);

    let node = wait_for(
        "the silent node's Ready condition to turn Unknown",
        Duration::from_secs(90),
        || {
            let node = kubectl.json(&["get", "node", &dark]);
            (condition(&node, "Ready")["status"] == "Unknown").then_some(node)
        },
    );
    for kind in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = condition(&node, kind);
        assert_eq!(c["status"], "Unknown", "{kind}: {c}");
        assert_eq!(c["reason"], "NodeStatusUnknown", "{kind}: {c}");
        assert_eq!(
            c["message"], "Kubelet stopped posting node status.",
            "{kind}: {c}"
        );
    }
    let listing = kubectl.ok(&["get", "node", &dark]);
    assert!(
        listing
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("NotReady")),
        "kubectl get node shows it NotReady:\n{listing}"
    );
    let node = wait_for("the unreachable taints", DEADLINE, || {
        let node = kubectl.json(&["get", "node", &dark]);
        let t = taints(&node);
        (t.contains(&pair("node.kubernetes.io/unreachable", "NoSchedule"))
            && t.contains(&pair("node.kubernetes.io/unreachable", "NoExecute")))
        .then_some(node)
    });
    let tainted_at = node["spec"]["taints"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["effect"] == "NoExecute"))
        .map(|t| timestamp(t, "/timeAdded"))
        .expect("the NoExecute taint carries timeAdded");

    // Its pods are marked not ready, then evicted once their ten seconds ran out, and the
    // Deployment has six ready pods again, none on the silent node.
    let replaced = wait_for(
        "six ready web pods on the other nodes",
        Duration::from_secs(90),
        || {
            let pods = live_pods(&kubectl, "web");
            (pods.len() == 6
                && pods
                    .iter()
                    .all(|(_, node, ready)| *ready && *node != dark && !node.is_empty()))
            .then_some(pods)
        },
    );
    assert!(replaced.iter().all(|(name, _, _)| !victims.contains(name)));
    let evictions = events(&kubectl, "TaintManagerEviction");
    for victim in &victims {
        let mine: Vec<&Value> = evictions
            .iter()
            .filter(|e| str_at(e, "/involvedObject/name") == *victim)
            .collect();
        let [event] = mine[..] else {
            panic!("one TaintManagerEviction event for {victim}, not {mine:?}");
        };
        assert_eq!(
            str_at(event, "/message"),
            format!("Marking for deletion Pod default/{victim}")
        );
        assert_eq!(
            str_at(event, "/source/component"),
            "taint-eviction-controller"
        );
        let at = timestamp(event, "/firstTimestamp");
        // Event times have whole seconds.
        assert!(
            at.duration_since(tainted_at) >= jiff::SignedDuration::from_secs(9),
            "{victim} evicted at {at}, before its toleration ran out (tainted at {tainted_at})"
        );
    }
    let not_ready = events(&kubectl, "NodeNotReady");
    assert!(
        victims.iter().all(|v| not_ready
            .iter()
            .any(|e| str_at(e, "/involvedObject/name") == *v
                && str_at(e, "/message") == "Node is not ready")),
        "every pod on the silent node was marked not ready: {not_ready:?}"
    );

    // It reports again: Ready, and the taints are gone.
    kubectl.ok(&["annotate", "node", &dark, &format!("{HEARTBEAT_STOPPED}-")]);
    wait_for(
        "the node Ready and untainted again",
        Duration::from_secs(60),
        || {
            let node = kubectl.json(&["get", "node", &dark]);
            (condition(&node, "Ready")["status"] == "True"
                && taints(&node)
                    .iter()
                    .all(|(key, _)| key != "node.kubernetes.io/unreachable"))
            .then_some(())
        },
    );
}

#[test]
fn cordon_marks_the_node_unschedulable_and_taints_it_and_uncordon_undoes_both() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    wait_for("three nodes", DEADLINE, || {
        (items(&kubectl.json(&["get", "nodes"])).len() == 3).then_some(())
    });
    let out = kubectl.ok(&["cordon", "sim-node-2"]);
    assert_eq!(out.trim(), "node/sim-node-2 cordoned");
    wait_for("the unschedulable taint", DEADLINE, || {
        let node = kubectl.json(&["get", "node", "sim-node-2"]);
        taints(&node)
            .contains(&pair("node.kubernetes.io/unschedulable", "NoSchedule"))
            .then_some(())
    });
    let listing = kubectl.ok(&["get", "node", "sim-node-2"]);
    assert!(
        listing
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("Ready,SchedulingDisabled")),
        "{listing}"
    );
    // New pods avoid it.
    kubectl.ok(&[
        "create",
        "deployment",
        "spread",
        "--image=nginx:1.25",
        "--replicas=4",
    ]);
    let pods = wait_for("four ready pods", DEADLINE, || {
        let pods = live_pods(&kubectl, "spread");
        (pods.len() == 4 && pods.iter().all(|(_, _, ready)| *ready)).then_some(pods)
    });
    assert!(
        pods.iter().all(|(_, node, _)| node != "sim-node-2"),
        "{pods:?}"
    );

    assert_eq!(
        kubectl.ok(&["uncordon", "sim-node-2"]).trim(),
        "node/sim-node-2 uncordoned"
    );
    wait_for("the taint gone", DEADLINE, || {
        let node = kubectl.json(&["get", "node", "sim-node-2"]);
        taints(&node).is_empty().then_some(())
    });
}

/// An Eviction of `pod` in `default`, as `kubectl create --raw` posts it.
fn eviction(skiff: &Skiff, pod: &str) -> String {
    skiff.write_file(
        &format!("eviction-{pod}.json"),
        &format!(
            r#"{{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {{"name": "{pod}", "namespace": "default"}}}}"#
        ),
    )
}

#[test]
fn drain_evicts_within_the_disruption_budget_and_an_exhausted_budget_answers_429() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    wait_for("three nodes", DEADLINE, || {
        (items(&kubectl.json(&["get", "nodes"])).len() == 3).then_some(())
    });
    // Every replica on sim-node-1.
    kubectl.ok(&["cordon", "sim-node-2", "sim-node-3"]);
    kubectl.ok(&[
        "create",
        "deployment",
        "db",
        "--image=nginx:1.25",
        "--replicas=3",
    ]);
    wait_for("three ready db pods on sim-node-1", DEADLINE, || {
        let pods = live_pods(&kubectl, "db");
        (pods.len() == 3
            && pods
                .iter()
                .all(|(_, node, ready)| node == "sim-node-1" && *ready))
        .then_some(())
    });
    kubectl.ok(&["uncordon", "sim-node-2", "sim-node-3"]);

    // A budget needing all three: an eviction is refused with Kubernetes' 429.
    kubectl.ok(&[
        "create",
        "pdb",
        "strict",
        "--selector=app=db",
        "--min-available=3",
    ]);
    wait_for("the strict budget's status", DEADLINE, || {
        let pdb = kubectl.json(&["get", "pdb", "strict"]);
        (pdb["status"]["currentHealthy"] == 3 && pdb["status"]["observedGeneration"] == 1)
            .then_some(())
    });
    let pdb = kubectl.json(&["get", "pdb", "strict"]);
    assert_eq!(pdb["status"]["desiredHealthy"], 3);
    assert_eq!(pdb["status"]["expectedPods"], 3);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    let allowed = &pdb["status"]["conditions"][0];
    assert_eq!(allowed["type"], "DisruptionAllowed");
    assert_eq!(allowed["status"], "False");
    assert_eq!(allowed["reason"], "InsufficientPods");
    let victim = live_pods(&kubectl, "db")[0].0.clone();
    let path = format!("/api/v1/namespaces/default/pods/{victim}/eviction");
    let refused = kubectl.fails(&["create", "--raw", &path, "-f", &eviction(&skiff, &victim)]);
    assert!(
        refused.contains(
            "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget."
        ),
        "{refused}"
    );
    kubectl.ok(&["delete", "pdb", "strict"]);

    // minAvailable 2 of 3: `kubectl get pdb` as 1.36 prints it, then drain goes one at a time.
    kubectl.ok(&[
        "create",
        "pdb",
        "db",
        "--selector=app=db",
        "--min-available=2",
    ]);
    wait_for("one disruption allowed", DEADLINE, || {
        let pdb = kubectl.json(&["get", "pdb", "db"]);
        (pdb["status"]["disruptionsAllowed"] == 1).then_some(())
    });
    let listing = kubectl.ok(&["get", "pdb"]);
    let mut lines = listing.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ]),
        "{listing}"
    );
    let row: Vec<&str> = lines
        .next()
        .expect("one budget")
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["db", "2", "N/A", "1"], "{listing}");

    // While drain runs, the ready db pods that are not going away never drop below the
    // budget's two.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let kubectl = kubectl.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut fewest = usize::MAX;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let ready = live_pods(&kubectl, "db")
                    .iter()
                    .filter(|(_, _, ready)| *ready)
                    .count();
                fewest = fewest.min(ready);
                std::thread::sleep(Duration::from_millis(100));
            }
            fewest
        })
    };
    let drained = kubectl.run(&[
        "drain",
        "sim-node-1",
        "--ignore-daemonsets",
        "--timeout=180s",
    ]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let fewest = watcher.join().expect("the watcher ran");
    assert!(
        fewest >= 2,
        "drain left {fewest} ready pods, below minAvailable 2"
    );
    assert!(
        drained.success(),
        "drain failed:\nstdout: {}\nstderr: {}",
        drained.stdout,
        drained.stderr
    );
    assert!(
        drained.stdout.contains("node/sim-node-1 drained"),
        "{}",
        drained.stdout
    );
    assert_eq!(
        drained.stdout.matches(" evicted").count(),
        3,
        "every pod evicted: {}",
        drained.stdout
    );
    // With one disruption allowed, the second eviction had to wait for a replacement.
    assert!(
        drained
            .stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "no eviction was refused: {}",
        drained.stderr
    );
    let pods = wait_for("three ready db pods elsewhere", DEADLINE, || {
        let pods = live_pods(&kubectl, "db");
        (pods.len() == 3
            && pods
                .iter()
                .all(|(_, node, ready)| *ready && node != "sim-node-1"))
        .then_some(pods)
    });
    assert_eq!(pods.len(), 3);
    let node = kubectl.json(&["get", "node", "sim-node-1"]);
    assert_eq!(node["spec"]["unschedulable"], true);
}

fn no_execute_added(node: &Value) -> Option<Timestamp> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)?
        .iter()
        .find(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute")
        .map(|t| timestamp(t, "/timeAdded"))
}

#[test]
fn a_fully_disrupted_cluster_evicts_nothing_and_taints_come_back_at_the_eviction_rate() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    wait_for("three Ready nodes", DEADLINE, || {
        let nodes = items(&kubectl.json(&["get", "nodes"]));
        (nodes.len() == 3
            && nodes
                .iter()
                .all(|n| condition(n, "Ready")["status"] == "True"))
        .then_some(())
    });
    kubectl.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=3",
    ]);
    let before = wait_for("three ready web pods", DEADLINE, || {
        let pods = live_pods(&kubectl, "web");
        (pods.len() == 3 && pods.iter().all(|(_, _, ready)| *ready)).then_some(pods)
    });

    // Every node goes dark: the whole (only) zone is fully disrupted, so the controller takes
    // itself to be cut off and adds no NoExecute taint (lifting any it added meanwhile).
    kubectl.ok(&[
        "annotate",
        "node",
        "--all",
        &format!("{HEARTBEAT_STOPPED}=true"),
    ]);
    wait_for(
        "every node Unknown, tainted NoSchedule and not NoExecute",
        Duration::from_secs(90),
        || {
            let nodes = items(&kubectl.json(&["get", "nodes"]));
            nodes
                .iter()
                .all(|n| {
                    condition(n, "Ready")["status"] == "Unknown"
                        && taints(n).contains(&pair("node.kubernetes.io/unreachable", "NoSchedule"))
                        && no_execute_added(n).is_none()
                })
                .then_some(())
        },
    );
    // Longer than the ten-second tolerations: no pod may go meanwhile.
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(15) {
        let pods = live_pods(&kubectl, "web");
        let names: Vec<&String> = pods.iter().map(|(n, _, _)| n).collect();
        assert!(
            before.iter().all(|(n, _, _)| names.contains(&n)),
            "a pod was evicted from a fully disrupted zone: {pods:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for node in items(&kubectl.json(&["get", "nodes"])) {
        assert!(no_execute_added(&node).is_none(), "{node}");
    }

    // One node back: the zone is only partly down, and the other two get their NoExecute
    // taints at the eviction rate (0.1 per second: ten seconds apart).
    kubectl.ok(&[
        "annotate",
        "node",
        "sim-node-1",
        &format!("{HEARTBEAT_STOPPED}-"),
    ]);
    let added = wait_for(
        "both silent nodes tainted NoExecute",
        Duration::from_secs(90),
        || {
            let times: Vec<Timestamp> = ["sim-node-2", "sim-node-3"]
                .iter()
                .filter_map(|n| no_execute_added(&kubectl.json(&["get", "node", n])))
                .collect();
            (times.len() == 2).then_some(times)
        },
    );
    let apart = added[0].duration_since(added[1]).abs();
    assert!(
        apart >= jiff::SignedDuration::from_secs(9),
        "the NoExecute taints came {apart} apart, faster than --node-eviction-rate allows"
    );
    wait_for(
        "three ready web pods on sim-node-1",
        Duration::from_secs(90),
        || {
            let pods = live_pods(&kubectl, "web");
            (pods.len() == 3
                && pods
                    .iter()
                    .all(|(_, node, ready)| *ready && node == "sim-node-1"))
            .then_some(())
        },
    );
}

#[test]
fn percentage_budgets_count_the_scale_of_deployments_and_clonesets() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    kubectl.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=4",
    ]);
    let clone_set = skiff.write_file(
        "cloneset.yaml",
        "apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: cs
spec:
  replicas: 2
  selector:
    matchLabels:
      app: cs
  template:
    metadata:
      labels:
        app: cs
    spec:
      containers:
      - name: cs
        image: nginx:1.25
",
    );
    kubectl.ok(&["apply", "-f", &clone_set]);
    kubectl.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--max-unavailable=25%",
    ]);
    kubectl.ok(&[
        "create",
        "pdb",
        "cs",
        "--selector=app=cs",
        "--min-available=50%",
    ]);
    for (name, expected, desired) in [("web", 4, 3), ("cs", 2, 1)] {
        let status = wait_for(&format!("budget {name} computed"), DEADLINE, || {
            let pdb = kubectl.json(&["get", "pdb", name]);
            (pdb["status"]["currentHealthy"] == expected).then(|| pdb["status"].clone())
        });
        assert_eq!(status["expectedPods"], expected, "{name}: {status}");
        assert_eq!(status["desiredHealthy"], desired, "{name}: {status}");
        assert_eq!(status["disruptionsAllowed"], 1, "{name}: {status}");
        assert_eq!(
            status["conditions"][0]["reason"], "SufficientPods",
            "{name}: {status}"
        );
    }
    // Scaling the Deployment moves the denominator: 25 % of 8 rounds up to 2 unavailable.
    kubectl.ok(&["scale", "deployment", "web", "--replicas=8"]);
    wait_for("the web budget at eight", DEADLINE, || {
        let pdb = kubectl.json(&["get", "pdb", "web"]);
        let s = &pdb["status"];
        (s["expectedPods"] == 8
            && s["desiredHealthy"] == 6
            && s["currentHealthy"] == 8
            && s["disruptionsAllowed"] == 2)
            .then_some(())
    });
}
