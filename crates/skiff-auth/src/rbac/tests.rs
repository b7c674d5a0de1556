//! The authorizer over snapshots, with the cases of Kubernetes' `TestAuthorizer`
//! (`plugin/pkg/auth/authorizer/rbac`) and `TestAppliesTo` (`pkg/registry/rbac/validation`).

use serde_json::{json, Value};

use super::*;
use crate::attributes::ResourceTarget;

fn rule(verbs: &str, groups: &str, resources: &str, urls: &str) -> Value {
    let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    json!({"verbs": split(verbs), "apiGroups": split(groups), "resources": split(resources),
           "nonResourceURLs": split(urls)})
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"metadata": {"name": name}, "rules": rules})
}

fn subjects(list: &[&str]) -> Vec<Value> {
    list.iter()
        .map(|s| {
            let (kind, name) = s.split_once(':').expect("Kind:name");
            json!({"kind": kind, "name": name})
        })
        .collect()
}

fn role_binding(ns: &str, kind: &str, role: &str, who: &[&str]) -> Value {
    json!({"metadata": {"name": format!("{role}-binding"), "namespace": ns},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
           "subjects": subjects(who)})
}

fn cluster_role_binding(role: &str, who: &[&str]) -> Value {
    json!({"metadata": {"name": format!("{role}-binding")},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": subjects(who)})
}

fn user(name: &str, groups: &str) -> UserInfo {
    let groups: Vec<&str> = groups.split(',').filter(|g| !g.is_empty()).collect();
    UserInfo::new(name, &groups)
}

fn resource(u: UserInfo, verb: &str, res: &str, sub: &str, ns: &str) -> Attributes {
    Attributes::resource(
        u,
        verb,
        ResourceTarget {
            namespace: ns.into(),
            resource: res.into(),
            subresource: sub.into(),
            ..ResourceTarget::default()
        },
    )
}

fn check(snapshot: &RbacSnapshot, pass: &[Attributes], fail: &[Attributes]) {
    for a in pass {
        assert!(
            snapshot.authorize(a).allowed,
            "incorrectly restricted {a:?}"
        );
    }
    for a in fail {
        assert!(!snapshot.authorize(a).allowed, "incorrectly passed {a:?}");
    }
}

#[test]
fn a_cluster_role_bound_in_one_namespace_allows_only_there() {
    let mut s = RbacSnapshot::new();
    s.add_cluster_role(&cluster_role("admin", vec![rule("*", "*", "*", "*")]));
    s.add_role_binding(&role_binding(
        "ns1",
        "ClusterRole",
        "admin",
        &["User:admin", "Group:admins"],
    ));
    check(
        &s,
        &[
            resource(user("admin", ""), "get", "Pods", "", "ns1"),
            resource(user("admin", ""), "watch", "Pods", "", "ns1"),
            resource(user("admin", "group1"), "watch", "Foobar", "", "ns1"),
            resource(user("joe", "admins"), "watch", "Foobar", "", "ns1"),
            resource(user("joe", "group1,admins"), "watch", "Foobar", "", "ns1"),
        ],
        &[
            resource(user("admin", ""), "GET", "Pods", "", "ns2"),
            resource(user("admin", ""), "GET", "Nodes", "", ""),
            resource(user("admin", "admins"), "GET", "Pods", "", "ns2"),
            resource(user("admin", "admins"), "GET", "Nodes", "", ""),
        ],
    );
}

#[test]
fn non_resource_urls_through_cluster_role_bindings() {
    let mut s = RbacSnapshot::new();
    let url_rule = |verbs: &str, url: &str| json!({"verbs": [verbs], "nonResourceURLs": [url]});
    s.add_cluster_role(&cluster_role(
        "non-resource-url-getter",
        vec![url_rule("get", "/apis")],
    ));
    s.add_cluster_role(&cluster_role(
        "non-resource-url",
        vec![url_rule("*", "/apis")],
    ));
    s.add_cluster_role(&cluster_role(
        "non-resource-url-prefix",
        vec![url_rule("get", "/apis/*")],
    ));
    s.add_cluster_role_binding(&cluster_role_binding(
        "non-resource-url-getter",
        &["User:foo", "Group:bar"],
    ));
    s.add_cluster_role_binding(&cluster_role_binding(
        "non-resource-url",
        &["User:admin", "Group:admin"],
    ));
    s.add_cluster_role_binding(&cluster_role_binding(
        "non-resource-url-prefix",
        &["User:prefixed", "Group:prefixed"],
    ));
    let path = |u: UserInfo, verb: &str, p: &str| Attributes::non_resource(u, verb, p);
    check(
        &s,
        &[
            path(user("foo", ""), "get", "/apis"),
            path(user("", "bar"), "get", "/apis"),
            path(user("admin", ""), "get", "/apis"),
            path(user("", "admin"), "get", "/apis"),
            path(user("admin", ""), "watch", "/apis"),
            path(user("", "admin"), "watch", "/apis"),
            path(user("prefixed", ""), "get", "/apis/v1"),
            path(user("", "prefixed"), "get", "/apis/v1"),
            path(user("prefixed", ""), "get", "/apis/v1/foobar"),
            path(user("", "prefixed"), "get", "/apis/v1/foorbar"),
        ],
        &[
            path(user("foo", ""), "watch", "/apis"),
            path(user("", "bar"), "watch", "/apis"),
            path(user("foo", ""), "get", "/api/v1"),
            path(user("", "bar"), "get", "/api/v1"),
            path(user("admin", ""), "get", "/api/v1"),
            path(user("", "admin"), "get", "/api/v1"),
            path(user("prefixed", ""), "get", "/api/v1"),
            path(user("", "prefixed"), "get", "/api/v1"),
        ],
    );
}

#[test]
fn subresources_need_their_own_rules() {
    let mut pods = RbacSnapshot::new();
    pods.add_cluster_role(&cluster_role("admin", vec![rule("*", "*", "pods", "*")]));
    pods.add_role_binding(&role_binding(
        "ns1",
        "ClusterRole",
        "admin",
        &["User:admin"],
    ));
    check(
        &pods,
        &[resource(user("admin", ""), "get", "pods", "", "ns1")],
        &[resource(user("admin", ""), "get", "pods", "status", "ns1")],
    );
    let mut status = RbacSnapshot::new();
    status.add_cluster_role(&cluster_role(
        "admin",
        vec![rule("*", "*", "pods/status", "*")],
    ));
    status.add_role_binding(&role_binding(
        "ns1",
        "ClusterRole",
        "admin",
        &["User:admin"],
    ));
    check(
        &status,
        &[resource(user("admin", ""), "get", "pods", "status", "ns1")],
        &[resource(user("admin", ""), "get", "pods", "", "ns1")],
    );
}

#[test]
fn system_masters_are_allowed_without_any_rule() {
    let s = RbacSnapshot::new();
    let admin = user("system:admin", "system:masters,system:authenticated");
    let decision = s.authorize(&resource(admin, "delete", "nodes", "", ""));
    assert_eq!(
        decision,
        Decision {
            allowed: true,
            reason: String::new()
        }
    );
    assert!(
        !s.authorize(&resource(
            user("jane", "system:authenticated"),
            "get",
            "pods",
            "",
            "default"
        ))
        .allowed
    );
}

#[test]
fn the_reason_names_the_binding_that_allowed() {
    let mut s = RbacSnapshot::new();
    s.add_cluster_role(&cluster_role("edit", vec![rule("get", "", "pods", "")]));
    s.add_role_binding(&role_binding("dev", "ClusterRole", "edit", &["User:jane"]));
    s.add_cluster_role_binding(&cluster_role_binding("edit", &["Group:devs"]));
    let jane = resource(user("jane", ""), "get", "pods", "", "dev");
    assert_eq!(
        s.authorize(&jane).reason,
        r#"RBAC: allowed by RoleBinding "edit-binding/dev" of ClusterRole "edit" to User "jane""#
    );
    let dev = resource(user("joe", "devs"), "get", "pods", "", "other");
    assert_eq!(
        s.authorize(&dev).reason,
        r#"RBAC: allowed by ClusterRoleBinding "edit-binding" of ClusterRole "edit" to Group "devs""#
    );
}

#[test]
fn missing_roles_are_reasons_and_do_not_hide_other_rules() {
    let mut s = RbacSnapshot::new();
    s.add_role_binding(&role_binding("dev", "Role", "gone", &["User:jane"]));
    s.add_role_binding(&role_binding(
        "dev",
        "ClusterRole",
        "gone-too",
        &["User:jane"],
    ));
    let denied = s.authorize(&resource(user("jane", ""), "get", "pods", "", "dev"));
    assert!(!denied.allowed);
    assert_eq!(
        denied.reason,
        r#"RBAC: [role.rbac.authorization.k8s.io "gone" not found, clusterrole.rbac.authorization.k8s.io "gone-too" not found]"#
    );
    s.add_cluster_role(&cluster_role("gone-too", vec![rule("get", "", "pods", "")]));
    assert!(
        s.authorize(&resource(user("jane", ""), "get", "pods", "", "dev"))
            .allowed
    );
    let (rules, errors) = s.rules_for(&user("jane", ""), "dev");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        errors,
        [r#"role.rbac.authorization.k8s.io "gone" not found"#]
    );
}

#[test]
fn role_bindings_resolve_roles_in_their_own_namespace() {
    let mut s = RbacSnapshot::new();
    s.add_role(&json!({"metadata": {"name": "reader", "namespace": "dev"},
                       "rules": [rule("get", "", "pods", "")]}));
    s.add_role_binding(&role_binding("prod", "Role", "reader", &["User:jane"]));
    let (_, errors) = s.rules_for(&user("jane", ""), "prod");
    assert_eq!(
        errors,
        [r#"role.rbac.authorization.k8s.io "reader" not found"#]
    );
    s.add_role_binding(&role_binding("dev", "Role", "reader", &["User:jane"]));
    assert!(
        s.authorize(&resource(user("jane", ""), "get", "pods", "", "dev"))
            .allowed
    );
    assert!(
        !s.authorize(&resource(user("jane", ""), "get", "pods", "", "prod"))
            .allowed
    );
}

/// Subjects, binding namespace, user, groups, and the index of the subject that applies.
type AppliesCase = (
    Vec<Value>,
    &'static str,
    &'static str,
    &'static str,
    Option<usize>,
);

/// `TestAppliesTo`: which subjects name which users.
#[test]
fn subjects_apply_to_users_groups_and_service_accounts() {
    let sa =
        |name: &str, ns: &str| json!({"kind": "ServiceAccount", "name": name, "namespace": ns});
    // (subjects, binding namespace, user, groups, applies, subject index)
    let cases: Vec<AppliesCase> = vec![
        (subjects(&["User:foobar"]), "", "foobar", "", Some(0)),
        (
            subjects(&["User:barfoo", "User:foobar"]),
            "",
            "foobar",
            "",
            Some(1),
        ),
        (
            subjects(&["User:barfoo", "User:foobar"]),
            "",
            "foo",
            "",
            None,
        ),
        (
            subjects(&["User:foobar", "Group:foo"]),
            "",
            "zimzam",
            "foo,bar",
            Some(1),
        ),
        (
            vec![sa("default", "kube-system")],
            "",
            "system:serviceaccount:kube-system:default",
            "",
            Some(0),
        ),
        (
            vec![sa("default", "")],
            "default",
            "system:serviceaccount:default:default",
            "",
            Some(0),
        ),
        (
            vec![sa("default", "")],
            "",
            "system:serviceaccount:default:default",
            "",
            None,
        ),
        (
            vec![sa("default", "kube-system")],
            "",
            "system:serviceaccount:default:default",
            "",
            None,
        ),
        (
            vec![sa("vanilla", "kube-system")],
            "",
            "system:serviceaccount:kube-system:default",
            "",
            None,
        ),
        (
            subjects(&["Group:system:serviceaccounts"]),
            "",
            "system:serviceaccount:kube-system:default",
            "system:serviceaccounts",
            Some(0),
        ),
        (subjects(&["Robot:foobar"]), "", "foobar", "", None),
    ];
    for (i, (subjects, ns, name, groups, expected)) in cases.into_iter().enumerate() {
        let binding = Binding::from_json(&json!({
            "metadata": {"name": "b", "namespace": ns},
            "roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": subjects,
        }));
        assert_eq!(
            binding.subject_for(&user(name, groups)),
            expected,
            "case {i}"
        );
    }
}

#[test]
fn escalation_is_refused_with_the_missing_rules_listed() {
    let mut s = RbacSnapshot::new();
    s.add_cluster_role(&cluster_role(
        "edit",
        vec![
            json!({"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}),
        ],
    ));
    s.add_role_binding(&role_binding("dev", "ClusterRole", "edit", &["User:jane"]));
    let jane = user("jane", "system:authenticated");
    let held = [PolicyRule::resources(&["get"], &["apps"], &["deployments"])];
    assert_eq!(s.confirm_no_escalation(&jane, "dev", &held), Ok(()));
    let too_much = [
        PolicyRule::resources(&["get", "create", "delete"], &["apps"], &["deployments"]),
        PolicyRule::resources(&["*"], &["*"], &["*"]),
        PolicyRule::urls(&["*"], &["*"]),
    ];
    assert_eq!(
        s.confirm_no_escalation(&jane, "dev", &too_much[..1]),
        Err("user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"create\" \"delete\"]}".to_string())
    );
    let err = s
        .confirm_no_escalation(&jane, "default", &too_much)
        .expect_err("nothing is held in default");
    // Sorted as Kubernetes sorts the descriptions.
    assert!(
        err.ends_with(concat!(
            "not currently held:\n",
            "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n",
            "{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"get\" \"create\" \"delete\"]}\n",
            "{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
        )),
        "{err}"
    );
}
