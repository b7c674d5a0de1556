//! The node's kubelet endpoint: the HTTPS server the API server reaches a node's pods through,
//! as it reaches a kubelet on port 10250. It serves the kubelet's paths (`/containerLogs`,
//! `/exec`, `/attach`, `/portForward`) over the node agent's [`PodLogs`] and [`PodStreams`],
//! and its measured usage as the kubelet's Summary API (`/stats/summary`),
//! with a serving certificate from the cluster CA. Every request must present a client
//! certificate the cluster CA signed (else 401), and only the API server's kubelet client
//! identity (or `system:masters`) is allowed (else 403): a simplification of the kubelet's
//! SubjectAccessReview to the one user the `system:kubelet-api-admin` role is bound to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use skiff_auth::user::UserInfo;
use skiff_client::logs::{LogOptions, PodLogs};
use skiff_client::streams::{
    PodStreamKind, PodStreamRequest, PodStreams, Refusal, UpgradedConnection,
};
use skiff_stream::negotiate::negotiate;
use skiff_stream::portforward::PortForwardOptions;
use skiff_stream::remotecommand::RemoteCommandOptions;
use tokio::net::TcpListener;

/// The user name of the API server's client certificate toward kubelets (kubeadm's name).
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// What a kubelet endpoint answers with.
type KubeletBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// What the endpoint serves: the node agent's logs and streaming sessions.
pub(crate) struct KubeletEndpoint {
    /// The node's container logs.
    pub(crate) logs: Arc<dyn PodLogs>,
    /// The node's exec, attach and port-forward sessions.
    pub(crate) streams: Arc<dyn PodStreams>,
    /// Reads a pod's uid when the path names none.
    pub(crate) client: Arc<dyn skiff_client::Client>,
    /// The node's name, as its Summary names it.
    pub(crate) node_name: String,
    /// The node's measured usage, served as the Summary API.
    pub(crate) metrics: Option<Arc<dyn skiff_client::metrics::ResourceMetrics>>,
}

/// Which kubelet path a request names.
#[derive(Debug, PartialEq, Eq)]
enum KubeletPath {
    /// `/containerLogs/{namespace}/{pod}/{container}`.
    Logs {
        namespace: String,
        pod: String,
        container: String,
    },
    /// `/exec|/attach/{namespace}/{pod}[/{uid}]/{container}`, `/portForward/{namespace}/{pod}[/{uid}]`.
    Stream {
        kind: PodStreamKind,
        namespace: String,
        pod: String,
        uid: String,
        container: Option<String>,
    },
    /// `/stats/summary`: the node's and its pods' usage.
    Summary,
}

/// Reads a kubelet path. Pure.
fn parse_path(path: &str) -> Option<KubeletPath> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let owned = |s: &&str| s.to_string();
    match segments.as_slice() {
        ["stats", "summary"] => Some(KubeletPath::Summary),
        ["containerLogs", namespace, pod, container] => Some(KubeletPath::Logs {
            namespace: owned(namespace),
            pod: owned(pod),
            container: owned(container),
        }),
        [verb @ ("exec" | "attach"), namespace, pod, rest @ ..] if !rest.is_empty() => {
            let kind = if *verb == "exec" {
                PodStreamKind::Exec
            } else {
                PodStreamKind::Attach
            };
            let (uid, container) = match rest {
                [container] => (String::new(), owned(container)),
                [uid, container] => (owned(uid), owned(container)),
                _ => return None,
            };
            Some(KubeletPath::Stream {
                kind,
                namespace: owned(namespace),
                pod: owned(pod),
                uid,
                container: Some(container),
            })
        }
        ["portForward", namespace, pod, rest @ ..] if rest.len() <= 1 => {
            Some(KubeletPath::Stream {
                kind: PodStreamKind::PortForward,
                namespace: owned(namespace),
                pod: owned(pod),
                uid: rest.first().map(owned).unwrap_or_default(),
                container: None,
            })
        }
        _ => None,
    }
}

/// The kubelet's attributes of a request, for its 403 text: `get` on `nodes/log` for logs,
/// `create` on `nodes/proxy` for streams (a `GET` upgrade asks `get`).
fn attributes(path: &KubeletPath, method: &hyper::Method) -> (&'static str, &'static str) {
    let verb = match *method {
        hyper::Method::POST => "create",
        _ => "get",
    };
    match path {
        KubeletPath::Logs { .. } => (verb, "log"),
        KubeletPath::Stream { .. } => (verb, "proxy"),
        KubeletPath::Summary => (verb, "stats"),
    }
}

/// Whether `user` may use the kubelet API: the API server's kubelet client or a cluster
/// admin. Pure.
fn may_use_kubelet_api(user: &UserInfo) -> bool {
    user.name == APISERVER_KUBELET_CLIENT
        || user
            .groups
            .iter()
            .any(|g| g == skiff_auth::user::SYSTEM_MASTERS)
}

/// The kubelet's query names for a remote command's streams (`input`, `output`, `error`,
/// `tty`), as the API server's `stdin`, `stdout`, `stderr`, `tty`. Pure.
fn api_stream_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = match name {
                "input" => "stdin",
                "output" => "stdout",
                "error" => "stderr",
                other => other,
            };
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A log query's options (the kubelet's and the API server's names agree). Pure.
fn log_options(query: &str) -> Result<LogOptions, String> {
    let pairs: Vec<(String, String)> =
        url_decode_pairs(query).map_err(|e| format!("invalid query: {e}"))?;
    let mut options = LogOptions::default();
    let flag = |v: &str| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True");
    let number = |name: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{name}: invalid value {v:?}"))
    };
    for (name, value) in pairs {
        match name.as_str() {
            "follow" => options.follow = flag(&value),
            "previous" => options.previous = flag(&value),
            "timestamps" => options.timestamps = flag(&value),
            "tailLines" => options.tail_lines = Some(number("tailLines", &value)?),
            "limitBytes" => options.limit_bytes = Some(number("limitBytes", &value)?),
            "sinceSeconds" => options.since_seconds = Some(number("sinceSeconds", &value)?),
            "sinceTime" => {
                options.since_time = Some(
                    value
                        .parse()
                        .map_err(|_| format!("sinceTime: invalid value {value:?}"))?,
                )
            }
            _ => {}
        }
    }
    Ok(options)
}

/// Percent-decodes a query's pairs (`+` as a space).
pub(crate) fn url_decode_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |text: &str| -> Result<String, String> {
        let mut bytes = Vec::with_capacity(text.len());
        let raw = text.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'+' => bytes.push(b' '),
                b'%' => {
                    let hex = raw
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| format!("bad escape in {text:?}"))?;
                    bytes.push(hex);
                    i += 2;
                }
                other => bytes.push(other),
            }
            i += 1;
        }
        String::from_utf8(bytes).map_err(|_| format!("{text:?} is not UTF-8"))
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn text_response(status: StatusCode, message: &str) -> Response<KubeletBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn refusal_response(refusal: Refusal) -> Response<KubeletBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(refusal.body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = refusal.status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(refusal.content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    for (name, value) in refusal.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

impl KubeletEndpoint {
    /// Answers one request from `user` (`None`: no client certificate).
    async fn handle(
        self: Arc<Self>,
        user: Option<UserInfo>,
        mut request: Request<Incoming>,
    ) -> Response<KubeletBody> {
        let Some(user) = user else {
            return text_response(StatusCode::UNAUTHORIZED, "Unauthorized");
        };
        let Some(path) = parse_path(request.uri().path()) else {
            return text_response(StatusCode::NOT_FOUND, "404 page not found");
        };
        if !may_use_kubelet_api(&user) {
            let (verb, subresource) = attributes(&path, request.method());
            return text_response(
                StatusCode::FORBIDDEN,
                &format!(
                    "Forbidden (user={}, verb={verb}, resource=nodes, subresource={subresource})",
                    user.name
                ),
            );
        }
        let query = request.uri().query().unwrap_or("").to_string();
        match path {
            KubeletPath::Summary => {
                let Some(metrics) = &self.metrics else {
                    return text_response(StatusCode::NOT_FOUND, "404 page not found");
                };
                let nodes = metrics.nodes().await;
                let node = nodes.iter().find(|n| n.name == self.node_name);
                let pods = metrics.pods().await;
                let document =
                    crate::kubelet_metrics::summary_document(&self.node_name, node, &pods);
                let mut response = Response::new(
                    Full::new(Bytes::from(document.to_string()))
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                response
            }
            KubeletPath::Logs {
                namespace,
                pod,
                container,
            } => {
                let options = match log_options(&query) {
                    Ok(options) => options,
                    Err(message) => return text_response(StatusCode::BAD_REQUEST, &message),
                };
                match self
                    .logs
                    .logs(&namespace, &pod, Some(&container), options)
                    .await
                {
                    Ok(stream) => {
                        let body = StreamBody::new(stream.map(|chunk| chunk.map(Frame::data)));
                        let mut response = Response::new(BodyExt::boxed_unsync(body));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain"),
                        );
                        response
                    }
                    Err(error) => text_response(
                        StatusCode::from_u16(error.code)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        &error.message,
                    ),
                }
            }
            KubeletPath::Stream {
                kind,
                namespace,
                pod,
                uid,
                container,
            } => {
                let negotiated = match negotiate(kind.protocol_kind(), request.headers()) {
                    Ok(negotiated) => negotiated,
                    Err(refusal) => return refusal_response(refusal),
                };
                let (remote_command, ports) = match kind {
                    PodStreamKind::PortForward => {
                        match PortForwardOptions::from_query(&query, negotiated.transport) {
                            Ok(ports) => (RemoteCommandOptions::default(), ports),
                            Err(refusal) => return refusal_response(refusal),
                        }
                    }
                    _ => match RemoteCommandOptions::from_query(&api_stream_query(&query)) {
                        Ok(options) => (options, PortForwardOptions::default()),
                        Err(refusal) => return refusal_response(refusal),
                    },
                };
                let command = match url_decode_pairs(&query) {
                    Ok(pairs) => pairs
                        .into_iter()
                        .filter(|(name, _)| name == "command")
                        .map(|(_, value)| value)
                        .collect(),
                    Err(message) => return text_response(StatusCode::BAD_REQUEST, &message),
                };
                let uid = if uid.is_empty() {
                    let scope = skiff_client::Scope {
                        resource: &skiff_api::kinds::pod::V1,
                        namespace: Some(&namespace),
                    };
                    match self.client.get(scope, &pod).await {
                        Ok(object) => object
                            .pointer("/metadata/uid")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        Err(error) if error.is_not_found() => {
                            return text_response(
                                StatusCode::NOT_FOUND,
                                &format!("pod not found ({namespace}/{pod})"),
                            )
                        }
                        Err(error) => {
                            return text_response(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &error.message(),
                            )
                        }
                    }
                } else {
                    uid
                };
                let stream_request = PodStreamRequest {
                    kind,
                    namespace,
                    pod,
                    uid,
                    container,
                    command,
                    remote_command,
                    ports,
                    negotiated,
                };
                if let Err(refusal) = self.streams.check(&stream_request).await {
                    return refusal_response(refusal);
                }
                let upgrade = hyper::upgrade::on(&mut request);
                let mut response = Response::new(
                    Full::new(Bytes::new())
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                *response.headers_mut() = stream_request.negotiated.response_headers.clone();
                let streams = self.streams.clone();
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(upgraded) => {
                            let connection: UpgradedConnection =
                                Box::new(hyper_util::rt::TokioIo::new(upgraded));
                            streams.serve(stream_request, connection).await;
                        }
                        Err(error) => {
                            tracing::debug!(%error, "the client left before the upgrade")
                        }
                    }
                });
                response
            }
        }
    }
}

/// Serves the kubelet endpoint on `listener` with the TLS `tls` holds (whose verifier checks
/// client certificates against the cluster CA; a renewed certificate is sent there and taken
/// by every later connection) until the task is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: tokio::sync::watch::Receiver<Arc<rustls::ServerConfig>>,
    endpoint: Arc<KubeletEndpoint>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "the kubelet endpoint cannot accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.borrow().clone());
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            serve_connection(acceptor, tcp, peer, endpoint).await;
        });
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    endpoint: Arc<KubeletEndpoint>,
) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(error) => {
            tracing::debug!(%error, %peer, "kubelet endpoint TLS handshake failed");
            return;
        }
    };
    let user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| skiff_apiserver::client_certs::user_of_certificate(leaf.as_ref()));
    let service = hyper::service::service_fn(move |request| {
        let endpoint = endpoint.clone();
        let user = user.clone();
        async move { Ok::<_, Infallible>(endpoint.handle(user, request).await) }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(%error, %peer, "kubelet endpoint connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_name_the_pod_and_container() {
        assert_eq!(
            parse_path("/containerLogs/default/web/c"),
            Some(KubeletPath::Logs {
                namespace: "default".into(),
                pod: "web".into(),
                container: "c".into()
            })
        );
        assert_eq!(
            parse_path("/exec/default/web/c"),
            Some(KubeletPath::Stream {
                kind: PodStreamKind::Exec,
                namespace: "default".into(),
                pod: "web".into(),
                uid: String::new(),
                container: Some("c".into())
            })
        );
        assert_eq!(
            parse_path("/attach/default/web/uid-1/c"),
            Some(KubeletPath::Stream {
                kind: PodStreamKind::Attach,
                namespace: "default".into(),
                pod: "web".into(),
                uid: "uid-1".into(),
                container: Some("c".into())
            })
        );
        assert_eq!(parse_path("/stats/summary"), Some(KubeletPath::Summary));
        assert_eq!(
            attributes(&KubeletPath::Summary, &hyper::Method::GET),
            ("get", "stats")
        );
        assert_eq!(
            parse_path("/portForward/default/web"),
            Some(KubeletPath::Stream {
                kind: PodStreamKind::PortForward,
                namespace: "default".into(),
                pod: "web".into(),
                uid: String::new(),
                container: None
            })
        );
        for bad in [
            "/",
            "/exec/default/web",
            "/containerLogs/default//c",
            "/portForward/a/b/c/d",
            "/pods",
            "/stats",
            "/stats/summary/extra",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_api_servers_kubelet_client_and_cluster_admins_may_use_the_endpoint() {
        let server = UserInfo::new(APISERVER_KUBELET_CLIENT, &[]);
        let admin = UserInfo::new("root", &[skiff_auth::user::SYSTEM_MASTERS]);
        let node = UserInfo::new("system:node:n1", &["system:nodes"]);
        assert!(may_use_kubelet_api(&server));
        assert!(may_use_kubelet_api(&admin));
        assert!(!may_use_kubelet_api(&node));
    }

    #[test]
    fn the_kubelets_stream_and_log_queries_are_read() {
        assert_eq!(
            api_stream_query("command=sh&input=1&output=1&error=1&tty=0"),
            "command=sh&stdin=1&stdout=1&stderr=1&tty=0"
        );
        let options =
            log_options("follow=true&tailLines=5&sinceTime=2024-05-01T10%3A00%3A00Z").unwrap();
        assert!(options.follow);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(
            options.since_time,
            Some("2024-05-01T10:00:00Z".parse().unwrap())
        );
        assert!(log_options("tailLines=-1").is_err());
        assert_eq!(
            url_decode_pairs("command=echo+a%3Bb").unwrap(),
            vec![("command".to_string(), "echo a;b".to_string())]
        );
    }
}
