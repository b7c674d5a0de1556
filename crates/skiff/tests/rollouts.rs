//! The rollout acceptance tests: Deployments, ReplicaSets, the scheduler and simulated nodes,
//! driven by the real `kubectl` against `skiff up --simulated-nodes 2`.
//!
//! Run with `cargo test -p skiff --test rollouts`. Needs `kubectl` on the PATH. Simulated pods
//! become ready within a fraction of a second, so every wait below polls a condition against a
//! deadline instead of sleeping.

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::json::{items, json_of};
use support::{assert_table, cells, wait_for, Kubectl, Skiff, DEADLINE};

/// The pod annotation that keeps simulated pods from ever becoming ready.
const NEVER_READY: &str = "sim.skiff.dev/never-ready: \"true\"";

/// A server with the controllers, the scheduler and two simulated nodes.
fn cluster() -> Skiff {
    Skiff::start_with(&["--simulated-nodes", "2", "--no-node"])
}

/// A Deployment labelled and selected by `app: <name>`, with one container `web`.
/// `spec_extra` holds extra `spec` lines (indented by two spaces) and `pod_annotations` extra
/// template annotations (indented by eight).
fn manifest(
    name: &str,
    replicas: u32,
    image: &str,
    spec_extra: &str,
    pod_annotations: &str,
) -> String {
    let annotations = if pod_annotations.is_empty() {
        String::new()
    } else {
        format!("      annotations:\n{pod_annotations}")
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
{spec_extra}  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
{annotations}    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

/// Runs `kubectl rollout status` and asserts it reports success, as Kubernetes words it.
fn assert_rolled_out(kubectl: &Kubectl, namespace: &str, name: &str) {
    let out = kubectl.ok(&[
        "rollout",
        "status",
        &format!("deploy/{name}"),
        "-n",
        namespace,
    ]);
    assert_eq!(
        out.lines().last(),
        Some(format!("deployment \"{name}\" successfully rolled out").as_str()),
        "rollout status printed:\n{out}"
    );
}

/// `(name, desired, current, ready)` of each ReplicaSet of `app`, from the `kubectl get rs`
/// table, sorted by name.
fn replica_sets(kubectl: &Kubectl, namespace: &str, app: &str) -> Vec<(String, u32, u32, u32)> {
    let out = kubectl.ok(&[
        "get",
        "rs",
        "-n",
        namespace,
        "-l",
        &format!("app={app}"),
        "--no-headers",
    ]);
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

/// The name of the only ReplicaSet of `app`.
fn only_replica_set(kubectl: &Kubectl, namespace: &str, app: &str) -> String {
    let rows = replica_sets(kubectl, namespace, app);
    assert_eq!(rows.len(), 1, "expected one ReplicaSet of {app}: {rows:?}");
    rows[0].0.clone()
}

/// Polls the ReplicaSet table of `app` until it equals `expected` (sorted by name).
fn wait_for_replica_sets(
    kubectl: &Kubectl,
    namespace: &str,
    app: &str,
    what: &str,
    expected: &[(&str, u32, u32, u32)],
) {
    let mut expected: Vec<(String, u32, u32, u32)> = expected
        .iter()
        .map(|(n, d, c, r)| (n.to_string(), *d, *c, *r))
        .collect();
    expected.sort();
    let mut last = Vec::new();
    let found = support::poll(DEADLINE, || {
        last = replica_sets(kubectl, namespace, app);
        (last == expected).then_some(())
    });
    assert!(
        found.is_some(),
        "{what}: ReplicaSets of {app} never became {expected:?}; last seen {last:?}"
    );
}

fn deployment_json(kubectl: &Kubectl, namespace: &str, name: &str) -> Value {
    json_of(&kubectl.ok(&["get", "deploy", name, "-n", namespace, "-o", "json"]))
}

/// `(status, reason, message)` of a Deployment condition.
fn condition(deployment: &Value, kind: &str) -> Option<(String, String, String)> {
    let conditions = deployment.pointer("/status/conditions")?.as_array()?;
    let c = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?;
    let field = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    Some((field("status"), field("reason"), field("message")))
}

fn annotation(object: &Value, key: &str) -> Option<String> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `(revision, change-cause)` rows of `kubectl rollout history`, checking its header lines.
fn history(kubectl: &Kubectl, name: &str) -> Vec<(u32, String)> {
    let out = kubectl.ok(&["rollout", "history", &format!("deploy/{name}")]);
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    assert_eq!(
        lines.next().map(str::trim_end),
        Some(format!("deployment.apps/{name}").as_str()),
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

/// Applies a manifest with `--record` and returns the change-cause kubectl recorded for it.
fn apply_recorded(kubectl: &Kubectl, file: &str, name: &str, expected_stdout: &str) -> String {
    let out = kubectl.run(&["apply", "--record", "-f", file]);
    assert!(
        out.success(),
        "apply {file} failed: {}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout, expected_stdout);
    assert!(
        out.stderr.contains("--record has been deprecated"),
        "kubectl should warn about --record: {}",
        out.stderr
    );
    let cause = annotation(
        &deployment_json(kubectl, "default", name),
        "kubernetes.io/change-cause",
    )
    .unwrap_or_else(|| panic!("apply --record of {file} recorded no change-cause"));
    assert!(
        cause.starts_with("kubectl apply ") && cause.contains(&format!("--filename={file}")),
        "unexpected change-cause {cause:?}"
    );
    cause
}

/// Condenses `kubectl get rs -w` lines into the changes of DESIRED, in order: a line is kept
/// when its ReplicaSet is new or its DESIRED differs from that ReplicaSet's previous line.
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

/// The event rows of a `kubectl describe` output: `(type, reason, from, message)`.
fn described_events(describe: &str) -> Vec<(String, String, String, String)> {
    let Some((_, events)) = describe.split_once("\nEvents:") else {
        return Vec::new();
    };
    events
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("----"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let c = cells(line);
            let from = c.iter().position(|cell| *cell == "deployment-controller")?;
            Some((
                c[0].to_string(),
                c[1].to_string(),
                c[from].to_string(),
                c[from + 1..].join(" "),
            ))
        })
        .collect()
}

/// The value of a `Key:  value` line of a `kubectl describe` output.
fn described_field<'a>(describe: &'a str, key: &str) -> Option<&'a str> {
    describe
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

#[test]
fn rolling_update_history_describe_and_undo() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let v1 = skiff.write_file("web-v1.yaml", &manifest("web", 3, "nginx:1.0", "", ""));
    let v2 = skiff.write_file("web-v2.yaml", &manifest("web", 3, "nginx:2.0", "", ""));
    let v3 = skiff.write_file("web-v3.yaml", &manifest("web", 3, "nginx:3.0", "", ""));

    // Revision 1.
    let cause_v1 = apply_recorded(&kubectl, &v1, "web", "deployment.apps/web created\n");
    assert_rolled_out(&kubectl, "default", "web");
    let rs_v1 = only_replica_set(&kubectl, "default", "web");
    assert!(rs_v1.starts_with("web-"), "{rs_v1}");
    wait_for_replica_sets(&kubectl, "default", "web", "v1", &[(&rs_v1, 3, 3, 3)]);

    // Revision 2, watched from before the apply.
    let mut watch = kubectl.spawn_lines(&["get", "rs", "-w"]);
    watch.wait_for_line("the v1 ReplicaSet in the initial listing", |l| {
        cells(l).first() == Some(&rs_v1.as_str())
    });
    let cause_v2 = apply_recorded(&kubectl, &v2, "web", "deployment.apps/web configured\n");
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
    assert!(
        changes.iter().all(|(n, _)| *n == rs_v1 || *n == rs_v2),
        "a third ReplicaSet appeared: {changes:?}"
    );
    drop(watch);
    assert_rolled_out(&kubectl, "default", "web");

    // describe: conditions, both ReplicaSets and every scaling step as an event.
    let expected_events = [
        format!("Scaled up replica set {rs_v1} from 0 to 3"),
        format!("Scaled up replica set {rs_v2} from 0 to 1"),
        format!("Scaled down replica set {rs_v1} from 3 to 2"),
        format!("Scaled up replica set {rs_v2} from 1 to 2"),
        format!("Scaled down replica set {rs_v1} from 2 to 1"),
        format!("Scaled up replica set {rs_v2} from 2 to 3"),
        format!("Scaled down replica set {rs_v1} from 1 to 0"),
    ];
    let last_event = expected_events.last().cloned().unwrap_or_default();
    let describe = wait_for("describe to show the finished rollout", DEADLINE, || {
        let out = kubectl.ok(&["describe", "deployment", "web"]);
        (out.contains(&last_event) && out.contains("NewReplicaSetAvailable")).then_some(out)
    });
    assert_eq!(
        described_field(&describe, "Replicas"),
        Some("3 desired | 3 updated | 3 total | 3 available | 0 unavailable"),
        "{describe}"
    );
    assert_eq!(
        described_field(&describe, "StrategyType"),
        Some("RollingUpdate")
    );
    let conditions: Vec<Vec<&str>> = describe
        .split_once("\nConditions:\n")
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("  "))
        .map(cells)
        .collect();
    assert_eq!(
        conditions,
        vec![
            vec!["Available", "True", "MinimumReplicasAvailable"],
            vec!["Progressing", "True", "NewReplicaSetAvailable"],
        ],
        "{describe}"
    );
    assert_eq!(
        described_field(&describe, "OldReplicaSets"),
        Some(format!("{rs_v1} (0/0 replicas created)").as_str()),
        "{describe}"
    );
    assert_eq!(
        described_field(&describe, "NewReplicaSet"),
        Some(format!("{rs_v2} (3/3 replicas created)").as_str()),
        "{describe}"
    );
    let events = described_events(&describe);
    let expected_rows: Vec<(String, String, String, String)> = expected_events
        .iter()
        .map(|m| {
            (
                "Normal".to_string(),
                "ScalingReplicaSet".to_string(),
                "deployment-controller".to_string(),
                m.clone(),
            )
        })
        .collect();
    assert_eq!(events, expected_rows, "{describe}");

    // Revision 3, then the history of all three with their change-causes.
    let cause_v3 = apply_recorded(&kubectl, &v3, "web", "deployment.apps/web configured\n");
    assert_rolled_out(&kubectl, "default", "web");
    assert_eq!(
        history(&kubectl, "web"),
        vec![
            (1, cause_v1.clone()),
            (2, cause_v2.clone()),
            (3, cause_v3.clone())
        ]
    );

    // Undo to revision 1: the v1 template comes back in its own ReplicaSet as revision 4.
    assert_eq!(
        kubectl.ok(&["rollout", "undo", "deploy/web", "--to-revision=1"]),
        "deployment.apps/web rolled back\n"
    );
    assert_rolled_out(&kubectl, "default", "web");
    assert_eq!(
        kubectl.ok(&[
            "get",
            "deploy/web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.0"
    );
    let renumbered = wait_for("history to renumber revision 1 as 4", DEADLINE, || {
        let rows = history(&kubectl, "web");
        (rows.iter().map(|(r, _)| *r).collect::<Vec<_>>() == [2, 3, 4]).then_some(rows)
    });
    assert_eq!(
        renumbered,
        vec![(2, cause_v2), (3, cause_v3), (4, cause_v1)]
    );
    let reused = json_of(&kubectl.ok(&["get", "rs", &rs_v1, "-o", "json"]));
    assert_eq!(
        annotation(&reused, "deployment.kubernetes.io/revision").as_deref(),
        Some("4")
    );
    assert_eq!(
        annotation(&reused, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("1")
    );
    let rows = replica_sets(&kubectl, "default", "web");
    assert_eq!(
        rows.len(),
        3,
        "the undo must reuse the v1 ReplicaSet: {rows:?}"
    );
    wait_for_replica_sets(
        &kubectl,
        "default",
        "web",
        "after the undo",
        &[
            (&rs_v1, 3, 3, 3),
            (&rs_v2, 0, 0, 0),
            (&rows_other(&rows, &[&rs_v1, &rs_v2]), 0, 0, 0),
        ],
    );
    assert_eq!(
        annotation(
            &deployment_json(&kubectl, "default", "web"),
            "deployment.kubernetes.io/revision"
        )
        .as_deref(),
        Some("4")
    );
}

/// The one ReplicaSet name in `rows` that is not in `known`.
fn rows_other(rows: &[(String, u32, u32, u32)], known: &[&str]) -> String {
    let others: Vec<&String> = rows
        .iter()
        .map(|(n, ..)| n)
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    assert_eq!(others.len(), 1, "expected one more ReplicaSet in {rows:?}");
    others[0].clone()
}

#[test]
fn stalled_rollouts_hit_their_deadline_and_scale_proportionally() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let never_ready = format!("        {NEVER_READY}\n");

    // `x`: 3 replicas with a 5 s progress deadline; `big`: 10 replicas with the default one.
    let x_v1 = skiff.write_file(
        "x-v1.yaml",
        &manifest("x", 3, "nginx:1.0", "  progressDeadlineSeconds: 5\n", ""),
    );
    let x_v2 = skiff.write_file(
        "x-v2.yaml",
        &manifest(
            "x",
            3,
            "nginx:2.0",
            "  progressDeadlineSeconds: 5\n",
            &never_ready,
        ),
    );
    let big_v1 = skiff.write_file("big-v1.yaml", &manifest("big", 10, "nginx:1.0", "", ""));
    let big_v2 = skiff.write_file(
        "big-v2.yaml",
        &manifest("big", 10, "nginx:2.0", "", &never_ready),
    );
    for file in [&x_v1, &big_v1] {
        kubectl.ok(&["apply", "-f", file]);
    }
    assert_rolled_out(&kubectl, "default", "x");
    assert_rolled_out(&kubectl, "default", "big");
    let x_old = only_replica_set(&kubectl, "default", "x");
    let big_old = only_replica_set(&kubectl, "default", "big");

    // Start both stalled rollouts; x's deadline runs while big is scaled.
    assert_eq!(
        kubectl.ok(&["apply", "-f", &x_v2]),
        "deployment.apps/x configured\n"
    );
    assert_eq!(
        kubectl.ok(&["apply", "-f", &big_v2]),
        "deployment.apps/big configured\n"
    );

    // 10 replicas at 25%/25%: surge 3, unavailable 2, so the new ReplicaSet gets 3 + 2 = 5 pods
    // and the old one keeps the 8 that must stay available.
    let big_new = wait_for("big's new ReplicaSet", DEADLINE, || {
        replica_sets(&kubectl, "default", "big")
            .into_iter()
            .map(|(name, ..)| name)
            .find(|name| *name != big_old)
    });
    wait_for_replica_sets(
        &kubectl,
        "default",
        "big",
        "stalled at 10 replicas",
        &[(&big_old, 8, 8, 8), (&big_new, 5, 5, 0)],
    );
    assert_eq!(
        kubectl.ok(&["scale", "deploy/big", "--replicas=30"]),
        "deployment.apps/big scaled\n"
    );
    // 30 + surge 8 = 38 pods allowed, 25 more than the 13 there are: the old ReplicaSet gets
    // round(8 * 38 / 13) - 8 = 15 of them and the new one the remaining 10.
    wait_for_replica_sets(
        &kubectl,
        "default",
        "big",
        "scaled to 30 mid-rollout",
        &[(&big_old, 23, 23, 23), (&big_new, 15, 15, 0)],
    );
    let big = deployment_json(&kubectl, "default", "big");
    assert_eq!(
        annotation(&big, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );

    // x: rollout status gives up once the deadline passed.
    let status = kubectl.run(&["rollout", "status", "deploy/x"]);
    assert!(
        !status.success(),
        "rollout status should fail: {}",
        status.stdout
    );
    assert_eq!(
        status.stderr.lines().last(),
        Some("error: deployment \"x\" exceeded its progress deadline"),
        "stderr: {}",
        status.stderr
    );
    let x_new = wait_for("x's new ReplicaSet", DEADLINE, || {
        replica_sets(&kubectl, "default", "x")
            .into_iter()
            .map(|(name, ..)| name)
            .find(|name| *name != x_old)
    });
    let x = deployment_json(&kubectl, "default", "x");
    assert_eq!(
        condition(&x, "Progressing"),
        Some((
            "False".to_string(),
            "ProgressDeadlineExceeded".to_string(),
            format!("ReplicaSet \"{x_new}\" has timed out progressing.")
        ))
    );
    assert_eq!(
        condition(&x, "Available"),
        Some((
            "True".to_string(),
            "MinimumReplicasAvailable".to_string(),
            "Deployment has minimum availability.".to_string()
        ))
    );
    // 3 replicas at 25%/25%: surge 1, unavailable 0, so the old pods all keep serving.
    wait_for_replica_sets(
        &kubectl,
        "default",
        "x",
        "past the deadline",
        &[(&x_old, 3, 3, 3), (&x_new, 1, 1, 0)],
    );
    let status = |field: &str| {
        x.pointer(&format!("/status/{field}"))
            .and_then(Value::as_i64)
    };
    assert_eq!(
        (
            status("replicas"),
            status("updatedReplicas"),
            status("availableReplicas"),
            status("unavailableReplicas")
        ),
        (Some(4), Some(1), Some(3), Some(1))
    );
    let hash = x_old.trim_start_matches("x-");
    assert_table(
        &kubectl.ok(&[
            "get",
            "pods",
            "-l",
            &format!("pod-template-hash={hash}"),
            "-o",
            "custom-columns=STATUS:.status.phase,READY:.status.conditions[?(@.type==\"Ready\")].status",
            "--no-headers",
        ]),
        &[&["Running", "True"], &["Running", "True"], &["Running", "True"]],
    );
}

#[test]
fn pause_resume_recreate_and_cascading_deletion() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    for namespace in ["pause", "recreate", "cascade"] {
        kubectl.ok(&["create", "namespace", namespace]);
    }
    check_pause_and_resume(&skiff, &kubectl);
    check_recreate(&skiff, &kubectl);
    check_cascading_deletion(&skiff, &kubectl);
}

/// Paused: a new template creates no ReplicaSet but scaling works; resumed: the rollout runs.
fn check_pause_and_resume(skiff: &Skiff, kubectl: &Kubectl) {
    let ns = "pause";
    let file = skiff.write_file("p.yaml", &manifest("p", 3, "nginx:1.0", "", ""));
    kubectl.ok(&["apply", "-n", ns, "-f", &file]);
    assert_rolled_out(kubectl, ns, "p");
    let old = only_replica_set(kubectl, ns, "p");

    assert_eq!(
        kubectl.ok(&["rollout", "pause", "deploy/p", "-n", ns]),
        "deployment.apps/p paused\n"
    );
    assert_eq!(
        kubectl.ok(&["set", "image", "deploy/p", "web=nginx:2.0", "-n", ns]),
        "deployment.apps/p image updated\n"
    );
    // Once the controller has seen the new template, it reports the pause and still has made
    // no ReplicaSet for it.
    let seen = wait_for(
        "the paused template change to be observed",
        DEADLINE,
        || {
            let d = deployment_json(kubectl, ns, "p");
            let generation = d.pointer("/metadata/generation").and_then(Value::as_i64);
            let observed = d
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64);
            (generation.is_some() && generation == observed).then_some(d)
        },
    );
    assert_eq!(
        condition(&seen, "Progressing"),
        Some((
            "Unknown".to_string(),
            "DeploymentPaused".to_string(),
            "Deployment is paused".to_string()
        ))
    );
    assert_eq!(
        replica_sets(kubectl, ns, "p"),
        vec![(old.clone(), 3, 3, 3)],
        "a paused Deployment must not roll out"
    );

    assert_eq!(
        kubectl.ok(&["scale", "deploy/p", "--replicas=5", "-n", ns]),
        "deployment.apps/p scaled\n"
    );
    wait_for_replica_sets(kubectl, ns, "p", "scaled while paused", &[(&old, 5, 5, 5)]);

    assert_eq!(
        kubectl.ok(&["rollout", "resume", "deploy/p", "-n", ns]),
        "deployment.apps/p resumed\n"
    );
    assert_rolled_out(kubectl, ns, "p");
    let rows = replica_sets(kubectl, ns, "p");
    let new = rows_other(&rows, &[&old]);
    wait_for_replica_sets(
        kubectl,
        ns,
        "p",
        "resumed",
        &[(&old, 0, 0, 0), (&new, 5, 5, 5)],
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "rs",
            &new,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:2.0"
    );
}

/// Recreate: every old pod is deleted before the first new pod appears.
fn check_recreate(skiff: &Skiff, kubectl: &Kubectl) {
    let ns = "recreate";
    let strategy = "  strategy:\n    type: Recreate\n";
    let v1 = skiff.write_file("r-v1.yaml", &manifest("r", 3, "nginx:1.0", strategy, ""));
    let v2 = skiff.write_file("r-v2.yaml", &manifest("r", 3, "nginx:2.0", strategy, ""));
    kubectl.ok(&["apply", "-n", ns, "-f", &v1]);
    assert_rolled_out(kubectl, ns, "r");
    let old = only_replica_set(kubectl, ns, "r");
    let old_prefix = format!("{old}-");

    let mut watch = kubectl.spawn_lines(&["get", "pods", "-n", ns, "-w", "--output-watch-events"]);
    let listed = RefCell::new(BTreeSet::new());
    watch.wait_for_line("the three old pods in the initial listing", |line| {
        let c = cells(line);
        if c.first() == Some(&"ADDED") && c.get(1).is_some_and(|n| n.starts_with(&old_prefix)) {
            listed.borrow_mut().insert(c[1].to_string());
        }
        listed.borrow().len() == 3
    });
    kubectl.ok(&["apply", "-n", ns, "-f", &v2]);
    let ready_new = RefCell::new(BTreeSet::new());
    watch.wait_for_line("three new pods running and ready", |line| {
        let c = cells(line);
        if let [_, name, "1/1", "Running", ..] = c.as_slice() {
            if name.starts_with("r-") && !name.starts_with(&old_prefix) {
                ready_new.borrow_mut().insert(name.to_string());
            }
        }
        ready_new.borrow().len() == 3
    });
    assert_rolled_out(kubectl, ns, "r");

    let seen = watch.seen().to_vec();
    let is_old = |line: &str| {
        cells(line)
            .get(1)
            .is_some_and(|n| n.starts_with(&old_prefix))
    };
    let is_new = |line: &str| {
        cells(line)
            .get(1)
            .is_some_and(|n| n.starts_with("r-") && !n.starts_with(&old_prefix))
    };
    let deleted: BTreeSet<String> = seen
        .iter()
        .filter(|l| is_old(l) && cells(l).first() == Some(&"DELETED"))
        .map(|l| cells(l)[1].to_string())
        .collect();
    assert_eq!(
        deleted,
        *listed.borrow(),
        "every old pod is deleted: {seen:#?}"
    );
    let last_old_deleted = seen
        .iter()
        .rposition(|l| is_old(l) && cells(l).first() == Some(&"DELETED"));
    let first_new = seen.iter().position(|l| is_new(l));
    assert!(
        last_old_deleted < first_new,
        "a new pod appeared before the old ones were gone: {seen:#?}"
    );
}

/// Deleting a Deployment removes its ReplicaSets and pods; with `--cascade=orphan` they stay,
/// without the owner reference.
fn check_cascading_deletion(skiff: &Skiff, kubectl: &Kubectl) {
    let ns = "cascade";
    for name in ["gone", "kept"] {
        let file = skiff.write_file(
            &format!("{name}.yaml"),
            &manifest(name, 3, "nginx:1.0", "", ""),
        );
        kubectl.ok(&["apply", "-n", ns, "-f", &file]);
    }
    for name in ["gone", "kept"] {
        assert_rolled_out(kubectl, ns, name);
    }
    let names = |app: &str| -> Vec<String> {
        kubectl
            .ok(&[
                "get",
                "rs,pods",
                "-n",
                ns,
                "-l",
                &format!("app={app}"),
                "-o",
                "name",
            ])
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(names("gone").len(), 4, "one ReplicaSet and three pods");

    assert_eq!(
        kubectl.ok(&["delete", "deployment", "gone", "-n", ns]),
        "deployment.apps \"gone\" deleted\n"
    );
    let mut left = Vec::new();
    let emptied = support::poll(DEADLINE, || {
        left = names("gone");
        left.is_empty().then_some(())
    });
    assert!(
        emptied.is_some(),
        "the garbage collector left {left:?} behind"
    );

    let kept_rs = only_replica_set(kubectl, ns, "kept");
    assert_eq!(
        kubectl.ok(&["delete", "deployment", "kept", "-n", ns, "--cascade=orphan"]),
        "deployment.apps \"kept\" deleted\n"
    );
    wait_for("the orphaning Deployment to be gone", DEADLINE, || {
        let out = kubectl.run(&["get", "deployment", "kept", "-n", ns]);
        (!out.success() && out.stderr.contains("NotFound")).then_some(())
    });
    // The orphan finalizer is only removed once the dependents have lost their reference.
    let rs = json_of(&kubectl.ok(&["get", "rs", &kept_rs, "-n", ns, "-o", "json"]));
    let owners = rs
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert_eq!(owners, 0, "the orphaned ReplicaSet keeps no owner: {rs}");
    assert!(rs.pointer("/metadata/deletionTimestamp").is_none());
    wait_for_replica_sets(kubectl, ns, "kept", "orphaned", &[(&kept_rs, 3, 3, 3)]);
    let pods = items(&kubectl.json(&["get", "pods", "-n", ns, "-l", "app=kept"]));
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert!(
            pod.pointer("/metadata/deletionTimestamp").is_none(),
            "{pod}"
        );
        assert_eq!(
            pod.pointer("/metadata/ownerReferences/0/name")
                .and_then(Value::as_str),
            Some(kept_rs.as_str()),
            "pods still belong to their ReplicaSet: {pod}"
        );
    }
}

/// A pod with two init containers on a simulated node, each running two seconds: `kubectl get
/// pods -w` shows `Init:0/2`, then `Init:1/2`, then `Running`, and the statuses say why.
#[test]
fn init_containers_run_in_turn_on_a_simulated_node() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file(
        "init.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: init-demo
  annotations:
    sim.skiff.dev/init-run-for: 2s
spec:
  initContainers:
  - name: fetch
    image: busybox
  - name: migrate
    image: busybox
  containers:
  - name: app
    image: nginx:1.25
",
    );
    let mut watch = kubectl.spawn_lines(&["get", "pods", "-w"]);
    kubectl.ok(&["apply", "-f", &file]);
    let status_of = |line: &str| {
        let c = cells(line);
        (c.first() == Some(&"init-demo")).then(|| (c[1].to_string(), c[2].to_string()))
    };
    let mut wait_for_status = |wanted: &str| {
        let line = watch.wait_for_line(&format!("init-demo {wanted}"), |line| {
            status_of(line).is_some_and(|(_, status)| status == wanted)
        });
        status_of(&line).map(|(ready, _)| ready)
    };
    assert_eq!(wait_for_status("Init:0/2").as_deref(), Some("0/1"));
    assert_eq!(wait_for_status("Init:1/2").as_deref(), Some("0/1"));
    assert_eq!(wait_for_status("Running").as_deref(), Some("1/1"));
    let shown: Vec<String> = watch
        .seen()
        .iter()
        .filter_map(|line| status_of(line).map(|(_, status)| status))
        .collect();
    let first_running = shown.iter().position(|s| s == "Running");
    assert!(
        first_running.is_some_and(|at| shown[..at]
            .iter()
            .all(|s| ["Pending", "Init:0/2", "Init:1/2"].contains(&s.as_str()))),
        "statuses before Running: {shown:?}"
    );
    drop(watch);

    let pod = json_of(&kubectl.ok(&["get", "pod", "init-demo", "-o", "json"]));
    let inits = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(inits.len(), 2, "init container statuses: {inits:?}");
    for init in &inits {
        assert_eq!(
            init.pointer("/state/terminated/reason")
                .and_then(Value::as_str),
            Some("Completed"),
            "{init}"
        );
        assert_eq!(init["ready"], Value::Bool(true), "{init}");
    }
    assert_eq!(
        inits[0].pointer("/state/terminated/finishedAt"),
        inits[1].pointer("/state/terminated/startedAt"),
        "the second init container starts when the first ends"
    );
    let initialized = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|c| c["type"] == "Initialized"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(initialized["status"], "True", "{initialized}");
}
