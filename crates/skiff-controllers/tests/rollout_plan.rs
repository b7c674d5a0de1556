//! `rollout_plan`: the step sequences the controller's arithmetic produces.

use k8s_openapi::api::apps::v1::Deployment;
use skiff_controllers::deployment::{rollout_plan, PlanError, RolloutPlan, Step};

fn deployment(replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:2"}]}
            }
        }
    }))
    .expect("valid deployment")
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}
    })
}

fn steps(news: &[i32], olds: &[i32]) -> Vec<Step> {
    assert_eq!(news.len(), olds.len());
    news.iter()
        .zip(olds)
        .map(|(&new, &old)| Step { new, old })
        .collect()
}

#[test]
fn five_replicas_surge_one_unavailable_zero_alternates_up_and_down() {
    let plan = rollout_plan(&deployment(5, rolling(1.into(), 0.into()))).expect("plan");
    assert_eq!(plan.max_surge, 1);
    assert_eq!(plan.max_unavailable, 0);
    assert_eq!(
        plan.steps,
        steps(
            &[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
            &[5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0]
        )
    );
}

#[test]
fn three_replicas_at_default_quarters_surges_by_one() {
    // 25% of 3: surge rounds up to 1, unavailable rounds down to 0.
    let plan = rollout_plan(&deployment(3, rolling("25%".into(), "25%".into()))).expect("plan");
    assert_eq!((plan.max_surge, plan.max_unavailable), (1, 0));
    assert_eq!(
        plan.steps,
        steps(&[0, 1, 1, 2, 2, 3, 3], &[3, 3, 2, 2, 1, 1, 0])
    );
}

#[test]
fn ten_replicas_at_quarters_moves_three_at_a_time() {
    // surge ceil(2.5) = 3, unavailable floor(2.5) = 2.
    let plan = rollout_plan(&deployment(10, rolling("25%".into(), "25%".into()))).expect("plan");
    assert_eq!((plan.max_surge, plan.max_unavailable), (3, 2));
    // Sync 1 creates the new RS at 3 (13 pods, the surge limit): that write is a state of its
    // own. Since creating is not "scaling up", the same sync goes on to scale the old one down
    // within maxUnavailable: allPods 13 - minAvailable 8 - 3 new pods not yet available = 2,
    // so old 10 -> 8, as Kubernetes does. Then new +2 (back to 13), old -5 once the new pods
    // are available (13 available - 8), new +5, old -3.
    assert_eq!(
        plan.steps,
        steps(&[0, 3, 3, 5, 5, 10, 10], &[10, 10, 8, 8, 3, 3, 0])
    );
    for pair in plan.steps.windows(2) {
        let total = pair[1].new + pair[1].old;
        assert!(total <= 13, "never more than replicas + maxSurge: {pair:?}");
        assert!(
            total >= 8,
            "never fewer than replicas - maxUnavailable: {pair:?}"
        );
    }
}

/// Whole plans worked out by hand from Kubernetes' rolling-update arithmetic, assuming syncs
/// run until nothing more can move and then the new pods become available together.
#[test]
fn rolling_plans_list_every_state_kubernetes_passes_through() {
    struct Case {
        name: &'static str,
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
        steps: &'static [(i32, i32)],
    }
    let cases = [
        Case {
            name: "10 at 25%/25%",
            replicas: 10,
            surge: "25%".into(),
            unavailable: "25%".into(),
            steps: &[(0, 10), (3, 10), (3, 8), (5, 8), (5, 3), (10, 3), (10, 0)],
        },
        Case {
            // Sync 1 creates 1 new pod (6 = the surge limit) and removes 1 old one (6 - 4 - 1
            // unavailable new pod); the new pod at 2 then waits for availability before the
            // old ReplicaSet can lose 2 more.
            name: "5 at 1/1",
            replicas: 5,
            surge: 1.into(),
            unavailable: 1.into(),
            steps: &[
                (0, 5),
                (1, 5),
                (1, 4),
                (2, 4),
                (2, 2),
                (4, 2),
                (4, 0),
                (5, 0),
            ],
        },
        Case {
            // No surge: the new ReplicaSet is created empty, which is no state change.
            name: "4 at 0/2",
            replicas: 4,
            surge: 0.into(),
            unavailable: 2.into(),
            steps: &[(0, 4), (0, 2), (2, 2), (2, 0), (4, 0)],
        },
        Case {
            // The one new pod must be available before the one old pod goes.
            name: "1 at 25%/25%",
            replicas: 1,
            surge: "25%".into(),
            unavailable: "25%".into(),
            steps: &[(0, 1), (1, 1), (1, 0)],
        },
    ];
    for case in cases {
        let plan = rollout_plan(&deployment(
            case.replicas,
            rolling(case.surge, case.unavailable),
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let got: Vec<(i32, i32)> = plan.steps.iter().map(|s| (s.new, s.old)).collect();
        assert_eq!(got, case.steps, "{}", case.name);
    }
}

/// Over every small strategy: the plan starts and ends where it must, each step is one
/// ReplicaSet write (only one of the two sizes changes), the totals stay within the
/// strategy's bounds, and the new ReplicaSet's creation at min(maxSurge, replicas) is a step
/// of its own before any old pod is removed.
#[test]
fn every_small_strategy_moves_one_replica_set_per_step_within_bounds() {
    let mut checked = 0;
    for replicas in 0..=12 {
        for surge in 0..=4 {
            for unavailable in 0..=4 {
                if surge == 0 && unavailable == 0 {
                    continue;
                }
                let name = format!("{replicas} at {surge}/{unavailable}");
                let plan = rollout_plan(&deployment(
                    replicas,
                    rolling(surge.into(), unavailable.into()),
                ))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
                let steps = &plan.steps;
                assert_eq!(
                    steps.first(),
                    Some(&Step {
                        new: 0,
                        old: replicas
                    }),
                    "{name}"
                );
                assert_eq!(
                    steps.last(),
                    Some(&Step {
                        new: replicas,
                        old: 0
                    }),
                    "{name}"
                );
                for pair in steps.windows(2) {
                    let (before, after) = (pair[0], pair[1]);
                    assert!(
                        (before.new == after.new) != (before.old == after.old),
                        "{name}: one ReplicaSet changes per step: {before:?} -> {after:?}"
                    );
                    let total = after.new + after.old;
                    assert!(
                        total <= replicas + surge,
                        "{name}: {after:?} over the surge"
                    );
                    assert!(
                        total >= replicas - unavailable,
                        "{name}: {after:?} under maxUnavailable"
                    );
                }
                if surge > 0 && replicas > 0 {
                    assert_eq!(
                        steps.get(1),
                        Some(&Step {
                            new: surge.min(replicas),
                            old: replicas
                        }),
                        "{name}: the new ReplicaSet's creation is the first state"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 13 * 24);
}

#[test]
fn recreate_scales_old_to_zero_before_creating_new_at_full_size() {
    let plan = rollout_plan(&deployment(4, serde_json::json!({"type": "Recreate"}))).expect("plan");
    assert_eq!((plan.max_surge, plan.max_unavailable), (0, 0));
    assert_eq!(plan.steps, steps(&[0, 0, 4], &[4, 0, 0]));
}

#[test]
fn defaults_apply_when_strategy_is_absent() {
    let mut d = deployment(4, serde_json::json!({}));
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = None;
    }
    let plan = rollout_plan(&d).expect("plan");
    assert_eq!((plan.max_surge, plan.max_unavailable), (1, 1));
    assert_eq!(plan.steps.last(), Some(&Step { new: 4, old: 0 }));
}

#[test]
fn invalid_percentage_is_an_error() {
    let err = rollout_plan(&deployment(3, rolling("abc".into(), 0.into()))).unwrap_err();
    assert_eq!(err, PlanError::NotAPercentage);
}

#[test]
fn serializes_to_the_cli_shape_and_renders_a_table() {
    let plan = RolloutPlan {
        max_surge: 1,
        max_unavailable: 0,
        steps: steps(&[0, 1], &[1, 1]),
    };
    assert_eq!(
        serde_json::to_string(&plan).expect("json"),
        r#"{"maxSurge":1,"maxUnavailable":0,"steps":[{"new":0,"old":1},{"new":1,"old":1}]}"#
    );
    assert_eq!(
        plan.render_table(),
        "MAX SURGE: 1   MAX UNAVAILABLE: 0\nSTEP   NEW   OLD   TOTAL\n0      0     1     1\n1      1     1     2\n"
    );
}

#[test]
fn huge_deployment_with_tiny_surge_stops_instead_of_spinning() {
    let err = rollout_plan(&deployment(i32::MAX, rolling(1.into(), 0.into()))).unwrap_err();
    assert!(matches!(err, PlanError::RolloutTooLong { .. }), "{err:?}");
}

#[test]
fn large_deployment_with_percent_fenceposts_is_simulated() {
    let plan = rollout_plan(&deployment(1000, rolling("25%".into(), "25%".into()))).expect("plan");
    assert_eq!(plan.steps.last(), Some(&Step { new: 1000, old: 0 }));
    for pair in plan.steps.windows(2) {
        let total = pair[1].new + pair[1].old;
        assert!((750..=1250).contains(&total), "{pair:?}");
    }
}

#[test]
fn zero_replicas_has_nothing_to_move() {
    let plan = rollout_plan(&deployment(0, rolling(1.into(), 0.into()))).expect("plan");
    assert_eq!(plan.steps, steps(&[0], &[0]));
}
