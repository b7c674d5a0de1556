//! The official Python `kubernetes` client inside a pod on the real node under
//! `skiff up --container-runtime oci`: with `config.load_incluster_config()` (the mounted token
//! and `ca.crt`, `KUBERNETES_SERVICE_HOST`/`_PORT`, TLS verified against that CA through the
//! `kubernetes` Service's cluster IP) it lists the pods of its namespace when its
//! ServiceAccount is bound to `view`, and gets Kubernetes' 403 when it is not.
//!
//! Run with `cargo test -p skiff --test in_cluster_python` as root (network namespaces, veths,
//! routes, a dummy interface and `nft` need it), with `kubectl`, `ip` and `nft` on the PATH,
//! and Debian's `python3` with PyPI's `kubernetes` installed: the test image is built from
//! them.
//!
//! Every range comes from 198.18.0.0/15, picked free on the host, and the `unreachable` guard
//! routes are checked before any pod runs. After the server stops, the test checks that the
//! bridge, the cluster IP interface and the routes are gone.

mod support;

use std::time::Duration;

use support::host::host;
use support::json::{json_of, str_at};
use support::oci::{assert_root, leftovers, TestNetwork};
use support::{wait_for_every, Skiff};

/// How long a pod may take to start, import the client and finish.
const SETTLE: Duration = Duration::from_secs(180);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(500);

/// What each pod runs: the in-cluster configuration, then a listing of its own namespace's
/// pods; prints whether TLS is verified and with which CA, then the pod names or the
/// refusal's status and message.
const SCRIPT: &str = "import json
from kubernetes import client, config
config.load_incluster_config()
settings = client.Configuration.get_default_copy()
print('verify', settings.verify_ssl, settings.ssl_ca_cert, settings.host)
namespace = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()
try:
    pods = client.CoreV1Api().list_namespaced_pod(namespace)
    print('pods', ' '.join(sorted(p.metadata.name for p in pods.items)))
except client.ApiException as e:
    print('status', e.status)
    print('message', json.loads(e.body)['message'])
";

/// A ServiceAccount and a pod running [`SCRIPT`] under it, in namespace `py`.
fn client_pod(name: &str) -> String {
    let script: String = SCRIPT
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    format!(
        "---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
  namespace: py
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: py
spec:
  serviceAccountName: {name}
  restartPolicy: Never
  containers:
  - name: client
    image: {image}
    command:
    - python3
    - -c
    - |
{script}",
        image = support::images::PYTHON
    )
}

/// The log of pod `name` once it has succeeded; fails with its state if it failed.
fn log_when_done(skiff: &Skiff, name: &str) -> String {
    let kubectl = skiff.kubectl();
    wait_for_every(&format!("pod {name} to finish"), SETTLE, POLL, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", name, "-n", "py", "-o", "json"]));
        match str_at(&pod, "/status/phase").as_str() {
            "Succeeded" => Some(()),
            "Failed" => panic!(
                "pod {name} failed: {}\nlog:\n{}",
                pod["status"],
                kubectl.run(&["logs", name, "-n", "py"]).stdout
            ),
            _ => None,
        }
    });
    kubectl.ok(&["logs", name, "-n", "py"])
}

#[test]
fn the_python_client_in_a_pod_lists_pods_with_view_and_gets_kubernetes_403_without() {
    assert_root();
    let network = TestNetwork::next("p");
    let mut skiff = network.start_skiff(
        &network.flags_with_gateway_node_ip(),
        &[],
        &[support::images::python()],
        SETTLE,
    );
    let kubectl = skiff.kubectl();

    let api_ip = network.service_ip(1).to_string();
    let kubernetes = json_of(&kubectl.ok(&["get", "service", "kubernetes", "-o", "json"]));
    assert_eq!(str_at(&kubernetes, "/spec/clusterIP"), api_ip);

    kubectl.ok(&["create", "namespace", "py"]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "reader-view",
        "-n",
        "py",
        "--clusterrole=view",
        "--serviceaccount=py:reader",
    ]);
    let manifest = format!("{}{}", client_pod("reader"), client_pod("stranger"));
    let path = skiff.write_file("clients.yaml", &manifest);
    kubectl.ok(&["apply", "-f", &path]);

    let verified = format!(
        "verify True /var/run/secrets/kubernetes.io/serviceaccount/ca.crt https://{api_ip}:443"
    );
    let reader = log_when_done(&skiff, "reader");
    assert_eq!(
        reader,
        format!("{verified}\npods reader stranger\n"),
        "the reader's log"
    );
    let stranger = log_when_done(&skiff, "stranger");
    assert_eq!(
        stranger,
        format!(
            "{verified}\nstatus 403\nmessage pods is forbidden: User \
             \"system:serviceaccount:py:stranger\" cannot list resource \"pods\" in API group \
             \"\" in the namespace \"py\"\n"
        ),
        "the stranger's log"
    );

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let mut left = leftovers(&network, &[]);
    if host("ip", &["-4", "-o", "addr", "show"]).contains(&format!(" {api_ip}/")) {
        left.push(format!("address {api_ip}"));
    }
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}
