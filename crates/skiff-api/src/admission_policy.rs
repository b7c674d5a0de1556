//! ValidatingAdmissionPolicy decisions, pure: which policies and bindings a request concerns
//! (`matchConstraints`, a binding's `matchResources`, resource names, exclusions, selectors),
//! which parameter objects a binding selects, and what each binding decides once its policy's
//! `matchConditions`, `variables`, `validations` and `auditAnnotations` are evaluated, as
//! kube-apiserver's validating policy dispatcher decides them. The caller reads the policies,
//! bindings, namespace and parameter objects and passes them in.
//!
//! `authorizer` answers through the [`SharedAuthorizer`] the caller passes with the request.
//! Not used: type information from the matched kind's schema when compiling.

use serde_json::{json, Map, Value};

use crate::admission_authz::{AuthorizerBinding, ResourceCheck, SharedAuthorizer};
use crate::admission_cel::{self, Activation};
use crate::selector::LabelSelector;
use crate::webhook_matching::{self, RequestAttributes};

/// One admission request as policies see it.
#[derive(Clone, Debug)]
pub struct PolicyRequest<'a> {
    /// The operation, group, version, resource, subresource and namespace.
    pub attrs: RequestAttributes<'a>,
    /// The kind of the object in the request's version.
    pub kind: &'a str,
    /// The object's name (empty when the server generates it).
    pub name: &'a str,
    /// The labels of the object's namespace; `None` for cluster-scoped objects.
    pub namespace_labels: Option<&'a Map<String, Value>>,
    /// The namespace object, for `namespaceObject`; `None` for cluster-scoped objects.
    pub namespace_object: Option<&'a Value>,
    /// The new object (none on delete).
    pub object: Option<&'a Value>,
    /// The stored object (none on create).
    pub old_object: Option<&'a Value>,
    /// The requester, as `request.userInfo` shows it.
    pub user_info: Value,
    /// Whether the write is a dry run.
    pub dry_run: bool,
    /// Who answers the `authorizer` checks for the requesting user; `None` binds `authorizer`
    /// to `null`.
    pub authorizer: Option<SharedAuthorizer>,
}

impl PolicyRequest<'_> {
    /// The `request` variable: the AdmissionRequest fields upstream exposes to CEL.
    pub fn request_value(&self) -> Value {
        let a = &self.attrs;
        let gvk = json!({"group": a.group, "version": a.version, "kind": self.kind});
        let gvr = json!({"group": a.group, "version": a.version, "resource": a.resource});
        let mut request = json!({
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": self.name, "operation": a.operation, "userInfo": self.user_info,
            "dryRun": self.dry_run,
        });
        if !a.subresource.is_empty() {
            request["subResource"] = json!(a.subresource);
            request["requestSubResource"] = json!(a.subresource);
        }
        if !a.namespace.is_empty() && !is_namespace_object(a) {
            request["namespace"] = json!(a.namespace);
        }
        request
    }

    /// What `authorizer` is bound to: the caller's authorizer and, for
    /// `authorizer.requestResource`, the request's group, resource, subresource, namespace and
    /// name (any version, as upstream checks it).
    pub fn authorizer_binding(&self) -> Option<AuthorizerBinding> {
        let a = &self.attrs;
        self.authorizer.clone().map(|authorizer| AuthorizerBinding {
            authorizer,
            request_resource: ResourceCheck {
                group: a.group.to_string(),
                version: "*".to_string(),
                resource: a.resource.to_string(),
                subresource: a.subresource.to_string(),
                namespace: a.namespace.to_string(),
                name: self.name.to_string(),
                ..ResourceCheck::default()
            },
        })
    }
}

fn is_namespace_object(a: &RequestAttributes) -> bool {
    a.group.is_empty() && a.resource == "namespaces"
}

fn selector_matches(selector: Option<&Value>, labels: &Map<String, Value>) -> bool {
    match selector.filter(|s| !s.is_null()) {
        None => true,
        Some(s) => LabelSelector::from_label_selector(s).is_ok_and(|p| p.matches(labels)),
    }
}

fn labels_of(obj: Option<&Value>) -> Option<Map<String, Value>> {
    obj.map(|o| {
        o.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    })
}

/// Whether a `NamedRuleWithOperations` matches: the rule, then its `resourceNames` when any.
/// Under `matchPolicy: Equivalent` a rule naming another version of the resource matches too.
fn named_rule_matches(rule: &Value, req: &PolicyRequest, equivalent: bool) -> bool {
    let mut attrs = req.attrs;
    let any_version;
    if equivalent {
        any_version = rule
            .get("apiVersions")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(Value::as_str)
            .unwrap_or(attrs.version)
            .to_string();
        let listed = rule
            .get("apiVersions")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|x| x == "*" || x == attrs.version));
        if !listed {
            attrs.version = &any_version;
        }
    }
    if !webhook_matching::rule_matches(rule, &attrs) {
        return false;
    }
    match rule.get("resourceNames").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => names.iter().any(|n| n == req.name),
        _ => true,
    }
}

/// Whether `MatchResources` (a policy's `matchConstraints` or a binding's `matchResources`)
/// selects the request. `rules_required` is false for bindings, whose empty `resourceRules`
/// select every resource their policy does.
pub fn match_resources(criteria: &Value, req: &PolicyRequest, rules_required: bool) -> bool {
    if let Some(labels) = req.namespace_labels {
        if !selector_matches(criteria.get("namespaceSelector"), labels) {
            return false;
        }
    } else if is_namespace_object(&req.attrs) {
        let labels = labels_of(req.object.or(req.old_object)).unwrap_or_default();
        if !selector_matches(criteria.get("namespaceSelector"), &labels) {
            return false;
        }
    }
    let candidates: Vec<Map<String, Value>> = [labels_of(req.object), labels_of(req.old_object)]
        .into_iter()
        .flatten()
        .collect();
    let object_selector = criteria.get("objectSelector");
    let object_ok = if candidates.is_empty() {
        selector_matches(object_selector, &Map::new())
    } else {
        candidates
            .iter()
            .any(|labels| selector_matches(object_selector, labels))
    };
    if !object_ok {
        return false;
    }
    let equivalent = criteria.get("matchPolicy").and_then(Value::as_str) != Some("Exact");
    let rules = |key: &str| -> Vec<Value> {
        criteria
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if rules("excludeResourceRules")
        .iter()
        .any(|rule| named_rule_matches(rule, req, equivalent))
    {
        return false;
    }
    let included = rules("resourceRules");
    if included.is_empty() {
        return !rules_required;
    }
    included
        .iter()
        .any(|rule| named_rule_matches(rule, req, equivalent))
}

/// Whether `policy` applies to the request: its `matchConstraints` select it (the admission
/// configuration kinds are never subject to policies, as upstream exempts them).
pub fn policy_matches(policy: &Value, req: &PolicyRequest) -> bool {
    if webhook_matching::is_exempt(req.attrs.group, req.attrs.resource) {
        return false;
    }
    match policy.pointer("/spec/matchConstraints") {
        Some(constraints) => match_resources(constraints, req, true),
        None => false,
    }
}

/// Whether `binding` applies to the request (its policy already matched).
pub fn binding_matches(binding: &Value, req: &PolicyRequest) -> bool {
    match binding
        .pointer("/spec/matchResources")
        .filter(|m| !m.is_null())
    {
        Some(criteria) => match_resources(criteria, req, false),
        None => true,
    }
}

/// Where a binding's parameters are looked up: by name, or by label selector, in a namespace
/// (`None` for cluster-scoped parameter kinds or all namespaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLookup {
    /// `paramKind.apiVersion`.
    pub api_version: String,
    /// `paramKind.kind`.
    pub kind: String,
    /// `paramRef.name`, when set.
    pub name: Option<String>,
    /// The namespace to look in: `paramRef.namespace`, else the request's namespace.
    pub namespace: Option<String>,
    /// `paramRef.selector`, when set instead of a name.
    pub selector: Option<Value>,
}

/// What the caller must fetch for a binding: nothing (`Ok(None)`, no `paramKind`), a lookup, or
/// a configuration error.
pub fn param_lookup(
    policy: &Value,
    binding: &Value,
    request_namespace: &str,
) -> Result<Option<ParamLookup>, String> {
    let Some(kind) = policy.pointer("/spec/paramKind").filter(|k| k.is_object()) else {
        return Ok(None);
    };
    let api_version = kind.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind_name = kind.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(reference) = binding.pointer("/spec/paramRef").filter(|r| r.is_object()) else {
        return Err(format!(
            "paramKind kind `{kind_name}` is defined but paramRef is not set"
        ));
    };
    let text = |key: &str| {
        reference
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let namespace = text("namespace")
        .or_else(|| (!request_namespace.is_empty()).then(|| request_namespace.to_string()));
    Ok(Some(ParamLookup {
        api_version: api_version.to_string(),
        kind: kind_name.to_string(),
        name: text("name"),
        namespace,
        selector: reference.get("selector").filter(|s| s.is_object()).cloned(),
    }))
}

/// Filters fetched parameter objects as a binding's `paramRef` says and applies its
/// `parameterNotFoundAction`: `Ok(params)` to evaluate once per parameter (a single `None` when
/// the binding allows a missing parameter), or the configuration error upstream reports.
pub fn select_params(
    binding: &Value,
    lookup: &ParamLookup,
    found: Vec<Value>,
) -> Result<Vec<Option<Value>>, String> {
    let selected: Vec<Value> = match (&lookup.name, &lookup.selector) {
        (Some(name), _) => found
            .into_iter()
            .filter(|p| p.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .collect(),
        (None, Some(selector)) => found
            .into_iter()
            .filter(|p| {
                let labels = labels_of(Some(p)).unwrap_or_default();
                selector_matches(Some(selector), &labels)
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    if !selected.is_empty() {
        return Ok(selected.into_iter().map(Some).collect());
    }
    let action = binding
        .pointer("/spec/paramRef/parameterNotFoundAction")
        .and_then(Value::as_str)
        .unwrap_or("Deny");
    if action == "Allow" {
        return Ok(vec![None]);
    }
    Err(format!(
        "no params found for policy binding with `{action}` parameterNotFoundAction"
    ))
}

/// What one validation (or an error on the way) decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The message: the validation's, its `messageExpression`'s, `failed expression: ...`, or
    /// the evaluator's error.
    pub message: String,
    /// The `reason` the refusal carries (`Invalid` unless the validation names another).
    pub reason: String,
    /// Whether the decision comes from an error rather than a false validation; errors under
    /// `failurePolicy: Ignore` are dropped before they get here.
    pub error: bool,
}

/// Everything one binding decided on one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingOutcome {
    /// The failed validations and errors, to enforce as the binding's `validationActions`
    /// say.
    pub failures: Vec<Decision>,
    /// The audit annotations produced (`key`, value), which Skiff logs.
    pub audit_annotations: Vec<(String, String)>,
}

fn texts<'a>(items: Option<&'a Value>, keys: &[&str]) -> Vec<Vec<&'a str>> {
    items
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|item| {
                    keys.iter()
                        .map(|k| item.get(*k).and_then(Value::as_str).unwrap_or(""))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Evaluates a policy for one binding and one parameter (`None` without one), as upstream's
/// validator does: match conditions first (any false skips the policy; an error is a
/// failure), then the validations with their messages, then the audit annotations. Errors
/// count only under `failurePolicy: Fail`.
pub fn evaluate(policy: &Value, params: Option<&Value>, req: &PolicyRequest) -> BindingOutcome {
    let spec = policy.get("spec").cloned().unwrap_or_default();
    let fail_on_error = spec.get("failurePolicy").and_then(Value::as_str) != Some("Ignore");
    let mut activation = Activation::default();
    activation
        .values
        .push(("object", req.object.cloned().unwrap_or(Value::Null)));
    activation
        .values
        .push(("oldObject", req.old_object.cloned().unwrap_or(Value::Null)));
    activation.values.push(("request", req.request_value()));
    activation.values.push((
        "namespaceObject",
        req.namespace_object.cloned().unwrap_or(Value::Null),
    ));
    activation
        .values
        .push(("params", params.cloned().unwrap_or(Value::Null)));
    activation.authorizer = req.authorizer_binding();
    let variables: Vec<(String, String)> = texts(spec.get("variables"), &["name", "expression"])
        .into_iter()
        .map(|v| (v[0].to_string(), v[1].to_string()))
        .collect();
    let conditions = texts(spec.get("matchConditions"), &["name", "expression"]);
    let validations = texts(
        spec.get("validations"),
        &["expression", "message", "messageExpression", "reason"],
    );
    let annotations = texts(spec.get("auditAnnotations"), &["key", "valueExpression"]);
    let mut expressions: Vec<String> = Vec::new();
    expressions.extend(conditions.iter().map(|c| c[1].to_string()));
    expressions.extend(validations.iter().map(|v| v[0].to_string()));
    expressions.extend(validations.iter().map(|v| v[2].to_string()));
    expressions.extend(annotations.iter().map(|a| a[1].to_string()));
    let results = admission_cel::evaluate_all(&activation, &variables, &expressions);
    let mut outcome = BindingOutcome::default();
    let error_decision = |message: String| Decision {
        message,
        reason: String::new(),
        error: true,
    };
    let (condition_results, rest) = results.split_at(conditions.len());
    let mut condition_error = None;
    for (condition, result) in conditions.iter().zip(condition_results) {
        match result {
            Ok(Value::Bool(false)) => return outcome,
            Ok(Value::Bool(true)) => {}
            Ok(_) => {
                condition_error.get_or_insert_with(|| {
                    format!("matchCondition '{}': must evaluate to bool", condition[0])
                });
            }
            Err(e) => {
                condition_error.get_or_insert_with(|| e.clone());
            }
        }
    }
    if let Some(error) = condition_error {
        if fail_on_error {
            outcome.failures.push(error_decision(error));
        }
        return outcome;
    }
    let (validation_results, rest) = rest.split_at(validations.len());
    let (message_results, annotation_results) = rest.split_at(validations.len());
    for ((validation, result), message_result) in validations
        .iter()
        .zip(validation_results)
        .zip(message_results)
    {
        let expression = validation[0];
        match result {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => {
                let expressed = match (validation[2].trim().is_empty(), message_result) {
                    (false, Ok(Value::String(text))) => {
                        let text = text.trim();
                        (!text.contains('\n') && text.len() <= MAX_MESSAGE_BYTES)
                            .then(|| text.to_string())
                            .filter(|t| !t.is_empty())
                    }
                    _ => None,
                };
                let message = expressed
                    .or_else(|| {
                        let m = validation[1].trim();
                        (!m.is_empty()).then(|| m.to_string())
                    })
                    .unwrap_or_else(|| format!("failed expression: {}", expression.trim()));
                let reason = if validation[3].is_empty() {
                    "Invalid"
                } else {
                    validation[3]
                };
                outcome.failures.push(Decision {
                    message,
                    reason: reason.to_string(),
                    error: false,
                });
            }
            Ok(other) => {
                if fail_on_error {
                    outcome.failures.push(error_decision(format!(
                        "expression '{expression}' resulted in a non-bool value: {other}"
                    )));
                }
            }
            Err(e) => {
                if fail_on_error {
                    outcome.failures.push(error_decision(e.clone()));
                }
            }
        }
    }
    for (annotation, result) in annotations.iter().zip(annotation_results) {
        match result {
            Ok(Value::String(text)) if !text.trim().is_empty() => outcome
                .audit_annotations
                .push((annotation[0].to_string(), text.trim().to_string())),
            Ok(Value::String(_)) | Ok(Value::Null) => {}
            Ok(other) => {
                if fail_on_error {
                    outcome.failures.push(error_decision(format!(
                        "valueExpression '{}' resulted in unsupported return type: {}. Return type must be either string or null.",
                        annotation[1],
                        json_type(other)
                    )));
                }
            }
            Err(e) => {
                if fail_on_error {
                    outcome.failures.push(error_decision(e.clone()));
                }
            }
        }
    }
    outcome
}

/// The longest message a `messageExpression` may produce before upstream ignores it.
pub const MAX_MESSAGE_BYTES: usize = 5 * 1024;

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
        Value::Null => "null_type",
    }
}

/// The HTTP code of a refusal's reason, as upstream's `reasonToCode`.
pub fn reason_code(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        "Invalid" => 422,
        _ => 400,
    }
}

/// How a binding's failures are enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// The first refusal: its full message and reason.
    pub denial: Option<(String, String)>,
    /// `Warning:` headers to send.
    pub warnings: Vec<String>,
    /// Audit annotations and `Audit` failures, to log.
    pub audit: Vec<String>,
}

impl Enforcement {
    /// Records what `binding` of `policy_name` decided, by its `validationActions`.
    pub fn record(&mut self, policy_name: &str, binding: &Value, outcome: &BindingOutcome) {
        let binding_name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let actions: Vec<&str> = binding
            .pointer("/spec/validationActions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for failure in &outcome.failures {
            for action in &actions {
                match *action {
                    "Deny" if self.denial.is_none() => {
                        let reason = if failure.reason.is_empty() {
                            "Invalid"
                        } else {
                            &failure.reason
                        };
                        self.denial = Some((
                            format!(
                                "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {}",
                                failure.message
                            ),
                            reason.to_string(),
                        ));
                    }
                    "Warn" => self.warnings.push(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {}",
                        failure.message
                    )),
                    "Audit" => self.audit.push(format!(
                        "validation.policy.admission.k8s.io/validation_failure: policy {policy_name}, binding {binding_name}: {}",
                        failure.message
                    )),
                    _ => {}
                }
            }
        }
        for (key, value) in &outcome.audit_annotations {
            self.audit.push(format!("{policy_name}/{key}: {value}"));
        }
    }

    /// Records a configuration error (a missing parameter, a binding that cannot be read):
    /// under `failurePolicy: Fail` it refuses the request whatever the binding's actions.
    pub fn record_configuration_error(
        &mut self,
        policy: &Value,
        binding_name: Option<&str>,
        error: &str,
    ) {
        let policy_name = policy
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if policy
            .pointer("/spec/failurePolicy")
            .and_then(Value::as_str)
            == Some("Ignore")
        {
            return;
        }
        if self.denial.is_some() {
            return;
        }
        let message = match binding_name {
            Some(binding) => format!(
                "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding}' denied request: failed to configure binding: {error}"
            ),
            None => format!(
                "ValidatingAdmissionPolicy '{policy_name}' denied request: failed to configure policy: {error}"
            ),
        };
        self.denial = Some((message, "Invalid".to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        attrs: RequestAttributes<'a>,
        ns_labels: Option<&'a Map<String, Value>>,
        object: Option<&'a Value>,
    ) -> PolicyRequest<'a> {
        PolicyRequest {
            attrs,
            kind: "Deployment",
            name: "web",
            namespace_labels: ns_labels,
            namespace_object: None,
            object,
            old_object: None,
            user_info: json!({"username": "alice", "groups": ["dev"]}),
            dry_run: false,
            authorizer: None,
        }
    }

    fn deployments(operation: &'static str) -> RequestAttributes<'static> {
        RequestAttributes {
            operation,
            group: "apps",
            version: "v1",
            resource: "deployments",
            subresource: "",
            namespace: "team",
        }
    }

    fn policy(constraints: Value, validations: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"failurePolicy": "Fail",
            "matchConstraints": constraints, "validations": validations}})
    }

    fn rule(groups: &[&str], versions: &[&str], resources: &[&str]) -> Value {
        json!({"apiGroups": groups, "apiVersions": versions, "resources": resources,
               "operations": ["CREATE", "UPDATE"], "scope": "*"})
    }

    /// Shaped after upstream's matcher tests: constraints, request and whether it matches.
    #[test]
    fn matching_table() {
        let test_labels = json!({"environment": "test"}).as_object().unwrap().clone();
        let other_labels = Map::new();
        let labelled = json!({"metadata": {"labels": {"tier": "web"}}});
        let unlabelled = json!({"metadata": {}});
        let deploy_rule = rule(&["apps"], &["v1"], &["deployments"]);
        type Case<'a> = (
            &'a str,
            Value,
            RequestAttributes<'a>,
            Option<&'a Map<String, Value>>,
            &'a Value,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "rule matches",
                json!({"resourceRules": [deploy_rule]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                true,
            ),
            (
                "operation not listed",
                json!({"resourceRules": [deploy_rule]}),
                deployments("DELETE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "other resource",
                json!({"resourceRules": [rule(&["apps"], &["v1"], &["statefulsets"])]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "no rules select nothing",
                json!({"resourceRules": []}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "excluded",
                json!({"resourceRules": [rule(&["*"], &["*"], &["*"])],
                "excludeResourceRules": [deploy_rule]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "excluded by another name",
                json!({"resourceRules": [rule(&["*"], &["*"], &["*"])],
                "excludeResourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "resources": ["deployments"], "operations": ["*"], "resourceNames": ["db"]}]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                true,
            ),
            (
                "resource name listed",
                json!({"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "resources": ["deployments"], "operations": ["*"], "resourceNames": ["web"]}]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                true,
            ),
            (
                "namespace selector matches",
                json!({"resourceRules": [deploy_rule],
                "namespaceSelector": {"matchLabels": {"environment": "test"}}}),
                deployments("CREATE"),
                Some(&test_labels),
                &unlabelled,
                true,
            ),
            (
                "namespace selector does not match",
                json!({"resourceRules": [deploy_rule],
                "namespaceSelector": {"matchLabels": {"environment": "test"}}}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "object selector matches",
                json!({"resourceRules": [deploy_rule],
                "objectSelector": {"matchLabels": {"tier": "web"}}}),
                deployments("CREATE"),
                Some(&other_labels),
                &labelled,
                true,
            ),
            (
                "object selector does not match",
                json!({"resourceRules": [deploy_rule],
                "objectSelector": {"matchLabels": {"tier": "web"}}}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "equivalent version",
                json!({"matchPolicy": "Equivalent",
                "resourceRules": [rule(&["apps"], &["v1beta1"], &["deployments"])]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                true,
            ),
            (
                "exact version",
                json!({"matchPolicy": "Exact",
                "resourceRules": [rule(&["apps"], &["v1beta1"], &["deployments"])]}),
                deployments("CREATE"),
                Some(&other_labels),
                &unlabelled,
                false,
            ),
            (
                "subresource named",
                json!({"resourceRules": [rule(&["apps"], &["v1"], &["deployments/scale"])]}),
                RequestAttributes {
                    subresource: "scale",
                    ..deployments("UPDATE")
                },
                Some(&other_labels),
                &unlabelled,
                true,
            ),
            (
                "subresource not named",
                json!({"resourceRules": [deploy_rule.clone()]}),
                RequestAttributes {
                    subresource: "scale",
                    ..deployments("UPDATE")
                },
                Some(&other_labels),
                &unlabelled,
                false,
            ),
        ];
        assert_eq!(cases.len(), 15);
        for (name, constraints, attrs, labels, object, expected) in cases {
            let p = policy(constraints, json!([]));
            assert_eq!(
                policy_matches(&p, &request(attrs, labels, Some(object))),
                expected,
                "case {name}"
            );
        }
        let exempt = RequestAttributes {
            group: "admissionregistration.k8s.io",
            resource: "validatingadmissionpolicies",
            ..deployments("CREATE")
        };
        let everything = policy(
            json!({"resourceRules": [rule(&["*"], &["*"], &["*"])]}),
            json!([]),
        );
        assert!(!policy_matches(
            &everything,
            &request(exempt, None, Some(&unlabelled))
        ));
        let binding_everywhere = json!({"spec": {}});
        let binding_test_only = json!({"spec": {"matchResources": {
            "namespaceSelector": {"matchLabels": {"environment": "test"}}}}});
        let req = request(
            deployments("CREATE"),
            Some(&other_labels),
            Some(&unlabelled),
        );
        assert!(binding_matches(&binding_everywhere, &req));
        assert!(!binding_matches(&binding_test_only, &req));
    }

    /// Each policy and object, and what the binding decides.
    #[test]
    fn evaluation_table() {
        let constraints = json!({"resourceRules": [rule(&["apps"], &["v1"], &["deployments"])]});
        let six = json!({"metadata": {"name": "web"}, "spec": {"replicas": 6}});
        let five = json!({"metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let decision = |message: &str, reason: &str, error: bool| Decision {
            message: message.to_string(),
            reason: reason.to_string(),
            error,
        };
        type Case<'a> = (&'a str, Value, &'a Value, Option<Value>, Vec<Decision>);
        let cases: Vec<Case> = vec![
            ("holds", json!([{"expression": "object.spec.replicas <= 5"}]), &five, None, vec![]),
            ("fails with the expression", json!([{"expression": "object.spec.replicas <= 5"}]), &six, None,
                vec![decision("failed expression: object.spec.replicas <= 5", "Invalid", false)]),
            ("fails with the message and reason", json!([{"expression": "object.spec.replicas <= 5",
                "message": "too many", "reason": "Forbidden"}]), &six, None,
                vec![decision("too many", "Forbidden", false)]),
            ("message expression wins", json!([{"expression": "object.spec.replicas <= 5",
                "message": "too many", "messageExpression": "'replicas: ' + string(object.spec.replicas)"}]),
                &six, None, vec![decision("replicas: 6", "Invalid", false)]),
            ("blank message expression falls back", json!([{"expression": "object.spec.replicas <= 5",
                "message": "too many", "messageExpression": "' '"}]),
                &six, None, vec![decision("too many", "Invalid", false)]),
            ("params", json!([{"expression": "object.spec.replicas <= int(params.data.max)"}]),
                &six, Some(json!({"data": {"max": "3"}})),
                vec![decision("failed expression: object.spec.replicas <= int(params.data.max)", "Invalid", false)]),
            ("request", json!([{"expression": "request.operation == 'CREATE' && request.userInfo.username == 'bob'"}]),
                &five, None,
                vec![decision("failed expression: request.operation == 'CREATE' && request.userInfo.username == 'bob'", "Invalid", false)]),
        ];
        assert_eq!(cases.len(), 7);
        for (name, validations, object, params, expected) in cases {
            let p = policy(constraints.clone(), validations);
            let req = request(deployments("CREATE"), None, Some(object));
            assert_eq!(
                evaluate(&p, params.as_ref(), &req).failures,
                expected,
                "case {name}"
            );
        }
        // Match conditions skip, variables feed validations, errors follow the failure policy.
        let mut skipped = policy(constraints.clone(), json!([{"expression": "false"}]));
        skipped["spec"]["matchConditions"] =
            json!([{"name": "big", "expression": "object.spec.replicas > 10"}]);
        let req = request(deployments("CREATE"), None, Some(&six));
        assert!(evaluate(&skipped, None, &req).failures.is_empty());
        let mut with_variables = policy(
            constraints.clone(),
            json!([{"expression": "variables.count <= 5", "messageExpression": "'count ' + string(variables.count)"}]),
        );
        with_variables["spec"]["variables"] =
            json!([{"name": "count", "expression": "object.spec.replicas"}]);
        assert_eq!(
            evaluate(&with_variables, None, &req).failures,
            vec![decision("count 6", "Invalid", false)]
        );
        let mut broken = policy(
            constraints.clone(),
            json!([{"expression": "object.spec.missing.field == 1"}]),
        );
        let failures = evaluate(&broken, None, &req).failures;
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].error
                && failures[0]
                    .message
                    .starts_with("expression 'object.spec.missing.field == 1' resulted in error"),
            "{failures:?}"
        );
        broken["spec"]["failurePolicy"] = json!("Ignore");
        assert!(evaluate(&broken, None, &req).failures.is_empty());
        let mut annotated = policy(constraints, json!([]));
        annotated["spec"]["auditAnnotations"] = json!([{"key": "high", "valueExpression": "'replicas ' + string(object.spec.replicas)"}]);
        assert_eq!(
            evaluate(&annotated, None, &req).audit_annotations,
            vec![("high".to_string(), "replicas 6".to_string())]
        );
    }

    #[test]
    fn actions_deny_warn_and_audit_in_kubernetes_words() {
        let outcome = BindingOutcome {
            failures: vec![Decision {
                message: "failed expression: x".into(),
                reason: "Forbidden".into(),
                error: false,
            }],
            audit_annotations: vec![],
        };
        let mut enforcement = Enforcement::default();
        let warn = json!({"metadata": {"name": "b-warn"}, "spec": {"validationActions": ["Warn", "Audit"]}});
        enforcement.record("p", &warn, &outcome);
        assert_eq!(enforcement.denial, None);
        assert_eq!(enforcement.warnings, vec!["Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b-warn': failed expression: x"]);
        assert_eq!(enforcement.audit.len(), 1);
        let deny = json!({"metadata": {"name": "b"}, "spec": {"validationActions": ["Deny"]}});
        enforcement.record("p", &deny, &outcome);
        assert_eq!(enforcement.denial, Some((
            "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: x".to_string(),
            "Forbidden".to_string())));
        assert_eq!(reason_code("Forbidden"), 403);
        assert_eq!(reason_code("Invalid"), 422);
    }

    #[test]
    fn params_are_selected_and_missing_ones_follow_the_binding() {
        let policy = json!({"spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}}});
        let by_name =
            json!({"spec": {"paramRef": {"name": "limits", "parameterNotFoundAction": "Deny"}}});
        let lookup = param_lookup(&policy, &by_name, "team").unwrap().unwrap();
        assert_eq!(lookup.namespace.as_deref(), Some("team"));
        let limits = json!({"metadata": {"name": "limits", "labels": {"kind": "limits"}}});
        let other = json!({"metadata": {"name": "other"}});
        assert_eq!(
            select_params(&by_name, &lookup, vec![other.clone(), limits.clone()]),
            Ok(vec![Some(limits.clone())])
        );
        assert_eq!(
            select_params(&by_name, &lookup, vec![other.clone()]),
            Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction"
                    .to_string()
            )
        );
        let allow =
            json!({"spec": {"paramRef": {"name": "limits", "parameterNotFoundAction": "Allow"}}});
        assert_eq!(select_params(&allow, &lookup, vec![]), Ok(vec![None]));
        let by_selector =
            json!({"spec": {"paramRef": {"selector": {"matchLabels": {"kind": "limits"}}}}});
        let lookup = param_lookup(&policy, &by_selector, "team")
            .unwrap()
            .unwrap();
        assert_eq!(
            select_params(&by_selector, &lookup, vec![other, limits.clone()]),
            Ok(vec![Some(limits)])
        );
        assert!(param_lookup(&policy, &json!({"spec": {}}), "team").is_err());
    }
}
