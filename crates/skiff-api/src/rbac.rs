//! What the four `rbac.authorization.k8s.io/v1` kinds share: the defaults of role references and
//! subjects, and the validation of policy rules, role references and subjects with Kubernetes'
//! messages (`pkg/apis/rbac/validation`), so each kind module states only its own scope rules.

use serde_json::{Map, Value};

use crate::defaults::default_str;
use crate::errors::FieldError;
use crate::validation::{
    array_at, dns1123_subdomain_errors, field, index, join, path_segment_errors, str_at,
    validate_label_selector,
};

/// The API group of the RBAC kinds, which role references and user or group subjects name.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// `SetDefaults_RoleBinding` and `SetDefaults_ClusterRoleBinding`: an empty `roleRef.apiGroup`
/// becomes the RBAC group, and each subject gets its kind's API group.
pub(crate) fn default_binding(root: &mut Map<String, Value>) {
    if let Some(role_ref) = root.get_mut("roleRef").and_then(Value::as_object_mut) {
        default_str(role_ref, "apiGroup", GROUP);
    }
    if let Some(subjects) = root.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
            // `SetDefaults_Subject`: ServiceAccounts live in the core group, users and groups
            // in the RBAC group.
            if matches!(kind, "User" | "Group") {
                default_str(subject, "apiGroup", GROUP);
            }
        }
    }
}

/// The name rule of every RBAC object and role reference: a valid path segment, so names such
/// as `system:node` are allowed.
pub(crate) fn name_errors(name: &str) -> Vec<String> {
    path_segment_errors(name)
}

/// `validatePolicyRule` over every rule of a Role (`namespaced`) or ClusterRole.
pub(crate) fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in array_at(obj, "rules").iter().enumerate() {
        validate_rule(rule, namespaced, &index("rules", i), errs);
    }
}

fn validate_rule(rule: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    let len = |key: &str| array_at(rule, key).len();
    if len("verbs") == 0 {
        errs.push(FieldError::required(
            join(path, "verbs"),
            "verbs must contain at least one value",
        ));
    }
    if len("nonResourceURLs") > 0 {
        let urls = rule.get("nonResourceURLs").unwrap_or(&Value::Null);
        let urls_path = join(path, "nonResourceURLs");
        if namespaced {
            errs.push(FieldError::invalid(
                &urls_path,
                urls,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0 {
            errs.push(FieldError::invalid(
                &urls_path,
                urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if len("apiGroups") == 0 {
        errs.push(FieldError::required(
            join(path, "apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if len("resources") == 0 {
        errs.push(FieldError::required(
            join(path, "resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if len("resourceNames") > 0 && len("resources") > 1 {
        errs.push(FieldError::required(
            join(path, "resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
}

/// A ClusterRole's `aggregationRule`: at least one selector, each a valid label selector.
pub(crate) fn validate_aggregation_rule(obj: &Value, errs: &mut Vec<FieldError>) {
    let rule = field(obj, "aggregationRule");
    if rule.is_null() {
        return;
    }
    let selectors = array_at(rule, "clusterRoleSelectors");
    if selectors.is_empty() {
        errs.push(FieldError::required(
            "aggregationRule.clusterRoleSelectors",
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        ));
    }
    for (i, selector) in selectors.iter().enumerate() {
        validate_label_selector(
            selector,
            &index("aggregationRule.clusterRoleSelectors", i),
            errs,
        );
    }
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` beyond metadata: the role reference
/// (`allowed_kinds` are the kinds it may name) and every subject.
pub(crate) fn validate_binding(
    obj: &Value,
    namespaced: bool,
    allowed_kinds: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let role_ref = field(obj, "roleRef");
    let api_group = str_at(role_ref, "apiGroup");
    if api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &Value::from(api_group),
            &[GROUP],
        ));
    }
    let kind = str_at(role_ref, "kind");
    if !allowed_kinds.contains(&kind) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &Value::from(kind),
            allowed_kinds,
        ));
    }
    let name = str_at(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in name_errors(name) {
            errs.push(FieldError::invalid("roleRef.name", &Value::from(name), msg));
        }
    }
    for (i, subject) in array_at(obj, "subjects").iter().enumerate() {
        validate_subject(subject, namespaced, &index("subjects", i), errs);
    }
}

fn validate_subject(subject: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    let name = str_at(subject, "name");
    let api_group = str_at(subject, "apiGroup");
    let name_path = join(path, "name");
    let group_path = join(path, "apiGroup");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    }
    match str_at(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in dns1123_subdomain_errors(name) {
                    errs.push(FieldError::invalid(&name_path, &Value::from(name), msg));
                }
            }
            if !api_group.is_empty() {
                errs.push(FieldError::not_supported(
                    &group_path,
                    &Value::from(api_group),
                    &[""],
                ));
            }
            if !namespaced && str_at(subject, "namespace").is_empty() {
                errs.push(FieldError::required(join(path, "namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                errs.push(FieldError::invalid(
                    &name_path,
                    &Value::from(name),
                    format!("{what} name cannot be empty"),
                ));
            }
            if api_group != GROUP {
                errs.push(FieldError::not_supported(
                    &group_path,
                    &Value::from(api_group),
                    &[GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            join(path, "kind"),
            &Value::from(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// `ValidateRoleBindingUpdate`: the role reference never changes. Kubernetes shows the internal
/// `rbac.RoleRef` struct in Go syntax.
pub(crate) fn validate_role_ref_unchanged(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let (new_ref, old_ref) = (field(new, "roleRef"), field(old, "roleRef"));
    let parts = |r: &Value| {
        [
            str_at(r, "apiGroup").to_string(),
            str_at(r, "kind").to_string(),
            str_at(r, "name").to_string(),
        ]
    };
    if parts(new_ref) != parts(old_ref) {
        let [api_group, kind, name] = parts(new_ref);
        let rendered =
            format!("rbac.RoleRef{{APIGroup:{api_group:?}, Kind:{kind:?}, Name:{name:?}}}");
        errs.push(crate::validation::invalid_raw(
            "roleRef",
            rendered,
            "cannot change roleRef",
        ));
    }
}

/// The `kind/name` of a binding's role, as the `Role` column shows it.
pub(crate) fn role_cell(obj: &Value) -> Value {
    let role_ref = field(obj, "roleRef");
    format!("{}/{}", str_at(role_ref, "kind"), str_at(role_ref, "name")).into()
}

/// `SubjectsStrings`: a binding's users, groups and service accounts (`namespace/name`), each
/// joined with `, ` as the wide columns show them.
pub(crate) fn subject_cells(obj: &Value) -> [Value; 3] {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in array_at(obj, "subjects") {
        let name = str_at(subject, "name");
        match str_at(subject, "kind") {
            "User" => users.push(name.to_string()),
            "Group" => groups.push(name.to_string()),
            "ServiceAccount" => {
                accounts.push(format!("{}/{name}", str_at(subject, "namespace")));
            }
            _ => {}
        }
    }
    [
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::GROUP;

    use crate::defaults::apply_defaults;
    use crate::kinds::{cluster_role, cluster_role_binding, role, role_binding};
    use crate::printers::{table, IncludeObject};
    use crate::resources::{find, ResourceInfo};
    use crate::validation::{validate_create, validate_update};

    fn messages(resource: &ResourceInfo, obj: serde_json::Value) -> Vec<String> {
        validate_create(resource, &obj)
            .iter()
            .map(|e| e.full())
            .collect()
    }

    fn role_with(namespaced: bool, rules: serde_json::Value) -> serde_json::Value {
        let mut obj = json!({"metadata": {"name": "system:reader"}, "rules": rules});
        if namespaced {
            obj["metadata"]["namespace"] = json!("dev");
        }
        obj
    }

    #[test]
    fn the_four_kinds_are_served_in_the_rbac_group() {
        for (plural, namespaced) in [
            ("roles", true),
            ("rolebindings", true),
            ("clusterroles", false),
            ("clusterrolebindings", false),
        ] {
            let r = find(GROUP, "v1", plural).expect("served");
            assert_eq!(r.namespaced, namespaced, "{plural}");
        }
    }

    #[test]
    fn names_are_path_segments_so_colons_are_allowed() {
        assert!(messages(&cluster_role::V1, role_with(false, json!([]))).is_empty());
        assert_eq!(
            messages(
                &role::V1,
                json!({"metadata": {"name": "a/b", "namespace": "dev"}})
            ),
            vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        assert_eq!(
            messages(&cluster_role::V1, json!({"metadata": {"name": ".."}})),
            vec!["metadata.name: Invalid value: \"..\": may not be '..'"]
        );
    }

    #[test]
    fn rules_are_validated_with_kubernetes_messages() {
        let errs = messages(&role::V1, role_with(true, json!([{"apiGroups": [""]}])));
        assert_eq!(
            errs,
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        let errs = messages(
            &role::V1,
            role_with(
                true,
                json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
            ),
        );
        assert_eq!(
            errs,
            vec![
                "rules[0].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs"
            ]
        );
        let errs = messages(
            &cluster_role::V1,
            role_with(
                false,
                json!([{"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}]),
            ),
        );
        assert_eq!(
            errs,
            vec![
                "rules[0].nonResourceURLs: Invalid value: [\"/x\"]: rules cannot apply to both regular resources and non-resource URLs"
            ]
        );
        let errs = messages(
            &cluster_role::V1,
            role_with(
                false,
                json!([{"verbs": ["get"], "resources": ["pods", "secrets"], "resourceNames": ["a"]}]),
            ),
        );
        assert_eq!(
            errs,
            vec![
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resourceNames: Required value: resource names cannot apply to multiple resources",
            ]
        );
        let ok = role_with(
            false,
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}]),
        );
        assert!(messages(&cluster_role::V1, ok).is_empty());
    }

    #[test]
    fn an_aggregation_rule_needs_valid_selectors() {
        let mut obj = role_with(false, json!([]));
        obj["aggregationRule"] = json!({});
        assert_eq!(
            messages(&cluster_role::V1, obj.clone()),
            vec!["aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"]
        );
        obj["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {"rbac.example.com/aggregate-to-view": "true"}},
            {"matchExpressions": [{"key": "k", "operator": "Bogus"}]},
        ]});
        assert_eq!(
            messages(&cluster_role::V1, obj),
            vec!["aggregationRule.clusterRoleSelectors[1].matchExpressions[0].operator: Invalid value: \"Bogus\": not a valid selector operator"]
        );
    }

    #[test]
    fn bindings_default_the_api_groups_of_the_role_and_of_users_and_groups() {
        let mut obj = json!({
            "metadata": {"name": "jane-edit", "namespace": "dev"},
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"kind": "User", "name": "jane"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "dev"},
            ],
        });
        apply_defaults(&role_binding::V1, &mut obj);
        assert_eq!(obj["roleRef"]["apiGroup"], GROUP);
        assert_eq!(obj["subjects"][0]["apiGroup"], GROUP);
        assert_eq!(obj["subjects"][1]["apiGroup"], GROUP);
        assert!(obj["subjects"][2].get("apiGroup").is_none());
        assert!(messages(&role_binding::V1, obj).is_empty());
    }

    #[test]
    fn binding_role_references_and_subjects_are_validated() {
        let obj = json!({
            "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "example.com", "kind": "Role", "name": ""},
            "subjects": [
                {"kind": "ServiceAccount", "name": "Bad_Name", "apiGroup": "x"},
                {"kind": "User", "name": "", "apiGroup": GROUP},
                {"kind": "Robot", "name": "r2"},
            ],
        });
        assert_eq!(
            messages(&cluster_role_binding::V1, obj),
            vec![
                "roleRef.apiGroup: Unsupported value: \"example.com\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "roleRef.name: Required value",
                "subjects[0].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "subjects[0].apiGroup: Unsupported value: \"x\": supported values: \"\"",
                "subjects[0].namespace: Required value",
                "subjects[1].name: Required value",
                "subjects[1].name: Invalid value: \"\": user name cannot be empty",
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
        let in_namespace = json!({
            "metadata": {"name": "b", "namespace": "dev"},
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "default"}],
        });
        assert!(messages(&role_binding::V1, in_namespace).is_empty());
    }

    #[test]
    fn a_binding_role_reference_cannot_change() {
        let old = json!({
            "metadata": {"name": "b", "namespace": "dev", "resourceVersion": "1"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
        });
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("edit");
        let errs: Vec<String> = validate_update(&role_binding::V1, &new, &old)
            .iter()
            .map(|e| e.full())
            .collect();
        assert_eq!(
            errs,
            vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"]
        );
        assert!(validate_update(&role_binding::V1, &old, &old).is_empty());
    }

    #[test]
    fn bindings_print_role_age_and_wide_subject_columns() {
        let obj = json!({
            "metadata": {"name": "b", "namespace": "dev",
                         "creationTimestamp": "2024-05-01T11:00:00Z"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"kind": "User", "name": "jane", "apiGroup": GROUP},
                {"kind": "User", "name": "joe", "apiGroup": GROUP},
                {"kind": "Group", "name": "devs", "apiGroup": GROUP},
                {"kind": "ServiceAccount", "name": "default", "namespace": "dev"},
            ],
        });
        let now = "2024-05-01T12:00:00Z".parse().expect("time");
        let t = table(&role_binding::V1, &[obj], IncludeObject::None, now);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );
        assert_eq!(t["columnDefinitions"][3]["priority"], 1);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "b",
                "ClusterRole/edit",
                "60m",
                "jane, joe",
                "devs",
                "dev/default"
            ])
        );
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T11:00:00Z"}});
        let t = table(&cluster_role::V1, &[role], IncludeObject::None, now);
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["rows"][0]["cells"], json!(["r", "2024-05-01T11:00:00Z"]));
    }
}
