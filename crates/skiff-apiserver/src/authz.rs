//! Who a request is and whether it may proceed: the identity authentication established,
//! impersonation (`kubectl --as`, `--as-group`) checked with the `impersonate` verb, and every
//! request authorized as kube-apiserver does it (members of `system:masters` first, then the
//! Node authorizer for kubelets, then RBAC over the stored Roles, ClusterRoles and bindings),
//! refused with Kubernetes' 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Map, Value};
use skiff_api::kinds;
use skiff_auth::attributes::{Attributes, ResourceTarget, Target};
use skiff_auth::rbac::RbacSnapshot;
use skiff_auth::request_info::request_info;
use skiff_auth::user::{
    UserInfo, ANONYMOUS, SERVICE_ACCOUNT_PREFIX, SYSTEM_AUTHENTICATED, SYSTEM_MASTERS,
    SYSTEM_UNAUTHENTICATED,
};

use crate::registry::{ListOptions, Registry};
use crate::server::ServerState;
use crate::status::{ApiError, ServerApiError};

/// The user name the admin token authenticates as (k3s's admin identity).
pub const ADMIN_USER: &str = "system:admin";

/// The identity authentication gave a request, kept in its extensions for what follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity(pub UserInfo);

/// The admin token's identity: `system:admin` in `system:masters`, so it is allowed everything
/// before any rule is read, as a cluster-admin certificate is in k3s and kubeadm.
pub fn admin_user() -> UserInfo {
    UserInfo::new(ADMIN_USER, &[SYSTEM_MASTERS, SYSTEM_AUTHENTICATED])
}

/// The identity of a request without credentials, as kube-apiserver's anonymous
/// authenticator gives it.
pub fn anonymous_user() -> UserInfo {
    UserInfo::new(ANONYMOUS, &[SYSTEM_UNAUTHENTICATED])
}

/// The Roles, ClusterRoles and bindings the authorizer decides from: the registry's cached
/// snapshot while no RBAC write happened since it was listed, else a fresh one.
pub async fn rbac_snapshot(registry: &Registry) -> Result<Arc<RbacSnapshot>, ApiError> {
    let cache = registry.rbac_cache();
    if let Some(snapshot) = cache.current() {
        return Ok(snapshot);
    }
    let generation = cache.generation();
    let snapshot = Arc::new(read_rbac_snapshot(registry).await?);
    cache.offer(generation, snapshot.clone());
    Ok(snapshot)
}

/// Reads the four RBAC kinds from the registry, bypassing the cache.
pub async fn read_rbac_snapshot(registry: &Registry) -> Result<RbacSnapshot, ApiError> {
    let mut snapshot = RbacSnapshot::new();
    let options = ListOptions::default();
    for item in registry.list(&kinds::role::V1, None, &options).await?.items {
        snapshot.add_role(&item);
    }
    for item in registry
        .list(&kinds::cluster_role::V1, None, &options)
        .await?
        .items
    {
        snapshot.add_cluster_role(&item);
    }
    for item in registry
        .list(&kinds::role_binding::V1, None, &options)
        .await?
        .items
    {
        snapshot.add_role_binding(&item);
    }
    for item in registry
        .list(&kinds::cluster_role_binding::V1, None, &options)
        .await?
        .items
    {
        snapshot.add_cluster_role_binding(&item);
    }
    Ok(snapshot)
}

/// The `system:node` rules the Node authorizer applies, built once.
fn node_rules() -> &'static [skiff_auth::rule::PolicyRule] {
    static RULES: std::sync::OnceLock<Vec<skiff_auth::rule::PolicyRule>> =
        std::sync::OnceLock::new();
    RULES.get_or_init(crate::rbac_bootstrap::node_policy_rules)
}

/// A refusal for want of a relationship decided again from the node's pods as stored: the
/// graph follows a watch, and a pod bound a moment ago may not be in it yet. Only refusals
/// read the store; `None` when the stored pods do not allow either.
async fn recheck_with_stored_pods(
    registry: &Registry,
    node: &str,
    attrs: &Attributes,
) -> Result<Option<skiff_auth::node::NodeDecision>, ApiError> {
    use skiff_auth::node::{authorize_node, NodeDecision, NodeGraph};
    let options = ListOptions {
        field_selector: Some(format!("spec.nodeName={node}")),
        ..ListOptions::default()
    };
    let pods = registry.list(&kinds::pod::V1, None, &options).await?.items;
    let mut graph = NodeGraph::new();
    for pod in &pods {
        graph.set_pod(pod);
    }
    Ok(match authorize_node(&graph, node_rules(), node, attrs) {
        NodeDecision::Allow => Some(NodeDecision::Allow),
        NodeDecision::NoOpinion(_) => None,
    })
}

/// Decides `attrs` as kube-apiserver with `--authorization-mode=Node,RBAC`: members of
/// `system:masters` first, then the Node authorizer for kubelets, then RBAC. A refusal carries
/// every authorizer's reason, one a line, as the union authorizer joins them.
pub async fn authorize(
    registry: &Registry,
    attrs: &Attributes,
) -> Result<skiff_auth::rbac::Decision, ApiError> {
    use skiff_auth::node::{authorize_node, node_identity, NodeDecision};
    if attrs.user.in_group(SYSTEM_MASTERS) {
        return Ok(skiff_auth::rbac::Decision {
            allowed: true,
            reason: String::new(),
        });
    }
    let mut reasons = Vec::new();
    if let Some(node) = node_identity(&attrs.user) {
        let decision = registry
            .node_graph()
            .read(registry, |graph| {
                authorize_node(graph, node_rules(), node, attrs)
            })
            .await?;
        let decision = match decision {
            NodeDecision::NoOpinion(reason) if reason.starts_with("no relationship found") => {
                recheck_with_stored_pods(registry, node, attrs)
                    .await?
                    .unwrap_or(NodeDecision::NoOpinion(reason))
            }
            other => other,
        };
        match decision {
            NodeDecision::Allow => {
                return Ok(skiff_auth::rbac::Decision {
                    allowed: true,
                    reason: String::new(),
                })
            }
            NodeDecision::NoOpinion(reason) if !reason.is_empty() => reasons.push(reason),
            NodeDecision::NoOpinion(_) => {}
        }
    }
    let decision = rbac_snapshot(registry).await?.authorize(attrs);
    if decision.allowed {
        return Ok(decision);
    }
    if !decision.reason.is_empty() {
        reasons.push(decision.reason);
    }
    Ok(skiff_auth::rbac::Decision {
        allowed: false,
        reason: reasons.join("\n"),
    })
}

/// The 403 `Status` Kubernetes answers a refused request with (`errors.NewForbidden` around
/// the authorizer's words), its details naming the resource and object.
pub fn forbidden(attrs: &Attributes, reason: &str) -> ApiError {
    let mut error = ApiError::forbidden(attrs.forbidden_message(reason));
    let mut details = Map::new();
    if let Target::Resource(r) = &attrs.target {
        for (key, value) in [
            ("name", &r.name),
            ("group", &r.api_group),
            ("kind", &r.resource),
        ] {
            if !value.is_empty() {
                details.insert(key.into(), value.as_str().into());
            }
        }
    }
    error.details = Some(Value::Object(details));
    error
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn impersonate_attributes(
    requester: &UserInfo,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Attributes {
    Attributes::resource(
        requester.clone(),
        "impersonate",
        ResourceTarget {
            namespace: namespace.into(),
            api_group: String::new(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: String::new(),
            name: name.into(),
        },
    )
}

/// The user a request acts as: the authenticated one, or the one its `Impersonate-User` and
/// `Impersonate-Group` headers name once the requester may `impersonate` each of them.
pub async fn acting_user(
    registry: &Registry,
    requester: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let users = header_values(headers, "Impersonate-User");
    let groups = header_values(headers, "Impersonate-Group");
    let uids = header_values(headers, "Impersonate-Uid");
    let Some(name) = users.first().copied() else {
        if groups.is_empty() && uids.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups or a uid without impersonating a user",
        ));
    };
    let mut checks = Vec::new();
    let service_account = name
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((namespace, account)) => checks.push(impersonate_attributes(
            &requester,
            "serviceaccounts",
            namespace,
            account,
        )),
        None => checks.push(impersonate_attributes(&requester, "users", "", name)),
    }
    for group in &groups {
        checks.push(impersonate_attributes(&requester, "groups", "", group));
    }
    for uid in &uids {
        checks.push(impersonate_attributes(&requester, "uids", "", uid));
    }
    for check in &checks {
        let decision = authorize(registry, check).await?;
        if !decision.allowed {
            return Err(forbidden(check, &decision.reason));
        }
    }
    Ok(impersonated_user(name, &groups, uids.first().copied()))
}

/// The user a request impersonates, as kube-apiserver builds it: the named groups (a
/// ServiceAccount without any gets `system:serviceaccounts` and its namespace's group), plus
/// `system:authenticated` unless an authentication group was named (`system:unauthenticated`
/// for `system:anonymous`).
pub fn impersonated_user(name: &str, groups: &[&str], uid: Option<&str>) -> UserInfo {
    let mut acting_groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let service_account_namespace = name
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .map(|(namespace, _)| namespace);
    if let Some(namespace) = service_account_namespace {
        if acting_groups.is_empty() {
            acting_groups.push("system:serviceaccounts".into());
            acting_groups.push(format!("system:serviceaccounts:{namespace}"));
        }
    }
    let has = |g: &str| acting_groups.iter().any(|x| x == g);
    if name == ANONYMOUS {
        if !has(SYSTEM_UNAUTHENTICATED) {
            acting_groups.push(SYSTEM_UNAUTHENTICATED.into());
        }
    } else if !has(SYSTEM_AUTHENTICATED) && !has(SYSTEM_UNAUTHENTICATED) {
        acting_groups.push(SYSTEM_AUTHENTICATED.into());
    }
    UserInfo {
        name: name.to_string(),
        uid: uid.unwrap_or_default().to_string(),
        groups: acting_groups,
        extra: Default::default(),
    }
}

/// The middleware after authentication: settles the acting user, derives the request's
/// attributes and lets it through only when authorized.
pub async fn authorize_request(
    State(state): State<Arc<ServerState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(Identity(requester)) = req.extensions().get::<Identity>().cloned() else {
        // Only the public health and version paths pass authentication without an identity.
        return next.run(req).await;
    };
    let headers = req.headers().clone();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let result = async {
        let user = acting_user(&state.registry, requester, &headers).await?;
        let info = request_info(&method, &path, query.as_deref())
            .map_err(|e| ApiError::internal(format!("failed to create RequestInfo: {}", e.0)))?;
        let attrs = info.attributes(user.clone());
        let decision = authorize(&state.registry, &attrs).await?;
        if decision.allowed {
            Ok(user)
        } else {
            Err(forbidden(&attrs, &decision.reason))
        }
    }
    .await;
    let user = match result {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    if !user.in_group(SYSTEM_MASTERS) && writes_rbac_object(&method, &path) {
        let (parts, body) = req.into_parts();
        let bytes = match crate::server::read_body(body).await {
            Ok(bytes) => bytes,
            Err(e) => return e.into_response(),
        };
        if let Ok(info) = request_info(&method, &path, query.as_deref()) {
            let written = if method == "PATCH" {
                patched_object(&state.registry, &info, &parts.headers, &bytes).await
            } else {
                crate::bodies::decode_object(&parts.headers, &bytes).ok()
            };
            // A body that does not decode or apply is refused later, before anything is written.
            if let Some(object) = written {
                if let Err(e) = confirm_no_escalation(&state.registry, &user, &info, &object).await
                {
                    return e.into_response();
                }
            }
        }
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    req.extensions_mut().insert(Identity(user));
    next.run(req).await
}

/// The object a PATCH would leave: the patch applied to the stored object (to nothing, for an
/// apply that creates), or `None` when it cannot be worked out here.
async fn patched_object(
    registry: &Registry,
    info: &skiff_auth::request_info::RequestInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Value> {
    use skiff_api::patch::{apply_patch, decode_patch_body, PatchType};
    let resource = skiff_api::resources::find(&info.api_group, &info.api_version, &info.resource)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())?;
    let patch_type = PatchType::from_content_type(content_type)?;
    let patch = decode_patch_body(patch_type, body).ok()?;
    let namespace = (!info.namespace.is_empty()).then_some(info.namespace.as_str());
    let current = match registry.get(resource, namespace, &info.name).await {
        Ok(current) => current,
        Err(e) if e.code == 404 && patch_type == PatchType::Apply => json!({}),
        Err(_) => return None,
    };
    apply_patch(resource, &current, patch_type, &patch).ok()
}

/// Whether a request creates, replaces or patches a Role, ClusterRole or binding, whose
/// content the escalation check reads.
fn writes_rbac_object(method: &str, path: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
        && path.starts_with("/apis/rbac.authorization.k8s.io/")
        && request_info(method, path, None).is_ok_and(|i| {
            i.subresource.is_empty()
                && matches!(
                    i.resource.as_str(),
                    "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
                )
        })
}

fn rbac_target(namespace: &str, resource: &str, name: &str) -> ResourceTarget {
    ResourceTarget {
        namespace: namespace.into(),
        api_group: skiff_api::rbac::GROUP.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: String::new(),
        name: name.into(),
    }
}

/// kube-apiserver's escalation prevention on RBAC writes: a role may hold only rules its
/// writer holds (or the writer may `escalate` it), a binding may grant only a role whose rules
/// its writer holds (or the writer may `bind` it), and only a writer holding every right (or
/// who may `escalate`) sets an `aggregationRule`.
pub async fn confirm_no_escalation(
    registry: &Registry,
    user: &UserInfo,
    info: &skiff_auth::request_info::RequestInfo,
    object: &Value,
) -> Result<(), ApiError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(&info.name)
        .to_string();
    let namespace = info.namespace.clone();
    let refuse = |message: String| {
        let attrs = Attributes::resource(
            user.clone(),
            &info.verb,
            rbac_target(&namespace, &info.resource, &name),
        );
        let mut error = forbidden(&attrs, "");
        let qualified = format!("{}.{}", info.resource, skiff_api::rbac::GROUP);
        error.message = if name.is_empty() {
            format!("{qualified} is forbidden: {message}")
        } else {
            format!("{qualified} {name:?} is forbidden: {message}")
        };
        error
    };
    let allowed_to = |verb: &str, resource: &str, target_name: &str| {
        Attributes::resource(
            user.clone(),
            verb,
            rbac_target(&namespace, resource, target_name),
        )
    };
    match info.resource.as_str() {
        "roles" | "clusterroles" => {
            if authorize(registry, &allowed_to("escalate", &info.resource, &name))
                .await?
                .allowed
            {
                return Ok(());
            }
            let snapshot = rbac_snapshot(registry).await?;
            let rules = skiff_auth::rule::PolicyRule::list_from_json(object);
            snapshot
                .confirm_no_escalation(user, &namespace, &rules)
                .map_err(&refuse)?;
            // An aggregation rule can gather anything, so it takes every right there is.
            if object.get("aggregationRule").is_some_and(|r| !r.is_null()) {
                let full_authority = [
                    skiff_auth::rule::PolicyRule::resources(&["*"], &["*"], &["*"]),
                    skiff_auth::rule::PolicyRule::urls(&["*"], &["*"]),
                ];
                if snapshot
                    .confirm_no_escalation(user, &namespace, &full_authority)
                    .is_err()
                {
                    return Err(refuse(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    ));
                }
            }
            Ok(())
        }
        _ => {
            let kind = object
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role_name = object
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role_resource = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if authorize(registry, &allowed_to("bind", role_resource, role_name))
                .await?
                .allowed
            {
                return Ok(());
            }
            let snapshot = rbac_snapshot(registry).await?;
            let role_ref = skiff_auth::rbac::RoleRef {
                kind: kind.to_string(),
                name: role_name.to_string(),
            };
            let rules = snapshot
                .role_ref_rules(&role_ref, &namespace)
                .map_err(&refuse)?
                .to_vec();
            snapshot
                .confirm_no_escalation(user, &namespace, &rules)
                .map_err(refuse)
        }
    }
}

/// `SelfSubjectAccessReview` and `SubjectAccessReview` (`authorization.k8s.io/v1`): the
/// review's `spec` as attributes, answered with `status.allowed` and the reason.
pub async fn access_review(
    registry: &Registry,
    user: &UserInfo,
    review: Value,
    self_review: bool,
) -> Result<Value, ApiError> {
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let subject = if self_review {
        user.clone()
    } else {
        let groups: Vec<String> = spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let name = spec.get("user").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() && groups.is_empty() {
            return Err(invalid_review(
                "spec.user",
                "at least one of user or group must be specified",
            ));
        }
        UserInfo {
            name: name.to_string(),
            uid: spec
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            groups,
            extra: Default::default(),
        }
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let attrs = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) if r.is_object() => Attributes::resource(
            subject,
            &text(r, "verb"),
            ResourceTarget {
                namespace: text(r, "namespace"),
                api_group: text(r, "group"),
                api_version: text(r, "version"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                name: text(r, "name"),
            },
        ),
        (None, Some(n)) if n.is_object() => {
            Attributes::non_resource(subject, &text(n, "verb"), &text(n, "path"))
        }
        (Some(_), Some(_)) => {
            return Err(invalid_review(
                "spec.resourceAttributes",
                "cannot be specified in combination with spec.nonResourceAttributes",
            ))
        }
        _ => {
            return Err(invalid_review(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ))
        }
    };
    let decision = authorize(registry, &attrs).await?;
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = decision.reason.into();
    }
    let mut answer = review;
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("status".into(), status);
        obj.entry("metadata").or_insert_with(|| json!({}));
    }
    Ok(answer)
}

fn invalid_review(field: &str, detail: &str) -> ApiError {
    let errors = [skiff_api::errors::FieldError::invalid(
        field,
        &Value::Null,
        detail,
    )];
    ApiError {
        code: 422,
        reason: "Invalid",
        message: skiff_api::errors::invalid_message(
            "SubjectAccessReview.authorization.k8s.io",
            "",
            &errors,
        ),
        details: None,
    }
}

/// The review kinds served at `POST /apis/GROUP/v1/PLURAL`, computed and never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Review {
    SelfSubjectAccess,
    SubjectAccess,
    SelfSubjectRules,
    SelfSubject,
    Token,
}

fn review_of(path: &str) -> Option<Review> {
    match path.trim_end_matches('/') {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Some(Review::SelfSubjectAccess),
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => Some(Review::SubjectAccess),
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Some(Review::SelfSubjectRules),
        "/apis/authentication.k8s.io/v1/selfsubjectreviews" => Some(Review::SelfSubject),
        "/apis/authentication.k8s.io/v1/tokenreviews" => Some(Review::Token),
        _ => None,
    }
}

/// Whether `path` is one of the review endpoints [`serve_review`] answers.
pub fn is_review_path(path: &str) -> bool {
    review_of(path).is_some()
}

/// Answers the review endpoints (`kubectl auth can-i`, `can-i --list`, `auth whoami`).
pub async fn serve_review(state: &ServerState, req: Request) -> Result<Response, ApiError> {
    let Some(review) = review_of(req.uri().path()) else {
        return Err(ApiError::path_not_found());
    };
    if req.method() != axum::http::Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let Some(Identity(user)) = req.extensions().get::<Identity>().cloned() else {
        return Err(ApiError::unauthorized());
    };
    let (parts, body) = req.into_parts();
    let bytes = crate::server::read_body(body).await?;
    let object = crate::bodies::decode_object(&parts.headers, &bytes)?;
    let registry = &state.registry;
    let answer = match review {
        Review::SelfSubjectAccess => access_review(registry, &user, object, true).await?,
        Review::SubjectAccess => access_review(registry, &user, object, false).await?,
        Review::SelfSubjectRules => rules_review(registry, &user, object).await?,
        Review::SelfSubject => self_subject_review(&user, object),
        Review::Token => {
            crate::token_request::token_review(
                registry,
                object,
                crate::token_request::now_seconds(),
            )
            .await?
        }
    };
    Ok(crate::server::json_response(
        axum::http::StatusCode::CREATED,
        &answer,
    ))
}

/// `SelfSubjectRulesReview`: the rules the user holds in `spec.namespace`, as
/// `kubectl auth can-i --list` prints them.
pub async fn rules_review(
    registry: &Registry,
    user: &UserInfo,
    review: Value,
) -> Result<Value, ApiError> {
    let namespace = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (mut rules, errors) = rbac_snapshot(registry).await?.rules_for(user, &namespace);
    if user.in_group(SYSTEM_MASTERS) {
        // kube-apiserver's privileged-group authorizer comes first and lists everything for
        // its members; RBAC's rules follow.
        rules.splice(
            0..0,
            [
                skiff_auth::rule::PolicyRule::resources(&["*"], &["*"], &["*"]),
                skiff_auth::rule::PolicyRule::urls(&["*"], &["*"]),
            ],
        );
    }
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in &rules {
        if !rule.resources.is_empty() {
            let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                r["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(r);
        }
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = errors.join(", ").into();
    }
    let mut answer = review;
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("status".into(), status);
        obj.entry("metadata").or_insert_with(|| json!({}));
    }
    Ok(answer)
}

/// `SelfSubjectReview` (`kubectl auth whoami`): the user as the server sees it.
pub fn self_subject_review(user: &UserInfo, mut review: Value) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = user.uid.clone().into();
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    if let Some(obj) = review.as_object_mut() {
        obj.insert("status".into(), json!({"userInfo": info}));
        obj.entry("metadata").or_insert_with(|| json!({}));
    }
    review
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_statuses_carry_kubernetes_details() {
        let attrs = Attributes::resource(
            UserInfo::new("jane", &[SYSTEM_AUTHENTICATED]),
            "create",
            ResourceTarget {
                namespace: "default".into(),
                api_group: "apps".into(),
                resource: "deployments".into(),
                ..ResourceTarget::default()
            },
        );
        let status = forbidden(&attrs, "").to_status();
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(
            status["details"],
            json!({"group": "apps", "kind": "deployments"})
        );
        assert_eq!(
            status["message"],
            r#"deployments.apps is forbidden: User "jane" cannot create resource "deployments" in API group "apps" in the namespace "default""#
        );
        let path = Attributes::non_resource(UserInfo::new("jane", &[]), "get", "/metrics");
        assert_eq!(forbidden(&path, "").to_status()["details"], json!({}));
    }

    #[test]
    fn impersonated_users_get_their_authentication_groups() {
        assert_eq!(
            impersonated_user("jane", &[], None),
            UserInfo::new("jane", &[SYSTEM_AUTHENTICATED])
        );
        assert_eq!(
            impersonated_user("jane", &["devs"], Some("42")).groups,
            ["devs", SYSTEM_AUTHENTICATED]
        );
        assert_eq!(
            impersonated_user("jane", &[SYSTEM_UNAUTHENTICATED], None).groups,
            [SYSTEM_UNAUTHENTICATED]
        );
        assert_eq!(
            impersonated_user(ANONYMOUS, &[], None).groups,
            [SYSTEM_UNAUTHENTICATED]
        );
        assert_eq!(
            impersonated_user("system:serviceaccount:dev:default", &[], None).groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:dev",
                SYSTEM_AUTHENTICATED
            ]
        );
        assert_eq!(
            impersonated_user("system:serviceaccount:dev:default", &["ops"], None).groups,
            ["ops", SYSTEM_AUTHENTICATED]
        );
    }

    #[test]
    fn whoami_reports_name_and_groups() {
        let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        let answered = self_subject_review(&admin_user(), review);
        assert_eq!(
            answered["status"]["userInfo"],
            json!({"username": "system:admin", "groups": ["system:masters", "system:authenticated"]})
        );
    }

    fn registry(dir: &tempfile::TempDir) -> Registry {
        let store = skiff_store::SqliteStore::open(&dir.path().join("state.db")).expect("store");
        Registry::new(Arc::new(store))
    }

    fn jane_lists_pods() -> Attributes {
        Attributes::resource(
            UserInfo::new("jane", &[SYSTEM_AUTHENTICATED]),
            "list",
            ResourceTarget {
                namespace: "default".into(),
                api_version: "v1".into(),
                resource: "pods".into(),
                ..ResourceTarget::default()
            },
        )
    }

    fn node_reads_secret(node: &str, name: &str) -> Attributes {
        Attributes::resource(
            UserInfo::new(
                format!("system:node:{node}"),
                &["system:nodes", SYSTEM_AUTHENTICATED],
            ),
            "get",
            ResourceTarget {
                namespace: "default".into(),
                api_version: "v1".into(),
                resource: "secrets".into(),
                name: name.into(),
                ..ResourceTarget::default()
            },
        )
    }

    /// Polls the decision until it is `allowed` (the graph follows pods through a watch).
    async fn decision_becomes(registry: &Registry, attrs: &Attributes, allowed: bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let decision = authorize(registry, attrs).await.unwrap();
            if decision.allowed == allowed {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{attrs:?} still decided {decision:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn wait_until<F: std::future::Future<Output = bool>>(
        what: &str,
        mut probe: impl FnMut() -> F,
    ) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !probe().await {
            assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn nodes_read_only_the_secrets_of_their_pods_as_pods_come_and_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(&dir);
        crate::system::ensure_builtin_namespaces(&registry)
            .await
            .expect("namespaces");
        crate::rbac_bootstrap::reconcile(&registry)
            .await
            .expect("rbac");
        let write = crate::registry::WriteOptions::default;
        // Before any pod, node a is refused with the Node authorizer's reason alone.
        let refused = authorize(&registry, &node_reads_secret("a", "creds"))
            .await
            .unwrap();
        assert!(!refused.allowed);
        assert_eq!(
            forbidden(&node_reads_secret("a", "creds"), &refused.reason).message,
            "secrets \"creds\" is forbidden: User \"system:node:a\" cannot get resource \"secrets\" \
             in API group \"\" in the namespace \"default\": no relationship found between node 'a' \
             and this object"
        );
        registry
            .create(
                &kinds::pod::V1,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"nodeName": "a", "containers": [{"name": "c", "image": "busybox"}],
                                "volumes": [{"name": "s", "secret": {"secretName": "creds"}}]}}),
                write(),
            )
            .await
            .expect("pod");
        decision_becomes(&registry, &node_reads_secret("a", "creds"), true).await;
        // The informer brings the pod into the graph itself, without the refusal's recheck.
        let graph = registry.node_graph().clone();
        wait_until("the pod to reach the graph", || async {
            graph
                .read(&registry, |g| {
                    g.reaches("a", skiff_auth::node::Reachable::Secret, "default", "creds")
                })
                .await
                .unwrap()
        })
        .await;
        assert!(
            !authorize(&registry, &node_reads_secret("b", "creds"))
                .await
                .unwrap()
                .allowed,
            "node b has no pod using the secret"
        );
        registry
            .delete(
                &kinds::pod::V1,
                Some("default"),
                "web",
                &crate::registry::DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await
            .expect("delete");
        decision_becomes(&registry, &node_reads_secret("a", "creds"), false).await;
    }

    #[tokio::test]
    async fn a_binding_applies_to_the_very_next_request_and_its_deletion_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(&dir);
        crate::system::ensure_builtin_namespaces(&registry)
            .await
            .expect("namespaces");
        let write = crate::registry::WriteOptions::default;
        // Warm the cache with a snapshot in which jane holds nothing.
        assert!(
            !authorize(&registry, &jane_lists_pods())
                .await
                .unwrap()
                .allowed
        );
        registry
            .create(
                &kinds::role::V1,
                Some("default"),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": {"name": "pod-reader", "namespace": "default"},
                       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
                write(),
            )
            .await
            .expect("role");
        assert!(
            !authorize(&registry, &jane_lists_pods())
                .await
                .unwrap()
                .allowed
        );
        registry
            .create(
                &kinds::role_binding::V1,
                Some("default"),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "jane-reads", "namespace": "default"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]}),
                write(),
            )
            .await
            .expect("binding");
        let decision = authorize(&registry, &jane_lists_pods()).await.unwrap();
        assert!(
            decision.allowed,
            "the new binding was not applied: {decision:?}"
        );
        registry
            .delete(
                &kinds::role_binding::V1,
                Some("default"),
                "jane-reads",
                &crate::registry::DeleteOptions::default(),
            )
            .await
            .expect("delete binding");
        assert!(
            !authorize(&registry, &jane_lists_pods())
                .await
                .unwrap()
                .allowed,
            "the deleted binding still applied"
        );
    }

    #[tokio::test]
    async fn the_snapshot_is_read_once_until_an_rbac_object_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(&dir);
        crate::system::ensure_builtin_namespaces(&registry)
            .await
            .expect("namespaces");
        let first = rbac_snapshot(&registry).await.expect("snapshot");
        let again = rbac_snapshot(&registry).await.expect("snapshot");
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged snapshot was re-read"
        );
        // Writes to other kinds keep it.
        registry
            .create(
                &kinds::config_map::V1,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
                crate::registry::WriteOptions::default(),
            )
            .await
            .expect("config map");
        let after_other = rbac_snapshot(&registry).await.expect("snapshot");
        assert!(Arc::ptr_eq(&first, &after_other));
        registry
            .create(
                &kinds::cluster_role::V1,
                None,
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "nothing"}}),
                crate::registry::WriteOptions::default(),
            )
            .await
            .expect("cluster role");
        let after_rbac = rbac_snapshot(&registry).await.expect("snapshot");
        assert!(
            !Arc::ptr_eq(&first, &after_rbac),
            "an RBAC write kept the old snapshot"
        );
    }
}
