//! kube-controller-manager's resource quota controller as a pure planner: a ResourceQuota's
//! status (`hard` from the spec, `used` summed over the objects of its namespace it covers)
//! from the objects and the time. [`controller`] is its shell. What each object counts is
//! `skiff_api::quota`'s, shared with quota admission.

pub mod controller;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};
use skiff_api::quota::{object_usage, pod_counts, quota_covers, source_of, Amount, Usage};

fn resource_map<'a>(quota: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    quota.pointer(pointer).and_then(Value::as_object)
}

/// The kinds (group, plural) a quota's `spec.hard` needs objects of.
pub fn sources(quota: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = resource_map(quota, "/spec/hard")
        .into_iter()
        .flatten()
        .filter_map(|(name, _)| source_of(name))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The resource quota controller's sync as a planner: the quota's status recomputed from the
/// objects of its namespace (`objects` gives them by `(group, plural)`), `None` when it is
/// already current. `status.hard` copies `spec.hard`; `status.used` sums every tracked
/// resource of `spec.hard` over the objects the quota covers (pods only while they count).
pub fn plan_status(
    quota: &Value,
    objects: &dyn Fn(&str, &str) -> Vec<Value>,
    now: Timestamp,
) -> Option<Value> {
    let empty = Map::new();
    let hard = resource_map(quota, "/spec/hard").unwrap_or(&empty);
    let mut sources: BTreeMap<(String, String), Vec<&String>> = BTreeMap::new();
    for name in hard.keys() {
        if let Some(source) = source_of(name) {
            sources.entry(source).or_default().push(name);
        }
    }
    let mut used = Map::new();
    for ((group, plural), names) in &sources {
        let mut totals: Usage = names
            .iter()
            .map(|n| ((*n).clone(), Amount::default()))
            .collect();
        for obj in objects(group, plural) {
            if group.is_empty() && plural == "pods" && !pod_counts(&obj, now) {
                continue;
            }
            if !quota_covers(quota, group, plural, &obj) {
                continue;
            }
            for (name, amount) in object_usage(group, plural, &obj) {
                if let Some(total) = totals.get_mut(&name) {
                    *total = total.plus(amount);
                }
            }
        }
        for (name, total) in totals {
            let hard_binary = hard
                .get(&name)
                .and_then(Value::as_str)
                .is_some_and(|h| h.ends_with('i'));
            let total = Amount {
                binary: total.binary || hard_binary,
                ..total
            };
            used.insert(name, Value::String(total.to_quantity()));
        }
    }
    let mut sorted_hard: Vec<(&String, &Value)> = hard.iter().collect();
    sorted_hard.sort_by(|a, b| a.0.cmp(b.0));
    let mut sorted_used: Vec<(String, Value)> = used.into_iter().collect();
    sorted_used.sort_by(|a, b| a.0.cmp(&b.0));
    let status = serde_json::json!({
        "hard": sorted_hard.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Map<_, _>>(),
        "used": sorted_used.into_iter().collect::<Map<_, _>>(),
    });
    let current = quota.get("status").cloned().unwrap_or(Value::Null);
    let same = |key: &str| {
        current
            .get(key)
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()))
            == status[key]
    };
    if same("hard") && same("used") {
        None
    } else {
        Some(status)
    }
}
