//! Zero-downtime acceptance tests: a Deployment of the demo image behind a NodePort Service,
//! with a client sending HTTP requests through the node port, one new connection each, while
//! the Deployment is rolled out, restarted, rolled back and scaled. Not one request may fail,
//! and the answers must move from the old version to the new one.
//!
//! Run with `cargo test -p skiff --test service_traffic` (Linux, `kubectl` on the PATH). Uses
//! the real node, so pods are processes answering on their loopback pod IPs; the clients talk
//! to 127.0.0.1 only. One server runs the scenarios side by side, in namespaces of their own:
//! the quick demo server in `fast`, the one that takes 3 s to stop after SIGTERM in `slow`, and
//! a CloneSet updated in place in `inplace`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use support::images::{demo, DEMO};
use support::json::{items, json_of, str_at};
use support::manifests::in_place_web_clone_set;
use support::traffic::{answering_node_port, assert_no_failures, Client};
use support::{cells, wait_for, Kubectl, Outcome, Skiff, DEADLINE};

fn deployment(env: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {DEMO}:v1
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /readyz
            port: 80
          periodSeconds: 1
{env}"
    )
}

/// The environment block that makes the demo server keep serving 3 s after SIGTERM.
const SLOW_SHUTDOWN_ENV: &str = "        env:
        - name: DEMO_SHUTDOWN_DELAY
          value: 3s
";

/// kubectl in one scenario's namespace.
struct Scenario<'a> {
    skiff: &'a Skiff,
    kubectl: Kubectl,
    namespace: &'static str,
}

impl Scenario<'_> {
    fn args<'s>(&'s self, args: &[&'s str]) -> Vec<&'s str> {
        let mut all = args.to_vec();
        all.extend(["-n", self.namespace]);
        all
    }

    /// Runs kubectl in the namespace and returns its stdout; fails unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        self.kubectl.ok(&self.args(args))
    }

    fn run(&self, args: &[&str]) -> Outcome {
        self.kubectl.run(&self.args(args))
    }

    /// Waits for the Deployment's rollout to complete.
    fn rollout(&self) {
        self.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    }

    /// Creates the namespace, applies the Deployment, exposes it as in the issue and returns
    /// the node port address once the Service answers.
    fn serve_web(&self, manifest: &str) -> SocketAddr {
        self.apply_in_new_namespace(manifest);
        self.rollout();
        self.ok(&[
            "expose",
            "deployment",
            "web",
            "--type=NodePort",
            "--port=80",
            "--target-port=80",
        ]);
        self.answering_node_port()
    }

    /// Creates the scenario's namespace and applies `manifest` in it.
    fn apply_in_new_namespace(&self, manifest: &str) {
        self.kubectl.ok(&["create", "namespace", self.namespace]);
        let file = self
            .skiff
            .write_file(&format!("{}/web.yaml", self.namespace), manifest);
        self.ok(&["apply", "-f", &file]);
    }

    /// The node port address of Service `web`, once a request through it gets an answer.
    fn answering_node_port(&self) -> SocketAddr {
        answering_node_port(&self.kubectl, Some(self.namespace), DEADLINE)
    }

    /// Changes the image (or rolls back) from version `from` to `to` and checks that answers
    /// move: only the old version answers before, only the new one once the rollout is done.
    fn roll_to(&self, client: &Client, from: &str, to: &str, change: &[&str]) {
        let answers = client.answers_since(Instant::now(), 3);
        assert!(
            answers.iter().all(|a| a.version == from),
            "{}: before rolling to {to}: {answers:?}",
            self.namespace
        );
        self.ok(change);
        self.rollout();
        let answers = client.answers_since(Instant::now(), 20);
        assert!(
            answers.iter().all(|a| a.version == to),
            "{}: after rolling to {to}, every answer comes from it: {answers:?}",
            self.namespace
        );
    }

    /// A restart replaces every pod: none that answered before answers after.
    fn restart(&self, client: &Client) {
        let before = pods_answering(client, Instant::now(), 30);
        self.ok(&["rollout", "restart", "deployment/web"]);
        self.rollout();
        let after = pods_answering(client, Instant::now(), 30);
        assert!(
            before.is_disjoint(&after),
            "{}: after a restart only new pods answer: {before:?} then {after:?}",
            self.namespace
        );
    }

    /// Scales to `replicas` and waits until exactly as many pods exist, all ready.
    fn scale(&self, replicas: u32) {
        self.ok(&["scale", "deployment/web", &format!("--replicas={replicas}")]);
        self.rollout();
        wait_for(
            &format!("{} pods in {}", replicas, self.namespace),
            DEADLINE,
            || {
                let out = self.run(&["get", "pods", "-l", "app=web", "--no-headers"]);
                (out.success() && out.stdout.lines().count() == replicas as usize).then_some(())
            },
        );
    }

    fn set_strategy(&self, max_surge: u32, max_unavailable: u32) {
        let patch = format!(
            r#"{{"spec":{{"strategy":{{"rollingUpdate":{{"maxSurge":{max_surge},"maxUnavailable":{max_unavailable}}}}}}}}}"#
        );
        self.ok(&["patch", "deployment/web", "--type=merge", "-p", &patch]);
    }
}

/// The names of the pods that answered since `since` (at least `count` answers).
fn pods_answering(client: &Client, since: Instant, count: usize) -> BTreeSet<String> {
    client
        .answers_since(since, count)
        .into_iter()
        .map(|a| a.pod)
        .collect()
}

/// The quick demo server: rolled out, rolled back, restarted and scaled 3 -> 6 -> 2 with
/// maxUnavailable 1, then rolled out, rolled back and restarted with maxSurge 1 /
/// maxUnavailable 0.
fn fast(s: &Scenario) {
    let address = s.serve_web(&deployment(""));

    // `kubectl get svc,ep -o wide` print Kubernetes' columns, the node port as users expect it
    // and one address per ready pod.
    let table = s.ok(&["get", "svc", "web", "-o", "wide"]);
    let rows: Vec<Vec<&str>> = table.lines().map(cells).collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    assert_eq!(rows[1][1], "NodePort");
    assert_eq!(rows[1][4], format!("80:{}/TCP", address.port()));
    assert_eq!(rows[1][6], "app=web");
    let table = s.ok(&["get", "ep", "web", "-o", "wide"]);
    let rows: Vec<Vec<&str>> = table.lines().map(cells).collect();
    assert_eq!(rows[0], ["NAME", "ENDPOINTS", "AGE"]);
    assert_eq!(rows[1][1].split(',').count(), 3, "{table}");
    assert!(rows[1][1].split(',').all(|e| e.ends_with(":80")), "{table}");

    let client = Client::start(address);
    let image_v2 = format!("web={DEMO}:v2");
    let set_v2 = ["set", "image", "deployment/web", &image_v2];
    let undo = ["rollout", "undo", "deployment/web"];
    // A rollback returns to the revision before the last change, so it comes before the
    // restart (after one, it would return to the pre-restart pods' template).
    s.roll_to(&client, "v1", "v2", &set_v2);
    s.roll_to(&client, "v2", "v1", &undo);
    s.restart(&client);
    s.scale(6);
    s.scale(2);
    s.scale(3);

    s.set_strategy(1, 0);
    s.roll_to(&client, "v1", "v2", &set_v2);
    s.roll_to(&client, "v2", "v1", &undo);
    s.restart(&client);
    assert_no_failures(s.namespace, &client.finish());
}

/// Pods that keep serving 3 s after SIGTERM: rolled out and scaled with maxUnavailable 1, then
/// rolled back with maxSurge 1 / maxUnavailable 0.
fn slow(s: &Scenario) {
    let address = s.serve_web(&deployment(SLOW_SHUTDOWN_ENV));
    let client = Client::start(address);
    s.roll_to(
        &client,
        "v1",
        "v2",
        &["set", "image", "deployment/web", &format!("web={DEMO}:v2")],
    );
    s.scale(6);
    s.scale(2);
    s.scale(3);
    s.set_strategy(1, 0);
    s.roll_to(
        &client,
        "v2",
        "v1",
        &["set", "image", "deployment/web", &format!("web={DEMO}:v1")],
    );
    assert_no_failures(s.namespace, &client.finish());
}

/// Pod name to (uid, IP, restart count) for the CloneSet's pods.
fn clone_set_pods(s: &Scenario) -> BTreeMap<String, (String, String, u64)> {
    let list = json_of(&s.ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
    items(&list)
        .iter()
        .map(|pod| {
            let restarts = pod
                .pointer("/status/containerStatuses/0/restartCount")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            (
                str_at(pod, "/metadata/name"),
                (
                    str_at(pod, "/metadata/uid"),
                    str_at(pod, "/status/podIP"),
                    restarts,
                ),
            )
        })
        .collect()
}

/// Waits until the CloneSet has seen its latest spec and all `replicas` pods are updated and
/// ready.
fn clone_set_updated(s: &Scenario, replicas: u32) {
    let wanted = format!("{replicas}/{replicas}/{replicas}/true");
    wait_for(
        "the CloneSet's pods to be updated and ready",
        Duration::from_secs(90),
        || {
            let out = s.run(&[
            "get",
            "cloneset",
            "web",
            "-o",
            "jsonpath={.status.updatedReadyReplicas}/{.status.readyReplicas}/{.status.replicas}/{.status.observedGeneration}={.metadata.generation}",
        ]);
            let text = out.stdout.trim();
            let (counts, generations) = text.split_once('/').and_then(|(a, rest)| {
                rest.rsplit_once('/')
                    .map(|(b, gens)| (format!("{a}/{b}"), gens.to_string()))
            })?;
            let (observed, generation) = generations.split_once('=')?;
            let current = observed == generation && !observed.is_empty();
            (format!("{counts}/{current}") == wanted).then_some(())
        },
    );
}

/// In-place updates through a Service: the pods keep their names, UIDs and IPs, restart once,
/// answer with the new version, and not one request fails.
fn in_place(s: &Scenario) {
    s.apply_in_new_namespace(&in_place_web_clone_set(3));
    clone_set_updated(s, 3);
    let address = s.answering_node_port();
    let before = clone_set_pods(s);
    assert_eq!(before.len(), 3, "{before:?}");

    let client = Client::start(address);
    let answers = client.answers_since(Instant::now(), 3);
    assert!(answers.iter().all(|a| a.version == "v1"), "{answers:?}");
    s.ok(&[
        "patch",
        "cloneset/web",
        "--type=json",
        "-p",
        &format!(
            r#"[{{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"{DEMO}:v2"}}]"#
        ),
    ]);
    clone_set_updated(s, 3);
    // An in-place update takes a second or two: the client goes on long enough after it to
    // send the hundred requests a fair check needs, all answered by v2.
    let answers = client.answers_since(Instant::now(), 100);
    assert!(
        answers.iter().all(|a| a.version == "v2"),
        "after the in-place update every answer comes from v2: {answers:?}"
    );
    let after = clone_set_pods(s);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "an in-place update keeps the pods"
    );
    for (name, (uid, ip, restarts)) in &before {
        let (new_uid, new_ip, new_restarts) = &after[name];
        assert_eq!((uid, ip), (new_uid, new_ip), "{name} keeps its UID and IP");
        assert_eq!(*new_restarts, restarts + 1, "{name} restarted once");
    }
    assert_no_failures(s.namespace, &client.finish());
}

/// What one scenario does, given kubectl in its namespace.
type ScenarioBody = fn(&Scenario);

#[test]
fn rollouts_restarts_rollbacks_and_scaling_lose_no_request() {
    let skiff = Skiff::start_with_images(&[], &[demo("v1"), demo("v2")]);
    let scenarios: [(&'static str, ScenarioBody); 3] =
        [("fast", fast), ("slow", slow), ("inplace", in_place)];
    let failures: Vec<String> = thread::scope(|threads| {
        let running: Vec<_> = scenarios
            .iter()
            .map(|(namespace, body)| {
                let scenario = Scenario {
                    skiff: &skiff,
                    kubectl: skiff.kubectl(),
                    namespace,
                };
                threads.spawn(move || {
                    catch_unwind(AssertUnwindSafe(|| body(&scenario))).map_err(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".to_string());
                        format!("scenario {namespace}: {message}")
                    })
                })
            })
            .collect();
        running
            .into_iter()
            .filter_map(|t| match t.join() {
                Ok(Ok(())) => None,
                Ok(Err(message)) => Some(message),
                Err(_) => Some("a scenario thread died".to_string()),
            })
            .collect()
    });
    // On failure the harness prints the server's log as it stops.
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
