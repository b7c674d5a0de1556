//! Turning a metric's proposal into the replica count to set (`horizontal.go`'s
//! normalization): stabilization windows, scaling policies, min/max limits, and the
//! `AbleToScale`/`ScalingLimited` reasons each outcome carries.
//!
//! The controller keeps a [`History`] per autoscaler (recent proposals and recent scale
//! changes) in memory, as upstream does; everything here takes `now` explicitly.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// Legacy scale-up limit without `behavior`: at most double, and at least four.
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
/// See [`SCALE_UP_LIMIT_FACTOR`].
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

/// One unstabilized proposal and when it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    /// Replicas the metrics asked for.
    pub replicas: i32,
    /// When.
    pub timestamp: Timestamp,
}

/// One rescale the controller made, kept while a policy period may still count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    /// How many replicas were added (scale-up list) or removed (scale-down list).
    pub replica_change: i32,
    /// When.
    pub timestamp: Timestamp,
    /// Older than every policy period: its slot may be reused.
    pub outdated: bool,
}

/// What the controller remembers about one autoscaler between syncs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Recent proposals, for stabilization windows.
    pub recommendations: Vec<Recommendation>,
    /// Recent scale-ups, for scale-up policies.
    pub scale_up_events: Vec<ScaleEvent>,
    /// Recent scale-downs, for scale-down policies.
    pub scale_down_events: Vec<ScaleEvent>,
}

/// `selectPolicy` of a scaling direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change wins.
    Max,
    /// The policy allowing the smallest change wins.
    Min,
    /// This direction never scales.
    Disabled,
}

/// How one policy limits change within its period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// An absolute number of pods.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One scaling policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalingPolicy {
    /// Pods or percent.
    pub kind: PolicyKind,
    /// How many pods, or what percentage.
    pub value: i32,
    /// The period the limit applies to.
    pub period_seconds: i32,
}

/// The rules of one direction with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRules {
    /// How far back proposals are stabilized over.
    pub stabilization_window_seconds: i32,
    /// Which policy wins.
    pub select_policy: SelectPolicy,
    /// The policies.
    pub policies: Vec<ScalingPolicy>,
}

fn select_policy(s: Option<&str>) -> SelectPolicy {
    match s {
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        _ => SelectPolicy::Max,
    }
}

fn policies_of(rules: &HPAScalingRules) -> Option<Vec<ScalingPolicy>> {
    rules.policies.as_ref().map(|ps| {
        ps.iter()
            .map(|p| ScalingPolicy {
                kind: if p.type_ == "Percent" {
                    PolicyKind::Percent
                } else {
                    PolicyKind::Pods
                },
                value: p.value,
                period_seconds: p.period_seconds,
            })
            .collect()
    })
}

/// `GenerateHPAScaleUpRules`: scale-up rules with defaults (no stabilization; the larger of
/// four pods or 100% per 15 s).
pub fn scale_up_rules(rules: Option<&HPAScalingRules>) -> ScalingRules {
    let default_policies = vec![
        ScalingPolicy {
            kind: PolicyKind::Pods,
            value: 4,
            period_seconds: 15,
        },
        ScalingPolicy {
            kind: PolicyKind::Percent,
            value: 100,
            period_seconds: 15,
        },
    ];
    ScalingRules {
        stabilization_window_seconds: rules
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(0),
        select_policy: select_policy(rules.and_then(|r| r.select_policy.as_deref())),
        policies: rules.and_then(policies_of).unwrap_or(default_policies),
    }
}

/// `GenerateHPAScaleDownRules` plus the controller's own window: scale-down rules with
/// defaults (100% per 15 s), stabilized over `default_window_seconds` unless set.
pub fn scale_down_rules(
    rules: Option<&HPAScalingRules>,
    default_window_seconds: i32,
) -> ScalingRules {
    ScalingRules {
        stabilization_window_seconds: rules
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(default_window_seconds),
        select_policy: select_policy(rules.and_then(|r| r.select_policy.as_deref())),
        policies: rules.and_then(policies_of).unwrap_or_else(|| {
            vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }]
        }),
    }
}

fn seconds_before(now: Timestamp, seconds: i64) -> Timestamp {
    now.checked_sub(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MIN)
}

/// A normalization outcome: the count, and the reason and message of its condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// Replicas to set.
    pub replicas: i32,
    /// The condition reason (`DesiredWithinRange`, `ScaleUpLimit`, ...).
    pub reason: &'static str,
    /// The condition message.
    pub message: &'static str,
}

const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);

fn normalized(replicas: i32, (reason, message): (&'static str, &'static str)) -> Normalized {
    Normalized {
        replicas,
        reason,
        message,
    }
}

/// `calculateScaleUpLimit`: the legacy ceiling on one scale-up.
pub fn calculate_scale_up_limit(current_replicas: i32) -> i32 {
    (SCALE_UP_LIMIT_FACTOR * f64::from(current_replicas)).max(SCALE_UP_LIMIT_MINIMUM) as i32
}

/// `convertDesiredReplicasWithRules`: the legacy limits (min, max, scale-up rate).
pub fn convert_desired_replicas_with_rules(
    current_replicas: i32,
    desired_replicas: i32,
    min_replicas: i32,
    max_replicas: i32,
) -> Normalized {
    let scale_up_limit = calculate_scale_up_limit(current_replicas);
    let (maximum, limiting) = if max_replicas > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (max_replicas, TOO_MANY)
    };
    if desired_replicas < min_replicas {
        normalized(min_replicas, TOO_FEW)
    } else if desired_replicas > maximum {
        normalized(maximum, limiting)
    } else {
        normalized(desired_replicas, WITHIN_RANGE)
    }
}

impl History {
    /// `recordInitialRecommendation`: the first sync remembers the current size as a
    /// proposal, so a fresh controller does not scale down at once.
    pub fn record_initial_recommendation(&mut self, current_replicas: i32, now: Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current_replicas,
                timestamp: now,
            });
        }
    }

    /// `stabilizeRecommendation` (no `behavior`): records the proposal, replacing one older
    /// than the window, and returns the highest proposal within the window.
    pub fn stabilize_recommendation(
        &mut self,
        proposal: i32,
        window: std::time::Duration,
        now: Timestamp,
    ) -> i32 {
        let cutoff = seconds_before(now, i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
        let mut max = proposal;
        let mut old_index = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if rec.timestamp < cutoff {
                old_index = Some(i);
            } else if rec.replicas > max {
                max = rec.replicas;
            }
        }
        let fresh = Recommendation {
            replicas: proposal,
            timestamp: now,
        };
        match old_index {
            Some(i) => self.recommendations[i] = fresh,
            None => self.recommendations.push(fresh),
        }
        max
    }

    /// `stabilizeRecommendationWithBehaviors`: bounds the proposal by the lowest proposal of
    /// the scale-up window and the highest of the scale-down window, records it, and returns
    /// the stabilized count with the reason/message used when stabilization changed it.
    pub fn stabilize_recommendation_with_behaviors(
        &mut self,
        current_replicas: i32,
        desired_replicas: i32,
        up: &ScalingRules,
        down: &ScalingRules,
        now: Timestamp,
    ) -> Normalized {
        let up_cutoff = seconds_before(now, i64::from(up.stabilization_window_seconds));
        let down_cutoff = seconds_before(now, i64::from(down.stabilization_window_seconds));
        let mut up_recommendation = desired_replicas;
        let mut down_recommendation = desired_replicas;
        let mut old_index = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if rec.timestamp > up_cutoff {
                up_recommendation = up_recommendation.min(rec.replicas);
            }
            if rec.timestamp > down_cutoff {
                down_recommendation = down_recommendation.max(rec.replicas);
            }
            if rec.timestamp < up_cutoff && rec.timestamp < down_cutoff {
                old_index = Some(i);
            }
        }
        let mut recommendation = current_replicas;
        if recommendation < up_recommendation {
            recommendation = up_recommendation;
        }
        if recommendation > down_recommendation {
            recommendation = down_recommendation;
        }
        let fresh = Recommendation {
            replicas: desired_replicas,
            timestamp: now,
        };
        match old_index {
            Some(i) => self.recommendations[i] = fresh,
            None => self.recommendations.push(fresh),
        }
        if desired_replicas >= current_replicas {
            Normalized {
                replicas: recommendation,
                reason: "ScaleUpStabilized",
                message: "recent recommendations were lower than current one, applying the lowest recent recommendation",
            }
        } else {
            Normalized {
                replicas: recommendation,
                reason: "ScaleDownStabilized",
                message: "recent recommendations were higher than current one, applying the highest recent recommendation",
            }
        }
    }

    /// `convertDesiredReplicasWithBehaviorRate`: applies min/max and the policies of the
    /// direction of change, counting the changes already made within each policy's period.
    pub fn convert_desired_replicas_with_behavior_rate(
        &self,
        args: &NormalizationArgs<'_>,
        now: Timestamp,
    ) -> Normalized {
        if args.desired_replicas > args.current_replicas {
            let limit = calculate_scale_up_limit_with_scaling_rules(
                args.current_replicas,
                &self.scale_up_events,
                &self.scale_down_events,
                args.scale_up,
                now,
            )
            .max(args.current_replicas);
            let (maximum, limiting) = if args.max_replicas > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (args.max_replicas, TOO_MANY)
            };
            if args.desired_replicas > maximum {
                return normalized(maximum, limiting);
            }
        } else if args.desired_replicas < args.current_replicas {
            let limit = calculate_scale_down_limit_with_behaviors(
                args.current_replicas,
                &self.scale_up_events,
                &self.scale_down_events,
                args.scale_down,
                now,
            )
            .min(args.current_replicas);
            let (minimum, limiting) = if args.min_replicas < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (args.min_replicas, TOO_FEW)
            };
            if args.desired_replicas < minimum {
                return normalized(minimum, limiting);
            }
        }
        normalized(args.desired_replicas, WITHIN_RANGE)
    }

    /// `storeScaleEvent`: remembers a rescale for the policies of its direction, reusing the
    /// slot of an event older than every period. Without `behavior` nothing is kept.
    pub fn store_scale_event(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        previous_replicas: i32,
        new_replicas: i32,
        now: Timestamp,
    ) {
        let Some(behavior) = behavior else {
            return;
        };
        let (events, rules, change) = if new_replicas > previous_replicas {
            (
                &mut self.scale_up_events,
                scale_up_rules(behavior.scale_up.as_ref()),
                new_replicas - previous_replicas,
            )
        } else {
            (
                &mut self.scale_down_events,
                scale_down_rules(behavior.scale_down.as_ref(), 0),
                previous_replicas - new_replicas,
            )
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let cutoff = seconds_before(now, i64::from(longest));
        let mut old_index = None;
        for (i, event) in events.iter_mut().enumerate() {
            if event.timestamp < cutoff {
                event.outdated = true;
            }
            if event.outdated {
                old_index = Some(i);
            }
        }
        let fresh = ScaleEvent {
            replica_change: change,
            timestamp: now,
            outdated: false,
        };
        match old_index {
            Some(i) => events[i] = fresh,
            None => events.push(fresh),
        }
    }
}

/// What one normalization with `behavior` needs.
#[derive(Clone, Copy, Debug)]
pub struct NormalizationArgs<'a> {
    /// Scale-up rules, defaults filled in.
    pub scale_up: &'a ScalingRules,
    /// Scale-down rules, defaults filled in.
    pub scale_down: &'a ScalingRules,
    /// `spec.minReplicas` (1 when unset).
    pub min_replicas: i32,
    /// `spec.maxReplicas`.
    pub max_replicas: i32,
    /// The target's current `spec.replicas`.
    pub current_replicas: i32,
    /// The proposal being normalized.
    pub desired_replicas: i32,
}

/// `getReplicasChangePerPeriod`: replicas changed within the last `period_seconds`.
pub fn replicas_change_per_period(
    period_seconds: i32,
    events: &[ScaleEvent],
    now: Timestamp,
) -> i32 {
    let cutoff = seconds_before(now, i64::from(period_seconds));
    events
        .iter()
        .filter(|e| e.timestamp > cutoff)
        .map(|e| e.replica_change)
        .sum()
}

/// `calculateScaleUpLimitWithScalingRules`: the most replicas the scale-up policies allow now.
pub fn calculate_scale_up_limit_with_scaling_rules(
    current_replicas: i32,
    scale_up_events: &[ScaleEvent],
    scale_down_events: &[ScaleEvent],
    rules: &ScalingRules,
    now: Timestamp,
) -> i32 {
    let (start, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current_replicas,
        SelectPolicy::Min => (i32::MAX, i32::min),
        SelectPolicy::Max => (i32::MIN, i32::max),
    };
    policy_period_starts(
        current_replicas,
        scale_up_events,
        scale_down_events,
        rules,
        now,
    )
    .map(|(period_start, policy)| match policy.kind {
        PolicyKind::Pods => period_start.saturating_add(policy.value),
        // Rounded up, or a small target could never grow.
        PolicyKind::Percent => {
            (f64::from(period_start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32
        }
    })
    .fold(start, pick)
}

/// `calculateScaleDownLimitWithBehaviors`: the fewest replicas the scale-down policies allow
/// now.
pub fn calculate_scale_down_limit_with_behaviors(
    current_replicas: i32,
    scale_up_events: &[ScaleEvent],
    scale_down_events: &[ScaleEvent],
    rules: &ScalingRules,
    now: Timestamp,
) -> i32 {
    let (start, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current_replicas,
        SelectPolicy::Min => (i32::MIN, i32::max),
        SelectPolicy::Max => (i32::MAX, i32::min),
    };
    policy_period_starts(
        current_replicas,
        scale_up_events,
        scale_down_events,
        rules,
        now,
    )
    .map(|(period_start, policy)| match policy.kind {
        PolicyKind::Pods => period_start.saturating_sub(policy.value),
        PolicyKind::Percent => {
            (f64::from(period_start) * (1.0 - f64::from(policy.value) / 100.0)) as i32
        }
    })
    .fold(start, pick)
}

/// Each policy with the replica count its period started from: the current count with the
/// changes made within the policy's period undone, which both limits scale from.
fn policy_period_starts<'a>(
    current_replicas: i32,
    scale_up_events: &'a [ScaleEvent],
    scale_down_events: &'a [ScaleEvent],
    rules: &'a ScalingRules,
    now: Timestamp,
) -> impl Iterator<Item = (i32, &'a ScalingPolicy)> + 'a {
    rules.policies.iter().map(move |policy| {
        let added = replicas_change_per_period(policy.period_seconds, scale_up_events, now);
        let deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now);
        (current_replicas - added + deleted, policy)
    })
}
