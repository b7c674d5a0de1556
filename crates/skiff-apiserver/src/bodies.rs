//! Request bodies: JSON, YAML and Kubernetes protobuf objects, and the patch verbs.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use skiff_api::patch::{self, PatchError, PatchType};
use skiff_api::resources::{ResourceInfo, Subresource};

use crate::registry::{Registry, WriteOptions};
use crate::status::ApiError;

/// The media types accepted for object bodies, as Kubernetes lists them in its 415 message.
const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

fn content_type(headers: &HeaderMap) -> String {
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

/// Parses JSON, refusing anything but an object.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    Ok(value)
}

/// Parses YAML into the JSON data model.
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    serde_yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")))
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
    let result = registry
        .write_loop(
            resource,
            namespace,
            name,
            subresource,
            options,
            None,
            |current| {
                patch::apply_patch(resource, &current, patch_type, &patch_doc).map_err(patch_error)
            },
        )
        .await;
    match result {
        Ok(w) => Ok(crate::server::written(StatusCode::OK, w)),
        // Server-side apply creates what does not exist yet.
        Err(e) if e.code == 404 && patch_type == PatchType::Apply && subresource.is_none() => {
            let w = registry
                .create(resource, namespace, patch_doc, options)
                .await?;
            Ok(crate::server::written(StatusCode::CREATED, w))
        }
        Err(e) => Err(e),
    }
}
