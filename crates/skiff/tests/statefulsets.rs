//! StatefulSets end to end: the real `kubectl` against `skiff up --simulated-nodes 2`, with the
//! controllers, the scheduler and simulated nodes. Pods come up in ordinal order, each after
//! the one before is Ready; `kubectl get sts`; a deleted pod comes back under its name; scaling
//! down removes the highest ordinal first; a rolling update with `partition: 2` touches only
//! `web-2`; `rollout status`, `history` and `undo`.
//!
//! Run with `cargo test -p skiff --test statefulsets`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use serde_json::Value;
use support::json::items;
use support::{assert_table, wait_for, Kubectl, Skiff, DEADLINE};

/// A server with the controllers, the scheduler and two simulated nodes.
fn cluster() -> Skiff {
    Skiff::start_with(&["--simulated-nodes", "2", "--no-node", "--no-proxy"])
}

/// The governing headless Service and a 3-replica StatefulSet `web` whose pods turn Ready two
/// seconds after they start.
const MANIFEST: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
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
      - name: main
        image: web:1
        readinessProbe:
          exec:
            command: [\"true\"]
          initialDelaySeconds: 2
";

/// The live pods of `web` (not being deleted), by name: (uid, image, revision label).
fn pods(kubectl: &Kubectl) -> Vec<(String, String, String, String)> {
    let list = kubectl.json(&["get", "pods", "-l", "app=web"]);
    let mut pods: Vec<(String, String, String, String)> = items(&list)
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .map(|p| {
            let text = |pointer: &str| {
                p.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (
                text("/metadata/name"),
                text("/metadata/uid"),
                text("/spec/containers/0/image"),
                text("/metadata/labels/controller-revision-hash"),
            )
        })
        .collect();
    pods.sort();
    pods
}

fn names(kubectl: &Kubectl) -> Vec<String> {
    pods(kubectl).into_iter().map(|p| p.0).collect()
}

fn sts(kubectl: &Kubectl) -> Value {
    kubectl.json(&["get", "sts", "web"])
}

/// Waits until the set's status reports `ready` of `replicas` for its current generation.
fn wait_ready(kubectl: &Kubectl, ready: i64) {
    let mut last = Value::Null;
    let found = support::poll(DEADLINE, || {
        last = sts(kubectl);
        let status = &last["status"];
        let done = status["observedGeneration"] == last["metadata"]["generation"]
            && status["readyReplicas"].as_i64().unwrap_or(0) == ready
            && status["replicas"] == ready;
        done.then_some(())
    });
    assert!(
        found.is_some(),
        "web never had {ready} ready replicas; last status {}",
        last["status"]
    );
}

fn timestamp(value: &Value) -> jiff::Timestamp {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

#[test]
fn ordered_pods_stable_names_scaling_and_partitioned_rollout() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let path = skiff.write_file("web.yaml", MANIFEST);
    assert_eq!(
        kubectl.ok(&["apply", "-f", &path]),
        "service/web created\nstatefulset.apps/web created\n"
    );
    wait_ready(&kubectl, 3);
    assert_eq!(names(&kubectl), ["web-0", "web-1", "web-2"]);

    // Each pod was created only once the one before it was Ready.
    let list = kubectl.json(&["get", "pods", "-l", "app=web"]);
    let by_name = |name: &str| -> Value {
        items(&list)
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no pod {name}"))
    };
    for (before, after) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let ready_at = by_name(before)["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| timestamp(&c["lastTransitionTime"]))
            .unwrap_or_else(|| panic!("{before} has no Ready condition"));
        let created = timestamp(&by_name(after)["metadata"]["creationTimestamp"]);
        assert!(
            created >= ready_at,
            "{after} was created at {created}, before {before} was Ready at {ready_at}"
        );
    }
    // The stable identity.
    let pod = by_name("web-1");
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "web");
    assert_eq!(
        pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(
        pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "1"
    );
    let set = sts(&kubectl);
    let first_revision = set["status"]["updateRevision"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(first_revision.starts_with("web-"), "{}", set["status"]);
    assert_eq!(set["status"]["currentRevision"], first_revision.as_str());
    assert_eq!(
        pod["metadata"]["labels"]["controller-revision-hash"],
        first_revision.as_str()
    );

    // kubectl get sts, plain and wide.
    let table = kubectl.ok(&["get", "sts", "web"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_table(lines[0], &[&["NAME", "READY", "AGE"]]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..2], ["web", "3/3"], "{table}");
    let wide = kubectl.ok(&["get", "sts", "web", "-o", "wide"]);
    let lines: Vec<&str> = wide.lines().collect();
    assert_table(
        lines[0],
        &[&["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]],
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[3..], ["main", "web:1"], "{wide}");
    let events = wait_for("the creation events", DEADLINE, || {
        let events = kubectl.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=StatefulSet,reason=SuccessfulCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        events
            .contains("create Pod web-2 in StatefulSet web successful")
            .then_some(events)
    });
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );

    // kubectl get all lists the set; describe shows its pods and events.
    let all = kubectl.ok(&["get", "all"]);
    assert!(all.contains("statefulset.apps/web"), "{all}");
    let described = kubectl.ok(&["describe", "sts", "web"]);
    let lines: Vec<String> = described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "Replicas: 3 desired | 3 total",
        "Update Strategy: RollingUpdate",
        "Partition: 0",
        "Pods Status: 3 Running / 0 Waiting / 0 Succeeded / 0 Failed",
    ] {
        assert!(
            lines.iter().any(|l| l == line),
            "describe lacks {line:?}:\n{described}"
        );
    }

    // Only the listed fields may change, with Kubernetes' refusal.
    let refused = kubectl.fails(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"serviceName":"other"}}"#,
    ]);
    assert!(
        refused.contains("The StatefulSet \"web\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        "{refused}"
    );

    // A deleted pod comes back under the same name.
    let old_uid = pods(&kubectl)[1].1.clone();
    kubectl.ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_for("web-1 to come back", DEADLINE, || {
        let pods = pods(&kubectl);
        pods.iter()
            .any(|p| p.0 == "web-1" && p.1 != old_uid)
            .then_some(())
    });
    wait_ready(&kubectl, 3);

    // Scaling down removes web-2, then web-1.
    assert_eq!(
        kubectl.ok(&["scale", "sts", "web", "--replicas=1"]),
        "statefulset.apps/web scaled\n"
    );
    wait_ready(&kubectl, 1);
    assert_eq!(names(&kubectl), ["web-0"]);
    let deletions = wait_for("both deletion events", DEADLINE, || {
        let list = kubectl.json(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=StatefulSet,reason=SuccessfulDelete",
        ]);
        let mut events: Vec<(u64, String)> = items(&list)
            .iter()
            .map(|e| {
                let rv = e["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                (rv, e["message"].as_str().unwrap_or("").to_string())
            })
            .filter(|(_, m)| {
                m.starts_with("delete Pod web-2") || m.starts_with("delete Pod web-1 in")
            })
            .collect();
        events.sort();
        let messages: Vec<String> = events.into_iter().map(|e| e.1).collect();
        (messages.iter().any(|m| m.contains("web-1 in"))
            && messages.iter().any(|m| m.contains("web-2")))
        .then_some(messages)
    });
    let first_web2 = deletions.iter().position(|m| m.contains("web-2"));
    let last_web1 = deletions.iter().rposition(|m| m.contains("web-1 in"));
    assert!(
        first_web2 < last_web1,
        "web-1 was deleted before web-2: {deletions:?}"
    );

    // Scaling back up brings web-1 and web-2 back.
    kubectl.ok(&["scale", "sts", "web", "--replicas=3"]);
    wait_ready(&kubectl, 3);
    assert_eq!(names(&kubectl), ["web-0", "web-1", "web-2"]);

    // A rolling update with partition 2 updates web-2 only.
    kubectl.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    assert_eq!(
        kubectl.ok(&["set", "image", "sts/web", "main=web:2"]),
        "statefulset.apps/web image updated\n"
    );
    let second_revision = wait_for("web-2 on the new revision", DEADLINE, || {
        let set = sts(&kubectl);
        let update = set["status"]["updateRevision"].as_str()?.to_string();
        let pods = pods(&kubectl);
        let done = update != first_revision
            && set["status"]["updatedReplicas"] == 1
            && set["status"]["readyReplicas"] == 3
            && pods.len() == 3
            && pods[2].2 == "web:2"
            && pods[2].3 == update;
        done.then_some(update)
    });
    let now = pods(&kubectl);
    for pod in &now[..2] {
        assert_eq!(
            (pod.2.as_str(), pod.3.as_str()),
            ("web:1", first_revision.as_str()),
            "{pod:?}"
        );
    }
    assert_eq!(
        sts(&kubectl)["status"]["currentRevision"],
        first_revision.as_str()
    );
    assert_eq!(
        kubectl.ok(&["rollout", "status", "sts/web", "--watch=false"]),
        "partitioned roll out complete: 1 new pods have been updated...\n"
    );

    // Partition 0 finishes the rollout.
    kubectl.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    // kubectl reports any set with a rollingUpdate block as partitioned.
    let status = kubectl.ok(&["rollout", "status", "sts/web", "--timeout=90s"]);
    assert!(
        status.ends_with("partitioned roll out complete: 3 new pods have been updated...\n"),
        "rollout status printed {status}"
    );
    wait_for("every pod on the new revision", DEADLINE, || {
        let pods = pods(&kubectl);
        let set = sts(&kubectl);
        let done = pods.len() == 3
            && pods
                .iter()
                .all(|p| p.2 == "web:2" && p.3 == second_revision)
            && set["status"]["currentRevision"] == second_revision.as_str();
        done.then_some(())
    });

    // History and undo.
    let history = kubectl.ok(&["rollout", "history", "sts/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "history:\n{history}");
    assert_eq!(
        kubectl.ok(&["rollout", "undo", "sts/web"]),
        "statefulset.apps/web rolled back\n"
    );
    kubectl.ok(&["rollout", "status", "sts/web", "--timeout=90s"]);
    wait_for("every pod back on web:1", DEADLINE, || {
        let pods = pods(&kubectl);
        (pods.len() == 3 && pods.iter().all(|p| p.2 == "web:1" && p.3 == first_revision))
            .then_some(())
    });
    wait_for("revisions 2 and 3", DEADLINE, || {
        let history = kubectl.ok(&["rollout", "history", "sts/web"]);
        let revisions: Vec<String> = history
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        (revisions == ["2", "3"]).then_some(())
    });

    // Orphaned by a delete, the pods are adopted by the set made again: none is replaced.
    let uids: Vec<String> = pods(&kubectl).into_iter().map(|p| p.1).collect();
    kubectl.ok(&["delete", "sts", "web", "--cascade=orphan"]);
    wait_for("the pods to be orphaned", DEADLINE, || {
        let list = kubectl.json(&["get", "pods", "-l", "app=web"]);
        let orphaned = items(&list).len() == 3
            && items(&list)
                .iter()
                .all(|p| p.pointer("/metadata/ownerReferences/0").is_none());
        orphaned.then_some(())
    });
    kubectl.ok(&["apply", "-f", &path]);
    let new_uid = wait_for("the new set", DEADLINE, || {
        sts(&kubectl)["metadata"]["uid"]
            .as_str()
            .map(str::to_string)
    });
    wait_for("the pods to be adopted", DEADLINE, || {
        let list = kubectl.json(&["get", "pods", "-l", "app=web"]);
        let adopted = items(&list).len() == 3
            && items(&list).iter().all(|p| {
                p["metadata"]["ownerReferences"][0]["uid"] == new_uid.as_str()
                    && p["metadata"]["ownerReferences"][0]["controller"] == true
            });
        adopted.then_some(())
    });
    wait_ready(&kubectl, 3);
    let after: Vec<String> = pods(&kubectl).into_iter().map(|p| p.1).collect();
    assert_eq!(after, uids, "adopted pods are kept, not replaced");

    // Deleting the set removes its pods.
    kubectl.ok(&["delete", "sts", "web"]);
    wait_for("the pods to go", DEADLINE, || {
        names(&kubectl).is_empty().then_some(())
    });
}
