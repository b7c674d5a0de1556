//! API errors in Kubernetes' `Status` shape: the one way a request can fail. The error itself
//! is `skiff_api::status::ApiError`, shared with clients; this module adds what only the server
//! needs: the HTTP answer and the mapping from store failures.

use axum::http::StatusCode;
use axum::response::Response;
use skiff_api::resources::ResourceInfo;
use skiff_store::StoreError;

pub use skiff_api::status::ApiError;

/// What the server does with an [`ApiError`] beyond its `Status`: answering it over HTTP and
/// deriving it from a store failure.
pub trait ServerApiError: Sized {
    /// The HTTP status code.
    fn status_code(&self) -> StatusCode;
    /// The error as an HTTP answer: its `Status` as JSON with its code.
    fn into_response(self) -> Response;
    /// Maps a store failure on one object to the API error a client expects.
    fn from_store(err: StoreError, resource: &ResourceInfo, name: &str) -> Self;
}

impl ServerApiError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn into_response(self) -> Response {
        use axum::response::IntoResponse;
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        (
            self.status_code(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }

    fn from_store(err: StoreError, resource: &ResourceInfo, name: &str) -> ApiError {
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
            // kube-apiserver passes a failure its storage does not recognize (etcd's own
            // `etcdserver: request timed out` without quorum) as a 500 of unknown reason
            // carrying the failure's text.
            StoreError::Backend(message) => ApiError::new(500, "", message),
            // Unanswered, kube-apiserver's call waits until the request's deadline, and its
            // timeout filter answers.
            StoreError::Timeout(_) => request_timed_out(),
        }
    }
}

/// kube-apiserver's answer to a request that outlived its deadline (its timeout filter's
/// `NewTimeoutError`): 504, reason `Timeout`, empty details.
pub fn request_timed_out() -> ApiError {
    ApiError {
        details: Some(serde_json::json!({})),
        ..ApiError::new(
            504,
            "Timeout",
            "Timeout: request did not complete within the allotted timeout",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::kinds::config_map;

    #[test]
    fn store_failures_answer_as_kube_apiserver_answers_them() {
        let refused = ApiError::from_store(
            StoreError::Backend("etcdserver: request timed out".into()),
            &config_map::V1,
            "c",
        );
        assert_eq!(
            refused.to_status(),
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "etcdserver: request timed out", "code": 500}),
            "a failure etcd answered is a 500 of unknown reason with etcd's text"
        );
        let unanswered = ApiError::from_store(
            StoreError::Timeout("etcd: get: no answer within 10s".into()),
            &config_map::V1,
            "c",
        );
        assert_eq!(
            unanswered.to_status(),
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "Timeout: request did not complete within the allotted timeout",
                "reason": "Timeout", "details": {}, "code": 504})
        );
    }
}
