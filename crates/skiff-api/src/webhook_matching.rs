//! Which admission webhooks a request concerns, decided as kube-apiserver decides it: a
//! webhook is called when one of its `rules` matches the request's operation, group, version,
//! resource (with subresource) and scope, its `namespaceSelector` matches the labels of the
//! object's namespace, and its `objectSelector` matches the labels of the new or old object.
//! Pure: the caller reads the namespace's labels and passes them in.

use serde_json::{Map, Value};

use crate::selector::LabelSelector;

/// What a webhook is matched against: the request's attributes.
#[derive(Clone, Copy, Debug)]
pub struct RequestAttributes<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    /// The API group (`""` for the core group).
    pub group: &'a str,
    /// The API version requested.
    pub version: &'a str,
    /// The resource's plural name.
    pub resource: &'a str,
    /// The subresource (`""` for the main resource).
    pub subresource: &'a str,
    /// The object's namespace; `""` for cluster-scoped objects. A request on a Namespace
    /// object itself carries the namespace's own name, as upstream's attributes do.
    pub namespace: &'a str,
}

/// Whether a `rules[]` entry of a webhook matches the request.
pub fn rule_matches(rule: &Value, attrs: &RequestAttributes) -> bool {
    let listed = |key: &str, value: &str| {
        rule.get(key)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|v| v == "*" || v == value))
    };
    listed("operations", attrs.operation)
        && listed("apiGroups", attrs.group)
        && listed("apiVersions", attrs.version)
        && resource_listed(rule, attrs)
        && scope_matches(rule, attrs)
}

fn resource_listed(rule: &Value, attrs: &RequestAttributes) -> bool {
    let Some(resources) = rule.get("resources").and_then(Value::as_array) else {
        return false;
    };
    resources.iter().filter_map(Value::as_str).any(|entry| {
        let (resource, subresource) = entry.split_once('/').unwrap_or((entry, ""));
        let resource_ok = resource == "*" || resource == attrs.resource;
        let subresource_ok = subresource == "*" || subresource == attrs.subresource;
        resource_ok && subresource_ok
    })
}

fn scope_matches(rule: &Value, attrs: &RequestAttributes) -> bool {
    let is_namespace_object = attrs.group.is_empty() && attrs.resource == "namespaces";
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Namespaced" => !is_namespace_object && !attrs.namespace.is_empty(),
        "Cluster" => is_namespace_object || attrs.namespace.is_empty(),
        _ => true,
    }
}

/// Whether a selector field of a webhook (absent meaning "everything") matches `labels`. A
/// selector that cannot be parsed matches nothing, which validation prevents in practice.
fn selector_matches(webhook: &Value, key: &str, labels: &Map<String, Value>) -> bool {
    match webhook.get(key).filter(|s| !s.is_null()) {
        None => true,
        Some(selector) => {
            LabelSelector::from_label_selector(selector).is_ok_and(|parsed| parsed.matches(labels))
        }
    }
}

fn labels_of(obj: Option<&Value>) -> Option<&Map<String, Value>> {
    obj.map(|o| {
        o.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY)
    })
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// Whether `webhook` is to be called for the request: a rule matches, then the namespace
/// selector matches `namespace_labels` (cluster-scoped objects other than namespaces skip this
/// test; `None` for them), then the object selector matches the new or the old object.
pub fn webhook_matches(
    webhook: &Value,
    attrs: &RequestAttributes,
    namespace_labels: Option<&Map<String, Value>>,
    object: Option<&Value>,
    old_object: Option<&Value>,
) -> bool {
    let rules = webhook
        .get("rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if !rules.iter().any(|rule| rule_matches(rule, attrs)) {
        return false;
    }
    if let Some(labels) = namespace_labels {
        if !selector_matches(webhook, "namespaceSelector", labels) {
            return false;
        }
    }
    let candidates: Vec<&Map<String, Value>> = [labels_of(object), labels_of(old_object)]
        .into_iter()
        .flatten()
        .collect();
    if candidates.is_empty() {
        return selector_matches(webhook, "objectSelector", &EMPTY);
    }
    candidates
        .iter()
        .any(|labels| selector_matches(webhook, "objectSelector", labels))
}

/// What a webhook's `matchConditions` decide about calling it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionOutcome {
    /// Every condition holds (or there are none): call the webhook.
    Call,
    /// A condition is false, or one failed under `failurePolicy: Ignore`: do not call it.
    Skip,
    /// A condition failed to evaluate under `failurePolicy: Fail`: refuse the request with
    /// these words.
    Fail(String),
}

/// Evaluates a webhook's `matchConditions` over `object`, `oldObject`, `request` (the
/// AdmissionRequest without its objects) and `authorizer`, as upstream's condition matcher: any
/// false condition skips the webhook whatever else failed; otherwise errors follow the failure
/// policy.
pub fn match_conditions(
    webhook: &Value,
    object: Option<&Value>,
    old_object: Option<&Value>,
    request: &Value,
    authorizer: Option<crate::admission_authz::AuthorizerBinding>,
) -> ConditionOutcome {
    let conditions: Vec<String> = webhook
        .get("matchConditions")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|c| {
                    c.get("expression")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    if conditions.is_empty() {
        return ConditionOutcome::Call;
    }
    let activation = crate::admission_cel::Activation {
        values: vec![
            ("object", object.cloned().unwrap_or(Value::Null)),
            ("oldObject", old_object.cloned().unwrap_or(Value::Null)),
            ("request", request.clone()),
        ],
        authorizer,
    };
    let results = crate::admission_cel::evaluate_all(&activation, &[], &conditions);
    let mut errors = Vec::new();
    for (expression, result) in conditions.iter().zip(results) {
        match result {
            Ok(Value::Bool(false)) => return ConditionOutcome::Skip,
            Ok(Value::Bool(true)) => {}
            Ok(other) => errors.push(format!(
                "expression '{expression}' resulted in a non-bool value: {other}"
            )),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        return ConditionOutcome::Call;
    }
    if webhook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
        return ConditionOutcome::Skip;
    }
    ConditionOutcome::Fail(if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    })
}

/// Whether a resource is exempt from webhooks, as upstream exempts the admission
/// configuration kinds so a broken webhook can always be removed.
pub fn is_exempt(group: &str, resource: &str) -> bool {
    group == "admissionregistration.k8s.io"
        && matches!(
            resource,
            "validatingwebhookconfigurations"
                | "mutatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs<'a>(
        operation: &'a str,
        group: &'a str,
        version: &'a str,
        resource: &'a str,
        subresource: &'a str,
        namespace: &'a str,
    ) -> RequestAttributes<'a> {
        RequestAttributes {
            operation,
            group,
            version,
            resource,
            subresource,
            namespace,
        }
    }

    fn rule(operations: &[&str], resources: &[&str], scope: &str) -> Value {
        json!({"operations": operations, "apiGroups": ["*"], "apiVersions": ["*"],
               "resources": resources, "scope": scope})
    }

    /// Shaped after upstream's rule matcher tests (`TestOperation`, `TestGroup`, `TestVersion`,
    /// `TestResource`, `TestScope`): each rule, request and whether they match.
    #[test]
    fn rule_matching_table() {
        let pod = attrs("CREATE", "", "v1", "pods", "", "default");
        let pod_status = attrs("UPDATE", "", "v1", "pods", "status", "default");
        let deployment = attrs("CREATE", "apps", "v1", "deployments", "", "default");
        let node = attrs("CREATE", "", "v1", "nodes", "", "");
        let namespace = attrs("CREATE", "", "v1", "namespaces", "", "team");
        let group_rule = |groups: Value| {
            json!({"operations": ["*"], "apiGroups": groups, "apiVersions": ["*"],
                   "resources": ["*"]})
        };
        let version_rule = |versions: Value| {
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": versions,
                   "resources": ["*"]})
        };
        let cases: Vec<(&str, Value, RequestAttributes, bool)> = vec![
            ("operation wildcard", rule(&["*"], &["*"], "*"), pod, true),
            (
                "operation listed",
                rule(&["CREATE"], &["*"], "*"),
                pod,
                true,
            ),
            (
                "operation not listed",
                rule(&["UPDATE", "DELETE"], &["*"], "*"),
                pod,
                false,
            ),
            ("group wildcard", group_rule(json!(["*"])), deployment, true),
            (
                "group listed",
                group_rule(json!(["apps"])),
                deployment,
                true,
            ),
            ("core group is empty", group_rule(json!([""])), pod, true),
            (
                "group not listed",
                group_rule(json!(["batch"])),
                deployment,
                false,
            ),
            ("version listed", version_rule(json!(["v1"])), pod, true),
            (
                "version not listed",
                version_rule(json!(["v1beta1"])),
                pod,
                false,
            ),
            ("resource listed", rule(&["*"], &["pods"], "*"), pod, true),
            (
                "resource not listed",
                rule(&["*"], &["services"], "*"),
                pod,
                false,
            ),
            (
                "star skips subresources",
                rule(&["*"], &["*"], "*"),
                pod_status,
                false,
            ),
            (
                "plain resource skips subresources",
                rule(&["*"], &["pods"], "*"),
                pod_status,
                false,
            ),
            (
                "resource with subresource",
                rule(&["*"], &["pods/status"], "*"),
                pod_status,
                true,
            ),
            (
                "resource with any subresource",
                rule(&["*"], &["pods/*"], "*"),
                pod_status,
                true,
            ),
            (
                "resource with any subresource matches the main one",
                rule(&["*"], &["pods/*"], "*"),
                pod,
                true,
            ),
            (
                "any resource with the subresource",
                rule(&["*"], &["*/status"], "*"),
                pod_status,
                true,
            ),
            (
                "any resource with the subresource skips the main one",
                rule(&["*"], &["*/status"], "*"),
                pod,
                false,
            ),
            ("everything", rule(&["*"], &["*/*"], "*"), pod_status, true),
            (
                "other subresource",
                rule(&["*"], &["pods/log"], "*"),
                pod_status,
                false,
            ),
            (
                "namespaced scope on a pod",
                rule(&["*"], &["*"], "Namespaced"),
                pod,
                true,
            ),
            (
                "namespaced scope on a node",
                rule(&["*"], &["*"], "Namespaced"),
                node,
                false,
            ),
            (
                "namespaced scope on a namespace",
                rule(&["*"], &["*"], "Namespaced"),
                namespace,
                false,
            ),
            (
                "cluster scope on a node",
                rule(&["*"], &["*"], "Cluster"),
                node,
                true,
            ),
            (
                "cluster scope on a namespace",
                rule(&["*"], &["*"], "Cluster"),
                namespace,
                true,
            ),
            (
                "cluster scope on a pod",
                rule(&["*"], &["*"], "Cluster"),
                pod,
                false,
            ),
            ("any scope", rule(&["*"], &["*"], "*"), node, true),
        ];
        assert_eq!(cases.len(), 27);
        for (name, rule, request, expected) in cases {
            assert_eq!(rule_matches(&rule, &request), expected, "case {name}");
        }
    }

    /// Shaped after upstream's `TestGetNamespaceLabels`/object selector tests: the selectors
    /// and labels and whether the webhook is called.
    #[test]
    fn selector_table() {
        let pod = attrs("CREATE", "", "v1", "pods", "", "default");
        let webhook = |ns: Value, obj: Value| {
            json!({"rules": [rule(&["*"], &["*"], "*")], "namespaceSelector": ns,
                   "objectSelector": obj})
        };
        let labelled = |labels: Value| json!({"metadata": {"labels": labels}});
        let env_prod = json!({"matchLabels": {"env": "prod"}});
        let skip = json!({"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]});
        let prod = json!({"env": "prod"}).as_object().unwrap().clone();
        let dev = json!({"env": "dev"}).as_object().unwrap().clone();
        type Case<'a> = (
            &'a str,
            Value,
            Option<&'a Map<String, Value>>,
            Option<Value>,
            Option<Value>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "empty selectors",
                webhook(json!({}), json!({})),
                Some(&dev),
                Some(labelled(json!({}))),
                None,
                true,
            ),
            (
                "namespace matches",
                webhook(env_prod.clone(), json!({})),
                Some(&prod),
                Some(labelled(json!({}))),
                None,
                true,
            ),
            (
                "namespace does not match",
                webhook(env_prod.clone(), json!({})),
                Some(&dev),
                Some(labelled(json!({}))),
                None,
                false,
            ),
            (
                "cluster-scoped skips the namespace selector",
                webhook(env_prod.clone(), json!({})),
                None,
                Some(labelled(json!({}))),
                None,
                true,
            ),
            (
                "object matches",
                webhook(json!({}), skip.clone()),
                Some(&dev),
                Some(labelled(json!({"a": "b"}))),
                None,
                true,
            ),
            (
                "object excluded",
                webhook(json!({}), skip.clone()),
                Some(&dev),
                Some(labelled(json!({"skip": "yes"}))),
                None,
                false,
            ),
            (
                "old object matches",
                webhook(json!({}), env_prod.clone()),
                Some(&dev),
                Some(labelled(json!({}))),
                Some(labelled(json!({"env": "prod"}))),
                true,
            ),
            (
                "neither object matches",
                webhook(json!({}), env_prod.clone()),
                Some(&dev),
                Some(labelled(json!({}))),
                Some(labelled(json!({}))),
                false,
            ),
        ];
        assert_eq!(cases.len(), 8);
        for (name, webhook, ns, object, old, expected) in cases {
            assert_eq!(
                webhook_matches(&webhook, &pod, ns, object.as_ref(), old.as_ref()),
                expected,
                "case {name}"
            );
        }
    }

    /// Each webhook's conditions and failure policy, and whether it is called.
    #[test]
    fn match_conditions_table() {
        let request = json!({"operation": "CREATE", "userInfo": {"username": "alice"}});
        let object = json!({"metadata": {"name": "web", "labels": {"tier": "web"}}});
        let webhook = |conditions: Value, policy: &str| json!({"matchConditions": conditions, "failurePolicy": policy});
        let failing = "object.metadata.missing.deeper == 1";
        let cases: Vec<(&str, Value, ConditionOutcome)> = vec![
            ("none", webhook(json!([]), "Fail"), ConditionOutcome::Call),
            (
                "true",
                webhook(
                    json!([{"name": "a", "expression": "object.metadata.labels.tier == 'web'"}]),
                    "Fail",
                ),
                ConditionOutcome::Call,
            ),
            (
                "request",
                webhook(
                    json!([{"name": "a", "expression": "request.userInfo.username != 'alice'"}]),
                    "Fail",
                ),
                ConditionOutcome::Skip,
            ),
            (
                "false wins over an error",
                webhook(
                    json!([{"name": "a", "expression": failing}, {"name": "b", "expression": "false"}]),
                    "Fail",
                ),
                ConditionOutcome::Skip,
            ),
            (
                "error under Ignore",
                webhook(json!([{"name": "a", "expression": failing}]), "Ignore"),
                ConditionOutcome::Skip,
            ),
        ];
        assert_eq!(cases.len(), 5);
        for (name, hook, expected) in cases {
            assert_eq!(
                match_conditions(&hook, Some(&object), None, &request, None),
                expected,
                "case {name}"
            );
        }
        let failed = match_conditions(
            &webhook(json!([{"name": "a", "expression": failing}]), "Fail"),
            Some(&object),
            None,
            &request,
            None,
        );
        match failed {
            ConditionOutcome::Fail(message) => assert!(
                message.starts_with(
                    "expression 'object.metadata.missing.deeper == 1' resulted in error: "
                ),
                "{message}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn admission_configuration_kinds_are_exempt() {
        assert!(is_exempt(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations"
        ));
        assert!(!is_exempt("", "pods"));
    }

    /// Allows only `get` on `/healthz`.
    struct HealthzOnly;

    impl crate::admission_authz::PolicyAuthorizer for HealthzOnly {
        fn decide(
            &self,
            _subject: &crate::admission_authz::CheckSubject,
            verb: &str,
            target: &crate::admission_authz::CheckTarget,
        ) -> crate::admission_authz::CheckDecision {
            crate::admission_authz::CheckDecision {
                allowed: verb == "get"
                    && *target == crate::admission_authz::CheckTarget::Path("/healthz".into()),
                ..Default::default()
            }
        }
    }

    /// A condition asking the authorizer skips the webhook when the check is refused.
    #[test]
    fn match_conditions_ask_the_authorizer() {
        use crate::admission_authz::{AuthorizerBinding, ResourceCheck, SharedAuthorizer};
        let binding = AuthorizerBinding {
            authorizer: SharedAuthorizer(std::sync::Arc::new(HealthzOnly)),
            request_resource: ResourceCheck::default(),
        };
        let request = json!({"operation": "CREATE"});
        let hook = |path: &str| {
            json!({"failurePolicy": "Fail", "matchConditions": [{"name": "a",
                "expression": format!("authorizer.path('{path}').check('get').allowed()")}]})
        };
        assert_eq!(
            match_conditions(
                &hook("/healthz"),
                None,
                None,
                &request,
                Some(binding.clone())
            ),
            ConditionOutcome::Call
        );
        assert_eq!(
            match_conditions(&hook("/metrics"), None, None, &request, Some(binding)),
            ConditionOutcome::Skip
        );
    }
}
