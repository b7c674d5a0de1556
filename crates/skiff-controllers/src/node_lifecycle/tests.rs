//! Cases after kubernetes/pkg/controller/nodelifecycle/node_lifecycle_controller_test.go
//! (`TestMonitorNodeHealthUpdateStatus`, `TestMonitorNodeHealthUpdateNodeAndPodStatusWithLease`,
//! `TestTaintsNodeByCondition`, `TestApplyNoExecuteTaints`, `TestComputeZoneState`).

use super::*;
use serde_json::{json, Value};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

const CREATED: &str = "2026-01-01T00:00:00Z";
const NOW: &str = "2026-01-01T01:00:00Z";

fn node(spec: Value, conditions: Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "node0", "creationTimestamp": CREATED},
        "spec": spec,
        "status": {"conditions": conditions},
    }))
    .expect("a node")
}

fn ready(status: &str, heartbeat: &str) -> Value {
    json!([
        {"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": heartbeat, "lastTransitionTime": CREATED},
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "lastHeartbeatTime": heartbeat, "lastTransitionTime": CREATED},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
         "lastHeartbeatTime": heartbeat, "lastTransitionTime": CREATED},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
         "lastHeartbeatTime": heartbeat, "lastTransitionTime": CREATED},
    ])
}

fn find<'a>(conditions: &'a [NodeCondition], kind: &str) -> &'a NodeCondition {
    conditions
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap_or_else(|| panic!("no {kind} condition"))
}

#[test]
fn a_node_heard_from_within_the_grace_period_keeps_its_conditions() {
    let n = node(json!({}), ready("True", "2026-01-01T00:59:20Z"));
    assert_eq!(
        plan_conditions(&n, None, ts(CREATED), ts(NOW), &LifecycleConfig::default()),
        None
    );
}

#[test]
fn a_silent_node_turns_every_monitored_condition_unknown_with_kubernetes_texts() {
    let n = node(json!({}), ready("True", "2026-01-01T00:59:00Z"));
    let conditions = plan_conditions(&n, None, ts(CREATED), ts(NOW), &LifecycleConfig::default())
        .expect("the grace period (50 s) has passed");
    for kind in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = find(&conditions, kind);
        assert_eq!(c.status, "Unknown", "{kind}");
        assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            c.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(c.last_transition_time, Some(Time(ts(NOW))));
        // The heartbeat stays the kubelet's last.
        assert_eq!(
            c.last_heartbeat_time,
            Some(Time(ts("2026-01-01T00:59:00Z")))
        );
    }
    // Already Unknown: nothing more to write.
    let mut again = n.clone();
    again.status.as_mut().expect("status").conditions = Some(conditions);
    assert_eq!(
        plan_conditions(
            &again,
            None,
            ts(CREATED),
            ts("2026-01-01T02:00:00Z"),
            &LifecycleConfig::default()
        ),
        None
    );
}

#[test]
fn a_renewed_lease_keeps_a_node_alive_whose_status_is_old() {
    let n = node(json!({}), ready("True", "2026-01-01T00:10:00Z"));
    let config = LifecycleConfig::default();
    assert_eq!(
        plan_conditions(
            &n,
            Some(ts("2026-01-01T00:59:30Z")),
            ts(CREATED),
            ts(NOW),
            &config
        ),
        None
    );
    assert!(plan_conditions(
        &n,
        Some(ts("2026-01-01T00:58:00Z")),
        ts(CREATED),
        ts(NOW),
        &config
    )
    .is_some());
}

#[test]
fn a_node_that_never_reported_gets_never_updated_conditions_after_the_startup_grace() {
    let n = node(json!({}), json!([]));
    let config = LifecycleConfig::default();
    assert_eq!(
        plan_conditions(&n, None, ts(CREATED), ts("2026-01-01T00:00:59Z"), &config),
        None
    );
    let conditions = plan_conditions(&n, None, ts(CREATED), ts("2026-01-01T00:01:01Z"), &config)
        .expect("startup grace over");
    let r = find(&conditions, "Ready");
    assert_eq!(r.status, "Unknown");
    assert_eq!(r.reason.as_deref(), Some("NodeStatusNeverUpdated"));
    assert_eq!(
        r.message.as_deref(),
        Some("Kubelet never posted node status.")
    );
    assert_eq!(r.last_heartbeat_time, Some(Time(ts(CREATED))));
    assert_eq!(conditions.len(), 4);
}

fn keys(plan: &TaintPlan) -> Vec<(String, String)> {
    plan.taints
        .as_ref()
        .expect("taints change")
        .iter()
        .map(|t| (t.key.clone(), t.effect.clone()))
        .collect()
}

#[test]
fn an_unreachable_node_gets_the_unreachable_taints_and_loses_them_when_back() {
    let dark = node(json!({}), ready("Unknown", CREATED));
    let plan = plan_taints(&dark, NoExecuteGate::Open, ts(NOW));
    assert!(plan.adds_no_execute);
    assert_eq!(
        keys(&plan),
        [
            (TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string()),
            (TAINT_UNREACHABLE.to_string(), "NoExecute".to_string()),
        ]
    );
    let taints = plan.taints.expect("taints");
    assert_eq!(taints[1].time_added, Some(Time(ts(NOW))));
    assert!(taints[0].time_added.is_none());

    let mut back = node(json!({"taints": taints}), ready("True", NOW));
    back.spec
        .as_mut()
        .expect("spec")
        .taints
        .as_mut()
        .expect("t")
        .push(Taint {
            key: "example.com/mine".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    let plan = plan_taints(&back, NoExecuteGate::Closed, ts(NOW));
    assert_eq!(
        keys(&plan),
        [("example.com/mine".to_string(), "NoSchedule".to_string())],
        "the controller's taints go, others stay"
    );
}

#[test]
fn the_no_execute_taint_waits_for_the_rate_limiter_but_no_schedule_does_not() {
    let dark = node(json!({}), ready("Unknown", CREATED));
    let plan = plan_taints(&dark, NoExecuteGate::Closed, ts(NOW));
    assert!(!plan.adds_no_execute);
    assert_eq!(
        keys(&plan),
        [(TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string())]
    );
    assert!(needs_new_no_execute(&dark));
}

#[test]
fn a_not_ready_node_swaps_unreachable_for_not_ready_without_waiting() {
    let n = node(
        json!({"taints": [
            {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": CREATED},
        ]}),
        ready("False", NOW),
    );
    let plan = plan_taints(&n, NoExecuteGate::Closed, ts(NOW));
    assert!(!plan.adds_no_execute, "a swap is not a new taint");
    assert_eq!(
        keys(&plan),
        [
            (TAINT_NOT_READY.to_string(), "NoSchedule".to_string()),
            (TAINT_NOT_READY.to_string(), "NoExecute".to_string()),
        ]
    );
    assert!(!needs_new_no_execute(&n));
}

#[test]
fn conditions_and_cordoning_map_to_no_schedule_taints() {
    let n = node(
        json!({"unschedulable": true}),
        json!([
            {"type": "Ready", "status": "True", "lastHeartbeatTime": NOW},
            {"type": "MemoryPressure", "status": "True"},
            {"type": "DiskPressure", "status": "True"},
            {"type": "PIDPressure", "status": "False"},
            {"type": "NetworkUnavailable", "status": "True"},
        ]),
    );
    let plan = plan_taints(&n, NoExecuteGate::Open, ts(NOW));
    assert_eq!(
        keys(&plan),
        [
            (TAINT_MEMORY_PRESSURE.to_string(), "NoSchedule".to_string()),
            (TAINT_DISK_PRESSURE.to_string(), "NoSchedule".to_string()),
            (
                TAINT_NETWORK_UNAVAILABLE.to_string(),
                "NoSchedule".to_string()
            ),
            (TAINT_UNSCHEDULABLE.to_string(), "NoSchedule".to_string()),
        ]
    );
    // Uncordoned and healthy: every one goes.
    let healed = node(
        json!({"taints": plan.taints}),
        json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": NOW}]),
    );
    assert_eq!(
        plan_taints(&healed, NoExecuteGate::Open, ts(NOW)).taints,
        Some(vec![])
    );
    // Nothing to change: no write.
    let clean = node(json!({}), ready("True", NOW));
    assert_eq!(
        plan_taints(&clean, NoExecuteGate::Open, ts(NOW)).taints,
        None
    );
}

#[test]
fn zone_states_follow_compute_zone_state() {
    let config = LifecycleConfig::default();
    assert_eq!(zone_state(&[true, true, false], &config), ZoneState::Normal);
    assert_eq!(
        zone_state(&[false, false], &config),
        ZoneState::FullDisruption
    );
    // Two unready nodes never make a partial disruption, however small the zone.
    assert_eq!(
        zone_state(&[true, false, false], &config),
        ZoneState::Normal
    );
    assert_eq!(
        zone_state(&[true, false, false, false], &config),
        ZoneState::PartialDisruption
    );
    assert_eq!(
        zone_state(&[true, true, true, false, false, false], &config),
        ZoneState::Normal,
        "3 of 6 is below 55 %"
    );
}

fn zoned(name: &str, zone: &str, status: &str) -> Node {
    let mut n = node(json!({}), ready(status, NOW));
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some(
        [("topology.kubernetes.io/zone".to_string(), zone.to_string())]
            .into_iter()
            .collect(),
    );
    n
}

#[test]
fn every_zone_fully_disrupted_stops_tainting_and_one_zone_down_does_not() {
    let config = LifecycleConfig::default();
    let rates_of = |nodes: &[Node]| {
        let states = zone_states(nodes, &config);
        let mut sizes = BTreeMap::new();
        for n in nodes {
            *sizes.entry(zone_of(n)).or_insert(0) += 1;
        }
        zone_rates(&states, &sizes, &config)
    };
    let all_down = rates_of(&[zoned("a", "z1", "Unknown"), zoned("b", "z2", "Unknown")]);
    assert!(all_down.all_fully_disrupted);
    assert!(all_down.rates.values().all(|r| *r == 0.0));

    let one_down = rates_of(&[zoned("a", "z1", "Unknown"), zoned("b", "z2", "True")]);
    assert!(!one_down.all_fully_disrupted);
    assert!(one_down.rates.values().all(|r| *r == 0.1));

    let partial: Vec<Node> = (0..4)
        .map(|i| {
            zoned(
                &format!("n{i}"),
                "z1",
                if i == 0 { "True" } else { "Unknown" },
            )
        })
        .chain([zoned("x", "z2", "True")])
        .collect();
    let partial = rates_of(&partial);
    assert_eq!(
        partial.rates[&zone_of(&zoned("n", "z1", "True"))],
        0.0,
        "small zone stops"
    );
}

#[test]
fn the_token_bucket_gives_one_node_every_ten_seconds_at_the_default_rate() {
    let mut bucket = TokenBucket::default();
    let t0 = ts(NOW);
    assert!(bucket.try_take(t0, 0.1, 1.0));
    assert!(!bucket.try_take(t0, 0.1, 1.0));
    assert!(!bucket.try_take(ts("2026-01-01T01:00:09Z"), 0.1, 1.0));
    assert!(bucket.try_take(ts("2026-01-01T01:00:10Z"), 0.1, 1.0));
    // Long idle saves no more than the burst.
    assert!(bucket.try_take(ts("2026-01-01T02:00:00Z"), 0.1, 1.0));
    assert!(!bucket.try_take(ts("2026-01-01T02:00:00Z"), 0.1, 1.0));
    assert!(!TokenBucket::default().try_take(t0, 0.0, 1.0));
}

#[test]
fn a_lifted_gate_removes_the_no_execute_taint_but_keeps_no_schedule() {
    let n = node(
        json!({"taints": [
            {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": CREATED},
        ]}),
        ready("Unknown", CREATED),
    );
    let plan = plan_taints(&n, NoExecuteGate::Lifted, ts(NOW));
    assert_eq!(
        keys(&plan),
        [(TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string())]
    );
}

#[test]
fn a_restarted_controller_gives_every_node_a_full_grace_period() {
    // The node's last report is an hour old, but the controller only started 30 s ago.
    let n = node(json!({}), ready("True", CREATED));
    let config = LifecycleConfig::default();
    let started = ts("2026-01-01T00:59:30Z");
    assert_eq!(plan_conditions(&n, None, started, ts(NOW), &config), None);
    assert!(plan_conditions(&n, None, started, ts("2026-01-01T01:00:21Z"), &config).is_some());
}
