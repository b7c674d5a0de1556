//! The streaming pod subresources `pods/exec`, `pods/attach` and `pods/portforward`, placed as
//! kube-apiserver places them: the server checks the request (the pod, the container, the
//! options), negotiates the protocol, answers `101` and hands the upgraded connection to
//! whoever runs the pod's node ([`PodStreams`]), which runs the session. For a node in another
//! process, the implementation proxies the connection to its kubelet endpoint over HTTPS, as
//! kube-apiserver proxies to the kubelet.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use skiff_auth::attributes::{Attributes, ResourceTarget};
use skiff_auth::user::UserInfo;
pub use skiff_client::streams::{
    PodStreamKind, PodStreamRequest, PodStreams, Refusal, UpgradedConnection, UpgradedIo,
};
use skiff_stream::negotiate::{negotiate, Transport};
use skiff_stream::portforward::PortForwardOptions;
use skiff_stream::remotecommand::RemoteCommandOptions;

use crate::authz::Identity;
use crate::registry::Registry;
use crate::status::ApiError;

/// Which streaming subresource `path` names, with the pod's namespace and name:
/// `/api/v1/namespaces/NS/pods/NAME/{exec,attach,portforward}`.
pub fn parse_path(path: &str) -> Option<(PodStreamKind, String, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "namespaces", namespace, "pods", name, sub]
            if !namespace.is_empty() && !name.is_empty() =>
        {
            let kind = match *sub {
                "exec" => PodStreamKind::Exec,
                "attach" => PodStreamKind::Attach,
                "portforward" => PodStreamKind::PortForward,
                _ => return None,
            };
            Some((kind, namespace.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// The repeated `command` parameters of a query, decoded, in order.
pub fn commands(query: &str) -> Result<Vec<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    Ok(pairs
        .into_iter()
        .filter(|(name, _)| name == "command")
        .map(|(_, value)| value)
        .collect())
}

fn single(query: &str, key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs
        .into_iter()
        .rev()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value)
}

/// The answer to a refused upgrade, as the kubelet or kube-apiserver writes it.
fn refusal_response(refusal: Refusal) -> Response {
    let mut response = (
        refusal.status,
        [(header::CONTENT_TYPE, refusal.content_type)],
        refusal.body,
    )
        .into_response();
    for (name, value) in refusal.headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// The `create` on the subresource a streaming request must also be allowed, as
/// kube-apiserver's compound check for WebSocket upgrades: authorization of a `GET` (the
/// WebSocket handshake) asked only for `get`, while the session is the `create` that SPDY's
/// `POST` is. Pure.
fn create_on_subresource(
    user: UserInfo,
    kind: PodStreamKind,
    namespace: &str,
    name: &str,
) -> Attributes {
    Attributes::resource(
        user,
        "create",
        ResourceTarget {
            namespace: namespace.to_string(),
            api_group: String::new(),
            api_version: "v1".to_string(),
            resource: "pods".to_string(),
            subresource: kind.subresource().to_string(),
            name: name.to_string(),
        },
    )
}

/// Serves one streaming request: the checks, the negotiation, the audit line, then the `101`
/// and the session handed to `streams`.
pub async fn serve(
    registry: &Registry,
    streams: Option<&Arc<dyn PodStreams>>,
    target: (PodStreamKind, String, String),
    request: Request,
) -> Result<Response, ApiError> {
    let (kind, namespace, name) = target;
    let (mut parts, _body) = request.into_parts();
    let query = parts.uri.query().unwrap_or("").to_string();
    let query = query.as_str();
    let headers = &parts.headers;
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let user = parts
        .extensions
        .get::<Identity>()
        .map(|Identity(user)| user.clone());
    if let (Some(user), true) = (&user, parts.method == Method::GET) {
        let attrs = create_on_subresource(user.clone(), kind, &namespace, &name);
        let decision = crate::authz::authorize(registry, &attrs).await?;
        if !decision.allowed {
            return Err(crate::authz::forbidden(&attrs, &decision.reason));
        }
    }
    let pods = skiff_api::resources::find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pod = registry.get(pods, Some(&namespace), &name).await?;
    let command = commands(query)?;
    let container = match kind {
        PodStreamKind::PortForward => None,
        _ => Some(crate::logs::select_container(
            &pod,
            single(query, "container").as_deref(),
        )?),
    };
    if kind == PodStreamKind::Exec && command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let on_node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !on_node {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let Some(streams) = streams else {
        return Err(ApiError::bad_request(format!(
            "pod {name} runs on a node this server cannot reach for {}",
            kind.subresource()
        )));
    };
    let negotiated = match negotiate(kind.protocol_kind(), headers) {
        Ok(negotiated) => negotiated,
        Err(refusal) => return Ok(refusal_response(refusal)),
    };
    let remote_command = match kind {
        PodStreamKind::PortForward => RemoteCommandOptions::default(),
        _ => match RemoteCommandOptions::from_query(query) {
            Ok(options) => options,
            Err(refusal) => return Ok(refusal_response(refusal)),
        },
    };
    let ports = match kind {
        // The API names the parameter `ports`, the kubelet `port`.
        PodStreamKind::PortForward => {
            let kubelet_query = query
                .split('&')
                .map(|pair| match pair.strip_prefix("ports=") {
                    Some(value) => format!("port={value}"),
                    None => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&");
            match PortForwardOptions::from_query(&kubelet_query, negotiated.transport) {
                Ok(ports) => ports,
                Err(refusal) => return Ok(refusal_response(refusal)),
            }
        }
        _ => PortForwardOptions::default(),
    };
    let request = PodStreamRequest {
        kind,
        namespace,
        pod: name,
        uid: pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        container,
        command,
        remote_command,
        ports,
        negotiated,
    };
    if let Err(refusal) = streams.check(&request).await {
        return Ok(refusal_response(refusal));
    }
    let Some(upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    tracing::info!(
        target: "audit",
        user = user.as_ref().map_or("", |user| user.name.as_str()),
        verb = "create",
        resource = "pods",
        subresource = kind.subresource(),
        namespace = %request.namespace,
        pod = %request.pod,
        container = request.container.as_deref().unwrap_or(""),
        command = ?request.command,
        protocol = %request.negotiated.protocol,
        transport = transport_name(request.negotiated.transport),
        "streaming request accepted"
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = request.negotiated.response_headers.clone();
    let streams = streams.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let connection: UpgradedConnection =
                    Box::new(hyper_util::rt::TokioIo::new(upgraded));
                streams.serve(request, connection).await;
            }
            Err(error) => {
                tracing::debug!(%error, pod = %request.pod, "the client left before the upgrade");
            }
        }
    });
    Ok(response)
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Spdy => "spdy",
        Transport::SpdyOverWebSocket => "spdy-over-websocket",
        Transport::WebSocket { .. } => "websocket",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot where `jane` holds `verbs` on `pods/exec` in `default`.
    fn jane_may(verbs: &[&str]) -> skiff_auth::rbac::RbacSnapshot {
        let mut snapshot = skiff_auth::rbac::RbacSnapshot::new();
        snapshot.add_role(&serde_json::json!({
            "metadata": {"name": "exec", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs}],
        }));
        snapshot.add_role_binding(&serde_json::json!({
            "metadata": {"name": "exec", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "exec"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}],
        }));
        snapshot
    }

    #[test]
    fn a_websocket_session_needs_create_on_the_subresource_and_not_only_get() {
        let jane = UserInfo::new("jane", &[skiff_auth::user::SYSTEM_AUTHENTICATED]);
        let attrs = create_on_subresource(jane, PodStreamKind::Exec, "default", "shell");
        assert!(!jane_may(&["get"]).authorize(&attrs).allowed);
        assert!(jane_may(&["create"]).authorize(&attrs).allowed);
        assert_eq!(
            attrs.forbidden_message(""),
            "pods \"shell\" is forbidden: User \"jane\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn streaming_paths_name_their_subresource_and_pod() {
        assert_eq!(
            parse_path("/api/v1/namespaces/a/pods/web/exec"),
            Some((PodStreamKind::Exec, "a".into(), "web".into()))
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/pods/web/attach").map(|t| t.0),
            Some(PodStreamKind::Attach)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/pods/web/portforward").map(|t| t.0),
            Some(PodStreamKind::PortForward)
        );
        assert_eq!(parse_path("/api/v1/namespaces/a/pods/web/log"), None);
        assert_eq!(parse_path("/api/v1/namespaces/a/services/web/exec"), None);
        assert_eq!(parse_path("/api/v1/namespaces//pods/web/exec"), None);
    }

    #[test]
    fn repeated_command_parameters_keep_their_order_and_decoding() {
        let query = "command=sh&command=-c&command=echo+out%3B+exit+3&container=c&stdout=true";
        assert_eq!(
            commands(query).unwrap(),
            vec!["sh", "-c", "echo out; exit 3"]
        );
        assert_eq!(single(query, "container").as_deref(), Some("c"));
        assert!(commands("stdout=true").unwrap().is_empty());
    }
}
