//! Pod topology spread: the pod's `topologySpreadConstraints`, or, when it has none, the
//! cluster default of spreading pods of the same owner over hosts (max skew 3) and zones
//! (max skew 5) as a preference.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};
use serde_json::{Map, Value};
use skiff_api::selector::LabelSelector;

use crate::matching::{self, LABEL_HOSTNAME, LABEL_ZONE};

/// Reason of a node lacking a constraint's topology label.
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
/// Reason of a node where the pod would break a `DoNotSchedule` constraint.
pub const REASON_SKEW: &str = "node(s) didn't match pod topology spread constraints";

/// Which pods a constraint counts.
#[derive(Clone, Debug)]
enum Matcher {
    /// Pods matching a label selector (explicit constraints).
    Labels(LabelSelector),
    /// Pods controlled by the same owner (the default constraints).
    Owner(String),
}

/// One constraint, ready to count pods.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    key: String,
    hard: bool,
    min_domains: i64,
    honor_affinity: bool,
    honor_taints: bool,
    matcher: Matcher,
}

fn labels_as_json(labels: &BTreeMap<String, String>) -> Map<String, Value> {
    labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

impl Constraint {
    fn explicit(pod: &Pod, c: &TopologySpreadConstraint) -> Constraint {
        let mut selector_json = c
            .label_selector
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok());
        // matchLabelKeys narrow the selector to pods sharing the incoming pod's values.
        if let (Some(Value::Object(sel)), Some(keys)) = (&mut selector_json, &c.match_label_keys) {
            let labels = matching::pod_labels(pod);
            let exprs = sel
                .entry("matchExpressions")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = exprs {
                for key in keys {
                    if let Some(v) = labels.get(key) {
                        list.push(serde_json::json!({"key": key, "operator": "In", "values": [v]}));
                    }
                }
            }
        }
        // A missing selector selects nothing, as in Kubernetes.
        let selector = selector_json
            .and_then(|v| LabelSelector::from_label_selector(&v).ok())
            .unwrap_or_else(LabelSelector::nothing);
        Constraint {
            max_skew: i64::from(c.max_skew),
            key: c.topology_key.clone(),
            hard: c.when_unsatisfiable == "DoNotSchedule",
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            matcher: Matcher::Labels(selector),
        }
    }

    fn counts(&self, incoming: &Pod, other: &Pod) -> bool {
        if other.metadata.namespace != incoming.metadata.namespace
            || other.metadata.deletion_timestamp.is_some()
        {
            return false;
        }
        match &self.matcher {
            Matcher::Labels(sel) => sel.matches(&labels_as_json(matching::pod_labels(other))),
            Matcher::Owner(uid) => controller_uid(other) == Some(uid.as_str()),
        }
    }

    /// Whether the node takes part in this constraint's domains for the incoming pod.
    fn includes_node(&self, pod: &Pod, node: &Node) -> bool {
        (!self.honor_affinity || matching::node_matches_pod_affinity(pod, node))
            && (!self.honor_taints
                || matching::untolerated_taint(
                    &matching::effective_taints(node),
                    matching::pod_tolerations(pod),
                )
                .is_none())
    }
}

/// The spread constraints of one pod, evaluated against the cluster.
pub struct Spread<'a> {
    pod: &'a Pod,
    constraints: Vec<Constraint>,
    system_defaulted: bool,
}

impl<'a> Spread<'a> {
    /// The pod's own constraints, or the defaults if it has none.
    pub fn for_pod(pod: &'a Pod) -> Spread<'a> {
        let explicit = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        if !explicit.is_empty() {
            return Spread {
                pod,
                constraints: explicit
                    .iter()
                    .map(|c| Constraint::explicit(pod, c))
                    .collect(),
                system_defaulted: false,
            };
        }
        let constraints = match controller_uid(pod) {
            Some(uid) => [(LABEL_HOSTNAME, 3), (LABEL_ZONE, 5)]
                .into_iter()
                .map(|(key, max_skew)| Constraint {
                    max_skew,
                    key: key.to_string(),
                    hard: false,
                    min_domains: 1,
                    honor_affinity: true,
                    honor_taints: false,
                    matcher: Matcher::Owner(uid.to_string()),
                })
                .collect(),
            // A pod nobody owns has no siblings to spread from.
            None => Vec::new(),
        };
        Spread {
            pod,
            constraints,
            system_defaulted: true,
        }
    }

    fn matching_on(&self, c: &Constraint, pods: &[Pod]) -> i64 {
        let n = pods.iter().filter(|p| c.counts(self.pod, p)).count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The per-node verdict of the `DoNotSchedule` constraints: `None` if the node is fine,
    /// else the reason and whether removing pods could help (it can for skew, not for labels).
    pub fn filter(
        &self,
        nodes: &[(&Node, &[Pod])],
    ) -> impl Fn(&Node) -> Option<(&'static str, bool)> + '_ {
        let hard: Vec<&Constraint> = self.constraints.iter().filter(|c| c.hard).collect();
        let mut domain_counts: Vec<(BTreeMap<String, i64>, i64)> = Vec::new();
        for c in &hard {
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for (node, pods) in nodes {
                if !c.includes_node(self.pod, node) {
                    continue;
                }
                // A node lacking any constraint's key is no domain at all.
                if !hard
                    .iter()
                    .all(|h| matching::topology_value(node, &h.key).is_some())
                {
                    continue;
                }
                let Some(value) = matching::topology_value(node, &c.key) else {
                    continue;
                };
                *counts.entry(value.to_string()).or_insert(0) += self.matching_on(c, pods);
            }
            let global_min = if i64::try_from(counts.len()).unwrap_or(i64::MAX) < c.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
            domain_counts.push((counts, global_min));
        }
        let self_labels = labels_as_json(matching::pod_labels(self.pod));
        move |node: &Node| {
            for (c, (counts, global_min)) in hard.iter().zip(&domain_counts) {
                let Some(value) = matching::topology_value(node, &c.key) else {
                    return Some((REASON_MISSING_LABEL, false));
                };
                let self_match = match &c.matcher {
                    Matcher::Labels(sel) => i64::from(sel.matches(&self_labels)),
                    Matcher::Owner(_) => 1,
                };
                let skew = counts.get(value).copied().unwrap_or(0) + self_match - global_min;
                if skew > c.max_skew {
                    return Some((REASON_SKEW, true));
                }
            }
            None
        }
    }

    /// Normalized scores (0..=100) of the feasible nodes, in their order; `None` when the pod
    /// has no preference to spread.
    pub fn scores(
        &self,
        all: &[(&Node, &[Pod])],
        feasible: &[(&Node, &[Pod])],
    ) -> Option<Vec<i64>> {
        let soft: Vec<&Constraint> = self.constraints.iter().filter(|c| !c.hard).collect();
        if soft.is_empty() {
            return None;
        }
        let require_all = !self.system_defaulted;
        let has_all_keys = |node: &Node| {
            soft.iter()
                .all(|c| matching::topology_value(node, &c.key).is_some())
        };
        let ignored: Vec<bool> = feasible
            .iter()
            .map(|(n, _)| require_all && !has_all_keys(n))
            .collect();
        let considered = ignored.iter().filter(|i| !**i).count();
        // Domains present among the feasible nodes, and how many matching pods each holds.
        let mut pair_counts: BTreeMap<(usize, String), i64> = BTreeMap::new();
        let mut weights = Vec::with_capacity(soft.len());
        for (i, c) in soft.iter().enumerate() {
            let mut values = BTreeSet::new();
            for ((node, _), skip) in feasible.iter().zip(&ignored) {
                if *skip {
                    continue;
                }
                if let Some(v) = matching::topology_value(node, &c.key) {
                    values.insert(v.to_string());
                    if c.key != LABEL_HOSTNAME {
                        pair_counts.insert((i, v.to_string()), 0);
                    }
                }
            }
            let size = if c.key == LABEL_HOSTNAME {
                considered
            } else {
                values.len()
            };
            weights.push((size as f64 + 2.0).ln());
        }
        for (node, pods) in all {
            if require_all && !has_all_keys(node) {
                continue;
            }
            for (i, c) in soft.iter().enumerate() {
                if c.key == LABEL_HOSTNAME || !c.includes_node(self.pod, node) {
                    continue;
                }
                if let Some(v) = matching::topology_value(node, &c.key) {
                    if let Some(slot) = pair_counts.get_mut(&(i, v.to_string())) {
                        *slot += self.matching_on(c, pods);
                    }
                }
            }
        }
        let raw: Vec<Option<i64>> = feasible
            .iter()
            .zip(&ignored)
            .map(|((node, pods), skip)| {
                if *skip {
                    return None;
                }
                let mut score = 0.0;
                for (i, c) in soft.iter().enumerate() {
                    let Some(v) = matching::topology_value(node, &c.key) else {
                        continue;
                    };
                    let count = if c.key == LABEL_HOSTNAME {
                        self.matching_on(c, pods)
                    } else {
                        pair_counts.get(&(i, v.to_string())).copied().unwrap_or(0)
                    };
                    score += count as f64 * weights[i] + (c.max_skew - 1) as f64;
                }
                Some(score.round() as i64)
            })
            .collect();
        let max = raw.iter().flatten().copied().max().unwrap_or(0);
        let min = raw.iter().flatten().copied().min().unwrap_or(0);
        Some(
            raw.into_iter()
                .map(|s| match s {
                    None => 0,
                    Some(_) if max == 0 => crate::planner::MAX_NODE_SCORE,
                    Some(s) => crate::planner::MAX_NODE_SCORE * (max + min - s) / max,
                })
                .collect(),
        )
    }
}
