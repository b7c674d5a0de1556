//! The CloneSet acceptance test: `skiff up` with its real node, driven by the real `kubectl`,
//! with pods that are real processes answering `version=<tag> pod=<name>` on their pod IPs.
//!
//! Run with `cargo test -p skiff --test cloneset` (Linux; `kubectl` on the PATH).
//!
//! One CloneSet goes through the issue's three stages: an in-place update of all five pods
//! (grace period 10 s), a partition that keeps three pods back, and a pause while it scales to
//! ten. `maxUnavailable` is `100%` so the pods of a stage update together and the whole file
//! stays well under a minute and a half; the grace period is the issue's 10 s.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use support::http::{demo_line, ok_body};
use support::images::{demo, DEMO};
use support::json::{items, str_at};
use support::{cells, wait_for, Kubectl, Skiff};

const NAMESPACE: &str = "clones";
/// Deadline for a stage that includes a 10 s grace period and a restart.
const STAGE: Duration = Duration::from_secs(45);

/// The tags the stages move through, each a demo image reporting it as its version.
const TAGS: [&str; 4] = ["alpine", "v2", "v3", "v4"];

fn manifest() -> String {
    format!(
        "apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: web
spec:
  replicas: 5
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
        image: {DEMO}:alpine
  updateStrategy:
    type: InPlaceIfPossible
    maxUnavailable: 100%
    inPlaceUpdateStrategy:
      gracePeriodSeconds: 10
"
    )
}

/// A JSON patch operation setting the container's image to the demo image `tag`.
fn set_image(tag: &str) -> String {
    format!(
        r#"{{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"{DEMO}:{tag}"}}"#
    )
}

struct Env {
    skiff: Skiff,
    kubectl: Kubectl,
}

impl Env {
    fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", NAMESPACE]);
        self.kubectl.ok(&all)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-n", NAMESPACE]);
        self.kubectl.json(&all)
    }

    fn cloneset(&self) -> Value {
        self.json(&["get", "cloneset", "web"])
    }

    fn patch(&self, json_patch: &str) {
        self.ok(&[
            "patch", "cloneset", "web", "--type", "json", "-p", json_patch,
        ]);
    }

    /// The CloneSet's pods that are not being deleted, by name.
    fn pods(&self) -> BTreeMap<String, Value> {
        items(&self.json(&["get", "pods", "-l", "app=web"]))
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .map(|p| (str_at(&p, "/metadata/name"), p))
            .collect()
    }
}

fn condition(pod: &Value, type_: &str) -> Option<String> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| str_at(c, "/status"))
}

fn ready(pod: &Value) -> bool {
    condition(pod, "Ready").as_deref() == Some("True")
}

fn revision(pod: &Value) -> String {
    str_at(pod, "/metadata/labels/controller-revision-hash")
}

fn restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses/0/restartCount")
        .and_then(Value::as_i64)
        .unwrap_or(-1)
}

fn status_number(cs: &Value, field: &str) -> i64 {
    cs.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Waits until every pod in `names` answers with `version`.
fn wait_serving(pods: &BTreeMap<String, Value>, names: &BTreeSet<String>, version: &str) {
    for name in names {
        let ip = str_at(&pods[name], "/status/podIP");
        let want = demo_line(version, name);
        wait_for(&format!("{name} at {ip} to serve {version}"), STAGE, || {
            (ok_body(&ip).as_deref() == Some(want.as_str())).then_some(())
        });
    }
}

/// `(name, revision)` of each pod as `kubectl get pod -L controller-revision-hash` prints it.
fn revision_column(env: &Env) -> BTreeMap<String, String> {
    let out = env.ok(&[
        "get",
        "pod",
        "-l",
        "app=web",
        "-L",
        "controller-revision-hash",
        "--no-headers",
    ]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c = cells(line);
            (
                c[0].to_string(),
                c.last().copied().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn cloneset_updates_in_place_by_partition_and_pause() {
    let skiff = Skiff::start_with_images(&[], &TAGS.map(demo));
    let kubectl = skiff.kubectl();
    let env = Env { skiff, kubectl };
    env.kubectl.ok(&["create", "namespace", NAMESPACE]);
    let file = env.skiff.write_file("cloneset.yaml", &manifest());
    env.ok(&["apply", "-f", &file]);

    // Five pods, ready and serving the first tag.
    let before = wait_for("five ready pods", STAGE, || {
        let pods = env.pods();
        (pods.len() == 5 && pods.values().all(ready)).then_some(pods)
    });
    let names: BTreeSet<String> = before.keys().cloned().collect();
    for pod in before.values() {
        assert!(
            str_at(pod, "/metadata/name").starts_with("web-")
                && str_at(pod, "/metadata/name").len() == 9,
            "pods are named <cloneset>-<5 characters>"
        );
        assert_eq!(
            condition(pod, "InPlaceUpdateReady").as_deref(),
            Some("True")
        );
        assert!(!str_at(pod, "/metadata/labels/apps.kruise.io~1cloneset-instance-id").is_empty());
    }
    wait_serving(&before, &names, "alpine");
    let first_revision = str_at(&env.cloneset(), "/status/updateRevision");
    assert!(before.values().all(|p| revision(p) == first_revision));
    let table = env.ok(&["get", "cloneset", "web"]);
    let header = table.lines().next().unwrap_or("");
    assert_eq!(
        cells(header),
        [
            "NAME",
            "DESIRED",
            "UPDATED",
            "UPDATED_READY",
            "READY",
            "TOTAL",
            "AGE"
        ]
    );

    // Stage 1: a new tag, updated in place after the grace period.
    env.patch(&format!("[{}]", set_image("v2")));
    let in_grace = wait_for(
        "pods taken out of service for the grace period",
        STAGE,
        || {
            let pods = env.pods();
            pods.values()
                .all(|p| condition(p, "InPlaceUpdateReady").as_deref() == Some("False"))
                .then_some(pods)
        },
    );
    for pod in in_grace.values() {
        assert!(!ready(pod), "a pod in its grace period is not Ready");
        assert_eq!(
            str_at(pod, "/spec/containers/0/image"),
            format!("{DEMO}:alpine"),
            "the image changes only after the grace period"
        );
    }
    let after = wait_for("all pods updated in place", STAGE, || {
        let pods = env.pods();
        let done = pods.len() == 5
            && pods.values().all(|p| {
                ready(p)
                    && restarts(p) == 1
                    && condition(p, "InPlaceUpdateReady").as_deref() == Some("True")
                    && str_at(p, "/spec/containers/0/image") == format!("{DEMO}:v2")
            });
        done.then_some(pods)
    });
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "pods keep their names"
    );
    for (name, pod) in &after {
        for field in ["/metadata/uid", "/status/podIP"] {
            assert_eq!(
                str_at(pod, field),
                str_at(&before[name], field),
                "{name} keeps {field}"
            );
        }
    }
    wait_serving(&after, &names, "v2");
    let second_revision = wait_for("the status to count five updated pods", STAGE, || {
        let cs = env.cloneset();
        (status_number(&cs, "updatedReplicas") == 5
            && status_number(&cs, "updatedReadyReplicas") == 5)
            .then(|| str_at(&cs, "/status/updateRevision"))
    });
    assert_ne!(second_revision, first_revision);
    let description = env.ok(&["describe", "cloneset", "web"]);
    assert!(
        description.contains("SuccessfulUpdatePodInPlace")
            && description.contains(&format!("in-place(revision {second_revision})")),
        "describe shows the in-place update events:\n{description}"
    );
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains("Container web definition changed, will be restarted"),
        "the node reports the restart:\n{events}"
    );

    // Stage 2: partition 3 and another tag: exactly two pods move.
    env.patch(&format!(
        r#"[{{"op":"add","path":"/spec/updateStrategy/partition","value":3}},{}]"#,
        set_image("v3")
    ));
    let third_revision = wait_for("two pods at the third revision", STAGE, || {
        let cs = env.cloneset();
        let rev = str_at(&cs, "/status/updateRevision");
        let pods = env.pods();
        let moved = pods.values().filter(|p| revision(p) == rev).count();
        (rev != second_revision
            && moved == 2
            && status_number(&cs, "updatedReplicas") == 2
            && status_number(&cs, "updatedReadyReplicas") == 2)
            .then_some(rev)
    });
    let columns = revision_column(&env);
    let counts = columns.values().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.clone()).or_insert(0) += 1;
        m
    });
    assert_eq!(
        counts,
        BTreeMap::from([(second_revision.clone(), 3), (third_revision.clone(), 2)]),
        "kubectl get pod -L controller-revision-hash"
    );
    let pods = env.pods();
    let moved: BTreeSet<String> = pods
        .iter()
        .filter(|(_, p)| revision(p) == third_revision)
        .map(|(n, _)| n.clone())
        .collect();
    wait_serving(&pods, &moved, "v3");
    let description = env.ok(&["describe", "cloneset", "web"]);
    assert!(
        description.lines().any(|l| {
            let l = l.trim();
            l.starts_with("Updated Replicas:") && l.ends_with(" 2")
        }),
        "describe shows Updated Replicas 2:\n{description}"
    );

    // Stage 3: paused, another tag and ten replicas: five new pods, no existing pod updated.
    let before_pause = revision_column(&env);
    env.patch(&format!(
        r#"[{{"op":"add","path":"/spec/updateStrategy/paused","value":true}},{},
            {{"op":"replace","path":"/spec/replicas","value":10}}]"#,
        set_image("v4")
    ));
    let fourth_revision = wait_for("ten ready pods while paused", STAGE, || {
        let cs = env.cloneset();
        let rev = str_at(&cs, "/status/updateRevision");
        let pods = env.pods();
        (rev != third_revision && pods.len() == 10 && pods.values().all(ready)).then_some(rev)
    });
    let paused = revision_column(&env);
    for (name, rev) in &before_pause {
        assert_eq!(
            paused.get(name),
            Some(rev),
            "{name} is not updated while paused"
        );
    }
    let new_pods: Vec<&String> = paused
        .keys()
        .filter(|n| !before_pause.contains_key(*n))
        .collect();
    assert_eq!(new_pods.len(), 5);
    for name in new_pods {
        assert_eq!(
            paused[name], fourth_revision,
            "pods created while paused follow the partition"
        );
    }
    // Nothing starts updating while paused.
    std::thread::sleep(Duration::from_secs(2));
    assert!(env
        .pods()
        .values()
        .all(|p| condition(p, "InPlaceUpdateReady").as_deref() == Some("True")));
    assert_eq!(revision_column(&env), paused);

    env.patch(r#"[{"op":"replace","path":"/spec/updateStrategy/paused","value":false}]"#);
    wait_for(
        "seven pods at the newest revision once unpaused",
        STAGE,
        || {
            let cs = env.cloneset();
            let pods = env.pods();
            let at_newest = pods
                .values()
                .filter(|p| revision(p) == fourth_revision && ready(p))
                .count();
            (at_newest == 7 && status_number(&cs, "updatedReadyReplicas") == 7).then_some(())
        },
    );
    let final_columns = revision_column(&env);
    assert_eq!(
        final_columns
            .values()
            .filter(|r| **r == fourth_revision)
            .count(),
        7,
        "partition 3 of 10 keeps three pods back: {final_columns:?}"
    );

    // Scaling in through the scale subresource keeps the partition's old pods.
    env.ok(&["scale", "cloneset", "web", "--replicas", "4"]);
    let remaining = wait_for("four pods after kubectl scale", STAGE, || {
        let cs = env.cloneset();
        let pods = env.pods();
        (pods.len() == 4 && status_number(&cs, "replicas") == 4).then_some(pods)
    });
    assert_eq!(
        remaining
            .values()
            .filter(|p| revision(p) != fourth_revision)
            .count(),
        3,
        "scale-in deletes updated pods first while the partition wants three old ones"
    );
}
