//! `skiff up --datastore-endpoint` on a real etcd (Debian's `etcd-server`), driven by the real
//! `kubectl`: a Deployment rolls out, `kubectl get cs` names the store `etcd-0` as Kubernetes
//! does, and the objects are found again by a restarted server and by a server with a fresh data
//! directory, since the state lives in etcd and not in the data directory. With etcd down a
//! request fails with kube-apiserver's 504 `Timeout` within the store's timeout.
//!
//! Run with `cargo test -p skiff --test etcd_store`. Needs `kubectl` and `etcd` on the PATH.

mod support;

use skiff_store::test_etcd::TestEtcd;
use support::json::items;
use support::{assert_table, wait_for, Skiff, DEADLINE};

const DEPLOYMENT: &str = "apiVersion: apps/v1
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
        image: nginx:1.27
";

fn server_on(etcd: &TestEtcd) -> Skiff {
    Skiff::start_with(&[
        "--simulated-nodes",
        "1",
        "--no-node",
        "--no-proxy",
        "--datastore-endpoint",
        &etcd.endpoint(),
    ])
}

#[test]
fn a_deployment_rolls_out_on_etcd_and_outlives_the_server() {
    let etcd = TestEtcd::start();
    let mut skiff = server_on(&etcd);
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("web.yaml", DEPLOYMENT);
    assert_eq!(
        kubectl.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    let status = kubectl.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert_eq!(
        status.lines().last(),
        Some("deployment \"web\" successfully rolled out"),
        "rollout status printed:\n{status}"
    );

    let cs = kubectl.run(&["get", "cs"]);
    assert!(cs.success(), "kubectl get cs failed: {}", cs.stderr);
    assert_table(
        &cs.stdout,
        &[
            &["NAME", "STATUS", "MESSAGE", "ERROR"],
            &["scheduler", "Healthy", "ok"],
            &["controller-manager", "Healthy", "ok"],
            &["etcd-0", "Healthy", "ok"],
        ],
    );
    assert!(
        !skiff.data_dir().join("state.db").exists(),
        "with --datastore-endpoint nothing is stored in SQLite"
    );

    let uid_before = kubectl.ok(&["get", "deploy/web", "-o", "jsonpath={.metadata.uid}"]);
    skiff.restart();
    let kubectl = skiff.kubectl();
    let uid_after = kubectl.ok(&["get", "deploy/web", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        uid_after, uid_before,
        "the restarted server finds the same Deployment"
    );
    let pods = kubectl.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    assert_eq!(
        items(&pods).len(),
        3,
        "the Deployment's pods are still there"
    );

    // A server with a data directory of its own sees the same objects: they live in etcd.
    let front_proxy_ca = std::fs::read_to_string(skiff.data_dir().join("front-proxy-ca.crt"))
        .expect("the front-proxy CA");
    drop(skiff);
    let fresh = server_on(&etcd);
    let kubectl = fresh.kubectl();
    let uid_elsewhere = kubectl.ok(&["get", "deploy/web", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(uid_elsewhere, uid_before);
    // It presents the same front-proxy identity to aggregated servers.
    let authentication = kubectl.json(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
    ]);
    assert_eq!(
        authentication["data"]["requestheader-client-ca-file"], front_proxy_ca,
        "the requestheader CA is shared through the datastore"
    );
    wait_for(
        "the Deployment to report 3 available replicas",
        DEADLINE,
        || {
            let available = kubectl.ok(&[
                "get",
                "deploy/web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ]);
            (available == "3").then_some(())
        },
    );
}

#[test]
fn with_etcd_down_requests_time_out_as_kube_apiserver_answers_and_recover() {
    let mut etcd = TestEtcd::start();
    let skiff = server_on(&etcd);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "configmap", "before", "--from-literal=k=v"]);

    etcd.kill();
    let started = std::time::Instant::now();
    let out = kubectl.run(&["get", "configmap", "before", "-o", "name"]);
    let took = started.elapsed();
    assert!(!out.success(), "a read with etcd down must fail: {out:?}");
    // kube-apiserver's call waits for etcd until the request's deadline, and its timeout
    // filter answers 504 `Timeout`; Skiff's store gives up after its 10 s timeout.
    assert_eq!(
        out.stderr,
        "Error from server (Timeout): Timeout: request did not complete within the allotted timeout\n",
        "kubectl shows kube-apiserver's timeout"
    );
    assert!(
        took < std::time::Duration::from_secs(20),
        "the request took {took:?}: bounded by the store's 10 s timeout"
    );
    let answer = skiff.request(
        "GET",
        "/api/v1/namespaces/default/configmaps/before",
        Some(&token(&skiff)),
    );
    assert_eq!(answer.status, 504, "{}", answer.body);
    let status: serde_json::Value = serde_json::from_str(&answer.body).expect("a Status");
    assert_eq!(
        status,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": "Timeout: request did not complete within the allotted timeout",
            "reason": "Timeout", "details": {}, "code": 504})
    );

    etcd.restart();
    wait_for("reads to work again once etcd is back", DEADLINE, || {
        let out = kubectl.run(&["get", "configmap", "before", "-o", "name"]);
        out.success().then_some(out.stdout)
    });
    kubectl.ok(&["create", "configmap", "after", "--from-literal=k=v"]);
}

/// The admin token.
fn token(skiff: &Skiff) -> String {
    std::fs::read_to_string(skiff.data_dir().join("token"))
        .expect("the admin token")
        .trim()
        .to_string()
}

#[test]
fn skiff_up_fails_clearly_when_etcd_does_not_answer() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    drop(etcd);
    let data = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("up")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--no-node", "--no-proxy"])
        .args(["--datastore-endpoint", &endpoint])
        .env_remove("SKIFF_DATA_DIR")
        .env_remove("SKIFF_DATASTORE_ENDPOINT")
        .output()
        .expect("run skiff up");
    assert!(!output.status.success(), "skiff up must fail without etcd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the store at") && stderr.contains(&endpoint),
        "the error names the datastore: {stderr}"
    );
}
