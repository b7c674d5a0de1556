//! API errors in Kubernetes' `Status` shape: the one way a request can fail, whichever side
//! of a connection it is read on (the server renders them, clients decode them back).

use serde_json::{json, Value};

use crate::errors::{invalid_message, FieldError};
use crate::resources::ResourceInfo;

/// A failed API request, rendered as a `meta/v1` `Status` object.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status code (also `Status.code`).
    pub code: u16,
    /// The machine-readable reason, e.g. `NotFound`.
    pub reason: &'static str,
    /// The human-readable message kubectl prints.
    pub message: String,
    /// `Status.details`, when the error concerns one object.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The name, group and kind that go into `Status.details` for one object.
fn details(resource: &ResourceInfo, name: &str) -> Value {
    json!({"name": name, "group": resource.group, "kind": resource.plural})
}

impl ApiError {
    /// An error of `code` with `reason` and `message` and no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401: no or wrong credentials.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403: the request is understood and refused.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// 404 for a path that names no resource. Its `details` are empty rather than absent, as
    /// Kubernetes sends them: clients such as `kubectl debug` read them from every 404.
    pub fn path_not_found() -> ApiError {
        ApiError {
            details: Some(json!({})),
            ..ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    /// 404 for one missing object: `deployments.apps "web" not found`.
    pub fn not_found(resource: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: Some(details(resource, name)),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", resource.qualified_plural(), name),
            )
        }
    }

    /// 404 for a missing namespace when creating into it.
    pub fn namespace_not_found(namespace: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": namespace, "kind": "namespaces"})),
            ..ApiError::new(
                404,
                "NotFound",
                format!("namespaces \"{namespace}\" not found"),
            )
        }
    }

    /// 405: the verb is not supported on this resource.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 409: create of an existing object.
    pub fn already_exists(resource: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: Some(details(resource, name)),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!(
                    "{} \"{}\" already exists",
                    resource.qualified_plural(),
                    name
                ),
            )
        }
    }

    /// 409: the object changed since the client read it.
    pub fn conflict(resource: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: Some(details(resource, name)),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    resource.qualified_plural(),
                    name
                ),
            )
        }
    }

    /// 409 with a custom message (e.g. a precondition that failed).
    pub fn conflict_message(resource: &ResourceInfo, name: &str, message: String) -> ApiError {
        ApiError {
            details: Some(details(resource, name)),
            ..ApiError::new(409, "Conflict", message)
        }
    }

    /// 410: a resourceVersion or continue token older than the history kept.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 504: a read asked for a resourceVersion newer than the store has reached.
    pub fn too_large_resource_version(requested: i64, current: i64) -> ApiError {
        ApiError {
            details: Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })),
            ..ApiError::new(
                504,
                "Timeout",
                format!("Timeout: Too large resource version: {requested}, current: {current}"),
            )
        }
    }

    /// 422 for request options (`ListOptions`, `CreateOptions`, ...) that break
    /// Kubernetes' rules, named as it names them: `CreateOptions.meta.k8s.io "" is invalid`.
    pub fn invalid_options(options_kind: &str, errors: &[FieldError]) -> ApiError {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.error_type.reason(), "message": e.message(), "field": e.field}))
            .collect();
        ApiError {
            details: Some(json!({"group": "meta.k8s.io", "kind": options_kind, "causes": causes})),
            ..ApiError::new(
                422,
                "Invalid",
                invalid_message(&format!("{options_kind}.meta.k8s.io"), "", errors),
            )
        }
    }

    /// 413: the request body is larger than the server accepts.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415: a body encoding or patch type the server does not accept.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    /// 422: validation failed, with one cause per field error.
    pub fn invalid(resource: &ResourceInfo, name: &str, errors: &[FieldError]) -> ApiError {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.error_type.reason(), "message": e.message(), "field": e.field}))
            .collect();
        ApiError {
            details: Some(json!({
                "name": name, "group": resource.group, "kind": resource.kind, "causes": causes
            })),
            ..ApiError::new(
                422,
                "Invalid",
                invalid_message(&resource.qualified_kind(), name, errors),
            )
        }
    }

    /// 422 for a patch whose result has a value of the wrong type: Kubernetes reports it on
    /// no kind and no name, so the message starts ` "" is invalid:`.
    pub fn invalid_patch(error: &FieldError) -> ApiError {
        let cause = json!({"reason": error.error_type.reason(), "message": error.message(), "field": error.field});
        ApiError {
            details: Some(json!({"causes": [cause]})),
            ..ApiError::new(
                422,
                "Invalid",
                invalid_message("", "", std::slice::from_ref(error)),
            )
        }
    }

    /// 500: something failed inside the server.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// 503: the store could not be reached.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // Go omits an empty reason (`StatusReasonUnknown`).
        if self.reason.is_empty() {
            if let Some(fields) = status.as_object_mut() {
                fields.remove("reason");
            }
        }
        match &self.details {
            Some(d) => status["details"] = d.clone(),
            // Every NotFound carries details in Kubernetes, which clients rely on.
            None if self.code == 404 => status["details"] = json!({}),
            None => {}
        }
        status
    }

    /// The error a `Status` object describes, as a client reads it from an answer: its code,
    /// reason (one of Kubernetes' `StatusReason`s, `Unknown` for any other), message and
    /// details. `None` when `status` is not a failure `Status`.
    pub fn from_status(status: &Value) -> Option<ApiError> {
        if status.get("kind").and_then(Value::as_str) != Some("Status") {
            return None;
        }
        let code = status
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())?;
        let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
        let message = status
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some(ApiError {
            code,
            reason: known_reason(reason),
            message,
            details: status.get("details").cloned(),
        })
    }
}

/// Kubernetes' `metav1.StatusReason` values, so a decoded reason can be kept as a static name.
const STATUS_REASONS: &[&str] = &[
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "Gone",
    "Invalid",
    "ServerTimeout",
    "StoreReadError",
    "Timeout",
    "TooManyRequests",
    "BadRequest",
    "MethodNotAllowed",
    "NotAcceptable",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
    "InternalError",
    "Expired",
    "ServiceUnavailable",
];

/// The static name of a reason read from a `Status`; `Unknown` for one Kubernetes does not
/// define (and for none).
fn known_reason(reason: &str) -> &'static str {
    STATUS_REASONS
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_decodes_back_into_the_error_it_renders() {
        let error = ApiError::not_found(&crate::kinds::config_map::V1, "missing");
        assert_eq!(ApiError::from_status(&error.to_status()), Some(error));
        let conflict = ApiError::conflict(&crate::kinds::deployment::V1, "web");
        assert_eq!(ApiError::from_status(&conflict.to_status()), Some(conflict));
    }

    #[test]
    fn an_unknown_reason_is_kept_as_unknown_and_a_non_status_is_refused() {
        let status = json!({"kind": "Status", "code": 418, "reason": "Teapot", "message": "m"});
        let error = ApiError::from_status(&status).expect("a Status decodes");
        assert_eq!(
            (error.code, error.reason, error.message.as_str()),
            (418, "Unknown", "m")
        );
        assert_eq!(ApiError::from_status(&json!({"kind": "ConfigMap"})), None);
    }
}
