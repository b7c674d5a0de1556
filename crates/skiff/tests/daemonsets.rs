//! DaemonSets end to end: the real `kubectl` against `skiff up --simulated-nodes 3`, with the
//! controller, the scheduler and simulated nodes. One pod per eligible node (a tainted node is
//! skipped), `kubectl get ds`, a nodeSelector change, a node registered later, a rolling image
//! update with `rollout status`, `rollout history` and `rollout undo`, and OnDelete.
//!
//! Run with `cargo test -p skiff --test daemonsets`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::json::items;
use support::{assert_table, wait_for, Kubectl, Skiff, DEADLINE};

/// A server with the controllers, the scheduler and three simulated nodes.
fn cluster() -> Skiff {
    Skiff::start_with(&["--simulated-nodes", "3", "--no-node", "--no-proxy"])
}

/// A DaemonSet selecting `app: <name>`, one container `main` running `image`; `spec_extra`
/// holds extra `spec` lines indented by two spaces.
fn manifest(name: &str, image: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
{spec_extra}  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: {image}
"
    )
}

/// The DaemonSet's live pods (not being deleted): node (or targeted node) to image.
fn pods_by_node(kubectl: &Kubectl, app: &str) -> BTreeMap<String, Vec<String>> {
    let list = kubectl.json(&["get", "pods", "-l", &format!("app={app}")]);
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in items(&list) {
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let image = pod
            .pointer("/spec/containers/0/image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        by_node.entry(node).or_default().push(image);
    }
    by_node
}

/// Waits until the DaemonSet's pods are exactly one per listed node, each running `image`.
fn wait_for_pods(kubectl: &Kubectl, app: &str, nodes: &[&str], image: &str) {
    let want: BTreeMap<String, Vec<String>> = nodes
        .iter()
        .map(|n| (n.to_string(), vec![image.to_string()]))
        .collect();
    let mut last = BTreeMap::new();
    let found = support::poll(DEADLINE, || {
        last = pods_by_node(kubectl, app);
        (last == want).then_some(())
    });
    assert!(
        found.is_some(),
        "{app}: wanted pods {want:?}, last saw {last:?}"
    );
}

fn ds_status(kubectl: &Kubectl, name: &str) -> Value {
    kubectl.json(&["get", "ds", name])
}

/// Waits until `kubectl get ds NAME` prints exactly `row` (after the header).
fn wait_for_ds_row(kubectl: &Kubectl, name: &str, row: &[&str]) {
    let mut last = String::new();
    let found = support::poll(DEADLINE, || {
        last = kubectl.ok(&["get", "ds", name, "--no-headers"]);
        let cells: Vec<&str> = last.split_whitespace().collect();
        let same = cells.len() == row.len()
            && cells
                .iter()
                .zip(row)
                .all(|(got, want)| *want == "<age>" || got == want);
        same.then_some(())
    });
    assert!(
        found.is_some(),
        "kubectl get ds {name}: wanted {row:?}, last printed {last}"
    );
}

#[test]
fn daemon_pods_follow_nodes_taints_and_node_selectors() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["taint", "node", "sim-node-3", "dedicated=infra:NoSchedule"]);
    let path = skiff.write_file("agent.yaml", &manifest("agent", "agent:1", ""));
    assert_eq!(
        kubectl.ok(&["apply", "-f", &path]),
        "daemonset.apps/agent created\n"
    );

    // One pod on each untainted node, none on the tainted one.
    wait_for_pods(&kubectl, "agent", &["sim-node-1", "sim-node-2"], "agent:1");
    wait_for_ds_row(
        &kubectl,
        "agent",
        &["agent", "2", "2", "2", "2", "2", "<none>", "<age>"],
    );
    let header = kubectl.ok(&["get", "ds", "agent"]);
    assert_table(
        header.lines().next().unwrap_or(""),
        &[&[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE",
        ]],
    );

    // Each pod is pinned by affinity to its node and carries the daemon tolerations and labels.
    let pods = kubectl.json(&["get", "pods", "-l", "app=agent"]);
    for pod in items(&pods) {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let term = &pod["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        assert_eq!(
            term,
            &serde_json::json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]),
            "affinity of a pod on {node}"
        );
        let tolerations: Vec<(String, String)> = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_string(),
                    t["effect"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            assert!(
                tolerations.contains(&(key.to_string(), effect.to_string())),
                "pod on {node} lacks the {key}:{effect} toleration: {tolerations:?}"
            );
        }
        assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
        assert!(
            pod["metadata"]["labels"]["controller-revision-hash"].is_string(),
            "pod on {node} lacks controller-revision-hash"
        );
    }
    let events = kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=DaemonSet,reason=SuccessfulCreate",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Created pod: agent-"), "events: {events}");

    // Events are written apart from the pods; wait for them to show.
    let described = wait_for("the creation events in describe", DEADLINE, || {
        let described = kubectl.ok(&["describe", "ds", "agent"]);
        described
            .lines()
            .any(|l| l.contains("SuccessfulCreate"))
            .then_some(described)
    });
    for line in [
        "Desired Number of Nodes Scheduled: 2",
        "Current Number of Nodes Scheduled: 2",
        "Number of Nodes Scheduled with Up-to-date Pods: 2",
        "Number of Nodes Scheduled with Available Pods: 2",
        "Number of Nodes Misscheduled: 0",
        "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed",
        "deprecated.daemonset.template.generation: 1",
    ] {
        assert!(
            described.contains(line),
            "describe lacks {line:?}:\n{described}"
        );
    }
    assert!(
        described.lines().any(|l| l.contains("SuccessfulCreate")
            && l.contains("daemonset-controller")
            && l.contains("Created pod: agent-")),
        "describe lacks the creation events:\n{described}"
    );

    // A nodeSelector change moves the daemon to the labelled node only.
    kubectl.ok(&["label", "node", "sim-node-1", "role=edge"]);
    kubectl.ok(&[
        "patch",
        "ds",
        "agent",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"role":"edge"}}}}}"#,
    ]);
    wait_for_pods(&kubectl, "agent", &["sim-node-1"], "agent:1");
    wait_for_ds_row(
        &kubectl,
        "agent",
        &["agent", "1", "1", "1", "1", "1", "role=edge", "<age>"],
    );

    // A node registered later that matches gets its own daemon pod.
    let node = skiff.write_file(
        "node.yaml",
        "apiVersion: v1
kind: Node
metadata:
  name: late-node
  labels:
    role: edge
status:
  conditions:
  - type: Ready
    status: \"True\"
    reason: KubeletReady
    message: ready
",
    );
    kubectl.ok(&["create", "-f", &node]);
    wait_for("a daemon pod for late-node", DEADLINE, || {
        let pods = pods_by_node(&kubectl, "agent");
        (pods.get("late-node").map(Vec::len) == Some(1) && pods.len() == 2).then_some(())
    });
    wait_for("desiredNumberScheduled 2", DEADLINE, || {
        (ds_status(&kubectl, "agent")["status"]["desiredNumberScheduled"] == 2).then_some(())
    });

    // Deleting the DaemonSet removes its pods.
    kubectl.ok(&["delete", "ds", "agent"]);
    wait_for("the daemon pods to go", DEADLINE, || {
        pods_by_node(&kubectl, "agent").is_empty().then_some(())
    });
}

#[test]
fn rolling_update_rollout_undo_and_on_delete() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let all = ["sim-node-1", "sim-node-2", "sim-node-3"];
    let path = skiff.write_file("web.yaml", &manifest("web", "web:1", ""));
    kubectl.ok(&["apply", "-f", &path]);
    wait_for_pods(&kubectl, "web", &all, "web:1");
    assert_eq!(
        kubectl.ok(&["rollout", "status", "ds/web", "--timeout=60s"]),
        "daemon set \"web\" successfully rolled out\n"
    );

    // A rolling image update replaces every pod, reported done by `rollout status`.
    assert_eq!(
        kubectl.ok(&["set", "image", "ds/web", "main=web:2"]),
        "daemonset.apps/web image updated\n"
    );
    let status = kubectl.ok(&["rollout", "status", "ds/web", "--timeout=60s"]);
    assert!(
        status.ends_with("daemon set \"web\" successfully rolled out\n"),
        "rollout status printed {status}"
    );
    wait_for_pods(&kubectl, "web", &all, "web:2");
    let ds = ds_status(&kubectl, "web");
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "2",
        "the template generation counts the template change"
    );
    wait_for(
        "every pod labelled with template generation 2",
        DEADLINE,
        || {
            let generations = kubectl.ok(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].metadata.labels.pod-template-generation}",
            ]);
            (generations == "2 2 2").then_some(())
        },
    );
    let history = kubectl.ok(&["rollout", "history", "ds/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "history:\n{history}");
    let shown = kubectl.ok(&["rollout", "history", "ds/web", "--revision=1"]);
    assert!(shown.contains("web:1"), "revision 1:\n{shown}");

    // Undo goes back to the first template, which becomes revision 3.
    assert_eq!(
        kubectl.ok(&["rollout", "undo", "ds/web"]),
        "daemonset.apps/web rolled back\n"
    );
    kubectl.ok(&["rollout", "status", "ds/web", "--timeout=60s"]);
    wait_for_pods(&kubectl, "web", &all, "web:1");
    wait_for("revisions 2 and 3", DEADLINE, || {
        let history = kubectl.ok(&["rollout", "history", "ds/web"]);
        let revisions: Vec<String> = history
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        (revisions == ["2", "3"]).then_some(())
    });

    // With maxUnavailable 1, a new pod that never becomes ready stops the rollout after one
    // node: the other two keep their old pods.
    kubectl.ok(&[
        "patch",
        "ds",
        "web",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.skiff.dev/never-ready":"true"}},"spec":{"containers":[{"name":"main","image":"web:bad"}]}}}}"#,
    ]);
    wait_for("the stalled rollout", DEADLINE, || {
        let ds = ds_status(&kubectl, "web");
        let status = &ds["status"];
        let stalled = status["observedGeneration"] == ds["metadata"]["generation"]
            && status["updatedNumberScheduled"] == 1
            && status["numberReady"] == 2
            && status["numberUnavailable"] == 1;
        stalled.then_some(())
    });
    let images: Vec<String> = pods_by_node(&kubectl, "web")
        .into_values()
        .flatten()
        .collect();
    let mut sorted = images.clone();
    sorted.sort();
    assert_eq!(sorted, ["web:1", "web:1", "web:bad"], "pods: {images:?}");
    assert_eq!(
        kubectl.ok(&["rollout", "status", "ds/web", "--watch=false"]),
        "Waiting for daemon set \"web\" rollout to finish: 1 out of 3 new pods have been updated...\n"
    );
    kubectl.ok(&["rollout", "undo", "ds/web"]);
    kubectl.ok(&["rollout", "status", "ds/web", "--timeout=60s"]);
    wait_for_pods(&kubectl, "web", &all, "web:1");

    // OnDelete: a new template waits until the user deletes a pod.
    kubectl.ok(&[
        "patch",
        "ds",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
    ]);
    kubectl.ok(&["set", "image", "ds/web", "main=web:3"]);
    wait_for("the OnDelete change to be observed", DEADLINE, || {
        let ds = ds_status(&kubectl, "web");
        let observed = ds["status"]["observedGeneration"] == ds["metadata"]["generation"];
        (observed && ds["status"]["updatedNumberScheduled"] == 0).then_some(())
    });
    assert_eq!(
        pods_by_node(&kubectl, "web"),
        all.iter()
            .map(|n| (n.to_string(), vec!["web:1".to_string()]))
            .collect(),
        "OnDelete replaced pods by itself"
    );
    let on_node_2 = kubectl.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector",
        "spec.nodeName=sim-node-2",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    kubectl.ok(&["delete", "pod", &on_node_2, "--wait=false"]);
    wait_for("the replaced pod on sim-node-2", DEADLINE, || {
        let pods = pods_by_node(&kubectl, "web");
        let want: BTreeMap<String, Vec<String>> = [
            ("sim-node-1", "web:1"),
            ("sim-node-2", "web:3"),
            ("sim-node-3", "web:1"),
        ]
        .iter()
        .map(|(n, i)| (n.to_string(), vec![i.to_string()]))
        .collect();
        (pods == want).then_some(())
    });
    wait_for("updatedNumberScheduled 1", DEADLINE, || {
        (ds_status(&kubectl, "web")["status"]["updatedNumberScheduled"] == 1).then_some(())
    });
}

/// The real node beside two simulated ones runs the daemon's container from a test image, and
/// the rolling update to a new tag keeps at most one node without an available pod, in every
/// status the controller wrote.
#[test]
fn daemon_set_runs_on_the_real_node_and_rolls_out_one_node_at_a_time() {
    use support::images::{demo, DEMO};
    let skiff = Skiff::start_with_images(
        &["--simulated-nodes", "2", "--no-proxy"],
        &[demo("alpine"), demo("v2")],
    );
    let kubectl = skiff.kubectl();
    let real_node = wait_for("the real node to register", DEADLINE, || {
        let nodes = kubectl.json(&["get", "nodes"]);
        items(&nodes)
            .iter()
            .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
            .find(|n| !n.starts_with("sim-node-"))
            .map(str::to_string)
    });
    let path = skiff.write_file("web.yaml", &manifest("web", &format!("{DEMO}:alpine"), ""));
    kubectl.ok(&["apply", "-f", &path]);
    let mut nodes = [real_node.clone(), "sim-node-1".into(), "sim-node-2".into()];
    nodes.sort();
    let node_refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    wait_for_pods(&kubectl, "web", &node_refs, &format!("{DEMO}:alpine"));
    kubectl.ok(&["rollout", "status", "ds/web", "--timeout=90s"]);
    let on_real = kubectl.json(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector",
        &format!("spec.nodeName={real_node}"),
    ]);
    let real_pods = items(&on_real);
    assert_eq!(real_pods.len(), 1, "one daemon pod on {real_node}");
    assert_eq!(
        real_pods[0]
            .pointer("/status/phase")
            .and_then(Value::as_str),
        Some("Running"),
        "the real node runs its daemon pod"
    );

    let mut statuses = kubectl.spawn_lines(&[
        "get",
        "ds",
        "web",
        "-w",
        "-o",
        "jsonpath={.metadata.generation} {.status.observedGeneration} {.status.updatedNumberScheduled} {.status.numberAvailable} {.status.numberUnavailable}{\"\\n\"}",
    ]);
    kubectl.ok(&["set", "image", "ds/web", &format!("main={DEMO}:v2")]);
    let done = kubectl.ok(&["rollout", "status", "ds/web", "--timeout=90s"]);
    assert!(
        done.ends_with("daemon set \"web\" successfully rolled out\n"),
        "rollout status printed {done}"
    );
    wait_for_pods(&kubectl, "web", &node_refs, &format!("{DEMO}:v2"));
    statuses.wait_for_line("the rolled-out status", |line| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        cells.len() >= 4 && cells[0] == "2" && cells[1] == "2" && cells[2] == "3" && cells[3] == "3"
    });
    // Every status the controller wrote on the way (a watch misses none).
    let unavailable: Vec<i64> = statuses
        .seen()
        .iter()
        .map(|line| {
            line.split_whitespace()
                .nth(4)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        unavailable.iter().all(|n| *n <= 1),
        "more than one node was without an available pod: {:?}",
        statuses.seen()
    );
    assert!(
        unavailable.contains(&1),
        "the rollout never took a node's pod down: {:?}",
        statuses.seen()
    );
}
