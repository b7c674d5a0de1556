//! Pods across agents' restarts and rollouts, over test hosts (network namespaces on a bridge
//! the test owns, addresses from 198.18.0.0/15): a server without a node in one host, agents
//! on the `oci` runtime in others.
//!
//! - An agent stopped with SIGTERM, or killed, and started again adopts the containers it
//!   left running: the same processes, no restart counted, no pod made again.
//! - The seed rollout (exact ReplicaSet counts, history, describe and undo) and a rollout
//!   behind a NodePort under constant requests, with each revision's pods on both agents.
//!
//! Run with `cargo test -p skiff --test multi_host_rollouts` as root, with `kubectl`, `ip`,
//! `nft` and `nsenter` on the PATH.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::images::{demo, shell, DEMO, SHELL};
use support::json::{items, json_of, str_at};
use support::oci::{assert_root, processes_of_pods};
use support::test_hosts::{HostAgent, TestHosts};
use support::traffic::{assert_no_failures, request, Client};
use support::{cells, wait_for, wait_for_every, Kubectl, Skiff, DEADLINE};

/// How long pods may take to run, be adopted or be Ready.
const SETTLE: Duration = Duration::from_secs(120);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(250);

/// Whether `kubectl get node NAME` says the node is Ready.
fn node_ready(kubectl: &Kubectl, name: &str) -> bool {
    let out = kubectl.run(&["get", "node", name, "-o", "json"]);
    out.success()
        && json_of(&out.stdout)["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether pod JSON `pod` has condition Ready True.
fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        })
}

/// The status of container `name` in pod JSON `pod`.
fn container_status(pod: &Value, name: &str) -> Option<Value> {
    pod.pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find(|s| str_at(s, "/name") == name)
        .cloned()
}

/// Whether `pid` is a live (not zombie) process carrying pod UID `uid` in its environment:
/// the pod's container, not a PID reused by something else.
fn runs_for_pod(pid: i32, uid: &str) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    });
    alive
        && std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|environ| String::from_utf8_lossy(&environ).contains(uid))
}

/// The PID 1 of container `main` of pod `uid` on the host, as the agent's runtime recorded it.
fn container_pid(agent: &HostAgent, uid: &str) -> Option<i32> {
    std::fs::read_to_string(
        agent
            .data_dir()
            .join("oci")
            .join("containers")
            .join(format!("{uid}-main"))
            .join("pid"),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// What must not change about a pod when its agent restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RunningPod {
    name: String,
    uid: String,
    ip: String,
    container_id: String,
    started_at: String,
    restarts: i64,
    pid: i32,
}

/// The pods of `app=sleeper`, each running, Ready and with its container's process found, or
/// `None` while one is not.
fn running_sleepers(kubectl: &Kubectl, agent: &HostAgent) -> Option<Vec<RunningPod>> {
    let list = kubectl.json(&["get", "pods", "-l", "app=sleeper"]);
    items(&list)
        .iter()
        .map(|pod| {
            let uid = str_at(pod, "/metadata/uid");
            let status = container_status(pod, "main")?;
            let pid = container_pid(agent, &uid)?;
            let running = RunningPod {
                name: str_at(pod, "/metadata/name"),
                ip: str_at(pod, "/status/podIP"),
                container_id: str_at(&status, "/containerID"),
                started_at: status
                    .pointer("/state/running/startedAt")?
                    .as_str()?
                    .to_string(),
                restarts: status.pointer("/restartCount")?.as_i64()?,
                pid,
                uid,
            };
            (pod_ready(pod)
                && pod.pointer("/metadata/deletionTimestamp").is_none()
                && !running.ip.is_empty()
                && runs_for_pod(pid, &running.uid))
            .then_some(running)
        })
        .collect()
}

/// Three pods of the shell image whose PID 1 sleeps in a loop and exits at SIGTERM.
const SLEEPERS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleeper
spec:
  replicas: 3
  selector:
    matchLabels:
      app: sleeper
  template:
    metadata:
      labels:
        app: sleeper
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: SHELL_IMAGE
        command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 0.2; done']
";

/// Whether the agent's log from byte `from` on says it adopted `pod`'s running container,
/// that very process: a stale status from before the restart cannot pass for an adoption.
fn adoption_logged(log: &str, from: usize, pod: &RunningPod) -> bool {
    log.get(from..).unwrap_or_default().lines().any(|line| {
        let line = without_colours(line);
        line.contains("adopted a running container")
            && line.contains(&format!("pod_uid={}", pod.uid))
            && line.contains(&format!("pid={}", pod.pid))
    })
}

/// `line` without its terminal colour sequences (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip up to and including the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Starts the stopped agent again and waits until it adopted its pods as `before`: its log
/// says so for each container's process, then the same pods (UIDs) are Ready with the same
/// container processes, IDs, start times and restart counts. Returns how long that took
/// after the agent said it joined.
fn start_again_and_assert_adopted(
    kubectl: &Kubectl,
    agent: &mut HostAgent,
    before: &[RunningPod],
    how: &str,
) -> Duration {
    let log_from = agent.log().len();
    agent.start_again();
    let joined = Instant::now();
    let mut last = None;
    let adopted = support::poll(SETTLE, || {
        let log = agent.log();
        if !before
            .iter()
            .all(|pod| adoption_logged(&log, log_from, pod))
        {
            return None;
        }
        let now = running_sleepers(kubectl, agent);
        last = Some(now.clone());
        now.filter(|pods| pods == before)
    });
    assert!(
        adopted.is_some(),
        "after {how} the agent's pods were not adopted unchanged within {SETTLE:?}:\nbefore {before:#?}\nlast seen {last:#?}"
    );
    let took = joined.elapsed();
    eprintln!("after {how}: every pod adopted and Ready {took:?} after the agent joined");
    took
}

#[test]
fn a_stopped_or_killed_agent_started_again_adopts_its_running_containers() {
    assert_root();
    let hosts = TestHosts::new("r", 2);
    let names = hosts.names();
    let uids: Vec<String>;
    {
        let server = Skiff::start_in_host(&hosts, 0, &["--no-node"], &[]);
        let kubectl = server.kubectl();
        // `skiff agent` as a user runs it: its pods outlive it.
        let mut agent =
            HostAgent::start_leaving_pods(&hosts, 1, &server, "host-a", &[shell()], &[]);
        hosts.wait_for_guard_routes(1);
        wait_for_every("node host-a to be Ready", SETTLE, POLL, || {
            node_ready(&kubectl, "host-a").then_some(())
        });
        server.write_file("sleeper.yaml", &SLEEPERS.replace("SHELL_IMAGE", SHELL));
        kubectl.ok(&["apply", "-f", "sleeper.yaml"]);
        let before = wait_for_every("three running sleepers", SETTLE, POLL, || {
            running_sleepers(&kubectl, &agent).filter(|pods| pods.len() == 3)
        });
        uids = before.iter().map(|p| p.uid.clone()).collect();
        assert!(
            before.iter().all(|p| p.restarts == 0),
            "no restart yet: {before:#?}"
        );

        // SIGTERM: the agent exits cleanly and leaves its containers running.
        let status = agent.stop();
        assert!(
            status.success(),
            "skiff agent exited with {status} at SIGTERM:\n{}",
            agent.log()
        );
        for pod in &before {
            assert!(
                runs_for_pod(pod.pid, &pod.uid),
                "{}'s container (PID {}) stopped with the agent at SIGTERM",
                pod.name,
                pod.pid
            );
        }
        start_again_and_assert_adopted(&kubectl, &mut agent, &before, "a SIGTERM");

        // SIGKILL: the same.
        agent.kill();
        for pod in &before {
            assert!(
                runs_for_pod(pod.pid, &pod.uid),
                "{}'s container (PID {}) stopped when the agent was killed",
                pod.name,
                pod.pid
            );
        }
        start_again_and_assert_adopted(&kubectl, &mut agent, &before, "a SIGKILL");

        // Still the same pods after the agent has been at work a while: nothing made again.
        let listed = kubectl.json(&["get", "pods", "-l", "app=sleeper"]);
        let listed: BTreeSet<String> = items(&listed)
            .iter()
            .map(|p| str_at(p, "/metadata/uid"))
            .collect();
        assert_eq!(
            listed,
            uids.iter().cloned().collect::<BTreeSet<_>>(),
            "the Deployment's pods are the ones from before the restarts"
        );

        // With `--stop-pods-on-exit` the agent stops its pods when it stops.
        agent.set_stop_pods_on_exit(true);
        agent.stop();
        start_again_and_assert_adopted(
            &kubectl,
            &mut agent,
            &before,
            "a start with --stop-pods-on-exit",
        );
        let status = agent.stop();
        assert!(
            status.success(),
            "skiff agent --stop-pods-on-exit exited with {status}:\n{}",
            agent.log()
        );
        let left: Vec<&RunningPod> = before
            .iter()
            .filter(|pod| runs_for_pod(pod.pid, &pod.uid))
            .collect();
        assert!(
            left.is_empty(),
            "--stop-pods-on-exit left containers running: {left:#?}"
        );
        drop(agent);
        drop(server);
    }
    drop(hosts);
    let mut left = TestHosts::leftovers_of(&names);
    left.extend(processes_of_pods(&uids));
    assert!(left.is_empty(), "the test left behind: {left:?}");
}

/// A server in host 0 and agents `host-a` and `host-b` in hosts 1 and 2 with `images`, both
/// Ready with their guard routes in place.
fn two_agent_cluster(
    hosts: &TestHosts,
    images: &[skiff_testkit::images::TestImage],
) -> (Skiff, HostAgent, HostAgent) {
    let server = Skiff::start_in_host(hosts, 0, &["--no-node"], &[]);
    let a = HostAgent::start(hosts, 1, &server, "host-a", images, &[]);
    let b = HostAgent::start(hosts, 2, &server, "host-b", images, &[]);
    hosts.wait_for_guard_routes(1);
    hosts.wait_for_guard_routes(2);
    let kubectl = server.kubectl();
    for node in ["host-a", "host-b"] {
        wait_for_every(&format!("node {node} to be Ready"), SETTLE, POLL, || {
            node_ready(&kubectl, node).then_some(())
        });
    }
    (server, a, b)
}

/// The nodes running the live pods of `selector`, with their count.
fn nodes_of(kubectl: &Kubectl, selector: &str) -> BTreeMap<String, usize> {
    let list = kubectl.json(&["get", "pods", "-l", selector]);
    let mut nodes = BTreeMap::new();
    for pod in items(&list)
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
    {
        *nodes.entry(str_at(pod, "/spec/nodeName")).or_insert(0) += 1;
    }
    nodes
}

/// Asserts that ReplicaSet `rs` (of app `app`) has its pods on both agents.
fn assert_spread(kubectl: &Kubectl, app: &str, rs: &str) {
    let hash = rs
        .strip_prefix(&format!("{app}-"))
        .unwrap_or_else(|| panic!("ReplicaSet {rs} is not named after {app}"));
    let nodes = nodes_of(kubectl, &format!("app={app},pod-template-hash={hash}"));
    assert_eq!(
        nodes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["host-a", "host-b"],
        "the pods of {rs} run on both agents: {nodes:?}"
    );
}

/// A 3-replica Deployment `web` of the demo image at `tag`, each revision's pods spread over
/// the nodes (at most one more on one node than on another).
fn web(tag: &str, strategy: &str, pod_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
{strategy}  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels:
            app: web
        matchLabelKeys: [pod-template-hash]
      containers:
      - name: web
        image: {DEMO}:{tag}
        ports:
        - containerPort: 80
{pod_extra}"
    )
}

/// `(name, desired, current, ready)` of each ReplicaSet of `app=web`, sorted by name.
fn replica_sets(kubectl: &Kubectl) -> Vec<(String, u32, u32, u32)> {
    let out = kubectl.ok(&["get", "rs", "-l", "app=web", "--no-headers"]);
    let mut rows: Vec<(String, u32, u32, u32)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c = cells(line);
            let number = |i: usize| -> u32 {
                c.get(i)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad ReplicaSet row {line:?}"))
            };
            (c[0].to_string(), number(1), number(2), number(3))
        })
        .collect();
    rows.sort();
    rows
}

/// Waits until the ReplicaSet table of `web` equals `expected`.
fn wait_for_replica_sets(kubectl: &Kubectl, what: &str, expected: &[(&str, u32, u32, u32)]) {
    let mut expected: Vec<(String, u32, u32, u32)> = expected
        .iter()
        .map(|(n, d, c, r)| (n.to_string(), *d, *c, *r))
        .collect();
    expected.sort();
    let mut last = Vec::new();
    let found = support::poll(SETTLE, || {
        last = replica_sets(kubectl);
        (last == expected).then_some(())
    });
    assert!(
        found.is_some(),
        "{what}: the ReplicaSets never became {expected:?}; last seen {last:?}"
    );
}

/// Runs `kubectl rollout status` and asserts it reports success in Kubernetes' words.
fn assert_rolled_out(kubectl: &Kubectl) {
    let out = kubectl.ok(&["rollout", "status", "deploy/web", "--timeout=180s"]);
    assert_eq!(
        out.lines().last(),
        Some("deployment \"web\" successfully rolled out"),
        "rollout status printed:\n{out}"
    );
}

fn annotation(object: &Value, key: &str) -> Option<String> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `(revision, change-cause)` rows of `kubectl rollout history deploy/web`.
fn history(kubectl: &Kubectl) -> Vec<(u32, String)> {
    let out = kubectl.ok(&["rollout", "history", "deploy/web"]);
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    assert_eq!(
        lines.next().map(str::trim_end),
        Some("deployment.apps/web"),
        "history printed:\n{out}"
    );
    assert_eq!(
        lines.next().map(cells),
        Some(vec!["REVISION", "CHANGE-CAUSE"]),
        "history printed:\n{out}"
    );
    lines
        .map(|line| {
            let (revision, cause) = line
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("bad history row {line:?}"));
            let revision = revision
                .parse()
                .unwrap_or_else(|_| panic!("bad revision in {line:?}"));
            (revision, cause.trim().to_string())
        })
        .collect()
}

/// Applies `file` with `--record`, checks what kubectl printed and returns the change-cause.
fn apply_recorded(kubectl: &Kubectl, file: &str, expected_stdout: &str) -> String {
    let out = kubectl.run(&["apply", "--record", "-f", file]);
    assert!(
        out.success(),
        "apply {file} failed: {}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout, expected_stdout);
    let deployment = kubectl.json(&["get", "deploy", "web"]);
    let cause = annotation(&deployment, "kubernetes.io/change-cause")
        .unwrap_or_else(|| panic!("apply --record of {file} recorded no change-cause"));
    assert!(
        cause.starts_with("kubectl apply ") && cause.contains(&format!("--filename={file}")),
        "unexpected change-cause {cause:?}"
    );
    cause
}

/// The changes of DESIRED in `kubectl get rs -w` lines, in order.
fn desired_changes(lines: &[String]) -> Vec<(String, u32)> {
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    let mut changes = Vec::new();
    for line in lines {
        let c = cells(line);
        let (Some(name), Some(Ok(desired))) = (c.first(), c.get(1).map(|d| d.parse::<u32>()))
        else {
            continue; // the header
        };
        if last.insert(name.to_string(), desired) != Some(desired) {
            changes.push((name.to_string(), desired));
        }
    }
    changes
}

/// The deployment controller's event messages in a `kubectl describe` output, in order.
fn scaling_events(describe: &str) -> Vec<String> {
    let Some((_, events)) = describe.split_once("\nEvents:") else {
        return Vec::new();
    };
    events
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("----"))
        .skip(1)
        .filter_map(|line| {
            let c = cells(line);
            let from = c.iter().position(|cell| *cell == "deployment-controller")?;
            (c.first() == Some(&"Normal") && c.get(1) == Some(&"ScalingReplicaSet"))
                .then(|| c[from + 1..].join(" "))
        })
        .collect()
}

#[test]
fn the_seed_rollout_keeps_its_counts_history_and_undo_with_pods_on_two_agents() {
    assert_root();
    let hosts = TestHosts::new("s", 3);
    let names = hosts.names();
    {
        let (server, a, b) = two_agent_cluster(&hosts, &[demo("v1"), demo("v2"), demo("v3")]);
        let kubectl = server.kubectl();
        let v1 = server.write_file("web-v1.yaml", &web("v1", "", ""));
        let v2 = server.write_file("web-v2.yaml", &web("v2", "", ""));
        let v3 = server.write_file("web-v3.yaml", &web("v3", "", ""));

        // Revision 1, spread over both agents.
        let cause_v1 = apply_recorded(&kubectl, &v1, "deployment.apps/web created\n");
        assert_rolled_out(&kubectl);
        let rows = replica_sets(&kubectl);
        assert_eq!(rows.len(), 1, "one ReplicaSet: {rows:?}");
        let rs_v1 = rows[0].0.clone();
        wait_for_replica_sets(&kubectl, "v1", &[(&rs_v1, 3, 3, 3)]);
        assert_spread(&kubectl, "web", &rs_v1);

        // Revision 2, watched from before the apply: Kubernetes' steps for 3 replicas with
        // maxSurge and maxUnavailable at 25 % (one up, then one down, in turn).
        let mut watch = kubectl.spawn_lines(&["get", "rs", "-w"]);
        watch.wait_for_line("the v1 ReplicaSet in the initial listing", |l| {
            cells(l).first() == Some(&rs_v1.as_str())
        });
        let cause_v2 = apply_recorded(&kubectl, &v2, "deployment.apps/web configured\n");
        watch.wait_for_line("the v1 ReplicaSet scaled to 0", |l| {
            cells(l).get(..2) == Some(&[rs_v1.as_str(), "0"])
        });
        let changes = desired_changes(watch.seen());
        let rs_v2 = changes
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| *name != rs_v1)
            .unwrap_or_else(|| panic!("no new ReplicaSet in {:#?}", watch.seen()));
        let label = |name: &str| if name == rs_v1 { "old" } else { "new" };
        let sequence: Vec<(&str, u32)> = changes.iter().map(|(n, d)| (label(n), *d)).collect();
        assert_eq!(
            sequence,
            vec![
                ("old", 3),
                ("new", 1),
                ("old", 2),
                ("new", 2),
                ("old", 1),
                ("new", 3),
                ("old", 0),
            ],
            "DESIRED as `kubectl get rs -w` printed it: {:#?}",
            watch.seen()
        );
        drop(watch);
        assert_rolled_out(&kubectl);
        wait_for_replica_sets(&kubectl, "v2", &[(&rs_v1, 0, 0, 0), (&rs_v2, 3, 3, 3)]);
        assert_spread(&kubectl, "web", &rs_v2);

        // describe: every scaling step as an event, and the finished rollout's replicas.
        let expected_events = vec![
            format!("Scaled up replica set {rs_v1} from 0 to 3"),
            format!("Scaled up replica set {rs_v2} from 0 to 1"),
            format!("Scaled down replica set {rs_v1} from 3 to 2"),
            format!("Scaled up replica set {rs_v2} from 1 to 2"),
            format!("Scaled down replica set {rs_v1} from 2 to 1"),
            format!("Scaled up replica set {rs_v2} from 2 to 3"),
            format!("Scaled down replica set {rs_v1} from 1 to 0"),
        ];
        let describe = wait_for_every("describe to show every step", SETTLE, POLL, || {
            let out = kubectl.ok(&["describe", "deployment", "web"]);
            (scaling_events(&out).len() >= expected_events.len()).then_some(out)
        });
        assert_eq!(scaling_events(&describe), expected_events, "{describe}");
        assert!(
            describe.lines().any(|l| l.starts_with("Replicas:")
                && l.contains("3 desired | 3 updated | 3 total | 3 available | 0 unavailable")),
            "{describe}"
        );

        // Revision 3, then the history of all three.
        let cause_v3 = apply_recorded(&kubectl, &v3, "deployment.apps/web configured\n");
        assert_rolled_out(&kubectl);
        assert_eq!(
            history(&kubectl),
            vec![
                (1, cause_v1.clone()),
                (2, cause_v2.clone()),
                (3, cause_v3.clone())
            ]
        );

        // Undo to revision 1: its ReplicaSet comes back as revision 4, spread again.
        assert_eq!(
            kubectl.ok(&["rollout", "undo", "deploy/web", "--to-revision=1"]),
            "deployment.apps/web rolled back\n"
        );
        assert_rolled_out(&kubectl);
        assert_eq!(
            kubectl.ok(&[
                "get",
                "deploy/web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}"
            ]),
            format!("{DEMO}:v1")
        );
        let renumbered =
            wait_for_every("history to renumber revision 1 as 4", SETTLE, POLL, || {
                let rows = history(&kubectl);
                (rows.iter().map(|(r, _)| *r).collect::<Vec<_>>() == [2, 3, 4]).then_some(rows)
            });
        assert_eq!(
            renumbered,
            vec![(2, cause_v2), (3, cause_v3), (4, cause_v1)]
        );
        let reused = kubectl.json(&["get", "rs", &rs_v1]);
        assert_eq!(
            annotation(&reused, "deployment.kubernetes.io/revision").as_deref(),
            Some("4")
        );
        assert_eq!(
            annotation(&reused, "deployment.kubernetes.io/revision-history").as_deref(),
            Some("1")
        );
        let rows = replica_sets(&kubectl);
        assert_eq!(rows.len(), 3, "the undo reuses the v1 ReplicaSet: {rows:?}");
        let rs_v3 = rows
            .iter()
            .map(|(n, ..)| n.clone())
            .find(|n| *n != rs_v1 && *n != rs_v2)
            .unwrap_or_else(|| panic!("no v3 ReplicaSet in {rows:?}"));
        wait_for_replica_sets(
            &kubectl,
            "after the undo",
            &[(&rs_v1, 3, 3, 3), (&rs_v2, 0, 0, 0), (&rs_v3, 0, 0, 0)],
        );
        assert_spread(&kubectl, "web", &rs_v1);
        // The demo pods really run on the agents: each answers with its own name.
        let list = kubectl.json(&["get", "pods", "-l", "app=web"]);
        for pod in items(&list)
            .iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        {
            assert_eq!(
                container_status(pod, "web").and_then(|s| s
                    .pointer("/image")
                    .and_then(Value::as_str)
                    .map(str::to_string)),
                Some(format!("{DEMO}:v1")),
                "{pod}"
            );
        }
        drop((a, b));
        drop(server);
    }
    drop(hosts);
    let left = TestHosts::leftovers_of(&names);
    assert!(left.is_empty(), "the test hosts left behind: {left:?}");
}

/// Waits until each agent's host routes the other's pod range via its address: the nodes'
/// own host-gw routes, which the NodePort traffic to pods on the other node needs.
fn wait_for_cross_node_routes(hosts: &TestHosts, kubectl: &Kubectl) {
    let nodes = [(1, "host-a"), (2, "host-b")];
    for (index, _) in nodes {
        for (other, other_name) in nodes {
            if other == index {
                continue;
            }
            let pod_cidr =
                kubectl.ok(&["get", "node", other_name, "-o", "jsonpath={.spec.podCIDR}"]);
            let pod_cidr = pod_cidr.trim().to_string();
            assert!(!pod_cidr.is_empty(), "node {other_name} has no podCIDR");
            let via = format!("via {} ", hosts.host(other).address);
            wait_for(
                &format!("host {index}'s host-gw route to {other_name}'s pods"),
                DEADLINE,
                || {
                    hosts
                        .run_in(index, "ip", &["-4", "route", "show", "exact", &pod_cidr])
                        .contains(&via)
                        .then_some(())
                },
            );
        }
    }
}

#[test]
fn a_rollout_behind_a_node_port_loses_no_request_with_pods_on_two_agents() {
    assert_root();
    let hosts = TestHosts::new("z", 3);
    let names = hosts.names();
    {
        let (server, a, b) = two_agent_cluster(&hosts, &[demo("v1"), demo("v2")]);
        let kubectl = server.kubectl();
        wait_for_cross_node_routes(&hosts, &kubectl);
        let strategy = "  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
";
        let probe = "        readinessProbe:
          httpGet:
            path: /readyz
            port: 80
          periodSeconds: 1
";
        let manifest = format!(
            "{}---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
",
            web("v1", strategy, probe)
        );
        server.write_file("web.yaml", &manifest);
        kubectl.ok(&["apply", "-f", "web.yaml"]);
        assert_rolled_out(&kubectl);
        let rows = replica_sets(&kubectl);
        assert_eq!(rows.len(), 1, "one ReplicaSet: {rows:?}");
        assert_spread(&kubectl, "web", &rows[0].0);

        // Requests go from the test's namespace to agent A's address only.
        let node_port: u16 = kubectl
            .ok(&[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.spec.ports[0].nodePort}",
            ])
            .trim()
            .parse()
            .expect("a node port");
        let address: SocketAddr = format!("{}:{node_port}", a.host.address)
            .parse()
            .expect("the node port's address");
        let pods_on = |node: &str| -> BTreeSet<String> {
            let list = kubectl.json(&["get", "pods", "-l", "app=web"]);
            items(&list)
                .iter()
                .filter(|p| str_at(p, "/spec/nodeName") == node)
                .map(|p| str_at(p, "/metadata/name"))
                .collect()
        };
        // Both agents' pods answer through agent A's node port before the rollout starts.
        let on_b = pods_on("host-b");
        wait_for_every(
            "a pod on agent B to answer through agent A",
            SETTLE,
            POLL,
            || {
                request(address)
                    .ok()
                    .filter(|answer| on_b.contains(&answer.pod))
            },
        );

        let client = Client::start(address);
        let answers = client.answers_since(Instant::now(), 3);
        assert!(answers.iter().all(|a| a.version == "v1"), "{answers:?}");
        kubectl.ok(&["set", "image", "deployment/web", &format!("web={DEMO}:v2")]);
        assert_rolled_out(&kubectl);
        let rows = replica_sets(&kubectl);
        let rs_v2 = rows
            .iter()
            .find(|(_, desired, ..)| *desired == 3)
            .map(|(name, ..)| name.clone())
            .unwrap_or_else(|| panic!("no ReplicaSet of 3 in {rows:?}"));
        assert_spread(&kubectl, "web", &rs_v2);
        let new_on_b = pods_on("host-b");
        let new_on_a = pods_on("host-a");
        let answers = wait_for_every("v2 answers from pods on both agents", SETTLE, POLL, || {
            let answers = client.answers_since(Instant::now(), 30);
            let pods: BTreeSet<String> = answers.iter().map(|a| a.pod.clone()).collect();
            (pods.iter().any(|p| new_on_a.contains(p)) && pods.iter().any(|p| new_on_b.contains(p)))
                .then_some(answers)
        });
        assert!(
            answers.iter().all(|a| a.version == "v2"),
            "after the rollout every answer comes from v2: {answers:?}"
        );
        let samples = client.finish();
        assert_no_failures("default", &samples);
        eprintln!(
            "{} requests through agent A's node port during the rollout, none failed",
            samples.len()
        );
        drop((a, b));
        drop(server);
    }
    drop(hosts);
    let left = TestHosts::leftovers_of(&names);
    assert!(left.is_empty(), "the test hosts left behind: {left:?}");
}
