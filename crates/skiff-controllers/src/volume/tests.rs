//! Table tests of the binder's planner, after the cases of upstream's `binder_test.go`
//! (`TestSync`: claims and volumes in each state and what one sync makes of them) and
//! `index_test.go` (`TestMatchVolume`: which volume a claim gets).

use super::*;
use serde_json::json;

const UID: &str = "uid-claim";

/// (upstream case, claim, volumes, expected summary)
type ClaimCase = (&'static str, Value, Vec<Value>, Vec<&'static str>);
/// (upstream case, volume, its claim, expected summary)
type VolumeCase = (&'static str, Value, Option<Value>, Vec<&'static str>);

/// A volume of `size` (unbound, Available), with `extra` merged in.
fn volume(name: &str, size: &str, extra: Value) -> Value {
    let mut v = json!({"metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
                 "hostPath": {"path": format!("/data/{name}")}},
        "status": {"phase": "Available"}});
    merge(&mut v, extra);
    v
}

/// A claim `default/claim` of `size` (Pending), with `extra` merged in.
fn claim(size: &str, extra: Value) -> Value {
    let mut v = json!({"metadata": {"name": "claim", "namespace": "default", "uid": UID,
                                    "resourceVersion": "7"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "volumeMode": "Filesystem", "storageClassName": ""},
        "status": {"phase": "Pending"}});
    merge(&mut v, extra);
    v
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

fn bound_to_claim() -> Value {
    json!({"spec": {"claimRef": {"namespace": "default", "name": "claim", "uid": UID}}})
}

fn class(name: &str, provisioner: &str, mode: &str) -> Value {
    json!({"metadata": {"name": name}, "provisioner": provisioner,
           "reclaimPolicy": "Delete", "volumeBindingMode": mode})
}

/// What a plan does, in short: each write as `kind target detail`, then event reasons.
fn summary(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .writes
        .iter()
        .map(|w| match w {
            Write::UpdateClaim(c) => format!(
                "claim volumeName={} class={} completed={} by-controller={} finalizers={}",
                text(c, "/spec/volumeName"),
                text(c, "/spec/storageClassName"),
                annotation(c, ANN_BIND_COMPLETED).unwrap_or("-"),
                annotation(c, ANN_BOUND_BY_CONTROLLER).unwrap_or("-"),
                c.pointer("/metadata/finalizers")
                    .map_or(0, |f| f.as_array().map_or(0, Vec::len)),
            ),
            Write::ClaimStatus(s) => format!("claim status {}", text(s, "/phase")),
            Write::UpdateVolume(v) => format!(
                "volume {} claimRef={} by-controller={} finalizers={}",
                text(v, "/metadata/name"),
                text(v, "/spec/claimRef/name"),
                annotation(v, ANN_BOUND_BY_CONTROLLER).unwrap_or("-"),
                v.pointer("/metadata/finalizers")
                    .map_or(0, |f| f.as_array().map_or(0, Vec::len)),
            ),
            Write::VolumeStatus { name, status } => {
                format!("volume {name} status {}", text(status, "/phase"))
            }
            Write::CreateVolume { volume, directory } => {
                format!("create {} at {directory}", text(volume, "/metadata/name"))
            }
            Write::DeleteVolume { name, directory } => {
                format!("delete {name} dir={}", directory.as_deref().unwrap_or("-"))
            }
        })
        .collect();
    out.extend(plan.events.iter().map(|e| format!("event {}", e.reason)));
    out
}

#[test]
fn claim_syncs_follow_upstream_binder_cases() {
    let wffc = class("local-path", LOCAL_PATH_PROVISIONER, "WaitForFirstConsumer");
    let immediate_external = class("fast", "example.com/fast", "Immediate");
    // (upstream case, claim, volumes, expected summary)
    let cases: Vec<ClaimCase> = vec![
        (
            "1-1 binds to a matching unbound volume",
            claim("1Gi", json!({})),
            vec![volume("volume1-1", "1Gi", json!({}))],
            vec![
                "volume volume1-1 claimRef=claim by-controller=yes finalizers=0",
                "volume volume1-1 status Bound",
                "claim volumeName=volume1-1 class= completed=yes by-controller=yes finalizers=0",
                "claim status Bound",
            ],
        ),
        (
            "1-2 no matching volume, no class",
            claim("10Gi", json!({})),
            vec![volume("volume1-2", "1Gi", json!({}))],
            vec!["event FailedBinding"],
        ),
        (
            "1-3 resets a claim wrongly marked Bound to Pending",
            claim("10Gi", json!({"status": {"phase": "Bound"}})),
            vec![volume("volume1-3", "1Gi", json!({}))],
            vec!["claim status Pending", "event FailedBinding"],
        ),
        (
            "1-4 binds to the smallest matching volume",
            claim("1Gi", json!({})),
            vec![
                volume("volume1-4-big", "10Gi", json!({})),
                volume("volume1-4", "1Gi", json!({})),
            ],
            vec![
                "volume volume1-4 claimRef=claim by-controller=yes finalizers=0",
                "volume volume1-4 status Bound",
                "claim volumeName=volume1-4 class= completed=yes by-controller=yes finalizers=0",
                "claim status Bound",
            ],
        ),
        (
            "1-5 binds to a volume pre-bound to it (no uid yet)",
            claim("1Gi", json!({})),
            vec![volume(
                "volume1-5",
                "10Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "claim"}}}),
            )],
            vec![
                "volume volume1-5 claimRef=claim by-controller=- finalizers=0",
                "volume volume1-5 status Bound",
                "claim volumeName=volume1-5 class= completed=yes by-controller=yes finalizers=0",
                "claim status Bound",
            ],
        ),
        (
            "1-7 skips a volume bound to another claim",
            claim("1Gi", json!({})),
            vec![volume(
                "volume1-7",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "other", "uid": "x"}},
                       "status": {"phase": "Bound"}}),
            )],
            vec!["event FailedBinding"],
        ),
        (
            "1-8 completes a binding whose volume side was saved",
            claim("1Gi", json!({})),
            vec![volume(
                "volume1-8",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "claim", "uid": UID}},
                       "status": {"phase": "Bound"}}),
            )],
            vec![
                "claim volumeName=volume1-8 class= completed=yes by-controller=yes finalizers=0",
                "claim status Bound",
            ],
        ),
        (
            "2-1 pre-bound to a volume that does not exist",
            claim("1Gi", json!({"spec": {"volumeName": "volume2-1"}, "status": {"phase": "Bound"}})),
            vec![],
            vec!["claim status Pending"],
        ),
        (
            "2-3 pre-bound to an existing unbound volume",
            claim("1Gi", json!({"spec": {"volumeName": "volume2-3"}})),
            vec![volume("volume2-3", "1Gi", json!({}))],
            vec![
                "volume volume2-3 claimRef=claim by-controller=yes finalizers=0",
                "volume volume2-3 status Bound",
                "claim volumeName=volume2-3 class= completed=yes by-controller=- finalizers=0",
                "claim status Bound",
            ],
        ),
        (
            "2-5 pre-bound to a volume bound to another claim",
            claim("1Gi", json!({"spec": {"volumeName": "volume2-5"}})),
            vec![volume(
                "volume2-5",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "other", "uid": "x"}}}),
            )],
            vec!["event FailedBinding"],
        ),
        (
            "3-1 bound to a volume that is gone",
            claim(
                "1Gi",
                json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
                       "spec": {"volumeName": "volume3-1"}, "status": {"phase": "Bound"}}),
            ),
            vec![],
            vec!["claim status Lost", "event ClaimLost"],
        ),
        (
            "3-2 bound to a volume that lost its claimRef",
            claim(
                "1Gi",
                json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
                       "spec": {"volumeName": "volume3-2"}, "status": {"phase": "Bound",
                       "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}),
            ),
            vec![volume("volume3-2", "1Gi", json!({}))],
            vec![
                "volume volume3-2 claimRef=claim by-controller=yes finalizers=0",
                "volume volume3-2 status Bound",
            ],
        ),
        (
            "3-4 bound to its bound volume: nothing to do",
            claim(
                "1Gi",
                json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
                       "spec": {"volumeName": "volume3-4"}, "status": {"phase": "Bound",
                       "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}),
            ),
            vec![volume(
                "volume3-4",
                "1Gi",
                merge_into(bound_to_claim(), json!({"status": {"phase": "Bound"}})),
            )],
            vec![],
        ),
        (
            "3-5 bound to a volume bound to another claim",
            claim(
                "1Gi",
                json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
                       "spec": {"volumeName": "volume3-5"}, "status": {"phase": "Bound"}}),
            ),
            vec![volume(
                "volume3-5",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "other", "uid": "x"}}}),
            )],
            vec!["claim status Lost", "event ClaimLost"],
        ),
        (
            "delayed binding waits for its first consumer",
            claim("1Gi", json!({"spec": {"storageClassName": "local-path"}})),
            vec![volume(
                "volume-wffc",
                "1Gi",
                json!({"spec": {"storageClassName": "local-path"}}),
            )],
            vec!["event WaitForFirstConsumer"],
        ),
        (
            "an external provisioner's claim is annotated for it",
            claim("1Gi", json!({"spec": {"storageClassName": "fast"}})),
            vec![],
            vec![
                "claim volumeName= class=fast completed=- by-controller=- finalizers=0",
                "event ExternalProvisioning",
            ],
        ),
        (
            "a kubernetes.io provisioner has no plugin",
            claim("1Gi", json!({"spec": {"storageClassName": "manual"}})),
            vec![],
            vec!["event ProvisioningFailed"],
        ),
        (
            "a class that does not exist",
            claim("1Gi", json!({"spec": {"storageClassName": "gold"}})),
            vec![],
            vec!["event ProvisioningFailed"],
        ),
        (
            "the local-path provisioner makes a volume on the selected node",
            claim(
                "1Gi",
                json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n1",
                                                    ANN_STORAGE_PROVISIONER: LOCAL_PATH_PROVISIONER}},
                       "spec": {"storageClassName": "local-path"}}),
            ),
            vec![],
            vec![
                "create pvc-uid-claim at /data/storage/pvc-uid-claim_default_claim",
                "event Provisioning",
                "event ProvisioningSucceeded",
            ],
        ),
        (
            "a delayed claim binds an existing volume reachable from the selected node",
            claim(
                "1Gi",
                json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n1"}},
                       "spec": {"storageClassName": "local-path"}}),
            ),
            vec![
                volume(
                    "on-n2",
                    "1Gi",
                    json!({"spec": {"storageClassName": "local-path", "nodeAffinity": {"required": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": HOSTNAME_LABEL,
                            "operator": "In", "values": ["n2"]}]}]}}}}),
                ),
                volume(
                    "on-n1",
                    "1Gi",
                    json!({"spec": {"storageClassName": "local-path", "nodeAffinity": {"required": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": HOSTNAME_LABEL,
                            "operator": "In", "values": ["n1"]}]}]}}}}),
                ),
            ],
            vec![
                "volume on-n1 claimRef=claim by-controller=yes finalizers=0",
                "volume on-n1 status Bound",
                "claim volumeName=on-n1 class=local-path completed=yes by-controller=yes finalizers=0",
                "claim status Bound",
            ],
        ),
        (
            "a claim without a class gets the default one",
            claim("1Gi", json!({"spec": {"storageClassName": null}})),
            vec![],
            vec!["claim volumeName= class=local-path completed=- by-controller=- finalizers=0"],
        ),
    ];
    assert_eq!(cases.len(), 21);
    let mut default_wffc = wffc.clone();
    default_wffc["metadata"]["annotations"] =
        json!({skiff_api::kinds::storage_class::DEFAULT_CLASS_ANNOTATION: "true"});
    let manual = class("manual", "kubernetes.io/no-provisioner", "Immediate");
    let classes = [&default_wffc, &immediate_external, &manual];
    for (name, claim, volumes, expected) in cases {
        let refs: Vec<&Value> = volumes.iter().collect();
        let cluster = Cluster {
            volumes: &refs,
            classes: &classes,
            storage_root: "/data/storage",
        };
        let plan = plan_claim(&claim, &cluster, false);
        assert_eq!(summary(&plan), expected, "{name}");
    }
}

fn merge_into(mut base: Value, patch: Value) -> Value {
    merge(&mut base, patch);
    base
}

#[test]
fn volume_syncs_follow_upstream_binder_cases() {
    let bound_claim = claim(
        "1Gi",
        json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
               "spec": {"volumeName": "volume"}, "status": {"phase": "Bound"}}),
    );
    let claim_elsewhere = claim(
        "1Gi",
        json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
               "spec": {"volumeName": "other"}, "status": {"phase": "Bound"}}),
    );
    let local = json!({"metadata": {"annotations": {ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER}},
        "spec": {"persistentVolumeReclaimPolicy": "Delete",
                 "hostPath": {"path": "/data/storage/pvc-uid-claim_default_claim"}}});
    // (upstream case, volume, its claim, expected summary)
    let cases: Vec<VolumeCase> = vec![
        (
            "4-1 a pending volume becomes Available",
            volume("volume", "1Gi", json!({"status": {"phase": "Pending"}})),
            None,
            vec!["volume volume status Available"],
        ),
        (
            "4-2 a pre-bound pending volume becomes Available",
            volume(
                "volume",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "claim"}},
                       "status": {"phase": "Pending"}}),
            ),
            None,
            vec!["volume volume status Available"],
        ),
        (
            "4-3 a volume whose claim is gone is Released and kept (Retain)",
            volume(
                "volume",
                "1Gi",
                merge_into(bound_to_claim(), json!({"status": {"phase": "Bound"}})),
            ),
            None,
            vec!["volume volume status Released"],
        ),
        (
            "4-4 a volume whose claim was replaced by a namesake is Released",
            volume(
                "volume",
                "1Gi",
                merge_into(bound_to_claim(), json!({"status": {"phase": "Bound"}})),
            ),
            Some(merge_into(
                bound_claim.clone(),
                json!({"metadata": {"uid": "new"}}),
            )),
            vec!["volume volume status Released"],
        ),
        (
            "4-5 the controller's binding to a claim bound elsewhere is undone",
            volume(
                "volume",
                "1Gi",
                merge_into(
                    bound_to_claim(),
                    json!({"metadata": {"annotations": {ANN_BOUND_BY_CONTROLLER: "yes"}},
                           "status": {"phase": "Bound"}}),
                ),
            ),
            Some(claim_elsewhere.clone()),
            vec![
                "volume volume claimRef= by-controller=- finalizers=0",
                "volume volume status Available",
            ],
        ),
        (
            "4-6 a user's binding to a claim bound elsewhere is Released",
            volume(
                "volume",
                "1Gi",
                merge_into(bound_to_claim(), json!({"status": {"phase": "Bound"}})),
            ),
            Some(claim_elsewhere),
            vec!["volume volume status Released"],
        ),
        (
            "4-7 a volume bound to its bound claim stays",
            volume(
                "volume",
                "1Gi",
                merge_into(bound_to_claim(), json!({"status": {"phase": "Bound"}})),
            ),
            Some(bound_claim.clone()),
            vec![],
        ),
        (
            "4-8 a volume of a claim still binding waits",
            volume("volume", "1Gi", bound_to_claim()),
            Some(claim("1Gi", json!({}))),
            vec![],
        ),
        (
            "8-1 reclaim Delete of a local-path volume removes its directory and the volume",
            volume(
                "volume",
                "1Gi",
                merge_into(
                    merge_into(bound_to_claim(), local.clone()),
                    json!({"status": {"phase": "Released"}}),
                ),
            ),
            None,
            vec!["delete volume dir=/data/storage/pvc-uid-claim_default_claim"],
        ),
        (
            "8-2 reclaim Delete of another provisioner's volume fails",
            volume(
                "volume",
                "1Gi",
                merge_into(
                    bound_to_claim(),
                    json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"},
                           "status": {"phase": "Bound"}}),
                ),
            ),
            None,
            vec![
                "volume volume status Released",
                "volume volume status Failed",
                "event VolumeFailedDelete",
            ],
        ),
        (
            "6-1 reclaim Recycle has no recycler",
            volume(
                "volume",
                "1Gi",
                merge_into(
                    bound_to_claim(),
                    json!({"spec": {"persistentVolumeReclaimPolicy": "Recycle"},
                           "status": {"phase": "Released"}}),
                ),
            ),
            None,
            vec!["volume volume status Failed", "event VolumeFailedRecycle"],
        ),
    ];
    assert_eq!(cases.len(), 11);
    for (name, volume, claim, expected) in cases {
        let plan = plan_volume(&volume, claim.as_ref());
        assert_eq!(summary(&plan), expected, "{name}");
    }
}

#[test]
fn protection_finalizers_wait_for_pods_and_bindings() {
    let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": [PVC_PROTECTION_FINALIZER, PV_PROTECTION_FINALIZER]}});
    let claim = claim("1Gi", deleting.clone());
    let cluster = Cluster {
        volumes: &[],
        classes: &[],
        storage_root: "/s",
    };
    // (what, in use, expected)
    let claim_cases = [
        ("a claim a pod uses keeps its finalizer", true, vec![]),
        (
            "a claim no pod uses loses it",
            false,
            vec!["claim volumeName= class= completed=- by-controller=- finalizers=1"],
        ),
    ];
    assert_eq!(claim_cases.len(), 2);
    for (what, in_use, expected) in claim_cases {
        let expected: Vec<&str> = expected;
        assert_eq!(
            summary(&plan_claim(&claim, &cluster, in_use)),
            expected,
            "{what}"
        );
    }
    let volume_cases = [
        ("a bound volume keeps its finalizer", "Bound", vec![]),
        (
            "a released volume loses it",
            "Released",
            vec!["volume volume claimRef= by-controller=- finalizers=1"],
        ),
    ];
    assert_eq!(volume_cases.len(), 2);
    for (what, phase, expected) in volume_cases {
        let expected: Vec<&str> = expected;
        let v = volume(
            "volume",
            "1Gi",
            merge_into(deleting.clone(), json!({"status": {"phase": phase}})),
        );
        assert_eq!(summary(&plan_volume(&v, None)), expected, "{what}");
    }
}

#[test]
fn matching_follows_upstream_index_cases() {
    let labelled = |name: &str, size: &str, labels: Value, class: &str, modes: Value| {
        volume(
            name,
            size,
            json!({"metadata": {"labels": labels},
                   "spec": {"storageClassName": class, "accessModes": modes}}),
        )
    };
    let volumes = [
        labelled(
            "gce-1",
            "1Gi",
            json!({}),
            "",
            json!(["ReadWriteOnce", "ReadOnlyMany"]),
        ),
        labelled(
            "gce-10",
            "10Gi",
            json!({}),
            "",
            json!(["ReadWriteOnce", "ReadOnlyMany"]),
        ),
        labelled(
            "nfs-5",
            "5Gi",
            json!({}),
            "",
            json!(["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"]),
        ),
        labelled(
            "labelled-20",
            "20Gi",
            json!({"should-exist": "true"}),
            "",
            json!(["ReadWriteOnce"]),
        ),
        labelled(
            "silver-1",
            "1Gi",
            json!({}),
            "silver",
            json!(["ReadWriteOnce"]),
        ),
        labelled(
            "gold-30",
            "30Gi",
            json!({"should-exist": "true"}),
            "gold",
            json!(["ReadWriteOnce"]),
        ),
        merge_into(
            labelled(
                "bound-100",
                "100Gi",
                json!({}),
                "",
                json!(["ReadWriteOnce"]),
            ),
            json!({"spec": {"claimRef": {"namespace": "x", "name": "y", "uid": "z"}},
                   "status": {"phase": "Bound"}}),
        ),
    ];
    let refs: Vec<&Value> = volumes.iter().collect();
    let want = |size: &str, modes: Value, extra: Value| {
        merge_into(claim(size, json!({"spec": {"accessModes": modes}})), extra)
    };
    // (upstream case, claim, expected volume)
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "successful-match-gce-10",
            want("8Gi", json!(["ReadOnlyMany", "ReadWriteOnce"]), json!({})),
            Some("gce-10"),
        ),
        (
            "successful-match-nfs-5",
            want(
                "5Gi",
                json!(["ReadOnlyMany", "ReadWriteOnce", "ReadWriteMany"]),
                json!({}),
            ),
            Some("nfs-5"),
        ),
        (
            "successful-skip-1g-bound-volume",
            want("1Gi", json!(["ReadWriteOnce"]), json!({})),
            Some("gce-1"),
        ),
        (
            "successful-no-match",
            want("999Gi", json!(["ReadWriteOnce"]), json!({})),
            None,
        ),
        (
            "successful-no-match-due-to-label",
            want(
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"selector": {"matchLabels": {"should-not-exist": "true"}}}}),
            ),
            None,
        ),
        (
            "successful-match-with-label",
            want(
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"selector": {"matchLabels": {"should-exist": "true"}}}}),
            ),
            Some("labelled-20"),
        ),
        (
            "successful-match-with-class",
            want(
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"storageClassName": "silver"}}),
            ),
            Some("silver-1"),
        ),
        (
            "successful-match-with-class-and-labels",
            want(
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"storageClassName": "gold",
                            "selector": {"matchLabels": {"should-exist": "true"}}}}),
            ),
            Some("gold-30"),
        ),
        (
            "no-match-other-volume-mode",
            want(
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"volumeMode": "Block"}}),
            ),
            None,
        ),
    ];
    assert_eq!(cases.len(), 9);
    for (name, claim, expected) in cases {
        let got = find_matching_volume(&claim, &refs, false, None)
            .map(|v| text(v, "/metadata/name").to_string());
        assert_eq!(got.as_deref(), expected, "{name}");
    }
}
