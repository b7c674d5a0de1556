//! Table tests fed by the vectors extracted from the upstream Kubernetes unit tests
//! (`tests/vectors/*.json`). Rows that need the alpha `DeploymentPodReplacementPolicy` gates
//! are skipped, and each test asserts how many rows it ran so a silently empty table fails.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    ReplicaSet, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use skiff_controllers::deployment::util::*;
use skiff_controllers::deployment::{replica_set_name, Action, DeploymentSync, Timestamp};

fn rows(file: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let value: Value = serde_json::from_str(&text).expect("vector file is JSON");
    value.as_array().cloned().expect("vector file is an array")
}

fn core_rows(file: &str) -> Vec<Value> {
    rows(file)
        .into_iter()
        .filter(|r| r["featureGateDeploymentPodReplacementPolicy"] != Value::Bool(true))
        .collect()
}

fn row_name(row: &Value) -> String {
    row.get("name")
        .or_else(|| row.get("case"))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn int_or_string(v: &Value) -> Option<IntOrString> {
    match v {
        Value::Number(n) => Some(IntOrString::Int(n.as_i64().expect("int") as i32)),
        Value::String(s) => Some(IntOrString::String(s.clone())),
        _ => None,
    }
}

fn i32_of(v: &Value) -> i32 {
    v.as_i64().map(|n| n as i32).unwrap_or(0)
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .expect("timestamp string")
        .parse()
        .expect("RFC 3339")
}

const NOW: &str = "2025-01-01T00:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("valid")
}

/// A Deployment like upstream's `newDeployment` helper: the given strategy with int 0 for
/// unset fenceposts.
fn deployment(
    strategy: &str,
    replicas: Option<i32>,
    surge: &Value,
    unavailable: &Value,
) -> Deployment {
    let rolling = (strategy == "RollingUpdate").then(|| RollingUpdateDeployment {
        max_surge: int_or_string(surge).or(Some(IntOrString::Int(0))),
        max_unavailable: int_or_string(unavailable).or(Some(IntOrString::Int(0))),
    });
    Deployment {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            namespace: Some("default".into()),
            uid: Some("foo-uid".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("foo".into(), "bar".into())])),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some(strategy.to_string()),
                rolling_update: rolling,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn replica_set(name: &str, spec: i32, available: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(spec),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            available_replicas: Some(available),
            ..Default::default()
        }),
    }
}

fn written_replicas(sync: &DeploymentSync, name: &str) -> Option<i32> {
    sync.actions().iter().find_map(|a| match a {
        Action::UpdateReplicaSet { replica_set, .. }
            if replica_set.metadata.name.as_deref() == Some(name) =>
        {
            Some(rs_spec_replicas(replica_set))
        }
        _ => None,
    })
}

#[test]
fn resolve_fenceposts_vectors() {
    let rows = rows("TestResolveFenceposts.json");
    assert_eq!(rows.len(), 7);
    for row in &rows {
        let input = &row["input"];
        let expected = &row["expected"];
        let surge = int_or_string(&input["maxSurge"]);
        let unavailable = int_or_string(&input["maxUnavailable"]);
        let got = resolve_fenceposts(
            surge.as_ref(),
            unavailable.as_ref(),
            i32_of(&input["desired"]),
        );
        if expected["error"] == Value::Bool(true) {
            assert!(got.is_err(), "{}: expected an error", row_name(row));
        } else {
            assert_eq!(
                got,
                Ok((i32_of(&expected["surge"]), i32_of(&expected["unavailable"]))),
                "{}",
                row_name(row)
            );
        }
    }
}

fn fencepost_deployment(input: &Value) -> Deployment {
    deployment(
        input["strategy"].as_str().expect("strategy"),
        input["replicas"].as_i64().map(|v| v as i32),
        &input["maxSurge"],
        &input["maxUnavailable"],
    )
}

#[test]
fn max_unavailable_vectors() {
    let rows = rows("TestMaxUnavailable.json");
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let d = fencepost_deployment(&row["input"]);
        assert_eq!(
            max_unavailable(&d),
            i32_of(&row["expected"]["maxUnavailable"]),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn min_available_vectors() {
    let rows = rows("TestMinAvailable.json");
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let d = fencepost_deployment(&row["input"]);
        assert_eq!(
            min_available(&d),
            i32_of(&row["expected"]["minAvailable"]),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn new_rs_new_replicas_vectors() {
    let rows = rows("TestNewRSNewReplicas.json");
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let input = &row["input"];
        let d = deployment(
            input["strategyType"].as_str().expect("strategy"),
            Some(i32_of(&input["deploymentReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        let new_rs = replica_set("new", i32_of(&input["newRS"]["specReplicas"]), 0);
        let all: Vec<ReplicaSet> = input["allRSs"]
            .as_array()
            .expect("allRSs")
            .iter()
            .map(|rs| {
                replica_set(
                    rs["name"].as_str().expect("name"),
                    i32_of(&rs["specReplicas"]),
                    0,
                )
            })
            .collect();
        assert_eq!(
            new_rs_new_replicas(&d, &all, &new_rs),
            Ok(i32_of(&row["expected"]["newRSReplicas"])),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn replica_set_fraction_vectors() {
    let rows = rows("TestGetReplicaSetFraction.json");
    assert_eq!(rows.len(), 9);
    for row in &rows {
        let input = &row["input"];
        let mut d = deployment(
            input["strategy"].as_str().expect("strategy"),
            Some(i32_of(&input["deploymentReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        d.status = Some(DeploymentStatus {
            replicas: Some(i32_of(&input["deploymentStatusReplicas"])),
            ..Default::default()
        });
        let mut rs = replica_set("rs", i32_of(&input["rsReplicas"]), 0);
        if let Some(max) = input["rsMaxReplicasAnnotation"].as_str() {
            rs.metadata.annotations = Some(BTreeMap::from([(
                MAX_REPLICAS_ANNOTATION.into(),
                max.into(),
            )]));
        }
        assert_eq!(
            replica_set_fraction(&rs, &d),
            i32_of(&row["expected"]["fraction"]),
            "{}",
            row_name(row)
        );
    }
}

fn status_of(v: &Value) -> DeploymentStatus {
    DeploymentStatus {
        replicas: Some(i32_of(&v["replicas"])),
        updated_replicas: Some(i32_of(&v["updatedReplicas"])),
        ready_replicas: Some(i32_of(&v["readyReplicas"])),
        available_replicas: Some(i32_of(&v["availableReplicas"])),
        observed_generation: Some(v["observedGeneration"].as_i64().unwrap_or(0)),
        conditions: v["conditions"]
            .as_array()
            .map(|cs| cs.iter().map(condition_of).collect()),
        ..Default::default()
    }
}

fn condition_of(v: &Value) -> DeploymentCondition {
    let time = |key: &str| v.get(key).filter(|t| t.is_string()).map(|t| Time(ts(t)));
    DeploymentCondition {
        type_: v["type"].as_str().unwrap_or_default().into(),
        status: v["status"].as_str().unwrap_or_default().into(),
        reason: v["reason"].as_str().map(String::from),
        message: None,
        last_update_time: time("lastUpdateTime"),
        last_transition_time: time("lastTransitionTime"),
    }
}

#[test]
fn deployment_complete_vectors() {
    let rows = rows("TestDeploymentComplete.json");
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let input = &row["input"];
        let mut d = deployment(
            "RollingUpdate",
            Some(i32_of(&input["specReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        d.metadata.generation = Some(input["generation"].as_i64().unwrap_or(0));
        let status = status_of(&input["status"]);
        assert_eq!(
            deployment_complete(&d, &status),
            row["expected"]["complete"] == Value::Bool(true),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn deployment_progressing_vectors() {
    let rows = rows("TestDeploymentProgressing.json");
    assert_eq!(rows.len(), 7);
    for row in &rows {
        let input = &row["input"];
        let mut d = deployment("RollingUpdate", Some(10), &Value::Null, &Value::Null);
        d.status = Some(status_of(&input["oldStatus"]));
        let new_status = status_of(&input["newStatus"]);
        assert_eq!(
            deployment_progressing(&d, &new_status),
            row["expected"]["progressing"] == Value::Bool(true),
            "{}",
            row_name(row)
        );
    }
}

fn with_deadline(mut d: Deployment, deadline: &Value) -> Deployment {
    if let Some(spec) = d.spec.as_mut() {
        spec.progress_deadline_seconds = deadline.as_i64().map(|v| v as i32);
    }
    d
}

#[test]
fn deployment_timed_out_vectors() {
    let rows = rows("TestDeploymentTimedOut.json");
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let input = &row["input"];
        let d = with_deadline(
            deployment("RollingUpdate", Some(1), &Value::Null, &Value::Null),
            &input["progressDeadlineSeconds"],
        );
        let status = DeploymentStatus {
            conditions: Some(vec![condition_of(&input["condition"])]),
            ..Default::default()
        };
        let at = if input["now"].is_string() {
            ts(&input["now"])
        } else {
            now()
        };
        assert_eq!(
            deployment_timed_out(&d, &status, at),
            row["expected"]["timedOut"] == Value::Bool(true),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn requeue_stuck_deployment_vectors() {
    let rows = rows("TestRequeueStuckDeployment.json");
    assert_eq!(rows.len(), 10);
    for row in &rows {
        let input = &row["input"];
        let mut d = with_deadline(
            deployment(
                input["strategy"].as_str().expect("strategy"),
                Some(i32_of(&input["specReplicas"])),
                &Value::Null,
                &Value::Null,
            ),
            &input["progressDeadlineSeconds"],
        );
        d.status = Some(status_of(&input["currentStatus"]));
        let new_status = status_of(&input["newStatus"]);
        let at = if input["now"].is_string() {
            ts(&input["now"])
        } else {
            now()
        };
        let expected = row["expected"]["requeueAfterSeconds"]
            .as_i64()
            .expect("seconds");
        let got = requeue_stuck_deployment(&d, &new_status, at);
        let want = (expected >= 0).then(|| std::time::Duration::from_secs(expected as u64));
        assert_eq!(got, want, "{}", row_name(row));
    }
}

#[test]
fn generate_replica_set_name_vectors() {
    fn expand(spec: &str) -> String {
        // "a*242 + '-abcde12345'" style expressions.
        spec.split(" + ")
            .map(|part| {
                let part = part.trim_matches('\'');
                match part.split_once('*') {
                    Some((c, n)) => c.repeat(n.parse().expect("count")),
                    None => part.to_string(),
                }
            })
            .collect()
    }
    let rows = rows("TestGenerateReplicaSetName.json");
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let input = &row["input"];
        let name = expand(input["deploymentName"].as_str().expect("name"));
        let hash = expand(input["hash"].as_str().expect("hash"));
        let expected = expand(row["expected"]["name"].as_str().expect("expected"));
        assert_eq!(
            replica_set_name(&name, &hash),
            expected,
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn reconcile_new_replica_set_vectors() {
    let rows = core_rows("TestReconcileNewReplicaSet.json");
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let input = &row["input"];
        let d = deployment(
            "RollingUpdate",
            Some(i32_of(&input["deploymentReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        let new_rs = replica_set("foo-v2", i32_of(&input["newRS"]["specReplicas"]), 0);
        let old_rs = replica_set("foo-v1", i32_of(&input["oldRS"]["specReplicas"]), 0);
        let all = vec![new_rs.clone(), old_rs];
        let mut sync = DeploymentSync::new(d, now());
        let scaled = sync
            .reconcile_new_replica_set(&all, &new_rs)
            .expect("no error");
        let expected = &row["expected"];
        assert_eq!(
            scaled,
            expected["scaled"] == Value::Bool(true),
            "{}",
            row_name(row)
        );
        if scaled {
            assert_eq!(
                written_replicas(&sync, "foo-v2"),
                Some(i32_of(&expected["newRSReplicas"])),
                "{}",
                row_name(row)
            );
        } else {
            assert!(sync.actions().is_empty(), "{}", row_name(row));
        }
    }
}

#[test]
fn reconcile_old_replica_sets_vectors() {
    let rows = rows("TestReconcileOldReplicaSets.json");
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let input = &row["input"];
        let d = deployment(
            "RollingUpdate",
            Some(i32_of(&input["deploymentReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        let old = &input["oldRS"];
        let new = &input["newRS"];
        let old_rs = replica_set(
            "foo-old",
            i32_of(&old["specReplicas"]),
            i32_of(&old["availableReplicas"]),
        );
        let new_rs = replica_set(
            "foo-new",
            i32_of(&new["specReplicas"]),
            i32_of(&new["availableReplicas"]),
        );
        let all = vec![old_rs.clone(), new_rs.clone()];
        let mut sync = DeploymentSync::new(d, now());
        let scaled = sync.reconcile_old_replica_sets(&all, std::slice::from_ref(&old_rs), &new_rs);
        let expected = &row["expected"];
        assert_eq!(
            scaled,
            expected["scaled"] == Value::Bool(true),
            "{}",
            row_name(row)
        );
        if let Some(final_old) = expected["finalOldRSReplicas"].as_i64() {
            assert_eq!(
                written_replicas(&sync, "foo-old"),
                Some(final_old as i32),
                "{}",
                row_name(row)
            );
        }
    }
}

#[test]
fn cleanup_unhealthy_replicas_vectors() {
    let rows = rows("TestCleanupUnhealthyReplicas.json");
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let input = &row["input"];
        let d = deployment(
            "RollingUpdate",
            Some(i32_of(&input["deploymentReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        let olds: Vec<ReplicaSet> = input["oldRSs"]
            .as_array()
            .expect("oldRSs")
            .iter()
            .map(|rs| {
                replica_set(
                    rs["name"].as_str().expect("name"),
                    i32_of(&rs["specReplicas"]),
                    i32_of(&rs["availableReplicas"]),
                )
            })
            .collect();
        let mut sync = DeploymentSync::new(d, now());
        let (after, count) = sync
            .cleanup_unhealthy_replicas(olds, i32_of(&input["maxCleanupCount"]))
            .expect("no error");
        let expected = &row["expected"];
        assert_eq!(
            count,
            i32_of(&expected["cleanupCount"]),
            "{}",
            row_name(row)
        );
        assert_eq!(
            rs_spec_replicas(&after[0]),
            i32_of(&expected["oldRSReplicasAfter"]),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn scale_down_old_replica_sets_vectors() {
    let rows = rows("TestScaleDownOldReplicaSets.json");
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let input = &row["input"];
        let d = deployment(
            "RollingUpdate",
            Some(i32_of(&input["deploymentReplicas"])),
            &input["maxSurge"],
            &input["maxUnavailable"],
        );
        let old = &input["oldRS"];
        let old_rs = replica_set(
            "foo-v2",
            i32_of(&old["specReplicas"]),
            i32_of(&old["availableReplicas"]),
        );
        let list = vec![old_rs];
        let mut sync = DeploymentSync::new(d, now());
        let total = sync
            .scale_down_old_replica_sets_for_rolling_update(&list, &list)
            .expect("no error");
        let expected = &row["expected"];
        assert_eq!(
            total,
            i32_of(&expected["totalScaledDown"]),
            "{}",
            row_name(row)
        );
        assert_eq!(
            total > 0,
            expected["scaled"] == Value::Bool(true),
            "{}",
            row_name(row)
        );
        let after = written_replicas(&sync, "foo-v2").unwrap_or(i32_of(&old["specReplicas"]));
        assert_eq!(
            after,
            i32_of(&expected["oldRSReplicasAfter"]),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn scale_vectors() {
    let rows = core_rows("TestScale.json");
    assert_eq!(rows.len(), 17);
    for row in &rows {
        let input = &row["input"];
        let dep = |v: &Value| {
            deployment(
                v["strategy"].as_str().expect("strategy"),
                Some(i32_of(&v["replicas"])),
                &v["maxSurge"],
                &v["maxUnavailable"],
            )
        };
        let d = dep(&input["deployment"]);
        let old_d = dep(&input["oldDeployment"]);
        let overrides = &input["desiredReplicasAnnotationOverrides"];
        let build = |v: &Value| {
            let name = v["name"].as_str().expect("name");
            let mut rs = replica_set(name, i32_of(&v["specReplicas"]), 0);
            rs.metadata.creation_timestamp = Some(Time(ts(&v["creationTimestamp"])));
            if let Some(status) = v.get("status") {
                rs.status = Some(ReplicaSetStatus {
                    available_replicas: status["availableReplicas"].as_i64().map(|n| n as i32),
                    ..Default::default()
                });
            }
            let desired = overrides
                .get(name)
                .map(i32_of)
                .unwrap_or_else(|| deployment_replicas(&old_d));
            set_replicas_annotations(&mut rs, desired, desired + max_surge(&old_d));
            rs
        };
        let new_rs = (!input["newRS"].is_null()).then(|| build(&input["newRS"]));
        let olds: Vec<ReplicaSet> = input["oldRSs"]
            .as_array()
            .expect("oldRSs")
            .iter()
            .map(build)
            .collect();
        let mut sync = DeploymentSync::new(d, now());
        sync.scale(new_rs.as_ref(), &olds).expect("no sync error");

        let expected = &row["expected"];
        let mut wanted: Vec<&Value> = expected["oldRSs"]
            .as_array()
            .expect("oldRSs")
            .iter()
            .collect();
        if !expected["newRS"].is_null() {
            wanted.push(&expected["newRS"]);
        }
        for rs in wanted {
            let name = rs["name"].as_str().expect("name");
            let before = new_rs
                .iter()
                .chain(olds.iter())
                .find(|r| r.metadata.name.as_deref() == Some(name))
                .map(rs_spec_replicas);
            let got = written_replicas(&sync, name).or(before);
            assert_eq!(
                got,
                Some(i32_of(&rs["specReplicas"])),
                "{}: {name}",
                row_name(row)
            );
        }
        for name in expected["notUpdated"].as_array().expect("notUpdated") {
            assert_eq!(
                written_replicas(&sync, name.as_str().expect("name")),
                None,
                "{}: {name} must not be written",
                row_name(row)
            );
        }
    }
}

fn history_rs(v: &Value) -> ReplicaSet {
    let mut rs = replica_set(
        v["name"].as_str().expect("name"),
        i32_of(&v["specReplicas"]),
        0,
    );
    rs.metadata.generation = v["generation"].as_i64();
    rs.status = Some(ReplicaSetStatus {
        replicas: i32_of(&v["statusReplicas"]),
        observed_generation: v["observedGeneration"].as_i64(),
        ..Default::default()
    });
    if v["deletionTimestamp"].is_string() {
        rs.metadata.deletion_timestamp = Some(Time(now()));
    }
    if let Some(offset) = v["creationOffsetMinutes"].as_i64() {
        let at = Timestamp::from_second(now().as_second() + offset * 60).expect("in range");
        rs.metadata.creation_timestamp = Some(Time(at));
    }
    if let Some(revision) = v["revision"].as_str() {
        rs.metadata.annotations = Some(BTreeMap::from([(
            REVISION_ANNOTATION.into(),
            revision.into(),
        )]));
    }
    rs
}

fn deleted_names(sync: &DeploymentSync) -> Vec<String> {
    sync.actions()
        .iter()
        .filter_map(|a| match a {
            Action::DeleteReplicaSet { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn with_history_limit(limit: &Value) -> Deployment {
    let mut d = deployment("RollingUpdate", Some(1), &Value::Null, &Value::Null);
    if let Some(spec) = d.spec.as_mut() {
        spec.revision_history_limit = limit.as_i64().map(|v| v as i32);
    }
    d
}

#[test]
fn cleanup_deployment_vectors() {
    let rows = core_rows("TestDeploymentController_cleanupDeployment.json");
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let input = &row["input"];
        let olds: Vec<ReplicaSet> = input["oldRSs"]
            .as_array()
            .expect("oldRSs")
            .iter()
            .map(history_rs)
            .collect();
        let mut sync =
            DeploymentSync::new(with_history_limit(&input["revisionHistoryLimit"]), now());
        sync.cleanup_deployment(&olds);
        assert_eq!(
            deleted_names(&sync).len() as i64,
            row["expected"]["deletions"].as_i64().expect("deletions"),
            "{}",
            row_name(row)
        );
    }
}

#[test]
fn cleanup_deployment_order_vectors() {
    let rows = rows("TestDeploymentController_cleanupDeploymentOrder.json");
    assert_eq!(rows.len(), 7);
    for row in &rows {
        let input = &row["input"];
        let olds: Vec<ReplicaSet> = input["oldRSs"]
            .as_array()
            .expect("oldRSs")
            .iter()
            .map(history_rs)
            .collect();
        let mut sync =
            DeploymentSync::new(with_history_limit(&input["revisionHistoryLimit"]), now());
        sync.cleanup_deployment(&olds);
        let mut got = deleted_names(&sync);
        got.sort();
        let mut want: Vec<String> = row["expected"]["deletedRSs"]
            .as_array()
            .expect("deletedRSs")
            .iter()
            .map(|v| v.as_str().expect("name").to_string())
            .collect();
        want.sort();
        assert_eq!(got, want, "{}", row_name(row));
    }
}

#[test]
fn sync_rollout_status_vectors() {
    let rows = rows("TestSyncRolloutStatus.json");
    assert_eq!(rows.len(), 11);
    for row in &rows {
        let input = &row["input"];
        let dv = &input["deployment"];
        let mut d = with_deadline(
            deployment(
                dv["strategy"].as_str().expect("strategy"),
                Some(i32_of(&dv["specReplicas"])),
                &Value::Null,
                &Value::Null,
            ),
            &dv["progressDeadlineSeconds"],
        );
        d.status = Some(status_of(&dv["status"]));
        let build = |v: &Value| {
            let mut rs = replica_set(
                v["name"].as_str().expect("name"),
                i32_of(&v["specReplicas"]),
                0,
            );
            rs.status = Some(ReplicaSetStatus {
                replicas: i32_of(&v["statusReplicas"]),
                available_replicas: Some(i32_of(&v["availableReplicas"])),
                ..Default::default()
            });
            rs
        };
        let new_rs = (!input["newRS"].is_null()).then(|| build(&input["newRS"]));
        let mut all: Vec<ReplicaSet> = input["otherRSs"]
            .as_array()
            .expect("otherRSs")
            .iter()
            .map(build)
            .collect();
        all.extend(new_rs.clone());
        let mut sync = DeploymentSync::new(d, now());
        sync.sync_rollout_status(&all, new_rs.as_ref());

        let status = sync.deployment().status.clone().unwrap_or_default();
        let condition = get_condition(&status, CONDITION_PROGRESSING);
        let expected = &row["expected"];
        let name = row_name(row);
        match &expected["progressingCondition"] {
            Value::Null => assert!(condition.is_none(), "{name}: condition must be absent"),
            want => {
                let c = condition.unwrap_or_else(|| panic!("{name}: condition missing"));
                assert_eq!(Some(c.status.as_str()), want["status"].as_str(), "{name}");
                assert_eq!(c.reason.as_deref(), want["reason"].as_str(), "{name}");
                for (key, got) in [
                    ("lastUpdateTimeUnchanged", &c.last_update_time),
                    ("lastTransitionTimeUnchanged", &c.last_transition_time),
                ] {
                    let want = &expected[key];
                    if want.as_str().is_some_and(|s| s.ends_with('Z')) {
                        // Absent in the input means Go's zero time was kept; either way the
                        // vector requires the old value to survive.
                        let kept = dv["status"]["conditions"][0]
                            .get(key.trim_end_matches("Unchanged"))
                            .map(|t| Time(ts(t)));
                        assert_eq!(got.clone(), kept, "{name}: {key}");
                    }
                }
            }
        }
    }
}
