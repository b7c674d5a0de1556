//! `metrics.k8s.io` end to end: `kubectl top` against `skiff up`, with usage measured from real
//! processes on the real node and scripted through annotations on simulated nodes.
//!
//! Run with `cargo test -p skiff --test metrics` (Linux, `kubectl` on the PATH). Both servers
//! sample every second (`--metric-resolution 1`), so a pod shows in `kubectl top` about two
//! seconds after it starts running.

mod support;

use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::http::http_get;
use support::images::{demo, DEMO};
use support::{cells, Kubectl, Skiff};

/// The deadline for conditions that take a few seconds when all is well.
const SHORT: Duration = Duration::from_secs(60);

/// Millicores in a `kubectl top` CPU cell (`250m`, `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m
            .parse()
            .unwrap_or_else(|_| panic!("bad CPU cell {cell:?}")),
        None => {
            cell.parse::<u64>()
                .unwrap_or_else(|_| panic!("bad CPU cell {cell:?}"))
                * 1000
        }
    }
}

/// The rows `kubectl top ARGS --no-headers` prints once it succeeds with a row for which
/// `wanted` holds (polled); fails the test with the last output otherwise.
fn top_until(
    kubectl: &Kubectl,
    args: &[&str],
    what: &str,
    wanted: impl Fn(&[&str]) -> bool,
) -> String {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    all.push("--no-headers");
    let mut last = String::new();
    let found = support::poll(SHORT, || {
        let out = kubectl.run(&all);
        last = format!("{}{}", out.stdout, out.stderr);
        if !out.success() {
            thread::sleep(Duration::from_millis(250));
            return None;
        }
        let hit = out.stdout.lines().any(|line| wanted(&cells(line)));
        if hit {
            Some(out.stdout)
        } else {
            thread::sleep(Duration::from_millis(250));
            None
        }
    });
    found.unwrap_or_else(|| panic!("timed out waiting for {what}; `kubectl {all:?}` said:\n{last}"))
}

#[test]
fn real_pods_report_the_cpu_they_burn() {
    let skiff = Skiff::start_with_images(&["--metric-resolution", "1"], &[demo("v1")]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["run", "burner", &format!("--image={DEMO}:v1")]);
    let ip = support::wait_for("burner to run with an IP", SHORT, || {
        let pod = kubectl.json(&["get", "pod", "burner"]);
        let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
        let ip = pod.pointer("/status/podIP").and_then(Value::as_str)?;
        running.then(|| ip.to_string())
    });
    // Idle first: a demo server that only listens uses next to no CPU.
    top_until(
        &kubectl,
        &["pod", "burner"],
        "the idle pod's figures",
        |row| row.first() == Some(&"burner") && row.get(1).is_some_and(|c| millicores(c) < 100),
    );

    // Burn one CPU for 12 s in the background and watch `kubectl top` see it.
    let burn_ip = ip.clone();
    let burner = thread::spawn(move || {
        let answer = support::poll(Duration::from_secs(10), || {
            // The burn counts CPU time: on a machine shared with other work it takes longer than
            // 12 s of wall time, so the answer is awaited generously.
            http_get(&burn_ip, "/burn?ms=12000", Duration::from_secs(120))
                .ok()
                .map(|(status, _)| status)
        });
        assert_eq!(answer, Some(200), "the burn request failed");
    });
    let busy = top_until(
        &kubectl,
        &["pod", "burner"],
        "the burning pod's CPU",
        |row| {
            // Another tenant may share the machine: a third of a CPU proves the burn is measured.
            row.get(1).is_some_and(|c| millicores(c) >= 300)
        },
    );
    let row = busy.lines().next().map(cells).unwrap_or_default();
    assert!(row[2].ends_with("Mi") || row[2].ends_with("Ki"), "{busy}");

    let containers = kubectl.ok(&["top", "pod", "burner", "--containers", "--no-headers"]);
    let row = containers.lines().next().map(cells).unwrap_or_default();
    assert_eq!(row[..2], ["burner", "burner"], "{containers}");

    let nodes = top_until(&kubectl, &["node"], "the node's figures", |row| {
        row.get(1).is_some_and(|c| millicores(c) >= 300)
    });
    assert_eq!(nodes.lines().count(), 1, "{nodes}");

    burner.join().expect("the burn thread");
    top_until(
        &kubectl,
        &["pod", "burner"],
        "the pod to go idle again",
        |row| row.get(1).is_some_and(|c| millicores(c) < 100),
    );
}

#[test]
fn simulated_pods_report_their_annotations() {
    let skiff = Skiff::start_with(&[
        "--no-node",
        "--simulated-nodes",
        "2",
        "--metric-resolution",
        "1",
    ]);
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file(
        "sim.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: sim
  labels: {app: sim}
  annotations:
    sim.skiff.dev/cpu-usage: 250m
    sim.skiff.dev/memory-usage: 64Mi
spec:
  nodeName: sim-node-1
  containers:
  - {name: app, image: demo}
  - {name: sidecar, image: demo}
---
apiVersion: v1
kind: Pod
metadata:
  name: quiet
  namespace: kube-system
spec:
  nodeName: sim-node-2
  containers:
  - {name: app, image: demo}
"#,
    );
    kubectl.ok(&["apply", "-f", &manifest]);

    let top = top_until(&kubectl, &["pod", "sim"], "the scripted usage", |row| {
        row == ["sim", "250m", "64Mi"]
    });
    assert_eq!(top.lines().count(), 1, "{top}");
    let containers = kubectl.ok(&["top", "pod", "sim", "--containers", "--no-headers"]);
    let rows: Vec<Vec<&str>> = containers.lines().map(cells).collect();
    assert_eq!(
        rows,
        [
            ["sim", "app", "125m", "32Mi"],
            ["sim", "sidecar", "125m", "32Mi"]
        ],
        "{containers}"
    );
    let selected = kubectl.ok(&["top", "pods", "-l", "app=sim", "--no-headers"]);
    assert_eq!(selected.lines().count(), 1, "{selected}");

    // A changed annotation shows from the next sample on.
    kubectl.ok(&[
        "annotate",
        "pod",
        "sim",
        "sim.skiff.dev/cpu-usage=1500m",
        "--overwrite",
    ]);
    top_until(&kubectl, &["pod", "sim"], "the changed usage", |row| {
        row == ["sim", "1500m", "64Mi"]
    });

    // Every namespace; a pod without annotations uses nothing but is reported.
    let all = top_until(&kubectl, &["pods", "-A"], "both pods", |row| {
        row.first() == Some(&"kube-system") && row.get(1) == Some(&"quiet")
    });
    let quiet: Vec<&str> = all
        .lines()
        .map(cells)
        .find(|r| r.get(1) == Some(&"quiet"))
        .unwrap_or_default();
    assert_eq!(quiet, ["kube-system", "quiet", "0m", "0Mi"], "{all}");

    let nodes = top_until(&kubectl, &["nodes"], "node usage", |row| {
        row.first() == Some(&"sim-node-1") && row.get(1) == Some(&"1500m")
    });
    let rows: Vec<Vec<&str>> = nodes.lines().map(cells).collect();
    assert_eq!(rows.len(), 2, "{nodes}");
    // 1500m of the node's 4 CPUs; 64Mi of 8Gi rounds to 0%.
    assert_eq!(
        rows[0],
        ["sim-node-1", "1500m", "37%", "64Mi", "0%"],
        "{nodes}"
    );
    assert_eq!(rows[1][..2], ["sim-node-2", "0m"], "{nodes}");

    let missing = kubectl.fails(&["top", "pod", "nope"]);
    assert!(
        missing.contains("podmetrics.metrics.k8s.io \"nope\" not found"),
        "{missing}"
    );
    let raw = kubectl.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/sim",
    ]);
    let object: Value = serde_json::from_str(&raw).expect("PodMetrics JSON");
    assert_eq!(object["kind"], "PodMetrics");
    assert_eq!(object["metadata"]["labels"]["app"], "sim");
    // About the one-second resolution, written as Go writes durations ("1.000213s" or
    // "999.19ms": samples are taken on a timer, not on the exact second).
    let window = object["window"].as_str().unwrap_or_default();
    let seconds = match window.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().map(|ms| ms / 1000.0),
        None => window.trim_end_matches('s').parse::<f64>(),
    };
    assert!(
        seconds.is_ok_and(|s| (0.5..3.0).contains(&s)),
        "window {window:?}"
    );
    assert_eq!(object["containers"][0]["usage"]["cpu"], "750m");
}
