//! API Priority and Fairness, the filter kube-apiserver runs between authentication and
//! authorization: every request is classified by the FlowSchemas into a priority level
//! (`skiff_api::priority_fairness`, pure), exempt levels are served at once, and a limited
//! level serves as many requests as its share of the server's concurrency
//! (`--max-requests-inflight` + `--max-mutating-requests-inflight`) allows, queuing the rest
//! fairly per flow or refusing them as it is configured. A refused request gets kube-apiserver's
//! 429 (its plain-text words, and a `Retry-After` of 1 to 32 seconds growing with the level's
//! refusals); every classified request's answer names the
//! FlowSchema and priority level in `X-Kubernetes-PF-FlowSchema-UID` and
//! `X-Kubernetes-PF-PriorityLevel-UID`. Exec, attach, logs, port-forward and proxy are not
//! subject to it, and watches are classified (their answer carries the headers) but hold no
//! seat, as a watch past its initial events holds none upstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use skiff_api::priority_fairness::{
    flow_hash, list_seats, max_seats, Classification, Dispatched, FlowConfig, LevelKind, QueueSet,
    RefusalTracker, RejectReason, RequestDigest, Verdict, DEFAULT_QUEUE_WAIT,
};
use skiff_auth::request_info::{request_info, RequestInfo};
use skiff_auth::user::UserInfo;
use tokio::sync::oneshot;

use crate::server::ServerState;

/// kube-apiserver's default `--max-requests-inflight`.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's default `--max-mutating-requests-inflight`.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;
/// The body of a refusal, as Go's `http.Error` writes kube-apiserver's text.
pub const TOO_MANY_REQUESTS: &str = "Too many requests, please try again later.\n";
/// The header naming the FlowSchema a request matched (`X-Kubernetes-PF-FlowSchema-UID`;
/// header names are case-insensitive and written lowercase).
pub const FLOW_SCHEMA_UID_HEADER: &str = "x-kubernetes-pf-flowschema-uid";
/// The header naming the priority level a request was served at
/// (`X-Kubernetes-PF-PriorityLevel-UID`).
pub const PRIORITY_LEVEL_UID_HEADER: &str = "x-kubernetes-pf-prioritylevel-uid";

/// One limited level: its queues and the senders waking the requests waiting in them.
struct LevelState {
    set: QueueSet,
    max_seats: u64,
    waiters: HashMap<u64, oneshot::Sender<usize>>,
}

impl LevelState {
    fn wake(&mut self, dispatched: Vec<Dispatched>) {
        for d in dispatched {
            if let Some(waiter) = self.waiters.remove(&d.id) {
                // A waiter gone meanwhile is handled by its own cancel path.
                let _ = waiter.send(d.queue);
            }
        }
    }
}

struct Dispatcher {
    config: Arc<FlowConfig>,
    levels: HashMap<String, LevelState>,
    refusals: HashMap<String, RefusalTracker>,
}

/// The server's flow control: the digested configuration and one queue set per limited
/// priority level, shared by every request.
pub struct FlowControl {
    server_limit: u64,
    queue_wait: Duration,
    next_id: AtomicU64,
    dispatcher: Mutex<Dispatcher>,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl::new(
            DEFAULT_MAX_REQUESTS_INFLIGHT,
            DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        )
        .unwrap_or_else(|_| FlowControl::with_server_limit(600))
    }
}

/// A request's hold on its level's seats, given back when dropped.
pub struct Seats {
    flow: Arc<FlowControl>,
    level: String,
    queue: Option<usize>,
    seats: u64,
}

impl Drop for Seats {
    fn drop(&mut self) {
        let mut dispatcher = self.flow.lock();
        if let Some(level) = dispatcher.levels.get_mut(&self.level) {
            let dispatched = level.set.finish(self.queue, self.seats);
            level.wake(dispatched);
        }
    }
}

/// How an admitted request holds its level: not at all (exempt) or with seats.
pub enum Admission {
    /// An exempt level: nothing is held.
    Exempt,
    /// Seats of a limited level, held until dropped.
    Held(Seats),
}

/// A waiting request's place: it leaves its queue if it is dropped before being dispatched
/// (its client went away), and gives its seats back if it was dispatched just then.
struct WaitingPlace {
    flow: Arc<FlowControl>,
    level: String,
    id: u64,
    seats: u64,
    receiver: oneshot::Receiver<usize>,
    armed: bool,
}

/// The queue a level removed from the configuration hands its waiting requests, which are
/// then served without its accounting.
const LEVEL_REMOVED: usize = usize::MAX;

impl WaitingPlace {
    /// Leaves the queue; the queue it was dispatched from if that happened first.
    fn leave(&mut self) -> Option<usize> {
        self.armed = false;
        let mut dispatcher = self.flow.lock();
        let level = dispatcher.levels.get_mut(&self.level)?;
        level.waiters.remove(&self.id);
        let (was_waiting, dispatched) = level.set.cancel(self.id);
        level.wake(dispatched);
        if was_waiting {
            return None;
        }
        self.receiver.try_recv().ok()
    }
}

impl Drop for WaitingPlace {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(queue) = self.leave().filter(|q| *q != LEVEL_REMOVED) {
            let mut dispatcher = self.flow.lock();
            if let Some(level) = dispatcher.levels.get_mut(&self.level) {
                let dispatched = level.set.finish(Some(queue), self.seats);
                level.wake(dispatched);
            }
        }
    }
}

impl FlowControl {
    /// Flow control over a server concurrency of `max_requests + max_mutating`, as
    /// kube-apiserver sums its two flags; the sum must be positive.
    pub fn new(max_requests: usize, max_mutating: usize) -> Result<FlowControl, String> {
        let total = max_requests
            .checked_add(max_mutating)
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                "--max-requests-inflight plus --max-mutating-requests-inflight must be positive"
                    .to_string()
            })?;
        Ok(FlowControl::with_server_limit(total))
    }

    fn with_server_limit(server_limit: u64) -> FlowControl {
        let flow = FlowControl {
            server_limit,
            queue_wait: DEFAULT_QUEUE_WAIT,
            next_id: AtomicU64::new(1),
            dispatcher: Mutex::new(Dispatcher {
                config: Arc::new(FlowConfig::digest(&[], &[])),
                levels: HashMap::new(),
                refusals: HashMap::new(),
            }),
        };
        flow.apply(FlowConfig::digest(&[], &[]));
        flow
    }

    /// The same with requests waiting in a queue at most `wait` before being refused.
    pub fn with_queue_wait(mut self, wait: Duration) -> FlowControl {
        self.queue_wait = wait;
        self
    }

    /// The server's total concurrency.
    pub fn server_limit(&self) -> u64 {
        self.server_limit
    }

    fn lock(&self) -> MutexGuard<'_, Dispatcher> {
        self.dispatcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the stored FlowSchemas and PriorityLevelConfigurations as the configuration.
    pub fn reconfigure(&self, flow_schemas: &[Value], levels: &[Value]) {
        self.apply(FlowConfig::digest(flow_schemas, levels));
    }

    fn apply(&self, config: FlowConfig) {
        let limits = config.concurrency_limits(self.server_limit);
        let mut dispatcher = self.lock();
        for (name, level) in config.levels() {
            let LevelKind::Limited(queuing) = level.kind else {
                continue;
            };
            let limit = limits.get(name).copied().unwrap_or(0).max(1);
            let hand = queuing.map(|q| q.hand_size);
            match dispatcher.levels.get_mut(name) {
                Some(state) => {
                    state.max_seats = max_seats(limit, hand);
                    let dispatched = state.set.reconfigure(limit, queuing);
                    state.wake(dispatched);
                }
                None => {
                    dispatcher.levels.insert(
                        name.clone(),
                        LevelState {
                            set: QueueSet::new(limit, queuing),
                            max_seats: max_seats(limit, hand),
                            waiters: HashMap::new(),
                        },
                    );
                }
            }
        }
        // A level gone or now exempt: its waiting requests are let through, and its
        // executing ones give their seats back to nothing.
        let kept: Vec<String> = dispatcher.levels.keys().cloned().collect();
        for name in kept {
            let still_limited = config
                .level(&name)
                .is_some_and(|l| matches!(l.kind, LevelKind::Limited(_)));
            if !still_limited {
                if let Some(mut gone) = dispatcher.levels.remove(&name) {
                    for (_, waiter) in gone.waiters.drain() {
                        let _ = waiter.send(LEVEL_REMOVED);
                    }
                }
            }
        }
        dispatcher.config = Arc::new(config);
    }

    /// Where a request goes.
    pub fn classify(&self, request: &RequestDigest) -> Classification {
        let config = self.lock().config.clone();
        config.classify(request)
    }

    /// Counts a refusal at `level`; the `Retry-After` (seconds) to send with it.
    pub fn refused(&self, level: &str) -> i64 {
        let now = jiff::Timestamp::now().as_second();
        let mut dispatcher = self.lock();
        let tracker = dispatcher.refusals.entry(level.to_string()).or_default();
        tracker.record(now);
        tracker.retry_after()
    }

    /// The concurrency limit of a limited level, for tests and figures.
    pub fn concurrency_limit(&self, level: &str) -> Option<u64> {
        self.lock()
            .levels
            .get(level)
            .map(|l| l.set.concurrency_limit())
    }

    /// Admits a classified request needing `seats` (before the level's bound): at once, after
    /// waiting in its queue, or not at all.
    pub async fn admit(
        self: &Arc<Self>,
        classification: &Classification,
        seats: impl FnOnce(u64) -> u64,
    ) -> Result<Admission, RejectReason> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let hash = flow_hash(&classification.schema, &classification.flow);
        let (verdict, seats, receiver) = {
            let mut dispatcher = self.lock();
            let Some(level) = dispatcher.levels.get_mut(&classification.level) else {
                return Ok(Admission::Exempt);
            };
            let seats = seats(level.max_seats).clamp(1, level.max_seats.max(1));
            let (verdict, dispatched) = level.set.arrive(id, hash, seats, Instant::now());
            level.wake(dispatched);
            let receiver = (verdict == Verdict::Wait).then(|| {
                let (sender, receiver) = oneshot::channel();
                level.waiters.insert(id, sender);
                receiver
            });
            (verdict, seats, receiver)
        };
        let held = |queue| {
            Admission::Held(Seats {
                flow: self.clone(),
                level: classification.level.clone(),
                queue,
                seats,
            })
        };
        match verdict {
            Verdict::Execute { queue } => Ok(held(queue)),
            Verdict::Reject(reason) => Err(reason),
            Verdict::Wait => {
                let Some(receiver) = receiver else {
                    return Err(RejectReason::TimedOut);
                };
                let mut place = WaitingPlace {
                    flow: self.clone(),
                    level: classification.level.clone(),
                    id,
                    seats,
                    receiver,
                    armed: true,
                };
                let waited = tokio::time::timeout(self.queue_wait, &mut place.receiver).await;
                let queue = match waited {
                    Ok(Ok(queue)) => {
                        place.armed = false;
                        Some(queue)
                    }
                    // Timed out (or the level went away unannounced): leave the queue,
                    // unless dispatched in the meantime.
                    _ => place.leave(),
                };
                match queue {
                    None => Err(RejectReason::TimedOut),
                    Some(LEVEL_REMOVED) => Ok(Admission::Exempt),
                    Some(queue) => Ok(held(Some(queue))),
                }
            }
        }
    }
}

/// Whether kube-apiserver serves the request outside flow control altogether.
pub fn is_long_running(info: &RequestInfo) -> bool {
    info.verb == "proxy"
        || matches!(
            info.subresource.as_str(),
            "attach" | "exec" | "proxy" | "log" | "portforward"
        )
}

/// What the classifier reads of a request.
pub fn digest(user: &UserInfo, info: &RequestInfo) -> RequestDigest {
    RequestDigest {
        user: user.name.clone(),
        groups: user.groups.clone(),
        verb: info.verb.clone(),
        is_resource_request: info.is_resource_request,
        api_group: info.api_group.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        path: info.path.clone(),
    }
}

/// kube-apiserver's refusal: 429, `Retry-After` in seconds, its text as `http.Error` writes
/// it.
fn too_many_requests(retry_after: i64) -> Response {
    let mut resp = Response::new(Body::from(TOO_MANY_REQUESTS));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = resp.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
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

fn name_headers(resp: &mut Response, classification: &Classification) {
    for (name, value) in [
        (FLOW_SCHEMA_UID_HEADER, &classification.schema_uid),
        (PRIORITY_LEVEL_UID_HEADER, &classification.level_uid),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            resp.headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
}

/// The seats a request takes: a list with a `limit` is taken to read that many objects (the
/// filter knows no stored counts, so a list without one takes one seat, as upstream counts a
/// resource it has no count of); anything else takes one.
fn seats_of(info: &RequestInfo, query: Option<&str>) -> impl FnOnce(u64) -> u64 {
    let is_list = info.verb == "list";
    let limit = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("limit="))
            .and_then(|v| v.parse::<u64>().ok())
    });
    move |max| match limit {
        Some(limit) if is_list => list_seats(Some(limit), None, max),
        _ => 1,
    }
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
    let user = req
        .extensions()
        .get::<crate::authz::Identity>()
        .map(|identity| identity.0.clone());
    let Some(user) = user else {
        return next.run(req).await;
    };
    if is_long_running(&info) {
        return next.run(req).await;
    }
    let classification = state.inflight.classify(&digest(&user, &info));
    if info.verb == "watch" {
        let mut resp = next.run(req).await;
        name_headers(&mut resp, &classification);
        return resp;
    }
    let seats = seats_of(&info, req.uri().query());
    match state.inflight.admit(&classification, seats).await {
        Ok(admission) => {
            let resp = next.run(req).await;
            // The seats are held until the answer is written whole, as a Go handler holds
            // them while it writes: a streamed list body counts too.
            let mut resp = resp.map(|body| {
                Body::new(body.map_err(move |error| {
                    let _held = &admission;
                    error
                }))
            });
            name_headers(&mut resp, &classification);
            resp
        }
        Err(_) => {
            let mut resp = too_many_requests(state.inflight.refused(&classification.level));
            name_headers(&mut resp, &classification);
            resp
        }
    }
}

#[cfg(test)]
mod tests;
