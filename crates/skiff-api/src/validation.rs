//! Validation: which submitted objects Kubernetes rejects, with its field paths, reasons and
//! message texts, so that `kubectl` prints exactly what it prints against a real cluster.
//!
//! Both entry points run on the storage version (HPAs as `autoscaling/v2`), after defaulting,
//! as Kubernetes' registry strategies do. Errors come back in Kubernetes' order; the caller
//! turns a non-empty list into a 422 `Invalid` status.
//!
//! Bad values are rendered as Go's `field.Error` renders them: strings quoted, integers bare,
//! `IntOrString` and quantities through their `String()` form (unquoted), and label selectors
//! and service ports as Go `%#v` structs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::errors::{go_json, go_value, FieldError, FieldErrorType};
use crate::kinds::{strategy_for, NameRule};
use crate::resources::ResourceInfo;

/// Validates an object about to be created: its metadata, then its kind's own rules.
pub fn validate_create(resource: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_object_meta(resource, obj, &mut errs);
    strategy_for(resource).validate(obj, &mut errs);
    errs
}

/// Validates an update of `old` to `new`: everything a create checks, plus what may not change.
pub fn validate_update(resource: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_object_meta_update(new, old, &mut errs);
    strategy_for(resource).validate_update(new, old, &mut errs);
    errs
}

// ---------------------------------------------------------------------------------------------
// Messages shared with apimachinery's validation helpers.

pub(crate) const IMMUTABLE: &str = "field is immutable";
pub(crate) const NEGATIVE: &str = "must be greater than or equal to 0";
pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The total size Kubernetes allows for an object's annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// The total size Kubernetes allows for a ConfigMap's or Secret's data.
pub(crate) const MAX_DATA_SIZE: usize = 1024 * 1024;

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns_label(s: &str) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    is_lower_alnum(first)
        && is_lower_alnum(last)
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
}

pub(crate) fn matches_dns_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns_label)
}

/// The messages of apimachinery's `IsDNS1123Label`.
pub(crate) fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    if !matches_dns_label(s) {
        if matches_dns_subdomain(s) {
            out.push("must not contain dots".to_string());
        } else {
            out.push(DNS1123_LABEL_MSG.to_string());
        }
    }
    out
}

/// The messages of apimachinery's `IsDNS1123Subdomain`.
pub(crate) fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push(max_len(253));
    }
    if !matches_dns_subdomain(s) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// The messages of apimachinery's `IsDNS1035Label`.
pub(crate) fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    let starts_alpha = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !(starts_alpha && matches_dns_label(s)) {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(s: &str) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The messages of apimachinery's `IsQualifiedName` (label and annotation keys).
pub(crate) fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else {
                for msg in dns1123_subdomain_errors(prefix) {
                    out.push(format!("prefix part {msg}"));
                }
            }
            *name
        }
        _ => {
            out.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return out;
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push(format!("name part {}", max_len(63)));
    }
    if !matches_qualified_name_part(name) {
        out.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    out
}

/// The messages of apimachinery's `IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    if value.len() > 63 {
        out.push(max_len(63));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

/// The messages of apimachinery's `IsValidPortName`.
pub(crate) fn port_name_errors(port: &str) -> Vec<String> {
    let mut out = Vec::new();
    if port.len() > 15 {
        out.push(max_len(15));
    }
    if !port
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        out.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_string());
    }
    out
}

/// The messages of apimachinery's `IsValidPathSegmentName`.
pub(crate) fn path_segment_errors(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name == "." || name == ".." {
        out.push(format!("may not be '{name}'"));
    }
    for bad in ['/', '%'] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

/// Whether `name` is a valid path segment (`IsValidPathSegmentName` finds nothing wrong), as
/// names read from URLs and field selectors must be.
pub fn is_path_segment_name(name: &str) -> bool {
    path_segment_errors(name).is_empty()
}

pub(crate) fn is_valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
}

fn is_config_key(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push(max_len(253));
    }
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        out.push(CONFIG_KEY_MSG.to_string());
    }
    if key == "." {
        out.push("must not be '.'".to_string());
    } else if key == ".." {
        out.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        out.push("must not start with '..'".to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JSON access and Go-style rendering.

static NULL: Value = Value::Null;

pub(crate) fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

pub(crate) fn array_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn string_map(v: &Value) -> BTreeMap<&str, &str> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn join(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Renders an `IntOrString` or quantity as its `String()` form, which Go prints unquoted.
pub(crate) fn go_stringer(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// A string list as a field error shows it: JSON, or `null` when absent.
pub(crate) fn go_string_slice(v: &Value) -> String {
    match v.as_array() {
        None => "null".to_string(),
        Some(_) => crate::errors::go_json(v),
    }
}

/// A string list as OpenKruise's webhook shows it: its apimachinery still prints Go syntax
/// (`[]string{"a", "b"}`).
pub(crate) fn kruise_string_slice(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{:?}", i.as_str().unwrap_or("")))
        .collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// A string map as a field error shows it: JSON with sorted keys, or `null` when absent.
fn go_string_map(v: &Value) -> String {
    if v.is_object() {
        go_value(v)
    } else {
        "null".to_string()
    }
}

/// A label selector as a field error shows `metav1.LabelSelector`: its JSON, fields in the
/// struct's order, empty ones left out.
fn go_label_selector(v: &Value) -> String {
    if v.is_null() {
        return "null".to_string();
    }
    let mut parts = Vec::new();
    if field(v, "matchLabels")
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        parts.push(format!(
            "\"matchLabels\":{}",
            go_string_map(field(v, "matchLabels"))
        ));
    }
    if let Some(items) = v
        .get("matchExpressions")
        .and_then(Value::as_array)
        .filter(|items| !items.is_empty())
    {
        let requirements: Vec<String> = items
            .iter()
            .map(|e| {
                let mut requirement = format!(
                    "{{\"key\":{},\"operator\":{}",
                    go_json(&Value::String(str_at(e, "key").to_string())),
                    go_json(&Value::String(str_at(e, "operator").to_string()))
                );
                if field(e, "values").as_array().is_some_and(|v| !v.is_empty()) {
                    requirement.push_str(&format!(
                        ",\"values\":{}",
                        go_string_slice(field(e, "values"))
                    ));
                }
                requirement.push('}');
                requirement
            })
            .collect();
        parts.push(format!("\"matchExpressions\":[{}]", requirements.join(",")));
    }
    format!("{{{}}}", parts.join(","))
}

/// Any other structured value, shown as JSON (Kubernetes would show a Go struct).
pub(crate) fn go_struct_json(v: Option<&Value>) -> String {
    v.map(|v| serde_json::to_string(v).unwrap_or_default())
        .unwrap_or_else(|| "null".to_string())
}

pub(crate) fn invalid_raw(
    path: impl Into<String>,
    rendered: String,
    detail: impl Into<String>,
) -> FieldError {
    FieldError {
        error_type: FieldErrorType::Invalid,
        field: path.into(),
        bad_value: Some(rendered),
        detail: detail.into(),
    }
}

pub(crate) fn not_supported_raw(
    path: impl Into<String>,
    rendered: String,
    supported: &[&str],
) -> FieldError {
    let mut e = FieldError::not_supported(path, &Value::Null, supported);
    e.bad_value = Some(rendered);
    e
}

fn not_found(path: impl Into<String>, value: &Value) -> FieldError {
    FieldError {
        error_type: FieldErrorType::NotFound,
        field: path.into(),
        bad_value: Some(go_value(value)),
        detail: String::new(),
    }
}

/// `ValidateNonnegativeField` for an optional integer.
pub(crate) fn nonnegative(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = v.and_then(Value::as_i64) {
        if n < 0 {
            errs.push(FieldError::invalid(path, &Value::from(n), NEGATIVE));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Object metadata.

fn name_errors(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    // A generateName prefix may end in '-': the random suffix makes it valid.
    let masked;
    let name = if prefix && name.ends_with('-') {
        masked = format!("{}a", &name[..name.len() - 1]);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::Dns1123Subdomain => dns1123_subdomain_errors(name),
        NameRule::Dns1123Label => dns1123_label_errors(name),
        NameRule::Dns1035Label => dns1035_label_errors(name),
        NameRule::PathSegment => crate::rbac::name_errors(name),
    }
}

fn validate_object_meta(resource: &ResourceInfo, obj: &Value, errs: &mut Vec<FieldError>) {
    let meta = field(obj, "metadata");
    let rule = strategy_for(resource).name_rule();
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_errors(rule, generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                &Value::from(generate_name),
                msg,
            ));
        }
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name_errors(rule, name, false) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &Value::from(name),
                msg,
            ));
        }
    }
    let namespace = str_at(meta, "namespace");
    if resource.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in dns1123_label_errors(namespace) {
                errs.push(FieldError::invalid(
                    "metadata.namespace",
                    &Value::from(namespace),
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    nonnegative(meta.get("generation"), "metadata.generation", errs);
    validate_labels(field(meta, "labels"), "metadata.labels", errs);
    validate_annotations(field(meta, "annotations"), "metadata.annotations", errs);
    validate_finalizers(field(meta, "finalizers"), "metadata.finalizers", errs);
}

pub(crate) fn validate_labels(labels: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (key, value) in string_map(labels) {
        for msg in qualified_name_errors(key) {
            errs.push(FieldError::invalid(path, &Value::from(key), msg));
        }
        for msg in label_value_errors(value) {
            errs.push(FieldError::invalid(path, &Value::from(value), msg));
        }
    }
}

fn validate_annotations(annotations: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(map) = annotations.as_object() else {
        return;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut total = 0;
    for key in keys {
        // Annotation keys are qualified names in any case.
        for msg in qualified_name_errors(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, &Value::from(key.as_str()), msg));
        }
        total += key.len() + map[key].as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError {
            error_type: FieldErrorType::TooLong,
            field: path.to_string(),
            bad_value: None,
            detail: format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
}

fn validate_finalizers(finalizers: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, finalizer) in array_at_value(finalizers).iter().enumerate() {
        let name = finalizer.as_str().unwrap_or("");
        for msg in qualified_name_errors(name) {
            errs.push(FieldError::invalid(index(path, i), &Value::from(name), msg));
        }
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(index(path, i), &Value::from(name)));
        }
    }
}

fn array_at_value(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn validate_object_meta_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let new_meta = field(new, "metadata");
    let old_meta = field(old, "metadata");
    for key in ["name", "namespace"] {
        let (n, o) = (str_at(new_meta, key), str_at(old_meta, key));
        if n != o {
            errs.push(FieldError::invalid(
                format!("metadata.{key}"),
                &Value::from(n),
                IMMUTABLE,
            ));
        }
    }
    // An update that leaves the UID out keeps the stored one, as Kubernetes' update path does.
    let (new_uid, old_uid) = (str_at(new_meta, "uid"), str_at(old_meta, "uid"));
    if !new_uid.is_empty() && new_uid != old_uid {
        errs.push(FieldError::invalid(
            "metadata.uid",
            &Value::from(new_uid),
            IMMUTABLE,
        ));
    }
    nonnegative(new_meta.get("generation"), "metadata.generation", errs);
    validate_labels(field(new_meta, "labels"), "metadata.labels", errs);
    validate_annotations(field(new_meta, "annotations"), "metadata.annotations", errs);
    validate_finalizers(field(new_meta, "finalizers"), "metadata.finalizers", errs);
}

// ---------------------------------------------------------------------------------------------
// Label selectors.

/// A parsed selector requirement; `None` for the whole selector when it cannot be parsed.
enum Requirement<'a> {
    Equals(&'a str, &'a str),
    In(&'a str, Vec<&'a str>),
    NotIn(&'a str, Vec<&'a str>),
    Exists(&'a str),
    DoesNotExist(&'a str),
}

/// `metav1.LabelSelectorAsSelector`: `Ok(None)` means "nothing" (a nil selector), an empty list
/// means "everything", and `Err` an unparsable selector.
fn parse_selector(selector: &Value) -> Result<Option<Vec<Requirement<'_>>>, ()> {
    if selector.is_null() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (key, value) in string_map(field(selector, "matchLabels")) {
        if !qualified_name_errors(key).is_empty() || !label_value_errors(value).is_empty() {
            return Err(());
        }
        out.push(Requirement::Equals(key, value));
    }
    for expr in array_at(selector, "matchExpressions") {
        let key = str_at(expr, "key");
        if !qualified_name_errors(key).is_empty() {
            return Err(());
        }
        let values: Vec<&str> = array_at(expr, "values")
            .iter()
            .map(|v| v.as_str().unwrap_or(""))
            .collect();
        let req = match str_at(expr, "operator") {
            "In" if !values.is_empty() => Requirement::In(key, values),
            "NotIn" if !values.is_empty() => Requirement::NotIn(key, values),
            "Exists" if values.is_empty() => Requirement::Exists(key),
            "DoesNotExist" if values.is_empty() => Requirement::DoesNotExist(key),
            _ => return Err(()),
        };
        out.push(req);
    }
    Ok(Some(out))
}

fn selector_matches(requirements: &[Requirement<'_>], labels: &BTreeMap<&str, &str>) -> bool {
    requirements.iter().all(|r| match r {
        Requirement::Equals(k, v) => labels.get(k) == Some(v),
        Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
        Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        Requirement::Exists(k) => labels.contains_key(k),
        Requirement::DoesNotExist(k) => !labels.contains_key(k),
    })
}

/// `ValidateLabelSelector` with label values in expressions validated strictly.
pub(crate) fn validate_label_selector(selector: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (i, expr) in array_at(selector, "matchExpressions").iter().enumerate() {
        let expr_path = index(&join(path, "matchExpressions"), i);
        let values = array_at(expr, "values");
        match str_at(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        join(&expr_path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        join(&expr_path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                join(&expr_path, "operator"),
                &Value::from(other),
                "not a valid selector operator",
            )),
        }
        let key = str_at(expr, "key");
        for msg in qualified_name_errors(key) {
            errs.push(FieldError::invalid(
                join(&expr_path, "key"),
                &Value::from(key),
                msg,
            ));
        }
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or("");
            for msg in label_value_errors(value) {
                errs.push(FieldError::invalid(
                    index(&join(&expr_path, "values"), j),
                    &Value::from(value),
                    msg,
                ));
            }
        }
    }
    validate_labels(
        field(selector, "matchLabels"),
        &join(path, "matchLabels"),
        errs,
    );
}

/// Checks the selector and template of a workload the way `ValidateReplicaSetSpec` and
/// `ValidateDeploymentSpec` do, `empty_selector_kind` naming the workload in the empty-selector message.
pub(crate) fn validate_selector_and_template(
    spec: &Value,
    empty_selector_kind: &str,
    errs: &mut Vec<FieldError>,
) {
    if validate_selector_and_template_labels(spec, empty_selector_kind, errs) {
        validate_pod_template(field(spec, "template"), "spec.template", errs);
    }
}

/// The selector, its match with the template's labels and the template's metadata, without
/// the pod spec (a StatefulSet's template mounts claims its volumes do not list). Returns
/// whether a template was there to check.
pub(crate) fn validate_selector_and_template_labels(
    spec: &Value,
    empty_selector_kind: &str,
    errs: &mut Vec<FieldError>,
) -> bool {
    let selector = field(spec, "selector");
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        validate_label_selector(selector, "spec.selector", errs);
        let count = string_map(field(selector, "matchLabels")).len()
            + array_at(selector, "matchExpressions").len();
        if count == 0 {
            errs.push(invalid_raw(
                "spec.selector",
                go_label_selector(selector),
                format!("empty selector is invalid for {empty_selector_kind}"),
            ));
        }
    }
    match parse_selector(selector) {
        Err(()) => {
            errs.push(invalid_raw(
                "spec.selector",
                go_label_selector(selector),
                "invalid label selector",
            ));
            false
        }
        Ok(parsed) => {
            let template = field(spec, "template");
            if template.is_null() {
                errs.push(FieldError::required("spec.template", ""));
                return false;
            }
            let labels_value = field(field(template, "metadata"), "labels");
            let labels = string_map(labels_value);
            // A nil selector selects nothing; an empty one everything.
            let matches = match &parsed {
                None => false,
                Some(reqs) => reqs.is_empty() || selector_matches(reqs, &labels),
            };
            if !matches {
                errs.push(invalid_raw(
                    "spec.template.metadata.labels",
                    go_string_map(labels_value),
                    "`selector` does not match template `labels`",
                ));
            }
            true
        }
    }
}

/// The template's labels and annotations, checked as `ValidatePodTemplateSpecForStatefulSet`
/// does (its pod spec is checked on each pod).
pub(crate) fn validate_template_metadata(template: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let meta = field(template, "metadata");
    validate_labels(field(meta, "labels"), &join(path, "labels"), errs);
    validate_annotations(field(meta, "annotations"), &join(path, "annotations"), errs);
}

/// `metav1.LabelSelectorAsSelector(selector).Matches(template labels)`, reported as Kubernetes
/// reports a mismatch; an unparsable selector is left to the selector's own validation.
pub(crate) fn selector_matches_template(spec: &Value, errs: &mut Vec<FieldError>) {
    let Ok(parsed) = parse_selector(field(spec, "selector")) else {
        return;
    };
    let labels_value = field(field(field(spec, "template"), "metadata"), "labels");
    let matches = match &parsed {
        None => false,
        Some(reqs) => reqs.is_empty() || selector_matches(reqs, &string_map(labels_value)),
    };
    if !matches {
        errs.push(invalid_raw(
            "spec.template.metadata.labels",
            go_string_map(labels_value),
            "`selector` does not match template `labels`",
        ));
    }
}

pub(crate) fn immutable_selector(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let new_selector = field(field(new, "spec"), "selector");
    let old_selector = field(field(old, "spec"), "selector");
    if normalized_selector(new_selector) != normalized_selector(old_selector) {
        errs.push(invalid_raw(
            "spec.selector",
            go_label_selector(new_selector),
            IMMUTABLE,
        ));
    }
}

/// A selector with empty fields dropped, so `{matchLabels: {}}` equals `{}` as Go's semantic
/// equality treats them.
pub(crate) fn normalized_selector(v: &Value) -> Value {
    let mut out = Map::new();
    if let Some(map) = v.as_object() {
        for (k, val) in map {
            let empty = match val {
                Value::Null => true,
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !empty {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// IntOrString helpers.

/// `ValidatePositiveIntOrPercent`.
pub(crate) fn validate_int_or_percent(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::String(s) => {
            if !is_valid_percent(s) {
                errs.push(invalid_raw(path, s.clone(), PERCENT_MSG));
            }
        }
        Value::Number(n) => {
            if n.as_i64().is_some_and(|n| n < 0) {
                errs.push(invalid_raw(path, n.to_string(), NEGATIVE));
            }
        }
        Value::Null => {}
        other => errs.push(invalid_raw(
            path,
            go_stringer(other),
            "must be an integer or percentage (e.g '5%')",
        )),
    }
}

/// `getIntOrPercentValue`: the number, or the percentage without its sign.
pub(crate) fn int_or_percent_value(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) if is_valid_percent(s) => {
            s.trim_end_matches('%').parse::<i64>().unwrap_or(i64::MAX)
        }
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// apps/v1

/// The restart-policy and deadline rules `ValidatePodTemplateSpecForReplicaSet` adds to a
/// template (only when the template was checked at all).
pub(crate) fn validate_replica_set_template_rules(spec: &Value, errs: &mut Vec<FieldError>) {
    let template = field(spec, "template");
    if template.is_null() || parse_selector(field(spec, "selector")).is_err() {
        return;
    }
    let pod_spec = field(template, "spec");
    let restart = str_at(pod_spec, "restartPolicy");
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &Value::from(restart),
            &["Always"],
        ));
    }
    if pod_spec
        .get("activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Pods.

pub(crate) fn validate_pod_template(template: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let meta = field(template, "metadata");
    // Kubernetes reports template labels under `template.labels`, without `metadata`.
    validate_labels(field(meta, "labels"), &join(path, "labels"), errs);
    validate_annotations(field(meta, "annotations"), &join(path, "annotations"), errs);
    let spec_path = join(path, "spec");
    let spec = field(template, "spec");
    validate_pod_spec(spec, &spec_path, errs);
    if !array_at(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            join(&spec_path, "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Container fields an ephemeral container may not set: it has no ports, probes, resources or
/// lifecycle of its own, and it is never restarted.
const EPHEMERAL_FORBIDDEN_FIELDS: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// Validates a write through `pods/NAME/ephemeralcontainers` (both pods on the storage version):
/// every ephemeral container must be a valid container without the fields reserved for regular
/// ones, named uniquely in the pod, targeting an existing container if it names one; existing
/// ephemeral containers may be neither removed nor changed.
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = field(new, "spec");
    let list_path = "spec.ephemeralContainers";
    let volume_names: BTreeSet<String> = array_at(spec, "volumes")
        .iter()
        .map(|v| str_at(v, "name").to_string())
        .collect();
    let regular: BTreeSet<&str> = array_at(spec, "containers")
        .iter()
        .chain(array_at(spec, "initContainers"))
        .map(|c| str_at(c, "name"))
        .collect();
    let mut names = regular.clone();
    for (i, container) in array_at(spec, "ephemeralContainers").iter().enumerate() {
        let c_path = index(list_path, i);
        validate_container(container, &c_path, &volume_names, &mut errs);
        let name = str_at(container, "name");
        if !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(
                join(&c_path, "name"),
                &Value::from(name),
            ));
        }
        for key in EPHEMERAL_FORBIDDEN_FIELDS {
            // Defaults leave empty values behind (`resources: {}`), which count as unset.
            let set = container.get(*key).is_some_and(|v| match v {
                Value::Null => false,
                Value::Object(map) => !map.is_empty(),
                Value::Array(list) => !list.is_empty(),
                Value::String(text) => !text.is_empty(),
                _ => true,
            });
            if set {
                errs.push(FieldError::forbidden(
                    join(&c_path, key),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (m, mount) in array_at(container, "volumeMounts").iter().enumerate() {
            if !str_at(mount, "subPath").is_empty() {
                errs.push(FieldError::forbidden(
                    join(&index(&join(&c_path, "volumeMounts"), m), "subPath"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        let target = str_at(container, "targetContainerName");
        if !target.is_empty() && !regular.contains(target) {
            errs.push(not_found(
                join(&c_path, "targetContainerName"),
                &Value::from(target),
            ));
        }
    }
    let new_list = array_at(spec, "ephemeralContainers");
    for existing in array_at(field(old, "spec"), "ephemeralContainers") {
        let name = str_at(existing, "name");
        match new_list.iter().find(|c| str_at(c, "name") == name) {
            None => errs.push(FieldError::forbidden(
                list_path,
                format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(now) if now != existing => errs.push(FieldError::forbidden(
                list_path,
                format!(
                    "existing ephemeral containers {name:?} may not be changed\n{}",
                    crate::go_diff::ephemeral_container_diff(existing, now)
                ),
            )),
            Some(_) => {}
        }
    }
    errs
}

const HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];

pub(crate) fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let volume_names = validate_volumes(array_at(spec, "volumes"), &join(path, "volumes"), errs);
    let containers = array_at(spec, "containers");
    let containers_path = join(path, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(containers_path.as_str(), ""));
    }
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let c_path = index(&containers_path, i);
        validate_container(container, &c_path, &volume_names, errs);
        let name = str_at(container, "name");
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(
                join(&c_path, "name"),
                &Value::from(name),
            ));
        }
        for probe in ["livenessProbe", "startupProbe"] {
            if let Some(threshold) = container
                .get(probe)
                .and_then(|p| int_at(p, "successThreshold"))
            {
                if threshold != 1 {
                    errs.push(FieldError::invalid(
                        join(&join(&c_path, probe), "successThreshold"),
                        &Value::from(threshold),
                        "must be 1",
                    ));
                }
            }
        }
    }
    let init_path = join(path, "initContainers");
    for (i, container) in array_at(spec, "initContainers").iter().enumerate() {
        let c_path = index(&init_path, i);
        validate_container(container, &c_path, &volume_names, errs);
        let name = str_at(container, "name");
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(
                join(&c_path, "name"),
                &Value::from(name),
            ));
        }
    }
    let restart = str_at(spec, "restartPolicy");
    match restart {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(join(path, "restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            join(path, "restartPolicy"),
            &Value::from(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    match str_at(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(join(path, "dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            join(path, "dnsPolicy"),
            &Value::from(other),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    validate_labels(
        field(spec, "nodeSelector"),
        &join(path, "nodeSelector"),
        errs,
    );
    for key in ["serviceAccountName", "nodeName"] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            for msg in dns1123_subdomain_errors(value) {
                errs.push(FieldError::invalid(
                    join(path, key),
                    &Value::from(value),
                    msg,
                ));
            }
        }
    }
    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds") {
        if !(1..=i64::from(i32::MAX)).contains(&deadline) {
            errs.push(FieldError::invalid(
                join(path, "activeDeadlineSeconds"),
                &Value::from(deadline),
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            for msg in dns1123_label_errors(value) {
                errs.push(FieldError::invalid(
                    join(path, key),
                    &Value::from(value),
                    msg,
                ));
            }
        }
    }
    validate_tolerations(
        array_at(spec, "tolerations"),
        &join(path, "tolerations"),
        errs,
    );
}

fn validate_volumes(volumes: &[Value], path: &str, errs: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let v_path = index(path, i);
        let name = str_at(volume, "name");
        if name.is_empty() {
            errs.push(FieldError::required(join(&v_path, "name"), ""));
        } else {
            for msg in dns1123_label_errors(name) {
                errs.push(FieldError::invalid(
                    join(&v_path, "name"),
                    &Value::from(name),
                    msg,
                ));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(
                    join(&v_path, "name"),
                    &Value::from(name),
                ));
            }
        }
    }
    names
}

fn validate_container(
    container: &Value,
    path: &str,
    volumes: &BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = str_at(container, "name");
    if name.is_empty() {
        errs.push(FieldError::required(join(path, "name"), ""));
    } else {
        for msg in dns1123_label_errors(name) {
            errs.push(FieldError::invalid(
                join(path, "name"),
                &Value::from(name),
                msg,
            ));
        }
    }
    let image = str_at(container, "image");
    if image.is_empty() {
        errs.push(FieldError::required(join(path, "image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            join(path, "image"),
            &Value::from(image),
            "must not have leading or trailing whitespace",
        ));
    }
    validate_container_ports(array_at(container, "ports"), &join(path, "ports"), errs);
    validate_env(array_at(container, "env"), &join(path, "env"), errs);
    validate_volume_mounts(
        array_at(container, "volumeMounts"),
        &join(path, "volumeMounts"),
        volumes,
        errs,
    );
    for probe_key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get(probe_key).filter(|p| !p.is_null()) {
            validate_probe(probe, &join(path, probe_key), errs);
        }
    }
    match str_at(container, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(join(path, "imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            join(path, "imagePullPolicy"),
            &Value::from(other),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    match str_at(container, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            join(path, "terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            join(path, "terminationMessagePolicy"),
            &Value::from(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
}

fn validate_container_ports(ports: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p_path = index(path, i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let msgs = port_name_errors(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(
                        join(&p_path, "name"),
                        &Value::from(name),
                        msg,
                    ));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(
                    join(&p_path, "name"),
                    &Value::from(name),
                ));
            }
        }
        match int_at(port, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(join(&p_path, "containerPort"), "")),
            n if !(1..=65535).contains(&n) => errs.push(FieldError::invalid(
                join(&p_path, "containerPort"),
                &Value::from(n),
                PORT_RANGE,
            )),
            _ => {}
        }
        let host_port = int_at(port, "hostPort").unwrap_or(0);
        if host_port != 0 && !(1..=65535).contains(&host_port) {
            errs.push(FieldError::invalid(
                join(&p_path, "hostPort"),
                &Value::from(host_port),
                PORT_RANGE,
            ));
        }
        validate_protocol(port, &p_path, errs);
    }
}

pub(crate) fn validate_protocol(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match str_at(port, "protocol") {
        "TCP" | "UDP" | "SCTP" => {}
        "" => errs.push(FieldError::required(join(path, "protocol"), "")),
        other => errs.push(FieldError::not_supported(
            join(path, "protocol"),
            &Value::from(other),
            &["SCTP", "TCP", "UDP"],
        )),
    }
}

fn validate_env(env: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, var) in env.iter().enumerate() {
        let e_path = index(path, i);
        let name = str_at(var, "name");
        if name.is_empty() {
            errs.push(FieldError::required(join(&e_path, "name"), ""));
        } else if !name.chars().all(|c| (' '..='~').contains(&c) && c != '=') {
            errs.push(FieldError::invalid(
                join(&e_path, "name"),
                &Value::from(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
    }
}

fn validate_volume_mounts(
    mounts: &[Value],
    path: &str,
    volumes: &BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let mut paths = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let m_path = index(path, i);
        let name = str_at(mount, "name");
        if name.is_empty() {
            errs.push(FieldError::required(join(&m_path, "name"), ""));
        } else if !volumes.contains(name) {
            errs.push(not_found(join(&m_path, "name"), &Value::from(name)));
        }
        let mount_path = str_at(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(join(&m_path, "mountPath"), ""));
        } else if !paths.insert(mount_path) {
            errs.push(FieldError::invalid(
                join(&m_path, "mountPath"),
                &Value::from(mount_path),
                "must be unique",
            ));
        }
    }
}

fn validate_probe(probe: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(probe.get(key), &join(path, key), errs);
    }
    let handlers: Vec<&str> = HANDLERS
        .iter()
        .copied()
        .filter(|h| probe.get(*h).is_some_and(|v| !v.is_null()))
        .collect();
    match handlers.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a handler type")),
        [_] => {}
        [_, rest @ ..] => {
            for extra in rest {
                errs.push(FieldError::forbidden(
                    join(path, extra),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
}

fn validate_tolerations(tolerations: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, toleration) in tolerations.iter().enumerate() {
        let t_path = index(path, i);
        let key = str_at(toleration, "key");
        if !key.is_empty() {
            for msg in qualified_name_errors(key) {
                errs.push(FieldError::invalid(
                    join(&t_path, "key"),
                    &Value::from(key),
                    msg,
                ));
            }
        }
        let operator = str_at(toleration, "operator");
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                join(&t_path, "operator"),
                &Value::from(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = str_at(toleration, "effect");
        if toleration
            .get("tolerationSeconds")
            .is_some_and(|v| !v.is_null())
            && effect != "NoExecute"
        {
            errs.push(FieldError::invalid(
                join(&t_path, "effect"),
                &Value::from(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = str_at(toleration, "value");
        match operator {
            "" | "Equal" => {
                for msg in label_value_errors(value) {
                    errs.push(FieldError::invalid(
                        join(&t_path, "operator"),
                        &Value::from(value),
                        msg,
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid_raw(
                        join(&t_path, "operator"),
                        go_struct_json(Some(toleration)),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                join(&t_path, "operator"),
                &Value::from(other),
                &["Equal", "Exists"],
            )),
        }
        if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errs.push(FieldError::not_supported(
                join(&t_path, "effect"),
                &Value::from(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// Pod updates may change only images, a shrinking `activeDeadlineSeconds`, added tolerations
/// and a negative grace period to 1; everything else in `spec` is fixed once created.
pub(crate) fn validate_pod_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let new_spec = field(new, "spec");
    let old_spec = field(old, "spec");
    validate_pod_spec(new_spec, "spec", errs);

    match (
        int_at(new_spec, "activeDeadlineSeconds"),
        int_at(old_spec, "activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &Value::from(n),
                "must be between 0 and 2147483647, inclusive",
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &Value::from(n),
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }

    let new_tolerations = array_at(new_spec, "tolerations");
    for old_toleration in array_at(old_spec, "tolerations") {
        let kept = new_tolerations.iter().any(|t| {
            let mut clone = old_toleration.clone();
            if let Some(map) = clone.as_object_mut() {
                match t.get("tolerationSeconds") {
                    Some(seconds) => {
                        map.insert("tolerationSeconds".to_string(), seconds.clone());
                    }
                    None => {
                        map.remove("tolerationSeconds");
                    }
                }
            }
            &clone == t
        });
        if !kept {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }

    // Munge the new spec back to the old wherever a change is allowed, then compare.
    let mut munged = new_spec.clone();
    if let (Some(m), Some(o)) = (munged.as_object_mut(), old_spec.as_object()) {
        for key in ["containers", "initContainers"] {
            if let (Some(new_list), Some(old_list)) = (
                m.get_mut(key).and_then(Value::as_array_mut),
                o.get(key).and_then(Value::as_array),
            ) {
                for (n, o) in new_list.iter_mut().zip(old_list) {
                    if let (Some(n), Some(image)) = (n.as_object_mut(), o.get("image")) {
                        n.insert("image".to_string(), image.clone());
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "tolerations"] {
            match o.get(key) {
                Some(v) => {
                    m.insert(key.to_string(), v.clone());
                }
                None => {
                    m.remove(key);
                }
            }
        }
        let old_grace = o
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0)
            && int_at(new_spec, "terminationGracePeriodSeconds") == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".to_string(),
                Value::from(old_grace.unwrap_or(1)),
            );
        }
    }
    if &munged != old_spec {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Services.

// ---------------------------------------------------------------------------------------------
// Endpoints and EndpointSlices. Kubernetes also rejects loopback and link-local addresses here;
// Skiff does not, because its own API server endpoint and its pods live on loopback addresses.

/// Kubernetes reports this as `Too many: N: must have at most M items`; without that error
/// type here it is an `Invalid value` with the same count and detail.
pub(crate) fn too_many(path: impl Into<String>, actual: usize, max: usize) -> FieldError {
    FieldError {
        error_type: FieldErrorType::Invalid,
        field: path.into(),
        bad_value: Some(actual.to_string()),
        detail: format!("must have at most {max} items"),
    }
}

pub(crate) fn validate_dns_label_field(value: &str, path: &str, errs: &mut Vec<FieldError>) {
    for msg in dns1123_label_errors(value) {
        errs.push(FieldError::invalid(path, &Value::from(value), msg));
    }
}

pub(crate) fn validate_endpoint_address(address: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let ip = str_at(address, "ip");
    if ip.parse::<std::net::IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            join(path, "ip"),
            &Value::from(ip),
            "must be a valid IP address",
        ));
    }
    let hostname = str_at(address, "hostname");
    if !hostname.is_empty() {
        validate_dns_label_field(hostname, &join(path, "hostname"), errs);
    }
    let node_name = str_at(address, "nodeName");
    if !node_name.is_empty() && !matches_dns_subdomain(node_name) {
        errs.push(FieldError::invalid(
            join(path, "nodeName"),
            &Value::from(node_name),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces, config maps and secrets.

pub(crate) fn validate_data_keys(obj: &Value, keys: &[&str], errs: &mut Vec<FieldError>) -> usize {
    let mut total = 0;
    for key in keys {
        if let Some(map) = obj.get(*key).and_then(Value::as_object) {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in entries {
                for msg in is_config_key(k) {
                    errs.push(FieldError::invalid(*key, &Value::from(k.as_str()), msg));
                }
                total += v.as_str().map_or(0, str::len);
            }
        }
    }
    total
}

/// What an `immutable: true` ConfigMap or Secret may no longer change.
pub(crate) fn validate_immutable_data(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    // `stringData` has been folded into `data` before validation runs.
    for key in ["data", "binaryData"] {
        let (n, o) = (new.get(key), old.get(key));
        let empty = |v: Option<&Value>| {
            v.is_none_or(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
        };
        if n != o && !(empty(n) && empty(o)) {
            errs.push(FieldError::forbidden(
                key,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// autoscaling/v2

pub(crate) fn has(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

// ---------------------------------------------------------------------------------------------
// apps.kruise.io/v1alpha1 CloneSet, as OpenKruise's validating webhook checks it.

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use crate::resources::find;
    use serde_json::json;

    fn resource(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        find(group, version, plural).expect("resource is registered")
    }

    /// Defaults then validates, as the server does on create.
    fn create_errors(group: &str, version: &str, plural: &str, mut obj: Value) -> Vec<FieldError> {
        let r = resource(group, version, plural);
        apply_defaults(r, &mut obj);
        validate_create(r, &obj)
    }

    fn summary(errs: &[FieldError]) -> Vec<(String, &'static str)> {
        errs.iter()
            .map(|e| (e.field.clone(), e.error_type.reason()))
            .collect()
    }

    fn valid_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "abc", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "abc", "image": "image"}]}
                }
            }
        })
    }

    fn set(obj: &mut Value, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        let target = obj
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("parent exists");
        target.insert(key.to_string(), value);
    }

    /// A defaulted pod with one container `app` and the given ephemeral containers.
    fn pod_with_ephemeral(ephemeral: Value) -> Value {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "ephemeralContainers": ephemeral}});
        apply_defaults(resource("", "v1", "pods"), &mut pod);
        pod
    }

    fn ephemeral_errors(new: Value, old: Value) -> Vec<(String, &'static str, String)> {
        validate_ephemeral_containers_update(&pod_with_ephemeral(new), &pod_with_ephemeral(old))
            .into_iter()
            .map(|e| (e.field, e.error_type.reason(), e.detail))
            .collect()
    }

    #[test]
    fn ephemeral_containers_may_be_added_targeting_a_container() {
        let debugger = json!({"name": "debugger", "image": "busybox", "stdin": true, "tty": true,
                              "targetContainerName": "app"});
        assert_eq!(ephemeral_errors(json!([debugger]), json!([])), vec![]);
        let second = json!({"name": "second", "image": "busybox"});
        assert_eq!(
            ephemeral_errors(json!([debugger, second]), json!([debugger])),
            vec![]
        );
    }

    #[test]
    fn existing_ephemeral_containers_may_be_neither_changed_nor_removed() {
        let debugger = json!({"name": "debugger", "image": "busybox"});
        // Each change, and the diff Kubernetes appends to its refusal.
        let cases = [
            (
                json!({"name": "debugger", "image": "alpine"}),
                "  core.EphemeralContainer{\n\
                 \x20 \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n\
                 \x20 \t\tName:    \"debugger\",\n\
                 - \t\tImage:   \"busybox\",\n\
                 + \t\tImage:   \"alpine\",\n\
                 \x20 \t\tCommand: nil,\n\
                 \x20 \t\tArgs:    nil,\n\
                 \x20 \t\t... // 21 identical fields\n\
                 \x20 \t},\n\
                 \x20 \tTargetContainerName: \"\",\n\
                 \x20 }\n",
            ),
            (
                json!({"name": "debugger", "image": "busybox", "args": ["sleep", "1"]}),
                "  core.EphemeralContainer{\n\
                 \x20 \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n\
                 \x20 \t\tName:       \"debugger\",\n\
                 \x20 \t\tImage:      \"busybox\",\n\
                 \x20 \t\tCommand:    nil,\n\
                 - \t\tArgs:       nil,\n\
                 + \t\tArgs:       []string{\"sleep\", \"1\"},\n\
                 \x20 \t\tWorkingDir: \"\",\n\
                 \x20 \t\tPorts:      nil,\n\
                 \x20 \t\t... // 19 identical fields\n\
                 \x20 \t},\n\
                 \x20 \tTargetContainerName: \"\",\n\
                 \x20 }\n",
            ),
            (
                json!({"name": "debugger", "image": "busybox", "targetContainerName": "app"}),
                "  core.EphemeralContainer{\n\
                 \x20 \tEphemeralContainerCommon: {Name: \"debugger\", Image: \"busybox\", \
                 TerminationMessagePath: \"/dev/termination-log\", TerminationMessagePolicy: \"File\", \
                 ImagePullPolicy: \"Always\"},\n\
                 - \tTargetContainerName:      \"\",\n\
                 + \tTargetContainerName:      \"app\",\n\
                 \x20 }\n",
            ),
        ];
        for (changed, diff) in cases {
            assert_eq!(
                ephemeral_errors(json!([changed]), json!([debugger])),
                vec![(
                    "spec.ephemeralContainers".to_string(),
                    "FieldValueForbidden",
                    format!(
                        "existing ephemeral containers \"debugger\" may not be changed\n{diff}"
                    )
                )],
                "{changed}"
            );
        }
        assert_eq!(
            ephemeral_errors(json!([]), json!([debugger])),
            vec![(
                "spec.ephemeralContainers".to_string(),
                "FieldValueForbidden",
                "existing ephemeral containers \"debugger\" may not be removed\n".to_string()
            )]
        );
    }

    #[test]
    fn ephemeral_containers_have_no_ports_probes_resources_or_lifecycle() {
        let bad = json!({"name": "debugger", "image": "busybox",
            "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "1"}},
            "readinessProbe": {"exec": {"command": ["true"]}},
            "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
            "targetContainerName": "missing"});
        let errs = ephemeral_errors(json!([bad]), json!([]));
        let forbidden = "cannot be set for an Ephemeral Container".to_string();
        for path in ["ports", "resources", "readinessProbe", "lifecycle"] {
            let expected = (
                format!("spec.ephemeralContainers[0].{path}"),
                "FieldValueForbidden",
                forbidden.clone(),
            );
            assert!(errs.contains(&expected), "{path} not forbidden: {errs:?}");
        }
        assert!(
            errs.contains(&(
                "spec.ephemeralContainers[0].targetContainerName".to_string(),
                "FieldValueNotFound",
                String::new()
            )),
            "a missing target is not reported: {errs:?}"
        );
    }

    #[test]
    fn ephemeral_container_names_are_unique_in_the_pod() {
        let clash = json!({"name": "app", "image": "busybox"});
        assert_eq!(
            ephemeral_errors(json!([clash]), json!([])),
            vec![(
                "spec.ephemeralContainers[0].name".to_string(),
                "FieldValueDuplicate",
                String::new()
            )]
        );
    }

    #[test]
    fn pods_cannot_be_created_with_ephemeral_containers() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]}});
        assert_eq!(
            summary(&create_errors("", "v1", "pods", pod)),
            vec![(
                "spec.ephemeralContainers".to_string(),
                "FieldValueForbidden"
            )]
        );
    }

    #[test]
    fn valid_objects_of_every_kind_pass() {
        let cases = [
            ("apps", "v1", "deployments", valid_deployment()),
            ("apps", "v1", "replicasets", valid_deployment()),
            (
                "",
                "v1",
                "pods",
                json!({"metadata": {"name": "web", "namespace": "default"},
                       "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}]}]}}),
            ),
            (
                "",
                "v1",
                "services",
                json!({"metadata": {"name": "web", "namespace": "default"},
                       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
            ),
            (
                "",
                "v1",
                "namespaces",
                json!({"metadata": {"name": "team-a"}}),
            ),
            (
                "",
                "v1",
                "configmaps",
                json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"app.properties": "x"}}),
            ),
            (
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                json!({"metadata": {"name": "web", "namespace": "default"},
                       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}}),
            ),
            (
                "apps.kruise.io",
                "v1alpha1",
                "clonesets",
                json!({"metadata": {"name": "web", "namespace": "default"},
                       "spec": {"selector": {"matchLabels": {"app": "web"}},
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
            ),
        ];
        for (group, version, plural, obj) in cases {
            let errs = create_errors(group, version, plural, obj);
            assert!(errs.is_empty(), "{plural}: {:?}", summary(&errs));
        }
    }

    /// Cases from Kubernetes' `TestValidateDeployment`, each mutating a valid deployment and
    /// naming the field, reason and message Kubernetes reports.
    #[test]
    fn deployment_error_cases_match_kubernetes() {
        type Case = (
            &'static str,
            &'static str,
            Value,
            &'static str,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            ("missing name", "/metadata/name", json!(""), "metadata.name", "FieldValueRequired", "Required value: name or generateName is required"),
            ("missing namespace", "/metadata/namespace", json!(""), "metadata.namespace", "FieldValueRequired", "Required value"),
            ("empty selector", "/spec/selector", json!({}), "spec.selector", "FieldValueInvalid",
             "Invalid value: {}: empty selector is invalid for deployment"),
            ("invalid selector key", "/spec/selector/matchLabels", json!({"NoUppercaseOrSpecialCharsLike=Equals": "b"}),
             "spec.selector.matchLabels", "FieldValueInvalid", "Invalid value: \"NoUppercaseOrSpecialCharsLike=Equals\": name part must consist of alphanumeric characters"),
            ("selector does not match", "/spec/template/metadata/labels", json!({"a": "c"}), "spec.template.metadata.labels", "FieldValueInvalid",
             "Invalid value: {\"a\":\"c\"}: `selector` does not match template `labels`"),
            ("negative replicas", "/spec/replicas", json!(-1), "spec.replicas", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
            ("restart policy", "/spec/template/spec/restartPolicy", json!("OnFailure"), "spec.template.spec.restartPolicy", "FieldValueNotSupported",
             "Unsupported value: \"OnFailure\": supported values: \"Always\""),
            ("active deadline", "/spec/template/spec/activeDeadlineSeconds", json!(30), "spec.template.spec.activeDeadlineSeconds", "FieldValueForbidden",
             "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"),
            ("no containers", "/spec/template/spec/containers", json!([]), "spec.template.spec.containers", "FieldValueRequired", "Required value"),
            ("unsupported strategy", "/spec/strategy", json!({"type": "randomType"}), "spec.strategy", "FieldValueNotSupported",
             "supported values: \"Recreate\", \"RollingUpdate\""),
            ("rolling update with recreate", "/spec/strategy", json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
             "spec.strategy.rollingUpdate", "FieldValueForbidden", "Forbidden: may not be specified when strategy `type` is 'Recreate'"),
            ("bad percent", "/spec/strategy", json!({"rollingUpdate": {"maxSurge": "20Percent"}}), "spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid",
             "Invalid value: 20Percent: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
            ("negative surge", "/spec/strategy", json!({"rollingUpdate": {"maxSurge": -1}}), "spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid",
             "Invalid value: -1: must be greater than or equal to 0"),
            ("both zero", "/spec/strategy", json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}), "spec.strategy.rollingUpdate.maxUnavailable",
             "FieldValueInvalid", "Invalid value: 0%: may not be 0 when `maxSurge` is 0"),
            ("over 100%", "/spec/strategy", json!({"rollingUpdate": {"maxUnavailable": "110%"}}), "spec.strategy.rollingUpdate.maxUnavailable",
             "FieldValueInvalid", "Invalid value: 110%: must not be greater than 100%"),
            ("negative revision history", "/spec/revisionHistoryLimit", json!(-2), "spec.revisionHistoryLimit", "FieldValueInvalid",
             "must be greater than or equal to 0"),
            ("deadline not above min ready", "/spec/progressDeadlineSeconds", json!(10), "spec.progressDeadlineSeconds", "FieldValueInvalid",
             "Invalid value: 10: must be greater than minReadySeconds"),
        ];
        for (name, pointer, value, want_field, want_reason, want_message) in cases {
            let mut obj = valid_deployment();
            set(&mut obj, pointer, value);
            if name == "deadline not above min ready" {
                set(&mut obj, "/spec/minReadySeconds", json!(10));
            }
            let errs = create_errors("apps", "v1", "deployments", obj);
            let hit = errs.iter().find(|e| e.field == want_field);
            let Some(hit) = hit else {
                panic!("{name}: no error at {want_field}; got {:?}", summary(&errs));
            };
            assert_eq!(hit.error_type.reason(), want_reason, "{name}");
            assert!(
                hit.message().contains(want_message),
                "{name}: {:?} does not contain {want_message:?}",
                hit.message()
            );
        }
    }

    #[test]
    fn nil_selector_reports_required_and_mismatch() {
        let mut obj = valid_deployment();
        obj["spec"].as_object_mut().map(|s| s.remove("selector"));
        let errs = create_errors("apps", "v1", "deployments", obj);
        assert_eq!(
            summary(&errs),
            vec![
                ("spec.selector".to_string(), "FieldValueRequired"),
                (
                    "spec.template.metadata.labels".to_string(),
                    "FieldValueInvalid"
                ),
            ]
        );
    }

    #[test]
    fn selector_expressions_are_matched_and_checked() {
        let mut obj = valid_deployment();
        set(
            &mut obj,
            "/spec/selector",
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b", "c"]}, {"key": "x", "operator": "DoesNotExist"}]}),
        );
        assert!(create_errors("apps", "v1", "deployments", obj.clone()).is_empty());
        set(
            &mut obj,
            "/spec/selector",
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        );
        let errs = create_errors("apps", "v1", "deployments", obj);
        assert_eq!(
            summary(&errs),
            vec![
                (
                    "spec.selector.matchExpressions[0].values".to_string(),
                    "FieldValueRequired"
                ),
                ("spec.selector".to_string(), "FieldValueInvalid"),
            ]
        );
        assert_eq!(errs[1].detail, "invalid label selector");
    }

    #[test]
    fn names_use_the_rule_of_their_kind() {
        let dep = create_errors("apps", "v1", "deployments", {
            let mut d = valid_deployment();
            set(&mut d, "/metadata/name", json!("Bad_Name"));
            d
        });
        assert_eq!(
            dep[0].full(),
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        let ns = create_errors("", "v1", "namespaces", json!({"metadata": {"name": "a.b"}}));
        assert_eq!(
            ns[0].full(),
            "metadata.name: Invalid value: \"a.b\": must not contain dots"
        );
        let ns = create_errors("", "v1", "namespaces", json!({"metadata": {"name": "-a"}}));
        assert!(ns[0]
            .detail
            .starts_with("a lowercase RFC 1123 label must consist"));
        let svc = create_errors(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "1web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}),
        );
        assert_eq!(
            svc[0].full(),
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        );
        let long = "a".repeat(254);
        let cm = create_errors(
            "",
            "v1",
            "configmaps",
            json!({"metadata": {"name": long, "namespace": "default"}}),
        );
        assert_eq!(cm[0].detail, "must be no more than 253 characters");
        let generated = create_errors(
            "",
            "v1",
            "configmaps",
            json!({"metadata": {"generateName": "cfg-", "name": "cfg-x7k2p", "namespace": "default"}}),
        );
        assert!(generated.is_empty());
        let cluster_scoped = create_errors(
            "",
            "v1",
            "namespaces",
            json!({"metadata": {"name": "a", "namespace": "b"}}),
        );
        assert_eq!(
            cluster_scoped[0].full(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }

    #[test]
    fn label_keys_and_values_report_kubernetes_messages() {
        let table = [
            (
                "a/b/c",
                "x",
                "a qualified name must consist of alphanumeric characters",
            ),
            ("/a", "x", "prefix part must be non-empty"),
            (
                "Example.com/a",
                "x",
                "prefix part a lowercase RFC 1123 subdomain",
            ),
            (
                "a",
                "-x",
                "a valid label must be an empty string or consist of alphanumeric characters",
            ),
        ];
        for (key, value, want) in table {
            let errs = create_errors(
                "",
                "v1",
                "configmaps",
                json!({"metadata": {"name": "c", "namespace": "d", "labels": {key: value}}}),
            );
            assert_eq!(errs.len(), 1, "{key}={value}: {:?}", summary(&errs));
            assert_eq!(errs[0].field, "metadata.labels");
            assert!(
                errs[0].detail.starts_with(want),
                "{key}={value}: {}",
                errs[0].detail
            );
        }
        let long_value = "v".repeat(64);
        let errs = create_errors(
            "",
            "v1",
            "configmaps",
            json!({"metadata": {"name": "c", "namespace": "d", "labels": {"k": long_value}}}),
        );
        assert_eq!(errs[0].detail, "must be no more than 63 characters");
    }

    #[test]
    fn pod_spec_errors() {
        let errs = create_errors(
            "",
            "v1",
            "pods",
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {
                "restartPolicy": "Sometimes",
                "volumes": [{"name": "data"}],
                "containers": [
                    {"name": "a", "image": "", "ports": [{"containerPort": 70000, "protocol": "HTTP"}]},
                    {"name": "a", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]},
                    {"name": "Bad", "image": "x", "env": [{"name": "A=B"}]}
                ]
            }}),
        );
        let want = vec![
            ("spec.containers[0].image".to_string(), "FieldValueRequired"),
            (
                "spec.containers[0].ports[0].containerPort".to_string(),
                "FieldValueInvalid",
            ),
            (
                "spec.containers[0].ports[0].protocol".to_string(),
                "FieldValueNotSupported",
            ),
            (
                "spec.containers[1].volumeMounts[0].name".to_string(),
                "FieldValueNotFound",
            ),
            ("spec.containers[1].name".to_string(), "FieldValueDuplicate"),
            ("spec.containers[2].name".to_string(), "FieldValueInvalid"),
            (
                "spec.containers[2].env[0].name".to_string(),
                "FieldValueInvalid",
            ),
            ("spec.restartPolicy".to_string(), "FieldValueNotSupported"),
        ];
        assert_eq!(summary(&errs), want);
        assert_eq!(
            errs[1].full(),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            errs[7].full(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn pod_update_allows_only_image_deadline_and_toleration_changes() {
        let r = resource("", "v1", "pods");
        let mut old = json!({"metadata": {"name": "p", "namespace": "d", "uid": "u1"},
                             "spec": {"containers": [{"name": "a", "image": "nginx:1"}]}});
        apply_defaults(r, &mut old);

        let mut image = old.clone();
        set(&mut image, "/spec/containers/0/image", json!("nginx:2"));
        set(&mut image, "/spec/activeDeadlineSeconds", json!(60));
        set(&mut image, "/metadata/labels", json!({"x": "y"}));
        assert!(validate_update(r, &image, &old).is_empty());

        let mut added = old.clone();
        if let Some(t) = added["spec"]["tolerations"].as_array_mut() {
            t.push(json!({"key": "k", "operator": "Exists"}));
        }
        assert!(validate_update(r, &added, &old).is_empty());

        let mut changed = old.clone();
        set(&mut changed, "/spec/restartPolicy", json!("Never"));
        let errs = validate_update(r, &changed, &old);
        assert_eq!(
            summary(&errs),
            vec![("spec".to_string(), "FieldValueForbidden")]
        );
        assert!(errs[0].detail.starts_with(
            "pod updates may not change fields other than `spec.containers[*].image`"
        ));

        let mut removed = old.clone();
        set(&mut removed, "/spec/tolerations", json!([]));
        let errs = validate_update(r, &removed, &old);
        assert_eq!(errs[0].full(), "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds");

        let mut longer = image.clone();
        set(&mut longer, "/spec/activeDeadlineSeconds", json!(120));
        let errs = validate_update(r, &longer, &image);
        assert_eq!(errs[0].full(), "spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal to previous value");
    }

    #[test]
    fn metadata_and_selector_are_immutable_on_update() {
        let r = resource("apps", "v1", "deployments");
        let mut old = valid_deployment();
        set(&mut old, "/metadata/uid", json!("u1"));
        apply_defaults(r, &mut old);

        let mut new = old.clone();
        set(&mut new, "/spec/replicas", json!(5));
        new["metadata"].as_object_mut().map(|m| m.remove("uid"));
        assert!(
            validate_update(r, &new, &old).is_empty(),
            "scaling is allowed"
        );

        let mut new = old.clone();
        set(&mut new, "/metadata/name", json!("other"));
        set(&mut new, "/metadata/uid", json!("u2"));
        set(
            &mut new,
            "/spec/selector",
            json!({"matchLabels": {"a": "b", "c": "d"}}),
        );
        set(
            &mut new,
            "/spec/template/metadata/labels",
            json!({"a": "b", "c": "d"}),
        );
        let errs = validate_update(r, &new, &old);
        assert_eq!(
            summary(&errs),
            vec![
                ("metadata.name".to_string(), "FieldValueInvalid"),
                ("metadata.uid".to_string(), "FieldValueInvalid"),
                ("spec.selector".to_string(), "FieldValueInvalid"),
            ]
        );
        assert_eq!(
            errs[2].full(),
            "spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\",\"c\":\"d\"}}: field is immutable"
        );
        let rs = resource("apps", "v1", "replicasets");
        assert_eq!(summary(&validate_update(rs, &new, &old)).len(), 3);
    }

    #[test]
    fn service_errors() {
        let cases = [
            (json!({}), "spec.ports", "Required value"),
            (json!({"type": "Fancy", "ports": [{"port": 80}]}), "spec.type",
             "Unsupported value: \"Fancy\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            (json!({"ports": [{"port": 0}]}), "spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
            (json!({"ports": [{"port": 70000}]}), "spec.ports[0].port", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
            (json!({"ports": [{"name": "a", "port": 80}, {"port": 81}]}), "spec.ports[1].name", "Required value"),
            (json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}), "spec.ports[1]", "Duplicate value: core.ServicePort{"),
            (json!({"type": "ExternalName"}), "spec.externalName", "Required value"),
            (json!({"ports": [{"port": 80, "nodePort": 30000}]}), "spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'"),
        ];
        for (spec, want_field, want_message) in cases {
            let errs = create_errors(
                "",
                "v1",
                "services",
                json!({"metadata": {"name": "web", "namespace": "d"}, "spec": spec}),
            );
            let hit = errs.iter().find(|e| e.field == want_field);
            let Some(hit) = hit else {
                panic!("no error at {want_field}: {:?}", summary(&errs));
            };
            assert!(hit.message().contains(want_message), "{}", hit.full());
        }
        let headless = create_errors(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"clusterIP": "None"}}),
        );
        assert!(headless.is_empty(), "{:?}", summary(&headless));
    }

    #[test]
    fn endpoints_and_endpoint_slice_errors() {
        let endpoints = [
            (
                json!([{"ports": [{"port": 80, "protocol": "TCP"}]}]),
                "subsets[0]",
                "Required value: must specify `addresses` or `notReadyAddresses`",
            ),
            (
                json!([{"addresses": [{"ip": "198.18.0.300"}]}]),
                "subsets[0].addresses[0].ip",
                "Invalid value: \"198.18.0.300\": must be a valid IP address",
            ),
            (
                json!([{"notReadyAddresses": [{"ip": "x"}]}]),
                "subsets[0].notReadyAddresses[0].ip",
                "must be a valid IP address",
            ),
            (
                json!([{"addresses": [{"ip": "198.18.0.1"}],
                     "ports": [{"name": "a", "port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}]),
                "subsets[0].ports[1].name",
                "Required value",
            ),
            (
                json!([{"addresses": [{"ip": "198.18.0.1"}], "ports": [{"port": 0, "protocol": "TCP"}]}]),
                "subsets[0].ports[0].port",
                "must be between 1 and 65535, inclusive",
            ),
            (
                json!([{"addresses": [{"ip": "198.18.0.1"}], "ports": [{"port": 80, "protocol": "HTTP"}]}]),
                "subsets[0].ports[0].protocol",
                "Unsupported value: \"HTTP\"",
            ),
        ];
        for (subsets, want_field, want_message) in endpoints {
            let errs = create_errors(
                "",
                "v1",
                "endpoints",
                json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": subsets}),
            );
            let Some(hit) = errs.iter().find(|e| e.field == want_field) else {
                panic!("no error at {want_field}: {:?}", summary(&errs));
            };
            assert!(hit.message().contains(want_message), "{}", hit.full());
        }
        let loopback = create_errors(
            "",
            "v1",
            "endpoints",
            json!({"metadata": {"name": "kubernetes", "namespace": "default"},
                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}),
        );
        assert!(loopback.is_empty(), "{:?}", summary(&loopback));

        let slices = [
            (json!({"endpoints": []}), "addressType", "Required value"),
            (
                json!({"addressType": "IP", "endpoints": []}),
                "addressType",
                "Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            ),
            (
                json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]}),
                "endpoints[0].addresses",
                "Required value: must contain at least 1 address",
            ),
            (
                json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]}),
                "endpoints[0].addresses[0]",
                "Invalid value: \"fd00::1\": must be a valid IPv4 address",
            ),
            (
                json!({"addressType": "IPv4", "endpoints": [],
                    "ports": [{"name": "a", "port": 80, "protocol": "TCP"}, {"name": "a", "port": 81, "protocol": "TCP"}]}),
                "ports[1].name",
                "Duplicate value: \"a\"",
            ),
            (
                json!({"addressType": "IPv4", "endpoints": [], "ports": [{"name": "A", "port": 80, "protocol": "TCP"}]}),
                "ports[0].name",
                "Invalid value: \"A\"",
            ),
        ];
        for (body, want_field, want_message) in slices {
            let mut obj = json!({"metadata": {"name": "web-abcde", "namespace": "d"}});
            if let (Some(o), Some(b)) = (obj.as_object_mut(), body.as_object()) {
                o.extend(b.clone());
            }
            let errs = create_errors("discovery.k8s.io", "v1", "endpointslices", obj);
            let Some(hit) = errs.iter().find(|e| e.field == want_field) else {
                panic!("no error at {want_field}: {:?}", summary(&errs));
            };
            assert!(hit.message().contains(want_message), "{}", hit.full());
        }
        let valid = create_errors(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            json!({"metadata": {"name": "web-abcde", "namespace": "d"}, "addressType": "IPv4",
                   "endpoints": [{"addresses": ["127.128.0.5"], "conditions": {"ready": true},
                                  "nodeName": "node-1"}],
                   "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}),
        );
        assert!(valid.is_empty(), "{:?}", summary(&valid));
    }

    #[test]
    fn service_cluster_ip_may_not_change() {
        let r = resource("", "v1", "services");
        let old = json!({"metadata": {"name": "web", "namespace": "d"},
                         "spec": {"clusterIP": "198.18.0.1", "clusterIPs": ["198.18.0.1"], "ports": [{"port": 80, "protocol": "TCP"}],
                                  "type": "ClusterIP", "sessionAffinity": "None"}});
        let mut new = old.clone();
        set(&mut new, "/spec/clusterIP", json!("198.18.0.2"));
        set(&mut new, "/spec/clusterIPs", json!(["198.18.0.2"]));
        let errs = validate_update(r, &new, &old);
        assert_eq!(
            errs[0].full(),
            "spec.clusterIPs[0]: Invalid value: [\"198.18.0.2\"]: may not change once set"
        );
    }

    #[test]
    fn hpa_errors() {
        let base = json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5
        }});
        type Case = (&'static str, Value, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (
                "/spec/minReplicas",
                json!(0),
                "spec.minReplicas",
                "Invalid value: 0: must be greater than or equal to 1",
            ),
            (
                "/spec/maxReplicas",
                json!(1),
                "spec.maxReplicas",
                "Invalid value: 1: must be greater than or equal to `minReplicas`",
            ),
            (
                "/spec/maxReplicas",
                json!(0),
                "spec.maxReplicas",
                "Invalid value: 0: must be greater than 0",
            ),
            (
                "/spec/scaleTargetRef",
                json!({"name": "web"}),
                "spec.scaleTargetRef.kind",
                "Required value",
            ),
            (
                "/spec/scaleTargetRef",
                json!({"kind": "Deployment", "name": "a/b"}),
                "spec.scaleTargetRef.name",
                "Invalid value: \"a/b\": may not contain '/'",
            ),
            (
                "/spec/metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]),
                "spec.metrics[0].resource.target.averageUtilization",
                "Invalid value: 0: must be greater than 0",
            ),
            (
                "/spec/metrics",
                json!([{"type": "Pods"}]),
                "spec.metrics[0].pods",
                "Required value: must populate information for the given metric source",
            ),
            (
                "/spec/metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue"}}}]),
                "spec.metrics[0].resource.target.averageUtilization",
                "Required value: must set either a target raw value or a target utilization",
            ),
            (
                "/spec/behavior",
                json!({"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}),
                "spec.behavior.scaleUp.policies[0].value",
                "Invalid value: 0: must be greater than zero",
            ),
            (
                "/spec/behavior",
                json!({"scaleDown": {"stabilizationWindowSeconds": 4000}}),
                "spec.behavior.scaleDown.stabilizationWindowSeconds",
                "Invalid value: 4000: must be less than or equal to 3600",
            ),
        ];
        for (pointer, value, want_field, want_message) in cases {
            let mut obj = base.clone();
            set(&mut obj, pointer, value);
            let errs = create_errors("autoscaling", "v2", "horizontalpodautoscalers", obj);
            let hit = errs.iter().find(|e| e.field == want_field);
            let Some(hit) = hit else {
                panic!("no error at {want_field}: {:?}", summary(&errs));
            };
            assert_eq!(hit.message(), want_message);
        }
    }

    fn valid_clone_set() -> Value {
        json!({"metadata": {"name": "cs", "namespace": "d"}, "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}
        }})
    }

    #[test]
    fn clone_set_errors() {
        type Case = (&'static str, Value, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            ("/spec/replicas", json!(-1), "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
            ("/spec/selector", json!({}), "spec.selector", "empty selector is invalid for cloneset"),
            ("/spec/template/metadata/labels", json!({"app": "db"}), "spec.template.metadata.labels", "`selector` does not match template `labels`"),
            ("/spec/updateStrategy", json!({"type": "Rolling"}), "spec.updateStrategy.type",
             "Invalid value: \"Rolling\": must be 'ReCreate', InPlaceIfPossible or 'InPlaceOnly'"),
            ("/spec/updateStrategy", json!({"partition": "50"}), "spec.updateStrategy.partition",
             "Invalid value: \"50\": failed GetScaledValueFromIntOrPercent for partition: invalid type: string is not a percentage"),
            ("/spec/updateStrategy", json!({"partition": -1}), "spec.updateStrategy.partition", "Invalid value: -1: must be greater than or equal to 0"),
            ("/spec/updateStrategy", json!({"maxUnavailable": 0, "maxSurge": "0%"}), "spec.updateStrategy.maxUnavailable",
             "Invalid value: 0: maxUnavailable and maxSurge should not both be less than 1"),
            ("/spec/updateStrategy", json!({"type": "InPlaceOnly", "maxSurge": 1}), "spec.updateStrategy.maxSurge",
             "Invalid value: \"1\": can not use maxSurge with strategy type InPlaceOnly"),
            ("/spec/template/spec/restartPolicy", json!("Never"), "spec.template.spec.restartPolicy", "Unsupported value: \"Never\": supported values: \"Always\""),
            ("/spec/scaleStrategy", json!({"podsToDelete": ["a", "b", "a"]}), "spec.scaleStrategy.podsToDelete",
             "Invalid value: []string{\"a\", \"b\", \"a\"}: duplicated items [a]"),
        ];
        for (pointer, value, want_field, want_message) in cases {
            let mut obj = valid_clone_set();
            set(&mut obj, pointer, value);
            let errs = create_errors("apps.kruise.io", "v1alpha1", "clonesets", obj);
            let hit = errs.iter().find(|e| e.field == want_field);
            let Some(hit) = hit else {
                panic!("no error at {want_field}: {:?}", summary(&errs));
            };
            assert!(hit.message().contains(want_message), "{}", hit.full());
        }
    }

    #[test]
    fn clone_set_update_rules() {
        let r = resource("apps.kruise.io", "v1alpha1", "clonesets");
        let mut old = valid_clone_set();
        apply_defaults(r, &mut old);

        let mut scaled = old.clone();
        set(&mut scaled, "/spec/replicas", json!(10));
        set(
            &mut scaled,
            "/spec/template/spec/containers/0/image",
            json!("nginx:2"),
        );
        assert!(validate_update(r, &scaled, &old).is_empty());

        let mut reselected = old.clone();
        set(
            &mut reselected,
            "/spec/selector",
            json!({"matchLabels": {"app": "web", "v": "2"}}),
        );
        set(
            &mut reselected,
            "/spec/template/metadata/labels",
            json!({"app": "web", "v": "2"}),
        );
        let errs = validate_update(r, &reselected, &old);
        assert_eq!(
            summary(&errs),
            vec![("spec".to_string(), "FieldValueForbidden")]
        );

        let mut in_place = old.clone();
        set(
            &mut in_place,
            "/spec/updateStrategy/type",
            json!("InPlaceOnly"),
        );
        set(
            &mut in_place,
            "/spec/template/spec/containers/0/image",
            json!("nginx:2"),
        );
        assert!(validate_update(r, &in_place, &old).is_empty());
        set(
            &mut in_place,
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("Always"),
        );
        let errs = validate_update(r, &in_place, &old);
        assert_eq!(
            errs[0].full(),
            "spec: Forbidden: only allowed to update images in spec for InPlaceOnly, but found replace /containers/0/imagePullPolicy"
        );
    }

    #[test]
    fn config_maps_and_secrets() {
        let errs = create_errors(
            "",
            "v1",
            "configmaps",
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "x", "k": "1"}, "binaryData": {"k": "AA=="}}),
        );
        assert_eq!(
            summary(&errs),
            vec![
                ("data".to_string(), "FieldValueInvalid"),
                ("data".to_string(), "FieldValueInvalid"),
            ]
        );
        assert!(errs[0]
            .detail
            .starts_with("a valid config key must consist of alphanumeric characters"));
        assert_eq!(errs[1].detail, "duplicate of key present in binaryData");

        let tls = create_errors(
            "",
            "v1",
            "secrets",
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "AA=="}}),
        );
        assert_eq!(
            summary(&tls),
            vec![("data[tls.key]".to_string(), "FieldValueRequired")]
        );

        let r = resource("", "v1", "secrets");
        let old = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque", "immutable": true, "data": {"a": "AA=="}});
        let mut new = old.clone();
        set(&mut new, "/data", json!({"a": "AQ=="}));
        set(&mut new, "/type", json!("kubernetes.io/basic-auth"));
        let errs = validate_update(r, &new, &old);
        assert_eq!(
            summary(&errs),
            vec![
                ("type".to_string(), "FieldValueInvalid"),
                ("data".to_string(), "FieldValueForbidden"),
                ("data[username]".to_string(), "FieldValueRequired"),
            ]
        );
    }
}
