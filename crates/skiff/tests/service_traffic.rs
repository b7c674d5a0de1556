//! Zero-downtime acceptance tests: a Deployment of the demo image behind a NodePort Service,
//! with a client sending HTTP requests through the node port, one new connection each, while
//! the Deployment is rolled out, restarted, rolled back and scaled. Not one request may fail,
//! and the answers must move from the old version to the new one.
//!
//! Run with `cargo test -p skiff --test service_traffic` (Linux, `kubectl` on the PATH). Uses
//! the real node, so pods are processes answering on their loopback pod IPs; the client talks to
//! 127.0.0.1 only. The two tests run side by side, each on its own server.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{cells, wait_for, Kubectl, Skiff, DEADLINE};

/// The most requests the client sends, and the longest it runs: the loop is bounded even if
/// the test body hangs.
const MAX_REQUESTS: usize = 40_000;
const MAX_CLIENT_TIME: Duration = Duration::from_secs(150);
/// The pause between two requests: about 200 requests a second, enough to hit every window of
/// a rollout without starving the server on a small machine.
const REQUEST_PACE: Duration = Duration::from_millis(5);
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one request got.
#[derive(Clone, Debug)]
struct Sample {
    started: Instant,
    outcome: Result<Answer, String>,
}

/// The demo server's answer: `version=<tag> pod=<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    version: String,
    pod: String,
}

/// One GET / through `address` on a new connection.
fn request(address: SocketAddr) -> Result<Answer, String> {
    let mut stream = TcpStream::connect_timeout(&address, REQUEST_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e} (after {response:?})"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete response {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {head:?}"));
    }
    let mut version = None;
    let mut pod = None;
    for field in body.split_whitespace() {
        if let Some(v) = field.strip_prefix("version=") {
            version = Some(v.to_string());
        } else if let Some(p) = field.strip_prefix("pod=") {
            pod = Some(p.to_string());
        }
    }
    match (version, pod) {
        (Some(version), Some(pod)) => Ok(Answer { version, pod }),
        _ => Err(format!("unexpected body {body:?}")),
    }
}

/// A client thread sending requests until stopped (or its bounds run out).
struct Client {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Client {
    fn start(address: SocketAddr) -> Client {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let samples = samples.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let begun = Instant::now();
                for _ in 0..MAX_REQUESTS {
                    if stop.load(Ordering::SeqCst) || begun.elapsed() > MAX_CLIENT_TIME {
                        break;
                    }
                    let started = Instant::now();
                    let outcome = request(address);
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sample { started, outcome });
                    thread::sleep(REQUEST_PACE);
                }
            })
        };
        Client {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The answers to requests started at or after `since`, once at least `count` exist.
    fn answers_since(&self, since: Instant, count: usize) -> Vec<Answer> {
        wait_for(
            &format!("{count} answers after a point in time"),
            DEADLINE,
            || {
                let answers: Vec<Answer> = self
                    .samples()
                    .into_iter()
                    .filter(|s| s.started >= since)
                    .filter_map(|s| s.outcome.ok())
                    .collect();
                (answers.len() >= count).then_some(answers)
            },
        )
    }

    /// Stops the client and returns every sample.
    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.samples()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn deployment(max_surge: u32, max_unavailable: u32, env: &str) -> String {
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
      maxSurge: {max_surge}
      maxUnavailable: {max_unavailable}
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
        image: skiff/demo:v1
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

/// Starts a server with its real node, applies the Deployment, exposes it as in the issue and
/// returns the server, kubectl and the node port address once the Service answers.
fn serve_web(manifest: &str) -> (Skiff, Kubectl, SocketAddr) {
    let skiff = Skiff::start_with(&[]);
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("web.yaml", manifest);
    kubectl.ok(&["apply", "-f", &file]);
    rollout(&kubectl);
    kubectl.ok(&[
        "expose",
        "deployment",
        "web",
        "--type=NodePort",
        "--port=80",
        "--target-port=80",
    ]);
    let node_port = kubectl.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let node_port: u16 = node_port
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("node port {node_port:?}: {e}"));
    let address = SocketAddr::from(([127, 0, 0, 1], node_port));
    wait_for("the node port to answer", DEADLINE, || {
        request(address).ok()
    });
    (skiff, kubectl, address)
}

/// Waits for the Deployment's rollout to complete.
fn rollout(kubectl: &Kubectl) {
    kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
}

/// The names of the pods that answered since `since` (at least `count` answers).
fn pods_answering(client: &Client, since: Instant, count: usize) -> BTreeSet<String> {
    client
        .answers_since(since, count)
        .into_iter()
        .map(|a| a.pod)
        .collect()
}

/// Changes the image to `version` and checks that answers move from the old version to it:
/// the old one answers before, only the new one once the rollout is complete.
fn roll_to(kubectl: &Kubectl, client: &Client, from: &str, to: &str, change: &[&str]) {
    let before = Instant::now();
    let answers = client.answers_since(before, 3);
    assert!(
        answers.iter().all(|a| a.version == from),
        "before rolling to {to}: {answers:?}"
    );
    kubectl.ok(change);
    rollout(kubectl);
    let after = Instant::now();
    let answers = client.answers_since(after, 20);
    assert!(
        answers.iter().all(|a| a.version == to),
        "after rolling to {to}, every answer comes from it: {answers:?}"
    );
}

/// Fails the test with every failed request, if there is any.
fn assert_no_failures(samples: &[Sample]) {
    let failures: Vec<String> = samples
        .iter()
        .filter_map(|s| s.outcome.as_ref().err().cloned())
        .collect();
    assert!(
        samples.len() > 100,
        "the client sent only {} requests",
        samples.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first ones: {:?}",
        failures.len(),
        samples.len(),
        &failures[..failures.len().min(10)]
    );
}

/// Scales to `replicas` and waits until as many pods are ready and no other is left.
fn scale(kubectl: &Kubectl, replicas: u32) {
    kubectl.ok(&["scale", "deployment/web", &format!("--replicas={replicas}")]);
    rollout(kubectl);
    wait_for(&format!("{replicas} pods"), DEADLINE, || {
        let out = kubectl.ok(&["get", "pods", "-l", "app=web", "--no-headers"]);
        (out.lines().count() == replicas as usize).then_some(())
    });
}

#[test]
fn rollouts_restarts_rollbacks_and_scaling_lose_no_request() {
    let (_skiff, kubectl, address) = serve_web(&deployment(0, 1, ""));

    // `kubectl get svc -o wide` prints Kubernetes' columns and the node port as a user expects.
    let table = kubectl.ok(&["get", "svc", "web", "-o", "wide"]);
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
    let node_port = address.port();
    assert_eq!(rows[1][1], "NodePort");
    assert_eq!(rows[1][4], format!("80:{node_port}/TCP"));
    assert_eq!(rows[1][6], "app=web");

    let client = Client::start(address);

    // maxSurge 0, maxUnavailable 1.
    roll_to(
        &kubectl,
        &client,
        "v1",
        "v2",
        &["set", "image", "deployment/web", "web=skiff/demo:v2"],
    );
    let before_restart = pods_answering(&client, Instant::now(), 30);
    kubectl.ok(&["rollout", "restart", "deployment/web"]);
    rollout(&kubectl);
    let after_restart = pods_answering(&client, Instant::now(), 30);
    assert!(
        before_restart.is_disjoint(&after_restart),
        "after a restart only new pods answer: {before_restart:?} then {after_restart:?}"
    );
    roll_to(
        &kubectl,
        &client,
        "v2",
        "v1",
        &["rollout", "undo", "deployment/web"],
    );
    scale(&kubectl, 6);
    scale(&kubectl, 2);
    scale(&kubectl, 3);

    // maxSurge 1, maxUnavailable 0.
    kubectl.ok(&[
        "patch",
        "deployment/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#,
    ]);
    roll_to(
        &kubectl,
        &client,
        "v1",
        "v2",
        &["set", "image", "deployment/web", "web=skiff/demo:v2"],
    );
    kubectl.ok(&["rollout", "restart", "deployment/web"]);
    rollout(&kubectl);
    roll_to(
        &kubectl,
        &client,
        "v2",
        "v1",
        &["rollout", "undo", "deployment/web"],
    );

    assert_no_failures(&client.finish());
}

#[test]
fn pods_that_take_three_seconds_to_stop_lose_no_request() {
    let (_skiff, kubectl, address) = serve_web(&deployment(0, 1, SLOW_SHUTDOWN_ENV));
    let client = Client::start(address);
    roll_to(
        &kubectl,
        &client,
        "v1",
        "v2",
        &["set", "image", "deployment/web", "web=skiff/demo:v2"],
    );
    scale(&kubectl, 6);
    scale(&kubectl, 2);
    kubectl.ok(&[
        "patch",
        "deployment/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3,"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#,
    ]);
    rollout(&kubectl);
    roll_to(
        &kubectl,
        &client,
        "v2",
        "v1",
        &["set", "image", "deployment/web", "web=skiff/demo:v1"],
    );
    assert_no_failures(&client.finish());
}
