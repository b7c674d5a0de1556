//! Structural OpenAPI v3 schemas of custom resources: validation with Kubernetes' messages,
//! defaulting and pruning, as apiextensions-apiserver applies them to every custom object.
//!
//! A schema is kept as the `JSONSchemaProps` JSON the definition holds; each function walks it
//! beside the object. Paths are rendered as Kubernetes renders field paths (`spec.items[0].name`).

use serde_json::{Map, Value};

use crate::errors::{FieldError, FieldErrorType};

/// The JSON type name of a value as the OpenAPI validator reports it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether `value` is of the schema's `type` (an integer counts as a number).
fn has_type(schema: &Value, value: &Value) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        return matches!(type_name(value), "integer" | "string");
    }
    match schema.get("type").and_then(Value::as_str) {
        None | Some("") => true,
        Some("number") => value.is_number(),
        Some(t) => type_name(value) == t,
    }
}

/// Validates `value` against `schema`, pushing every problem found, as the custom resource
/// validator words them. `path` is where `value` sits (empty at the root).
pub fn validate(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if value.is_null() {
        if flag(schema, "nullable") || schema.get("type").is_none() {
            return;
        }
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
        errs.push(type_error(path, expected, value));
        return;
    }
    if !has_type(schema, value) {
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
        errs.push(type_error(path, expected, value));
        return;
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            let rendered: Vec<String> = allowed.iter().map(enum_text).collect();
            errs.push(FieldError {
                error_type: FieldErrorType::NotSupported,
                field: path.to_string(),
                bad_value: Some(crate::errors::go_value(value)),
                detail: format!("supported values: {}", rendered.join(", ")),
            });
        }
    }
    match value {
        Value::Number(n) => validate_number(schema, value, n, path, errs),
        Value::String(s) => validate_string(schema, value, s, path, errs),
        Value::Array(items) => validate_array(schema, value, items, path, errs),
        Value::Object(map) => validate_object(schema, map, path, errs),
        _ => {}
    }
}

fn enum_text(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => crate::errors::go_json(other),
    }
}

fn type_error(path: &str, expected: &str, value: &Value) -> FieldError {
    let found = type_name(value);
    FieldError::invalid(
        path,
        &Value::String(found.to_string()),
        format!("{path} in body must be of type {expected}: {found:?}"),
    )
}

fn validate_number(
    schema: &Value,
    value: &Value,
    n: &serde_json::Number,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(x) = n.as_f64() else { return };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let text = |key: &str| {
        schema
            .get(key)
            .map(crate::errors::go_json)
            .unwrap_or_default()
    };
    if let Some(max) = bound("maximum") {
        if flag(schema, "exclusiveMaximum") && x >= max {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("{path} in body should be less than {}", text("maximum")),
            ));
        } else if x > max {
            errs.push(FieldError::invalid(
                path,
                value,
                format!(
                    "{path} in body should be less than or equal to {}",
                    text("maximum")
                ),
            ));
        }
    }
    if let Some(min) = bound("minimum") {
        if flag(schema, "exclusiveMinimum") && x <= min {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("{path} in body should be greater than {}", text("minimum")),
            ));
        } else if x < min {
            errs.push(FieldError::invalid(
                path,
                value,
                format!(
                    "{path} in body should be greater than or equal to {}",
                    text("minimum")
                ),
            ));
        }
    }
    if let Some(factor) = bound("multipleOf").filter(|f| *f > 0.0) {
        if (x / factor).fract() != 0.0 {
            errs.push(FieldError::invalid(
                path,
                value,
                format!(
                    "{path} in body should be a multiple of {}",
                    text("multipleOf")
                ),
            ));
        }
    }
}

fn validate_string(schema: &Value, value: &Value, s: &str, path: &str, errs: &mut Vec<FieldError>) {
    let length = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if length > max {
            errs.push(FieldError {
                error_type: FieldErrorType::TooLong,
                field: path.to_string(),
                bad_value: None,
                detail: format!("may not be more than {max} bytes"),
            });
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if length < min {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // A pattern that does not compile was refused with its definition.
        if let Ok(re) = regex::Regex::new(pattern) {
            if !re.is_match(s) {
                errs.push(FieldError::invalid(
                    path,
                    value,
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        if !format_matches(format, s) {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("{path} in body must be of type {format}: {s:?}"),
            ));
        }
    }
}

/// The string formats checked; others are accepted as any string, as Kubernetes ignores
/// formats it does not know.
fn format_matches(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uuid" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
                && parts
                    .iter()
                    .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        _ => true,
    }
}

fn validate_array(
    schema: &Value,
    value: &Value,
    items: &[Value],
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if items.len() as u64 > max {
            errs.push(FieldError {
                error_type: FieldErrorType::Invalid,
                field: path.to_string(),
                bad_value: None,
                detail: format!("Too many: {}: must have at most {max} items", items.len()),
            });
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("{path} in body should have at least {min} items"),
            ));
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &format!("{path}[{i}]"), errs);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), item));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| -> Map<String, Value> {
                keys.iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect()
            };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i].iter().any(|other| key_of(other) == key) {
                    errs.push(FieldError::duplicate(
                        format!("{path}[{i}]"),
                        &Value::Object(key),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn validate_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errs.push(FieldError::required(child_path(path, name), ""));
            }
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if map.len() as u64 > max {
            errs.push(FieldError {
                error_type: FieldErrorType::Invalid,
                field: path.to_string(),
                bad_value: None,
                detail: format!("Too many: {}: must have at most {max} items", map.len()),
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, field) in map {
        // The metadata of the root and of embedded resources is ObjectMeta, checked apart.
        if path.is_empty() && matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        let sub = child_path(path, key);
        match properties.and_then(|p| p.get(key)) {
            Some(field_schema) => validate(field_schema, field, &sub, errs),
            None => {
                if let Some(additional) = additional {
                    validate(additional, field, &sub, errs);
                }
            }
        }
    }
    if flag(schema, "x-kubernetes-embedded-resource") {
        for field in ["apiVersion", "kind"] {
            if map
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(
                    child_path(path, field),
                    "must not be empty",
                ));
            }
        }
    }
}

/// Fills in the schema's `default`s where the object has no value (or `null` where null is not
/// allowed), outermost first, then descends into what is there.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, field_schema) in properties {
                    let Some(default) = field_schema.get("default") else {
                        continue;
                    };
                    let missing = match map.get(key) {
                        None => true,
                        Some(Value::Null) => !flag(field_schema, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(key.clone(), default.clone());
                    }
                }
                for (key, field_schema) in properties {
                    if let Some(field) = map.get_mut(key) {
                        apply_defaults(field_schema, field);
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for field in map.values_mut() {
                    apply_defaults(additional, field);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Removes every field the schema does not specify, except under
/// `x-kubernetes-preserve-unknown-fields`, and returns their paths (for warnings). At the root
/// and in embedded resources `apiVersion`, `kind` and `metadata` are kept.
pub fn prune(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    let root = path.is_empty();
    match value {
        Value::Object(map) => {
            let keep_type_meta = root || flag(schema, "x-kubernetes-embedded-resource");
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields")
                || schema.get("additionalProperties") == Some(&Value::Bool(true));
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if keep_type_meta && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = child_path(path, &key);
                let field_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match field_schema {
                    Some(field_schema) => {
                        if let Some(field) = map.get_mut(&key) {
                            prune(field_schema, field, &sub, pruned);
                        }
                    }
                    None if preserve => {}
                    None => {
                        map.remove(&key);
                        pruned.push(sub);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Checks that a definition's schema is structural: every specified field has a `type` (or is
/// an int-or-string, or keeps unknown fields), and the root is an object. Errors are on paths
/// under `path` (`spec.versions[0].schema.openAPIV3Schema`).
pub fn validate_structural(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match schema.get("type").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty at the root",
        )),
        Some("object") => {}
        Some(other) => errs.push(FieldError::invalid(
            format!("{path}.type"),
            &Value::String(other.to_string()),
            "must be object at the root",
        )),
    }
    structural_children(schema, path, errs);
}

fn structural_children(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, field) in properties {
            let sub = format!("{path}.properties[{key}]");
            structural_node(
                field,
                &sub,
                "must not be empty for specified object fields",
                errs,
            );
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let sub = format!("{path}.items");
        structural_node(
            items,
            &sub,
            "must not be empty for specified array items",
            errs,
        );
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let sub = format!("{path}.additionalProperties");
        structural_node(
            additional,
            &sub,
            "must not be empty for specified object fields",
            errs,
        );
    }
    if let Some(Value::Array(rules)) = schema.get("x-kubernetes-validations") {
        for (i, rule) in rules.iter().enumerate() {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
            let rule_path = format!("{path}.x-kubernetes-validations[{i}].rule");
            if text.is_empty() {
                errs.push(FieldError::required(rule_path, ""));
            } else if let Err(e) = super::rules::check_bounds(text) {
                errs.push(FieldError::invalid(
                    rule_path,
                    &Value::String(text.to_string()),
                    e,
                ));
            } else if let Err(e) = compile_on_rule_stack(text) {
                errs.push(FieldError::invalid(
                    rule_path,
                    &Value::String(text.to_string()),
                    format!("compilation failed: {e}"),
                ));
            }
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        if let Err(e) = regex::Regex::new(pattern) {
            errs.push(FieldError::invalid(
                format!("{path}.pattern"),
                &Value::String(pattern.to_string()),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
}

/// Compiles a rule on a thread with the stack rules are evaluated on.
fn compile_on_rule_stack(rule: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    let schema = serde_json::json!({"x-kubernetes-validations": [{"rule": rule}]});
    // Evaluating against null compiles nothing; an empty object (old and new, so transition
    // rules compile too) makes the rule compile.
    let empty = serde_json::json!({});
    super::rules::validate_object(&schema, &empty, Some(&empty), &mut errs);
    match errs.first() {
        Some(e) if e.detail.starts_with("compilation failed: ") => Err(e
            .detail
            .trim_start_matches("compilation failed: ")
            .to_string()),
        Some(e) if e.detail == "the validation rules could not be evaluated" => {
            Err(e.detail.clone())
        }
        _ => Ok(()),
    }
}

fn structural_node(schema: &Value, path: &str, missing: &str, errs: &mut Vec<FieldError>) {
    let typed = schema
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let exempt = flag(schema, "x-kubernetes-int-or-string")
        || flag(schema, "x-kubernetes-preserve-unknown-fields");
    if !typed && !exempt {
        errs.push(FieldError::required(format!("{path}.type"), missing));
    }
    structural_children(schema, path, errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: &Value, value: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(schema, value, "", &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    fn spec_schema(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    #[test]
    fn validation_table_words_each_failure_as_kubernetes() {
        let rows: Vec<(Value, Value, Vec<&str>)> = vec![
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer","maximum":3}}}),
                json!({"replicas": 5}),
                vec!["spec.replicas: Invalid value: 5: spec.replicas in body should be less than or equal to 3"],
            ),
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer","minimum":1}}}),
                json!({"replicas": 0}),
                vec!["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"],
            ),
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer","maximum":3,"exclusiveMaximum":true}}}),
                json!({"replicas": 3}),
                vec!["spec.replicas: Invalid value: 3: spec.replicas in body should be less than 3"],
            ),
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer"}}}),
                json!({"replicas": "three"}),
                vec!["spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""],
            ),
            (
                json!({"type":"object","properties":{"color":{"type":"string","enum":["red","blue"]}}}),
                json!({"color": "pink"}),
                vec!["spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\""],
            ),
            (
                json!({"type":"object","required":["size"],"properties":{"size":{"type":"string"}}}),
                json!({}),
                vec!["spec.size: Required value"],
            ),
            (
                json!({"type":"object","properties":{"name":{"type":"string","pattern":"^[a-z]+$"}}}),
                json!({"name": "ABC"}),
                vec!["spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"],
            ),
            (
                json!({"type":"object","properties":{"name":{"type":"string","minLength":3}}}),
                json!({"name": "ab"}),
                vec!["spec.name: Invalid value: \"ab\": spec.name in body should be at least 3 chars long"],
            ),
            (
                json!({"type":"object","properties":{"name":{"type":"string","maxLength":2}}}),
                json!({"name": "abc"}),
                vec!["spec.name: Too long: may not be more than 2 bytes"],
            ),
            (
                json!({"type":"object","properties":{"tags":{"type":"array","minItems":1,"items":{"type":"string"}}}}),
                json!({"tags": []}),
                vec!["spec.tags: Invalid value: []: spec.tags in body should have at least 1 items"],
            ),
            (
                json!({"type":"object","properties":{"tags":{"type":"array","items":{"type":"string"}}}}),
                json!({"tags": ["a", 1]}),
                vec!["spec.tags[1]: Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\""],
            ),
            (
                json!({"type":"object","properties":{"tags":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}}}}),
                json!({"tags": ["a", "a"]}),
                vec!["spec.tags[1]: Duplicate value: \"a\""],
            ),
            (
                json!({"type":"object","properties":{"ports":{"type":"array","x-kubernetes-list-type":"map",
                    "x-kubernetes-list-map-keys":["name"],"items":{"type":"object","properties":{"name":{"type":"string"}}}}}}),
                json!({"ports": [{"name": "a"}, {"name": "a"}]}),
                vec!["spec.ports[1]: Duplicate value: {\"name\":\"a\"}"],
            ),
            (
                json!({"type":"object","properties":{"port":{"x-kubernetes-int-or-string":true}}}),
                json!({"port": true}),
                vec!["spec.port: Invalid value: \"boolean\": spec.port in body must be of type : \"boolean\""],
            ),
            (
                json!({"type":"object","properties":{"note":{"type":"string"}}}),
                json!({"note": null}),
                vec!["spec.note: Invalid value: \"null\": spec.note in body must be of type string: \"null\""],
            ),
            (
                json!({"type":"object","properties":{"at":{"type":"string","format":"date-time"}}}),
                json!({"at": "yesterday"}),
                vec!["spec.at: Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\""],
            ),
        ];
        assert_eq!(rows.len(), 16);
        for (spec, value, expected) in rows {
            let got = messages(&spec_schema(spec.clone()), &json!({"spec": value}));
            assert_eq!(got, expected, "schema {spec}");
        }
    }

    #[test]
    fn valid_values_table_passes() {
        let rows: Vec<(Value, Value)> = vec![
            (json!({"type":"integer","maximum":3}), json!(3)),
            (json!({"type":"number"}), json!(1)),
            (json!({"type":"number"}), json!(1.5)),
            (json!({"x-kubernetes-int-or-string":true}), json!("50%")),
            (json!({"x-kubernetes-int-or-string":true}), json!(5)),
            (json!({"type":"string","nullable":true}), json!(null)),
            (
                json!({"type":"object","x-kubernetes-preserve-unknown-fields":true}),
                json!({"any": [1]}),
            ),
            (
                json!({"type":"string","format":"date-time"}),
                json!("2026-01-02T03:04:05Z"),
            ),
            (
                json!({"type":"object","additionalProperties":{"type":"string"}}),
                json!({"a":"b"}),
            ),
        ];
        assert_eq!(rows.len(), 9);
        for (spec, value) in rows {
            let got = messages(&spec_schema(spec.clone()), &json!({"spec": value}));
            assert!(got.is_empty(), "schema {spec}: {got:?}");
        }
    }

    #[test]
    fn defaulting_table_fills_only_what_is_missing() {
        let rows: Vec<(Value, Value, Value)> = vec![
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer","default":1}}}),
                json!({}),
                json!({"replicas": 1}),
            ),
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer","default":1}}}),
                json!({"replicas": 4}),
                json!({"replicas": 4}),
            ),
            (
                json!({"type":"object","properties":{"replicas":{"type":"integer","default":1}}}),
                json!({"replicas": null}),
                json!({"replicas": 1}),
            ),
            (
                json!({"type":"object","properties":{"a":{"type":"object","default":{},
                    "properties":{"b":{"type":"string","default":"x"}}}}}),
                json!({}),
                json!({"a": {"b": "x"}}),
            ),
            (
                json!({"type":"object","properties":{"items":{"type":"array","items":{"type":"object",
                    "properties":{"port":{"type":"integer","default":80}}}}}}),
                json!({"items": [{}, {"port": 8080}]}),
                json!({"items": [{"port": 80}, {"port": 8080}]}),
            ),
            (
                json!({"type":"object","additionalProperties":{"type":"object",
                    "properties":{"on":{"type":"boolean","default":true}}}}),
                json!({"x": {}}),
                json!({"x": {"on": true}}),
            ),
        ];
        assert_eq!(rows.len(), 6);
        for (schema, mut value, expected) in rows {
            apply_defaults(&schema, &mut value);
            assert_eq!(value, expected, "schema {schema}");
        }
    }

    #[test]
    fn pruning_table_removes_unknown_fields_only() {
        let rows: Vec<(Value, Value, Value, Vec<&str>)> = vec![
            (
                json!({"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"string"}}}}}),
                json!({"apiVersion":"x/v1","kind":"K","metadata":{"name":"n"},"spec":{"a":"1","b":"2"},"extra":1}),
                json!({"apiVersion":"x/v1","kind":"K","metadata":{"name":"n"},"spec":{"a":"1"}}),
                vec!["spec.b", "extra"],
            ),
            (
                json!({"type":"object","properties":{"spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}),
                json!({"spec":{"anything":{"deep":1}}}),
                json!({"spec":{"anything":{"deep":1}}}),
                vec![],
            ),
            (
                json!({"type":"object","properties":{"list":{"type":"array","items":{"type":"object","properties":{"k":{"type":"string"}}}}}}),
                json!({"list":[{"k":"v","z":1}]}),
                json!({"list":[{"k":"v"}]}),
                vec!["list[0].z"],
            ),
            (
                json!({"type":"object","properties":{"template":{"type":"object","x-kubernetes-embedded-resource":true,
                    "properties":{"spec":{"type":"object"}}}}}),
                json!({"template":{"apiVersion":"v1","kind":"Pod","metadata":{},"spec":{},"junk":1}}),
                json!({"template":{"apiVersion":"v1","kind":"Pod","metadata":{},"spec":{}}}),
                vec!["template.junk"],
            ),
            (
                json!({"type":"object","properties":{"labels":{"type":"object","additionalProperties":{"type":"string"}}}}),
                json!({"labels":{"a":"b"}}),
                json!({"labels":{"a":"b"}}),
                vec![],
            ),
        ];
        assert_eq!(rows.len(), 5);
        for (schema, mut value, expected, expected_pruned) in rows {
            let mut pruned = Vec::new();
            prune(&schema, &mut value, "", &mut pruned);
            assert_eq!(value, expected, "schema {schema}");
            assert_eq!(pruned, expected_pruned, "schema {schema}");
        }
    }

    #[test]
    fn structural_table_requires_types() {
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (json!({"type":"object","properties":{"spec":{"type":"object"}}}), vec![]),
            (
                json!({"properties":{"spec":{"type":"object"}}}),
                vec!["s.type: Required value: must not be empty at the root"],
            ),
            (
                json!({"type":"object","properties":{"spec":{"properties":{}}}}),
                vec!["s.properties[spec].type: Required value: must not be empty for specified object fields"],
            ),
            (
                json!({"type":"object","properties":{"l":{"type":"array","items":{}}}}),
                vec!["s.properties[l].items.type: Required value: must not be empty for specified array items"],
            ),
            (
                json!({"type":"object","properties":{"p":{"x-kubernetes-int-or-string":true},
                    "q":{"x-kubernetes-preserve-unknown-fields":true}}}),
                vec![],
            ),
        ];
        assert_eq!(rows.len(), 5);
        for (schema, expected) in rows {
            let mut errs = Vec::new();
            validate_structural(&schema, "s", &mut errs);
            let got: Vec<String> = errs.iter().map(FieldError::full).collect();
            assert_eq!(got, expected, "schema {schema}");
        }
    }

    #[test]
    fn rules_that_do_not_compile_or_nest_too_deep_are_refused_with_the_definition() {
        let deep = format!("{}1{} == 1", "(".repeat(30), ")".repeat(30));
        let rows: Vec<(&str, &str)> = vec![
            ("self.a == ", "compilation failed: "),
            ("oldSelf.a == (", "compilation failed: "),
            (&deep, "rule nests more than 24 levels deep"),
        ];
        assert_eq!(rows.len(), 3);
        for (rule, expected) in rows {
            let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": rule}]});
            let mut errs = Vec::new();
            validate_structural(&schema, "s", &mut errs);
            assert_eq!(errs.len(), 1, "{rule}: {errs:?}");
            assert_eq!(errs[0].field, "s.x-kubernetes-validations[0].rule");
            assert!(errs[0].detail.starts_with(expected), "{rule}: {errs:?}");
        }
    }
}
