//! How the API server reaches pods on any node: a pod on the server's own in-process node is
//! served by that node's [`PodLogs`] and [`PodStreams`]; a pod on another node is proxied to
//! that node's kubelet endpoint (its Node's first `InternalIP` and
//! `status.daemonEndpoints.kubeletEndpoint.Port`) over TLS verified against the cluster CA,
//! with the server's `kube-apiserver-kubelet-client` certificate, as kube-apiserver proxies to
//! the kubelet: logs are a `GET` whose body is passed on, streams an upgrade whose bytes are
//! copied both ways.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::Value;
use skiff_api::status::ApiError;
use skiff_client::logs::{select_container, LogOptions, LogStream, PodLogs};
use skiff_client::streams::{
    PodStreamKind, PodStreamRequest, PodStreams, Refusal, UpgradedConnection,
};
use skiff_client::{Client, Scope};
use skiff_stream::negotiate::Transport;

/// The kubelet's port when a Node reports none.
const DEFAULT_KUBELET_PORT: u16 = 10250;
/// The reason of an error kube-apiserver does not classify (Go's `StatusReasonUnknown`), as
/// its transport errors toward kubelets are answered: kubectl prints their message alone.
const UNCLASSIFIED: &str = "";
/// How long connecting to a kubelet may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an upgraded kubelet connection waits for its client's session to begin.
const PENDING_UPGRADE_LIFETIME: Duration = Duration::from_secs(60);

/// Where a node's kubelet endpoint is, from its Node object: the first `InternalIP` (else the
/// first address) and the reported port (10250 when none). Pure.
pub(crate) fn kubelet_address(node: &Value) -> Result<(String, u16), String> {
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a.get("type")?.as_str()?, a.get("address")?.as_str()?)))
        .collect();
    let host = addresses
        .iter()
        .find(|(kind, _)| *kind == "InternalIP")
        .or_else(|| addresses.first())
        .map(|(_, address)| address.to_string())
        .ok_or_else(|| "no preferred addresses found; known addresses: []".to_string())?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host, port))
}

/// The TLS client toward kubelets: `ca_pem` as the only roots, `cert_pem`/`key_pem` as the
/// client certificate.
pub(crate) fn kubelet_client_tls(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        let ca = ca.map_err(|e| format!("the cluster CA is not PEM: {e:?}"))?;
        roots.add(ca).map_err(|e| e.to_string())?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the kubelet client certificate is not PEM: {e:?}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the kubelet client key is not PEM: {e:?}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A dial failure in Go's words (`dial tcp HOST:PORT: connect: connection refused`). Pure.
fn dial_error(authority: &str, error: &std::io::Error) -> String {
    let cause = match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".to_string(),
        std::io::ErrorKind::NetworkUnreachable => "connect: network is unreachable".to_string(),
        _ => error.to_string(),
    };
    format!("dial tcp {authority}: {cause}")
}

/// Opens an HTTP/1.1 connection over `tls` to the kubelet at `host:port`; errors in Go's dial
/// words.
pub(crate) async fn connect_kubelet(
    tls: &tokio_rustls::TlsConnector,
    host: &str,
    port: u16,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("dial tcp {authority}: i/o timeout"))?
        .map_err(|e| dial_error(&authority, &e))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid kubelet address {host}: {e}"))?;
    let tls = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "kubelet connection ended");
        }
    });
    Ok(sender)
}

/// The kubelet path and query of a streaming request, in the kubelet's parameter names. Pure.
fn stream_path(request: &PodStreamRequest) -> String {
    let encode = |text: &str| -> String {
        let mut out = String::new();
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                out.push(byte as char);
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    };
    // The pod's uid is in the path, as kube-apiserver sends it, so a pod recreated under the
    // same name is never reached by mistake.
    let mut pod = format!("{}/{}", encode(&request.namespace), encode(&request.pod));
    if !request.uid.is_empty() {
        pod = format!("{pod}/{}", encode(&request.uid));
    }
    match request.kind {
        PodStreamKind::PortForward => {
            let ports: Vec<String> = request
                .ports
                .ports
                .iter()
                .map(|p| format!("port={p}"))
                .collect();
            let query = if ports.is_empty() {
                String::new()
            } else {
                format!("?{}", ports.join("&"))
            };
            format!("/portForward/{pod}{query}")
        }
        kind => {
            let verb = if kind == PodStreamKind::Exec {
                "exec"
            } else {
                "attach"
            };
            let container = encode(request.container.as_deref().unwrap_or_default());
            let options = &request.remote_command;
            let mut query: Vec<String> = request
                .command
                .iter()
                .map(|c| format!("command={}", encode(c)))
                .collect();
            for (name, on) in [
                ("input", options.stdin),
                ("output", options.stdout),
                ("error", options.stderr),
                ("tty", options.tty),
            ] {
                if on {
                    query.push(format!("{name}=1"));
                }
            }
            format!("/{verb}/{pod}/{container}?{}", query.join("&"))
        }
    }
}

/// What identifies equal streaming requests, so a checked upgrade meets its session.
fn pending_key(request: &PodStreamRequest) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        request.uid,
        request.negotiated.protocol,
        stream_path(request),
        request.kind.subresource()
    )
}

/// An upgraded kubelet connection waiting for its client's session.
struct PendingUpgrade {
    key: String,
    since: Instant,
    connection: hyper::upgrade::Upgraded,
}

/// The server's side of kubelet endpoints: the TLS client and where nodes are.
pub(crate) struct NodeRouter {
    /// The server's own in-process node, if it runs one.
    local_node: Option<String>,
    local_logs: Option<Arc<dyn PodLogs>>,
    local_streams: Option<Arc<dyn PodStreams>>,
    /// Reads pods and nodes.
    client: Arc<dyn Client>,
    /// TLS toward kubelets: the cluster CA as the only root, the kubelet client certificate.
    tls: tokio_rustls::TlsConnector,
    pending: Mutex<Vec<PendingUpgrade>>,
}

impl NodeRouter {
    /// A router reading through `client`, serving `local_node`'s pods with the local
    /// implementations and reaching other nodes with `tls`.
    pub(crate) fn new(
        client: Arc<dyn Client>,
        local_node: Option<String>,
        local_logs: Option<Arc<dyn PodLogs>>,
        local_streams: Option<Arc<dyn PodStreams>>,
        tls: rustls::ClientConfig,
    ) -> NodeRouter {
        NodeRouter {
            local_node,
            local_logs,
            local_streams,
            client,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            pending: Mutex::new(Vec::new()),
        }
    }

    async fn pod(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let scope = Scope {
            resource: &skiff_api::kinds::pod::V1,
            namespace: Some(namespace),
        };
        self.client.get(scope, name).await.map_err(client_error)
    }

    /// The node a pod runs on, unless it is the server's own.
    fn remote_node<'p>(&self, pod: &'p Value) -> Option<&'p str> {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())?;
        (self.local_node.as_deref() != Some(node)).then_some(node)
    }

    async fn kubelet_of(&self, node: &str) -> Result<(String, u16), String> {
        let scope = Scope {
            resource: &skiff_api::kinds::node::V1,
            namespace: None,
        };
        let object = self
            .client
            .get(scope, node)
            .await
            .map_err(|e| e.message())?;
        kubelet_address(&object)
    }

    /// Opens an HTTP/1.1 connection over TLS to `host:port`; errors in Go's dial words.
    async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
        connect_kubelet(&self.tls, host, port).await
    }

    /// Upgrades a connection to the pod's kubelet for `request`; a refusal is what the client
    /// gets instead.
    async fn upgrade(
        &self,
        request: &PodStreamRequest,
    ) -> Result<hyper::upgrade::Upgraded, Refusal> {
        let pod = self
            .pod(&request.namespace, &request.pod)
            .await
            .map_err(|e| status_refusal(e.code, &e.message))?;
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let dial_failed =
            |message: String| status_refusal(500, &format!("error dialing backend: {message}"));
        let (host, port) = self.kubelet_of(node).await.map_err(dial_failed)?;
        let mut sender = self.connect(&host, port).await.map_err(dial_failed)?;
        let path = stream_path(request);
        let mut builder = hyper::Request::builder()
            .method(hyper::Method::GET)
            .uri(&path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::CONNECTION, "Upgrade");
        builder = match request.negotiated.transport {
            Transport::Spdy => builder
                .method(hyper::Method::POST)
                .header(hyper::header::UPGRADE, "SPDY/3.1")
                .header("X-Stream-Protocol-Version", &request.negotiated.protocol),
            Transport::WebSocket { .. } | Transport::SpdyOverWebSocket => {
                let offered = request
                    .negotiated
                    .response_headers
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(&request.negotiated.protocol)
                    .to_string();
                let key: [u8; 16] = rand::random();
                use base64::Engine as _;
                builder
                    .header(hyper::header::UPGRADE, "websocket")
                    .header("Sec-WebSocket-Version", "13")
                    .header(
                        "Sec-WebSocket-Key",
                        base64::engine::general_purpose::STANDARD.encode(key),
                    )
                    .header("Sec-WebSocket-Protocol", offered)
            }
        };
        let upstream = builder
            .body(Empty::new())
            .map_err(|e| status_refusal(500, &e.to_string()))?;
        let mut response = sender
            .send_request(upstream)
            .await
            .map_err(|e| dial_failed(e.to_string()))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let json = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(Refusal {
                status,
                content_type: if json {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                },
                body,
                headers: Vec::new(),
            });
        }
        hyper::upgrade::on(&mut response)
            .await
            .map_err(|e| dial_failed(e.to_string()))
    }
}

/// A `Status` refusal as kube-apiserver's responder writes an error it did not classify.
fn status_refusal(code: u16, message: &str) -> Refusal {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "code": status.as_u16(),
    });
    Refusal {
        status,
        content_type: "application/json",
        body: body.to_string(),
        headers: Vec::new(),
    }
}

fn client_error(error: skiff_client::ClientError) -> ApiError {
    match error {
        skiff_client::ClientError::Api(api) => api,
        other => ApiError::internal(other.to_string()),
    }
}

/// The kubelet query of log options (the kubelet reads the API server's names).
fn log_query(options: &LogOptions) -> String {
    let mut query = Vec::new();
    for (name, on) in [
        ("follow", options.follow),
        ("previous", options.previous),
        ("timestamps", options.timestamps),
    ] {
        if on {
            query.push(format!("{name}=true"));
        }
    }
    for (name, value) in [
        ("tailLines", options.tail_lines),
        ("limitBytes", options.limit_bytes),
        ("sinceSeconds", options.since_seconds),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={value}"));
        }
    }
    if let Some(time) = options.since_time {
        query.push(format!(
            "sinceTime={}",
            time.to_string().replace(':', "%3A")
        ));
    }
    query.join("&")
}

#[async_trait]
impl PodLogs for NodeRouter {
    async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        options: LogOptions,
    ) -> Result<LogStream, ApiError> {
        let object = self.pod(namespace, pod).await?;
        let Some(node) = self.remote_node(&object).map(str::to_string) else {
            return match &self.local_logs {
                Some(local) => local.logs(namespace, pod, container, options).await,
                None => Err(ApiError::bad_request(format!(
                    "pod {pod} does not have a host assigned"
                ))),
            };
        };
        let container = select_container(&object, container)?;
        let (host, port) = self
            .kubelet_of(&node)
            .await
            .map_err(|e| ApiError::new(500, UNCLASSIFIED, e))?;
        let query = log_query(&options);
        let mut path = format!("/containerLogs/{namespace}/{pod}/{container}");
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let url = format!("https://{host}:{port}{path}");
        let failed =
            |message: String| ApiError::new(500, UNCLASSIFIED, format!("Get \"{url}\": {message}"));
        let mut sender = self.connect(&host, port).await.map_err(failed)?;
        let request = hyper::Request::builder()
            .method(hyper::Method::GET)
            .uri(&path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Empty::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| {
                    String::from_utf8_lossy(&b.to_bytes())
                        .trim_end()
                        .to_string()
                })
                .unwrap_or_default();
            let reason = match status.as_u16() {
                400 => "BadRequest",
                404 => "NotFound",
                _ => "InternalError",
            };
            return Err(ApiError::new(status.as_u16(), reason, body));
        }
        let body = http_body_util::BodyStream::new(response.into_body()).filter_map(|frame| {
            futures::future::ready(match frame {
                Ok(frame) => frame.into_data().ok().map(Ok),
                Err(error) => Some(Err(std::io::Error::other(error))),
            })
        });
        Ok(body.boxed())
    }
}

#[async_trait]
impl PodStreams for NodeRouter {
    async fn check(&self, request: &PodStreamRequest) -> Result<(), Refusal> {
        let pod = self
            .pod(&request.namespace, &request.pod)
            .await
            .map_err(|e| status_refusal(e.code, &e.message))?;
        if self.remote_node(&pod).is_none() {
            return match &self.local_streams {
                Some(local) => local.check(request).await,
                None => Err(status_refusal(
                    400,
                    &format!("pod {} does not have a host assigned", request.pod),
                )),
            };
        }
        let connection = self.upgrade(request).await?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|p| p.since.elapsed() < PENDING_UPGRADE_LIFETIME);
        pending.push(PendingUpgrade {
            key: pending_key(request),
            since: Instant::now(),
            connection,
        });
        Ok(())
    }

    async fn serve(&self, request: PodStreamRequest, connection: UpgradedConnection) {
        let key = pending_key(&request);
        let upstream = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .iter()
                .position(|p| p.key == key)
                .map(|at| pending.remove(at).connection)
        };
        let Some(upstream) = upstream else {
            match &self.local_streams {
                Some(local) => local.serve(request, connection).await,
                None => {
                    tracing::warn!(pod = %request.pod, "no node session for a streaming request")
                }
            }
            return;
        };
        let mut client = connection;
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%error, pod = %request.pod, "a proxied stream ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kubelet_is_found_at_the_internal_ip_and_reported_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"},
                          {"type": "InternalIP", "address": "198.18.0.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 41000}}}});
        assert_eq!(
            kubelet_address(&node).unwrap(),
            ("198.18.0.2".to_string(), 41000)
        );
        let unreported = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            kubelet_address(&unreported).unwrap(),
            ("n1".to_string(), 10250)
        );
        assert_eq!(
            kubelet_address(&json!({"status": {}})).unwrap_err(),
            "no preferred addresses found; known addresses: []"
        );
    }

    #[test]
    fn log_options_reach_the_kubelet_in_its_query_names() {
        assert_eq!(log_query(&LogOptions::default()), "");
        let options = LogOptions {
            follow: true,
            timestamps: true,
            tail_lines: Some(5),
            since_time: Some("2024-05-01T10:00:00Z".parse().unwrap()),
            ..LogOptions::default()
        };
        assert_eq!(
            log_query(&options),
            "follow=true&timestamps=true&tailLines=5&sinceTime=2024-05-01T10%3A00%3A00Z"
        );
    }

    #[test]
    fn dial_failures_read_as_go_writes_them() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            dial_error("127.0.0.1:10250", &refused),
            "dial tcp 127.0.0.1:10250: connect: connection refused"
        );
    }
}
