//! Admission: the one place that decides what an accepted object looks like. Decoding into the
//! typed Kubernetes structs (with strict field checks), defaulting, version conversion and
//! validation all happen here, for HTTP and in-process writes alike.

use serde_json::Value;
use skiff_api::errors::FieldError;
use skiff_api::kinds::{RegistryHook, TypedError, TypedVersion};
use skiff_api::resources::ResourceInfo;

use crate::status::ApiError;

/// How the server treats fields the kind does not define (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and tell the client in a `Warning` header.
    #[default]
    Warn,
    /// Refuse the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; unknown values are refused as Kubernetes does.
    pub fn parse(value: Option<&str>) -> Result<FieldValidation, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}, must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Round-trips `obj` through the kind's typed struct: refuses values of the wrong type, drops or
/// refuses unknown fields, and returns the warnings to send back.
fn typed_round_trip(
    typed: TypedVersion,
    resource: &ResourceInfo,
    obj: Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let cannot_handle = |detail: String| {
        ApiError::bad_request(format!("{}{detail}", cannot_handle_prefix(resource)))
    };
    if let Some(detail) = metadata_map_type_error(&obj) {
        return Err(cannot_handle(detail));
    }
    let mut unknown = Vec::new();
    let value = (typed.round_trip)(obj, &mut unknown).map_err(|e| match e {
        TypedError::Decode(detail) => cannot_handle(detail),
        TypedError::Encode(detail) => ApiError::internal(detail),
    })?;
    if !unknown.is_empty() && validation == FieldValidation::Strict {
        let detail = if unknown.len() == 1 {
            format!("strict decoding error: unknown field \"{}\"", unknown[0])
        } else {
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            format!("strict decoding error: {}", fields.join(", "))
        };
        return Err(cannot_handle(detail));
    }
    let warnings = if validation == FieldValidation::Warn {
        unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect()
    } else {
        Vec::new()
    };
    Ok((value, warnings))
}

/// Go's `encoding/json` error for `metadata.labels` or `metadata.annotations` given as
/// something other than an object, as Kubernetes reports it: `json: cannot unmarshal string
/// into Go struct field ObjectMeta.metadata.labels of type map[string]string`.
fn metadata_map_type_error(obj: &Value) -> Option<String> {
    let metadata = obj.get("metadata")?;
    ["labels", "annotations"].iter().find_map(|field| {
        let json_type = match metadata.get(*field)? {
            Value::Null | Value::Object(_) => return None,
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "bool",
            Value::Array(_) => "array",
        };
        Some(format!(
            "json: cannot unmarshal {json_type} into Go struct field ObjectMeta.metadata.{field} of type map[string]string"
        ))
    })
}

/// The start of the message [`typed_round_trip`] gives a body that does not decode as the kind.
fn cannot_handle_prefix(resource: &ResourceInfo) -> String {
    format!(
        "{} in version \"{}\" cannot be handled as a {}: ",
        resource.kind, resource.version, resource.kind
    )
}

/// When a strategic merge patch leaves a value of the wrong type where the kind wants a map,
/// a list or an object, Kubernetes fails converting the patched map back to the type and
/// answers 422 naming the patch and Go's conversion error (`cannot restore map from string`
/// for `metadata.labels: "x"`). Given the decode error of the patched object, this returns
/// that answer.
pub fn patched_object_unrestorable(
    resource: &ResourceInfo,
    err: &ApiError,
    patch: &Value,
) -> Option<ApiError> {
    let detail = err.message.strip_prefix(&cannot_handle_prefix(resource))?;
    let (found_kind, expected) = if let Some(go) = detail.strip_prefix("json: cannot unmarshal ") {
        // metadata_map_type_error's words: the found JSON type, then the Go type wanted.
        let (found, rest) = go.split_once(" into ")?;
        let found_kind = match found {
            "string" => "string",
            "number" => {
                let patched_number = patch
                    .pointer("/metadata/labels")
                    .or_else(|| patch.pointer("/metadata/annotations"));
                if patched_number.is_some_and(|n| n.is_f64()) {
                    "float64"
                } else {
                    "int64"
                }
            }
            "bool" => "bool",
            "array" => "slice",
            _ => return None,
        };
        let expected = if rest.ends_with("of type map[string]string") {
            "a map"
        } else {
            return None;
        };
        (found_kind, expected)
    } else {
        let (found, expected) = detail
            .strip_prefix("invalid type: ")?
            .split_once(", expected ")?;
        let found_kind = [
            ("string", "string"),
            ("integer", "int64"),
            ("floating point", "float64"),
            ("boolean", "bool"),
            ("sequence", "slice"),
            ("map", "map"),
        ]
        .iter()
        .find(|(serde, _)| found.starts_with(serde))
        .map(|(_, go)| *go)?;
        (found_kind, expected)
    };
    let conversion = if expected.starts_with("a map") {
        format!("cannot restore map from {found_kind}")
    } else if expected.starts_with("a sequence") {
        format!("cannot restore slice from {found_kind}")
    } else if expected.starts_with("struct") {
        format!("cannot restore struct from: {found_kind}")
    } else {
        return None;
    };
    let error = FieldError {
        error_type: skiff_api::errors::FieldErrorType::Invalid,
        field: "patch".to_string(),
        bad_value: Some(format!("{:?}", go_print(patch))),
        detail: conversion,
    };
    Some(ApiError {
        code: 422,
        reason: "Invalid",
        message: skiff_api::errors::invalid_message("", "", std::slice::from_ref(&error)),
        details: Some(serde_json::json!({"causes": [{
            "reason": error.error_type.reason(),
            "message": error.message(),
            "field": error.field,
        }]})),
    })
}

/// A decoded JSON value as Go's `%v` prints it: `map[k:v]`, `[a b]`, `<nil>`.
fn go_print(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_print).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Decodes `obj` as the typed kind of `resource`, so that only well-typed objects are admitted.
/// Kinds without typed structs pass through unchanged.
pub fn normalize(
    resource: &ResourceInfo,
    obj: Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let strategy = skiff_api::kinds::strategy_for(resource);
    let Some(typed) = strategy.typed(resource.version) else {
        return Ok((obj, Vec::new()));
    };
    let (mut value, warnings) = typed_round_trip(typed, resource, obj, validation)?;
    if strategy.registry_hook() == RegistryHook::Secret {
        merge_string_data(&mut value);
    }
    Ok((value, warnings))
}

/// Folds a Secret's write-only `stringData` into `data` (base64), its entries winning over
/// `data`'s, and drops it: Kubernetes never stores or returns `stringData`.
pub fn merge_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(fields) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(plain)) = fields.remove("stringData") else {
        return;
    };
    if plain.is_empty() {
        return;
    }
    let data = fields
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    if let Value::Object(data) = data {
        for (key, value) in plain {
            let text = value.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, Value::String(encoded));
        }
    }
}

/// Fills every field Kubernetes defaults for the kind in the request's version.
pub fn apply_defaults(resource: &ResourceInfo, obj: &mut Value) {
    skiff_api::defaults::apply_defaults(resource, obj);
}

/// Converts an object between versions of its resource.
pub fn convert(obj: Value, to_api_version: &str) -> Result<Value, ApiError> {
    skiff_api::conversion::convert(obj, to_api_version)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Validation of a new object, on its storage version.
pub fn validate_create(resource: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    skiff_api::validation::validate_create(resource, obj)
}

/// Validation of a change, on the storage version.
pub fn validate_update(resource: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    skiff_api::validation::validate_update(resource, new, old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> &'static ResourceInfo {
        &skiff_api::kinds::deployment::V1
    }

    #[test]
    fn strict_validation_names_the_unknown_field() {
        let obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},
            "spec":{"selector":{},"template":{"spec":{"containers":[{"name":"c","bogus":1}]}}}});
        let err = normalize(deployments(), obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.ends_with(
                "strict decoding error: unknown field \"spec.template.spec.containers[0].bogus\""
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn warn_validation_drops_and_reports_unknown_fields() {
        let obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","zzz":1},
            "spec":{"selector":{}, "template":{}}});
        let (value, warnings) = normalize(deployments(), obj, FieldValidation::Warn).unwrap();
        assert_eq!(warnings, vec!["unknown field \"metadata.zzz\"".to_string()]);
        assert!(value.pointer("/metadata/zzz").is_none());
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let secrets = &skiff_api::kinds::secret::V1;
        let obj = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "data":{"kept":"a2VwdA==","over":"b2xk"},"stringData":{"over":"new","plain":"p w"}});
        let (value, _) = normalize(secrets, obj, FieldValidation::Strict).unwrap();
        assert_eq!(value.get("stringData"), None);
        assert_eq!(
            value["data"],
            json!({"kept":"a2VwdA==","over":"bmV3","plain":"cCB3"})
        );
        let only_string = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "stringData":{"k":"v"}});
        let (value, _) = normalize(secrets, only_string, FieldValidation::Strict).unwrap();
        assert_eq!(value["data"], json!({"k":"dg=="}));
        assert_eq!(value.get("stringData"), None);
    }

    #[test]
    fn a_patch_leaving_labels_as_a_string_is_422_as_in_kubernetes() {
        let pods = &skiff_api::kinds::pod::V1;
        let patched = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":"invalid"},
            "spec":{"containers":[{"name":"c","image":"i"}]}});
        let err = normalize(pods, patched, FieldValidation::Warn).unwrap_err();
        let patch = json!({"metadata":{"labels":"invalid"}});
        let answer = patched_object_unrestorable(pods, &err, &patch).expect("a restore error");
        assert_eq!((answer.code, answer.reason), (422, "Invalid"));
        assert_eq!(
            answer.message,
            " \"\" is invalid: patch: Invalid value: \"map[metadata:map[labels:invalid]]\": cannot restore map from string"
        );
        assert_eq!(
            answer.details,
            Some(json!({"causes": [{"reason": "FieldValueInvalid",
                "message": "Invalid value: \"map[metadata:map[labels:invalid]]\": cannot restore map from string",
                "field": "patch"}]}))
        );
        let finalizers =
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","finalizers":7}});
        let err = normalize(pods, finalizers, FieldValidation::Warn).unwrap_err();
        let answer = patched_object_unrestorable(pods, &err, &json!({"metadata":{"finalizers":7}}))
            .expect("a restore error");
        assert!(
            answer.message.ends_with("cannot restore slice from int64"),
            "{}",
            answer.message
        );
    }

    #[test]
    fn labels_given_as_a_string_are_refused_with_go_json_words() {
        let pods = &skiff_api::kinds::pod::V1;
        let obj = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":"x"}});
        let err = normalize(pods, obj, FieldValidation::Strict).unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"
        );
        let obj = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":[1]}});
        let err = normalize(pods, obj, FieldValidation::Strict).unwrap_err();
        assert!(
            err.message.ends_with("json: cannot unmarshal array into Go struct field ObjectMeta.metadata.annotations of type map[string]string"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_types_are_refused_with_400() {
        let obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},
            "spec":{"replicas":"three","selector":{},"template":{}}});
        let err = normalize(deployments(), obj, FieldValidation::Ignore).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err
            .message
            .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: "));
    }
}
