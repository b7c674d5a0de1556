//! Cases after kubernetes/pkg/controller/disruption/disruption_test.go (`TestNakedPod`,
//! `TestReplicaSet`, `TestIntegerMaxUnavailable`, `TestMultipleControllers`,
//! `TestUpdateDisruptedPods`, `TestBasicFinderFunctions` style).

use super::*;

const NOW: &str = "2026-01-01T00:10:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("time")
}

fn pdb(spec: Value) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": spec,
        "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    })
}

fn pod(name: &str, ready: bool) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
    })
}

fn naked(_: &Value) -> PodController {
    PodController::Unmanaged
}

fn one_rs(scale: i64) -> impl Fn(&Value) -> PodController {
    move |_| PodController::Found {
        uid: "rs-uid".into(),
        scale,
    }
}

fn status_of(plan: &StatusPlan) -> &Value {
    plan.status.as_ref().expect("the status changes")
}

fn condition(status: &Value) -> &Value {
    &status["conditions"][0]
}

#[test]
fn naked_pods_with_an_integer_min_available_count_themselves() {
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let refs: Vec<&Value> = pods.iter().collect();
    let budget = pdb(json!({"minAvailable": 3}));
    let plan = plan_status(&budget, &refs, &naked, now());
    let s = status_of(&plan);
    assert_eq!(
        (
            &s["expectedPods"],
            &s["desiredHealthy"],
            &s["currentHealthy"],
            &s["disruptionsAllowed"]
        ),
        (&json!(3), &json!(3), &json!(3), &json!(0))
    );
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(condition(s)["type"], "DisruptionAllowed");
    assert_eq!(condition(s)["status"], "False");
    assert_eq!(condition(s)["reason"], "InsufficientPods");
    assert_eq!(condition(s)["message"], "");

    let more = [
        pod("a", true),
        pod("b", true),
        pod("c", true),
        pod("d", true),
    ];
    let refs: Vec<&Value> = more.iter().collect();
    let s = plan_status(&budget, &refs, &naked, now())
        .status
        .expect("changes");
    assert_eq!(s["disruptionsAllowed"], 1);
    assert_eq!(condition(&s)["status"], "True");
    assert_eq!(condition(&s)["reason"], "SufficientPods");
}

#[test]
fn max_unavailable_and_percentages_use_the_controllers_scale_rounding_up() {
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let refs: Vec<&Value> = pods.iter().collect();
    for (spec, desired, allowed) in [
        (json!({"maxUnavailable": 1}), 2, 1),
        (json!({"maxUnavailable": "33%"}), 2, 1),
        (json!({"minAvailable": "28%"}), 1, 2),
        (json!({"maxUnavailable": 5}), 0, 3),
    ] {
        let s = plan_status(&pdb(spec.clone()), &refs, &one_rs(3), now())
            .status
            .expect("changes");
        assert_eq!(s["expectedPods"], 3, "{spec}");
        assert_eq!(s["desiredHealthy"], desired, "{spec}");
        assert_eq!(s["disruptionsAllowed"], allowed, "{spec}");
    }
    // Ten replicas of which three run: 28 % of ten is 2.8, so 3 must stay.
    let s = plan_status(
        &pdb(json!({"minAvailable": "28%"})),
        &refs,
        &one_rs(10),
        now(),
    )
    .status
    .expect("changes");
    assert_eq!(
        (
            &s["expectedPods"],
            &s["desiredHealthy"],
            &s["disruptionsAllowed"]
        ),
        (&json!(10), &json!(3), &json!(0))
    );
}

#[test]
fn two_controllers_add_up_and_one_controller_counts_once() {
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let refs: Vec<&Value> = pods.iter().collect();
    let two = |p: &Value| PodController::Found {
        uid: if p["metadata"]["name"] == "a" {
            "rs1"
        } else {
            "rs2"
        }
        .into(),
        scale: 2,
    };
    let s = plan_status(&pdb(json!({"maxUnavailable": 1})), &refs, &two, now())
        .status
        .expect("changes");
    assert_eq!(s["expectedPods"], 4);
    assert_eq!(s["desiredHealthy"], 3);
    assert_eq!(s["disruptionsAllowed"], 0);
}

#[test]
fn a_pod_whose_controller_is_missing_fails_safe() {
    let pods = [pod("a", true)];
    let refs: Vec<&Value> = pods.iter().collect();
    let mut budget = pdb(json!({"maxUnavailable": "50%"}));
    budget["status"]["disruptionsAllowed"] = json!(3);
    let s = plan_status(&budget, &refs, &|_| PodController::Missing, now())
        .status
        .expect("changes");
    assert_eq!(s["disruptionsAllowed"], 0);
    assert_eq!(condition(&s)["reason"], "SyncFailed");
    assert_eq!(
        condition(&s)["message"],
        "found no controllers for pod \"a\""
    );
    // An integer minAvailable needs no controller.
    assert!(
        plan_status(
            &pdb(json!({"minAvailable": 1})),
            &refs,
            &|_| PodController::Missing,
            now()
        )
        .status
        .is_some_and(
            |s| s["disruptionsAllowed"] == 0 && condition(&s)["reason"] == "InsufficientPods"
        )
    );
}

#[test]
fn approved_evictions_count_as_disrupted_until_the_timeout() {
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let refs: Vec<&Value> = pods.iter().collect();
    let mut budget = pdb(json!({"minAvailable": 1}));
    budget["status"]["disruptedPods"] = json!({
        "a": "2026-01-01T00:09:00Z",
        "b": "2026-01-01T00:05:00Z",
        "gone": "2026-01-01T00:09:30Z",
    });
    let plan = plan_status(&budget, &refs, &naked, now());
    let s = status_of(&plan);
    // `a` is still expected to go; `b` timed out; `gone` is no longer there.
    assert_eq!(s["disruptedPods"], json!({"a": "2026-01-01T00:09:00Z"}));
    assert_eq!(s["currentHealthy"], 2);
    assert_eq!(s["disruptionsAllowed"], 1);
    assert_eq!(
        plan.recheck,
        Some("2026-01-01T00:11:00Z".parse().expect("time"))
    );
}

#[test]
fn unready_and_terminating_pods_are_not_healthy_and_no_pods_allow_nothing() {
    let mut terminating = pod("c", true);
    terminating["metadata"]["deletionTimestamp"] = json!(NOW);
    let pods = [pod("a", true), pod("b", false), terminating];
    let refs: Vec<&Value> = pods.iter().collect();
    let s = plan_status(&pdb(json!({"minAvailable": 0})), &refs, &naked, now())
        .status
        .expect("changes");
    assert_eq!(s["currentHealthy"], 1);
    assert_eq!(s["disruptionsAllowed"], 1);
    let s = plan_status(&pdb(json!({"maxUnavailable": 1})), &[], &naked, now())
        .status
        .expect("the condition is added");
    assert_eq!(s["expectedPods"], 0);
    assert_eq!(s["disruptionsAllowed"], 0);
}

#[test]
fn an_up_to_date_status_is_not_written_again() {
    let pods = [pod("a", true), pod("b", true)];
    let refs: Vec<&Value> = pods.iter().collect();
    let mut budget = pdb(json!({"minAvailable": 1}));
    let first = plan_status(&budget, &refs, &naked, now())
        .status
        .expect("changes");
    budget["status"] = first;
    let later: Timestamp = "2026-01-01T01:00:00Z".parse().expect("time");
    assert_eq!(plan_status(&budget, &refs, &naked, later).status, None);
}
