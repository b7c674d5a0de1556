//! Planner tables after the stateful set controller's own unit tests
//! (`stateful_set_control_test.go`, `stateful_set_utils_test.go`): names and ordinals, claim
//! ownership under the retention policy, ordered and parallel scaling, failed pods, rolling
//! updates with partition and maxUnavailable, OnDelete, revisions and status. Each table
//! asserts its row count, so a lost case fails.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::{json, Value};

use super::*;

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().expect("a timestamp")
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A StatefulSet `web` in `default` governed by Service `web`, with `spec_extra` merged in.
fn stateful_set(spec_extra: Value) -> StatefulSet {
    let mut set = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 1},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}], "restartPolicy": "Always"},
            },
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}},
            "revisionHistoryLimit": 10,
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        },
    });
    merge(&mut set["spec"], spec_extra);
    serde_json::from_value(set).expect("a StatefulSet")
}

fn with_image(set: &StatefulSet, image: &str) -> StatefulSet {
    let mut set = set.clone();
    if let Some(spec) = set.spec.as_mut() {
        if let Some(pod_spec) = spec.template.spec.as_mut() {
            pod_spec.containers[0].image = Some(image.to_string());
        }
    }
    set
}

/// A simulated cluster: the set, its pods, revisions and claims, advanced one sync at a time
/// as upstream's fake pod control does.
struct Cluster {
    set: StatefulSet,
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
    claims: Vec<PersistentVolumeClaim>,
    uid_counter: usize,
}

impl Cluster {
    fn new(set: StatefulSet) -> Cluster {
        Cluster {
            set,
            pods: Vec::new(),
            revisions: Vec::new(),
            claims: Vec::new(),
            uid_counter: 0,
        }
    }

    /// One sync: plan, then apply what it says (created pods are Pending; deleted pods are
    /// marked terminating) and the status.
    fn sync(&mut self) -> StatefulSetPlan {
        let plan = plan(
            &StatefulSetObservation {
                stateful_set: &self.set,
                pods: &self.pods,
                revisions: &self.revisions,
                claims: &self.claims,
            },
            now(),
        );
        if let Some(revision) = &plan.create_revision {
            self.revisions.push(revision.clone());
        }
        if let Some((name, number)) = &plan.renumber_revision {
            for r in &mut self.revisions {
                if r.metadata.name.as_deref() == Some(name) {
                    r.revision = *number;
                }
            }
        }
        self.revisions.retain(|r| {
            !plan
                .delete_revisions
                .contains(r.metadata.name.as_ref().unwrap())
        });
        for action in &plan.actions {
            match action {
                PodAction::Create { pod, claims } => {
                    self.claims.extend(claims.iter().cloned());
                    let mut pod = (**pod).clone();
                    self.uid_counter += 1;
                    pod.metadata.uid = Some(format!("uid-{}", self.uid_counter));
                    pod.status = Some(serde_json::from_value(json!({"phase": "Pending"})).unwrap());
                    self.pods.push(pod);
                }
                PodAction::CreateClaims { claims, .. } => {
                    self.claims.extend(claims.iter().cloned())
                }
                PodAction::Relabel { name, labels, .. } => {
                    for p in &mut self.pods {
                        if p.metadata.name.as_deref() == Some(name) {
                            p.metadata.labels = Some(labels.clone());
                        }
                    }
                }
                PodAction::Delete { name, .. } => {
                    for p in &mut self.pods {
                        if p.metadata.name.as_deref() == Some(name) {
                            p.metadata.deletion_timestamp =
                                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
                        }
                    }
                }
            }
        }
        if let Some(status) = &plan.status {
            self.set.status = Some(status.clone());
        }
        plan
    }

    /// Terminating pods finish and go away.
    fn finish_terminating(&mut self) {
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
    }

    fn set_phase(&mut self, name: &str, phase: &str, ready: bool) {
        let pod = self
            .pods
            .iter_mut()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no pod {name}"));
        pod.status = Some(
            serde_json::from_value(json!({
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                "lastTransitionTime": "2026-01-01T11:00:00Z"}],
            }))
            .unwrap(),
        );
    }

    fn make_all_ready(&mut self) {
        let names: Vec<String> = self.names();
        for name in names {
            self.set_phase(&name, "Running", true);
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    fn revision_of(&self, name: &str) -> String {
        let pod = self
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no pod {name}"));
        pod_revision(pod).to_string()
    }

    /// Syncs, making every pod Running and Ready and finishing deletions, until nothing changes.
    fn settle(&mut self) {
        for _ in 0..50 {
            let plan = self.sync();
            self.finish_terminating();
            self.make_all_ready();
            if plan.actions.is_empty() && plan.status.is_none() {
                return;
            }
        }
        panic!("the set did not settle");
    }
}

fn created(plan: &StatefulSetPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            PodAction::Create { pod, .. } => pod.metadata.name.clone(),
            _ => None,
        })
        .collect()
}

fn deleted(plan: &StatefulSetPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            PodAction::Delete { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn parent_and_ordinal_follow_get_parent_name_and_ordinal() {
    let cases: Vec<(&str, Option<(&str, i64)>)> = vec![
        ("web-0", Some(("web", 0))),
        ("web-12", Some(("web", 12))),
        ("my-web-3", Some(("my-web", 3))),
        ("web", None),
        ("web-", None),
        ("web-x1", None),
    ];
    assert_eq!(cases.len(), 6);
    for (name, expected) in cases {
        assert_eq!(parent_and_ordinal(name), expected, "{name}");
    }
}

#[test]
fn new_pods_carry_the_stable_identity_and_their_claims() {
    let set = stateful_set(json!({
        "template": {"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "conf", "emptyDir": {}}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
    }));
    let template = set.spec.as_ref().unwrap().template.clone();
    let pod = new_pod(&set, &template, 2, "web-abc");
    let pod = serde_json::to_value(&pod).unwrap();
    assert_eq!(pod["metadata"]["name"], json!("web-2"));
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"app": "web", "statefulset.kubernetes.io/pod-name": "web-2",
               "apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "web-abc"})
    );
    assert_eq!(pod["spec"]["hostname"], json!("web-2"));
    assert_eq!(pod["spec"]["subdomain"], json!("web"));
    assert_eq!(
        pod["spec"]["volumes"],
        json!([{"name": "conf", "emptyDir": {}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}}])
    );
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["kind"],
        json!("StatefulSet")
    );
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["controller"],
        json!(true)
    );
    let claims = claims_for(&set, "web-2");
    assert_eq!(claims.len(), 1);
    let claim = serde_json::to_value(&claims[0]).unwrap();
    assert_eq!(claim["metadata"]["name"], json!("data-web-2"));
    assert_eq!(claim["metadata"]["namespace"], json!("default"));
    assert_eq!(
        claim["metadata"]["labels"],
        json!({"app": "web", "tier": "db"})
    );
}

#[test]
fn claim_owners_follow_the_retention_policy() {
    // (whenDeleted, whenScaled, pod ordinal with 3 replicas, owned by set, owned by pod)
    let cases = [
        ("Retain", "Retain", 1, false, false),
        ("Retain", "Retain", 5, false, false),
        ("Delete", "Retain", 1, true, false),
        ("Delete", "Retain", 5, true, false),
        ("Retain", "Delete", 1, false, false),
        ("Retain", "Delete", 5, false, true),
        ("Delete", "Delete", 1, true, false),
        ("Delete", "Delete", 5, false, true),
    ];
    assert_eq!(cases.len(), 8);
    let other = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "keep".into(),
        uid: "other-uid".into(),
        ..Default::default()
    };
    for (i, (deleted, scaled, ordinal, by_set, by_pod)) in cases.into_iter().enumerate() {
        let set = stateful_set(json!({"persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": deleted, "whenScaled": scaled}}));
        let mut pod = new_pod(&set, &set.spec.as_ref().unwrap().template, ordinal, "r");
        pod.metadata.uid = Some("pod-uid".into());
        // A stale reference of the wrong kind goes; a foreign one stays.
        let stale = vec![
            other.clone(),
            OwnerReference {
                uid: "pod-uid".into(),
                ..other.clone()
            },
        ];
        let refs = claim_owner_references(&set, &pod, &stale);
        assert_eq!(refs[0], other, "case {i}");
        assert_eq!(
            refs.iter()
                .any(|r| r.uid == "set-uid" && r.kind == "StatefulSet"),
            by_set,
            "case {i}"
        );
        assert_eq!(
            refs.iter().any(|r| r.uid == "pod-uid" && r.kind == "Pod"),
            by_pod,
            "case {i}"
        );
        assert_eq!(
            refs.len(),
            1 + usize::from(by_set) + usize::from(by_pod),
            "case {i}"
        );
    }
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_and_waits_for_ready() {
    let mut cluster = Cluster::new(stateful_set(json!({})));
    let mut steps: Vec<Vec<String>> = Vec::new();
    for _ in 0..3 {
        let plan = cluster.sync();
        steps.push(created(&plan));
        // Nothing more while the newest pod is Pending.
        assert!(created(&cluster.sync()).is_empty(), "{:?}", cluster.names());
        // Running but not Ready still blocks.
        let newest = steps.last().unwrap()[0].clone();
        cluster.set_phase(&newest, "Running", false);
        assert!(created(&cluster.sync()).is_empty());
        cluster.set_phase(&newest, "Running", true);
    }
    assert_eq!(steps, [vec!["web-0"], vec!["web-1"], vec!["web-2"]]);
    let plan = cluster.sync();
    assert!(plan.actions.is_empty());
    let status = cluster.set.status.clone().unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (3, Some(3), Some(3))
    );
}

#[test]
fn scaling_scenarios_follow_update_stateful_set() {
    struct Case {
        name: &'static str,
        spec: Value,
        /// Pods at the start, all Running and Ready.
        running: i64,
        /// The replicas asked for then.
        replicas: i32,
        /// What the first sync creates and deletes.
        first: (Vec<&'static str>, Vec<&'static str>),
        /// Pods once settled.
        settled: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "parallel creates every pod at once",
            spec: json!({"podManagementPolicy": "Parallel"}),
            running: 0,
            replicas: 3,
            first: (vec!["web-0", "web-1", "web-2"], vec![]),
            settled: vec!["web-0", "web-1", "web-2"],
        },
        Case {
            name: "ordered scale down deletes the highest ordinal first",
            spec: json!({}),
            running: 3,
            replicas: 1,
            first: (vec![], vec!["web-2"]),
            settled: vec!["web-0"],
        },
        Case {
            name: "parallel scale down deletes all condemned pods at once",
            spec: json!({"podManagementPolicy": "Parallel"}),
            running: 4,
            replicas: 1,
            first: (vec![], vec!["web-3", "web-2", "web-1"]),
            settled: vec!["web-0"],
        },
        Case {
            name: "ordered scale up continues from the highest ordinal",
            spec: json!({}),
            running: 2,
            replicas: 4,
            first: (vec!["web-2"], vec![]),
            settled: vec!["web-0", "web-1", "web-2", "web-3"],
        },
        Case {
            name: "scale to zero",
            spec: json!({}),
            running: 2,
            replicas: 0,
            first: (vec![], vec!["web-1"]),
            settled: vec![],
        },
    ];
    assert_eq!(cases.len(), 5);
    for case in cases {
        let mut set = stateful_set(case.spec.clone());
        set.spec.as_mut().unwrap().replicas = Some(i32::try_from(case.running).unwrap());
        let mut cluster = Cluster::new(set);
        if case.running > 0 {
            cluster.settle();
        }
        cluster.set.spec.as_mut().unwrap().replicas = Some(case.replicas);
        let plan = cluster.sync();
        let (creates, deletes) = &case.first;
        assert_eq!(&created(&plan), creates, "{}", case.name);
        assert_eq!(&deleted(&plan), deletes, "{}", case.name);
        cluster.finish_terminating();
        cluster.make_all_ready();
        cluster.settle();
        assert_eq!(cluster.names(), case.settled, "{}", case.name);
    }
}

#[test]
fn ordered_scale_down_waits_for_each_deletion_to_finish() {
    let mut cluster = Cluster::new(stateful_set(json!({})));
    cluster.settle();
    cluster.set.spec.as_mut().unwrap().replicas = Some(1);
    assert_eq!(deleted(&cluster.sync()), ["web-2"]);
    // web-2 is still terminating: nothing more.
    assert!(cluster.sync().actions.is_empty());
    cluster.finish_terminating();
    assert_eq!(deleted(&cluster.sync()), ["web-1"]);
}

#[test]
fn pods_are_replaced_as_upstream_replaces_them() {
    // (what happens to web-1, policy, first actions: created, deleted)
    let cases: Vec<(&str, &str, Vec<&str>, Vec<&str>)> = vec![
        ("deleted", "OrderedReady", vec!["web-1"], vec![]),
        ("failed", "OrderedReady", vec![], vec!["web-1"]),
        ("succeeded", "Parallel", vec![], vec!["web-1"]),
        ("unready", "OrderedReady", vec![], vec![]),
    ];
    assert_eq!(cases.len(), 4);
    for (what, policy, creates, deletes) in cases {
        let mut cluster = Cluster::new(stateful_set(json!({"podManagementPolicy": policy})));
        cluster.settle();
        match what {
            "deleted" => cluster
                .pods
                .retain(|p| p.metadata.name.as_deref() != Some("web-1")),
            "failed" => cluster.set_phase("web-1", "Failed", false),
            "succeeded" => cluster.set_phase("web-1", "Succeeded", false),
            _ => cluster.set_phase("web-1", "Running", false),
        }
        let plan = cluster.sync();
        assert_eq!(created(&plan), creates, "{what}");
        assert_eq!(deleted(&plan), deletes, "{what}");
        cluster.finish_terminating();
        cluster.settle();
        assert_eq!(cluster.names(), ["web-0", "web-1", "web-2"], "{what}");
    }
}

#[test]
fn an_unhealthy_pod_stops_ordered_creation_but_not_parallel() {
    for (policy, expected) in [("OrderedReady", vec![]), ("Parallel", vec!["web-2"])] {
        let mut set = stateful_set(json!({"podManagementPolicy": policy}));
        set.spec.as_mut().unwrap().replicas = Some(2);
        let mut cluster = Cluster::new(set);
        cluster.settle();
        cluster.set_phase("web-0", "Running", false);
        cluster.set.spec.as_mut().unwrap().replicas = Some(3);
        assert_eq!(created(&cluster.sync()), expected, "{policy}");
    }
}

#[test]
fn start_ordinal_shifts_the_names() {
    let mut cluster = Cluster::new(stateful_set(json!({"ordinals": {"start": 5}})));
    cluster.settle();
    assert_eq!(cluster.names(), ["web-5", "web-6", "web-7"]);
    // Moving the start condemns the low ordinals and creates the new ones.
    cluster.set.spec.as_mut().unwrap().ordinals =
        Some(serde_json::from_value(json!({"start": 6})).unwrap());
    cluster.settle();
    assert_eq!(cluster.names(), ["web-6", "web-7", "web-8"]);
}

#[test]
fn claims_are_created_before_their_pod_and_only_once() {
    let mut cluster = Cluster::new(stateful_set(json!({
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
    })));
    let plan = cluster.sync();
    match &plan.actions[..] {
        [PodAction::Create { pod, claims }] => {
            assert_eq!(pod.metadata.name.as_deref(), Some("web-0"));
            let names: Vec<_> = claims
                .iter()
                .map(|c| c.metadata.name.clone().unwrap())
                .collect();
            assert_eq!(names, ["data-web-0"]);
        }
        other => panic!("{other:?}"),
    }
    cluster.settle();
    let mut claims: Vec<String> = cluster
        .claims
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    claims.sort();
    assert_eq!(claims, ["data-web-0", "data-web-1", "data-web-2"]);
    // A pod coming back finds its claim and creates none.
    cluster
        .pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-1"));
    match &cluster.sync().actions[..] {
        [PodAction::Create { claims, .. }] => assert!(claims.is_empty()),
        other => panic!("{other:?}"),
    }
    // A Pending pod whose claim went missing gets it again.
    cluster
        .claims
        .retain(|c| c.metadata.name.as_deref() != Some("data-web-1"));
    match &cluster.sync().actions[..] {
        [PodAction::CreateClaims { pod, claims }] => {
            assert_eq!(pod, "web-1");
            assert_eq!(claims[0].metadata.name.as_deref(), Some("data-web-1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rolling_updates_follow_partition_and_max_unavailable() {
    // (strategy, policy, deleted by the first sync after the change, pods updated when settled)
    let cases: Vec<(Value, &str, Vec<&str>, Vec<&str>)> = vec![
        (
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}}),
            "OrderedReady",
            vec!["web-2"],
            vec!["web-0", "web-1", "web-2"],
        ),
        (
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2, "maxUnavailable": 1}}),
            "OrderedReady",
            vec!["web-2"],
            vec!["web-2"],
        ),
        (
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 3, "maxUnavailable": 1}}),
            "OrderedReady",
            vec![],
            vec![],
        ),
        (
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}),
            "Parallel",
            vec!["web-2", "web-1"],
            vec!["web-0", "web-1", "web-2"],
        ),
        (
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": "100%"}}),
            "Parallel",
            vec!["web-2", "web-1", "web-0"],
            vec!["web-0", "web-1", "web-2"],
        ),
        (json!({"type": "OnDelete"}), "OrderedReady", vec![], vec![]),
    ];
    assert_eq!(cases.len(), 6);
    for (i, (strategy, policy, first, updated)) in cases.into_iter().enumerate() {
        let mut set = stateful_set(json!({"podManagementPolicy": policy}));
        set.spec.as_mut().unwrap().update_strategy =
            Some(serde_json::from_value(strategy.clone()).unwrap());
        let mut cluster = Cluster::new(set);
        cluster.settle();
        let old = cluster.revision_of("web-0");
        cluster.set = with_image(&cluster.set, "nginx:2");
        let plan = cluster.sync();
        assert_eq!(deleted(&plan), first, "case {i}");
        let new = plan.update_revision.clone();
        assert_ne!(old, new, "case {i}");
        cluster.finish_terminating();
        cluster.make_all_ready();
        cluster.settle();
        let names = cluster.names();
        let on_new: Vec<&str> = names
            .iter()
            .filter(|n| cluster.revision_of(n) == new)
            .map(String::as_str)
            .collect();
        assert_eq!(on_new, updated, "case {i}");
        let status = cluster.set.status.clone().unwrap();
        assert_eq!(
            status.update_revision.as_deref(),
            Some(new.as_str()),
            "case {i}"
        );
        let complete = updated.len() == 3;
        assert_eq!(
            status.current_revision.as_deref(),
            Some(if complete { new.as_str() } else { old.as_str() }),
            "case {i}"
        );
        assert_eq!(
            status.updated_replicas.unwrap_or(0),
            updated.len() as i32,
            "case {i}"
        );
        assert_eq!(
            status.current_replicas.or(Some(0)),
            Some(if complete {
                3
            } else {
                3 - updated.len() as i32
            }),
            "case {i}"
        );
    }
}

#[test]
fn ordered_rolling_update_goes_one_pod_at_a_time_in_reverse() {
    let mut cluster = Cluster::new(stateful_set(json!({})));
    cluster.settle();
    cluster.set = with_image(&cluster.set, "nginx:2");
    let mut order = Vec::new();
    for _ in 0..20 {
        let plan = cluster.sync();
        order.extend(deleted(&plan));
        assert!(deleted(&plan).len() <= 1);
        cluster.finish_terminating();
        cluster.make_all_ready();
    }
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
}

#[test]
fn on_delete_recreates_a_deleted_pod_from_the_new_revision() {
    let mut cluster = Cluster::new(stateful_set(
        json!({"updateStrategy": {"type": "OnDelete"}}),
    ));
    cluster.settle();
    let old = cluster.revision_of("web-1");
    cluster.set = with_image(&cluster.set, "nginx:2");
    cluster.settle();
    assert_eq!(cluster.revision_of("web-1"), old);
    cluster
        .pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-1"));
    cluster.settle();
    assert_ne!(cluster.revision_of("web-1"), old);
    assert_eq!(cluster.revision_of("web-0"), old);
}

#[test]
fn a_partitioned_pod_below_the_partition_comes_back_at_the_current_revision() {
    let mut cluster = Cluster::new(stateful_set(json!({
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2, "maxUnavailable": 1}}})));
    cluster.settle();
    let old = cluster.revision_of("web-0");
    cluster.set = with_image(&cluster.set, "nginx:2");
    cluster.settle();
    cluster
        .pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-0"));
    cluster.settle();
    assert_eq!(cluster.revision_of("web-0"), old);
    assert_ne!(cluster.revision_of("web-2"), old);
}

#[test]
fn revisions_are_created_reused_on_rollback_and_pruned() {
    let mut cluster = Cluster::new(stateful_set(json!({"revisionHistoryLimit": 2})));
    cluster.settle();
    assert_eq!(cluster.revisions.len(), 1);
    assert_eq!(cluster.revisions[0].revision, 1);
    let first = cluster.revisions[0].metadata.name.clone().unwrap();
    assert_eq!(cluster.revision_of("web-0"), first);
    let labels = cluster.revisions[0].metadata.labels.clone().unwrap();
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert!(first.ends_with(labels.get(REVISION_HASH_LABEL).unwrap()));
    let original = cluster.set.clone();
    cluster.set = with_image(&original, "nginx:2");
    cluster.settle();
    assert_eq!(cluster.revisions.len(), 2);
    // Back to the first template: its revision is renumbered, no new one is made.
    cluster.set.spec = original.spec.clone();
    let plan = cluster.sync();
    assert!(plan.create_revision.is_none());
    assert_eq!(plan.renumber_revision, Some((first.clone(), 3)));
    cluster.settle();
    assert_eq!(cluster.revision_of("web-0"), first);
    // More templates: only two unused revisions are kept besides the live one.
    for image in ["nginx:3", "nginx:4", "nginx:5"] {
        cluster.set = with_image(&original, image);
        cluster.settle();
    }
    assert_eq!(
        cluster.revisions.len(),
        3,
        "{:?}",
        cluster
            .revisions
            .iter()
            .map(|r| r.revision)
            .collect::<Vec<_>>()
    );
    let mut numbers: Vec<i64> = cluster.revisions.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, [4, 5, 6]);
}

#[test]
fn status_counts_follow_compute_replica_status() {
    // Under OrderedReady a pod not yet available holds the next one back.
    let mut ordered = Cluster::new(stateful_set(json!({"minReadySeconds": 7200})));
    ordered.settle();
    assert_eq!(ordered.names(), ["web-0"]);
    let mut cluster = Cluster::new(stateful_set(
        json!({"minReadySeconds": 7200, "podManagementPolicy": "Parallel"}),
    ));
    cluster.settle();
    // Ready since an hour ago: ready, not yet available for two hours.
    let status = cluster.set.status.clone().unwrap();
    assert_eq!(status.replicas, 3);
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(0));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.collision_count, Some(0));
    let plan = cluster.sync();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(3600)));
    // The zero counts Go omits are left out; availableReplicas is always written.
    let mut empty = Cluster::new(stateful_set(json!({"replicas": 0})));
    empty.sync();
    assert_eq!(
        serde_json::to_value(empty.set.status.clone().unwrap())
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [
            "availableReplicas",
            "collisionCount",
            "currentRevision",
            "observedGeneration",
            "replicas",
            "updateRevision"
        ]
    );
    assert!(
        plan.status.is_none(),
        "an unchanged status is not written again"
    );
}

#[test]
fn a_set_being_deleted_only_reports_status() {
    let mut cluster = Cluster::new(stateful_set(json!({})));
    cluster.settle();
    cluster.set.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    cluster.set.spec.as_mut().unwrap().replicas = Some(0);
    assert!(cluster.sync().actions.is_empty());
}

#[test]
fn pods_of_other_owners_or_names_are_not_the_sets() {
    let mut cluster = Cluster::new(stateful_set(json!({})));
    cluster.settle();
    let mut foreign = cluster.pods[0].clone();
    foreign.metadata.name = Some("web-9".into());
    foreign.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "rs".into(),
        uid: "rs-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let mut misnamed = cluster.pods[0].clone();
    misnamed.metadata.name = Some("other-9".into());
    cluster.pods.push(foreign);
    cluster.pods.push(misnamed);
    let plan = cluster.sync();
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
}

#[test]
fn events_are_worded_as_upstream() {
    let cases = [
        (
            pod_event("create", "web-0", "web", None),
            "SuccessfulCreate",
            "create Pod web-0 in StatefulSet web successful",
        ),
        (
            pod_event("delete", "web-2", "web", None),
            "SuccessfulDelete",
            "delete Pod web-2 in StatefulSet web successful",
        ),
        (
            pod_event("create", "web-0", "web", Some("boom")),
            "FailedCreate",
            "create Pod web-0 in StatefulSet web failed error: boom",
        ),
        (
            claim_event("create", "data-web-0", "web-0", "web", None),
            "SuccessfulCreate",
            "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        ),
        (
            claim_event("create", "data-web-0", "web-0", "web", Some("boom")),
            "FailedCreate",
            "create Claim data-web-0 for Pod web-0 in StatefulSet web failed error: boom",
        ),
    ];
    assert_eq!(cases.len(), 5);
    for (event, reason, message) in cases {
        assert_eq!(event.reason, reason);
        assert_eq!(event.message, message);
    }
}

#[test]
fn max_unavailable_rounds_down_and_is_at_least_one() {
    let cases = [
        (json!(1), 1),
        (json!(2), 2),
        (json!("10%"), 1),
        (json!("50%"), 1),
        (json!("100%"), 3),
    ];
    assert_eq!(cases.len(), 5);
    for (value, expected) in cases {
        let set = stateful_set(
            json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": value.clone()}}}),
        );
        assert_eq!(max_unavailable(&set), expected, "{value}");
    }
}

#[test]
fn the_governing_service_names_each_pod_by_its_hostname() {
    use k8s_openapi::api::core::v1::Service;
    let set = stateful_set(json!({}));
    let pod = new_pod(&set, &set.spec.as_ref().unwrap().template, 0, "r");
    let service = |name: &str| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}}}))
        .unwrap()
    };
    let endpoint = crate::endpointslice::pod_to_endpoint(&pod, None, &service("web"), "IPv4");
    assert_eq!(endpoint.hostname.as_deref(), Some("web-0"));
    // Another Service selecting the same pods does not name them.
    let endpoint = crate::endpointslice::pod_to_endpoint(&pod, None, &service("other"), "IPv4");
    assert_eq!(endpoint.hostname, None);
}

#[test]
fn orphans_the_set_selects_and_names_are_adopted() {
    // (pod name, labels, owned by another controller, adopted)
    let cases: Vec<(&str, Value, bool, bool)> = vec![
        ("web-1", json!({"app": "web"}), false, true),
        ("web-1", json!({"app": "other"}), false, false),
        ("cache-1", json!({"app": "web"}), false, false),
        ("web-1", json!({"app": "web"}), true, false),
    ];
    assert_eq!(cases.len(), 4);
    for (i, (name, labels, foreign, adopted)) in cases.into_iter().enumerate() {
        let mut set = stateful_set(json!({"podManagementPolicy": "Parallel"}));
        set.spec.as_mut().unwrap().replicas = Some(2);
        let mut cluster = Cluster::new(set);
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": "orphan-uid",
                         "labels": labels},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
        if foreign {
            pod.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]);
        }
        cluster.pods.push(pod);
        let plan = cluster.sync();
        let adoptions: Vec<&str> = plan.adopt.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            adoptions,
            if adopted { vec![name] } else { vec![] },
            "case {i}"
        );
        if adopted {
            assert_eq!(plan.adopt[0].uid.as_deref(), Some("orphan-uid"));
            assert_eq!(
                plan.adopt[0].owner_references,
                [controller_ref(&cluster.set)]
            );
            // The adopted pod fills its ordinal: only web-0 is created.
            assert_eq!(created(&plan), ["web-0"], "case {i}");
        } else if name == "web-1" && !foreign {
            assert_eq!(created(&plan), ["web-0", "web-1"], "case {i}");
        }
    }
}

#[test]
fn a_pod_missing_its_identity_labels_gets_them_back() {
    let mut cluster = Cluster::new(stateful_set(json!({})));
    cluster.settle();
    for pod in &mut cluster.pods {
        if pod.metadata.name.as_deref() == Some("web-1") {
            let labels = pod.metadata.labels.as_mut().unwrap();
            labels.remove(POD_NAME_LABEL);
            labels.insert(POD_INDEX_LABEL.to_string(), "7".to_string());
        }
    }
    let plan = cluster.sync();
    match &plan.actions[..] {
        [PodAction::Relabel { name, labels, .. }] => {
            assert_eq!(name, "web-1");
            assert_eq!(
                labels.get(POD_NAME_LABEL).map(String::as_str),
                Some("web-1")
            );
            assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("1"));
            assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        }
        other => panic!("{other:?}"),
    }
    assert!(cluster.sync().actions.is_empty());
    assert_eq!(
        pod_event("update", "web-1", "web", None).message,
        "update Pod web-1 in StatefulSet web successful"
    );
}
