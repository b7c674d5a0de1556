//! A StatefulSet with a claim template on the real node, driven by the real `kubectl`: each
//! pod of `web` gets its claim `data-web-N` of the default `local-path` class and records its
//! hostname in it at every start; a deleted pod comes back under its name to the same data;
//! scaling to 1 and back to 3 keeps the claims and their data; a rolling update with
//! `partition: 2` replaces only `web-2`, which finds its data again.
//!
//! Run with `cargo test -p skiff --test statefulset_volumes` (Linux, as root so containers get
//! their own mounts; `kubectl` on the PATH).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::images::shell;
use support::json::{items, str_at};
use support::manifests::web_stateful_set;
use support::{wait_for_every, Kubectl, Skiff};

/// How long pods and claims may take to settle on a shared machine.
const SETTLE: Duration = Duration::from_secs(120);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(250);

/// The governing headless Service and the StatefulSet `web`; `marker` goes into the pod
/// template's environment so a change of it is a new revision.
fn manifest(replicas: u32, marker: &str) -> String {
    web_stateful_set(
        replicas,
        "echo $(hostname) $MARKER >> /data/starts; exec sleep 3600",
        Some(marker),
    )
}

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl.ok(&all)).expect("kubectl prints JSON")
}

/// The running, Ready pods of `web` not being deleted: (name, uid, revision).
fn ready_pods(kubectl: &Kubectl) -> Vec<(String, String, String)> {
    let mut pods: Vec<(String, String, String)> =
        items(&json(kubectl, &["get", "pods", "-l", "app=web"]))
            .iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .filter(|p| {
                p.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .map(|p| {
                (
                    str_at(p, "/metadata/name"),
                    str_at(p, "/metadata/uid"),
                    str_at(p, "/metadata/labels/controller-revision-hash"),
                )
            })
            .collect();
    pods.sort();
    pods
}

/// Waits until exactly `names` are the Ready pods, and returns them.
fn wait_pods(kubectl: &Kubectl, names: &[&str]) -> Vec<(String, String, String)> {
    wait_for_every(&format!("pods {names:?} Ready"), SETTLE, POLL, || {
        let pods = ready_pods(kubectl);
        let have: Vec<&str> = pods.iter().map(|p| p.0.as_str()).collect();
        (have == names).then_some(pods)
    })
}

/// What pod `name` finds in its volume: one line per start, `<hostname> <marker>`.
fn starts(kubectl: &Kubectl, name: &str) -> Vec<String> {
    kubectl
        .ok(&["exec", name, "--", "cat", "/data/starts"])
        .lines()
        .map(String::from)
        .collect()
}

/// The claims not being deleted, by name, with their phases.
fn claims(kubectl: &Kubectl) -> Vec<(String, String)> {
    let mut claims: Vec<(String, String)> = items(&json(kubectl, &["get", "pvc"]))
        .iter()
        .filter(|c| c.pointer("/metadata/deletionTimestamp").is_none())
        .map(|c| (str_at(c, "/metadata/name"), str_at(c, "/status/phase")))
        .collect();
    claims.sort();
    claims
}

fn apply(skiff: &Skiff, kubectl: &Kubectl, manifest: &str) {
    let path = skiff.write_file("web.yaml", manifest);
    kubectl.ok(&["apply", "-f", &path]);
}

#[test]
fn stateful_pods_keep_their_claims_and_data_across_deletion_scaling_and_a_partitioned_update() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: containers get their own mounts only as root"
    );
    let mut skiff = Skiff::start_with_images(&[], &[shell()]);
    let kubectl = skiff.kubectl();
    apply(&skiff, &kubectl, &manifest(3, "v1"));
    let first = wait_pods(&kubectl, &["web-0", "web-1", "web-2"]);
    let bound = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("data-web-{i}"), "Bound".to_string()))
            .collect()
    };
    assert_eq!(claims(&kubectl), bound(3));
    for i in 0..3 {
        let name = format!("web-{i}");
        assert_eq!(starts(&kubectl, &name), [format!("{name} v1")], "{name}");
        let pod = json(&kubectl, &["get", "pod", &name]);
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            format!("data-{name}").as_str()
        );
    }

    // A deleted pod comes back under its name and finds what it wrote.
    kubectl.ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_for_every("web-1 to come back", SETTLE, POLL, || {
        let pods = ready_pods(&kubectl);
        let web1 = pods.iter().find(|p| p.0 == "web-1")?;
        (web1.1 != first[1].1 && pods.len() == 3).then_some(())
    });
    assert_eq!(starts(&kubectl, "web-1"), ["web-1 v1", "web-1 v1"]);

    // Scaling to 1 removes web-2 then web-1 and keeps their claims; back to 3 they find them.
    kubectl.ok(&["scale", "statefulset", "web", "--replicas=1"]);
    wait_pods(&kubectl, &["web-0"]);
    assert_eq!(claims(&kubectl), bound(3), "scaling down keeps the claims");
    kubectl.ok(&["scale", "statefulset", "web", "--replicas=3"]);
    wait_pods(&kubectl, &["web-0", "web-1", "web-2"]);
    assert_eq!(claims(&kubectl), bound(3), "no new claim on the way up");
    assert_eq!(
        starts(&kubectl, "web-1"),
        ["web-1 v1", "web-1 v1", "web-1 v1"]
    );
    assert_eq!(starts(&kubectl, "web-2"), ["web-2 v1", "web-2 v1"]);
    assert_eq!(starts(&kubectl, "web-0"), ["web-0 v1"], "web-0 never went");

    // A rolling update with partition 2 replaces only web-2.
    kubectl.ok(&[
        "patch",
        "statefulset",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ]);
    let before = wait_pods(&kubectl, &["web-0", "web-1", "web-2"]);
    apply(&skiff, &kubectl, &manifest(3, "v2"));
    let update_revision = wait_for_every("the new revision", SETTLE, POLL, || {
        let set = json(&kubectl, &["get", "statefulset", "web"]);
        let update = str_at(&set, "/status/updateRevision");
        (update != before[2].2 && set["status"]["updatedReplicas"] == 1).then_some(update)
    });
    let after = wait_for_every("web-2 on the new revision", SETTLE, POLL, || {
        let pods = ready_pods(&kubectl);
        (pods.len() == 3 && pods[2].2 == update_revision).then_some(pods)
    });
    assert_eq!(after[0], before[0], "web-0 was left alone");
    assert_eq!(after[1], before[1], "web-1 was left alone");
    assert_eq!(
        starts(&kubectl, "web-2"),
        ["web-2 v1", "web-2 v1", "web-2 v2"]
    );
    assert_eq!(claims(&kubectl), bound(3));
    skiff.stop();
}
