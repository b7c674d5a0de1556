//! What kubectl prints against Skiff reads as against Kubernetes 1.36: component statuses,
//! error messages word for word, discovery verbs and scheduling failures.

mod support;

use serde_json::Value;
use support::json::{items, str_at};
use support::{assert_table, wait_for, Skiff, DEADLINE};

fn cluster() -> Skiff {
    Skiff::start_with(&["--simulated-nodes", "2", "--no-node"])
}

#[test]
fn get_componentstatuses_lists_scheduler_controller_manager_and_store_with_the_warning() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let out = kubectl.run(&["get", "cs"]);
    assert!(out.success(), "kubectl get cs failed: {}", out.stderr);
    assert_table(
        &out.stdout,
        &[
            &["NAME", "STATUS", "MESSAGE", "ERROR"],
            &["scheduler", "Healthy", "ok"],
            &["controller-manager", "Healthy", "ok"],
            &["sqlite-0", "Healthy", "ok"],
        ],
    );
    assert!(
        out.stderr
            .contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
        "kubectl printed no deprecation warning: {}",
        out.stderr
    );
    let one = kubectl.json(&["get", "componentstatus", "scheduler"]);
    assert_eq!(str_at(&one, "/kind"), "ComponentStatus");
    assert_eq!(str_at(&one, "/conditions/0/type"), "Healthy");
    assert_eq!(str_at(&one, "/conditions/0/status"), "True");

    let missing = kubectl.fails(&["get", "cs", "etcd-0"]);
    assert!(
        missing.contains("componentstatuses \"etcd-0\" not found"),
        "{missing}"
    );
    let token = std::fs::read_to_string(skiff.data_dir().join("token")).expect("token");
    let delete = skiff.request(
        "DELETE",
        "/api/v1/componentstatuses/scheduler",
        Some(token.trim()),
    );
    assert_eq!(delete.status, 405, "{}", delete.body);
}

#[test]
fn namespaces_cannot_be_deleted_as_a_collection() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let wide = kubectl.ok(&["api-resources", "-o", "wide"]);
    let namespaces = wide
        .lines()
        .find(|l| l.starts_with("namespaces "))
        .unwrap_or_else(|| panic!("no namespaces row in:\n{wide}"));
    assert!(
        namespaces
            .split_whitespace()
            .any(|cell| cell == "create,delete,get,list,patch,update,watch"),
        "{namespaces}"
    );
    let pods = wide
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods row in:\n{wide}"));
    assert!(pods.contains("deletecollection"), "{pods}");

    let token = std::fs::read_to_string(skiff.data_dir().join("token")).expect("token");
    let answer = skiff.request("DELETE", "/api/v1/namespaces", Some(token.trim()));
    assert_eq!(answer.status, 405, "{}", answer.body);
    assert!(
        kubectl
            .ok(&["get", "namespace", "default", "-o", "name"])
            .contains("default"),
        "the refused request deleted nothing"
    );
}

#[test]
fn error_messages_read_word_for_word_as_kubernetes_writes_them() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "deployment", "web", "--image=nginx:1.18"]);

    // A strategic merge patch with a string where an integer belongs.
    let out = kubectl.run(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"replicas":"three"}}"#,
    ]);
    assert!(!out.success(), "the patch was accepted: {}", out.stdout);
    assert!(
        out.stderr.contains(
            r#"The request is invalid: patch: Invalid value: "map[spec:map[replicas:three]]": unrecognized type: int32"#
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("expected i32"), "{}", out.stderr);

    // A label selector that does not parse names the requirement once.
    let bad = kubectl.fails(&["get", "pods", "-l", "app in (a"]);
    assert!(
        bad.contains("unable to parse requirement: found '', expected: ',' or ')'"),
        "{bad}"
    );
    assert_eq!(
        bad.matches("unable to parse requirement").count(),
        1,
        "{bad}"
    );

    // A selector that does not match the template shows the labels as JSON.
    let file = skiff.write_file(
        "mismatch.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: mismatch
spec:
  selector:
    matchLabels:
      app: a
  template:
    metadata:
      labels:
        app: b
    spec:
      containers:
      - name: c
        image: nginx
",
    );
    let invalid = kubectl.fails(&["apply", "-f", &file]);
    assert!(
        invalid.contains(
            r#"spec.template.metadata.labels: Invalid value: {"app":"b"}: `selector` does not match template `labels`"#
        ),
        "{invalid}"
    );
    assert!(!invalid.contains("map[string]string"), "{invalid}");
}

#[test]
fn failed_scheduling_reads_as_kube_scheduler_1_36_writes_it() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file(
        "pinned.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: pinned
spec:
  nodeSelector:
    disk: ssd
  containers:
  - name: c
    image: nginx
",
    );
    kubectl.ok(&["apply", "-f", &file]);
    let expected = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. \
no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    let event: Value = wait_for("the FailedScheduling event", DEADLINE, || {
        let events = kubectl.json(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
        ]);
        items(&events).into_iter().next()
    });
    assert_eq!(str_at(&event, "/message"), expected);
    let described = kubectl.ok(&["describe", "pod", "pinned"]);
    assert!(described.contains(expected), "{described}");
}
