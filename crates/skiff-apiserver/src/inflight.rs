//! The server-wide in-flight limits kube-apiserver applies when API Priority and Fairness does
//! not (`--max-requests-inflight`, `--max-mutating-requests-inflight`): at most so many
//! read-only and so many mutating requests are served at once; one more is answered 429 with
//! `Retry-After: 1` and Kubernetes' plain-text words, so that one noisy client cannot take
//! every worker. Long-running requests (watches, exec, attach, logs, port-forward, proxy) do
//! not count, and members of `system:masters` (the admin token, the loopback identity) are
//! served even beyond the limit, as kube-apiserver serves them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use skiff_auth::request_info::{request_info, RequestInfo};
use skiff_auth::user::SYSTEM_MASTERS;

use crate::server::ServerState;

/// kube-apiserver's default `--max-requests-inflight`.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's default `--max-mutating-requests-inflight`.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;
/// The body of a refusal, as Go's `http.Error` writes kube-apiserver's text.
pub const TOO_MANY_REQUESTS: &str = "Too many requests, please try again later.\n";

/// One limit and the requests it currently counts; a limit of 0 is no limit.
#[derive(Debug)]
struct Counter {
    limit: usize,
    current: AtomicUsize,
}

impl Counter {
    fn new(limit: usize) -> Counter {
        Counter {
            limit,
            current: AtomicUsize::new(0),
        }
    }

    /// Counts one more request unless the limit is reached.
    fn try_take(&self) -> bool {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (self.limit == 0 || n < self.limit).then(|| n.saturating_add(1))
            })
            .is_ok()
    }

    fn give_back(&self) {
        let _ = self
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Both limits of one server.
#[derive(Debug)]
pub struct InflightLimiter {
    read_only: Counter,
    mutating: Counter,
}

impl Default for InflightLimiter {
    fn default() -> Self {
        InflightLimiter::new(
            DEFAULT_MAX_REQUESTS_INFLIGHT,
            DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        )
    }
}

/// A counted request: the slot is given back when it is dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<InflightLimiter>,
    mutating: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.counter(self.mutating).give_back();
    }
}

impl InflightLimiter {
    /// Limits of `max_requests` read-only and `max_mutating` mutating requests (0: no limit).
    pub fn new(max_requests: usize, max_mutating: usize) -> InflightLimiter {
        InflightLimiter {
            read_only: Counter::new(max_requests),
            mutating: Counter::new(max_mutating),
        }
    }

    fn counter(&self, mutating: bool) -> &Counter {
        if mutating {
            &self.mutating
        } else {
            &self.read_only
        }
    }

    /// A slot for one request, or `None` when its kind is at its limit.
    pub fn try_acquire(self: &Arc<Self>, mutating: bool) -> Option<Permit> {
        self.counter(mutating).try_take().then(|| Permit {
            limiter: self.clone(),
            mutating,
        })
    }

    /// How many requests of a kind are counted now.
    pub fn in_flight(&self, mutating: bool) -> usize {
        self.counter(mutating).current.load(Ordering::Acquire)
    }
}

/// Whether kube-apiserver serves the request as long-running, outside the limits.
pub fn is_long_running(info: &RequestInfo) -> bool {
    matches!(info.verb.as_str(), "watch" | "proxy")
        || matches!(
            info.subresource.as_str(),
            "attach" | "exec" | "proxy" | "log" | "portforward"
        )
}

/// Whether the request counts against the mutating limit: every verb but reads.
pub fn is_mutating(info: &RequestInfo) -> bool {
    !matches!(info.verb.as_str(), "get" | "list" | "watch")
}

/// kube-apiserver's refusal: 429, `Retry-After: 1`, its text as `http.Error` writes it.
fn too_many_requests() -> Response {
    let mut resp = Response::new(Body::from(TOO_MANY_REQUESTS));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = resp.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The middleware: runs after authentication, before authorization, as kube-apiserver's filter.
pub async fn limit_inflight(
    State(state): State<Arc<ServerState>>,
    req: Request,
    next: Next,
) -> Response {
    let info = request_info(req.method().as_str(), req.uri().path(), req.uri().query());
    let Ok(info) = info else {
        return next.run(req).await;
    };
    if is_long_running(&info) {
        return next.run(req).await;
    }
    match state.inflight.try_acquire(is_mutating(&info)) {
        Some(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        None => {
            let privileged = req
                .extensions()
                .get::<crate::authz::Identity>()
                .is_some_and(|identity| identity.0.in_group(SYSTEM_MASTERS));
            if privileged {
                next.run(req).await
            } else {
                too_many_requests()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_counted_against_its_own_limit_and_slots_come_back() {
        let limiter = Arc::new(InflightLimiter::new(2, 1));
        let first = limiter.try_acquire(false).expect("a first read");
        let second = limiter.try_acquire(false).expect("a second read");
        assert!(limiter.try_acquire(false).is_none(), "a third read is over");
        let write = limiter
            .try_acquire(true)
            .expect("writes have their own limit");
        assert!(
            limiter.try_acquire(true).is_none(),
            "a second write is over"
        );
        assert_eq!((limiter.in_flight(false), limiter.in_flight(true)), (2, 1));
        drop(first);
        assert_eq!(limiter.in_flight(false), 1);
        let third = limiter
            .try_acquire(false)
            .expect("a freed slot is taken again");
        drop((second, third, write));
        assert_eq!((limiter.in_flight(false), limiter.in_flight(true)), (0, 0));
    }

    #[test]
    fn a_zero_limit_is_no_limit() {
        let limiter = Arc::new(InflightLimiter::new(0, 1));
        let held: Vec<Permit> = (0..1000)
            .map(|_| limiter.try_acquire(false).expect("unlimited"))
            .collect();
        assert_eq!(limiter.in_flight(false), 1000);
        drop(held);
        assert_eq!(limiter.in_flight(false), 0);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let limiter = Arc::new(InflightLimiter::new(3, 0));
        let granted = AtomicUsize::new(0);
        let max_seen = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..2000 {
                        if let Some(permit) = limiter.try_acquire(false) {
                            granted.fetch_add(1, Ordering::Relaxed);
                            max_seen.fetch_max(limiter.in_flight(false), Ordering::Relaxed);
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert!(granted.load(Ordering::Relaxed) > 0);
        assert!(max_seen.load(Ordering::Relaxed) <= 3);
        assert_eq!(limiter.in_flight(false), 0);
    }

    #[test]
    fn long_running_and_mutating_requests_are_told_apart() {
        let info = |method: &str, path: &str, query: Option<&str>| {
            request_info(method, path, query).expect("a request")
        };
        let watch = info("GET", "/api/v1/namespaces/default/pods", Some("watch=true"));
        assert!(is_long_running(&watch));
        for sub in ["exec", "attach", "log", "portforward"] {
            let path = format!("/api/v1/namespaces/default/pods/web/{sub}");
            assert!(is_long_running(&info("POST", &path, None)), "{sub}");
        }
        let list = info("GET", "/api/v1/namespaces/default/pods", None);
        assert!(!is_long_running(&list) && !is_mutating(&list));
        let create = info("POST", "/api/v1/namespaces/default/configmaps", None);
        assert!(!is_long_running(&create) && is_mutating(&create));
        let discovery = info("GET", "/apis", None);
        assert!(!is_mutating(&discovery));
    }

    #[test]
    fn the_refusal_reads_like_kube_apiserver() {
        let resp = too_many_requests();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
