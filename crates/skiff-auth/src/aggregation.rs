//! ClusterRole aggregation, as kube-controller-manager's `clusterrole-aggregation` controller
//! does it: a ClusterRole with an `aggregationRule` holds the rules of every other ClusterRole
//! its selectors match, taken selector by selector, roles by name, each distinct rule once.
//! This is the pure planner; a shell writes what it decides.

use serde_json::Value;
use skiff_api::selector::LabelSelector;

use crate::rule::PolicyRule;

/// The rules one aggregated ClusterRole should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregationUpdate {
    /// The aggregated ClusterRole's name.
    pub name: String,
    /// Its new rules, in the order Kubernetes builds them.
    pub rules: Vec<PolicyRule>,
}

/// What the controller should write, and the roles it could not aggregate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AggregationPlan {
    /// Roles whose rules differ from what their selectors gather, with the rules they need.
    pub updates: Vec<AggregationUpdate>,
    /// One message per aggregated role whose selector does not parse (retried later).
    pub errors: Vec<String>,
}

fn name_of(role: &Value) -> &str {
    role.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The rules `role` gathers from `all` ClusterRoles through its `aggregationRule`; `Ok(None)`
/// when it has none, `Err` when a selector does not parse.
pub fn aggregated_rules(role: &Value, all: &[Value]) -> Result<Option<Vec<PolicyRule>>, String> {
    let Some(rule) = role.get("aggregationRule").filter(|r| !r.is_null()) else {
        return Ok(None);
    };
    let own_name = name_of(role);
    let mut by_name: Vec<&Value> = all.iter().collect();
    by_name.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    let mut rules: Vec<PolicyRule> = Vec::new();
    let selectors = rule
        .get("clusterRoleSelectors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for selector in selectors {
        let selector = LabelSelector::from_label_selector(selector)
            .map_err(|e| format!("clusterrole {own_name:?}: {e}"))?;
        for other in &by_name {
            if name_of(other) == own_name || !selector.matches_object(other) {
                continue;
            }
            for r in PolicyRule::list_from_json(other) {
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        }
    }
    Ok(Some(rules))
}

/// Plans every aggregated ClusterRole in `all` at once.
pub fn plan(all: &[Value]) -> AggregationPlan {
    let mut plan = AggregationPlan::default();
    for role in all {
        match aggregated_rules(role, all) {
            Ok(None) => {}
            Ok(Some(rules)) => {
                if rules != PolicyRule::list_from_json(role) {
                    plan.updates.push(AggregationUpdate {
                        name: name_of(role).to_string(),
                        rules,
                    });
                }
            }
            Err(e) => plan.errors.push(e),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(name: &str, labels: Value, rules: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    fn aggregate(name: &str, selectors: Value, rules: Value) -> Value {
        json!({"metadata": {"name": name}, "rules": rules,
               "aggregationRule": {"clusterRoleSelectors": selectors}})
    }

    fn get(resource: &str) -> Value {
        json!({"verbs": ["get"], "apiGroups": [""], "resources": [resource]})
    }

    /// The cases of Kubernetes' `TestSyncClusterRole`.
    #[test]
    fn aggregated_roles_gather_matching_rules_once_each() {
        let hammer = role("hammer", json!({"foo": "bar"}), json!([get("hammer")]));
        let chisel = role("chisel", json!({"foo": "bar"}), json!([get("chisel")]));
        let sword = role("sword", json!({"foo": "other"}), json!([get("sword")]));

        // No aggregation rule: nothing to do.
        let plain = role("plain", json!({}), json!([get("x")]));
        assert_eq!(plan(&[plain, hammer.clone()]), AggregationPlan::default());

        // One selector: its matches by name, not itself.
        let target = aggregate(
            "target",
            json!([{"matchLabels": {"foo": "bar"}}]),
            json!([]),
        );
        let all = [
            target.clone(),
            hammer.clone(),
            chisel.clone(),
            sword.clone(),
        ];
        assert_eq!(
            plan(&all).updates,
            [AggregationUpdate {
                name: "target".into(),
                rules: vec![
                    PolicyRule::from_json(&get("chisel")),
                    PolicyRule::from_json(&get("hammer")),
                ],
            }]
        );

        // Already up to date: no write.
        let done = aggregate(
            "target",
            json!([{"matchLabels": {"foo": "bar"}}]),
            json!([get("chisel"), get("hammer")]),
        );
        assert!(plan(&[done, hammer.clone(), chisel.clone()])
            .updates
            .is_empty());

        // Two selectors: the first's matches first; a rule twice is kept once; stale rules go.
        let two = aggregate(
            "target",
            json!([{"matchLabels": {"foo": "other"}}, {"matchLabels": {"foo": "bar"}}]),
            json!([get("stale")]),
        );
        let twin = role("twin", json!({"foo": "bar"}), json!([get("sword")]));
        let updates = plan(&[two, hammer, chisel, sword, twin]).updates;
        let names: Vec<String> = updates[0]
            .rules
            .iter()
            .map(|r| r.resources[0].clone())
            .collect();
        assert_eq!(names, ["sword", "chisel", "hammer"]);
    }

    #[test]
    fn an_aggregated_role_never_gathers_its_own_rules() {
        let selfish = json!({"metadata": {"name": "me", "labels": {"a": "b"}},
                             "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]},
                             "rules": [get("mine")]});
        let updates = plan(&[selfish]).updates;
        assert_eq!(
            updates,
            [AggregationUpdate {
                name: "me".into(),
                rules: vec![]
            }]
        );
    }

    #[test]
    fn a_bad_selector_is_reported_and_other_roles_still_planned() {
        let bad = aggregate(
            "bad",
            json!([{"matchExpressions": [{"key": "a", "operator": "Bogus"}]}]),
            json!([]),
        );
        let good = aggregate(
            "good",
            json!([{"matchLabels": {"x": "y"}}]),
            json!([get("old")]),
        );
        let result = plan(&[bad, good]);
        assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
        assert!(result.errors[0].starts_with("clusterrole \"bad\""));
        assert_eq!(result.updates.len(), 1);
        assert_eq!(result.updates[0].name, "good");
    }
}
