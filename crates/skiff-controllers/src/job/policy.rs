//! A Job's `podFailurePolicy` and `successPolicy`, as upstream's `matchPodFailurePolicy` and
//! `matchSuccessPolicy` decide them: pure functions of the policy and a pod or the set of
//! succeeded indexes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::parse_indexes;

/// The annotation counting an index's failures that counted, carried by each pod of a Job with
/// `backoffLimitPerIndex`.
pub const INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation counting an index's failures a pod failure policy ignored.
pub const INDEX_IGNORED_FAILURE_COUNT_ANNOTATION: &str =
    "batch.kubernetes.io/job-index-ignored-failure-count";

/// The action of the pod failure policy rule a failed pod matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// The Job fails at once; the message names the container or condition and the rule.
    FailJob(String),
    /// The failure does not count towards any back-off limit.
    Ignore,
    /// The failure counts, as without a policy.
    Count,
    /// The pod's index fails without further retries.
    FailIndex,
}

impl FailureAction {
    /// Whether the failure counts towards `backoffLimit` (and the per-index limit).
    pub fn counts(&self) -> bool {
        !matches!(self, FailureAction::Ignore)
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The first terminated container in `statuses`, with a non-zero exit code, that the
/// `onExitCodes` requirement matches: its name and exit code.
fn matching_container(statuses: Option<&Value>, requirement: &Value) -> Option<(String, i64)> {
    let wanted_name = requirement.get("containerName").and_then(Value::as_str);
    let operator = text(requirement, "operator");
    let values: Vec<i64> = requirement
        .get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    statuses
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|status| {
            let code = status.pointer("/state/terminated/exitCode")?.as_i64()?;
            let name = text(status, "name");
            if wanted_name.is_some_and(|w| w != name) || code == 0 {
                return None;
            }
            let listed = values.contains(&code);
            let matches = match operator {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            matches.then(|| (name.to_string(), code))
        })
}

/// The type of the first pod condition one of the `onPodConditions` patterns matches.
fn matching_condition(pod: &Value, patterns: &[Value]) -> Option<String> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|condition| {
            patterns.iter().any(|p| {
                let status = p.get("status").and_then(Value::as_str).unwrap_or("True");
                text(p, "type") == text(condition, "type") && status == text(condition, "status")
            })
        })
        .map(|c| text(c, "type").to_string())
}

/// The action of the first rule of `policy` (a Job's `spec.podFailurePolicy`) a failed pod
/// matches; `None` when no rule does (the failure then counts).
pub fn match_pod_failure_policy(policy: &Value, pod: &Value) -> Option<FailureAction> {
    let rules = policy.get("rules").and_then(Value::as_array)?;
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    for (index, rule) in rules.iter().enumerate() {
        let action = text(rule, "action");
        let failure_message = if let Some(requirement) =
            rule.get("onExitCodes").filter(|r| !r.is_null())
        {
            let found = matching_container(pod.pointer("/status/containerStatuses"), requirement)
                .or_else(|| {
                    matching_container(pod.pointer("/status/initContainerStatuses"), requirement)
                });
            let Some((container, code)) = found else {
                continue;
            };
            format!(
                "Container {container} for pod {namespace}/{pod_name} failed with exit code \
                 {code} matching {action} rule at index {index}"
            )
        } else if let Some(patterns) = rule.get("onPodConditions").and_then(Value::as_array) {
            let Some(condition) = matching_condition(pod, patterns) else {
                continue;
            };
            format!(
                "Pod {namespace}/{pod_name} has condition {condition} matching {action} rule at \
                 index {index}"
            )
        } else {
            continue;
        };
        let verdict = match action {
            "FailJob" => FailureAction::FailJob(failure_message),
            "Ignore" => FailureAction::Ignore,
            "Count" => FailureAction::Count,
            "FailIndex" => FailureAction::FailIndex,
            // An unknown action matches nothing, as upstream's switch falls through.
            _ => continue,
        };
        return Some(verdict);
    }
    None
}

/// The message of the first rule of `policy` (a Job's `spec.successPolicy`) the succeeded
/// indexes satisfy, `Matched rules at index N`, or `None`.
pub fn match_success_policy(
    policy: &Value,
    completions: i64,
    succeeded: &BTreeSet<i64>,
) -> Option<String> {
    if succeeded.is_empty() {
        return None;
    }
    let rules = policy.get("rules").and_then(Value::as_array)?;
    for (index, rule) in rules.iter().enumerate() {
        let wanted_count = rule.get("succeededCount").and_then(Value::as_i64);
        let matched = match rule.get("succeededIndexes").and_then(Value::as_str) {
            Some(list) => {
                let required = parse_indexes(list, completions);
                if required.is_empty() {
                    continue;
                }
                let done = required.intersection(succeeded).count();
                let done = i64::try_from(done).unwrap_or(i64::MAX);
                done == i64::try_from(required.len()).unwrap_or(i64::MAX)
                    || wanted_count.is_some_and(|c| done >= c)
            }
            None => wanted_count
                .is_some_and(|c| i64::try_from(succeeded.len()).unwrap_or(i64::MAX) >= c),
        };
        if matched {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// An index's counted and ignored failures as its pod's annotations record them (0 when
/// missing or malformed).
pub fn index_failure_counts(pod: &Value) -> (i64, i64) {
    let read = |key: &str| {
        pod.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .unwrap_or(0)
    };
    (
        read(INDEX_FAILURE_COUNT_ANNOTATION),
        read(INDEX_IGNORED_FAILURE_COUNT_ANNOTATION),
    )
}
