//! The HTTP front: routing, authentication, content negotiation, and the REST verbs over the
//! registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_api::kinds::RegistryHook;
use skiff_api::printers::{self, IncludeObject};
use skiff_api::resources::{self, ResourceInfo, Subresource};

use crate::admission::FieldValidation;
use crate::discovery::{self, DiscoveryFormat};
use crate::registry::{
    DeleteOptions, Deleted, ListOptions, ListPage, Registry, StoredList, WriteOptions, Written,
};
use crate::status::{ApiError, ServerApiError};
use crate::{bodies, meta, scale};

/// The largest request body accepted, as Kubernetes limits it (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the HTTP layer needs: the registry and the credentials it accepts.
pub struct ServerState {
    /// The registry every request goes through.
    pub registry: Registry,
    /// Bearer tokens accepted.
    pub tokens: Vec<String>,
    /// The address clients reach the server at, for legacy discovery.
    pub advertise_address: String,
    /// Where `pods/NAME/log` reads from; `None` when no node agent runs in this process.
    pub logs: Option<Arc<dyn crate::logs::PodLogs>>,
    /// Where `pods/exec`, `attach` and `portforward` sessions run; `None` without a node agent.
    pub streams: Option<Arc<dyn crate::streaming::PodStreams>>,
    /// Where `metrics.k8s.io` reads from; `None` when nothing in this process measures pods.
    pub metrics: Option<Arc<dyn crate::metrics::ResourceMetrics>>,
    /// API Priority and Fairness over the server's concurrency (`--max-requests-inflight`
    /// plus `--max-mutating-requests-inflight`).
    pub inflight: Arc<crate::inflight::FlowControl>,
}

/// Builds the router.
pub fn router(state: Arc<ServerState>) -> Router {
    router_with(state, Router::new())
}

/// Builds the router with `extra` routes served beside the API, behind the same
/// authentication and panic recovery, so that an embedder (or a test) can add endpoints that
/// get the protections every API request gets.
pub fn router_with(state: Arc<ServerState>, extra: Router<Arc<ServerState>>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/version", get(version))
        .merge(extra)
        .fallback(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::authz::authorize_request,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::inflight::limit_inflight,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(crate::recovery::recover_panics))
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

async fn version() -> Response {
    json_response(StatusCode::OK, &discovery::version())
}

/// Every path but the health checks and `/version` (public in Kubernetes too) is
/// authenticated: a client certificate the cluster CA signed (checked first, as kube-apiserver's
/// x509 authenticator comes first) or the admin token; a wrong token is 401, and a request
/// with neither is `system:anonymous`. The identity is kept in the request for authorization.
async fn authenticate(
    State(state): State<Arc<ServerState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | CA_CERTS_PATH
    ) {
        return next.run(req).await;
    }
    let certificate_user = req
        .extensions()
        .get::<crate::client_certs::CertificateUser>()
        .and_then(|c| c.0.clone());
    if let Some(user) = certificate_user {
        req.extensions_mut().insert(crate::authz::Identity(user));
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .filter(|p| !p.is_empty());
    let Some(presented) = presented else {
        // No credential at all: the request is anonymous and authorized like any other.
        req.extensions_mut()
            .insert(crate::authz::Identity(crate::authz::anonymous_user()));
        return next.run(req).await;
    };
    let ok = state
        .tokens
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), presented.as_bytes()));
    if ok {
        req.extensions_mut()
            .insert(crate::authz::Identity(crate::authz::admin_user()));
        return next.run(req).await;
    }
    if crate::bootstrap_tokens::parse(presented).is_some() {
        if let Some(user) = crate::bootstrap_tokens::authenticate(&state.registry, presented).await
        {
            req.extensions_mut().insert(crate::authz::Identity(user));
            return next.run(req).await;
        }
    }
    if crate::token_request::looks_like_jwt(presented) {
        let verified = crate::token_request::authenticate(
            &state.registry,
            presented,
            crate::service_account_tokens::API_AUDIENCES,
            crate::token_request::now_seconds(),
        )
        .await;
        match verified {
            Ok((user, _)) => {
                req.extensions_mut().insert(crate::authz::Identity(user));
                return next.run(req).await;
            }
            Err(error) => tracing::debug!(%error, "refused a ServiceAccount token"),
        }
    }
    ApiError::unauthorized().into_response()
}

/// The token of an `Authorization` header, as Kubernetes' bearer authenticator reads it: the
/// scheme in any case (the Python client's in-cluster configuration sends `bearer`), then the
/// token after whitespace.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    json_response_typed(code, body, "application/json")
}

fn json_response_typed(code: StatusCode, body: &Value, content_type: &'static str) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

/// What a path names.
enum Target {
    CoreDiscovery,
    GroupsDiscovery,
    Group(String),
    GroupVersion(String, String),
    OpenApiRoot,
    OpenApiDoc(String, String),
    OpenApiV2,
    Resource {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: Option<String>,
        subresource: Option<Subresource>,
    },
    /// `pods/NAME/exec` or `pods/NAME/attach`: a stream into a container.
    PodStream {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
    },
}

/// The pod subresources that open a stream into a container.
const POD_STREAM_SUBRESOURCES: &[&str] = &["exec", "attach"];

fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["api"] => return Ok(Target::CoreDiscovery),
        ["apis"] => return Ok(Target::GroupsDiscovery),
        ["openapi", "v3"] => return Ok(Target::OpenApiRoot),
        ["openapi", "v2"] => return Ok(Target::OpenApiV2),
        ["openapi", "v3", "api", v] => return Ok(Target::OpenApiDoc(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => {
            return Ok(Target::OpenApiDoc(g.to_string(), v.to_string()))
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => return Ok(Target::Group(g.to_string())),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    if rest.is_empty() {
        return Ok(Target::GroupVersion(group.to_string(), version.to_string()));
    }
    let find =
        |plural: &str| resources::find(group, version, plural).ok_or_else(ApiError::path_not_found);
    let namespaced_target = |ns: &str, rest: &[&str]| -> Result<Target, ApiError> {
        let resource = find(rest[0])?;
        if !resource.namespaced {
            return Err(ApiError::path_not_found());
        }
        object_target(resource, Some(ns.to_string()), &rest[1..])
    };
    match rest {
        ["namespaces", ns, more @ ..]
            if !more.is_empty() && resources::find(group, version, more[0]).is_some() =>
        {
            namespaced_target(ns, more)
        }
        [plural, more @ ..] => {
            let resource = find(plural)?;
            if resource.namespaced && !more.is_empty() {
                return Err(ApiError::path_not_found());
            }
            object_target(resource, None, more)
        }
        [] => Err(ApiError::path_not_found()),
    }
}

fn object_target(
    resource: &'static ResourceInfo,
    namespace: Option<String>,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let (name, subresource) = match rest {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub]
            if skiff_api::kinds::strategy_for(resource).registry_hook() == RegistryHook::Pod
                && POD_STREAM_SUBRESOURCES.contains(sub) =>
        {
            return Ok(Target::PodStream {
                resource,
                namespace,
                name: name.to_string(),
            });
        }
        [name, sub] => {
            let sub = Subresource::parse(sub)
                .filter(|s| resource.has_subresource(*s))
                .ok_or_else(ApiError::path_not_found)?;
            (Some(name.to_string()), Some(sub))
        }
        _ => return Err(ApiError::path_not_found()),
    };
    Ok(Target::Resource {
        resource,
        namespace,
        name,
        subresource,
    })
}

/// Parsed query parameters (last value wins).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
        Ok(Query(pairs.into_iter().collect()))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v}")))
            })
            .transpose()
    }

    fn list_options(&self) -> Result<ListOptions, ApiError> {
        Ok(ListOptions {
            label_selector: self.get("labelSelector").map(str::to_string),
            field_selector: self.get("fieldSelector").map(str::to_string),
            limit: self.number::<usize>("limit")?,
            continue_token: self.get("continue").map(str::to_string),
            resource_version: self.get("resourceVersion").map(str::to_string),
            allow_bookmarks: self.flag("allowWatchBookmarks"),
            timeout: self
                .number::<u64>("timeoutSeconds")?
                .map(Duration::from_secs),
            resource_version_match: self
                .get("resourceVersionMatch")
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            send_initial_events: self.boolean("sendInitialEvents")?,
        })
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it, when given.
    fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value for {key}: {other}"
            ))),
        }
    }

    /// Checks the list or watch options together, as Kubernetes validates `ListOptions`.
    fn validate_list(&self, options: &ListOptions) -> Result<(), ApiError> {
        crate::options::validate_list(&crate::options::ListParameters {
            watch: self.flag("watch"),
            resource_version: options.resource_version.as_deref().unwrap_or(""),
            resource_version_match: options.resource_version_match.as_deref().unwrap_or(""),
            send_initial_events: options.send_initial_events,
            continue_token: options.continue_token.as_deref().unwrap_or(""),
        })
    }

    /// The options of a create (POST), update (PUT) or patch (PATCH), validated as
    /// Kubernetes validates `CreateOptions`, `UpdateOptions` and `PatchOptions`.
    fn write_options(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<WriteOptions, ApiError> {
        let (options_kind, apply_patch) = match *method {
            Method::POST => ("CreateOptions", None),
            Method::PATCH => (
                "PatchOptions",
                Some(bodies::content_type(headers) == "application/apply-patch+yaml"),
            ),
            _ => ("UpdateOptions", None),
        };
        let dry_run = crate::options::validate_write(
            options_kind,
            &crate::options::WriteParameters {
                dry_run: self.get("dryRun"),
                field_manager: self.get("fieldManager").unwrap_or(""),
                force: self.get("force"),
                apply_patch,
            },
        )?;
        let field_manager = match self.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(name) => name.to_string(),
            None => skiff_api::managed_fields::manager_from_user_agent(
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            ),
        };
        Ok(WriteOptions {
            field_validation: FieldValidation::parse(self.get("fieldValidation"))?,
            dry_run,
            field_manager: crate::registry::FieldManagerName::new(&field_manager),
            force: self.get("force") == Some("true"),
            ..WriteOptions::default()
        })
    }
}

/// Whether the client asked for server-side printing.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|part| part.contains("as=Table")))
}

fn accept_header(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn api(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    if crate::authz::is_review_path(req.uri().path()) {
        return match crate::authz::serve_review(&state, req).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        };
    }
    let deprecation = match parse_path(req.uri().path()) {
        _ if crate::component_status::parse_path(req.uri().path()).is_some() => {
            Some(crate::component_status::DEPRECATION_WARNING)
        }
        Ok(Target::Resource { resource, .. }) => {
            skiff_api::resources::deprecation_warning(resource)
        }
        _ => None,
    };
    let user = req
        .extensions()
        .get::<crate::authz::Identity>()
        .map(|identity| identity.0.clone())
        .unwrap_or_else(crate::authz::anonymous_user);
    let req = match crate::api_services::remote_group_answer(&state.registry, req, &user).await {
        Ok(answer) => return answer,
        Err(req) => req,
    };
    let served = crate::webhooks::REQUEST_USER.scope(user, dispatch(&state, req));
    let resp = match served.await {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    };
    match deprecation {
        Some(warning) => with_warnings(resp, &[warning.to_string()]),
        None => resp,
    }
}

/// How much of an oversized body is read and thrown away before answering 413. A client that
/// writes its whole body before reading the answer (as most do) then gets the 413 instead of a
/// reset connection; a client sending more is cut off.
const OVERSIZED_BODY_DRAIN_BYTES: usize = 256 * 1024 * 1024;

/// How long an oversized body is drained at most, so that a slow sender cannot hold a request.
const OVERSIZED_BODY_DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads a request body of at most [`MAX_BODY_BYTES`]; a larger one is a 413.
pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody;
    let declared_too_large =
        usize::try_from(body.size_hint().lower()).map_or(true, |n| n > MAX_BODY_BYTES);
    let mut chunks = body.into_data_stream();
    if declared_too_large {
        drain_oversized(chunks).await;
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let mut collected = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if collected.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
            drain_oversized(chunks).await;
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// Discards what is left of an oversized body, within the drain limits.
async fn drain_oversized(mut chunks: axum::body::BodyDataStream) {
    let drain = async {
        let mut discarded = 0usize;
        while let Some(Ok(chunk)) = chunks.next().await {
            discarded = discarded.saturating_add(chunk.len());
            if discarded > OVERSIZED_BODY_DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(OVERSIZED_BODY_DRAIN_TIME, drain).await;
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

pub(crate) fn written(code: StatusCode, w: Written) -> Response {
    with_warnings(json_response(code, &w.object), &w.warnings)
}

/// Writes who asked into a new object's `spec.username`, `uid`, `groups` and `extra`, replacing
/// whatever the body claimed, as Kubernetes does for CertificateSigningRequests.
fn record_requestor(obj: &mut Value, user: Option<&skiff_auth::user::UserInfo>) {
    if !obj.is_object() {
        return;
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    for key in ["username", "uid", "groups", "extra"] {
        if let Some(map) = spec.as_object_mut() {
            map.remove(key);
        }
    }
    let Some(user) = user else { return };
    if !user.name.is_empty() {
        spec["username"] = json!(user.name);
    }
    if !user.uid.is_empty() {
        spec["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        spec["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        spec["extra"] = json!(user.extra);
    }
}

async fn dispatch(state: &Arc<ServerState>, req: Request) -> Result<Response, ApiError> {
    if let Some(target) = crate::streaming::parse_path(req.uri().path()) {
        let streams = state.streams.as_ref();
        return crate::streaming::serve(&state.registry, streams, target, req).await;
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let identity = parts
        .extensions
        .get::<crate::authz::Identity>()
        .map(|i| i.0.clone());
    let headers = parts.headers;
    let query = Query::parse(parts.uri.query())?;
    let registry = &state.registry;
    if let Some((namespace, name)) = crate::token_request::parse_token_path(parts.uri.path()) {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed());
        }
        let request = bodies::decode_object(&headers, &read_body(body).await?)?;
        if let Some(user) = identity
            .as_ref()
            .filter(|u| skiff_auth::node::node_identity(u).is_some())
        {
            crate::node_restriction::admit_token_request_of(
                registry, user, &namespace, &name, &request,
            )
            .await?;
        }
        let answer = crate::token_request::request_token(
            registry,
            &namespace,
            &name,
            request,
            crate::token_request::now_seconds(),
        )
        .await?;
        return Ok(json_response(StatusCode::CREATED, &answer));
    }
    if let Some(metrics) = &state.metrics {
        if let Some(target) = crate::metrics_api::parse_path(parts.uri.path()) {
            let target = target?;
            if method != Method::GET || query.flag("watch") {
                return Err(ApiError::method_not_allowed());
            }
            let metrics_query = crate::metrics_api::MetricsQuery {
                label_selector: query.get("labelSelector").map(str::to_string),
                field_selector: query.get("fieldSelector").map(str::to_string),
                table: wants_table(&headers),
                include_object: IncludeObject::parse(query.get("includeObject")),
            };
            let body =
                crate::metrics_api::serve(registry, metrics.as_ref(), target, &metrics_query)
                    .await?;
            return Ok(json_response(StatusCode::OK, &body));
        }
    }
    if let Some(name) = crate::component_status::parse_path(parts.uri.path()) {
        if method != Method::GET || query.flag("watch") {
            return Err(ApiError::method_not_allowed());
        }
        let body = crate::component_status::serve(
            registry,
            name,
            wants_table(&headers),
            IncludeObject::parse(query.get("includeObject")),
        )
        .await?;
        return Ok(json_response(StatusCode::OK, &body));
    }
    let target = parse_path(parts.uri.path())?;
    match target {
        Target::CoreDiscovery | Target::GroupsDiscovery => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed());
            }
            let core = matches!(target, Target::CoreDiscovery);
            let format = DiscoveryFormat::from_accept(accept_header(&headers));
            let mut doc = match (format, core) {
                (DiscoveryFormat::Legacy, true) => {
                    discovery::api_versions(&state.advertise_address)
                }
                (DiscoveryFormat::Legacy, false) => discovery::api_group_list(),
                (f, core) => discovery::aggregated(core, f),
            };
            if !core && state.metrics.is_some() {
                discovery::advertise_metrics(&mut doc, format);
            }
            if !core {
                let remote = state.registry.aggregator().remote_group_versions();
                discovery::advertise_remote(&mut doc, format, &remote);
            }
            Ok(json_response_typed(
                StatusCode::OK,
                &doc,
                format.content_type(),
            ))
        }
        Target::Group(g) if g == crate::metrics_api::GROUP && state.metrics.is_some() => Ok(
            json_response(StatusCode::OK, &discovery::metrics_group_doc()),
        ),
        Target::GroupVersion(g, v)
            if g == crate::metrics_api::GROUP
                && v == crate::metrics_api::VERSION
                && state.metrics.is_some() =>
        {
            Ok(json_response(
                StatusCode::OK,
                &discovery::metrics_resource_list(),
            ))
        }
        Target::PodStream {
            resource,
            namespace,
            name,
        } => {
            if method != Method::GET && method != Method::POST {
                return Err(ApiError::method_not_allowed());
            }
            let pod = registry.get(resource, namespace.as_deref(), &name).await?;
            crate::logs::select_container(&pod, query.get("container"))?;
            let on_node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !on_node {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            Err(ApiError::bad_request(
                "this server does not stream into containers: exec and attach are not supported",
            ))
        }
        Target::Group(g) => discovery::api_group_doc(&g)
            .map(|d| json_response(StatusCode::OK, &d))
            .ok_or_else(ApiError::path_not_found),
        Target::GroupVersion(g, v) => discovery::api_resource_list(&g, &v)
            .map(|d| json_response(StatusCode::OK, &d))
            .ok_or_else(ApiError::path_not_found),
        Target::OpenApiRoot => Ok(json_response(
            StatusCode::OK,
            &crate::openapi::root_document(),
        )),
        Target::OpenApiV2 => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::openapi_v2::MEDIA_TYPE)],
            crate::openapi_v2::document_bytes(),
        )
            .into_response()),
        Target::OpenApiDoc(g, v) => {
            crate::openapi::document_bytes(&crate::openapi::path_key(&g, &v))
                .map(|bytes| {
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/json")],
                        bytes,
                    )
                        .into_response()
                })
                .ok_or_else(ApiError::path_not_found)
        }
        Target::Resource {
            resource,
            namespace,
            name,
            subresource,
        } => {
            let ns = namespace.as_deref();
            match (method.clone(), name, subresource) {
                (Method::GET, None, None) => {
                    let opts = query.list_options()?;
                    query.validate_list(&opts)?;
                    if query.flag("watch") {
                        return watch(registry, resource, ns, &opts, &headers, &query).await;
                    }
                    let list = registry.list_stored(resource, ns, &opts).await?;
                    list_response(registry, resource, list, &headers, &query)
                }
                (Method::POST, None, None) => {
                    let mut obj =
                        bodies::decode_object_of(resource.kind, &headers, &read_body(body).await?)?;
                    if skiff_api::kinds::strategy_for(resource).records_requestor() {
                        record_requestor(&mut obj, identity.as_ref());
                    }
                    let w = registry
                        .create(resource, ns, obj, query.write_options(&method, &headers)?)
                        .await?;
                    Ok(written(StatusCode::CREATED, w))
                }
                (Method::DELETE, None, None)
                    if !crate::discovery::supports_delete_collection(resource) =>
                {
                    Err(ApiError::method_not_allowed())
                }
                (Method::DELETE, None, None) => {
                    let opts = delete_options(&query, &headers, &read_body(body).await?)?;
                    let list = registry.list(resource, ns, &query.list_options()?).await?;
                    let mut deleted = Vec::new();
                    for item in list.items {
                        match registry
                            .delete(resource, meta::namespace(&item), meta::name(&item), &opts)
                            .await
                        {
                            Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => deleted.push(o),
                            Err(e) if e.code == 404 => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({"kind": resource.list_kind(), "apiVersion": resource.api_version(),
                                "metadata": {"resourceVersion": list.resource_version.to_string()}, "items": deleted}),
                    ))
                }
                (Method::GET, Some(name), None)
                | (
                    Method::GET,
                    Some(name),
                    Some(
                        Subresource::Status
                        | Subresource::EphemeralContainers
                        | Subresource::Approval,
                    ),
                ) => {
                    let obj = registry.get(resource, ns, &name).await?;
                    if wants_table(&headers) {
                        let include = IncludeObject::parse(query.get("includeObject"));
                        let mut table = printers::table(
                            resource,
                            std::slice::from_ref(&obj),
                            include,
                            jiff::Timestamp::now(),
                        );
                        table["metadata"] =
                            json!({"resourceVersion": meta::resource_version(&obj).unwrap_or("")});
                        return Ok(json_response(StatusCode::OK, &table));
                    }
                    Ok(json_response(StatusCode::OK, &obj))
                }
                (
                    Method::PUT,
                    Some(name),
                    sub @ (None
                    | Some(
                        Subresource::Status
                        | Subresource::EphemeralContainers
                        | Subresource::Approval,
                    )),
                ) => {
                    let obj =
                        bodies::decode_object_of(resource.kind, &headers, &read_body(body).await?)?;
                    let w = registry
                        .update(
                            resource,
                            ns,
                            &name,
                            obj,
                            sub,
                            query.write_options(&method, &headers)?,
                        )
                        .await?;
                    Ok(written(StatusCode::OK, w))
                }
                (
                    Method::PATCH,
                    Some(name),
                    sub @ (None
                    | Some(
                        Subresource::Status
                        | Subresource::EphemeralContainers
                        | Subresource::Approval,
                    )),
                ) => {
                    let raw = read_body(body).await?;
                    bodies::patch(
                        registry,
                        resource,
                        ns,
                        &name,
                        sub,
                        &headers,
                        &raw,
                        query.write_options(&method, &headers)?,
                    )
                    .await
                }
                (Method::DELETE, Some(name), None) => {
                    let opts = delete_options(&query, &headers, &read_body(body).await?)?;
                    let default_warning = match opts.propagation_policy {
                        None => skiff_api::kinds::strategy_for(resource)
                            .default_propagation()
                            .map(|(_, warning)| warning.to_string()),
                        Some(_) => None,
                    };
                    let answer = match registry.delete(resource, ns, &name, &opts).await? {
                        Deleted::Gone(obj) => Ok(json_response(
                            StatusCode::OK,
                            &deleted_status(resource, &obj),
                        )),
                        Deleted::Pending(obj) => {
                            if skiff_api::kinds::strategy_for(resource).registry_hook()
                                == RegistryHook::Namespace
                            {
                                crate::system::spawn_namespace_finalizer(
                                    registry.clone(),
                                    name.clone(),
                                );
                            }
                            Ok(json_response(StatusCode::ACCEPTED, &obj))
                        }
                    };
                    match default_warning {
                        Some(warning) => answer.map(|resp| with_warnings(resp, &[warning])),
                        None => answer,
                    }
                }
                (m, Some(name), Some(Subresource::Scale)) => {
                    let raw = if m == Method::GET {
                        Bytes::new()
                    } else {
                        read_body(body).await?
                    };
                    scale::handle(
                        registry,
                        resource,
                        ns,
                        &name,
                        &m,
                        &headers,
                        &raw,
                        query.write_options(&method, &headers)?,
                    )
                    .await
                }
                (Method::POST, Some(name), Some(Subresource::Binding)) => {
                    let binding = bodies::decode_object(&headers, &read_body(body).await?)?;
                    let node = binding
                        .pointer("/target/name")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| ApiError::bad_request("binding target name is required"))?;
                    registry
                        .bind_pod(ns.unwrap_or("default"), &name, node)
                        .await?;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                    ))
                }
                (Method::POST, Some(name), Some(Subresource::Eviction)) => {
                    let eviction = bodies::decode_object(&headers, &read_body(body).await?)?;
                    crate::eviction::check_body(&name, &eviction)?;
                    let delete = match eviction.get("deleteOptions") {
                        None | Some(Value::Null) => json!({}),
                        Some(options) => options.clone(),
                    };
                    let opts = delete_options_from(&query, &delete)?;
                    crate::eviction::evict(registry, ns.unwrap_or("default"), &name, &opts).await?;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &crate::eviction::success_status(),
                    ))
                }
                (Method::GET, Some(name), Some(Subresource::Log)) => {
                    let logs = state.logs.as_ref().ok_or_else(|| {
                        ApiError::bad_request(
                            "logs are served by the node agent, which this server does not run",
                        )
                    })?;
                    let pod = registry.get(resource, ns, &name).await?;
                    let container = crate::logs::select_container(&pod, query.get("container"))?;
                    let options = crate::logs::LogOptions {
                        previous: query.flag("previous"),
                        follow: query.flag("follow"),
                        tail_lines: query.number("tailLines")?,
                        limit_bytes: query.number("limitBytes")?,
                        timestamps: query.flag("timestamps"),
                        since_seconds: query.number("sinceSeconds")?,
                        since_time: query
                            .get("sinceTime")
                            .map(|text| {
                                text.parse::<jiff::Timestamp>().map_err(|e| {
                                    ApiError::bad_request(format!(
                                        "sinceTime: cannot parse {text:?} as an RFC 3339 time: {e}"
                                    ))
                                })
                            })
                            .transpose()?,
                    };
                    let stream = logs
                        .logs(ns.unwrap_or("default"), &name, Some(&container), options)
                        .await?;
                    Ok((
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "text/plain")],
                        Body::from_stream(stream),
                    )
                        .into_response())
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

/// The Status a completed delete answers with.
fn deleted_status(resource: &ResourceInfo, obj: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": meta::name(obj), "group": resource.group, "kind": resource.plural, "uid": meta::uid(obj)},
    })
}

fn delete_options(
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if body.starts_with(crate::protobuf::MAGIC) {
        // kubectl's typed clients (drain's fallback from eviction, `debug --copy-to
        // --replace`) send DeleteOptions as protobuf.
        bodies::decode_object(headers, body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    delete_options_from(query, &body)
}

/// DeleteOptions from their JSON form (a DELETE's body, an Eviction's `deleteOptions`) and the
/// query's overrides.
fn delete_options_from(query: &Query, body: &Value) -> Result<DeleteOptions, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid DeleteOptions: not an object",
        ));
    }
    let grace_period_seconds = match body.get("gracePeriodSeconds") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
                bodies::go_json_kind(value)
            ))
        })?),
    };
    let mut opts = DeleteOptions {
        grace_period_seconds,
        propagation_policy: body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: false,
    };
    let mut dry_run: Vec<&str> = body
        .get("dryRun")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    dry_run.extend(query.get("dryRun"));
    opts.dry_run = crate::options::validate_delete_dry_run(&dry_run)?;
    if let Some(g) = query.number::<i64>("gracePeriodSeconds")? {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(p) = query.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    // The deprecated `orphanDependents` still decides when no policy is given.
    if opts.propagation_policy.is_none() {
        let orphan = body
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
        if let Some(orphan) = orphan {
            let policy = if orphan { "Orphan" } else { "Background" };
            opts.propagation_policy = Some(policy.to_string());
        }
    }
    if let Some(p) = &opts.propagation_policy {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(opts)
}

/// Bytes of encoded objects per chunk of a streamed list body: enough that chunk framing is
/// noise, and the most encoded output a list answer holds at once.
const LIST_CHUNK_BYTES: usize = 256 * 1024;

/// The answer to a list: a Table for server-side printing, otherwise the JSON list streamed
/// from the stored bytes.
fn list_response(
    registry: &Registry,
    resource: &'static ResourceInfo,
    list: StoredList,
    headers: &HeaderMap,
    query: &Query,
) -> Result<Response, ApiError> {
    let metadata = list_metadata(&list);
    if wants_table(headers) {
        let include = IncludeObject::parse(query.get("includeObject"));
        let table = list_table(registry, resource, &list, include, jiff::Timestamp::now())?;
        let mut table = table;
        table["metadata"] = metadata;
        return Ok(json_response(StatusCode::OK, &table));
    }
    let head = json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
    });
    let chunks = ListBody::new(registry.clone(), resource, list.items, &head)?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .map_err(|e| ApiError::internal(format!("building list response: {e}")))
}

/// The list's `metadata`: resourceVersion, and for a cut page its continue token and count.
fn list_metadata<T>(list: &ListPage<T>) -> Value {
    let mut metadata = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(r) = list.remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    metadata
}

/// The Table of a list, decoding one object at a time so that only the rows, never every
/// object's whole tree, are alive at once.
fn list_table(
    registry: &Registry,
    resource: &ResourceInfo,
    list: &StoredList,
    include: IncludeObject,
    now: jiff::Timestamp,
) -> Result<Value, ApiError> {
    let mut table = printers::table(resource, &[], include, now);
    let mut rows = Vec::with_capacity(list.items.len());
    for kv in &list.items {
        let obj = registry.decode_listed(resource, kv)?;
        let mut one = printers::table(resource, std::slice::from_ref(&obj), include, now);
        if let Some(Value::Array(row)) = one.get_mut("rows").map(Value::take) {
            rows.extend(row);
        }
    }
    table["rows"] = Value::Array(rows);
    Ok(table)
}

/// The body of a JSON list as a sequence of chunks: the list's head, then each object as
/// [`Registry::write_listed_json`] writes it, then the closing brackets. Objects are encoded as
/// the body is sent, so no more than one chunk of output exists at a time.
struct ListBody {
    registry: Registry,
    resource: &'static ResourceInfo,
    items: std::vec::IntoIter<skiff_store::KeyValue>,
    buffer: Vec<u8>,
    wrote_item: bool,
    finished: bool,
}

impl ListBody {
    /// Starts the body with `head` (the list without its items) as the first bytes.
    fn new(
        registry: Registry,
        resource: &'static ResourceInfo,
        items: Vec<skiff_store::KeyValue>,
        head: &Value,
    ) -> Result<ListBody, ApiError> {
        let mut buffer = serde_json::to_vec(head).map_err(|e| ApiError::internal(e.to_string()))?;
        // Reopen the head object to append the items member.
        if buffer.pop() != Some(b'}') {
            return Err(ApiError::internal("list head is not a JSON object"));
        }
        let separator: &[u8] = if buffer.len() > 1 { b"," } else { b"" };
        buffer.extend_from_slice(separator);
        buffer.extend_from_slice(b"\"items\":[");
        Ok(ListBody {
            registry,
            resource,
            items: items.into_iter(),
            buffer,
            wrote_item: false,
            finished: false,
        })
    }
}

impl Iterator for ListBody {
    type Item = Result<Bytes, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        while self.buffer.len() < LIST_CHUNK_BYTES {
            let Some(kv) = self.items.next() else {
                self.buffer.extend_from_slice(b"]}");
                self.finished = true;
                break;
            };
            if self.wrote_item {
                self.buffer.push(b',');
            }
            self.wrote_item = true;
            if let Err(error) =
                self.registry
                    .write_listed_json(self.resource, &kv, &mut self.buffer)
            {
                // The status line is already sent: cutting the body short is the only way
                // left to tell the client the answer is incomplete.
                self.finished = true;
                return Some(Err(std::io::Error::other(error.message)));
            }
        }
        let next_buffer = Vec::with_capacity(LIST_CHUNK_BYTES + LIST_CHUNK_BYTES / 4);
        Some(Ok(Bytes::from(std::mem::replace(
            &mut self.buffer,
            next_buffer,
        ))))
    }
}

async fn watch(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    opts: &ListOptions,
    headers: &HeaderMap,
    query: &Query,
) -> Result<Response, ApiError> {
    let mut opts = opts.clone();
    if opts.timeout.is_none() {
        // Kubernetes closes watches after a randomized 30 to 60 minutes; clients re-watch.
        let jitter = uuid::Uuid::new_v4().as_u128() % 1800;
        opts.timeout = Some(Duration::from_secs(1800 + jitter as u64));
    }
    let events = registry.watch(resource, namespace, &opts).await?;
    let table = wants_table(headers);
    let include = IncludeObject::parse(query.get("includeObject"));
    let stream = events.map(move |ev| {
        let object = if table && ev.event_type != "ERROR" && ev.event_type != "BOOKMARK" {
            let mut t = printers::table(
                resource,
                std::slice::from_ref(&ev.object),
                include,
                jiff::Timestamp::now(),
            );
            t["metadata"] =
                json!({"resourceVersion": meta::resource_version(&ev.object).unwrap_or("")});
            t
        } else {
            ev.object
        };
        let mut line = serde_json::to_vec(&json!({"type": ev.event_type, "object": object}))
            .unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| ApiError::internal("building watch response").into_response()))
}

/// Serves the API over TLS like [`serve_tls`], also accepting client certificates signed by
/// `client_ca_pem`, whose subjects authenticate their requests (clients without one still
/// connect and present a token).
pub async fn serve_tls_with_client_ca(
    listener: std::net::TcpListener,
    state: Arc<ServerState>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Vec<u8>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = crate::client_certs::server_config(&cert_pem, &key_pem, &client_ca_pem)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    listener.set_nonblocking(true)?;
    let ca_bundle = String::from_utf8_lossy(&client_ca_pem).into_owned();
    let cacerts = Router::new().route(CA_CERTS_PATH, get(move || async move { ca_bundle }));
    let app = router_with(state, cacerts).into_make_service_with_connect_info::<SocketAddr>();
    axum_server::from_tcp_rustls(listener, config)?
        .map(|tls| {
            crate::client_certs::CertificateUserAcceptor::new(
                tls.acceptor(axum_server::accept::NoDelayAcceptor::new()),
            )
        })
        .handle(handle)
        .serve(app)
        .await
}

/// Where a server that checks client certificates serves its cluster CA bundle (PEM) to anyone,
/// as k3s does: a joining node fetches it before it trusts the server, and accepts it only if
/// its SHA-256 matches the hash its join token carries.
pub const CA_CERTS_PATH: &str = "/cacerts";

/// Serves the API over TLS on `listener` until `shutdown` resolves, then lets open requests
/// finish for a short while.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    state: Arc<ServerState>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem, key_pem).await?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    listener.set_nonblocking(true)?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum_server::from_tcp_rustls(listener, config)?
        // Streamed answers (lists, watches) end in small writes; without TCP_NODELAY each can
        // wait for the client's delayed ACK (40 ms on Linux). Go's servers, Kubernetes' among
        // them, set it on every connection too.
        .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
        .handle(handle)
        .serve(app)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_schemes_are_read_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    fn resource_of(path: &str) -> (String, Option<String>, Option<String>, Option<Subresource>) {
        match parse_path(path) {
            Ok(Target::Resource {
                resource,
                namespace,
                name,
                subresource,
            }) => (resource.plural.to_string(), namespace, name, subresource),
            _ => panic!("{path} is not a resource path"),
        }
    }

    /// A DeleteOptions body as kubectl's typed clients encode it.
    fn protobuf_delete_options(api_version: &str) -> Vec<u8> {
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta_v1;
        use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
        use prost::Message;
        let options = meta_v1::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta_v1::Preconditions {
                uid: Some("5e1f".to_string()),
                resource_version: Some("42".to_string()),
            }),
            propagation_policy: Some("Foreground".to_string()),
            dry_run: vec!["All".to_string()],
            ..Default::default()
        };
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.to_string()),
                kind: Some("DeleteOptions".to_string()),
            }),
            raw: Some(options.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = crate::protobuf::MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        body
    }

    #[test]
    fn protobuf_delete_options_are_read_like_json_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::protobuf::PROTOBUF_MEDIA_TYPE),
        );
        let query = Query::parse(None).unwrap();
        for api_version in ["v1", "meta.k8s.io/v1", "policy/v1"] {
            let body = protobuf_delete_options(api_version);
            let options = delete_options(&query, &headers, &body).unwrap();
            assert_eq!(options.grace_period_seconds, Some(0), "{api_version}");
            assert_eq!(options.propagation_policy.as_deref(), Some("Foreground"));
            assert_eq!(options.precondition_uid.as_deref(), Some("5e1f"));
            assert_eq!(options.precondition_resource_version.as_deref(), Some("42"));
            assert!(options.dry_run);
        }
        let json_body = br#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["Bogus"]}"#;
        let err = delete_options(&query, &HeaderMap::new(), json_body).unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"));
    }

    #[test]
    fn exec_and_attach_are_pod_streams_and_unknown_subresources_are_404_with_details() {
        for sub in ["exec", "attach"] {
            match parse_path(&format!("/api/v1/namespaces/a/pods/web/{sub}")) {
                Ok(Target::PodStream {
                    name, namespace, ..
                }) => {
                    assert_eq!((name.as_str(), namespace.as_deref()), ("web", Some("a")))
                }
                _ => panic!("pods/web/{sub} is not a pod stream"),
            }
        }
        let err = parse_path("/api/v1/namespaces/a/pods/web/debug")
            .err()
            .expect("an unknown subresource is not found");
        assert_eq!(err.code, 404);
        assert_eq!(err.to_status()["details"], json!({}));
        assert!(parse_path("/api/v1/namespaces/a/configmaps/x/exec").is_err());
    }

    #[test]
    fn paths_resolve_to_resources() {
        assert_eq!(
            resource_of("/api/v1/namespaces/default/pods"),
            ("pods".into(), Some("default".into()), None, None)
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/kube-system"),
            ("namespaces".into(), None, Some("kube-system".into()), None)
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/foo/status"),
            (
                "namespaces".into(),
                None,
                Some("foo".into()),
                Some(Subresource::Status)
            )
        );
        assert_eq!(
            resource_of("/apis/apps/v1/namespaces/a/deployments/web/scale"),
            (
                "deployments".into(),
                Some("a".into()),
                Some("web".into()),
                Some(Subresource::Scale)
            )
        );
        assert_eq!(
            resource_of("/apis/apps/v1/deployments"),
            ("deployments".into(), None, None, None)
        );
        assert_eq!(
            resource_of("/api/v1/nodes/n1"),
            ("nodes".into(), None, Some("n1".into()), None)
        );
        assert!(parse_path("/apis/apps/v1/namespaces/a/widgets").is_err());
        assert!(parse_path("/apis/apps/v1/deployments/web").is_err());
        assert!(parse_path("/api/v1/namespaces/a/configmaps/x/scale").is_err());
    }

    #[test]
    fn delete_options_refuse_a_grace_period_that_is_not_an_int64() {
        let query = Query::parse(None).unwrap();
        let headers = HeaderMap::new();
        for body in [
            r#"{"gracePeriodSeconds": "30"}"#,
            r#"{"gracePeriodSeconds": 1.5}"#,
            r#"{"gracePeriodSeconds": 18446744073709551615}"#,
        ] {
            let err = delete_options(&query, &headers, body.as_bytes()).expect_err(body);
            assert_eq!(err.code, 400, "{body}: {err}");
            assert!(
                err.message.contains("DeleteOptions.gracePeriodSeconds"),
                "{err}"
            );
        }
        let opts = delete_options(&query, &headers, br#"{"gracePeriodSeconds": -3}"#).unwrap();
        assert_eq!(opts.grace_period_seconds, Some(-3));
        let opts = delete_options(&query, &headers, br#"{"gracePeriodSeconds": null}"#).unwrap();
        assert_eq!(opts.grace_period_seconds, None);
    }
}
