//! One CloneSet pass, planned without I/O: which pods are created, refreshed, updated in place
//! or marked for recreation, under each update type, partition and pause.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_api::cloneset::CloneSet;
use skiff_controllers::cloneset::revision::new_revision;
use skiff_controllers::cloneset::sync::{plan_pass, plan_update, PodAction, Step, SyncInput};

fn cloneset(replicas: i32, strategy: Value, env: &str, image: &str) -> CloneSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "cs-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": image, "env": [{"name": "MODE", "value": env}],
                }]},
            },
            "updateStrategy": strategy,
        },
    }))
    .expect("cloneset")
}

/// A running, ready, Normal pod at `revision`, with its in-place condition True.
fn pod(name: &str, revision: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "uid": format!("uid-{name}"),
            "labels": {
                "app": "web", "controller-revision-hash": revision,
                "lifecycle.apps.kruise.io/state": "Normal",
            },
        },
        "spec": {
            "nodeName": "node-1",
            "readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
            "containers": [{"name": "web", "image": image, "env": [{"name": "MODE", "value": "a"}]}],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                {"type": "InPlaceUpdateReady", "status": "True"},
            ],
            "containerStatuses": [{"name": "web", "image": image, "imageID": format!("id-{image}"),
                "ready": true, "restartCount": 0}],
        },
    }))
    .expect("pod")
}

fn name(r: &ControllerRevision) -> String {
    r.metadata.name.clone().expect("named")
}

struct Fixture {
    cs: CloneSet,
    old: ControllerRevision,
    new: ControllerRevision,
    pods: Vec<Pod>,
}

/// Five pods at the revision of `nginx:1` / env `a`, and a CloneSet now asking for `image` and
/// `env` under `strategy`.
fn fixture(strategy: Value, env: &str, image: &str) -> Fixture {
    let old_cs = cloneset(5, strategy.clone(), "a", "nginx:1");
    let cs = cloneset(5, strategy, env, image);
    let old = new_revision(&old_cs, 1, 0);
    let new = new_revision(&cs, 2, 0);
    let pods = (0..5)
        .map(|i| pod(&format!("web-p{i}"), &name(&old), "nginx:1"))
        .collect();
    Fixture { cs, old, new, pods }
}

fn plan_of(f: &Fixture) -> Vec<PodAction> {
    let revisions = [f.old.clone(), f.new.clone()];
    let input = SyncInput {
        cloneset: &f.cs,
        pods: &f.pods,
        current_revision: &f.old,
        update_revision: &f.new,
        revisions: &revisions,
        claim_ids: &[],
        now: Timestamp::now(),
    };
    plan_update(&input).actions
}

fn count(actions: &[PodAction], pred: impl Fn(&PodAction) -> bool) -> usize {
    actions.iter().filter(|a| pred(a)).count()
}

#[test]
fn update_type_decides_between_in_place_and_recreate() {
    let in_place = |a: &PodAction| matches!(a, PodAction::StartInPlace { .. });
    let recreate = |a: &PodAction| matches!(a, PodAction::MarkForRecreate { .. });
    let all = json!({"type": "InPlaceIfPossible", "maxUnavailable": "100%", "partition": 0,
                     "inPlaceUpdateStrategy": {"gracePeriodSeconds": 10}});
    // Only the image changed: in place, all five within a 100% budget.
    let actions = plan_of(&fixture(all.clone(), "a", "nginx:2"));
    assert_eq!(count(&actions, in_place), 5, "{actions:?}");
    if let Some(PodAction::StartInPlace {
        change,
        grace_seconds,
        ..
    }) = actions.iter().find(|a| in_place(a))
    {
        assert_eq!(*grace_seconds, 10);
        assert_eq!(
            change.container_images.get("web").map(String::as_str),
            Some("nginx:2")
        );
    }
    // The env changed too: InPlaceIfPossible falls back to recreating.
    let actions = plan_of(&fixture(all, "b", "nginx:2"));
    assert_eq!(count(&actions, recreate), 5, "{actions:?}");
    assert_eq!(count(&actions, in_place), 0);
    // ReCreate never updates in place.
    let recreate_all = json!({"type": "ReCreate", "maxUnavailable": "100%"});
    let actions = plan_of(&fixture(recreate_all, "a", "nginx:2"));
    assert_eq!(count(&actions, recreate), 5, "{actions:?}");
}

#[test]
fn in_place_only_refuses_a_change_it_cannot_make_in_place() {
    let f = fixture(
        json!({"type": "InPlaceOnly", "maxUnavailable": "100%"}),
        "b",
        "nginx:2",
    );
    let revisions = [f.old.clone(), f.new.clone()];
    let plan = plan_update(&SyncInput {
        cloneset: &f.cs,
        pods: &f.pods,
        current_revision: &f.old,
        update_revision: &f.new,
        revisions: &revisions,
        claim_ids: &[],
        now: Timestamp::now(),
    });
    let error = plan.error.expect("an error");
    assert!(
        error.ends_with("update strategy is InPlaceOnly but can not update in-place"),
        "{error}"
    );
}

#[test]
fn partition_budget_and_pause_limit_the_updates() {
    let in_place = |a: &PodAction| matches!(a, PodAction::StartInPlace { .. });
    let cases = [
        // (strategy, pods updated this pass)
        (
            json!({"type": "InPlaceIfPossible", "maxUnavailable": "100%", "partition": 3}),
            2,
        ),
        (
            json!({"type": "InPlaceIfPossible", "maxUnavailable": "100%", "partition": "60%"}),
            2,
        ),
        (json!({"type": "InPlaceIfPossible"}), 1),
        (json!({"type": "InPlaceIfPossible", "maxUnavailable": 2}), 2),
        (
            json!({"type": "InPlaceIfPossible", "maxUnavailable": "100%", "paused": true}),
            0,
        ),
    ];
    for (strategy, expected) in cases {
        let actions = plan_of(&fixture(strategy.clone(), "a", "nginx:2"));
        assert_eq!(
            count(&actions, in_place),
            expected,
            "{strategy}: {actions:?}"
        );
    }
}

#[test]
fn new_pods_get_the_readiness_gate_and_the_partitioned_revision() {
    let strategy = json!({"type": "InPlaceIfPossible", "partition": 3, "paused": true});
    let mut f = fixture(strategy, "a", "nginx:2");
    f.cs.spec.as_mut().expect("spec").replicas = Some(10);
    let revisions = [f.old.clone(), f.new.clone()];
    let input = SyncInput {
        cloneset: &f.cs,
        pods: &f.pods,
        current_revision: &f.old,
        update_revision: &f.new,
        revisions: &revisions,
        claim_ids: &[],
        now: Timestamp::now(),
    };
    let mut n = 0;
    let plan = plan_pass(&input, &mut || {
        n += 1;
        format!("id{n:03}")
    });
    assert_eq!(plan.step, Step::Scale);
    let created: Vec<(&Pod, &String)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            PodAction::Create { pod, revision } => Some((&**pod, revision)),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 5);
    for (pod, revision) in created {
        // Five old pods already satisfy partition 3: the new ones are at the update revision.
        assert_eq!(*revision, name(&f.new));
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("controller-revision-hash"), Some(&name(&f.new)));
        let id = labels
            .get("apps.kruise.io/cloneset-instance-id")
            .expect("id");
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some(format!("web-{id}").as_str())
        );
        assert_eq!(
            labels
                .get("lifecycle.apps.kruise.io/state")
                .map(String::as_str),
            Some("PreparingNormal")
        );
        let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.clone());
        assert_eq!(
            gates.map(|g| g[0].condition_type.clone()).as_deref(),
            Some("InPlaceUpdateReady")
        );
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone());
        assert_eq!(image.as_deref(), Some("nginx:2"));
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CloneSet", Some(true))
        );
    }
}

#[test]
fn refresh_marks_new_pods_ready_and_normal_before_updating_anything() {
    let f = fixture(
        json!({"type": "InPlaceIfPossible", "maxUnavailable": "100%"}),
        "a",
        "nginx:1",
    );
    let mut fresh = pod("web-new", &name(&f.new), "nginx:1");
    fresh.status = None;
    if let Some(labels) = fresh.metadata.labels.as_mut() {
        labels.insert(
            "lifecycle.apps.kruise.io/state".into(),
            "PreparingNormal".into(),
        );
    }
    let mut fx = f;
    fx.pods = vec![fresh];
    let actions = plan_of(&fx);
    assert!(actions.contains(&PodAction::SetInPlaceReady {
        name: "web-new".into(),
        ready: true
    }));
    assert!(actions.iter().any(|a| matches!(a,
        PodAction::Patch { name, patch } if name == "web-new"
            && patch["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Normal")));
}

#[test]
fn claim_templates_give_each_new_pod_its_claims_and_reuse_a_gone_pods_id() {
    let strategy = json!({"type": "ReCreate"});
    let mut f = fixture(strategy, "a", "nginx:1");
    let spec = f.cs.spec.as_mut().expect("spec");
    spec.replicas = Some(7);
    spec.volume_claim_templates = Some(vec![serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .expect("claim template")]);
    let revisions = [f.old.clone()];
    // The claims of instance `left` outlived its pod (deleted by hand); `web-p0`'s id is
    // taken, so it is not reused.
    let claim_ids = ["left".to_string(), "p0".to_string()];
    let mut pods = f.pods.clone();
    for pod in &mut pods {
        let id = pod.metadata.name.as_deref().expect("named")["web-".len()..].to_string();
        pod.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert(skiff_api::cloneset::INSTANCE_ID_LABEL.into(), id);
    }
    let input = SyncInput {
        cloneset: &f.cs,
        pods: &pods,
        current_revision: &f.old,
        update_revision: &f.old,
        revisions: &revisions,
        claim_ids: &claim_ids,
        now: Timestamp::now(),
    };
    let plan = plan_pass(&input, &mut || "fresh".to_string());
    let created: Vec<&Pod> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            PodAction::Create { pod, .. } => Some(&**pod),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = created
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(names, ["web-left", "web-fresh"]);
    let claims: Vec<String> = created
        .iter()
        .map(|p| {
            let volumes = p
                .spec
                .as_ref()
                .and_then(|s| s.volumes.clone())
                .unwrap_or_default();
            assert_eq!(volumes.len(), 1, "one volume per claim template");
            assert_eq!(volumes[0].name, "data");
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .expect("a claim volume")
                .claim_name
                .clone()
        })
        .collect();
    assert_eq!(claims, ["data-web-left", "data-web-fresh"]);

    let made = skiff_controllers::cloneset::sync::new_claims(&f.cs, "fresh");
    assert_eq!(made.len(), 1);
    let claim = serde_json::to_value(&made[0]).expect("claim encodes");
    assert_eq!(claim["metadata"]["name"], "data-web-fresh");
    assert_eq!(claim["metadata"]["namespace"], "ns");
    assert_eq!(
        claim["metadata"]["labels"],
        json!({"app": "web", "apps.kruise.io/cloneset-instance-id": "fresh"})
    );
    assert_eq!(claim["metadata"]["ownerReferences"][0]["uid"], "cs-uid");
    assert_eq!(claim["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
}
