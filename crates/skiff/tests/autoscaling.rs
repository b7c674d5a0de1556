//! HorizontalPodAutoscaler acceptance tests, driven by the real `kubectl`.
//!
//! Run with `cargo test -p skiff --test autoscaling`. Needs `kubectl` on the PATH. Load is
//! scripted through the simulated nodes' usage annotation (`sim.skiff.dev/cpu-usage`) or made
//! by real demo-server processes burning CPU; every wait polls against a deadline.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::http::{http_get, READ_TIMEOUT};
use support::images::{demo, DEMO};
use support::json::{items, json_of, str_at};
use support::{cells, poll, wait_for, Kubectl, Skiff, DEADLINE};

const CPU_USAGE: &str = "sim.skiff.dev/cpu-usage";

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: {image}
        resources:
          requests:
            cpu: 100m
"
    )
}

fn spec_replicas(kubectl: &Kubectl, name: &str) -> Option<i64> {
    let out = kubectl.run(&["get", "deploy", name, "-o", "json"]);
    if !out.success() {
        return None;
    }
    json_of(&out.stdout).pointer("/spec/replicas")?.as_i64()
}

/// The sizes of the autoscaler's `SuccessfulRescale` events, oldest first.
fn rescales(kubectl: &Kubectl, hpa: &str) -> Vec<i64> {
    let out = kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={hpa},reason=SuccessfulRescale"),
        "-o",
        "json",
    ]);
    let mut events: Vec<(String, i64)> = items(&json_of(&out))
        .iter()
        .filter_map(|e| {
            let message = e["message"].as_str()?;
            let size = message
                .strip_prefix("New size: ")?
                .split(';')
                .next()?
                .parse()
                .ok()?;
            let when = e["firstTimestamp"]
                .as_str()
                .or(e["eventTime"].as_str())
                .unwrap_or("")
                .to_string();
            Some((when, size))
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, size)| size).collect()
}

/// Asserts the autoscaler's rescale events, oldest first, once they were all recorded (events
/// are written asynchronously, after the resize they report).
fn assert_rescales(kubectl: &Kubectl, hpa: &str, expected: &[i64]) {
    let mut seen = Vec::new();
    let matched = poll(Duration::from_secs(10), || {
        seen = rescales(kubectl, hpa);
        (seen == expected).then_some(())
    });
    assert!(
        matched.is_some(),
        "rescale events {seen:?}, expected {expected:?}"
    );
}

/// Spreads `total_millicores` evenly over the pods of `app=<name>` that are not shutting
/// down, as a load balancer in front of them would, by annotating each with its share.
fn spread_load(kubectl: &Kubectl, name: &str, total_millicores: i64) {
    let out = kubectl.run(&["get", "pods", "-l", &format!("app={name}"), "-o", "json"]);
    if !out.success() {
        return;
    }
    let pods: Vec<String> = items(&json_of(&out.stdout))
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter_map(|p| p.pointer("/metadata/name")?.as_str().map(str::to_string))
        .collect();
    if pods.is_empty() {
        return;
    }
    let share = total_millicores / pods.len() as i64;
    let mut args = vec!["annotate".to_string(), "pods".to_string()];
    args.extend(pods);
    args.push(format!("{CPU_USAGE}={share}m"));
    args.push("--overwrite".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A pod deleted in between makes the call fail; the next round covers the rest.
    let _ = kubectl.run(&args);
}

fn replica_sets(kubectl: &Kubectl, name: &str) -> Vec<(String, i64, String)> {
    let sets = kubectl.json(&["get", "rs", "-l", &format!("app={name}")]);
    let mut out: Vec<(String, i64, String)> = items(&sets)
        .iter()
        .map(|rs| {
            (
                str_at(
                    rs,
                    "/metadata/annotations/deployment.kubernetes.io~1revision",
                ),
                rs.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                str_at(
                    rs,
                    "/metadata/annotations/deployment.kubernetes.io~1desired-replicas",
                ),
            )
        })
        .collect();
    out.sort();
    out
}

/// `kubectl autoscale` creates an autoscaler that `kubectl get hpa` shows with its target and
/// `<unknown>` until metrics arrive; `kubectl describe` shows its conditions.
#[test]
fn kubectl_autoscale_creates_an_autoscaler() {
    let skiff = Skiff::start_with(&["--simulated-nodes", "1", "--no-node"]);
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("web.yaml", &deployment("web", 1, "demo"));
    kubectl.ok(&["apply", "-f", &file]);
    let out = kubectl.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--cpu-percent=50",
        "--min=1",
        "--max=10",
    ]);
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );
    let table = kubectl.ok(&["get", "hpa", "web"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().map(cells),
        Some(vec![
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ])
    );
    let row = lines.next().map(cells).unwrap_or_default();
    assert_eq!(&row[..3], &["web", "Deployment/web", "cpu:"], "{table}");
    assert_eq!(row[3], "<unknown>/50%", "{table}");
    assert_eq!(&row[4..6], &["1", "10"], "{table}");
    // No usage is reported for the pod yet, so the controller says why it cannot scale.
    let reason = wait_for("the ScalingActive condition", DEADLINE, || {
        let hpa = json_of(&kubectl.ok(&["get", "hpa.v2.autoscaling", "web", "-o", "json"]));
        hpa.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ScalingActive")
            .and_then(|c| c["reason"].as_str().map(str::to_string))
    });
    assert!(
        ["FailedGetResourceMetric", "ValidMetricFound"].contains(&reason.as_str()),
        "unexpected ScalingActive reason {reason}"
    );
}

/// Scripted load on simulated nodes, against pods requesting 100m with a 50% target.
///
/// A rollout to a template whose pods never become ready stalls the 2-replica Deployment at
/// 2 old pods and 1 surge pod (maxSurge 1, maxUnavailable 0). 300m over those 3 pods (100%)
/// asks for 6, which the default scale-up policy (the larger of 4 pods or 100% per 15 s)
/// allows: 2→6. The Deployment controller spreads the new size proportionally over both
/// ReplicaSets, 6 + maxSurge 2 = 8 pods: old 2·8/3 ≈ 5, new 1·8/3 ≈ 3. Once the rollout is
/// undone, 400m over 6 pods (66%) asks for 8: 6→8, where 50m each is on target. When the load
/// falls to 144m, 18% asks for 3; the (shortened) scale-down stabilization window delays it,
/// then 100% per 15 s allows 8→3 at once, where 48m each is within the tolerance.
#[test]
fn scripted_load_scales_two_to_eight_to_three() {
    let skiff = Skiff::start_with(&[
        "--simulated-nodes",
        "2",
        "--no-node",
        "--horizontal-pod-autoscaler-sync-period",
        "1s",
        "--horizontal-pod-autoscaler-cpu-initialization-period",
        "1s",
        "--metric-resolution",
        "1",
        // Pods that never turn ready count with their usage instead of as unready.
        "--horizontal-pod-autoscaler-initial-readiness-delay",
        "0s",
    ]);
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("web.yaml", &deployment("web", 2, "demo"));
    kubectl.ok(&["apply", "-f", &file]);
    wait_for("2 available pods", DEADLINE, || {
        let d = json_of(&kubectl.ok(&["get", "deploy", "web", "-o", "json"]));
        (d["status"]["availableReplicas"] == 2).then_some(())
    });
    // A rollout that cannot finish: its pods never become ready.
    kubectl.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.skiff.dev/never-ready":"true"}}}}}"#,
    ]);
    wait_for(
        "the rollout to stall at 2 old pods and 1 new",
        DEADLINE,
        || {
            let sizes: Vec<i64> = replica_sets(&kubectl, "web").iter().map(|s| s.1).collect();
            (sizes == [2, 1]).then_some(())
        },
    );

    // Load the 3 pods before the autoscaler looks, so its first look sees all of it.
    wait_for(
        "kubectl top to show 100m on each of the 3 pods",
        DEADLINE,
        || {
            spread_load(&kubectl, "web", 300);
            let out = kubectl.run(&["top", "pods", "-l", "app=web", "--no-headers"]);
            let rows: Vec<Vec<&str>> = out.stdout.lines().map(cells).collect();
            (out.success() && rows.len() == 3 && rows.iter().all(|r| r.get(1) == Some(&"100m")))
                .then_some(())
        },
    );
    let hpa = skiff.write_file(
        "hpa.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 5
",
    );
    kubectl.ok(&["apply", "-f", &hpa]);
    let reach = |what: &str, total: i64, replicas: i64| {
        wait_for(what, Duration::from_secs(60), || {
            spread_load(&kubectl, "web", total);
            (spec_replicas(&kubectl, "web") == Some(replicas)).then_some(())
        })
    };
    reach("the scale-up during the rollout", 300, 6);
    assert_rescales(&kubectl, "web", &[6]);
    let scaled = wait_for("proportional scaling of both ReplicaSets", DEADLINE, || {
        let sets = replica_sets(&kubectl, "web");
        (sets.iter().map(|s| s.1).sum::<i64>() == 8).then_some(sets)
    });
    assert_eq!(
        scaled,
        vec![
            ("1".to_string(), 5, "6".to_string()),
            ("2".to_string(), 3, "6".to_string())
        ]
    );

    kubectl.ok(&["rollout", "undo", "deployment/web"]);
    wait_for(
        "the undone rollout to settle at 6 ready pods",
        DEADLINE,
        || {
            spread_load(&kubectl, "web", 300);
            let d = json_of(&kubectl.ok(&["get", "deploy", "web", "-o", "json"]));
            let status = &d["status"];
            (status["updatedReplicas"] == 6
                && status["replicas"] == 6
                && status["availableReplicas"] == 6)
                .then_some(())
        },
    );
    reach("the second scale-up", 400, 8);
    assert_rescales(&kubectl, "web", &[6, 8]);
    // Wait until every pod reports usage: on a scale-down, Kubernetes counts a pod without
    // figures at its full request, which would make the next step smaller.
    wait_for(
        "kubectl top to show 50m on each of the 8 pods",
        DEADLINE,
        || {
            spread_load(&kubectl, "web", 400);
            let out = kubectl.run(&["top", "pods", "-l", "app=web", "--no-headers"]);
            let rows: Vec<Vec<&str>> = out.stdout.lines().map(cells).collect();
            (out.success() && rows.len() == 8 && rows.iter().all(|r| r.get(1) == Some(&"50m")))
                .then_some(())
        },
    );

    reach("the scale-down", 144, 3);
    // On target now: the size holds while the load stays.
    let held = poll(Duration::from_secs(4), || {
        spread_load(&kubectl, "web", 144);
        (spec_replicas(&kubectl, "web") != Some(3)).then_some(())
    });
    assert!(
        held.is_none(),
        "the autoscaler left 3 replicas at 48% of request"
    );
    assert_rescales(&kubectl, "web", &[6, 8, 3]);
    let table = kubectl.ok(&["get", "hpa", "web"]);
    let row: Vec<String> = table
        .lines()
        .nth(1)
        .map(cells)
        .unwrap_or_default()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        row[2..4],
        ["cpu:".to_string(), "48%/50%".to_string()],
        "{table}"
    );
}

/// Real processes: demo servers requesting 100m, an autoscaler at 50%, and a bounded load
/// that keeps each pod burning CPU; the Deployment grows within its limits, and once the load
/// stops it shrinks back after the (shortened) stabilization window.
#[test]
fn cpu_burn_on_real_pods_scales_up_and_back() {
    let skiff = Skiff::start_with_images(
        &[
            "--horizontal-pod-autoscaler-sync-period",
            "1s",
            "--metric-resolution",
            "1",
        ],
        &[demo("1.0")],
    );
    let kubectl = skiff.kubectl();
    let file = skiff.write_file(
        "burner.yaml",
        &deployment("burner", 1, &format!("{DEMO}:1.0")),
    );
    kubectl.ok(&["apply", "-f", &file]);
    let hpa = skiff.write_file(
        "hpa.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burner
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: burner
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 10
",
    );
    kubectl.ok(&["apply", "-f", &hpa]);
    let pod_ips = || -> Vec<String> {
        items(&kubectl.json(&["get", "pods", "-l", "app=burner"]))
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter_map(|p| p.pointer("/status/podIP")?.as_str().map(str::to_string))
            .collect()
    };
    wait_for("the first pod to run", DEADLINE, || {
        (!pod_ips().is_empty()).then_some(())
    });

    // Bounded load: two clients per known pod, each request burning 400 ms of CPU.
    let running = Arc::new(AtomicBool::new(true));
    let targets = Arc::new(std::sync::Mutex::new(pod_ips()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let running = running.clone();
            let targets = targets.clone();
            thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let list = targets.lock().map(|t| t.clone()).unwrap_or_default();
                    for ip in list {
                        // Only the CPU it burns matters: a failed request is simply not load.
                        let _ = http_get(&ip, "/burn?ms=400", READ_TIMEOUT);
                    }
                }
            })
        })
        .collect();
    let grown = poll(Duration::from_secs(60), || {
        if let Ok(mut t) = targets.lock() {
            *t = pod_ips();
        }
        spec_replicas(&kubectl, "burner").filter(|r| *r > 1)
    });
    running.store(false, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    let grown = grown.unwrap_or_else(|| {
        panic!(
            "the load did not scale the Deployment up:\n{}",
            kubectl.ok(&["describe", "hpa", "burner"])
        )
    });
    assert!(grown <= 3, "scaled beyond maxReplicas: {grown}");

    wait_for(
        "the scale-down after the load stopped",
        Duration::from_secs(60),
        || (spec_replicas(&kubectl, "burner") == Some(1)).then_some(()),
    );
    // Events are recorded asynchronously; the last one reports the way back.
    let sizes = wait_for("the scale-down event", DEADLINE, || {
        let sizes = rescales(&kubectl, "burner");
        (sizes.last() == Some(&1)).then_some(sizes)
    });
    assert!(sizes.iter().all(|s| (1..=3).contains(s)), "{sizes:?}");
}
