//! One RBAC `PolicyRule`: whether it allows a request (`RuleAllows`), and whether a set of rules
//! covers another (`Covers`, the check that keeps users from granting what they do not hold).

use serde_json::Value;

use crate::attributes::{Attributes, Target};

/// The wildcard that matches every verb, group, resource or non-resource URL.
pub const ALL: &str = "*";

/// An RBAC policy rule, its lists empty where the object leaves them out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRule {
    /// Verbs allowed, or `*`.
    pub verbs: Vec<String>,
    /// API groups, `""` for the core group, or `*`.
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource`, or `*`.
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty for all.
    pub resource_names: Vec<String>,
    /// Non-resource paths, a trailing `*` matching any suffix.
    pub non_resource_urls: Vec<String>,
}

fn strings(obj: &Value, key: &str) -> Vec<String> {
    obj.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl PolicyRule {
    /// Reads a rule from its JSON form.
    pub fn from_json(obj: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(obj, "verbs"),
            api_groups: strings(obj, "apiGroups"),
            resources: strings(obj, "resources"),
            resource_names: strings(obj, "resourceNames"),
            non_resource_urls: strings(obj, "nonResourceURLs"),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn list_from_json(role: &Value) -> Vec<PolicyRule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rules| rules.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    /// The rule's JSON form, empty lists left out as Kubernetes leaves them out.
    pub fn to_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("verbs".into(), self.verbs.clone().into());
        for (key, items) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !items.is_empty() {
                obj.insert(key.into(), items.clone().into());
            }
        }
        Value::Object(obj)
    }

    /// A resource rule, for building rules in code.
    pub fn resources(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: list(verbs),
            api_groups: list(groups),
            resources: list(resources),
            ..PolicyRule::default()
        }
    }

    /// The same rule limited to the named objects.
    pub fn named(mut self, names: &[&str]) -> PolicyRule {
        self.resource_names = list(names);
        self
    }

    /// A non-resource rule.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: list(verbs),
            non_resource_urls: list(urls),
            ..PolicyRule::default()
        }
    }

    /// `VerbMatches`.
    pub fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    /// `APIGroupMatches`.
    pub fn api_group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    /// `ResourceMatches`: `*`, the exact `resource` or `resource/subresource`, or
    /// `*/subresource` for a request on that subresource.
    pub fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            if r == ALL {
                return true;
            }
            if subresource.is_empty() {
                return r == resource;
            }
            match r.split_once('/') {
                Some((res, sub)) => sub == subresource && (res == resource || res == ALL),
                None => false,
            }
        })
    }

    /// `ResourceNameMatches`: no names means every name.
    pub fn resource_name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    /// `NonResourceURLMatches`: `*`, the exact path, or a prefix ending in `*`.
    pub fn non_resource_url_matches(&self, path: &str) -> bool {
        self.non_resource_urls
            .iter()
            .any(|u| u == ALL || u == path || url_prefix_covers(u, path))
    }

    /// `RuleAllows`: whether this rule alone allows the request.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !self.verb_matches(&attrs.verb) {
            return false;
        }
        match &attrs.target {
            Target::Resource(r) => {
                self.api_group_matches(&r.api_group)
                    && self.resource_matches(&r.resource, &r.subresource)
                    && self.resource_name_matches(&r.name)
            }
            Target::NonResource { path } => self.non_resource_url_matches(path),
        }
    }

    /// `CompactString`: the rule as escalation errors list it,
    /// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (label, items) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !items.is_empty() {
                let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
                parts.push(format!("{label}:[{}]", quoted.join(" ")));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }

    /// `BreakdownRule`: the same permissions as rules of one group, resource, verb and name
    /// each (and one URL and verb for non-resource rules).
    pub fn breakdown(&self) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    let base = PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..PolicyRule::default()
                    };
                    if self.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        for name in &self.resource_names {
                            out.push(PolicyRule {
                                resource_names: vec![name.clone()],
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(PolicyRule::urls(&[verb], &[url]));
            }
        }
        out
    }
}

fn url_prefix_covers(owner: &str, path: &str) -> bool {
    owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*'))
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

/// `ruleCovers`: whether `owner` grants everything the broken-down `sub` grants.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = sub.non_resource_urls.iter().all(|path| {
        owner
            .non_resource_urls
            .iter()
            .any(|o| o == path || url_prefix_covers(o, path))
    });
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

/// `Covers`: whether `owner` rules grant everything `wanted` rules grant, and if not, the
/// broken-down rules they miss.
pub fn covers(owner: &[PolicyRule], wanted: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let missing: Vec<PolicyRule> = wanted
        .iter()
        .flat_map(PolicyRule::breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (missing.is_empty(), missing)
}

#[cfg(test)]
mod tests;
