//! API aggregation, as kube-aggregator does it: a request under `/apis/GROUP/VERSION` that an
//! APIService hands to a Service is proxied, after Skiff's own authentication and
//! authorization, to one ready endpoint of that Service over HTTPS. The server's certificate
//! is verified against the APIService's `caBundle` under the name `NAME.NAMESPACE.svc`
//! (unless `insecureSkipTLSVerify`); Skiff presents its front-proxy client certificate and
//! names the user in `X-Remote-User`, `X-Remote-Group` and `X-Remote-Extra-*`, which the
//! aggregated server trusts through the `extension-apiserver-authentication` ConfigMap.
//!
//! The availability controller checks every such APIService (the Service, its
//! EndpointSlices, then `GET /apis/GROUP/VERSION` on the endpoint) and writes the
//! `Available` condition in kube-aggregator's words; the resource list a successful check
//! read is kept for discovery. Requests to an APIService that is not available get
//! kube-aggregator's 503 `service unavailable`. Answers, watches included, stream through as
//! they arrive; connection upgrades (exec-style streams) are not proxied.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use skiff_api::kinds::api_service::{self, RemoteCheck};
use skiff_auth::user::UserInfo;

use crate::registry::{ListOptions, Registry, WriteOptions};
use crate::status::ApiError;

/// The name the front-proxy client certificate is issued to, the one aggregated servers are
/// told to accept (`requestheader-allowed-names`), as kubeadm names it.
pub const FRONT_PROXY_CLIENT_NAME: &str = "front-proxy-client";

/// The header naming the user to an aggregated server.
pub const USER_HEADER: &str = "X-Remote-User";
/// The header naming each of the user's groups.
pub const GROUP_HEADER: &str = "X-Remote-Group";
/// The prefix of the headers carrying the user's extra values.
pub const EXTRA_HEADER_PREFIX: &str = "X-Remote-Extra-";

/// The ConfigMap in `kube-system` telling aggregated servers how to authenticate requests.
pub const AUTHENTICATION_CONFIG_MAP: &str = "extension-apiserver-authentication";

/// How long the discovery check waits for an answer, as kube-aggregator's 5 s client timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a proxied request may take to connect and receive its answer's headers.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest discovery answer read from an aggregated server.
const MAX_DISCOVERY_BYTES: usize = 8 * 1024 * 1024;

/// The client certificate Skiff presents to aggregated servers (PEM), signed by the
/// requestheader CA it publishes.
#[derive(Clone, Debug)]
pub struct FrontProxyClient {
    /// The certificate chain.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// One remote group version as the last availability check saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteGroupVersion {
    /// The API group.
    pub group: String,
    /// The version.
    pub version: String,
    /// Whether the APIService is available.
    pub available: bool,
    /// The `APIResourceList` the aggregated server last answered, if it ever did.
    pub resources: Option<Value>,
}

/// What the aggregation layer keeps: the front-proxy client identity and what the last
/// checks discovered, shared by every clone of a registry.
#[derive(Default, Debug)]
pub struct Aggregator {
    client: OnceLock<FrontProxyClient>,
    remote: RwLock<BTreeMap<String, RemoteGroupVersion>>,
}

impl Aggregator {
    /// Installs the front-proxy client identity; a second install is ignored.
    pub fn install_client(&self, client: FrontProxyClient) {
        let _ = self.client.set(client);
    }

    /// The remote group versions known, by APIService name.
    pub fn remote_group_versions(&self) -> Vec<RemoteGroupVersion> {
        self.remote
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn remember(&self, name: &str, entry: Option<RemoteGroupVersion>) {
        if let Ok(mut remote) = self.remote.write() {
            match entry {
                Some(mut entry) => {
                    if entry.resources.is_none() {
                        entry.resources = remote.get(name).and_then(|e| e.resources.clone());
                    }
                    remote.insert(name.to_string(), entry);
                }
                None => {
                    remote.remove(name);
                }
            }
        }
    }

    fn forget_except(&self, names: &[String]) {
        if let Ok(mut remote) = self.remote.write() {
            remote.retain(|name, _| names.contains(name));
        }
    }
}

/// Accepts any server certificate: the discovery check's transport, as kube-aggregator's,
/// and an APIService's `insecureSkipTLSVerify`.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How the server's certificate is checked.
enum Verify {
    /// Against these CA certificates (PEM).
    CaBundle(Vec<u8>),
    /// Not at all.
    Skip,
}

/// Where a request to an aggregated server goes.
struct Upstream {
    host: String,
    port: u16,
    server_name: String,
    verify: Verify,
}

impl Upstream {
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority())
    }
}

fn tls_config(
    verify: &Verify,
    client: Option<&FrontProxyClient>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match verify {
        Verify::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider))),
        Verify::CaBundle(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                let _ = roots.add(cert);
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut config = match client {
        Some(client) => {
            let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the front-proxy client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())
                .map_err(|e| format!("the front-proxy client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Opens an HTTP/1.1 connection over TLS to `upstream`; errors are worded as Go's are.
async fn connect(
    upstream: &Upstream,
    client: Option<&FrontProxyClient>,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, String> {
    let config = tls_config(&upstream.verify, client)?;
    let address = upstream.authority();
    let server_name = ServerName::try_from(upstream.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", upstream.server_name))?;
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| {
            let cause = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            format!("dial tcp {address}: connect: {cause}")
        })?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The endpoint of an APIService's Service, or the check that failed.
async fn resolve(registry: &Registry, stored: &Value) -> Result<(String, u16), RemoteCheck> {
    let Some((namespace, name, port)) = api_service::service_reference(stored) else {
        return Err(RemoteCheck::ServiceNotFound);
    };
    let service = registry
        .get(&skiff_api::kinds::service::V1, Some(&namespace), &name)
        .await
        .ok();
    let selector = format!("{}={name}", api_service::SERVICE_NAME_LABEL);
    let options = ListOptions {
        label_selector: Some(selector),
        ..ListOptions::default()
    };
    let slices = registry
        .list(
            &skiff_api::kinds::endpoint_slice::V1,
            Some(&namespace),
            &options,
        )
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    api_service::resolve_endpoint(service.as_ref(), &slices, port)
}

fn upstream_for(stored: &Value, host: String, port: u16, check: bool) -> Upstream {
    let (namespace, name, _) = api_service::service_reference(stored).unwrap_or_default();
    let insecure = stored
        .pointer("/spec/insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let verify = if check || insecure {
        Verify::Skip
    } else {
        let bundle = stored
            .pointer("/spec/caBundle")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        Verify::CaBundle(bundle)
    };
    Upstream {
        host,
        port,
        server_name: format!("{name}.{namespace}.svc"),
        verify,
    }
}

/// Whether a request header stays with Skiff rather than reaching the aggregated server: the
/// caller's credentials, identity headers it could forge, and hop-by-hop headers.
fn is_withheld(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "authorization"
        || name.starts_with("impersonate-")
        || name.starts_with("x-remote-")
        || matches!(
            name,
            "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authorization"
                | "transfer-encoding"
                | "upgrade"
                | "te"
                | "trailer"
        )
}

/// A user's extra key as a header name's tail: characters HTTP header names do not allow are
/// percent-encoded, as kube-aggregator escapes them.
fn escape_extra_key(key: &str) -> String {
    let mut escaped = String::new();
    for byte in key.bytes() {
        let allowed = byte.is_ascii_alphanumeric() || b"-!#$&'*+.^_`|~".contains(&byte);
        if allowed {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// The identity headers naming `user` to an aggregated server.
pub fn identity_headers(user: &UserInfo) -> Vec<(String, String)> {
    let mut headers = vec![(USER_HEADER.to_string(), user.name.clone())];
    for group in &user.groups {
        headers.push((GROUP_HEADER.to_string(), group.clone()));
    }
    for (key, values) in &user.extra {
        for value in values {
            headers.push((
                format!("{EXTRA_HEADER_PREFIX}{}", escape_extra_key(key)),
                value.clone(),
            ));
        }
    }
    headers
}

fn plain_answer(status: StatusCode, text: String) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
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

/// kube-aggregator's answer while an aggregated server is unavailable.
pub fn service_unavailable() -> Response {
    plain_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::api_services::SERVICE_UNAVAILABLE.to_string(),
    )
}

/// Proxies `req`, made by `user`, to the aggregated server of the APIService `stored`.
pub async fn proxy(registry: &Registry, stored: &Value, req: Request, user: &UserInfo) -> Response {
    if !api_service::is_available(stored) {
        return service_unavailable();
    }
    let Ok((host, port)) = resolve(registry, stored).await else {
        return service_unavailable();
    };
    let upstream = upstream_for(stored, host, port, false);
    let client = registry.aggregator().client.get().cloned();
    let exchange = async {
        let mut sender = connect(&upstream, client.as_ref()).await?;
        let (parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let mut builder = hyper::Request::builder()
            .method(parts.method.clone())
            .uri(path)
            .header(header::HOST, upstream.authority());
        for (name, value) in &parts.headers {
            if !is_withheld(name) {
                builder = builder.header(name, value);
            }
        }
        for (name, value) in identity_headers(user) {
            builder = builder.header(name, value);
        }
        let request = builder.body(body).map_err(|e| e.to_string())?;
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    };
    let answer = match tokio::time::timeout(PROXY_HEADER_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => {
            tracing::warn!(%error, "proxying to an aggregated server failed");
            return plain_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Error trying to reach service: '{error}'\n"),
            );
        }
        Err(_) => {
            return plain_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "Error trying to reach service: 'context deadline exceeded'\n".to_string(),
            )
        }
    };
    let (parts, body) = answer.into_parts();
    let mut resp = Response::new(Body::new(body));
    *resp.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !is_withheld(name) {
            resp.headers_mut().append(name, value.clone());
        }
    }
    resp
}

/// The discovery check of one APIService naming a Service: the check's result and, when it
/// passed, the `APIResourceList` the server answered.
pub async fn check(registry: &Registry, stored: &Value) -> (RemoteCheck, Option<Value>) {
    let (host, port) = match resolve(registry, stored).await {
        Ok(endpoint) => endpoint,
        Err(check) => return (check, None),
    };
    let upstream = upstream_for(stored, host, port, true);
    let group = stored
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = stored
        .pointer("/spec/version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let path = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let url = upstream.url(&path);
    let client = registry.aggregator().client.get().cloned();
    let exchange = async {
        let mut sender = connect(&upstream, client.as_ref())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let request = hyper::Request::get(path.as_str())
            .header(header::HOST, upstream.authority())
            .header(header::ACCEPT, "application/json")
            .header(USER_HEADER, "system:kube-aggregator")
            .header(GROUP_HEADER, "system:masters")
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let status = answer.status();
        if !(status.is_success() || status.is_redirection()) {
            return Err(format!("bad status from {url}: {}", status.as_u16()));
        }
        let bytes = axum::body::to_bytes(Body::new(answer.into_body()), MAX_DISCOVERY_BYTES)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        Ok(serde_json::from_slice::<Value>(&bytes).ok())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, exchange).await {
        Ok(Ok(resources)) => (RemoteCheck::Passed, resources),
        Ok(Err(error)) => (
            RemoteCheck::FailedDiscoveryCheck(format!(
                "failing or missing response from {url}: {error}"
            )),
            None,
        ),
        Err(_) => (
            RemoteCheck::FailedDiscoveryCheck(format!("timed out waiting for {url}")),
            None,
        ),
    }
}

/// Checks every APIService naming a Service, writes the `Available` conditions that changed
/// and keeps what the checks discovered; returns how many statuses were written.
pub async fn check_remote(registry: &Registry, stored: &[Value], now: &str) -> usize {
    let mut writes = 0;
    let mut names = Vec::new();
    for current in stored {
        let Some((namespace, service, _)) = api_service::service_reference(current) else {
            continue;
        };
        let name = current
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        names.push(name.clone());
        let (result, resources) = check(registry, current).await;
        let available = result == RemoteCheck::Passed;
        let text_at = |pointer: &str| {
            current
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        registry.aggregator().remember(
            &name,
            Some(RemoteGroupVersion {
                group: text_at("/spec/group"),
                version: text_at("/spec/version"),
                available,
                resources,
            }),
        );
        let condition = api_service::remote_available_condition(&namespace, &service, &result, now);
        if let Some(updated) = api_service::remote_status(current, condition) {
            let written = registry
                .update(
                    &api_service::V1,
                    None,
                    &name,
                    updated,
                    Some(skiff_api::resources::Subresource::Status),
                    WriteOptions::default(),
                )
                .await;
            match written {
                Ok(_) => writes += 1,
                Err(error) => {
                    tracing::warn!(%error, api_service = %name, "writing availability failed")
                }
            }
        }
    }
    registry.aggregator().forget_except(&names);
    writes
}

/// The `extension-apiserver-authentication` ConfigMap's data as kube-apiserver publishes it:
/// the client CA and the requestheader settings aggregated servers authenticate Skiff by.
pub fn authentication_data(client_ca_pem: &str, requestheader_ca_pem: &str) -> Value {
    json!({
        "client-ca-file": client_ca_pem,
        "requestheader-allowed-names": json!([FRONT_PROXY_CLIENT_NAME]).to_string(),
        "requestheader-client-ca-file": requestheader_ca_pem,
        "requestheader-extra-headers-prefix": json!([EXTRA_HEADER_PREFIX]).to_string(),
        "requestheader-group-headers": json!([GROUP_HEADER]).to_string(),
        "requestheader-username-headers": json!([USER_HEADER]).to_string(),
    })
}

/// Writes the `extension-apiserver-authentication` ConfigMap in `kube-system` (created, or
/// updated when its data differs).
pub async fn publish_authentication(
    registry: &Registry,
    client_ca_pem: &str,
    requestheader_ca_pem: &str,
) -> Result<(), ApiError> {
    let config_maps = &skiff_api::kinds::config_map::V1;
    let data = authentication_data(client_ca_pem, requestheader_ca_pem);
    match registry
        .get(config_maps, Some("kube-system"), AUTHENTICATION_CONFIG_MAP)
        .await
    {
        Ok(mut current) if current.get("data") != Some(&data) => {
            current["data"] = data;
            registry
                .update(
                    config_maps,
                    Some("kube-system"),
                    AUTHENTICATION_CONFIG_MAP,
                    current,
                    None,
                    WriteOptions::default(),
                )
                .await
                .map(|_| ())
        }
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => {
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": AUTHENTICATION_CONFIG_MAP, "namespace": "kube-system"},
                "data": data});
            match registry
                .create(
                    config_maps,
                    Some("kube-system"),
                    object,
                    WriteOptions::default(),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_name_the_user_groups_and_escaped_extra() {
        let mut user = UserInfo::new("jane", &["dev", "system:authenticated"]);
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec!["web-1".into()],
        );
        assert_eq!(
            identity_headers(&user),
            [
                ("X-Remote-User", "jane"),
                ("X-Remote-Group", "dev"),
                ("X-Remote-Group", "system:authenticated"),
                (
                    "X-Remote-Extra-authentication.kubernetes.io%2Fpod-name",
                    "web-1"
                ),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn credentials_and_forged_identities_are_withheld() {
        for name in [
            "authorization",
            "impersonate-user",
            "x-remote-user",
            "connection",
        ] {
            assert!(is_withheld(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["accept", "content-type", "user-agent"] {
            assert!(!is_withheld(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn authentication_config_map_lists_the_requestheader_settings() {
        let data = authentication_data("CLIENT CA", "PROXY CA");
        assert_eq!(
            data["requestheader-allowed-names"],
            "[\"front-proxy-client\"]"
        );
        assert_eq!(
            data["requestheader-username-headers"],
            "[\"X-Remote-User\"]"
        );
        assert_eq!(data["requestheader-group-headers"], "[\"X-Remote-Group\"]");
        assert_eq!(
            data["requestheader-extra-headers-prefix"],
            "[\"X-Remote-Extra-\"]"
        );
        assert_eq!(data["requestheader-client-ca-file"], "PROXY CA");
        assert_eq!(data["client-ca-file"], "CLIENT CA");
    }
}
