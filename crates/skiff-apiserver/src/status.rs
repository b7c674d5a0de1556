//! API errors in Kubernetes' `Status` shape: the one way a request can fail.

use axum::http::StatusCode;
use serde_json::{json, Value};
use skiff_api::errors::{invalid_message, FieldError};
use skiff_api::resources::ResourceInfo;
use skiff_store::{Revision, StoreError};

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
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
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
    pub fn too_large_resource_version(requested: Revision, current: Revision) -> ApiError {
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
        match &self.details {
            Some(d) => status["details"] = d.clone(),
            // Every NotFound carries details in Kubernetes, which clients rely on.
            None if self.code == 404 => status["details"] = json!({}),
            None => {}
        }
        status
    }

    /// The HTTP status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Maps a store failure on one object to the API error a client expects.
    pub fn from_store(err: StoreError, resource: &ResourceInfo, name: &str) -> ApiError {
        match err {
            StoreError::AlreadyExists(_) => ApiError::already_exists(resource, name),
            StoreError::NotFound(_) => ApiError::not_found(resource, name),
            StoreError::Conflict { .. } => ApiError::conflict(resource, name),
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::WatcherTooSlow => ApiError::internal(err.to_string()),
            StoreError::Backend(msg) => ApiError::unavailable(format!("storage error: {msg}")),
        }
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        (
            self.status_code(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}
