//! ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
//! (`admissionregistration.k8s.io/v1`): in-process admission rules written in CEL, which the
//! API server evaluates itself instead of calling a webhook. Both kinds are cluster-scoped;
//! their defaults and validation follow upstream's, and every expression is compiled when the
//! object is written so a broken one is refused with the compiler's words.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::webhook_configuration::{one_of, validate_rule, FAILURE_POLICIES, MATCH_POLICIES};
use super::{Kind, KindStrategy, TypedVersion};
use crate::admission_cel::{self, Declarations, Expected};
use crate::defaults::{child, default_str, default_value, each_object, existing};
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicies.
pub static POLICY_V1: ResourceInfo = ResourceInfo {
    categories: &["api-extensions"],
    subresources: &[Status],
    has_generation: true,
    ..res(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        false,
    )
};

/// `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicyBindings.
pub static BINDING_V1: ResourceInfo = ResourceInfo {
    categories: &["api-extensions"],
    has_generation: true,
    ..res(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        false,
    )
};

/// The policy kind's entry in the kind table.
pub static POLICY_KIND: Kind = Kind {
    versions: &[&POLICY_V1],
    strategy: &PolicyStrategy,
};

/// The binding kind's entry in the kind table.
pub static BINDING_KIND: Kind = Kind {
    versions: &[&BINDING_V1],
    strategy: &BindingStrategy,
};

/// The reasons a validation may give its refusal.
pub const VALIDATION_REASONS: &[&str] = &[
    "Forbidden",
    "Invalid",
    "RequestEntityTooLarge",
    "Unauthorized",
];
/// The values `validationActions` accepts.
pub const VALIDATION_ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];
/// The values `parameterNotFoundAction` accepts.
pub const PARAMETER_NOT_FOUND_ACTIONS: &[&str] = &["Allow", "Deny"];
/// The most match conditions a policy or webhook may have.
pub const MAX_MATCH_CONDITIONS: usize = 64;
/// The most audit annotations a policy may have.
pub const MAX_AUDIT_ANNOTATIONS: usize = 20;

/// Upstream's `MatchResources` defaults: `Equivalent` matching and empty selectors.
fn default_match_resources(criteria: &mut Map<String, Value>) {
    default_str(criteria, "matchPolicy", "Equivalent");
    default_value(criteria, "namespaceSelector", json!({}));
    default_value(criteria, "objectSelector", json!({}));
    for key in ["resourceRules", "excludeResourceRules"] {
        for rule in each_object(criteria, key) {
            default_str(rule, "scope", "*");
        }
    }
}

/// ValidatingAdmissionPolicy: defaults, validation with compiled expressions, printer.
pub struct PolicyStrategy;

impl KindStrategy for PolicyStrategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        use k8s_openapi::api::admissionregistration::v1 as admission;
        Some(TypedVersion::of::<admission::ValidatingAdmissionPolicy>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        let Some(spec) = child(root, "spec") else {
            return;
        };
        default_str(spec, "failurePolicy", "Fail");
        if let Some(constraints) = existing(spec, "matchConstraints") {
            default_match_resources(constraints);
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_policy_spec(field(obj, "spec"), "spec", errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Validations",
                    "integer",
                    "Validations indicates the number of validation rules defined in this configuration",
                ),
                col(
                    "ParamKind",
                    "string",
                    "ParamKind specifies the kind of resources used to parameterize this policy",
                ),
                age_col(),
            ],
            policy_cells,
        ))
    }
}

fn policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let spec = field(obj, "spec");
    let param_kind = match field(spec, "paramKind") {
        kind if kind.is_object() => {
            format!("{}/{}", str_at(kind, "apiVersion"), str_at(kind, "kind"))
        }
        _ => "<unset>".to_string(),
    };
    vec![
        name(obj),
        json!(array_at(spec, "validations").len()),
        json!(param_kind),
        age(obj, now),
    ]
}

/// Compiles `expression` and reports a failure at `path`, as upstream's
/// `convertCELErrorToValidationError` does.
fn check_expression(
    item: &Value,
    key: &str,
    path: &str,
    declarations: Declarations,
    expected: Expected,
    errs: &mut Vec<FieldError>,
) {
    let text = str_at(item, key);
    if let Err(detail) = admission_cel::compile(text, declarations, expected) {
        errs.push(FieldError::invalid(
            join(path, key),
            field(item, key),
            detail,
        ));
    }
}

/// Validates `matchConditions` (of a policy or a webhook): at most 64, unique qualified
/// names, each expression compiling to a boolean.
pub fn validate_match_conditions(
    owner: &Value,
    path: &str,
    declarations: Declarations,
    errs: &mut Vec<FieldError>,
) {
    let conditions = array_at(owner, "matchConditions");
    let conditions_path = join(path, "matchConditions");
    if conditions.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError::too_many(
            &conditions_path,
            conditions.len(),
            MAX_MATCH_CONDITIONS,
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        let item_path = index(&conditions_path, i);
        if str_at(condition, "expression").trim().is_empty() {
            errs.push(FieldError::required(join(&item_path, "expression"), ""));
        } else {
            check_expression(
                condition,
                "expression",
                &item_path,
                declarations,
                Expected::Bool,
                errs,
            );
        }
        let name = str_at(condition, "name");
        if name.is_empty() {
            errs.push(FieldError::required(join(&item_path, "name"), ""));
        } else {
            for message in qualified_name_errors(name) {
                errs.push(FieldError::invalid(
                    join(&item_path, "name"),
                    field(condition, "name"),
                    message,
                ));
            }
            if names.contains(&name) {
                errs.push(FieldError::duplicate(
                    join(&item_path, "name"),
                    field(condition, "name"),
                ));
            }
            names.push(name);
        }
    }
}

fn validate_param_kind(kind: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let api_version = str_at(kind, "apiVersion");
    let version_path = join(path, "apiVersion");
    if api_version.is_empty() {
        errs.push(FieldError::required(version_path, ""));
    } else {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if api_version.matches('/').count() > 1 {
            errs.push(FieldError::invalid(
                &version_path,
                field(kind, "apiVersion"),
                format!("unexpected GroupVersion string: {api_version}"),
            ));
        } else {
            if !group.is_empty() {
                let problems = dns1123_subdomain_errors(group);
                if !problems.is_empty() {
                    errs.push(FieldError::invalid(
                        &version_path,
                        &json!(group),
                        problems.join(","),
                    ));
                }
            }
            if version.is_empty() {
                errs.push(FieldError::invalid(
                    &version_path,
                    field(kind, "apiVersion"),
                    "version must be specified",
                ));
            } else {
                let problems = dns1035_label_errors(version);
                if !problems.is_empty() {
                    errs.push(FieldError::invalid(
                        &version_path,
                        &json!(version),
                        problems.join(","),
                    ));
                }
            }
        }
    }
    let kind_name = str_at(kind, "kind");
    if kind_name.is_empty() {
        errs.push(FieldError::required(join(path, "kind"), ""));
    } else {
        let problems = dns1035_label_errors(&kind_name.to_lowercase());
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                join(path, "kind"),
                field(kind, "kind"),
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                ),
            ));
        }
    }
}

/// Upstream's `validateMatchResources`: the match policy, both selectors and every rule.
fn validate_match_resources(criteria: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if str_at(criteria, "matchPolicy").is_empty() {
        errs.push(FieldError::required(join(path, "matchPolicy"), ""));
    } else {
        one_of(criteria, "matchPolicy", path, MATCH_POLICIES, errs);
    }
    for key in ["namespaceSelector", "objectSelector"] {
        let selector = field(criteria, key);
        if selector.is_object() {
            validate_label_selector(selector, &join(path, key), errs);
        } else {
            errs.push(FieldError::required(join(path, key), ""));
        }
    }
    for key in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in array_at(criteria, key).iter().enumerate() {
            let rule_path = index(&join(path, key), i);
            let mut seen: Vec<&str> = Vec::new();
            for (j, resource_name) in array_at(rule, "resourceNames").iter().enumerate() {
                let text = resource_name.as_str().unwrap_or("");
                let name_path = index(&join(&rule_path, "resourceNames"), j);
                for message in path_segment_errors(text) {
                    errs.push(FieldError::invalid(&name_path, resource_name, message));
                }
                if seen.contains(&text) {
                    errs.push(FieldError::duplicate(&name_path, resource_name));
                }
                seen.push(text);
            }
            validate_rule(rule, &rule_path, errs);
        }
    }
}

fn is_cel_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_policy_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if str_at(spec, "failurePolicy").is_empty() {
        errs.push(FieldError::required(join(path, "failurePolicy"), ""));
    } else {
        one_of(spec, "failurePolicy", path, FAILURE_POLICIES, errs);
    }
    let param_kind = field(spec, "paramKind");
    if param_kind.is_object() {
        validate_param_kind(param_kind, &join(path, "paramKind"), errs);
    }
    let constraints = field(spec, "matchConstraints");
    let constraints_path = join(path, "matchConstraints");
    if constraints.is_object() {
        validate_match_resources(constraints, &constraints_path, errs);
        if array_at(constraints, "resourceRules").is_empty() {
            errs.push(FieldError::required(
                join(&constraints_path, "resourceRules"),
                "",
            ));
        }
    } else {
        errs.push(FieldError::required(constraints_path, ""));
    }
    let variables = array_at(spec, "variables");
    let declarations = Declarations {
        params: param_kind.is_object(),
        variables: !variables.is_empty(),
        namespace_object: true,
    };
    validate_match_conditions(spec, path, declarations, errs);
    for (i, variable) in variables.iter().enumerate() {
        let variable_path = index(&join(path, "variables"), i);
        let name = str_at(variable, "name");
        if name.trim().is_empty() {
            errs.push(FieldError::required(
                join(&variable_path, "name"),
                "name is not specified",
            ));
        } else if !is_cel_identifier(name) {
            errs.push(FieldError::invalid(
                join(&variable_path, "name"),
                field(variable, "name"),
                "name is not a valid CEL identifier",
            ));
        }
        if str_at(variable, "expression").trim().is_empty() {
            errs.push(FieldError::required(
                join(&variable_path, "expression"),
                "expression is not specified",
            ));
        } else {
            check_expression(
                variable,
                "expression",
                &variable_path,
                declarations,
                Expected::Any,
                errs,
            );
        }
    }
    let validations = array_at(spec, "validations");
    let annotations = array_at(spec, "auditAnnotations");
    if validations.is_empty() && annotations.is_empty() {
        let detail = "validations or auditAnnotations must contain at least one item";
        errs.push(FieldError::required(join(path, "validations"), detail));
        errs.push(FieldError::required(join(path, "auditAnnotations"), detail));
        return;
    }
    for (i, validation) in validations.iter().enumerate() {
        validate_validation(
            validation,
            &index(&join(path, "validations"), i),
            declarations,
            errs,
        );
    }
    let annotations_path = join(path, "auditAnnotations");
    if annotations.len() > MAX_AUDIT_ANNOTATIONS {
        errs.push(FieldError::invalid(
            &annotations_path,
            field(spec, "auditAnnotations"),
            format!("must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"),
        ));
    }
    let mut keys: Vec<&str> = Vec::new();
    for (i, annotation) in annotations.iter().enumerate() {
        let item_path = index(&annotations_path, i);
        let key = str_at(annotation, "key");
        if key.is_empty() {
            errs.push(FieldError::required(join(&item_path, "key"), ""));
        }
        if str_at(annotation, "valueExpression").trim().is_empty() {
            errs.push(FieldError::required(
                join(&item_path, "valueExpression"),
                "",
            ));
        } else {
            check_expression(
                annotation,
                "valueExpression",
                &item_path,
                declarations,
                Expected::Any,
                errs,
            );
        }
        if keys.contains(&key) {
            errs.push(FieldError::duplicate(
                join(&item_path, "key"),
                field(annotation, "key"),
            ));
        }
        keys.push(key);
    }
}

fn validate_validation(
    validation: &Value,
    path: &str,
    declarations: Declarations,
    errs: &mut Vec<FieldError>,
) {
    if str_at(validation, "expression").trim().is_empty() {
        errs.push(FieldError::required(
            join(path, "expression"),
            "expression is not specified",
        ));
    } else {
        check_expression(
            validation,
            "expression",
            path,
            declarations,
            Expected::Bool,
            errs,
        );
    }
    let message_expression = str_at(validation, "messageExpression");
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        errs.push(FieldError::invalid(
            join(path, "messageExpression"),
            field(validation, "messageExpression"),
            "must be non-empty if specified",
        ));
    } else if !message_expression.is_empty() {
        check_expression(
            validation,
            "messageExpression",
            path,
            declarations,
            Expected::String,
            errs,
        );
    }
    let message = str_at(validation, "message");
    if !message.is_empty() && message.trim().is_empty() {
        errs.push(FieldError::invalid(
            join(path, "message"),
            field(validation, "message"),
            "message must be non-empty if specified",
        ));
    } else if message.trim().contains('\n') {
        errs.push(FieldError::invalid(
            join(path, "message"),
            field(validation, "message"),
            "message must not contain line breaks",
        ));
    }
    one_of(validation, "reason", path, VALIDATION_REASONS, errs);
}

/// ValidatingAdmissionPolicyBinding: defaults, validation and printer.
pub struct BindingStrategy;

impl KindStrategy for BindingStrategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        use k8s_openapi::api::admissionregistration::v1 as admission;
        Some(TypedVersion::of::<
            admission::ValidatingAdmissionPolicyBinding,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        let Some(spec) = child(root, "spec") else {
            return;
        };
        if let Some(criteria) = existing(spec, "matchResources") {
            default_match_resources(criteria);
        }
        if let Some(reference) = existing(spec, "paramRef") {
            default_str(reference, "parameterNotFoundAction", "Deny");
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = field(obj, "spec");
        if str_at(spec, "policyName").is_empty() {
            errs.push(FieldError::required("spec.policyName", ""));
        }
        let criteria = field(spec, "matchResources");
        if criteria.is_object() {
            validate_match_resources(criteria, "spec.matchResources", errs);
        }
        let reference = field(spec, "paramRef");
        if reference.is_object() {
            validate_param_ref(reference, "spec.paramRef", errs);
        }
        validate_validation_actions(spec, "spec.validationActions", errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "PolicyName",
                    "string",
                    "PolicyName indicates the policy definition which the policy binding binded to",
                ),
                col(
                    "ParamRef",
                    "string",
                    "ParamRef indicates the param resource which sets the configration param",
                ),
                age_col(),
            ],
            binding_cells,
        ))
    }
}

fn binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let spec = field(obj, "spec");
    let reference = field(spec, "paramRef");
    let param = if !reference.is_object() {
        "<unset>".to_string()
    } else if !str_at(reference, "name").is_empty() {
        let namespace = str_at(reference, "namespace");
        let namespace = if namespace.is_empty() { "*" } else { namespace };
        format!("{namespace}/{}", str_at(reference, "name"))
    } else if field(reference, "selector").is_object() {
        crate::selector::LabelSelector::from_label_selector(field(reference, "selector"))
            .map(|s| s.to_string())
            .unwrap_or_default()
    } else {
        "<unset>".to_string()
    };
    vec![
        name(obj),
        json!(str_at(spec, "policyName")),
        json!(param),
        age(obj, now),
    ]
}

fn validate_param_ref(reference: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = str_at(reference, "name");
    let has_selector = field(reference, "selector").is_object();
    if !name.is_empty() {
        for message in path_segment_errors(name) {
            errs.push(FieldError::invalid(
                join(path, "name"),
                field(reference, "name"),
                message,
            ));
        }
        if has_selector {
            errs.push(FieldError::forbidden(
                join(path, "name"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if has_selector {
        validate_label_selector(field(reference, "selector"), &join(path, "selector"), errs);
    }
    if name.is_empty() && !has_selector {
        errs.push(FieldError::required(
            path,
            "one of name or selector must be specified",
        ));
    }
    let namespace = str_at(reference, "namespace");
    if !namespace.is_empty() {
        for message in dns1123_label_errors(namespace) {
            errs.push(FieldError::invalid(
                join(path, "namespace"),
                field(reference, "namespace"),
                message,
            ));
        }
    }
    if str_at(reference, "parameterNotFoundAction").is_empty() {
        errs.push(FieldError::required(
            join(path, "parameterNotFoundAction"),
            "",
        ));
    } else {
        one_of(
            reference,
            "parameterNotFoundAction",
            path,
            PARAMETER_NOT_FOUND_ACTIONS,
            errs,
        );
    }
}

fn validate_validation_actions(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let actions = array_at(spec, "validationActions");
    let mut seen: Vec<&str> = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let text = action.as_str().unwrap_or("");
        if !VALIDATION_ACTIONS.contains(&text) {
            errs.push(FieldError::not_supported(
                index(path, i),
                action,
                VALIDATION_ACTIONS,
            ));
        }
        if seen.contains(&text) {
            errs.push(FieldError::duplicate(index(path, i), action));
        }
        seen.push(text);
    }
    if seen.contains(&"Deny") && seen.contains(&"Warn") {
        errs.push(FieldError::invalid(
            path,
            field(spec, "validationActions"),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if seen.is_empty() {
        errs.push(FieldError::required(
            path,
            "at least one validation action is required",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(strategy: &dyn KindStrategy, obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        strategy.validate(obj, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    fn valid_policy() -> Value {
        json!({"metadata": {"name": "demo-policy.example.com"}, "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"matchPolicy": "Equivalent", "namespaceSelector": {},
                "objectSelector": {}, "resourceRules": [{"apiGroups": ["apps"],
                "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments"], "scope": "*"}]},
            "validations": [{"expression": "object.spec.replicas <= 5"}]}})
    }

    #[test]
    fn defaults_fill_the_failure_policy_match_policy_and_selectors() {
        let mut policy = json!({"spec": {"matchConstraints": {"resourceRules": [
            {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"],
             "resources": ["deployments"]}]}}});
        PolicyStrategy.apply_defaults("v1", policy.as_object_mut().unwrap());
        assert_eq!(policy["spec"]["failurePolicy"], "Fail");
        let constraints = &policy["spec"]["matchConstraints"];
        assert_eq!(constraints["matchPolicy"], "Equivalent");
        assert_eq!(constraints["namespaceSelector"], json!({}));
        assert_eq!(constraints["objectSelector"], json!({}));
        assert_eq!(constraints["resourceRules"][0]["scope"], "*");
        let mut binding = json!({"spec": {"policyName": "p", "paramRef": {"name": "x"}}});
        BindingStrategy.apply_defaults("v1", binding.as_object_mut().unwrap());
        assert_eq!(
            binding["spec"]["paramRef"]["parameterNotFoundAction"],
            "Deny"
        );
        assert!(binding["spec"].get("matchResources").is_none());
    }

    /// Shaped after upstream's `TestValidateValidatingAdmissionPolicy`: each change to a valid
    /// policy and the errors it gets, in Kubernetes' words.
    #[test]
    fn policy_validation_table() {
        let with = |pointer: &str, value: Value| {
            let mut p = valid_policy();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let parent = p.pointer_mut(parent).unwrap();
            match parent {
                Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
                other => other[key] = value,
            }
            p
        };
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("valid", valid_policy(), vec![]),
            ("type error", with("/spec/validations/0/expression", json!("object.spec.replicas > 1 && 'yes'")), vec![
                "spec.validations[0].expression: Invalid value: \"object.spec.replicas > 1 && 'yes'\": compilation failed: ERROR: <input>:1:26: found no matching overload for '_&&_' applied to '(bool, string)'\n | object.spec.replicas > 1 && 'yes'\n | .........................^"]),
            ("not a bool", with("/spec/validations/0/expression", json!("'yes'")), vec![
                "spec.validations[0].expression: Invalid value: \"'yes'\": must evaluate to bool but got string"]),
            ("params undeclared", with("/spec/validations/0/expression", json!("params.x")), vec![
                "spec.validations[0].expression: Invalid value: \"params.x\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')\n | params.x\n | ^"]),
            ("no validations", with("/spec/validations", json!([])), vec![
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item"]),
            ("bad failure policy", with("/spec/failurePolicy", json!("Sometimes")), vec![
                "spec.failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\""]),
            ("no resource rules", with("/spec/matchConstraints/resourceRules", json!([])), vec![
                "spec.matchConstraints.resourceRules: Required value"]),
            ("bad reason", with("/spec/validations/0", json!({"expression": "true", "reason": "Gone"})), vec![
                "spec.validations[0].reason: Unsupported value: \"Gone\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\", \"Unauthorized\""]),
            ("message with a line break", with("/spec/validations/0", json!({"expression": "true", "message": "a\nb"})), vec![
                "spec.validations[0].message: Invalid value: \"a\\nb\": message must not contain line breaks"]),
            ("message expression not a string", with("/spec/validations/0", json!({"expression": "true", "messageExpression": "1"})), vec![
                "spec.validations[0].messageExpression: Invalid value: \"1\": must evaluate to string but got int"]),
            ("duplicate match conditions", with("/spec/matchConditions", json!([
                {"name": "a", "expression": "true"}, {"name": "a", "expression": "true"}])), vec![
                "spec.matchConditions[1].name: Duplicate value: \"a\""]),
            ("bad variable name", with("/spec/variables", json!([{"name": "1x", "expression": "1"}])), vec![
                "spec.variables[0].name: Invalid value: \"1x\": name is not a valid CEL identifier"]),
        ];
        assert_eq!(cases.len(), 12);
        for (name, policy, expected) in cases {
            assert_eq!(messages(&PolicyStrategy, &policy), expected, "case {name}");
        }
        let many: Vec<Value> = (0..65)
            .map(|i| json!({"name": format!("c{i}"), "expression": "true"}))
            .collect();
        assert_eq!(
            messages(&PolicyStrategy, &with("/spec/matchConditions", json!(many))),
            vec!["spec.matchConditions: Too many: 65: must have at most 64 items"]
        );
    }

    #[test]
    fn binding_validation_table() {
        let valid = json!({"spec": {"policyName": "p", "validationActions": ["Deny"]}});
        let with = |key: &str, value: Value| {
            let mut b = valid.clone();
            b["spec"][key] = value;
            b
        };
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("valid", valid.clone(), vec![]),
            ("no policy", with("policyName", json!("")), vec!["spec.policyName: Required value"]),
            ("no actions", with("validationActions", json!([])), vec![
                "spec.validationActions: Required value: at least one validation action is required"]),
            ("deny and warn", with("validationActions", json!(["Deny", "Warn"])), vec![
                "spec.validationActions: Invalid value: [\"Deny\",\"Warn\"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"]),
            ("unknown action", with("validationActions", json!(["Block"])), vec![
                "spec.validationActions[0]: Unsupported value: \"Block\": supported values: \"Audit\", \"Deny\", \"Warn\""]),
            ("param ref without target", with("paramRef", json!({"parameterNotFoundAction": "Deny"})), vec![
                "spec.paramRef: Required value: one of name or selector must be specified"]),
            ("param ref with both", with("paramRef", json!({"name": "x", "selector": {},
                "parameterNotFoundAction": "Deny"})), vec![
                "spec.paramRef.name: Forbidden: name and selector are mutually exclusive"]),
        ];
        assert_eq!(cases.len(), 7);
        for (name, binding, expected) in cases {
            assert_eq!(
                messages(&BindingStrategy, &binding),
                expected,
                "case {name}"
            );
        }
    }

    #[test]
    fn printers_show_counts_param_kinds_and_refs() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut policy = valid_policy();
        policy["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(
            policy_cells(&policy, now),
            vec![
                json!("demo-policy.example.com"),
                json!(1),
                json!("<unset>"),
                json!("60s")
            ]
        );
        policy["spec"]["paramKind"] = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert_eq!(policy_cells(&policy, now)[2], json!("v1/ConfigMap"));
        let binding = |reference: Value| {
            json!({"metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"},
                   "spec": {"policyName": "p", "paramRef": reference}})
        };
        assert_eq!(
            binding_cells(&binding(json!({"name": "x"})), now)[2],
            json!("*/x")
        );
        assert_eq!(
            binding_cells(&binding(json!({"name": "x", "namespace": "n"})), now)[2],
            json!("n/x")
        );
        assert_eq!(
            binding_cells(
                &binding(json!({"selector": {"matchLabels": {"a": "b"}}})),
                now
            )[2],
            json!("a=b")
        );
        assert_eq!(
            binding_cells(&binding(Value::Null), now)[2],
            json!("<unset>")
        );
    }
}
