//! Table tests fed by OpenKruise's own CloneSet test cases (`tests/vectors/
//! cloneset_calculate_diffs.json`): the scale/update arithmetic, the update limit and order,
//! partition resolution, the percent helper and single Scale passes. Each failure names the
//! upstream test case, and each test asserts how many rows it ran so an empty table fails.

use std::path::PathBuf;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};
use skiff_api::cloneset::{CloneSet, CloneSetScaleStrategy, CloneSetSpec, CloneSetUpdateStrategy};
use skiff_controllers::cloneset::arithmetic::{
    calculate_diffs, limit_update_count, partition_replicas, scaled_value_from_int_or_percent,
    DiffParams, Diffs, PodFacts,
};
use skiff_controllers::cloneset::pods::sort_update_indexes;
use skiff_controllers::cloneset::revision::new_revision;
use skiff_controllers::cloneset::sync::{plan_scale, PodAction, SyncInput};

fn rows(kind: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/cloneset_calculate_diffs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let all: Value = serde_json::from_str(&text).expect("vector file is JSON");
    all.as_array()
        .expect("vector file is an array")
        .iter()
        .filter(|r| r["kind"] == kind)
        .cloned()
        .collect()
}

fn case_name(row: &Value) -> String {
    format!(
        "{} #{} {:?}",
        row["source"]["test"].as_str().unwrap_or(""),
        row["caseIndex"],
        row["source"]["case"].as_str().unwrap_or("")
    )
}

fn int_or_string(v: &Value) -> Option<IntOrString> {
    (!v.is_null()).then(|| serde_json::from_value(v.clone()).expect("int or string"))
}

fn int(v: &Value) -> i32 {
    v.as_i64().unwrap_or(0) as i32
}

fn spec_from(input: &Value) -> CloneSetSpec {
    let strategy = &input["updateStrategy"];
    CloneSetSpec {
        replicas: Some(int(&input["replicas"])),
        min_ready_seconds: Some(int(&input["minReadySeconds"])),
        update_strategy: Some(CloneSetUpdateStrategy {
            partition: int_or_string(&strategy["partition"]),
            max_unavailable: int_or_string(&strategy["maxUnavailable"]),
            max_surge: int_or_string(&strategy["maxSurge"]),
            paused: strategy["paused"].as_bool(),
            ..Default::default()
        }),
        scale_strategy: Some(CloneSetScaleStrategy {
            max_unavailable: int_or_string(&input["scaleStrategy"]["maxUnavailable"]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn diffs_json(d: &Diffs) -> Value {
    json!({
        "scaleUpNum": d.scale_up_num,
        "scaleUpNumOldRevision": d.scale_up_num_old_revision,
        "scaleDownNum": d.scale_down_num,
        "scaleDownNumOldRevision": d.scale_down_num_old_revision,
        "scaleUpLimit": d.scale_up_limit,
        "deleteReadyLimit": d.delete_ready_limit,
        "useSurge": d.use_surge,
        "useSurgeOldRevision": d.use_surge_old_revision,
        "updateNum": d.update_num,
        "updateMaxUnavailable": d.update_max_unavailable,
    })
}

#[test]
fn calculate_diffs_matches_openkruise() {
    let rows = rows("calculateDiffs");
    assert_eq!(rows.len(), 80);
    for row in &rows {
        let input = &row["input"];
        let same = input["currentRevisionEqualsUpdateRevision"].as_bool() == Some(true);
        let gate = input["featureGates"]["CloneSetPartitionRollback"].as_bool() == Some(true);
        let mut params = DiffParams::resolve(&spec_from(input), !same, gate);
        params.exclude_preparing_delete =
            input["scaleStrategy"]["excludePreparingDelete"].as_bool() == Some(true);
        let preparing_update_counts = input["isPodUpdate"] == "preparingUpdateCountsAsUpdated";
        let facts: Vec<PodFacts> = input["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .map(|p| {
                let state = p["lifecycleState"].as_str().unwrap_or("");
                PodFacts {
                    updated: p["revision"] == "new"
                        || (preparing_update_counts && state == "PreparingUpdate"),
                    preparing_delete: state == "PreparingDelete",
                    specified_delete: p["specifiedDelete"].as_bool() == Some(true),
                    available: p["ready"].as_bool() == Some(true) && matches!(state, "" | "Normal"),
                }
            })
            .collect();
        let got = diffs_json(&calculate_diffs(&params, &facts));
        let mut want = json!({});
        for key in got.as_object().expect("object").keys() {
            want[key] = row["expected"].get(key).cloned().unwrap_or(json!(0));
        }
        assert_eq!(got, want, "{}", case_name(row));
    }
}

#[test]
fn limit_update_count_matches_openkruise() {
    let rows = rows("limitUpdateCount");
    assert_eq!(rows.len(), 16);
    for row in &rows {
        let input = &row["input"];
        let same = input["currentRevisionEqualsUpdateRevision"].as_bool() == Some(true);
        let gate = input["featureGates"]["CloneSetPartitionRollback"].as_bool() == Some(true);
        let params = DiffParams::resolve(&spec_from(input), !same, gate);
        let facts: Vec<PodFacts> = input["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .map(|p| PodFacts {
                updated: p["revision"] == "new",
                available: p["phase"] == "Running" && p["ready"].as_bool() == Some(true),
                ..PodFacts::default()
            })
            .collect();
        let diffs = calculate_diffs(&params, &facts);
        let forward = diffs.update_num > 0;
        let candidates: Vec<usize> = if diffs.update_num == 0 {
            Vec::new()
        } else {
            (0..facts.len())
                .filter(|i| facts[*i].updated != forward)
                .collect()
        };
        let got = limit_update_count(&diffs, &facts, &candidates, forward);
        assert_eq!(
            json!(got),
            row["expected"]["updateCount"],
            "{}",
            case_name(row)
        );
    }
}

fn pod_with(phase: &str, ready: bool, extra: Value) -> Pod {
    let mut value = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": []},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready {"True"} else {"False"}}
        ]},
    });
    if let (Some(target), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).expect("pod")
}

#[test]
fn sort_update_indexes_matches_openkruise() {
    let rows = rows("sortUpdateIndexes");
    assert_eq!(rows.len(), 1);
    for row in &rows {
        let input = &row["input"];
        let pods: Vec<Pod> = input["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .map(|p| {
                pod_with(
                    p["phase"].as_str().unwrap_or(""),
                    p["ready"].as_bool() == Some(true),
                    json!({}),
                )
            })
            .collect();
        let wait: Vec<usize> =
            serde_json::from_value(input["waitUpdateIndexes"].clone()).expect("indexes");
        assert_eq!(
            json!(sort_update_indexes(&pods, &wait)),
            row["expected"]["sortedIndexes"],
            "{}",
            case_name(row)
        );
    }
}

#[test]
fn partition_replicas_matches_openkruise() {
    let rows = rows("partitionReplicas");
    assert_eq!(rows.len(), 19);
    for row in &rows {
        let input = &row["input"];
        let replicas = input["replicas"].as_i64().map(|r| r as i32);
        let result = partition_replicas(int_or_string(&input["partition"]).as_ref(), replicas);
        let expected = &row["expected"];
        assert_eq!(
            result.is_err(),
            expected["error"].as_bool() == Some(true),
            "{}",
            case_name(row)
        );
        assert_eq!(
            json!(result.unwrap_or(0)),
            expected["value"],
            "{}",
            case_name(row)
        );
    }
}

#[test]
fn scaled_value_matches_openkruise() {
    let rows = rows("scaledValueFromIntOrPercent");
    assert_eq!(rows.len(), 12);
    for row in &rows {
        let input = &row["input"];
        let value = int_or_string(&input["value"]).expect("value");
        let result = scaled_value_from_int_or_percent(
            &value,
            int(&input["total"]),
            input["roundUp"].as_bool() == Some(true),
        );
        let expected = &row["expected"];
        match result {
            Ok(v) => assert_eq!(json!(v), expected["value"], "{}", case_name(row)),
            Err(_) => assert_eq!(expected["error"], json!(true), "{}", case_name(row)),
        }
    }
}

#[test]
fn scale_step_matches_openkruise() {
    let rows = rows("scaleStep");
    assert_eq!(rows.len(), 3);
    let now = Timestamp::now();
    for row in &rows {
        let input = &row["input"];
        let cs = CloneSet {
            metadata: ObjectMeta {
                name: Some("sample".into()),
                namespace: Some("default".into()),
                uid: Some("uid".into()),
                ..ObjectMeta::default()
            },
            spec: Some(CloneSetSpec {
                template: serde_json::from_value(json!({
                    "metadata": {"labels": {"app": "sample"}},
                    "spec": {"containers": [{"name": "main", "image": "nginx"}]},
                }))
                .expect("template"),
                ..spec_from(input)
            }),
            status: None,
        };
        let revision = new_revision(&cs, 1, 0);
        let revision_name = revision.metadata.name.clone().expect("name");
        let ready_since = Timestamp::from_second(now.as_second() - 10).expect("time");
        let pods: Vec<Pod> = input["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .map(|p| {
                let mut labels = json!({
                    "controller-revision-hash": revision_name,
                    "lifecycle.apps.kruise.io/state": "Normal",
                });
                if p["specifiedDelete"].as_bool() == Some(true) {
                    labels["apps.kruise.io/specified-delete"] = json!("true");
                }
                pod_with(
                    "Running",
                    true,
                    json!({
                        "metadata": {"name": p["name"], "labels": labels},
                        "spec": {"nodeName": "node", "containers": []},
                        "status": {"phase": "Running", "conditions": [{
                            "type": "Ready", "status": "True",
                            "lastTransitionTime": ready_since.to_string(),
                        }]},
                    }),
                )
            })
            .collect();
        let sync = SyncInput {
            cloneset: &cs,
            pods: &pods,
            current_revision: &revision,
            update_revision: &revision,
            revisions: std::slice::from_ref(&revision),
            claim_ids: &[],
            now,
        };
        let mut ids = (0..).map(|i| format!("id{i:03}"));
        let plan = plan_scale(&sync, &mut || ids.next().unwrap_or_default());
        let actions = plan.map(|p| p.actions).unwrap_or_default();
        let created = actions
            .iter()
            .filter(|a| matches!(a, PodAction::Create { .. }))
            .count() as i64;
        let deleted = actions
            .iter()
            .filter(|a| matches!(a, PodAction::Delete { .. }))
            .count() as i64;
        let after = pods.len() as i64 + created - deleted;
        assert_eq!(
            json!(after),
            row["expected"]["activePodsAfter"],
            "{}",
            case_name(row)
        );
        assert_eq!(
            json!(!actions.is_empty()),
            row["expected"]["modified"],
            "{}",
            case_name(row)
        );
    }
}
