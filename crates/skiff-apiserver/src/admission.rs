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
) -> Result<(Value, Vec<String>), DecodeError> {
    if let Some(mismatch) = metadata_map_mismatch(&obj) {
        return Err(DecodeError::MetadataMap(mismatch));
    }
    let mut unknown = Vec::new();
    let value = (typed.round_trip)(obj, &mut unknown).map_err(|e| match e {
        TypedError::Decode(error) => DecodeError::Decode(error),
        TypedError::Encode(detail) => DecodeError::Refused(ApiError::internal(detail)),
    })?;
    let warnings = unknown_field_answer(resource, &unknown, validation)?;
    Ok((value, warnings))
}

/// What unknown fields mean under the request's field validation: a 400 naming them
/// (`Strict`), warnings naming them (`Warn`), or nothing (`Ignore`).
fn unknown_field_answer(
    resource: &ResourceInfo,
    unknown: &[String],
    validation: FieldValidation,
) -> Result<Vec<String>, DecodeError> {
    let cannot_handle = |detail: String| cannot_be_handled(resource, detail);
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
        return Err(DecodeError::Refused(cannot_handle(detail)));
    }
    let warnings = if validation == FieldValidation::Warn {
        unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect()
    } else {
        Vec::new()
    };
    Ok(warnings)
}

/// Why an object did not decode as its typed kind.
enum DecodeError {
    /// A value of the wrong type or shape, as the JSON decoder reported it.
    Decode(serde_json::Error),
    /// `metadata.labels` or `metadata.annotations` given as something other than an object,
    /// which Go's decoder reports in its own words before any other field.
    MetadataMap(TypeMismatch),
    /// Refused for another reason (unknown fields under strict validation).
    Refused(ApiError),
}

/// The mismatch of `metadata.labels` or `metadata.annotations` given as something other than
/// an object (null counts as absent).
fn metadata_map_mismatch(obj: &Value) -> Option<TypeMismatch> {
    let metadata = obj.get("metadata")?;
    ["labels", "annotations"].into_iter().find_map(|field| {
        let value = metadata.get(field)?;
        let (json_kind, found) = match value {
            Value::Null | Value::Object(_) => return None,
            Value::String(_) => ("string", "string"),
            Value::Number(n) if n.is_f64() => ("number", "float64"),
            Value::Number(_) => ("number", "int64"),
            Value::Bool(_) => ("bool", "bool"),
            Value::Array(_) => ("array", "slice"),
        };
        Some(TypeMismatch {
            json_kind,
            found,
            go_kind: "map",
            go_type: "map[string]string",
            field: Some(field),
        })
    })
}

fn cannot_be_handled(resource: &ResourceInfo, detail: String) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: {}",
        resource.kind, resource.version, resource.kind, detail
    ))
}

/// Decodes `obj` as the typed kind of `resource`, so that only well-typed objects are admitted.
/// Kinds without typed structs pass through unchanged.
pub fn normalize(
    resource: &ResourceInfo,
    obj: Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    decode_typed(resource, obj, validation).map_err(|e| match e {
        DecodeError::Decode(e) => cannot_be_handled(resource, e.to_string()),
        DecodeError::MetadataMap(m) => cannot_be_handled(
            resource,
            format!(
                "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{} of type {}",
                m.json_kind,
                m.field.unwrap_or_default(),
                m.go_type
            ),
        ),
        DecodeError::Refused(e) => e,
    })
}

/// Checks that the result of a patch decodes as the typed kind. A value of the wrong type is
/// refused as Kubernetes refuses it: 422 on the field `patch`, quoting the patch (strategic
/// merge) or the patched object (JSON and merge patches) with the converter's or the JSON
/// decoder's words.
pub fn check_patched(
    resource: &ResourceInfo,
    patched: &Value,
    patch_type: skiff_api::patch::PatchType,
    patch: &Value,
) -> Result<(), ApiError> {
    use skiff_api::patch::PatchType;
    let mismatch = match decode_typed(resource, patched.clone(), FieldValidation::Ignore) {
        Ok(_) => return Ok(()),
        Err(DecodeError::Refused(e)) => return Err(e),
        Err(DecodeError::MetadataMap(m)) => m,
        Err(DecodeError::Decode(error)) => match TypeMismatch::of(&error) {
            Some(m) => m,
            None => return Err(cannot_be_handled(resource, error.to_string())),
        },
    };
    let (value, detail) = match patch_type {
        // The unstructured converter's words: composite targets cannot be restored from what
        // was found; a scalar target of another type is unrecognized.
        PatchType::StrategicMerge | PatchType::Apply => (
            go_map_text(patch),
            match mismatch.go_kind {
                "map" | "slice" => {
                    format!(
                        "cannot restore {} from {}",
                        mismatch.go_kind, mismatch.found
                    )
                }
                "struct" => format!("cannot restore struct from: {}", mismatch.found),
                scalar => format!("unrecognized type: {scalar}"),
            },
        ),
        PatchType::Json | PatchType::Merge => (
            patched.to_string(),
            format!(
                "json: cannot unmarshal {} into Go value of type {}",
                mismatch.json_kind, mismatch.go_type
            ),
        ),
    };
    Err(ApiError::invalid_patch(&FieldError::invalid(
        "patch",
        &Value::String(value),
        detail,
    )))
}

/// A JSON value of one type where the kind wants another, in Go's names for both.
struct TypeMismatch {
    /// What the JSON held: `string`, `number`, `bool`, `array`, `object`.
    json_kind: &'static str,
    /// What the JSON held as the unstructured converter names it: `string`, `int64`,
    /// `float64`, `bool`, `slice`, `map`.
    found: &'static str,
    /// What the Go field is: `int32`, `string`, `bool`, `slice`, `map`, `struct`...
    go_kind: &'static str,
    /// The Go field's whole type as the JSON decoder names it (`map[string]string` for labels).
    go_type: &'static str,
    /// The metadata field at fault, when it is `labels` or `annotations`.
    field: Option<&'static str>,
}

impl TypeMismatch {
    /// Reads serde's `invalid type: string "x", expected i32` report.
    fn of(error: &serde_json::Error) -> Option<TypeMismatch> {
        let text = error.to_string();
        let rest = text.strip_prefix("invalid type: ")?;
        let (found, expected) = rest.split_once(", expected ")?;
        let (json_kind, found) = match found.split_whitespace().next()? {
            "string" | "character" => ("string", "string"),
            "integer" => ("number", "int64"),
            "floating" => ("number", "float64"),
            "boolean" => ("bool", "bool"),
            "sequence" => ("array", "slice"),
            "map" => ("object", "map"),
            _ => return None,
        };
        let expected = expected.split(" at line ").next().unwrap_or(expected);
        let go_kind = match expected {
            "i32" => "int32",
            "i64" => "int64",
            "u32" => "uint32",
            "u64" => "uint64",
            "f32" => "float32",
            "f64" => "float64",
            "a boolean" => "bool",
            "a string" => "string",
            "a sequence" => "slice",
            "a map" => "map",
            e if e.starts_with("struct ") => "struct",
            _ => return None,
        };
        Some(TypeMismatch {
            json_kind,
            found,
            go_kind,
            go_type: go_kind,
            field: None,
        })
    }
}

/// A decoded JSON document as Go's `%+v` prints a `map[string]interface{}`: `map[k:v ...]` with
/// sorted keys, lists as `[a b]`, strings bare.
fn go_map_text(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float_text(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_map_text).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_map_text(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// A JSON number as Go prints the `float64` it decodes to: plain below a million, else with an
/// exponent (`1e+06`).
fn go_float_text(n: &serde_json::Number) -> String {
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    if f == 0.0 || (1e-4..1e6).contains(&f.abs()) {
        return f.to_string();
    }
    let formatted = format!("{f:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
}

/// Decodes `obj` as the typed kind of `resource`, keeping the decoder's own error.
fn decode_typed(
    resource: &ResourceInfo,
    obj: Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), DecodeError> {
    let strategy = skiff_api::kinds::strategy_for(resource);
    let Some(typed) = strategy.typed(resource.version) else {
        let mut obj = obj;
        // A custom resource's schema prunes what it does not specify; those fields count as
        // unknown, as they do for Kubernetes' custom resource decoder.
        let pruned = strategy.prune(resource.version, &mut obj);
        let warnings = unknown_field_answer(resource, &pruned, validation)?;
        drop_empty_metadata_collections(&mut obj);
        return Ok((obj, warnings));
    };
    let (mut value, warnings) = typed_round_trip(typed, resource, obj, validation)?;
    if strategy.registry_hook() == RegistryHook::Secret {
        merge_string_data(&mut value);
    }
    drop_empty_metadata_collections(&mut value);
    Ok((value, warnings))
}

/// Removes empty `labels`, `annotations`, `finalizers`, `ownerReferences` and `managedFields`
/// from an object's metadata: Kubernetes declares them `omitempty`, so an empty one sent by a
/// client (kubectl's patches carry `annotations: {}`) is neither stored nor returned, and a
/// write that only adds one changes nothing.
pub fn drop_empty_metadata_collections(obj: &mut Value) {
    let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in [
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "managedFields",
    ] {
        let empty = match metadata.get(field) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(list)) => list.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            metadata.remove(field);
        }
    }
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
        skiff_api::resources::find("apps", "v1", "deployments").unwrap()
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
        let secrets = skiff_api::resources::find("", "v1", "secrets").unwrap();
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
    fn empty_metadata_collections_are_dropped_as_go_omits_them() {
        let config_maps = skiff_api::resources::find("", "v1", "configmaps").unwrap();
        let obj = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c",
            "annotations":{},"labels":{},"finalizers":[],"ownerReferences":[]},"data":{"a":"1"}});
        let (value, _) = normalize(config_maps, obj, FieldValidation::Strict).unwrap();
        assert_eq!(value["metadata"], json!({"name":"c"}));
        let kept = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c",
            "annotations":{"k":"v"},"labels":{"l":"v"},"finalizers":["f"]}});
        let (value, _) = normalize(config_maps, kept, FieldValidation::Strict).unwrap();
        assert_eq!(
            value["metadata"],
            json!({"name":"c","annotations":{"k":"v"},"labels":{"l":"v"},"finalizers":["f"]})
        );
    }

    #[test]
    fn a_patch_leaving_labels_as_a_string_is_422_as_in_kubernetes() {
        let pods = skiff_api::resources::find("", "v1", "pods").unwrap();
        let patched = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":"invalid"},
            "spec":{"containers":[{"name":"c","image":"i"}]}});
        let patch = json!({"metadata":{"labels":"invalid"}});
        let answer = check_patched(
            pods,
            &patched,
            skiff_api::patch::PatchType::StrategicMerge,
            &patch,
        )
        .expect_err("a restore error");
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
        let answer = check_patched(
            pods,
            &finalizers,
            skiff_api::patch::PatchType::StrategicMerge,
            &json!({"metadata":{"finalizers":7}}),
        )
        .expect_err("a restore error");
        assert!(
            answer.message.ends_with("cannot restore slice from int64"),
            "{}",
            answer.message
        );
    }

    #[test]
    fn a_wrongly_typed_strategic_merge_patch_is_422_in_the_converters_words() {
        let current = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},
            "spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},
                    "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}});
        let patch = json!({"spec": {"replicas": "three"}});
        let mut patched = current.clone();
        patched["spec"]["replicas"] = json!("three");
        let err = check_patched(
            deployments(),
            &patched,
            skiff_api::patch::PatchType::StrategicMerge,
            &patch,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(err.reason, "Invalid");
        assert_eq!(
            err.message,
            " \"\" is invalid: patch: Invalid value: \"map[spec:map[replicas:three]]\": unrecognized type: int32"
        );
        assert!(
            !err.message.contains("expected"),
            "no serde wording: {}",
            err.message
        );
        let details = err.details.expect("details");
        assert_eq!(details["causes"][0]["field"], "patch");
        assert_eq!(details["causes"][0]["reason"], "FieldValueInvalid");

        let merge = check_patched(
            deployments(),
            &patched,
            skiff_api::patch::PatchType::Merge,
            &patch,
        )
        .unwrap_err();
        assert_eq!(merge.code, 422);
        assert!(
            merge
                .message
                .ends_with(": json: cannot unmarshal string into Go value of type int32"),
            "{}",
            merge.message
        );
        assert!(check_patched(
            deployments(),
            &current,
            skiff_api::patch::PatchType::StrategicMerge,
            &json!({})
        )
        .is_ok());
    }

    #[test]
    fn go_prints_patch_maps_with_sorted_keys_and_float_numbers() {
        assert_eq!(
            go_map_text(&json!({"b": [1, "x"], "a": {"n": 1000000, "f": 1.5}})),
            "map[a:map[f:1.5 n:1e+06] b:[1 x]]"
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
