//! Three `skiff up` servers on a three-member etcd cluster (Debian's `etcd-server`, every
//! member and server on loopback free ports in temporary directories), driven by the real
//! `kubectl`: the `kubernetes` Service lists every live server; the elected leader is killed
//! (SIGKILL) in the middle of a 30-replica rollout and another server takes over, finishing the
//! rollout with Kubernetes' exact final counts, with no acknowledged write lost; then etcd
//! members die one by one: writes go on with one member down, fail with a 5xx Status within the
//! request timeout when quorum is lost, and resume when a member returns.
//!
//! Run with `cargo test -p skiff --test ha_cluster`. Needs `kubectl` and `etcd` on the PATH.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_client::{Client, RemoteClient, Scope};
use skiff_store::test_etcd::TestEtcdCluster;
use support::json::{items, str_at};
use support::{wait_for, wait_for_every, Kubectl, Skiff, DEADLINE, ELECTION_FLAGS};

const REPLICAS: usize = 30;

/// A 30-replica Deployment whose pods count as available 3 s after they are ready, so a
/// rollout lasts long enough to kill the leader in the middle of it.
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 30
  minReadySeconds: 3
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

const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// A server on every member of `etcd`, running `simulated_nodes` simulated nodes.
fn server_on(etcd: &TestEtcdCluster, simulated_nodes: &str) -> Skiff {
    let endpoints = etcd.endpoints();
    let mut args = vec![
        "--no-node",
        "--no-proxy",
        "--datastore-endpoint",
        &endpoints,
        "--simulated-nodes",
        simulated_nodes,
    ];
    args.extend(ELECTION_FLAGS);
    Skiff::start_with(&args)
}

fn holder(kubectl: &Kubectl, lease: &str) -> String {
    kubectl.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        lease,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

/// The server's URL as its kubeconfig names it, `https://127.0.0.1:PORT`.
fn server_url(kubectl: &Kubectl) -> String {
    kubectl.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
}

/// `ip:port` of every address the `kubernetes` Endpoints list, sorted.
fn kubernetes_endpoints(kubectl: &Kubectl) -> BTreeSet<String> {
    let endpoints = kubectl.json(&["get", "endpoints", "kubernetes", "-o", "json"]);
    let mut listed = BTreeSet::new();
    for subset in endpoints["subsets"].as_array().cloned().unwrap_or_default() {
        let ports = subset["ports"].as_array().cloned().unwrap_or_default();
        for address in subset["addresses"].as_array().cloned().unwrap_or_default() {
            for port in &ports {
                listed.insert(format!("{}:{}", str_at(&address, "/ip"), port["port"]));
            }
        }
    }
    listed
}

/// `ip:port` of every ready endpoint in the `kubernetes` EndpointSlices, sorted.
fn kubernetes_slice_endpoints(kubectl: &Kubectl) -> BTreeSet<String> {
    let slices = kubectl.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=kubernetes",
        "-o",
        "json",
    ]);
    let mut listed = BTreeSet::new();
    for slice in items(&slices) {
        let ports = slice["ports"].as_array().cloned().unwrap_or_default();
        for endpoint in slice["endpoints"].as_array().cloned().unwrap_or_default() {
            assert_eq!(endpoint["conditions"]["ready"], Value::Bool(true));
            for address in endpoint["addresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                for port in &ports {
                    listed.insert(format!(
                        "{}:{}",
                        address.as_str().unwrap_or(""),
                        port["port"]
                    ));
                }
            }
        }
    }
    listed
}

/// Reads the `default` Namespace through a `RemoteClient` made from `kubeconfig`, returning
/// how long the call took.
fn read_through_client(runtime: &tokio::runtime::Runtime, client: &RemoteClient) -> Duration {
    runtime.block_on(async {
        let namespaces = Scope {
            resource: &skiff_api::kinds::namespace::V1,
            namespace: None,
        };
        let started = Instant::now();
        let namespace = client
            .get(namespaces, "default")
            .await
            .unwrap_or_else(|e| panic!("reading through the failover client: {e}"));
        assert_eq!(str_at(&namespace, "/metadata/name"), "default");
        started.elapsed()
    })
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("https://").to_string()
}

/// Creates ConfigMaps `<prefix>-<n>` through `kubectl` until `stop` is set (at most `limit`),
/// returning the names whose creation was acknowledged.
fn write_config_maps(
    kubectl: Kubectl,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    limit: usize,
) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for n in 0..limit {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let name = format!("{prefix}-{n}");
            let out = kubectl.run(&[
                "create",
                "configmap",
                &name,
                "--from-literal=n=1",
                "--request-timeout=20s",
            ]);
            if out.success() {
                acknowledged.push(name);
            }
        }
        acknowledged
    })
}

fn config_map_names(kubectl: &Kubectl) -> BTreeSet<String> {
    let list = kubectl.json(&["get", "configmaps", "-o", "json"]);
    items(&list)
        .iter()
        .map(|cm| str_at(cm, "/metadata/name"))
        .collect()
}

fn number(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Creates one ConfigMap through the server's HTTPS API with its admin token, returning the
/// status code, the body and how long it took.
fn raw_create(server: &Skiff, name: &str) -> (u16, Value, Duration) {
    let token = std::fs::read_to_string(server.data_dir().join("token")).expect("admin token");
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"k":"v"}}}}"#
    );
    let started = Instant::now();
    let response = server.request_with_body(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(token.trim()),
        Some(("application/json", body.as_bytes())),
    );
    let took = started.elapsed();
    let parsed = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, parsed, took)
}

#[test]
fn three_servers_on_three_etcd_members_survive_a_dead_leader_and_a_lost_member() {
    let mut etcd = TestEtcdCluster::start(3);
    // A starts first and wins the elections; C runs the simulated nodes, so pods keep running
    // when A dies.
    let mut a = server_on(&etcd, "0");
    let a_kubectl = a.kubectl();
    let a_leader = wait_for("A to hold the controller manager's Lease", DEADLINE, || {
        let identity = holder(&a_kubectl, CONTROLLER_MANAGER);
        (!identity.is_empty()).then_some(identity)
    });
    let b = server_on(&etcd, "0");
    let c = server_on(&etcd, "2");
    let (b_kubectl, c_kubectl) = (b.kubectl(), c.kubectl());
    let urls: Vec<String> = [&a_kubectl, &b_kubectl, &c_kubectl]
        .iter()
        .map(|k| server_url(k))
        .collect();
    let all: BTreeSet<String> = urls.iter().map(|u| host_port(u)).collect();
    assert_eq!(
        all.len(),
        3,
        "each server listens on its own port: {urls:?}"
    );

    // Every server holds an identity Lease, and the kubernetes Service lists all three.
    let identities = c_kubectl.json(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "-l",
        "apiserver.kubernetes.io/identity=kube-apiserver",
        "-o",
        "json",
    ]);
    let identities = items(&identities);
    assert_eq!(identities.len(), 3, "three identity Leases: {identities:?}");
    for lease in &identities {
        let name = str_at(lease, "/metadata/name");
        assert!(name.starts_with("apiserver-"), "{name}");
        assert!(
            str_at(lease, "/spec/holderIdentity").starts_with(&format!("{name}_")),
            "{lease}"
        );
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 3600);
    }
    wait_for(
        "the kubernetes Endpoints to list all three servers",
        DEADLINE,
        || (kubernetes_endpoints(&b_kubectl) == all).then_some(()),
    );
    assert_eq!(kubernetes_slice_endpoints(&b_kubectl), all);

    // A kubeconfig naming all three servers, A first: kubectl uses A; Skiff's client fails
    // over along the list.
    let (made, failover_config, stderr) = support::cli::skiff(
        &c.data_dir(),
        &[
            "kubeconfig",
            "--user",
            "failover-admin",
            "--group",
            "system:masters",
            "--server",
            &urls[0],
            "--server",
            &urls[1],
            "--server",
            &urls[2],
        ],
    );
    assert!(made, "skiff kubeconfig failed: {stderr}");
    let failover_path = c.file_path(&c.write_file("failover.kubeconfig", &failover_config));
    let failover_kubectl = c_kubectl.with_kubeconfig(&failover_path);
    assert_eq!(
        failover_kubectl.ok(&["get", "namespace", "default", "-o", "name"]),
        "namespace/default\n",
        "kubectl reads a kubeconfig with the servers extension"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failover_client = RemoteClient::from_kubeconfig(&failover_path).expect("a client");
    read_through_client(&runtime, &failover_client);

    // The Deployment runs 30 pods, then its template changes: a rollout starts.
    let manifest = b.write_file("web.yaml", DEPLOYMENT);
    assert_eq!(
        b_kubectl.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    wait_for_every(
        "30 available replicas",
        DEADLINE * 2,
        Duration::from_millis(500),
        || {
            let deploy = b_kubectl.json(&["get", "deploy/web", "-o", "json"]);
            (number(&deploy, "/status/availableReplicas") == REPLICAS as i64).then_some(())
        },
    );
    b_kubectl.ok(&["set", "image", "deploy/web", "web=nginx:1.28"]);

    // ConfigMaps are written through A and through B while A dies.
    let stop = Arc::new(AtomicBool::new(false));
    let through_a = write_config_maps(a_kubectl.clone(), "via-a", stop.clone(), 400);
    let through_b = write_config_maps(b_kubectl.clone(), "via-b", stop.clone(), 400);

    // Mid-rollout: some pods updated, not all.
    wait_for_every(
        "the rollout to be under way",
        DEADLINE,
        Duration::from_millis(200),
        || {
            let deploy = b_kubectl.json(&["get", "deploy/web", "-o", "json"]);
            let updated = number(&deploy, "/status/updatedReplicas");
            (updated > 0 && updated < REPLICAS as i64).then_some(())
        },
    );
    let killed_at = Instant::now();
    a.kill();
    let new_leader = wait_for_every(
        "another server to take the controller manager's Lease",
        DEADLINE,
        Duration::from_millis(200),
        || {
            let identity = holder(&b_kubectl, CONTROLLER_MANAGER);
            (!identity.is_empty() && identity != a_leader).then_some(identity)
        },
    );
    let takeover = killed_at.elapsed();
    eprintln!("the controller manager's Lease changed hands {takeover:?} after the leader died");
    assert!(
        takeover < Duration::from_secs(20),
        "the new leader {new_leader} took over {takeover:?} after the kill"
    );
    stop.store(true, Ordering::SeqCst);

    // The client's connection to A is gone: its next call fails over to B.
    let failover = read_through_client(&runtime, &failover_client);
    eprintln!("the client's first call after A died took {failover:?}");
    assert!(
        failover < Duration::from_secs(5),
        "failing over from a refused server took {failover:?}"
    );
    let next = read_through_client(&runtime, &failover_client);
    eprintln!("its next call took {next:?}");
    let kubectl_on_a = failover_kubectl.run(&["get", "namespace", "default"]);
    assert!(
        !kubectl_on_a.success(),
        "kubectl reads only `server`, the dead A, and must fail: {kubectl_on_a:?}"
    );

    let acknowledged_a = through_a.join().expect("the writer through A");
    let acknowledged_b = through_b.join().expect("the writer through B");
    assert!(
        !acknowledged_b.is_empty(),
        "the writer through B had acknowledged writes"
    );

    // The rollout completes with Kubernetes' final counts.
    let status = b_kubectl.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert_eq!(
        status.lines().last(),
        Some("deployment \"web\" successfully rolled out"),
        "rollout status printed:\n{status}"
    );
    let deploy = wait_for_every(
        "the Deployment's final counts",
        DEADLINE,
        Duration::from_millis(500),
        || {
            let deploy = c_kubectl.json(&["get", "deploy/web", "-o", "json"]);
            let counts = [
                "/status/replicas",
                "/status/updatedReplicas",
                "/status/readyReplicas",
                "/status/availableReplicas",
            ]
            .map(|p| number(&deploy, p));
            (counts == [REPLICAS as i64; 4]).then_some(deploy)
        },
    );
    assert_eq!(
        number(&deploy, "/status/unavailableReplicas"),
        0,
        "{deploy}"
    );
    let sets = c_kubectl.json(&["get", "replicasets", "-l", "app=web", "-o", "json"]);
    let mut by_image: Vec<(String, i64, i64)> = items(&sets)
        .iter()
        .map(|rs| {
            (
                str_at(rs, "/spec/template/spec/containers/0/image"),
                number(rs, "/spec/replicas"),
                number(rs, "/status/replicas"),
            )
        })
        .collect();
    by_image.sort();
    assert_eq!(
        by_image,
        vec![
            ("nginx:1.27".to_string(), 0, 0),
            ("nginx:1.28".to_string(), REPLICAS as i64, REPLICAS as i64),
        ],
        "one new ReplicaSet at 30, the old one at 0"
    );

    // kubectl works against both survivors, and every acknowledged write is there.
    for kubectl in [&b_kubectl, &c_kubectl] {
        assert_eq!(
            kubectl.ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]),
            "30"
        );
        let names = config_map_names(kubectl);
        for name in acknowledged_a.iter().chain(&acknowledged_b) {
            assert!(
                names.contains(name),
                "acknowledged ConfigMap {name} is lost"
            );
        }
    }
    eprintln!(
        "{} writes through A and {} through B acknowledged around the kill",
        acknowledged_a.len(),
        acknowledged_b.len()
    );

    // A's identity lapses: the kubernetes Service lists the two survivors only.
    let survivors: BTreeSet<String> = urls[1..].iter().map(|u| host_port(u)).collect();
    wait_for(
        "the dead server to leave the kubernetes Endpoints",
        DEADLINE,
        || {
            (kubernetes_endpoints(&c_kubectl) == survivors
                && kubernetes_slice_endpoints(&c_kubectl) == survivors)
                .then_some(())
        },
    );

    // One etcd member dies: writes go on.
    etcd.kill(0);
    for n in 0..5 {
        let (code, body, _) = raw_create(&b, &format!("one-member-down-{n}"));
        assert_eq!(code, 201, "a write with one member down: {body}");
    }

    // A second dies: quorum is lost, and a write fails with a 5xx Status in bounded time.
    etcd.kill(1);
    let (code, body, took) = raw_create(&b, "no-quorum");
    eprintln!("a write without quorum answered {code} after {took:?}: {body}");
    // As kube-apiserver: its timeout filter's 504 when etcd does not answer, or a 500 with
    // etcd's own refusal (`etcdserver: request timed out`).
    let timed_out = code == 504
        && body["reason"] == "Timeout"
        && body["message"] == "Timeout: request did not complete within the allotted timeout";
    let refused_by_etcd = code == 500
        && body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("etcdserver: "));
    assert!(timed_out || refused_by_etcd, "{code}: {body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        took < Duration::from_secs(20),
        "the write took {took:?}: the request timeout is 10 s"
    );

    // A member returns: writes resume.
    etcd.restart(1);
    let resumed_at = Instant::now();
    wait_for("writes to resume once quorum is back", DEADLINE, || {
        let (code, _, _) = raw_create(&b, "quorum-back");
        (code == 201 || code == 409).then_some(())
    });
    eprintln!(
        "writes resumed {:?} after the member returned",
        resumed_at.elapsed()
    );
    assert_eq!(
        c_kubectl.ok(&["get", "configmap", "quorum-back", "-o", "name"]),
        "configmap/quorum-back\n"
    );
}
