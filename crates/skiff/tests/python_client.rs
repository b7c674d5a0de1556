//! The official Python client (`pip install kubernetes`) works against Skiff: its watch
//! deserializes every ReplicaSet event of a rollout, which needs the fields Kubernetes never
//! omits (a new ReplicaSet's `status.replicas: 0` above all).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::{Skiff, DEADLINE};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/watch_replica_sets.py"
);

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
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
        image: nginx:1.18
";

/// Fails the test unless `python3` can import the `kubernetes` package.
fn require_python_client() {
    let probe = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .unwrap_or_else(|e| panic!("this test needs python3 on the PATH: {e}"));
    assert!(
        probe.status.success(),
        "this test needs the Python `kubernetes` package (pip install kubernetes):\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

#[test]
fn python_client_watches_replica_sets_through_a_rollout() {
    require_python_client();
    let skiff = Skiff::start_with(&["--simulated-nodes", "2", "--no-node"]);
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("web.yaml", DEPLOYMENT);
    kubectl.ok(&["apply", "-f", &file]);
    kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let old = kubectl.ok(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert!(!old.is_empty(), "no ReplicaSet after the first rollout");

    let kubeconfig = skiff.kubeconfig();
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(&kubeconfig)
        .args(["default", "3", &old])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });

    let mut seen = Vec::new();
    let started = Instant::now();
    let wait_line = |wanted: &str, seen: &mut Vec<String>| loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                let found = line == wanted;
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    };

    let watching = wait_line("WATCHING", &mut seen);
    if watching {
        kubectl.ok(&["set", "image", "deployment/web", "web=nginx:1.19"]);
    }
    let done = watching && wait_line("DONE", &mut seen);
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().expect("python3 ends");
    let _ = reader.join();
    let stderr = errors.join().unwrap_or_default();
    assert!(
        done && status.success(),
        "the Python client's watch did not follow the rollout (exit {status}):\nstdout:\n{}\nstderr:\n{stderr}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("ADDED ") && !l.contains(&old)),
        "the new ReplicaSet's ADDED event never reached the client:\n{}",
        seen.join("\n")
    );
}
