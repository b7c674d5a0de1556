//! The built-in controllers act under their own identities, as kube-controller-manager's do with
//! `--use-service-account-credentials`: each is the `kube-system` ServiceAccount its
//! `system:controller:*` ClusterRoleBinding names, and RBAC decides what it may do. Removing
//! the ReplicaSet controller's binding stops it creating pods (a `FailedCreate` event with
//! Kubernetes' forbidden text); restoring it lets the ReplicaSet recover.
//!
//! Run with `cargo test -p skiff --test controller_identities`. Needs `kubectl` on the PATH.
//! Every wait polls a condition against a deadline.

mod support;

use support::{wait_for, Skiff, DEADLINE};

const REPLICASET_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";
const BINDING: &str = "system:controller:replicaset-controller";

const REPLICA_SET: &str = "\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 2
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
        image: registry.k8s.io/pause:3.10
";

#[test]
fn the_replicaset_controller_holds_only_what_its_binding_grants() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let as_controller = format!("--as={REPLICASET_CONTROLLER}");

    // The identity and its rights are visible.
    kubectl.ok(&[
        "get",
        "serviceaccount",
        "replicaset-controller",
        "-n",
        "kube-system",
    ]);
    let binding = kubectl.json(&["get", "clusterrolebinding", BINDING]);
    assert_eq!(binding["roleRef"]["name"], BINDING, "{binding}");
    assert_eq!(
        binding["subjects"][0],
        serde_json::json!({"kind": "ServiceAccount", "name": "replicaset-controller", "namespace": "kube-system"})
    );
    assert_eq!(
        kubectl.ok(&["auth", "can-i", "create", "pods", &as_controller]),
        "yes\n"
    );
    let nodes = kubectl.run(&["auth", "can-i", "delete", "nodes", &as_controller]);
    assert!(!nodes.success(), "the controller may not delete nodes");
    assert_eq!(nodes.stdout, "no\n");

    // Without its binding the controller cannot create pods, and says so as Kubernetes does.
    // Its events are written under the same identity, so a separate binding keeps it allowed
    // to record them (without one, Kubernetes' controller would fail silently too).
    kubectl.ok(&[
        "create",
        "clusterrole",
        "event-recorder",
        "--verb=create,update,patch",
        "--resource=events",
    ]);
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "replicaset-controller-events",
        "--clusterrole=event-recorder",
        "--serviceaccount=kube-system:replicaset-controller",
    ]);
    kubectl.ok(&["delete", "clusterrolebinding", BINDING]);
    assert_eq!(
        kubectl
            .run(&["auth", "can-i", "create", "pods", &as_controller])
            .stdout,
        "no\n"
    );
    let manifest = skiff.write_file("web.yaml", REPLICA_SET);
    kubectl.ok(&["apply", "-f", &skiff.file_path(&manifest).to_string_lossy()]);
    let expected = format!(
        "Error creating: pods is forbidden: User \"{REPLICASET_CONTROLLER}\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let event = wait_for("a FailedCreate event", DEADLINE, || {
        let events = kubectl.json(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=ReplicaSet,involvedObject.name=web,reason=FailedCreate",
        ]);
        events["items"].as_array()?.first().cloned()
    });
    assert_eq!(event["message"], expected.as_str(), "{event}");
    assert_eq!(event["type"], "Warning", "{event}");
    assert_eq!(
        event["source"]["component"], "replicaset-controller",
        "{event}"
    );
    let pods = kubectl.json(&["get", "pods", "-l", "app=web"]);
    assert_eq!(
        pods["items"],
        serde_json::json!([]),
        "no pod without the right"
    );
    let refusal = format!("request refused user={REPLICASET_CONTROLLER}");
    assert!(
        skiff
            .log()
            .lines()
            .any(|l| strip_ansi(l).contains(&refusal)),
        "the refusal is logged"
    );

    // Restored, the binding lets the ReplicaSet reach its replicas.
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        BINDING,
        &format!("--clusterrole={BINDING}"),
        "--serviceaccount=kube-system:replicaset-controller",
    ]);
    wait_for("the ReplicaSet to create its pods", DEADLINE, || {
        let pods = kubectl.json(&["get", "pods", "-l", "app=web"]);
        (pods["items"].as_array().map(Vec::len) == Some(2)).then_some(())
    });
    wait_for("the ReplicaSet to count its replicas", DEADLINE, || {
        let replica_set = kubectl.json(&["get", "replicaset", "web"]);
        (replica_set["status"]["replicas"] == 2).then_some(())
    });
}

/// A log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
