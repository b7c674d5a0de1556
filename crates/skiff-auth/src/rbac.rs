//! The RBAC authorizer: which rules a user holds in a namespace (through ClusterRoleBindings and
//! the namespace's RoleBindings), whether one of them allows a request, and the escalation check
//! on role and binding writes. Everything works on an [`RbacSnapshot`] of the four kinds, so a
//! decision is a pure function of the objects and the request.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::attributes::Attributes;
use crate::rule::{covers, PolicyRule};
use crate::user::{is_service_account, UserInfo, SYSTEM_MASTERS};

/// A role a binding grants (`roleRef`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// One subject of a binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The user, group or ServiceAccount name.
    pub name: String,
    /// A ServiceAccount's namespace; empty means the binding's own.
    pub namespace: String,
}

/// A RoleBinding (with its namespace) or ClusterRoleBinding (namespace empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// The binding's name.
    pub name: String,
    /// The binding's namespace; empty for a ClusterRoleBinding.
    pub namespace: String,
    /// The role granted.
    pub role_ref: RoleRef,
    /// Who it is granted to.
    pub subjects: Vec<Subject>,
}

fn text(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl Binding {
    /// Reads a RoleBinding or ClusterRoleBinding object.
    pub fn from_json(obj: &Value) -> Binding {
        let subjects = obj
            .get("subjects")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|s| Subject {
                        kind: text(s, "/kind"),
                        name: text(s, "/name"),
                        namespace: text(s, "/namespace"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Binding {
            name: text(obj, "/metadata/name"),
            namespace: text(obj, "/metadata/namespace"),
            role_ref: RoleRef {
                kind: text(obj, "/roleRef/kind"),
                name: text(obj, "/roleRef/name"),
            },
            subjects,
        }
    }

    /// The index of the first subject naming `user` (`appliesTo`); ServiceAccount subjects
    /// without a namespace mean the binding's namespace.
    fn subject_for(&self, user: &UserInfo) -> Option<usize> {
        self.subjects.iter().position(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.in_group(&s.name),
            "ServiceAccount" => {
                let namespace = if s.namespace.is_empty() {
                    &self.namespace
                } else {
                    &s.namespace
                };
                !namespace.is_empty() && is_service_account(&user.name, namespace, &s.name)
            }
            _ => false,
        })
    }

    /// How the authorizer names the binding in its reason: `ClusterRoleBinding "x" of
    /// ClusterRole "y" to User "jane"`, `RoleBinding "x/ns" of ...`.
    fn describe(&self, subject: &Subject) -> String {
        let subject_text = match subject.kind.as_str() {
            "ServiceAccount" => {
                let namespace = if subject.namespace.is_empty() {
                    &self.namespace
                } else {
                    &subject.namespace
                };
                format!(
                    "ServiceAccount {:?}",
                    format!("{}/{namespace}", subject.name)
                )
            }
            kind => format!("{kind} {:?}", subject.name),
        };
        let (kind, name) = if self.namespace.is_empty() {
            ("ClusterRoleBinding", self.name.clone())
        } else {
            ("RoleBinding", format!("{}/{}", self.name, self.namespace))
        };
        format!(
            "{kind} {name:?} of {} {:?} to {subject_text}",
            self.role_ref.kind, self.role_ref.name
        )
    }
}

/// A rule found for a user: the binding it comes through, the index of the subject naming the
/// user, and the rule.
type BoundRule<'a> = (&'a Binding, usize, &'a PolicyRule);

/// The Roles, ClusterRoles and bindings the authorizer decides from, as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct RbacSnapshot {
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    role_bindings: BTreeMap<String, Vec<Binding>>,
    cluster_role_bindings: Vec<Binding>,
}

/// The authorizer's answer: allowed or not, and why (Kubernetes' reason text, possibly empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The reason: which binding allowed it, or the errors met resolving rules when denied.
    pub reason: String,
}

/// `utilerrors.NewAggregate(...).Error()`: one message alone, several deduplicated in brackets.
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl RbacSnapshot {
    /// An empty snapshot: no rules, so only `system:masters` is allowed anything.
    pub fn new() -> RbacSnapshot {
        RbacSnapshot::default()
    }

    /// Adds a Role object.
    pub fn add_role(&mut self, obj: &Value) {
        let key = (
            text(obj, "/metadata/namespace"),
            text(obj, "/metadata/name"),
        );
        self.roles.insert(key, PolicyRule::list_from_json(obj));
    }

    /// Adds a ClusterRole object.
    pub fn add_cluster_role(&mut self, obj: &Value) {
        self.cluster_roles
            .insert(text(obj, "/metadata/name"), PolicyRule::list_from_json(obj));
    }

    /// Adds a RoleBinding object.
    pub fn add_role_binding(&mut self, obj: &Value) {
        let binding = Binding::from_json(obj);
        self.role_bindings
            .entry(binding.namespace.clone())
            .or_default()
            .push(binding);
    }

    /// Adds a ClusterRoleBinding object.
    pub fn add_cluster_role_binding(&mut self, obj: &Value) {
        let mut binding = Binding::from_json(obj);
        binding.namespace.clear();
        self.cluster_role_bindings.push(binding);
    }

    /// `GetRoleReferenceRules`: the rules of the role a binding in `namespace` names, or the
    /// lister's error when it does not exist.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(&(namespace.to_string(), role_ref.name.clone()))
                .map(Vec::as_slice)
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )
                }),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(Vec::as_slice)
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )
                }),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// `VisitRulesFor`: calls `visit` with every rule bound to `user` in `namespace`
    /// (ClusterRoleBindings first, then the namespace's RoleBindings) with the binding and
    /// subject it comes from, and with every resolution error; stops when `visit` returns false.
    fn visit_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(Result<BoundRule<'_>, String>) -> bool,
    ) {
        let namespaced = if namespace.is_empty() {
            None
        } else {
            self.role_bindings.get(namespace)
        };
        let bindings = self
            .cluster_role_bindings
            .iter()
            .chain(namespaced.into_iter().flatten());
        for binding in bindings {
            let Some(subject) = binding.subject_for(user) else {
                continue;
            };
            match self.role_ref_rules(&binding.role_ref, &binding.namespace) {
                Err(e) => {
                    if !visit(Err(e)) {
                        return;
                    }
                }
                Ok(rules) => {
                    for rule in rules {
                        if !visit(Ok((binding, subject, rule))) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// `RulesFor`: every rule bound to `user` in `namespace`, and the errors met resolving them
    /// (the rules found still count: rules only add).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let (mut rules, mut errors) = (Vec::new(), Vec::new());
        self.visit_rules_for(user, namespace, &mut |found| {
            match found {
                Ok((_, _, rule)) => rules.push(rule.clone()),
                Err(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }

    /// The RBAC authorizer alone: allowed by the first bound rule that matches, with the binding
    /// named in the reason; otherwise not allowed, with the resolution errors as the reason.
    pub fn rbac_authorize(&self, attrs: &Attributes) -> Decision {
        let mut allowed_by = None;
        let mut errors = Vec::new();
        self.visit_rules_for(&attrs.user, attrs.namespace(), &mut |found| match found {
            Ok((binding, subject, rule)) => {
                if rule.allows(attrs) {
                    allowed_by = Some(binding.describe(&binding.subjects[subject]));
                    false
                } else {
                    true
                }
            }
            Err(e) => {
                errors.push(e);
                true
            }
        });
        match allowed_by {
            Some(source) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {source}"),
            },
            None => Decision {
                allowed: false,
                reason: if errors.is_empty() {
                    String::new()
                } else {
                    format!("RBAC: {}", aggregate(&errors))
                },
            },
        }
    }

    /// kube-apiserver's authorizer chain: members of `system:masters` are allowed everything
    /// before any rule is read, then RBAC decides.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.in_group(SYSTEM_MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        self.rbac_authorize(attrs)
    }

    /// `ConfirmNoEscalation`: `Ok` when the rules `user` holds in `namespace` (empty for
    /// cluster-wide) cover `wanted`; otherwise Kubernetes' message listing what is missing.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        wanted: &[PolicyRule],
    ) -> Result<(), String> {
        let (owned, errors) = self.rules_for(user, namespace);
        let (covered, missing) = covers(&owned, wanted);
        if covered {
            return Ok(());
        }
        let descriptions: BTreeSet<String> = compact(missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
        let mut msg = format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            groups.join(" "),
            descriptions.into_iter().collect::<Vec<_>>().join("\n")
        );
        if !errors.is_empty() {
            msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
        }
        Err(msg)
    }
}

/// `CompactRules`: rules naming one group and one resource and nothing else are merged into one
/// rule per group and resource with all their verbs.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: BTreeMap<(String, String), PolicyRule> = BTreeMap::new();
    for rule in rules {
        let is_simple = rule.resource_names.is_empty()
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        let key = (rule.api_groups[0].clone(), rule.resources[0].clone());
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                simple.insert(key, rule);
            }
        }
    }
    out.extend(simple.into_values());
    out
}

#[cfg(test)]
mod tests;
