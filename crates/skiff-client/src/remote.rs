//! The [`Client`] over HTTPS: the same calls as the in-process client, sent to a Kubernetes API
//! server's REST paths, so controllers, the scheduler and node agents run unchanged on another
//! machine.
//!
//! Transport is hyper's HTTP/1.1 client on tokio-rustls, one connection per call in flight,
//! idle connections kept for reuse. Watches follow client-go's reflector: a watch the server
//! ends (its `timeoutSeconds` ran out) is reopened from the last resourceVersion seen, bookmarks
//! included, until the caller's own timeout; a resourceVersion the server no longer has ends the
//! stream with the server's `ERROR` event (410 `Expired`), the signal to list again.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::ResourceInfo;
use skiff_auth::user::UserInfo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::{
    name_of, require_scale, ApiError, Client, ClientError, DeleteOptions, ListOptions, ObjectList,
    Scope, WatchEvent,
};

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call other than a watch may take, answer included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each watch request lasts by default before the client reopens it; client-go
/// picks between 5 and 10 minutes.
const DEFAULT_WATCH_WINDOW: Duration = Duration::from_secs(300);
/// How long a watch may stay silent beyond its window before the connection counts as lost.
const WATCH_SILENCE_SLACK: Duration = Duration::from_secs(30);
/// The longest answer or watch line accepted (the server's objects are far smaller).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Idle connections kept for reuse.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// How the client proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// No credentials: the server sees `system:anonymous`.
    Anonymous,
    /// A bearer token (the admin token, a ServiceAccount token).
    Token(String),
    /// A client certificate and its private key, both PEM.
    Certificate {
        /// The certificate chain, PEM.
        certificate_pem: Vec<u8>,
        /// The private key, PEM.
        key_pem: Vec<u8>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(match self {
            Credentials::Anonymous => "Anonymous",
            Credentials::Token(_) => "Token(..)",
            Credentials::Certificate { .. } => "Certificate(..)",
        })
    }
}

/// Where a [`RemoteClient`] connects and as whom.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// The server's base URL, `https://HOST:PORT`.
    pub server: String,
    /// Further servers of the same cluster, tried in order when `server` refuses or resets the
    /// connection (several API servers on one datastore).
    pub fallback_servers: Vec<String>,
    /// The CA bundle (PEM) the server's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// The client's credentials.
    pub credentials: Credentials,
    /// How long each watch request asks the server to last before it is reopened.
    pub watch_window: Duration,
}

impl RemoteConfig {
    /// A configuration for `server` trusting `ca_pem`, with the default watch window.
    pub fn new(server: &str, ca_pem: &[u8], credentials: Credentials) -> RemoteConfig {
        RemoteConfig {
            server: server.to_string(),
            fallback_servers: Vec::new(),
            ca_pem: ca_pem.to_vec(),
            credentials,
            watch_window: DEFAULT_WATCH_WINDOW,
        }
    }

    /// The cluster and user of a kubeconfig file's current context, as kubectl reads them:
    /// `server`, `certificate-authority(-data)`, and `token` (or `tokenFile`) or
    /// `client-certificate(-data)` with `client-key(-data)`. Relative file paths are relative
    /// to the kubeconfig's directory.
    pub fn from_kubeconfig(path: &Path) -> Result<RemoteConfig, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::Config(format!("cannot read kubeconfig {}: {e}", path.display()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        RemoteConfig::from_kubeconfig_text(&text, base)
    }

    /// Like [`RemoteConfig::from_kubeconfig`], from the file's text; relative paths are
    /// relative to `base`.
    pub fn from_kubeconfig_text(text: &str, base: &Path) -> Result<RemoteConfig, ClientError> {
        let config: Value = skiff_api::yaml::from_str(text)
            .map_err(|e| ClientError::Config(format!("kubeconfig is not YAML: {e}")))?;
        let context_name = config
            .get("current-context")
            .and_then(Value::as_str)
            .unwrap_or("");
        let named = |list: &str, name: &str, field: &str| -> Option<Value> {
            let entries = config.get(list)?.as_array()?;
            let entry = if name.is_empty() && entries.len() == 1 {
                entries.first()
            } else {
                entries
                    .iter()
                    .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
            }?;
            entry.get(field).cloned()
        };
        let context = named("contexts", context_name, "context").unwrap_or(Value::Null);
        let field = |name: &str| {
            context
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let cluster = named("clusters", &field("cluster"), "cluster")
            .ok_or_else(|| ClientError::Config("kubeconfig names no cluster".to_string()))?;
        let user = named("users", &field("user"), "user").unwrap_or(Value::Null);
        let server = cluster
            .get("server")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Config("kubeconfig cluster has no server".to_string()))?;
        let ca_pem = data_or_file(&cluster, "certificate-authority", base)?
            .ok_or_else(|| ClientError::Config("kubeconfig cluster has no CA".to_string()))?;
        let token = match user.get("token").and_then(Value::as_str) {
            Some(token) => Some(token.to_string()),
            None => match user.get("tokenFile").and_then(Value::as_str) {
                Some(file) => Some(
                    String::from_utf8_lossy(&read_file(&base.join(file))?)
                        .trim()
                        .to_string(),
                ),
                None => None,
            },
        };
        let credentials = match (
            token,
            data_or_file(&user, "client-certificate", base)?,
            data_or_file(&user, "client-key", base)?,
        ) {
            (Some(token), _, _) => Credentials::Token(token),
            (None, Some(certificate_pem), Some(key_pem)) => Credentials::Certificate {
                certificate_pem,
                key_pem,
            },
            _ => Credentials::Anonymous,
        };
        let mut config = RemoteConfig::new(server, &ca_pem, credentials);
        config.fallback_servers = listed_servers(&cluster)
            .into_iter()
            .filter(|listed| listed != server)
            .collect();
        Ok(config)
    }
}

/// The name of the kubeconfig cluster extension listing every server of the cluster, for
/// clients that fail over between them (kubectl reads `server` and ignores the extension).
pub const SERVERS_EXTENSION: &str = "skiff.dev/servers";

/// The servers a kubeconfig cluster lists in its [`SERVERS_EXTENSION`] extension, in order.
fn listed_servers(cluster: &Value) -> Vec<String> {
    cluster
        .get("extensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.get("name").and_then(Value::as_str) == Some(SERVERS_EXTENSION))
        .filter_map(|e| e.pointer("/extension/servers").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether a connection failing with `kind` means the server is gone (refused, reset, timed
/// out), so the next server is tried, rather than a failure another server would repeat.
fn fails_over(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | AddrNotAvailable
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// The order servers are tried in: the one that last answered, then the others in their
/// listed order after it, wrapping around.
fn failover_order(count: usize, current: usize) -> Vec<usize> {
    let start = if count == 0 { 0 } else { current % count };
    (0..count).map(|step| (start + step) % count).collect()
}

/// One server a client may connect to.
struct Endpoint {
    /// `HOST:PORT`.
    authority: String,
    server_name: ServerName<'static>,
}

/// Parses `https://HOST:PORT`.
fn endpoint_of(server: &str) -> Result<Endpoint, ClientError> {
    let authority = server
        .strip_prefix("https://")
        .ok_or_else(|| ClientError::Config(format!("server {server:?} is not an https URL")))?
        .trim_end_matches('/')
        .to_string();
    if authority.is_empty() || authority.contains('/') {
        return Err(ClientError::Config(format!(
            "server {server:?} must be https://HOST:PORT"
        )));
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority.as_str(),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Config(format!("bad server name {host:?}: {e}")))?;
    Ok(Endpoint {
        authority,
        server_name,
    })
}

/// Why one server could not be connected to.
enum ConnectFailure {
    /// Gone (refused, reset, timed out): try the next.
    Unreachable(ClientError),
    /// Anything else (a certificate the CA does not sign, say): the next would fail alike.
    Other(ClientError),
}

/// A kubeconfig field given inline (`NAME-data`, base64) or as a file (`NAME`).
fn data_or_file(section: &Value, name: &str, base: &Path) -> Result<Option<Vec<u8>>, ClientError> {
    use base64::Engine;
    if let Some(data) = section
        .get(format!("{name}-data").as_str())
        .and_then(Value::as_str)
    {
        return base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(Some)
            .map_err(|e| {
                ClientError::Config(format!("kubeconfig {name}-data is not base64: {e}"))
            });
    }
    match section.get(name).and_then(Value::as_str) {
        Some(file) => read_file(&base.join(file)).map(Some),
        None => Ok(None),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError::Config(format!("cannot read {}: {e}", path.display())))
}

/// A [`Client`] talking to an API server over HTTPS.
#[derive(Clone)]
pub struct RemoteClient {
    inner: Arc<Connection>,
    /// The `Impersonate-*` headers of a client acting as another user ([`Client::as_user`]).
    impersonation: Arc<Vec<(&'static str, String)>>,
}

/// Extra request headers, by name.
type Headers = [(&'static str, String)];

/// What every call shares: where to connect, how, and the idle connections.
struct Connection {
    /// The servers, the configured one first.
    endpoints: Vec<Endpoint>,
    /// The index of the server that last accepted a connection, tried first.
    current: AtomicUsize,
    tls: TlsConnector,
    token: Option<String>,
    watch_window: Duration,
    /// Idle connections with the index of their server.
    idle: Mutex<Vec<(usize, SendRequest<Full<Bytes>>)>>,
    /// How many times a watch the server ended was reopened.
    watch_reopens: AtomicU64,
}

/// An answer: its status code and body.
struct Answer {
    code: u16,
    body: Bytes,
}

impl RemoteClient {
    /// A client for `config`; fails when the URL, CA or credentials cannot be used.
    pub fn new(config: RemoteConfig) -> Result<RemoteClient, ClientError> {
        let endpoints = std::iter::once(&config.server)
            .chain(&config.fallback_servers)
            .map(|server| endpoint_of(server))
            .collect::<Result<Vec<_>, _>>()?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&config.ca_pem) {
            let cert =
                cert.map_err(|e| ClientError::Config(format!("CA bundle is not PEM: {e:?}")))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Config(format!("CA certificate unusable: {e}")))?;
        }
        if roots.is_empty() {
            return Err(ClientError::Config(
                "CA bundle holds no certificate".to_string(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Config(format!("no TLS versions: {e}")))?
            .with_root_certificates(roots);
        let (mut tls, token) = match config.credentials {
            Credentials::Anonymous => (builder.with_no_client_auth(), None),
            Credentials::Token(token) => (builder.with_no_client_auth(), Some(token)),
            Credentials::Certificate {
                certificate_pem,
                key_pem,
            } => {
                let chain = CertificateDer::pem_slice_iter(&certificate_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        ClientError::Config(format!("client certificate is not PEM: {e:?}"))
                    })?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| ClientError::Config(format!("client key is not PEM: {e:?}")))?;
                let config = builder.with_client_auth_cert(chain, key).map_err(|e| {
                    ClientError::Config(format!("client certificate unusable: {e}"))
                })?;
                (config, None)
            }
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(RemoteClient {
            inner: Arc::new(Connection {
                endpoints,
                current: AtomicUsize::new(0),
                tls: TlsConnector::from(Arc::new(tls)),
                token,
                watch_window: config.watch_window.max(Duration::from_secs(1)),
                idle: Mutex::new(Vec::new()),
                watch_reopens: AtomicU64::new(0),
            }),
            impersonation: Arc::new(Vec::new()),
        })
    }

    /// How many times this client's watches were reopened after the server ended them: what a
    /// reconnecting watch has done, for diagnostics and tests.
    pub fn watch_reopens(&self) -> u64 {
        self.inner.watch_reopens.load(Ordering::Relaxed)
    }

    /// Sends one call as this client (impersonating its user, if any); see
    /// [`Connection::call_json`].
    async fn json(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(u16, Value), ClientError> {
        self.inner
            .call_json(method, path, body, &self.impersonation)
            .await
    }

    /// A client for the current context of the kubeconfig at `path`.
    pub fn from_kubeconfig(path: &Path) -> Result<RemoteClient, ClientError> {
        RemoteClient::new(RemoteConfig::from_kubeconfig(path)?)
    }
}

fn transport(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(format!("{what}: {error}"))
}

impl Connection {
    /// A new connection, to the server that last answered or, when it is gone, to the next
    /// one that accepts; returns the server's index with it.
    async fn connect(&self) -> Result<(usize, SendRequest<Full<Bytes>>), ClientError> {
        let current = self.current.load(Ordering::Relaxed);
        let mut last_failure = None;
        for index in failover_order(self.endpoints.len(), current) {
            match self.connect_to(index).await {
                Ok(sender) => {
                    if index != current {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::info!(
                            server = %self.endpoints[index].authority,
                            "failed over to another API server"
                        );
                    }
                    return Ok((index, sender));
                }
                Err(ConnectFailure::Unreachable(error)) => {
                    tracing::debug!(%error, "API server unreachable, trying the next");
                    last_failure = Some(error);
                }
                Err(ConnectFailure::Other(error)) => return Err(error),
            }
        }
        Err(last_failure.unwrap_or_else(|| transport("cannot connect", "no server configured")))
    }

    async fn connect_to(&self, index: usize) -> Result<SendRequest<Full<Bytes>>, ConnectFailure> {
        let endpoint = &self.endpoints[index];
        let classify = |what: &str, error: std::io::Error| {
            let failure = transport(what, &error);
            if fails_over(error.kind()) {
                ConnectFailure::Unreachable(failure)
            } else {
                ConnectFailure::Other(failure)
            }
        };
        let open = async {
            let tcp = TcpStream::connect(&endpoint.authority)
                .await
                .map_err(|e| classify(&format!("cannot connect to {}", endpoint.authority), e))?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .tls
                .connect(endpoint.server_name.clone(), tcp)
                .await
                .map_err(|e| classify("TLS handshake failed", e))?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| ConnectFailure::Other(transport("HTTP handshake failed", e)))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "API server connection ended");
                }
            });
            Ok(sender)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| {
                ConnectFailure::Unreachable(transport(
                    &format!("cannot connect to {}", endpoint.authority),
                    "timed out",
                ))
            })?
    }

    /// An idle connection ready for a request, if one is kept.
    async fn idle_sender(&self) -> Option<(usize, SendRequest<Full<Bytes>>)> {
        loop {
            let (index, mut sender) = self.idle.lock().ok()?.pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some((index, sender));
            }
        }
    }

    fn keep_idle(&self, index: usize, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push((index, sender));
            }
        }
    }

    fn request(
        &self,
        index: usize,
        method: &hyper::Method,
        path: &str,
        body: &Option<(&'static str, Vec<u8>)>,
        headers: &Headers,
    ) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
        let mut builder = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, &self.endpoints[index].authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "skiff-client");
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let payload = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, *content_type);
                Bytes::from(bytes.clone())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(payload))
            .map_err(|e| transport("cannot build request", e))
    }

    /// Sends one request and reads its whole answer. A request that fails on a reused idle
    /// connection (the server may have closed it meanwhile) is sent once more on a new one,
    /// unless it is a `POST` that may have reached the server.
    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        headers: &Headers,
    ) -> Result<Answer, ClientError> {
        let exchange = async {
            if let Some((index, mut sender)) = self.idle_sender().await {
                match sender
                    .send_request(self.request(index, &method, path, &body, headers)?)
                    .await
                {
                    Ok(response) => {
                        let answer = read_answer(response).await?;
                        self.keep_idle(index, sender);
                        return Ok(answer);
                    }
                    // A create may have been carried out before the connection broke; only a
                    // request never sent is sent again.
                    Err(e) if method == hyper::Method::POST && !e.is_canceled() => {
                        return Err(transport("request failed", e));
                    }
                    Err(_) => {}
                }
            }
            let (index, mut sender) = self.connect().await?;
            let response = sender
                .send_request(self.request(index, &method, path, &body, headers)?)
                .await
                .map_err(|e| transport("request failed", e))?;
            let answer = read_answer(response).await?;
            self.keep_idle(index, sender);
            Ok(answer)
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| transport(&format!("{method} {path}"), "timed out"))?
    }

    /// Sends one request whose answer is JSON; a failure answer becomes its `Status` error.
    async fn call_json(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        headers: &Headers,
    ) -> Result<(u16, Value), ClientError> {
        let answer = self.call(method, path, body, headers).await?;
        if !(200..300).contains(&answer.code) {
            return Err(ClientError::Api(error_of(answer.code, &answer.body)));
        }
        let value = serde_json::from_slice(&answer.body)
            .map_err(|e| ClientError::Decode(format!("answer is not JSON: {e}")))?;
        Ok((answer.code, value))
    }

    /// Opens a watch; the answer's body streams its events.
    async fn open_watch(&self, path: &str, headers: &Headers) -> Result<Incoming, ClientError> {
        let (index, mut sender) = self.connect().await?;
        let response = tokio::time::timeout(
            CALL_TIMEOUT,
            sender.send_request(self.request(index, &hyper::Method::GET, path, &None, headers)?),
        )
        .await
        .map_err(|_| transport("watch", "timed out"))?
        .map_err(|e| transport("watch failed", e))?;
        let code = response.status().as_u16();
        if code != 200 {
            let answer = read_answer(response).await?;
            return Err(ClientError::Api(error_of(answer.code, &answer.body)));
        }
        Ok(response.into_body())
    }
}

async fn read_answer(response: hyper::Response<Incoming>) -> Result<Answer, ClientError> {
    let code = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport("reading the answer failed", e))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len().saturating_add(data.len()) > MAX_BODY_BYTES {
                return Err(transport("reading the answer failed", "answer too large"));
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Answer {
        code,
        body: Bytes::from(bytes),
    })
}

/// The error an answer with a failure code carries: its `Status`, else one made from the code
/// and the text.
fn error_of(code: u16, body: &[u8]) -> ApiError {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| ApiError::from_status(&v))
        .unwrap_or_else(|| {
            let reason = match code {
                400 => "BadRequest",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                405 => "MethodNotAllowed",
                409 => "Conflict",
                410 => "Gone",
                413 => "RequestEntityTooLarge",
                415 => "UnsupportedMediaType",
                422 => "Invalid",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            ApiError::new(
                code,
                reason,
                String::from_utf8_lossy(body).trim().to_string(),
            )
        })
}

/// `/api/v1` or `/apis/GROUP/VERSION`, then `namespaces/NS/` when namespaced, the plural, and
/// the name and subresource when given. Names are path segments the server accepts unescaped
/// except for the characters escaped here.
fn resource_path(scope: Scope<'_>, name: Option<&str>, subresource: Option<&str>) -> String {
    let resource: &ResourceInfo = scope.resource;
    let mut path = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    if resource.namespaced {
        if let Some(namespace) = scope.namespace {
            path.push_str("/namespaces/");
            path.push_str(&escape_segment(namespace));
        }
    }
    path.push('/');
    path.push_str(resource.plural);
    if let Some(name) = name {
        path.push('/');
        path.push_str(&escape_segment(name));
        if let Some(sub) = subresource {
            path.push('/');
            path.push_str(sub);
        }
    }
    path
}

/// A path segment with everything but unreserved characters (and `:`, which RBAC names use)
/// percent-encoded.
fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The query string of a list or watch.
fn list_query(options: &ListOptions, watch: Option<Duration>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(s) = &options.label_selector {
        pairs.push(("labelSelector", s.clone()));
    }
    if let Some(s) = &options.field_selector {
        pairs.push(("fieldSelector", s.clone()));
    }
    if let Some(rv) = &options.resource_version {
        pairs.push(("resourceVersion", rv.clone()));
    }
    if let Some(m) = &options.resource_version_match {
        pairs.push(("resourceVersionMatch", m.clone()));
    }
    match watch {
        Some(window) => {
            pairs.push(("watch", "true".to_string()));
            // Bookmarks are always asked for: they move the revision a reopened watch resumes
            // from; the caller sees them only if it asked.
            pairs.push(("allowWatchBookmarks", "true".to_string()));
            if let Some(send) = options.send_initial_events {
                pairs.push(("sendInitialEvents", send.to_string()));
            }
            pairs.push(("timeoutSeconds", window.as_secs().max(1).to_string()));
        }
        None => {
            if let Some(limit) = options.limit {
                pairs.push(("limit", limit.to_string()));
            }
            if let Some(token) = &options.continue_token {
                pairs.push(("continue", token.clone()));
            }
        }
    }
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

fn json_body(value: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some((
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}

/// The `DeleteOptions` body Kubernetes clients send.
fn delete_body(options: &DeleteOptions) -> Value {
    let mut body = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    if let Some(seconds) = options.grace_period_seconds {
        body["gracePeriodSeconds"] = json!(seconds);
    }
    if let Some(policy) = &options.propagation_policy {
        body["propagationPolicy"] = json!(policy);
    }
    if let Some(uid) = &options.precondition_uid {
        body["preconditions"]["uid"] = json!(uid);
    }
    if let Some(rv) = &options.precondition_resource_version {
        body["preconditions"]["resourceVersion"] = json!(rv);
    }
    if options.dry_run {
        body["dryRun"] = json!(["All"]);
    }
    body
}

/// The watch event one line of a watch answer holds.
fn parse_event(line: &[u8]) -> Result<WatchEvent, ClientError> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| ClientError::Decode(format!("watch event is not JSON: {e}")))?;
    let event_type = match value.get("type").and_then(Value::as_str) {
        Some("ADDED") => "ADDED",
        Some("MODIFIED") => "MODIFIED",
        Some("DELETED") => "DELETED",
        Some("BOOKMARK") => "BOOKMARK",
        Some("ERROR") => "ERROR",
        other => {
            return Err(ClientError::Decode(format!(
                "unknown watch event type {other:?}"
            )))
        }
    };
    Ok(WatchEvent {
        event_type,
        object: value.get("object").cloned().unwrap_or(Value::Null),
    })
}

/// Reads one watch answer, sending its events on, until it ends. Returns how it ended.
async fn pump_events(
    mut body: Incoming,
    silence: Duration,
    forward_bookmarks: bool,
    resource_version: &mut Option<String>,
    events: &mpsc::Sender<WatchEvent>,
) -> PumpEnd {
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(silence, body.frame()) => next,
            // The caller dropped the stream: close the connection now.
            () = events.closed() => return PumpEnd::Dropped,
        };
        let frame = match next {
            Err(_) => return PumpEnd::Lost("no data within the watch window".to_string()),
            Ok(None) => return PumpEnd::Closed,
            Ok(Some(Err(e))) => return PumpEnd::Lost(e.to_string()),
            Ok(Some(Ok(frame))) => frame,
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.extend_from_slice(data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let event = match parse_event(line) {
                Ok(event) => event,
                Err(e) => return PumpEnd::Lost(e.to_string()),
            };
            if event.event_type == "ERROR" {
                let _ = events.send(event).await;
                return PumpEnd::Error;
            }
            if let Some(rv) = event
                .object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                *resource_version = Some(rv.to_string());
            }
            if event.event_type == "BOOKMARK" && !forward_bookmarks {
                continue;
            }
            if events.send(event).await.is_err() {
                return PumpEnd::Dropped;
            }
        }
        if buffer.len() > MAX_BODY_BYTES {
            return PumpEnd::Lost("watch event too large".to_string());
        }
    }
}

/// How one watch answer ended.
enum PumpEnd {
    /// The server ended it (its timeout): reopen.
    Closed,
    /// An `ERROR` event was passed on: the watch is over.
    Error,
    /// The caller dropped the stream.
    Dropped,
    /// The connection failed or sent something unreadable.
    Lost(String),
}

#[async_trait]
impl Client for RemoteClient {
    /// The same connection acting as `user` through Kubernetes' impersonation headers
    /// (`Impersonate-User`, `-Group`, `-Uid`), so a controller holds exactly its user's rights
    /// as it does in process; the client's own credentials must allow `impersonate`.
    fn as_user(&self, user: UserInfo) -> Option<Arc<dyn Client>> {
        let mut headers = vec![("Impersonate-User", user.name)];
        headers.extend(user.groups.into_iter().map(|g| ("Impersonate-Group", g)));
        if !user.uid.is_empty() {
            headers.push(("Impersonate-Uid", user.uid));
        }
        Some(Arc::new(RemoteClient {
            inner: self.inner.clone(),
            impersonation: Arc::new(headers),
        }))
    }

    async fn get(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        let path = resource_path(scope, Some(name), None);
        Ok(self.json(hyper::Method::GET, &path, None).await?.1)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<ObjectList, ClientError> {
        let path = with_query(resource_path(scope, None, None), &list_query(options, None));
        let (_, list) = self.json(hyper::Method::GET, &path, None).await?;
        let text = |pointer: &str| list.pointer(pointer).and_then(Value::as_str);
        Ok(ObjectList {
            resource_version: text("/metadata/resourceVersion").unwrap_or("").to_string(),
            continue_token: text("/metadata/continue")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            items: list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }

    async fn watch(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
        let base = resource_path(scope, None, None);
        let window = self.inner.watch_window;
        let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
        let window_until = move |deadline: Option<tokio::time::Instant>| match deadline {
            Some(d) => window.min(d.saturating_duration_since(tokio::time::Instant::now())),
            None => window,
        };
        let first_window = window_until(deadline);
        let first = with_query(base.clone(), &list_query(options, Some(first_window)));
        let body = self.inner.open_watch(&first, &self.impersonation).await?;
        let impersonation = self.impersonation.clone();
        let (sender, receiver) = mpsc::channel(64);
        let connection = self.inner.clone();
        let mut options = options.clone();
        let forward_bookmarks = options.allow_bookmarks;
        tokio::spawn(async move {
            let mut resource_version = options.resource_version.clone().filter(|rv| !rv.is_empty());
            let mut body = body;
            let mut current_window = first_window;
            loop {
                let end = pump_events(
                    body,
                    current_window + WATCH_SILENCE_SLACK,
                    forward_bookmarks,
                    &mut resource_version,
                    &sender,
                )
                .await;
                match end {
                    PumpEnd::Closed => {}
                    PumpEnd::Error | PumpEnd::Dropped => return,
                    PumpEnd::Lost(reason) => {
                        tracing::warn!(%reason, "watch connection lost");
                        return;
                    }
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    return;
                }
                // Without a revision to resume from, a reopened watch would start over.
                let Some(rv) = resource_version.clone() else {
                    return;
                };
                options.resource_version = Some(rv);
                options.send_initial_events = None;
                current_window = window_until(deadline);
                let path = with_query(base.clone(), &list_query(&options, Some(current_window)));
                body = match connection.open_watch(&path, &impersonation).await {
                    Ok(body) => {
                        connection.watch_reopens.fetch_add(1, Ordering::Relaxed);
                        body
                    }
                    Err(ClientError::Api(status)) => {
                        // The same ERROR event a server sends inside a watch, so callers
                        // handle a gone revision one way (410: list again).
                        let _ = sender
                            .send(WatchEvent {
                                event_type: "ERROR",
                                object: status.to_status(),
                            })
                            .await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reopen watch");
                        return;
                    }
                };
            }
        });
        Ok(
            futures::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|event| (event, receiver))
            })
            .boxed(),
        )
    }

    async fn create(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        let path = resource_path(scope, None, None);
        Ok(self
            .json(hyper::Method::POST, &path, json_body(&object))
            .await?
            .1)
    }

    async fn update(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        let path = resource_path(scope, Some(name_of(&object)), None);
        Ok(self
            .json(hyper::Method::PUT, &path, json_body(&object))
            .await?
            .1)
    }

    async fn update_status(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        let path = resource_path(scope, Some(name_of(&object)), Some("status"));
        Ok(self
            .json(hyper::Method::PUT, &path, json_body(&object))
            .await?
            .1)
    }

    async fn update_approval(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        let path = resource_path(scope, Some(name_of(&object)), Some("approval"));
        Ok(self
            .json(hyper::Method::PUT, &path, json_body(&object))
            .await?
            .1)
    }

    async fn patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        let mut path = resource_path(scope, Some(name), status.then_some("status"));
        if patch_type == PatchType::Apply {
            // Server-side apply names its field manager.
            path.push_str("?fieldManager=skiff");
        }
        let body = serde_json::to_vec(&patch).unwrap_or_default();
        Ok(self
            .json(
                hyper::Method::PATCH,
                &path,
                Some((patch_type.content_type(), body)),
            )
            .await?
            .1)
    }

    async fn delete(
        &self,
        scope: Scope<'_>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<Value>, ClientError> {
        let path = resource_path(scope, Some(name), None);
        let (code, answer) = self
            .json(
                hyper::Method::DELETE,
                &path,
                json_body(&delete_body(options)),
            )
            .await?;
        // 202 Accepted: the deletion waits for finalizers or a grace period.
        Ok((code == 202).then_some(answer))
    }

    async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> Result<(), ClientError> {
        let scope = Scope {
            resource: &skiff_api::kinds::pod::V1,
            namespace: Some(namespace),
        };
        let path = resource_path(scope, Some(name), Some("binding"));
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        self.json(hyper::Method::POST, &path, json_body(&binding))
            .await?;
        Ok(())
    }

    async fn create_token(
        &self,
        namespace: &str,
        name: &str,
        request: Value,
    ) -> Result<Value, ClientError> {
        let scope = Scope {
            resource: &skiff_api::kinds::service_account::V1,
            namespace: Some(namespace),
        };
        let path = resource_path(scope, Some(name), Some("token"));
        Ok(self
            .json(hyper::Method::POST, &path, json_body(&request))
            .await?
            .1)
    }

    async fn get_scale(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        require_scale(scope.resource)?;
        let path = resource_path(scope, Some(name), Some("scale"));
        Ok(self.json(hyper::Method::GET, &path, None).await?.1)
    }

    async fn update_scale(&self, scope: Scope<'_>, scale: Value) -> Result<Value, ClientError> {
        require_scale(scope.resource)?;
        let path = resource_path(scope, Some(name_of(&scale)), Some("scale"));
        Ok(self
            .json(hyper::Method::PUT, &path, json_body(&scale))
            .await?
            .1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_tried_from_the_last_that_answered_wrapping_around() {
        let cases: [(usize, usize, &[usize]); 5] = [
            (1, 0, &[0]),
            (3, 0, &[0, 1, 2]),
            (3, 1, &[1, 2, 0]),
            (3, 2, &[2, 0, 1]),
            (3, 7, &[1, 2, 0]),
        ];
        for (count, current, order) in cases {
            assert_eq!(
                failover_order(count, current),
                order,
                "{count} servers from {current}"
            );
        }
        assert!(failover_order(0, 0).is_empty());
    }

    #[test]
    fn only_a_gone_server_is_failed_over() {
        use std::io::ErrorKind;
        let cases = [
            (ErrorKind::ConnectionRefused, true),
            (ErrorKind::ConnectionReset, true),
            (ErrorKind::ConnectionAborted, true),
            (ErrorKind::TimedOut, true),
            (ErrorKind::UnexpectedEof, true),
            (ErrorKind::InvalidData, false),
            (ErrorKind::PermissionDenied, false),
            (ErrorKind::InvalidInput, false),
        ];
        for (kind, expected) in cases {
            assert_eq!(fails_over(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn a_kubeconfig_lists_fallback_servers_in_its_cluster_extension() {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(b"unused");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: {ca}\n    extensions:\n    - name: other\n      extension: {{servers: [https://127.0.0.1:9]}}\n    - name: skiff.dev/servers\n      extension:\n        servers: [https://127.0.0.1:1, https://127.0.0.1:2, https://127.0.0.1:3]\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user: {{token: t}}\n"
        );
        let config = RemoteConfig::from_kubeconfig_text(&text, Path::new(".")).expect("parse");
        assert_eq!(config.server, "https://127.0.0.1:1");
        assert_eq!(
            config.fallback_servers,
            vec!["https://127.0.0.1:2", "https://127.0.0.1:3"]
        );
        let plain = text.replace("skiff.dev/servers", "unknown");
        let config = RemoteConfig::from_kubeconfig_text(&plain, Path::new(".")).expect("parse");
        assert!(config.fallback_servers.is_empty());
    }

    #[test]
    fn a_fallback_server_that_is_not_https_is_refused() {
        let mut config = RemoteConfig::new(
            "https://127.0.0.1:1",
            b"not used before the URLs",
            Credentials::Anonymous,
        );
        config.fallback_servers = vec!["http://127.0.0.1:2".to_string()];
        let error = RemoteClient::new(config).err().expect("refused");
        assert!(error.to_string().contains("is not an https URL"), "{error}");
    }

    fn scope(resource: &'static ResourceInfo, namespace: Option<&'static str>) -> Scope<'static> {
        Scope {
            resource,
            namespace,
        }
    }

    #[test]
    fn paths_follow_the_resource_group_version_and_scope() {
        let cm = scope(&skiff_api::kinds::config_map::V1, Some("default"));
        assert_eq!(
            resource_path(cm, Some("c"), None),
            "/api/v1/namespaces/default/configmaps/c"
        );
        let deployments = scope(&skiff_api::kinds::deployment::V1, Some("prod"));
        assert_eq!(
            resource_path(deployments, Some("web"), Some("scale")),
            "/apis/apps/v1/namespaces/prod/deployments/web/scale"
        );
        let all_pods = scope(&skiff_api::kinds::pod::V1, None);
        assert_eq!(resource_path(all_pods, None, None), "/api/v1/pods");
        // A cluster-scoped resource ignores a namespace.
        let roles = scope(&skiff_api::kinds::cluster_role::V1, Some("x"));
        assert_eq!(
            resource_path(roles, Some("system:node"), None),
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node"
        );
        assert_eq!(escape_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn watch_queries_always_ask_for_bookmarks_and_a_timeout() {
        let options = ListOptions {
            label_selector: Some("app=web,tier in (a,b)".to_string()),
            resource_version: Some("42".to_string()),
            limit: Some(5),
            ..ListOptions::default()
        };
        let query = list_query(&options, Some(Duration::from_secs(7)));
        assert_eq!(
            query,
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&resourceVersion=42&watch=true&allowWatchBookmarks=true&timeoutSeconds=7"
        );
        assert_eq!(
            list_query(&options, None),
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&resourceVersion=42&limit=5"
        );
    }

    #[test]
    fn a_failure_without_a_status_keeps_its_code_and_text() {
        let error = error_of(503, b"upstream down\n");
        assert_eq!(
            (error.code, error.reason, error.message.as_str()),
            (503, "ServiceUnavailable", "upstream down")
        );
        let status = ApiError::expired("too old resource version: 1 (5)").to_status();
        let error = error_of(410, &serde_json::to_vec(&status).unwrap());
        assert_eq!((error.code, error.reason), (410, "Expired"));
    }

    #[test]
    fn a_kubeconfig_gives_the_current_contexts_cluster_and_user() {
        use base64::Engine;
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: one\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: {}\n- name: two\n  cluster:\n    server: https://127.0.0.1:2\n    certificate-authority-data: {}\ncontexts:\n- name: a\n  context: {{cluster: one, user: u1}}\n- name: b\n  context: {{cluster: two, user: u2}}\nusers:\n- name: u1\n  user: {{token: first}}\n- name: u2\n  user: {{token: second}}\n",
            encode("CA1"),
            encode("CA2")
        );
        let config = RemoteConfig::from_kubeconfig_text(&text, Path::new("/")).unwrap();
        assert_eq!(config.server, "https://127.0.0.1:2");
        assert_eq!(config.ca_pem, b"CA2");
        assert!(matches!(config.credentials, Credentials::Token(t) if t == "second"));
    }

    #[test]
    fn a_client_refuses_a_plain_http_server_or_an_empty_ca() {
        let plain = RemoteConfig::new("http://127.0.0.1:1", b"", Credentials::Anonymous);
        assert!(matches!(
            RemoteClient::new(plain),
            Err(ClientError::Config(m)) if m.contains("not an https URL")
        ));
        let no_ca = RemoteConfig::new("https://127.0.0.1:1", b"", Credentials::Anonymous);
        assert!(matches!(
            RemoteClient::new(no_ca),
            Err(ClientError::Config(m)) if m.contains("no certificate")
        ));
    }
}
