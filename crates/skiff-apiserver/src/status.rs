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
            StoreError::Backend(msg) => ApiError::unavailable(format!("storage error: {msg}")),
        }
    }
}
