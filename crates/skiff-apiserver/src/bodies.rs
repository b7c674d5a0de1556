//! Request bodies: JSON, YAML and Kubernetes protobuf objects, and the patch verbs.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use skiff_api::managed_fields;
use skiff_api::nesting;
use skiff_api::patch::{self, PatchError, PatchType};
use skiff_api::resources::{ResourceInfo, Subresource};

use crate::admission;
use crate::registry::{Registry, WriteOptions};
use crate::status::ApiError;

/// The media types accepted for object bodies, as Kubernetes lists them in its 415 message.
const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// The request's media type, lowercased and without parameters (`application/json` when absent).
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Parses JSON. Nesting past Kubernetes' limit gets Kubernetes' answer; nesting Skiff cannot
/// store (see [`skiff_api::nesting`]) gets the parser's.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let parse_error = |detail: String| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {detail}"
        ))
    };
    if let Some(bracket) = nesting::json_excess_bracket(body, nesting::KUBERNETES_MAX_DEPTH) {
        return Err(parse_error(format!(
            "invalid character '{}' exceeded max depth",
            char::from(bracket)
        )));
    }
    serde_json::from_slice(body).map_err(|e| parse_error(e.to_string()))
}

/// Parses YAML into the JSON data model; nesting past Kubernetes' limit is refused before
/// parsing, with Kubernetes' message.
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    skiff_api::yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")))
}

/// What Kubernetes shows of a body it could not make sense of: up to `max` bytes as text when
/// it looks like JSON, otherwise in hex, with ` ...` when cut.
fn summarize_body(body: &[u8], max: usize) -> String {
    let cut = body.len() > max;
    let shown = &body[..body.len().min(max)];
    let mut out = match body.first() {
        None => return "<empty>".to_string(),
        Some(b'{') => String::from_utf8_lossy(shown).into_owned(),
        Some(_) => shown.iter().map(|b| format!("{b:02x}")).collect(),
    };
    if cut {
        out.push_str(" ...");
    }
    out
}

/// Go's `encoding/json` wording for the common ways a body fails to parse, which is what
/// Kubernetes reports; other failures keep the parser's own words.
fn go_json_error(body: &[u8], error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if error.classify() == Category::Eof {
        return "unexpected end of JSON input".to_string();
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b)
            if !matches!(
                b,
                b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            ) =>
        {
            let shown = match *b {
                b'\'' => "'\\''".to_string(),
                b if b.is_ascii_graphic() => format!("'{}'", b as char),
                b => format!("'\\x{b:02x}'"),
            };
            format!("invalid character {shown} looking for beginning of value")
        }
        _ => error.to_string(),
    }
}

/// The 400 Kubernetes answers when a body cannot even be read for its kind, naming the kind
/// the endpoint expects.
fn unrecognized(kind: &str, cause: &str, body: &[u8]) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {kind}): {cause} ({})",
        summarize_body(body, 30)
    ))
}

/// Decodes an object body for an endpoint that serves `kind`: as [`decode_object`], but a
/// body that cannot be parsed at all gets Kubernetes' "the object provided is unrecognized"
/// message.
pub fn decode_object_of(kind: &str, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    match content_type(headers).as_str() {
        "application/json" | "" | "*/*" => {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                let cause = format!(
                    "couldn't get version/kind; json parse error: {}",
                    go_json_error(body, &e)
                );
                return Err(unrecognized(kind, &cause, body));
            }
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            if let Err(e) = parse_yaml(body) {
                return Err(unrecognized(kind, &e.message, body));
            }
        }
        crate::protobuf::PROTOBUF_MEDIA_TYPE if !body.starts_with(crate::protobuf::MAGIC) => {
            let cause = "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]";
            return Err(unrecognized(kind, cause, body));
        }
        _ => {}
    }
    decode_object(headers, body)
}

/// Decodes an object body by its `Content-Type`.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let value = match content_type(headers).as_str() {
        "application/json" | "" | "*/*" => parse_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(body)?,
        crate::protobuf::PROTOBUF_MEDIA_TYPE => crate::protobuf::decode(body).map_err(|e| {
            if e.is_unsupported_kind() {
                ApiError::unsupported_media_type(e.to_string())
            } else {
                ApiError::bad_request(format!("unable to decode protobuf body: {e}"))
            }
        })?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: {ACCEPTED} (got {other})"
            )))
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: the body is not a JSON object",
        ));
    }
    Ok(value)
}

/// How Go's JSON decoder names a value it cannot put into a field.
pub(crate) fn go_json_kind(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".to_string(),
        Value::Bool(_) => "bool".to_string(),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
        Value::Null => "null".to_string(),
    }
}

pub(crate) fn patch_error(err: PatchError) -> ApiError {
    ApiError {
        code: err.code(),
        reason: err.reason(),
        message: err.status_message(),
        details: None,
    }
}

/// `PATCH` on an object or its status.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    registry: &Registry,
    resource: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    subresource: Option<Subresource>,
    headers: &HeaderMap,
    raw: &[u8],
    options: WriteOptions,
) -> Result<Response, ApiError> {
    let ct = content_type(headers);
    let patch_type = PatchType::from_content_type(&ct).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"
        ))
    })?;
    let patch_doc = patch::decode_patch_body(patch_type, raw).map_err(patch_error)?;
    let applying = patch_type == PatchType::Apply;
    let options = WriteOptions {
        applied: applying,
        ..options
    };
    let api_version = resource.api_version();
    let applied_subresource = match subresource {
        Some(Subresource::Status) => "status",
        _ => "",
    };
    let apply = |live: Option<&Value>| {
        let now = crate::meta::now_rfc3339();
        let writer = managed_fields::Writer {
            manager: options.field_manager.as_str(),
            api_version: &api_version,
            subresource: applied_subresource,
            now: &now,
        };
        managed_fields::apply(resource, live, &patch_doc, &writer, options.force)
            .map(|applied| applied.object)
            .map_err(apply_error)
    };
    let result = registry
        .write_loop(
            resource,
            namespace,
            name,
            subresource,
            options,
            None,
            |current| {
                if applying {
                    return apply(Some(&current));
                }
                let patched = patch::apply_patch(resource, &current, patch_type, &patch_doc)
                    .map_err(patch_error)?;
                admission::check_patched(resource, &patched, patch_type, &patch_doc)?;
                Ok(patched)
            },
        )
        .await;
    match result {
        Ok(w) => Ok(crate::server::written(StatusCode::OK, w)),
        // Server-side apply creates what does not exist yet.
        Err(e) if e.code == 404 && applying && subresource.is_none() => {
            let object = apply(None)?;
            let w = registry
                .create(resource, namespace, object, options)
                .await?;
            Ok(crate::server::written(StatusCode::CREATED, w))
        }
        Err(e) => Err(e),
    }
}

/// The Status of a refused apply: 409 with one `FieldManagerConflict` cause per field, as
/// Kubernetes words them, or 400 for a configuration that is not an object.
fn apply_error(err: managed_fields::ApplyError) -> ApiError {
    match &err {
        managed_fields::ApplyError::Conflicts(conflicts) => ApiError {
            code: 409,
            reason: "Conflict",
            message: err.to_string(),
            details: Some(json!({
                "causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager),
                    "field": c.field,
                })).collect::<Vec<_>>()
            })),
        },
        managed_fields::ApplyError::Malformed(message) => ApiError::bad_request(message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    #[test]
    fn unparseable_bodies_are_unrecognized_objects_of_the_endpoint_kind() {
        let truncated = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"#;
        let err = decode_object_of("ConfigMap", &json_headers(), truncated).unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        assert_eq!(
            err.message,
            "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input ({\"apiVersion\":\"v1\",\"kind\":\"Con ...)"
        );
        let yaml = b"apiVersion: v1\nkind: Pod\n";
        let err = decode_object_of("Namespace", &json_headers(), yaml).unwrap_err();
        assert_eq!(
            err.message,
            "the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: invalid character 'a' looking for beginning of value (61706956657273696f6e3a2076310a6b696e643a20506f640a)"
        );
        assert!(decode_object_of("Namespace", &json_headers(), b"{}").is_ok());
        let mut yaml_headers = HeaderMap::new();
        yaml_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        let err = decode_object_of("Namespace", &yaml_headers, b"a: [").unwrap_err();
        assert!(
            err.message.starts_with(
                "the object provided is unrecognized (must be of type Namespace): error converting YAML to JSON: yaml: "
            ) && err.message.ends_with(" (613a205b)"),
            "{}",
            err.message
        );
    }
}
