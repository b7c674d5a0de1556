//! `plan`: what one sync writes, for each branch of the controller's priority order.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_controllers::deployment::util::*;
use skiff_controllers::deployment::{
    compute_hash, next_collision_count, plan, Action, DeploymentObservation, DeploymentPlan,
    EventType, Requeue, ScaleChange, Timestamp,
};

const NOW: &str = "2025-03-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("valid time")
}

fn template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]}
    })
}

fn deployment(replicas: i32, strategy: Value, image: &str, extra_spec: Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": strategy,
        "template": template(image),
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": "web", "namespace": "default", "uid": "web-uid", "generation": 2,
            "annotations": {
                "deployment.kubernetes.io/revision": "1",
                "kubernetes.io/change-cause": "image web:2",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"
            }
        },
        "spec": spec,
        "status": {"observedGeneration": 1}
    }))
    .expect("valid deployment")
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

struct Rs<'a> {
    name: &'a str,
    image: &'a str,
    replicas: i32,
    available: i32,
    revision: &'a str,
    desired: i32,
    created: &'a str,
}

fn replica_set(rs: Rs<'_>) -> ReplicaSet {
    let mut t = template(rs.image);
    t["metadata"]["labels"]["pod-template-hash"] = json!(rs.name);
    serde_json::from_value(json!({
        "metadata": {
            "name": rs.name, "namespace": "default", "uid": format!("{}-uid", rs.name),
            "creationTimestamp": rs.created,
            "annotations": {
                "deployment.kubernetes.io/revision": rs.revision,
                "deployment.kubernetes.io/desired-replicas": rs.desired.to_string(),
                "deployment.kubernetes.io/max-replicas": rs.desired.to_string()
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                 "uid": "web-uid", "controller": true}]
        },
        "spec": {"replicas": rs.replicas, "selector": {"matchLabels": {"app": "web"}}, "template": t},
        "status": {"replicas": rs.replicas, "readyReplicas": rs.available,
                   "availableReplicas": rs.available, "observedGeneration": 1}
    }))
    .expect("valid replica set")
}

fn run(deployment: Deployment, replica_sets: Vec<ReplicaSet>, pods: Vec<Pod>) -> DeploymentPlan {
    plan(
        &DeploymentObservation {
            deployment,
            replica_sets,
            pods,
        },
        now(),
    )
}

fn messages(plan: &DeploymentPlan) -> Vec<String> {
    plan.events.iter().map(|e| e.message.clone()).collect()
}

fn status_write(plan: &DeploymentPlan) -> &Deployment {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateDeploymentStatus { deployment } => Some(deployment),
            _ => None,
        })
        .expect("a status write")
}

fn progressing(d: &Deployment) -> (String, String, String) {
    let status = d.status.clone().unwrap_or_default();
    let c = get_condition(&status, CONDITION_PROGRESSING).expect("Progressing condition");
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

#[test]
fn new_template_creates_the_new_replica_set_and_records_revision_two() {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "web:2", json!({}));
    d.status = serde_json::from_value(json!({
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3
    }))
    .expect("status");
    let old = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 3,
        available: 3,
        revision: "1",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    let p = run(d.clone(), vec![old], vec![]);
    assert_eq!(p.error, None);

    let hash = compute_hash(&d.spec.clone().expect("spec").template, None);
    let name = format!("web-{hash}");
    let Some(Action::CreateReplicaSet { replica_set: rs }) = p.actions.first() else {
        panic!(
            "first action must create the new ReplicaSet: {:?}",
            p.actions
        );
    };
    assert_eq!(rs.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(rs_spec_replicas(rs), 1, "25% of 3 surges by one pod");
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(REVISION_ANNOTATION).map(String::as_str),
        Some("2")
    );
    assert_eq!(
        annotations
            .get(DESIRED_REPLICAS_ANNOTATION)
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        annotations.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("4")
    );
    assert_eq!(
        annotations
            .get("kubernetes.io/change-cause")
            .map(String::as_str),
        Some("image web:2")
    );
    assert!(!annotations.contains_key(LAST_APPLIED_CONFIG_ANNOTATION));
    let spec = rs.spec.clone().expect("spec");
    assert_eq!(
        spec.selector
            .match_labels
            .unwrap_or_default()
            .get(POD_TEMPLATE_HASH_LABEL),
        Some(&hash)
    );
    let template_labels = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels);
    assert_eq!(
        template_labels
            .unwrap_or_default()
            .get(POD_TEMPLATE_HASH_LABEL),
        Some(&hash)
    );
    let owner = &rs.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "web-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );

    assert_eq!(
        messages(&p),
        vec![format!("Scaled up replica set {name} from 0 to 1")]
    );
    assert_eq!(p.events[0].reason, "ScalingReplicaSet");
    assert_eq!(p.events[0].type_, EventType::Normal);

    // maxUnavailable 0: the old ReplicaSet waits for the new pod.
    assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
    let written = status_write(&p);
    let revision = written
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .get(REVISION_ANNOTATION)
        .cloned();
    assert_eq!(revision.as_deref(), Some("2"));
    assert_eq!(
        progressing(written),
        (
            "True".to_string(),
            REASON_NEW_REPLICA_SET_CREATED.to_string(),
            format!("Created new replica set {name:?}")
        )
    );
    let status = written.status.clone().expect("status");
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.replicas, Some(3));
    assert_eq!(
        status.updated_replicas, None,
        "the new ReplicaSet has no pods yet"
    );
    assert_eq!(status.available_replicas, Some(3));
    let available = get_condition(&status, CONDITION_AVAILABLE).expect("Available");
    assert_eq!(
        (
            available.status.as_str(),
            available.reason.as_deref(),
            available.message.as_deref()
        ),
        (
            "True",
            Some(REASON_MINIMUM_REPLICAS_AVAILABLE),
            Some("Deployment has minimum availability.")
        )
    );
}

#[test]
fn scaling_event_resizes_proportionally_instead_of_rolling_out() {
    // Template changed AND replicas changed: the scaling event wins, no new ReplicaSet.
    let d = deployment(5, rolling(json!(0), json!(1)), "web:2", json!({}));
    let old = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 3,
        available: 3,
        revision: "1",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    let p = run(d, vec![old], vec![]);
    assert!(!p
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateReplicaSet { .. })));
    let Some(Action::UpdateReplicaSet { replica_set, scale }) = p.actions.first() else {
        panic!("expected a resize: {:?}", p.actions);
    };
    assert_eq!(*scale, Some(ScaleChange { from: 3, to: 5 }));
    assert_eq!(desired_replicas_annotation(replica_set), Some(5));
    assert_eq!(
        messages(&p),
        vec!["Scaled up replica set web-old from 3 to 5".to_string()]
    );
}

#[test]
fn paused_deployment_never_creates_a_replica_set() {
    let d = deployment(
        3,
        rolling(json!(1), json!(0)),
        "web:2",
        json!({"paused": true}),
    );
    let old = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 3,
        available: 3,
        revision: "1",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    let p = run(d, vec![old], vec![]);
    assert!(p
        .actions
        .iter()
        .all(|a| matches!(a, Action::UpdateDeploymentStatus { .. })));
    assert_eq!(
        progressing(status_write(&p)),
        (
            "Unknown".to_string(),
            REASON_DEPLOYMENT_PAUSED.to_string(),
            "Deployment is paused".to_string()
        )
    );
}

#[test]
fn paused_deployment_still_scales_proportionally() {
    let d = deployment(
        10,
        rolling(json!(0), json!(1)),
        "web:2",
        json!({"paused": true}),
    );
    let new_rs = replica_set(Rs {
        name: "web-new",
        image: "web:2",
        replicas: 2,
        available: 2,
        revision: "2",
        desired: 5,
        created: "2025-01-02T00:00:00Z",
    });
    let old = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 3,
        available: 3,
        revision: "1",
        desired: 5,
        created: "2025-01-01T00:00:00Z",
    });
    let p = run(d, vec![old, new_rs], vec![]);
    let mut sizes: Vec<(String, i32)> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateReplicaSet { replica_set, .. } => Some((
                replica_set.metadata.name.clone().unwrap_or_default(),
                rs_spec_replicas(replica_set),
            )),
            _ => None,
        })
        .collect();
    // 5 -> 10: each ReplicaSet doubles.
    sizes.sort();
    assert_eq!(
        sizes,
        vec![("web-new".to_string(), 4), ("web-old".to_string(), 6)]
    );
}

fn pod(owner: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{owner}-pod"), "namespace": "default",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": owner, "uid": format!("{owner}-uid"),
                                          "controller": true}]},
        "status": {"phase": phase}
    }))
    .expect("valid pod")
}

#[test]
fn recreate_scales_old_down_then_waits_for_old_pods_before_creating() {
    let recreate = json!({"type": "Recreate"});
    let d = deployment(3, recreate.clone(), "web:2", json!({}));
    let old = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 3,
        available: 3,
        revision: "1",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });

    // Sync 1: old to zero, nothing created.
    let p = run(d.clone(), vec![old.clone()], vec![]);
    assert!(matches!(
        p.actions.first(),
        Some(Action::UpdateReplicaSet {
            scale: Some(ScaleChange { from: 3, to: 0 }),
            ..
        })
    ));
    assert!(!p
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateReplicaSet { .. })));

    // Sync 2: scaled to zero but a pod still runs: wait.
    let mut drained = old.clone();
    if let Some(spec) = drained.spec.as_mut() {
        spec.replicas = Some(0);
    }
    if let Some(status) = drained.status.as_mut() {
        status.replicas = 0;
        status.available_replicas = Some(0);
        status.ready_replicas = Some(0);
    }
    let p = run(
        d.clone(),
        vec![drained.clone()],
        vec![pod("web-old", "Running")],
    );
    assert!(!p
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateReplicaSet { .. })));

    // Sync 3: only a finished pod is left: the new ReplicaSet is created at full size.
    let p = run(d, vec![drained], vec![pod("web-old", "Succeeded")]);
    let Some(Action::CreateReplicaSet { replica_set }) = p.actions.first() else {
        panic!("expected creation: {:?}", p.actions);
    };
    assert_eq!(rs_spec_replicas(replica_set), 3);
}

#[test]
fn reused_old_template_gets_the_next_revision_and_keeps_its_history() {
    // Rolled back to the template of revision 1 while revisions 2 and 3 exist.
    let d = deployment(2, rolling(json!(1), json!(0)), "web:1", json!({}));
    let rs = |name, image, revision, created, replicas| {
        replica_set(Rs {
            name,
            image,
            replicas,
            available: replicas,
            revision,
            desired: 2,
            created,
        })
    };
    let p = run(
        d,
        vec![
            rs("web-one", "web:1", "1", "2025-01-01T00:00:00Z", 0),
            rs("web-two", "web:2", "2", "2025-01-02T00:00:00Z", 0),
            rs("web-three", "web:3", "3", "2025-01-03T00:00:00Z", 2),
        ],
        vec![],
    );
    let Some(Action::UpdateReplicaSet { replica_set, scale }) = p.actions.first() else {
        panic!("expected the annotation sync: {:?}", p.actions);
    };
    assert_eq!(replica_set.metadata.name.as_deref(), Some("web-one"));
    // The same sync then starts scaling it up again; both writes merge into one update.
    assert_eq!(*scale, Some(ScaleChange { from: 0, to: 1 }));
    let annotations = replica_set.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(REVISION_ANNOTATION).map(String::as_str),
        Some("4")
    );
    assert_eq!(
        annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
}

#[test]
fn revision_history_drops_oldest_entries_beyond_the_limit() {
    let d = deployment(1, rolling(json!(1), json!(0)), "web:1", json!({}));
    let mut rs = replica_set(Rs {
        name: "web-one",
        image: "web:1",
        replicas: 1,
        available: 1,
        revision: "20",
        desired: 1,
        created: "2025-01-01T00:00:00Z",
    });
    if let Some(a) = rs.metadata.annotations.as_mut() {
        a.insert(REVISION_HISTORY_ANNOTATION.into(), "11,12,13".into());
    }
    set_new_replica_set_annotations(&d, &mut rs, "22", true, 9);
    let history = rs.metadata.annotations.unwrap_or_default();
    assert_eq!(
        history.get(REVISION_ANNOTATION).map(String::as_str),
        Some("22")
    );
    // "11,12,13" + ",20" is 11 characters; dropping "11" makes it fit in 9.
    assert_eq!(
        history.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("12,13,20")
    );
}

#[test]
fn complete_rollout_deletes_revisions_beyond_the_history_limit() {
    let mut d = deployment(
        2,
        rolling(json!(1), json!(0)),
        "web:3",
        json!({"revisionHistoryLimit": 1}),
    );
    d.status = serde_json::from_value(json!({
        "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
        "availableReplicas": 2
    }))
    .expect("status");
    let rs = |name, image, revision, created, replicas| {
        replica_set(Rs {
            name,
            image,
            replicas,
            available: replicas,
            revision,
            desired: 2,
            created,
        })
    };
    let p = run(
        d,
        vec![
            rs("web-one", "web:1", "1", "2025-01-01T00:00:00Z", 0),
            rs("web-two", "web:2", "2", "2025-01-02T00:00:00Z", 0),
            rs("web-three", "web:3", "3", "2025-01-03T00:00:00Z", 2),
        ],
        vec![],
    );
    let deleted: Vec<&str> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteReplicaSet { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec!["web-one"]);
    assert_eq!(
        progressing(status_write(&p)).1,
        REASON_NEW_REPLICA_SET_AVAILABLE.to_string()
    );
}

#[test]
fn stuck_rollout_is_requeued_for_its_deadline() {
    let mut d = deployment(3, rolling(json!(1), json!(0)), "web:2", json!({}));
    d.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "1".to_string())].into());
    let last_update = "2025-03-01T11:58:20Z"; // 100 s before now
    d.status = serde_json::from_value(json!({
        "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 1,
        "availableReplicas": 1, "unavailableReplicas": 2, "terminatingReplicas": 0,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability.",
             "lastUpdateTime": last_update, "lastTransitionTime": last_update},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
             "message": "ReplicaSet \"web-new\" is progressing.",
             "lastUpdateTime": last_update, "lastTransitionTime": last_update}
        ]
    }))
    .expect("status");
    let new_rs = replica_set(Rs {
        name: "web-new",
        image: "web:2",
        replicas: 3,
        available: 1,
        revision: "1",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    let p = run(d, vec![new_rs], vec![]);
    assert_eq!(p.actions, vec![], "nothing changed");
    assert_eq!(p.requeue, Requeue::After(Duration::from_secs(501)));
}

#[test]
fn empty_selector_only_warns() {
    let mut d = deployment(3, rolling(json!(1), json!(0)), "web:2", json!({}));
    if let Some(spec) = d.spec.as_mut() {
        spec.selector = Default::default();
    }
    let p = run(d, vec![], vec![]);
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].type_, EventType::Warning);
    assert_eq!(p.events[0].reason, "SelectingAll");
    assert_eq!(
        status_write(&p)
            .status
            .clone()
            .and_then(|s| s.observed_generation),
        Some(2)
    );
    assert_eq!(p.actions.len(), 1);
}

#[test]
fn scaling_events_hold_only_for_the_replica_sets_whose_write_went_through() {
    // Proportional scaling resizes two ReplicaSets in one sync; if the second write fails, the
    // first one's event must still be recorded, and the second one's must not.
    let d = deployment(
        10,
        rolling(json!(0), json!(1)),
        "web:2",
        json!({"paused": true}),
    );
    let new_rs = replica_set(Rs {
        name: "web-new",
        image: "web:2",
        replicas: 2,
        available: 2,
        revision: "2",
        desired: 5,
        created: "2025-01-02T00:00:00Z",
    });
    let old = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 3,
        available: 3,
        revision: "1",
        desired: 5,
        created: "2025-01-01T00:00:00Z",
    });
    let p = run(d, vec![old, new_rs], vec![]);
    let written: Vec<&str> = p
        .actions
        .iter()
        .filter_map(Action::replica_set_name)
        .collect();
    // The new ReplicaSet's annotation sync comes first and absorbs its resize.
    assert_eq!(written, vec!["web-new", "web-old"]);
    assert!(p
        .events
        .iter()
        .all(|e| e.reason == "ScalingReplicaSet" && e.replica_set.is_some()));

    let table: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["web-new"], &["Scaled up replica set web-new from 2 to 4"]),
        (
            &["web-new", "web-old"],
            &[
                "Scaled up replica set web-old from 3 to 6",
                "Scaled up replica set web-new from 2 to 4",
            ],
        ),
    ];
    for (took_effect, expected) in table {
        let recorded: Vec<String> = p
            .events_for_writes(|name| took_effect.contains(&name))
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(
            recorded, *expected,
            "writes that took effect: {took_effect:?}"
        );
    }
}

#[test]
fn events_about_no_replica_set_are_kept_whatever_the_writes() {
    let mut d = deployment(3, rolling(json!(1), json!(0)), "web:2", json!({}));
    if let Some(spec) = d.spec.as_mut() {
        spec.selector = Default::default();
    }
    let p = run(d, vec![], vec![]);
    let kept: Vec<String> = p
        .events_for_writes(|_| false)
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(kept, vec!["SelectingAll".to_string()]);
}

#[test]
fn unknown_strategy_is_an_error_with_rate_limited_requeue() {
    let d = deployment(3, json!({"type": "Canary"}), "web:2", json!({}));
    let p = run(d, vec![], vec![]);
    assert_eq!(
        p.error.map(|e| e.to_string()),
        Some("unexpected deployment strategy type: Canary".to_string())
    );
    assert_eq!(p.requeue, Requeue::RateLimited);
}

#[test]
fn collision_on_create_bumps_the_count_unless_the_object_is_ours() {
    let d = deployment(3, rolling(json!(1), json!(0)), "web:2", json!({}));
    let ours = replica_set(Rs {
        name: "web-x",
        image: "web:2",
        replicas: 1,
        available: 0,
        revision: "2",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    assert_eq!(next_collision_count(&d, &ours), None);
    let foreign = replica_set(Rs {
        name: "web-x",
        image: "other:1",
        replicas: 1,
        available: 0,
        revision: "2",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    assert_eq!(next_collision_count(&d, &foreign), Some(1));
}

#[test]
fn templates_compare_equal_ignoring_the_hash_label() {
    let a: k8s_openapi::api::core::v1::PodTemplateSpec =
        serde_json::from_value(template("web:1")).expect("template");
    let mut b = a.clone();
    if let Some(labels) = b.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
    }
    assert!(equal_ignore_hash(&a, &b));
    let c: k8s_openapi::api::core::v1::PodTemplateSpec =
        serde_json::from_value(template("web:2")).expect("template");
    assert!(!equal_ignore_hash(&a, &c));
}

#[test]
fn deployment_status_counts_the_terminating_pods_of_its_replica_sets() {
    let d = deployment(3, rolling(json!(1), json!(0)), "web:2", json!({}));
    let mut new_rs = replica_set(Rs {
        name: "web-new",
        image: "web:2",
        replicas: 3,
        available: 3,
        revision: "2",
        desired: 3,
        created: "2025-01-01T00:00:00Z",
    });
    let mut old_rs = replica_set(Rs {
        name: "web-old",
        image: "web:1",
        replicas: 0,
        available: 0,
        revision: "1",
        desired: 3,
        created: "2024-01-01T00:00:00Z",
    });
    new_rs.status.as_mut().expect("status").terminating_replicas = Some(1);
    old_rs.status.as_mut().expect("status").terminating_replicas = Some(2);
    let all = [new_rs.clone(), old_rs];
    assert_eq!(terminating_replica_count(&all), 3);
    let status = calculate_status(&all, Some(&new_rs), &d, now());
    assert_eq!(status.terminating_replicas, Some(3));

    let settled = calculate_status(&[], None, &d, now());
    assert_eq!(
        settled.terminating_replicas,
        Some(0),
        "a Deployment with nothing terminating still says 0, as Kubernetes 1.36 does"
    );
}
