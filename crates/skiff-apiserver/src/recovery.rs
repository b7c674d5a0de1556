//! Panic recovery: a bug reached by one request answers that request with a 500 `Status` and
//! leaves the server serving every other one.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use hyper::body::{Frame, SizeHint};

use crate::status::{ApiError, ServerApiError};

/// What a client is told when its request made the server panic: the words Kubernetes' panic
/// handler answers with, as client-go reports such a 500.
pub const PANIC_MESSAGE: &str = "an error on the server (\"This request caused apiserver to panic. Look in the logs for details.\") has prevented the request from succeeding";

/// Middleware that turns a panic in the handler into a 500 `InternalError` `Status`, and a
/// panic while a streamed answer (a watch, a list, logs) is being sent into the end of that
/// answer only. Both are logged.
pub async fn recover_panics(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => guard_streamed_body(response, method, path),
        Err(payload) => {
            tracing::error!(
                %method,
                %path,
                panic = panic_text(payload.as_ref()),
                "a request handler panicked"
            );
            ApiError::internal(PANIC_MESSAGE).into_response()
        }
    }
}

/// Wraps a body of unknown length (a stream) so that a panic producing it ends it; a body
/// already in memory cannot panic and is left as it is.
fn guard_streamed_body(response: Response, method: Method, path: String) -> Response {
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    response.map(|inner| {
        Body::new(PanicGuardBody {
            inner,
            method,
            path,
            ended: false,
        })
    })
}

/// The text of a panic's payload, when it carries one.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A response body that ends, with an error, at the first panic of the body it wraps.
struct PanicGuardBody {
    inner: Body,
    method: Method,
    path: String,
    ended: bool,
}

impl HttpBody for PanicGuardBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let inner = &mut this.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                this.ended = true;
                tracing::error!(
                    method = %this.method,
                    path = %this.path,
                    panic = panic_text(payload.as_ref()),
                    "a streamed response panicked; ending it"
                );
                // An error, not a clean end: the client must not take a cut answer for a
                // complete one.
                Poll::Ready(Some(Err(axum::Error::new(std::io::Error::other(
                    "the response stream ended on a server error",
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
