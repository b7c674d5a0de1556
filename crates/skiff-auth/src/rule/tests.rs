//! Rule matching and coverage, with the cases of Kubernetes' `TestRuleMatches`
//! (`plugin/pkg/auth/authorizer/rbac`), `TestResourceMatches` (`pkg/apis/rbac`) and the
//! policy comparator's tests.

use super::*;
use crate::attributes::ResourceTarget;
use crate::user::UserInfo;

fn resource_request(verb: &str, group: &str, resource: &str, sub: &str) -> Attributes {
    Attributes::resource(
        UserInfo::default(),
        verb,
        ResourceTarget {
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            ..ResourceTarget::default()
        },
    )
}

fn url_request(verb: &str, path: &str) -> Attributes {
    Attributes::non_resource(UserInfo::default(), verb, path)
}

/// Every combination of verb1/verb2, group1/group2, resource1/resource2 against a rule, with
/// the expected answers in that order (verb outermost, then resource, then group).
fn check_tuples(name: &str, rule: &PolicyRule, sub: &str, expected: [bool; 8]) {
    let mut i = 0;
    for verb in ["verb1", "verb2"] {
        for resource in ["resource1", "resource2"] {
            for group in ["group1", "group2"] {
                let request = resource_request(verb, group, resource, sub);
                assert_eq!(
                    rule.allows(&request),
                    expected[i],
                    "{name}: {verb} {group} {resource} {sub}"
                );
                i += 1;
            }
        }
    }
}

#[test]
fn star_verb_exact_match_other() {
    let rule = PolicyRule::resources(&["*"], &["group1"], &["resource1"]);
    check_tuples(
        "star verb",
        &rule,
        "",
        [true, false, false, false, true, false, false, false],
    );
}

#[test]
fn star_group_exact_match_other() {
    let rule = PolicyRule::resources(&["verb1"], &["*"], &["resource1"]);
    check_tuples(
        "star group",
        &rule,
        "",
        [true, true, false, false, false, false, false, false],
    );
}

#[test]
fn star_resource_exact_match_other() {
    let rule = PolicyRule::resources(&["verb1"], &["group1"], &["*"]);
    check_tuples(
        "star resource",
        &rule,
        "",
        [true, false, true, false, false, false, false, false],
    );
}

#[test]
fn tuple_expansion() {
    let rule = PolicyRule::resources(
        &["verb1", "verb2"],
        &["group1", "group2"],
        &["resource1", "resource2"],
    );
    check_tuples("tuple expansion", &rule, "", [true; 8]);
}

#[test]
fn subresource_expansion() {
    let rule = PolicyRule::resources(&["*"], &["*"], &["resource1/subresource1"]);
    for verb in ["verb1", "verb2"] {
        let cases = [
            ("group1", "resource1", "subresource1", true),
            ("group2", "resource1", "subresource2", false),
            ("group1", "resource2", "subresource1", false),
            ("group2", "resource2", "subresource1", false),
            ("group1", "resource1", "", false),
        ];
        for (group, resource, sub, expected) in cases {
            let request = resource_request(verb, group, resource, sub);
            assert_eq!(rule.allows(&request), expected, "{verb} {resource}/{sub}");
        }
    }
}

#[test]
fn star_non_resource_url_matches_every_path_for_its_verbs() {
    let rule = PolicyRule::urls(&["verb1"], &["*"]);
    for path in [
        "/foo",
        "/foo/bar",
        "/foo/baz",
        "/foo/bar/one",
        "/foo/baz/one",
    ] {
        assert!(rule.allows(&url_request("verb1", path)), "{path}");
        assert!(!rule.allows(&url_request("verb2", path)), "{path}");
    }
}

#[test]
fn star_non_resource_subpath_matches_below_the_prefix_only() {
    let rule = PolicyRule::urls(&["verb1"], &["/foo/*"]);
    let cases = [
        ("/foo", false),
        ("/foo/bar", true),
        ("/foo/baz", true),
        ("/foo/bar/one", true),
        ("/foo/baz/one", true),
        ("/notfoo", false),
        ("/notfoo/bar", false),
        ("/notfoo/baz", false),
        ("/notfoo/bar/one", false),
        ("/notfoo/baz/one", false),
    ];
    for (path, expected) in cases {
        assert_eq!(rule.allows(&url_request("verb1", path)), expected, "{path}");
    }
}

#[test]
fn star_verb_exact_non_resource_urls() {
    let rule = PolicyRule::urls(&["*"], &["/foo", "/foo/bar/one"]);
    let cases = [
        ("/foo", true),
        ("/foo/bar", false),
        ("/foo/baz", false),
        ("/foo/bar/one", true),
        ("/foo/baz/one", false),
    ];
    for verb in ["verb1", "verb2"] {
        for (path, expected) in cases {
            assert_eq!(rule.allows(&url_request(verb, path)), expected, "{path}");
        }
    }
}

#[test]
fn a_resource_rule_never_allows_a_path_nor_a_path_rule_a_resource() {
    let resources = PolicyRule::resources(&["*"], &["*"], &["*"]);
    assert!(!resources.allows(&url_request("get", "/healthz")));
    let urls = PolicyRule::urls(&["*"], &["*"]);
    assert!(!urls.allows(&resource_request("get", "", "pods", "")));
}

#[test]
fn resource_matches_cases_from_kubernetes() {
    // (rule resources, requested resource, requested subresource, expected)
    let cases: &[(&[&str], &str, &str, bool)] = &[
        (&["*"], "foo", "", true),
        (&["doesn't match", "*"], "foo", "", true),
        (&["foo/bar"], "foo", "bar", true),
        (&["foo/bar"], "foo", "", false),
        (&["*/scale"], "foo", "scale", true),
        (&["foo/bar", "*/other"], "foo", "other/segment", false),
        (&["*/other/segment"], "foo", "other/segment", true),
        (&[""], "foo", "other/segment", false),
        (&["/"], "foo", "other/segment", false),
        (&["*/"], "foo", "other/segment", false),
        (&["*something/other/segment"], "foo", "other/segment", false),
        (&["something/other/segment"], "foo", "other/segment", false),
    ];
    for (rules, resource, sub, expected) in cases {
        let rule = PolicyRule::resources(&["get"], &[""], rules);
        assert_eq!(
            rule.resource_matches(resource, sub),
            *expected,
            "{rules:?} against {resource}/{sub}"
        );
    }
}

#[test]
fn resource_names_limit_a_rule_to_the_named_objects() {
    let rule = PolicyRule::resources(&["get"], &[""], &["configmaps"]).named(&["app"]);
    let mut request = resource_request("get", "", "configmaps", "");
    assert!(!rule.allows(&request), "no name in the request");
    if let Target::Resource(r) = &mut request.target {
        r.name = "app".into();
    }
    assert!(rule.allows(&request));
    if let Target::Resource(r) = &mut request.target {
        r.name = "other".into();
    }
    assert!(!rule.allows(&request));
}

#[test]
fn rules_read_from_json_keep_every_list() {
    let rule = PolicyRule::from_json(&serde_json::json!({
        "verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"],
    }));
    assert_eq!(
        rule,
        PolicyRule::resources(&["get"], &[""], &["pods"]).named(&["a"])
    );
    assert_eq!(PolicyRule::from_json(&rule.to_json()), rule);
    assert!(rule.to_json().get("nonResourceURLs").is_none());
}

#[test]
fn compact_strings_are_those_of_escalation_errors() {
    let rule = PolicyRule::resources(&["get", "list"], &["apps"], &["deployments"]);
    assert_eq!(
        rule.compact_string(),
        r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}"#
    );
    assert_eq!(
        PolicyRule::urls(&["get"], &["/healthz"]).compact_string(),
        r#"{NonResourceURLs:["/healthz"], Verbs:["get"]}"#
    );
}

/// Name, owner rules, wanted rules, whether covered, and the rules missing.
type CoversCase = (
    &'static str,
    Vec<PolicyRule>,
    Vec<PolicyRule>,
    bool,
    Vec<PolicyRule>,
);

/// Cases of the policy comparator's `TestCoversExactMatch` and its neighbours.
#[test]
fn covers_cases_from_kubernetes() {
    let r = PolicyRule::resources;
    let u = PolicyRule::urls;
    // (owner, servant, covered, missing)
    let cases: Vec<CoversCase> = vec![
        (
            "exact match",
            vec![r(&["get"], &["v1"], &["builds"])],
            vec![r(&["get"], &["v1"], &["builds"])],
            true,
            vec![],
        ),
        (
            "sub-resource match via star",
            vec![r(&["get"], &["v1"], &["*/scale"])],
            vec![r(&["get"], &["v1"], &["deployments/scale"])],
            true,
            vec![],
        ),
        (
            "sub-resource mismatch via star",
            vec![r(&["get"], &["v1"], &["*/scale"])],
            vec![r(&["get"], &["v1"], &["deployments/status"])],
            false,
            vec![r(&["get"], &["v1"], &["deployments/status"])],
        ),
        (
            "sub-resource does not cover its parent",
            vec![r(&["get"], &["v1"], &["*/scale"])],
            vec![r(&["get"], &["v1"], &["deployments"])],
            false,
            vec![r(&["get"], &["v1"], &["deployments"])],
        ),
        (
            "multiple rules cover together",
            vec![
                r(&["get"], &["v1"], &["builds"]),
                r(&["delete"], &["v1"], &["builds"]),
                r(&["update"], &["v1"], &["builds", "pods"]),
            ],
            vec![r(&["get", "delete", "update"], &["v1"], &["builds"])],
            true,
            vec![],
        ),
        (
            "multiple rules leave one verb uncovered",
            vec![
                r(&["get"], &["v1"], &["builds"]),
                r(&["update"], &["v1"], &["builds"]),
            ],
            vec![r(&["get", "delete", "update"], &["v1"], &["builds"])],
            false,
            vec![r(&["delete"], &["v1"], &["builds"])],
        ),
        (
            "star verb and group cover everything named",
            vec![r(&["*"], &["*"], &["*"])],
            vec![r(
                &["get", "delete"],
                &["v1", "apps"],
                &["pods", "pods/exec"],
            )],
            true,
            vec![],
        ),
        (
            "resource names: owner unlimited covers named",
            vec![r(&["get"], &["v1"], &["builds"])],
            vec![r(&["get"], &["v1"], &["builds"]).named(&["foo"])],
            true,
            vec![],
        ),
        (
            "resource names: named owner does not cover unlimited",
            vec![r(&["get"], &["v1"], &["builds"]).named(&["foo"])],
            vec![r(&["get"], &["v1"], &["builds"])],
            false,
            vec![r(&["get"], &["v1"], &["builds"])],
        ),
        (
            "resource names: other name",
            vec![r(&["get"], &["v1"], &["builds"]).named(&["foo", "bar"])],
            vec![r(&["get"], &["v1"], &["builds"]).named(&["foo", "baz"])],
            false,
            vec![r(&["get"], &["v1"], &["builds"]).named(&["baz"])],
        ),
        (
            "non-resource URL exact",
            vec![u(&["get"], &["/api"])],
            vec![u(&["get"], &["/api"])],
            true,
            vec![],
        ),
        (
            "non-resource URL star prefix",
            vec![u(&["get"], &["/api/*"])],
            vec![u(&["get"], &["/api/v1", "/api"])],
            false,
            vec![u(&["get"], &["/api"])],
        ),
        (
            "non-resource URL star",
            vec![u(&["*"], &["*"])],
            vec![u(&["get", "post"], &["/healthz", "/api/v1"])],
            true,
            vec![],
        ),
        (
            "resource rules do not cover URLs",
            vec![r(&["*"], &["*"], &["*"])],
            vec![u(&["get"], &["/healthz"])],
            false,
            vec![u(&["get"], &["/healthz"])],
        ),
    ];
    for (name, owner, servant, covered, missing) in cases {
        assert_eq!(covers(&owner, &servant), (covered, missing), "{name}");
    }
}
