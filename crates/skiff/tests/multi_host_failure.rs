//! A machine dropping off the network, end to end over test hosts: a server in one host, two
//! agents in others. When an agent's link goes down its Node turns `Unknown` with Kubernetes'
//! conditions and taints, its pods are evicted once their ten-second tolerations run out and
//! replaced on the other agent, while its containers keep running (a kubelet does not stop pods
//! because it lost the API server); when the link comes back the node is Ready again and it
//! cleans up the containers of the pods deleted meanwhile.
//!
//! Run as root with `cargo test -p skiff --test multi_host_failure`.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::images::{demo, DEMO};
use support::json::{items, str_at};
use support::oci::{assert_root, cgroup_hierarchies, processes_of_pods, NETNS_DIR};
use support::test_hosts::{HostAgent, TestHosts};
use support::{wait_for, Kubectl, Skiff, DEADLINE};

/// The server's grace period for silent nodes, short for the test (Kubernetes: 50 s).
const GRACE: Duration = Duration::from_secs(20);

fn condition(object: &Value, kind: &str) -> Value {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or(Value::Null)
}

fn taints(node: &Value) -> Vec<Value> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_taint(node: &Value, key: &str, effect: &str) -> bool {
    taints(node)
        .iter()
        .any(|t| t["key"] == key && t["effect"] == effect)
}

/// The pods of `app`: name, UID, node, whether Ready, whether terminating.
struct PodRow {
    name: String,
    uid: String,
    node: String,
    ready: bool,
    terminating: bool,
}

fn pods(kubectl: &Kubectl, app: &str) -> Vec<PodRow> {
    items(&kubectl.json(&["get", "pods", "-l", &format!("app={app}")]))
        .iter()
        .map(|p| PodRow {
            name: str_at(p, "/metadata/name"),
            uid: str_at(p, "/metadata/uid"),
            node: str_at(p, "/spec/nodeName"),
            ready: condition(p, "Ready")["status"] == "True",
            terminating: p.pointer("/metadata/deletionTimestamp").is_some(),
        })
        .collect()
}

fn node_ready(kubectl: &Kubectl, name: &str) -> bool {
    let out = kubectl.run(&["get", "node", name, "-o", "json"]);
    out.success()
        && serde_json::from_str::<Value>(&out.stdout)
            .is_ok_and(|node| condition(&node, "Ready")["status"] == "True")
}

/// What of the pods `uids` is still on the machine: their processes, namespace pins and
/// cgroups under `cgroup_root`.
fn remains_of(uids: &[String], cgroup_root: &str) -> Vec<String> {
    let mut left = processes_of_pods(uids);
    for uid in uids {
        let pin = Path::new(NETNS_DIR).join(uid);
        if pin.exists() {
            left.push(format!("namespace pin {}", pin.display()));
        }
        let pod = format!("pod{uid}");
        for hierarchy in cgroup_hierarchies() {
            let kubepods = hierarchy.join(cgroup_root).join("kubepods");
            for dir in [
                kubepods.join(&pod),
                kubepods.join("burstable").join(&pod),
                kubepods.join("besteffort").join(&pod),
            ] {
                if dir.exists() {
                    left.push(format!("cgroup {}", dir.display()));
                }
            }
        }
    }
    left
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 3
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      containers:
      - name: web
        image: IMAGE
        ports:
        - containerPort: 8080
"#;

#[test]
fn a_cut_agent_goes_unknown_its_pods_move_and_it_cleans_up_when_it_returns() {
    assert_root();
    let hosts = TestHosts::new("f", 3);
    let names = hosts.names();
    let cut_host = hosts.host(1).clone();
    let victim_uids: Vec<String>;
    {
        let grace = format!("{}s", GRACE.as_secs());
        let server = Skiff::start_in_host(
            &hosts,
            0,
            &[
                "--no-node",
                "--node-monitor-grace-period",
                &grace,
                "--node-monitor-period",
                "1s",
            ],
            &[],
        );
        let kubectl = server.kubectl();
        let _agent_a = HostAgent::start(&hosts, 1, &server, "host-a", &[demo("v1")], &[]);
        let _agent_b = HostAgent::start(&hosts, 2, &server, "host-b", &[demo("v1")], &[]);
        hosts.wait_for_guard_routes(1);
        hosts.wait_for_guard_routes(2);
        wait_for("both nodes Ready", DEADLINE, || {
            (node_ready(&kubectl, "host-a") && node_ready(&kubectl, "host-b")).then_some(())
        });

        let manifest = server.write_file(
            "web.yaml",
            &DEPLOYMENT.replace("IMAGE", &format!("{DEMO}:v1")),
        );
        kubectl.ok(&["apply", "-f", &manifest]);
        let placed = wait_for("four Ready web pods", Duration::from_secs(120), || {
            let pods = pods(&kubectl, "web");
            (pods.len() == 4 && pods.iter().all(|p| p.ready && !p.terminating)).then_some(pods)
        });
        let victims: Vec<&PodRow> = placed.iter().filter(|p| p.node == "host-a").collect();
        assert!(
            !victims.is_empty() && victims.len() < placed.len(),
            "the scheduler spread the pods over both nodes: {:?}",
            placed.iter().map(|p| &p.node).collect::<Vec<_>>()
        );
        victim_uids = victims.iter().map(|p| p.uid.clone()).collect();
        let victim_names: Vec<String> = victims.iter().map(|p| p.name.clone()).collect();
        let running_before = processes_of_pods(&victim_uids);
        assert!(
            !running_before.is_empty(),
            "the victims' containers run on host-a"
        );

        // The cable is pulled.
        hosts.cut(1);
        let node = wait_for(
            "host-a's Ready condition to turn Unknown",
            GRACE + Duration::from_secs(30),
            || {
                let node = kubectl.json(&["get", "node", "host-a"]);
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
        let node = wait_for("the unreachable taints", DEADLINE, || {
            let node = kubectl.json(&["get", "node", "host-a"]);
            (has_taint(&node, "node.kubernetes.io/unreachable", "NoSchedule")
                && has_taint(&node, "node.kubernetes.io/unreachable", "NoExecute"))
            .then_some(node)
        });
        assert!(
            taints(&node)
                .iter()
                .any(|t| t["effect"] == "NoExecute" && t["timeAdded"].is_string()),
            "the NoExecute taint carries timeAdded: {:?}",
            taints(&node)
        );

        // After ten seconds the pods are evicted (marked, then deleted gracefully: they stay
        // Terminating while their kubelet cannot confirm) and replaced on host-b.
        let evicted = wait_for(
            "the pods on host-a evicted",
            Duration::from_secs(60),
            || {
                let pods = pods(&kubectl, "web");
                let evicted: Vec<&PodRow> = pods
                    .iter()
                    .filter(|p| victim_names.contains(&p.name))
                    .collect();
                (evicted.len() == victim_names.len() && evicted.iter().all(|p| p.terminating))
                    .then(|| victim_names.clone())
            },
        );
        for name in &evicted {
            let pod = kubectl.json(&["get", "pod", name]);
            let target = condition(&pod, "DisruptionTarget");
            assert_eq!(target["status"], "True", "{name}: {target}");
            assert_eq!(
                target["reason"], "DeletionByTaintManager",
                "{name}: {target}"
            );
        }
        wait_for(
            "four Ready replacements on host-b",
            Duration::from_secs(90),
            || {
                let pods = pods(&kubectl, "web");
                let live: Vec<&PodRow> = pods.iter().filter(|p| !p.terminating).collect();
                (live.len() == 4 && live.iter().all(|p| p.ready && p.node == "host-b"))
                    .then_some(())
            },
        );
        // A kubelet that lost its API server keeps its containers running.
        let still_running = processes_of_pods(&victim_uids);
        assert!(
            !still_running.is_empty(),
            "host-a's containers kept running while it was cut off"
        );

        // The cable is back: the node reports again, loses the taints, and finishes the
        // evicted pods' deletion, leaving nothing of them behind.
        hosts.reconnect(1);
        wait_for(
            "host-a Ready and untainted again",
            Duration::from_secs(90),
            || {
                let node = kubectl.json(&["get", "node", "host-a"]);
                (condition(&node, "Ready")["status"] == "True"
                    && !taints(&node)
                        .iter()
                        .any(|t| t["key"] == "node.kubernetes.io/unreachable"))
                .then_some(())
            },
        );
        wait_for(
            "the evicted pods gone from the API and from host-a",
            Duration::from_secs(90),
            || {
                let pods = pods(&kubectl, "web");
                let gone = pods.iter().all(|p| !evicted.contains(&p.name));
                (gone && remains_of(&victim_uids, &cut_host.cgroup_root).is_empty()).then_some(())
            },
        );
        kubectl.ok(&["delete", "deployment", "web", "--wait=true"]);
        wait_for("every web pod gone", DEADLINE, || {
            pods(&kubectl, "web").is_empty().then_some(())
        });
    }
    drop(hosts);
    let mut left = TestHosts::leftovers_of(&names);
    left.extend(processes_of_pods(&victim_uids));
    assert!(left.is_empty(), "the test left behind: {left:?}");
}
