//! Normalization against Kubernetes' own cases (`horizontal_test.go`:
//! `TestConvertDesiredReplicasWithRules`, `TestCalculateScale{Up,Down}Limit*`,
//! `TestNormalizeDesiredReplicas`, `TestScalingWithRules`, `TestStoreScaleEvents`,
//! `TestNormalizeDesiredReplicasWithBehavior`).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscalerBehavior,
};
use skiff_controllers::hpa::normalize::{
    calculate_scale_down_limit_with_behaviors, calculate_scale_up_limit,
    calculate_scale_up_limit_with_scaling_rules, convert_desired_replicas_with_rules,
    replicas_change_per_period, scale_down_rules, scale_up_rules, History, NormalizationArgs,
    Recommendation, ScaleEvent,
};

fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().expect("a valid timestamp")
}

fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}

/// `generateScalingRules`: a Pods and/or Percent policy, `selectPolicy: Max`.
fn rules(
    pods: i32,
    pods_period: i32,
    percent: i32,
    percent_period: i32,
    window: i32,
) -> HPAScalingRules {
    let mut policies = Vec::new();
    if pods != 0 {
        policies.push(HPAScalingPolicy {
            type_: "Pods".into(),
            value: pods,
            period_seconds: pods_period,
        });
    }
    if percent != 0 {
        policies.push(HPAScalingPolicy {
            type_: "Percent".into(),
            value: percent,
            period_seconds: percent_period,
        });
    }
    HPAScalingRules {
        policies: Some(policies),
        select_policy: Some("Max".into()),
        stabilization_window_seconds: Some(window),
        ..Default::default()
    }
}

/// `generateEventsUniformDistribution`: events spread over the last `period` seconds, each in
/// the middle of its segment.
fn uniform(changes: &[i32], period: i64) -> Vec<ScaleEvent> {
    let segment = period as f64 / changes.len() as f64;
    changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let boundary = (period as f64 - segment * (i as f64 + 1.0) + segment / 2.0) as i64;
            ScaleEvent {
                replica_change: *change,
                timestamp: ago(boundary),
                outdated: false,
            }
        })
        .collect()
}

#[test]
fn legacy_rules_limit_to_min_max_and_the_scale_up_rate() {
    let cases = [
        (
            5,
            7,
            3,
            8,
            7,
            "DesiredWithinRange",
            "prenormalized desired replicas within range",
        ),
        (
            3,
            1,
            2,
            8,
            2,
            "TooFewReplicas",
            "prenormalized desired replicas < minReplicas",
        ),
        (
            1,
            0,
            0,
            10,
            0,
            "DesiredWithinRange",
            "prenormalized desired zeroed replicas within range",
        ),
        (
            20,
            1000,
            1,
            10,
            10,
            "TooManyReplicas",
            "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        ),
        (
            3,
            1000,
            1,
            2000,
            calculate_scale_up_limit(3),
            "ScaleUpLimit",
            "scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
        ),
    ];
    for (current, desired, min, max, expected, reason, name) in cases {
        let got = convert_desired_replicas_with_rules(current, desired, min, max);
        assert_eq!(got.replicas, expected, "{name}");
        assert_eq!(got.reason, reason, "{name}");
    }
    assert_eq!(calculate_scale_up_limit(3), 6);
    assert_eq!(calculate_scale_up_limit(1), 4);
}

#[test]
fn min_select_policy_takes_the_smallest_change() {
    let mut r = rules(2, 60, 50, 60, 300);
    r.select_policy = Some("Min".into());
    let up = scale_up_rules(Some(&r));
    assert_eq!(
        calculate_scale_up_limit_with_scaling_rules(1, &[], &[], &up, now()),
        2
    );
    let down = scale_down_rules(Some(&r), 300);
    assert_eq!(
        calculate_scale_down_limit_with_behaviors(5, &[], &[], &down, now()),
        3
    );
    r.select_policy = Some("Disabled".into());
    let disabled = scale_up_rules(Some(&r));
    assert_eq!(
        calculate_scale_up_limit_with_scaling_rules(7, &[], &[], &disabled, now()),
        7
    );
}

#[test]
fn legacy_stabilization_keeps_the_highest_recent_recommendation() {
    type Case = (&'static str, Vec<(i32, i64)>, i32, i32, usize);
    let cases: Vec<Case> = vec![
        ("empty log", vec![], 5, 5, 1),
        ("stabilize", vec![(4, 120), (5, 60)], 3, 5, 3),
        ("no stabilize", vec![(1, 120), (2, 60)], 3, 3, 3),
        (
            "no stabilize - old recommendations",
            vec![(10, 600), (9, 540)],
            3,
            3,
            2,
        ),
        (
            "stabilize - old recommendations",
            vec![(10, 600), (4, 60), (5, 120), (9, 540)],
            3,
            5,
            4,
        ),
    ];
    for (name, recs, proposal, expected, log_length) in cases {
        let mut history = History {
            recommendations: recs
                .into_iter()
                .map(|(replicas, secs)| Recommendation {
                    replicas,
                    timestamp: ago(secs),
                })
                .collect(),
            ..Default::default()
        };
        let got = history.stabilize_recommendation(proposal, Duration::from_secs(300), now());
        assert_eq!(got, expected, "{name}");
        assert_eq!(
            history.recommendations.len(),
            log_length,
            "{name}: log length"
        );
    }
}

struct RateCase {
    name: &'static str,
    up_events: Vec<ScaleEvent>,
    down_events: Vec<ScaleEvent>,
    min: i32,
    max: i32,
    up: Option<HPAScalingRules>,
    down: Option<HPAScalingRules>,
    current: i32,
    desired: i32,
    expected: i32,
    reason: &'static str,
}

fn rate(
    name: &'static str,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    expected: i32,
    reason: &'static str,
) -> RateCase {
    RateCase {
        name,
        up_events: vec![],
        down_events: vec![],
        min,
        max,
        up: None,
        down: None,
        current,
        desired,
        expected,
        reason,
    }
}

#[test]
fn behavior_policies_limit_the_rate_of_change() {
    let with_up = |mut c: RateCase, r: HPAScalingRules| {
        c.up = Some(r);
        c
    };
    let with_down = |mut c: RateCase, r: HPAScalingRules| {
        c.down = Some(r);
        c
    };
    let up_events = |mut c: RateCase, e: Vec<ScaleEvent>| {
        c.up_events = e;
        c
    };
    let down_events = |mut c: RateCase, e: Vec<ScaleEvent>| {
        c.down_events = e;
        c
    };
    let cases = vec![
        rate("prenormalized desired replicas within range", 5, 7, 3, 8, 7, "DesiredWithinRange"),
        rate("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, 2, "TooFewReplicas"),
        rate("prenormalized desired replicas within range when minReplicas is 0", 1, 0, 0, 10, 0, "DesiredWithinRange"),
        rate("maxReplicas is the limit because maxReplicas < scaleUpLimit", 20, 1000, 1, 10, 10, "TooManyReplicas"),
        rate("desired replica count is more than the maximum replica count", 100, 1000, 100, 150, 150, "TooManyReplicas"),
        with_up(rate("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", 3, 1000, 1, 2000, 4, "ScaleUpLimit"), rules(0, 0, 1, 60, 0)),
        with_down(rate("scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies", 1000, 3, 3, 2000, 980, "ScaleDownLimit"), rules(20, 60, 0, 0, 0)),
        rate("scaleUp with default behavior", 10, 50, 1, 1000, 20, "ScaleUpLimit"),
        with_up(rate("scaleUp with pods policy larger than percent policy", 10, 500, 1, 1000, 110, "ScaleUpLimit"), rules(100, 60, 100, 60, 0)),
        with_up(rate("scaleUp with percent policy larger than pods policy", 10, 500, 1, 1000, 20, "ScaleUpLimit"), rules(2, 60, 100, 60, 0)),
        with_up(rate("scaleUp with spec MaxReplicas limitation with large pod policy", 10, 50, 1, 1000, 50, "DesiredWithinRange"), rules(100, 60, 0, 0, 0)),
        with_up(rate("scaleUp with spec MaxReplicas limitation with large percent policy", 10, 50, 1, 1000, 50, "DesiredWithinRange"), rules(10000, 60, 0, 0, 0)),
        with_up(rate("scaleUp with pod policy limitation", 10, 50, 1, 1000, 40, "ScaleUpLimit"), rules(30, 60, 0, 0, 0)),
        with_up(rate("scaleUp with percent policy limitation", 10, 50, 1, 1000, 30, "ScaleUpLimit"), rules(0, 0, 200, 60, 0)),
        with_down(rate("scaleDown with percent policy larger than pod policy", 100, 2, 1, 1000, 80, "ScaleDownLimit"), rules(20, 60, 1, 60, 300)),
        with_down(rate("scaleDown with pod policy larger than percent policy", 100, 2, 1, 1000, 98, "ScaleDownLimit"), rules(2, 60, 1, 60, 300)),
        with_down(rate("scaleDown with spec MinReplicas=nil limitation with large pod policy", 10, 0, 1, 1000, 1, "TooFewReplicas"), rules(100, 60, 0, 0, 300)),
        with_down(rate("scaleDown with spec MinReplicas limitation with large percent policy", 10, 2, 5, 1000, 5, "TooFewReplicas"), rules(0, 0, 100, 60, 300)),
        with_down(rate("scaleDown with pod policy limitation", 10, 2, 1, 1000, 5, "ScaleDownLimit"), rules(5, 60, 0, 0, 300)),
        with_down(rate("scaleDown with percent policy limitation", 10, 5, 1, 1000, 5, "DesiredWithinRange"), rules(0, 0, 50, 60, 300)),
        up_events(with_up(rate("scaleUp with spec MaxReplicas limitation with large pod policy and events", 100, 500, 1, 200, 200, "TooManyReplicas"), rules(300, 60, 0, 0, 0)), uniform(&[1, 5, 9], 120)),
        up_events(with_up(rate("scaleUp with spec MaxReplicas limitation with large percent policy and events", 100, 500, 1, 200, 200, "TooManyReplicas"), rules(0, 0, 10000, 60, 0)), uniform(&[1, 5, 9], 120)),
        up_events(with_up(rate("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events", 100, 500, 1, 1000, 100, "ScaleUpLimit"), rules(5, 120, 0, 0, 0)), uniform(&[1, 5, 9], 120)),
        up_events(with_up(rate("scaleUp with pod policy and previous scale up events", 100, 500, 1, 1000, 235, "ScaleUpLimit"), rules(150, 120, 0, 0, 0)), uniform(&[1, 5, 9], 120)),
        up_events(with_up(rate("scaleUp with percent policy and previous scale up events", 100, 500, 1, 1000, 255, "ScaleUpLimit"), rules(0, 0, 200, 120, 0)), uniform(&[1, 5, 9], 120)),
        down_events(rate("scaleDown with default policy and previous events", 10, 5, 1, 1000, 5, "DesiredWithinRange"), uniform(&[1, 5, 9], 120)),
        down_events(with_down(rate("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events", 100, 0, 1, 1000, 1, "TooFewReplicas"), rules(115, 120, 0, 0, 300)), uniform(&[1, 5, 9], 120)),
        down_events(with_down(rate("scaleDown with spec MinReplicas limitation with large pod policy and previous events", 100, 0, 5, 1000, 5, "TooFewReplicas"), rules(130, 120, 0, 0, 300)), uniform(&[1, 5, 9], 120)),
        down_events(with_down(rate("scaleDown with spec MinReplicas limitation with large percent policy and previous events", 100, 2, 5, 1000, 5, "TooFewReplicas"), rules(0, 0, 100, 120, 300)), uniform(&[1, 5, 9], 120)),
        down_events(with_down(rate("scaleDown with pod policy limitation and previous events", 100, 2, 1, 1000, 100, "ScaleDownLimit"), rules(5, 120, 0, 0, 300)), uniform(&[1, 5, 9], 120)),
        down_events(with_down(rate("scaleDown with percent policy limitation and previous events", 100, 0, 1, 1000, 56, "ScaleDownLimit"), rules(0, 0, 50, 120, 300)), uniform(&[2, 4, 6], 120)),
        down_events(with_down(rate("scaleDown with previous events preventing further scale down", 100, 0, 1, 1000, 100, "ScaleDownLimit"), rules(0, 0, 10, 120, 300)), uniform(&[10, 10, 10], 120)),
        down_events(with_down(rate("scaleDown with with previous events still allowing more scale down", 10, 5, 1, 1000, 5, "DesiredWithinRange"), rules(0, 0, 1000, 120, 300)), uniform(&[10, 10, 10], 120)),
        up_events(with_up(rate("check 'outdated' flag for events for one behavior for up", 100, 200, 1, 1000, 200, "DesiredWithinRange"), rules(1000, 60, 0, 0, 0)), uniform(&[8, 12, 9, 11], 120)),
        up_events(with_up(rate("check that events were not marked 'outdated' for two different policies in the behavior for up", 100, 200, 1, 1000, 200, "DesiredWithinRange"), rules(1000, 120, 100, 60, 0)), uniform(&[8, 12, 9, 11], 120)),
        up_events(with_up(rate("check that events were marked 'outdated' for two different policies in the behavior for up", 100, 200, 1, 1000, 200, "DesiredWithinRange"), rules(1000, 30, 100, 60, 0)), uniform(&[8, 12, 9, 11], 120)),
        down_events(with_down(rate("check 'outdated' flag for events for one behavior for down", 100, 5, 1, 1000, 5, "DesiredWithinRange"), rules(1000, 60, 0, 0, 300)), uniform(&[8, 12, 9, 11], 120)),
        down_events(with_down(rate("check that events were not marked 'outdated' for two different policies in the behavior for down", 100, 5, 1, 1000, 5, "DesiredWithinRange"), rules(1000, 120, 100, 60, 300)), uniform(&[8, 12, 9, 11], 120)),
        down_events(with_down(rate("check that events were marked 'outdated' for two different policies in the behavior for down", 100, 5, 1, 1000, 5, "DesiredWithinRange"), rules(1000, 30, 100, 60, 300)), uniform(&[8, 12, 9, 11], 120)),
    ];
    for c in cases {
        let history = History {
            scale_up_events: c.up_events.clone(),
            scale_down_events: c.down_events.clone(),
            ..Default::default()
        };
        let up = scale_up_rules(c.up.as_ref());
        let down = scale_down_rules(c.down.as_ref(), 300);
        let got = history.convert_desired_replicas_with_behavior_rate(
            &NormalizationArgs {
                scale_up: &up,
                scale_down: &down,
                min_replicas: c.min,
                max_replicas: c.max,
                current_replicas: c.current,
                desired_replicas: c.desired,
            },
            now(),
        );
        assert_eq!(got.replicas, c.expected, "{}: replicas", c.name);
        assert_eq!(got.reason, c.reason, "{}: reason", c.name);
    }
}

#[test]
fn scale_events_are_stored_reusing_outdated_slots() {
    let ev = |change: i32, secs: i64| ScaleEvent {
        replica_change: change,
        timestamp: ago(secs),
        outdated: false,
    };
    type Case = (
        &'static str,
        Vec<ScaleEvent>,
        Vec<(i32, bool)>,
        Option<HPAScalingRules>,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "empty entries with default behavior",
            vec![],
            vec![],
            None,
            0,
        ),
        (
            "empty entries with two-policy-behavior",
            vec![],
            vec![(5, false)],
            Some(rules(10, 60, 100, 60, 0)),
            0,
        ),
        (
            "one outdated entry to be kept untouched without behavior",
            vec![ev(7, 61)],
            vec![(7, false)],
            None,
            0,
        ),
        (
            "one outdated entry to be replaced with behavior",
            vec![ev(7, 61)],
            vec![(5, false)],
            Some(rules(10, 60, 100, 60, 0)),
            0,
        ),
        (
            "one actual entry to be not touched with behavior",
            vec![ev(7, 58)],
            vec![(7, false), (5, false)],
            Some(rules(10, 60, 100, 60, 0)),
            7,
        ),
        (
            "two entries, one of them to be replaced",
            vec![ev(7, 61), ev(6, 59)],
            vec![(5, false), (6, false)],
            Some(rules(10, 60, 0, 0, 0)),
            6,
        ),
        (
            "replace one entry, use policies with different periods",
            vec![ev(8, 29), ev(6, 59), ev(7, 61), ev(9, 61)],
            vec![(8, false), (6, false), (7, true), (5, false)],
            Some(rules(10, 60, 100, 30, 0)),
            14,
        ),
        (
            "two entries, both actual",
            vec![ev(7, 58), ev(6, 59)],
            vec![(7, false), (6, false), (5, false)],
            Some(rules(10, 120, 100, 30, 0)),
            13,
        ),
    ];
    for (name, previous, expected, scaling_rules, change_before) in cases {
        for up in [true, false] {
            let behavior = scaling_rules
                .clone()
                .map(|r| HorizontalPodAutoscalerBehavior {
                    scale_up: up.then(|| r.clone()),
                    scale_down: (!up).then_some(r),
                });
            let mut history = History::default();
            if up {
                history.scale_up_events = previous.clone();
            } else {
                history.scale_down_events = previous.clone();
            }
            assert_eq!(
                replicas_change_per_period(60, &previous, now()),
                change_before,
                "{name}"
            );
            let new = if up { 15 } else { 5 };
            history.store_scale_event(behavior.as_ref(), 10, new, now());
            let events = if up {
                &history.scale_up_events
            } else {
                &history.scale_down_events
            };
            let got: Vec<(i32, bool)> = events
                .iter()
                .map(|e| (e.replica_change, e.outdated))
                .collect();
            assert_eq!(got, expected, "{name} (up: {up})");
        }
    }
}

#[test]
fn behavior_stabilization_bounds_by_both_windows() {
    type Case = (
        &'static str,
        Vec<(i32, i64)>,
        i32,
        i32,
        i32,
        Vec<i32>,
        i32,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "empty recommendations for scaling down",
            vec![],
            100,
            5,
            5,
            vec![5],
            0,
            0,
        ),
        (
            "simple scale down stabilization",
            vec![(4, 120), (5, 60)],
            100,
            3,
            5,
            vec![4, 5, 3],
            0,
            180,
        ),
        (
            "simple scale up stabilization",
            vec![(4, 120), (5, 60)],
            1,
            7,
            4,
            vec![4, 5, 7],
            300,
            0,
        ),
        (
            "no scale down stabilization",
            vec![(1, 120), (2, 60)],
            100,
            3,
            3,
            vec![1, 2, 3],
            300,
            0,
        ),
        (
            "no scale up stabilization",
            vec![(4, 120), (5, 60)],
            1,
            3,
            3,
            vec![4, 5, 3],
            0,
            300,
        ),
        (
            "no scale down stabilization, reuse recommendation element",
            vec![(10, 600), (9, 540)],
            100,
            3,
            3,
            vec![10, 3],
            0,
            0,
        ),
        (
            "no scale up stabilization, reuse recommendation element",
            vec![(10, 600), (9, 540)],
            1,
            100,
            100,
            vec![10, 100],
            0,
            0,
        ),
        (
            "scale down stabilization, reuse one of obsolete recommendation element",
            vec![(10, 600), (4, 60), (5, 120), (9, 540)],
            100,
            3,
            5,
            vec![10, 4, 5, 3],
            0,
            180,
        ),
        (
            "scale up stabilization, reuse one of obsolete recommendation element",
            vec![(10, 6000), (6, 60), (5, 120), (9, 180)],
            1,
            100,
            5,
            vec![100, 6, 5, 9],
            300,
            0,
        ),
    ];
    for (name, recs, current, desired, expected, stored, up_window, down_window) in cases {
        let mut history = History {
            recommendations: recs
                .into_iter()
                .map(|(replicas, secs)| Recommendation {
                    replicas,
                    timestamp: ago(secs),
                })
                .collect(),
            ..Default::default()
        };
        let mut up = scale_up_rules(None);
        up.stabilization_window_seconds = up_window;
        let mut down = scale_down_rules(None, 0);
        down.stabilization_window_seconds = down_window;
        let got =
            history.stabilize_recommendation_with_behaviors(current, desired, &up, &down, now());
        assert_eq!(got.replicas, expected, "{name}");
        let replicas: Vec<i32> = history.recommendations.iter().map(|r| r.replicas).collect();
        assert_eq!(replicas, stored, "{name}: stored recommendations");
    }
}
