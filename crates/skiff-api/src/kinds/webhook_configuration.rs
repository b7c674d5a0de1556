//! Admission webhook configurations (`admissionregistration.k8s.io/v1`): the
//! ValidatingWebhookConfiguration and MutatingWebhookConfiguration kinds, which tell the API
//! server which external HTTPS endpoints to consult before an object is stored. Both share
//! their defaults and validation, as upstream's do; mutating webhooks add `reinvocationPolicy`.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::{child, default_str, default_value, each_object};
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo},
};

/// `admissionregistration.k8s.io/v1` ValidatingWebhookConfigurations.
pub static VALIDATING_V1: ResourceInfo = res(
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
    "validatingwebhookconfiguration",
    false,
);

/// `admissionregistration.k8s.io/v1` MutatingWebhookConfigurations.
pub static MUTATING_V1: ResourceInfo = res(
    "admissionregistration.k8s.io",
    "v1",
    "MutatingWebhookConfiguration",
    "mutatingwebhookconfigurations",
    "mutatingwebhookconfiguration",
    false,
);

/// The validating kind's entry in the kind table.
pub static VALIDATING_KIND: Kind = Kind {
    versions: &[&VALIDATING_V1],
    strategy: &Strategy { mutating: false },
};

/// The mutating kind's entry in the kind table.
pub static MUTATING_KIND: Kind = Kind {
    versions: &[&MUTATING_V1],
    strategy: &Strategy { mutating: true },
};

/// The values `failurePolicy` accepts.
pub const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
/// The values `matchPolicy` accepts.
pub const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
/// The values `sideEffects` accepts in v1 (`Some` and `Unknown` were v1beta1 only).
pub const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
/// The values `reinvocationPolicy` accepts.
pub const REINVOCATION_POLICIES: &[&str] = &["IfNeeded", "Never"];
/// The operations a rule may name.
pub const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
/// The scopes a rule may name.
pub const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
/// The AdmissionReview versions this server sends.
pub const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
/// The timeout a webhook gets when its configuration names none, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 10;
/// The longest timeout a webhook may ask for, in seconds.
pub const MAX_TIMEOUT_SECONDS: i64 = 30;

/// The behaviour both kinds share; `mutating` adds `reinvocationPolicy`.
pub struct Strategy {
    mutating: bool,
}

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        use k8s_openapi::api::admissionregistration::v1 as admission;
        Some(if self.mutating {
            TypedVersion::of::<admission::MutatingWebhookConfiguration>()
        } else {
            TypedVersion::of::<admission::ValidatingWebhookConfiguration>()
        })
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        for webhook in each_object(root, "webhooks") {
            default_str(webhook, "failurePolicy", "Fail");
            default_str(webhook, "matchPolicy", "Equivalent");
            default_value(webhook, "namespaceSelector", json!({}));
            default_value(webhook, "objectSelector", json!({}));
            default_value(webhook, "timeoutSeconds", json!(DEFAULT_TIMEOUT_SECONDS));
            if self.mutating {
                default_str(webhook, "reinvocationPolicy", "Never");
            }
            for rule in each_object(webhook, "rules") {
                default_str(rule, "scope", "*");
            }
            if let Some(service) = child(webhook, "clientConfig")
                .and_then(|config| config.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                default_value(service, "port", json!(443));
            }
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let mut names: Vec<&str> = Vec::new();
        for (i, webhook) in array_at(obj, "webhooks").iter().enumerate() {
            let path = index("webhooks", i);
            let name = str_at(webhook, "name");
            if names.contains(&name) && !name.is_empty() {
                errs.push(FieldError::duplicate(
                    join(&path, "name"),
                    field(webhook, "name"),
                ));
            }
            names.push(name);
            validate_webhook(webhook, &path, self.mutating, errs);
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Webhooks",
                    "integer",
                    "Webhooks indicates the number of webhooks included in this configuration.",
                ),
                age_col(),
            ],
            configuration_cells,
        ))
    }
}

fn configuration_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(array_at(obj, "webhooks").len()),
        age(obj, now),
    ]
}

/// A webhook's name must be a fully qualified domain: a subdomain of three segments or more.
fn validate_webhook_name(webhook: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let value = field(webhook, "name");
    let name = str_at(webhook, "name");
    let path = join(path, "name");
    if name.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    for message in dns1123_subdomain_errors(name) {
        errs.push(FieldError::invalid(&path, value, message));
    }
    if name.split('.').count() < 3 {
        errs.push(FieldError::invalid(
            &path,
            value,
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

pub(crate) fn one_of(
    webhook: &Value,
    key: &str,
    path: &str,
    allowed: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let value = field(webhook, key);
    if let Some(given) = value.as_str() {
        if !allowed.contains(&given) {
            errs.push(FieldError::not_supported(join(path, key), value, allowed));
        }
    }
}

fn validate_webhook(webhook: &Value, path: &str, mutating: bool, errs: &mut Vec<FieldError>) {
    validate_webhook_name(webhook, path, errs);
    for (j, rule) in array_at(webhook, "rules").iter().enumerate() {
        validate_rule(rule, &index(&join(path, "rules"), j), errs);
    }
    one_of(webhook, "failurePolicy", path, FAILURE_POLICIES, errs);
    one_of(webhook, "matchPolicy", path, MATCH_POLICIES, errs);
    if str_at(webhook, "sideEffects").is_empty() {
        errs.push(FieldError::required(
            join(path, "sideEffects"),
            format!("must specify one of {}", SIDE_EFFECTS.join(", ")),
        ));
    } else {
        one_of(webhook, "sideEffects", path, SIDE_EFFECTS, errs);
    }
    if mutating {
        one_of(
            webhook,
            "reinvocationPolicy",
            path,
            REINVOCATION_POLICIES,
            errs,
        );
    }
    if let Some(timeout) = int_at(webhook, "timeoutSeconds") {
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
            errs.push(FieldError::invalid(
                join(path, "timeoutSeconds"),
                field(webhook, "timeoutSeconds"),
                format!("the timeout value must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"),
            ));
        }
    }
    let versions = array_at(webhook, "admissionReviewVersions");
    let versions_path = join(path, "admissionReviewVersions");
    if !versions
        .iter()
        .any(|v| v.as_str().is_some_and(|v| REVIEW_VERSIONS.contains(&v)))
    {
        errs.push(FieldError::required(
            versions_path,
            format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
    }
    for key in ["namespaceSelector", "objectSelector"] {
        let selector = field(webhook, key);
        if selector.is_object() {
            validate_label_selector(selector, &join(path, key), errs);
        }
    }
    validate_client_config(
        field(webhook, "clientConfig"),
        &join(path, "clientConfig"),
        errs,
    );
    super::admission_policy::validate_match_conditions(
        webhook,
        path,
        crate::admission_cel::Declarations::default(),
        errs,
    );
}

pub(crate) fn validate_rule(rule: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in ["operations", "apiGroups", "apiVersions", "resources"] {
        let items = array_at(rule, key);
        let item_path = join(path, key);
        if items.is_empty() {
            errs.push(FieldError::required(item_path.clone(), ""));
        }
        let has_wildcard = items.iter().any(|v| v == "*");
        if has_wildcard && items.len() > 1 && key != "resources" {
            errs.push(FieldError::invalid(
                &item_path,
                field(rule, key),
                "if '*' is present, must not specify other values",
            ));
        }
        if key == "operations" {
            for (k, op) in items.iter().enumerate() {
                if !op.as_str().is_some_and(|op| OPERATIONS.contains(&op)) {
                    errs.push(FieldError::not_supported(
                        index(&item_path, k),
                        op,
                        OPERATIONS,
                    ));
                }
            }
        }
        if key == "resources" {
            for (k, resource) in items.iter().enumerate() {
                let text = resource.as_str().unwrap_or("");
                if text.is_empty() {
                    errs.push(FieldError::required(index(&item_path, k), ""));
                } else if text.split('/').count() > 2 {
                    errs.push(FieldError::invalid(
                        index(&item_path, k),
                        resource,
                        "resource must be of the form 'resource', 'resource/subresource' or 'resource/*'",
                    ));
                }
            }
        }
    }
    one_of(rule, "scope", path, SCOPES, errs);
}

fn validate_client_config(config: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let url = field(config, "url");
    let service = field(config, "service");
    match (url.as_str(), service.is_object()) {
        (Some(_), true) | (None, false) => errs.push(FieldError::required(
            path,
            "exactly one of url or service is required",
        )),
        (Some(text), false) => {
            let url_path = join(path, "url");
            let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let problem = if scheme != "https" {
                Some("'https' is the only allowed URL scheme")
            } else if authority.is_empty() {
                Some("host must be specified")
            } else if authority.contains('@') {
                Some("user information is not permitted in the URL")
            } else if rest.contains('#') {
                Some("fragments are not permitted in the URL")
            } else if rest.contains('?') {
                Some("query parameters are not permitted in the URL")
            } else {
                None
            };
            if let Some(problem) = problem {
                errs.push(FieldError::invalid(url_path, url, problem));
            }
        }
        (None, true) => {
            let service_path = join(path, "service");
            for key in ["name", "namespace"] {
                if str_at(service, key).is_empty() {
                    errs.push(FieldError::required(join(&service_path, key), ""));
                }
            }
            if let Some(port) = int_at(service, "port") {
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(
                        join(&service_path, "port"),
                        field(service, "port"),
                        PORT_RANGE,
                    ));
                }
            }
            let service_url_path = field(service, "path");
            if let Some(p) = service_url_path.as_str() {
                if !p.starts_with('/') {
                    errs.push(FieldError::invalid(
                        join(&service_path, "path"),
                        service_url_path,
                        "must start with a '/'",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(webhook: Value) -> Value {
        json!({"metadata": {"name": "c"}, "webhooks": [webhook]})
    }

    fn messages(strategy: &Strategy, obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        strategy.validate(obj, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn defaults_fill_every_policy_the_webhook_left_unset() {
        let mut obj = configuration(json!({"name": "a.b.c", "clientConfig": {"service":
            {"name": "s", "namespace": "n"}}, "rules": [{"operations": ["CREATE"]}]}));
        Strategy { mutating: true }.apply_defaults("v1", obj.as_object_mut().unwrap());
        let webhook = &obj["webhooks"][0];
        assert_eq!(webhook["failurePolicy"], "Fail");
        assert_eq!(webhook["matchPolicy"], "Equivalent");
        assert_eq!(webhook["namespaceSelector"], json!({}));
        assert_eq!(webhook["objectSelector"], json!({}));
        assert_eq!(webhook["timeoutSeconds"], 10);
        assert_eq!(webhook["reinvocationPolicy"], "Never");
        assert_eq!(webhook["rules"][0]["scope"], "*");
        assert_eq!(webhook["clientConfig"]["service"]["port"], 443);
        let mut validating = configuration(json!({"name": "a.b.c"}));
        Strategy { mutating: false }.apply_defaults("v1", validating.as_object_mut().unwrap());
        assert!(validating["webhooks"][0]
            .get("reinvocationPolicy")
            .is_none());
    }

    /// Shaped after upstream's `TestValidateValidatingWebhookConfiguration`: each webhook and
    /// the errors it gets, in Kubernetes' words.
    #[test]
    fn validation_table() {
        let valid = json!({"name": "webhook.example.com", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://example.com/x"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}]});
        let with = |key: &str, value: Value| {
            let mut w = valid.clone();
            w[key] = value;
            w
        };
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("valid", valid.clone(), vec![]),
            ("two segments", with("name", json!("example.com")), vec![
                "webhooks[0].name: Invalid value: \"example.com\": should be a domain with at least three segments separated by dots"]),
            ("no side effects", with("sideEffects", Value::Null), vec![
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"]),
            ("side effects Some", with("sideEffects", json!("Some")), vec![
                "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""]),
            ("no review versions", with("admissionReviewVersions", json!([])), vec![
                "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1"]),
            ("bad failure policy", with("failurePolicy", json!("Sometimes")), vec![
                "webhooks[0].failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\""]),
            ("timeout too long", with("timeoutSeconds", json!(31)), vec![
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"]),
            ("http url", with("clientConfig", json!({"url": "http://example.com"})), vec![
                "webhooks[0].clientConfig.url: Invalid value: \"http://example.com\": 'https' is the only allowed URL scheme"]),
            ("no client config", with("clientConfig", json!({})), vec![
                "webhooks[0].clientConfig: Required value: exactly one of url or service is required"]),
            ("bad operation", with("rules", json!([{"operations": ["PATCH"], "apiGroups": ["*"],
                "apiVersions": ["*"], "resources": ["*"]}])), vec![
                "webhooks[0].rules[0].operations[0]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\""]),
            ("empty rule", with("rules", json!([{}])), vec![
                "webhooks[0].rules[0].operations: Required value",
                "webhooks[0].rules[0].apiGroups: Required value",
                "webhooks[0].rules[0].apiVersions: Required value",
                "webhooks[0].rules[0].resources: Required value"]),
            ("match condition type error", with("matchConditions", json!([{"name": "a",
                "expression": "object.metadata.name == 1 + 'x'"}])), vec![
                "webhooks[0].matchConditions[0].expression: Invalid value: \"object.metadata.name == 1 + 'x'\": compilation failed: ERROR: <input>:1:27: found no matching overload for '_+_' applied to '(int, string)'\n | object.metadata.name == 1 + 'x'\n | ..........................^"]),
            ("match condition without a name", with("matchConditions", json!([{"expression": "true"}])), vec![
                "webhooks[0].matchConditions[0].name: Required value"]),
            ("params are not declared for webhooks", with("matchConditions", json!([{"name": "a", "expression": "params.x == 1"}])), vec![
                "webhooks[0].matchConditions[0].expression: Invalid value: \"params.x == 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')\n | params.x == 1\n | ^"]),
        ];
        assert_eq!(cases.len(), 14);
        for (name, webhook, expected) in cases {
            let got = messages(&Strategy { mutating: false }, &configuration(webhook));
            assert_eq!(got, expected, "case {name}");
        }
        let twice = json!({"metadata": {"name": "c"}, "webhooks": [valid.clone(), valid]});
        assert_eq!(
            messages(&Strategy { mutating: false }, &twice),
            vec!["webhooks[1].name: Duplicate value: \"webhook.example.com\""]
        );
        let reinvoke = with("reinvocationPolicy", json!("Always"));
        assert_eq!(
            messages(&Strategy { mutating: true }, &configuration(reinvoke)),
            vec!["webhooks[0].reinvocationPolicy: Unsupported value: \"Always\": supported values: \"IfNeeded\", \"Never\""]
        );
    }

    #[test]
    fn the_printer_counts_webhooks() {
        let obj = json!({"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "webhooks": [{"name": "a.b.c"}, {"name": "d.e.f"}]});
        let cells = configuration_cells(&obj, "2026-01-01T00:01:00Z".parse().unwrap());
        assert_eq!(cells, vec![json!("c"), json!(2), json!("60s")]);
    }
}
