//! The HTTP GET that `httpGet` probes and lifecycle hooks send, with kubelet's client settings:
//! no keep-alive, no compression, TLS without certificate verification, redirects followed only
//! to the same host (at most 10 requests), the body read up to 10 KiB.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::http::{header, Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::text::{dial_error, go_quote, join_host_port};
use super::{resolve_container_port, KUBE_MINOR_VERSION};

/// How much of a response body kubelet reads; the rest is dropped without error.
pub(crate) const MAX_BODY_BYTES: usize = 10 * 1024;

/// Go's default redirect policy: the 10th redirect is refused.
const MAX_REQUESTS: usize = 10;

/// How a URL is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
    /// Anything else: refused when sent, as Go's client refuses it.
    Other(String),
}

impl Scheme {
    fn parse(text: &str) -> Scheme {
        match text.to_ascii_lowercase().as_str() {
            "" | "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Other(name) => name,
        }
    }

    fn default_port(&self) -> u16 {
        match self {
            Scheme::Https => 443,
            _ => 80,
        }
    }
}

/// One absolute URL, split the way the request needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Empty, or starting with `/`.
    pub(crate) path: String,
    pub(crate) query: Option<String>,
}

impl Url {
    fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The URL as Go's `url.URL.String` prints it, for error messages.
    pub(crate) fn display(&self) -> String {
        let mut text = format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        );
        if let Some(query) = &self.query {
            text.push('?');
            text.push_str(query);
        }
        text
    }

    fn request_target(&self) -> String {
        let mut target = if self.path.is_empty() {
            "/".to_string()
        } else {
            self.path.clone()
        };
        if let Some(query) = &self.query {
            target.push('?');
            target.push_str(query);
        }
        target
    }
}

/// A prepared GET: the URL, the headers to send and an optional `Host` override.
#[derive(Clone, Debug)]
pub(crate) struct GetRequest {
    pub(crate) url: Url,
    headers: Vec<(String, String)>,
    host_override: Option<String>,
}

impl GetRequest {
    /// The same request over plain HTTP without credentials: kubelet's retry when an HTTPS
    /// lifecycle hook reached a server that speaks HTTP.
    pub(crate) fn downgraded_to_http(&self) -> GetRequest {
        let mut downgraded = self.clone();
        downgraded.url.scheme = Scheme::Http;
        downgraded
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        downgraded
    }
}

/// The message of an HTTPS request answered in plain HTTP.
pub(crate) const HTTP_RESPONSE_TO_HTTPS_CLIENT: &str = "server gave HTTP response to HTTPS client";

/// Why a GET produced no usable response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GetError {
    /// No response arrived: the whole message Go's client gives (`Get "URL": ...`).
    Transport(String),
    /// A response arrived but its body could not be read.
    Body(String),
}

/// A response: its status and the first [`MAX_BODY_BYTES`] of its body.
#[derive(Clone, Debug)]
pub(crate) struct GetResponse {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Builds the request an `httpGet` action describes, as kubelet's `NewRequestForHTTPGetAction`
/// does; `purpose` names the user agent (`kube-probe/1.36`, `kube-lifecycle/1.36`).
pub(crate) fn build_request(
    action: &HTTPGetAction,
    pod_ip: IpAddr,
    ports: &[ContainerPort],
    purpose: &str,
) -> Result<GetRequest, String> {
    let scheme = Scheme::parse(action.scheme.as_deref().unwrap_or(""));
    let host = match action.host.as_deref() {
        Some(host) if !host.is_empty() => host.to_string(),
        _ => pod_ip.to_string(),
    };
    let port = resolve_container_port(&action.port, ports)?;
    let (path, query) = split_path(action.path.as_deref().unwrap_or(""));
    let url = Url {
        scheme,
        host,
        port,
        path,
        query,
    };

    let mut headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let host_override = take_header(&mut headers, "host").filter(|value| !value.is_empty());
    if !has_header(&headers, "user-agent") {
        headers.push((
            "User-Agent".to_string(),
            format!("kube-{purpose}/{KUBE_MINOR_VERSION}"),
        ));
    }
    match first_header(&headers, "accept") {
        None => headers.push(("Accept".to_string(), "*/*".to_string())),
        // An explicitly empty Accept asks for no Accept header at all.
        Some("") => headers.retain(|(name, _)| !name.eq_ignore_ascii_case("accept")),
        Some(_) => {}
    }
    Ok(GetRequest {
        url,
        headers,
        host_override,
    })
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn first_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Removes every `name` header and returns the first value, as `req.Host = headers.Get("Host")`
/// takes it (Go never sends the map's Host entry itself).
fn take_header(headers: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let first = first_header(headers, name).map(str::to_string);
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    first
}

/// Splits a probe path into path and query, dropping any fragment; a path without a leading
/// slash gets one, as Go adds it when printing a URL with a host.
fn split_path(raw: &str) -> (String, Option<String>) {
    let without_fragment = raw.split('#').next().unwrap_or("");
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (without_fragment, None),
    };
    let mut path = escape_path(path);
    if !path.is_empty() && !path.starts_with('/') {
        path.insert(0, '/');
    }
    (path, query)
}

/// Percent-encodes the bytes that cannot appear in a request line.
fn escape_path(path: &str) -> String {
    let mut escaped = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_graphic() {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// Sends the GET, following same-host redirects, all before `deadline` if there is one.
pub(crate) async fn get(
    request: &GetRequest,
    deadline: Option<Instant>,
) -> Result<GetResponse, GetError> {
    let original_host = request.url.host.clone();
    let mut url = request.url.clone();
    let mut host_override = request.host_override.clone();
    let mut referer: Option<String> = None;
    let mut requests_sent = 0usize;
    loop {
        requests_sent += 1;
        let shown = url.display();
        let exchange = send_once(
            &url,
            &request.headers,
            host_override.as_deref(),
            referer.as_deref(),
        );
        let (response, connection) = match with_deadline(deadline, exchange).await {
            None => {
                return Err(GetError::Transport(format!(
                    "Get {}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    go_quote(&shown)
                )))
            }
            Some(Err(message)) => {
                return Err(GetError::Transport(format!("Get {}: {message}", go_quote(&shown))))
            }
            Some(Ok(exchange)) => exchange,
        };

        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        if let (true, Some(location)) = (is_followed_redirect(status), location) {
            let next = resolve_location(&url, &location).map_err(|message| {
                GetError::Transport(format!(
                    "Get {}: failed to parse Location header {}: {message}",
                    go_quote(&shown),
                    go_quote(&location)
                ))
            })?;
            // A redirect to another host ends the chain: its response is the answer.
            if next.host == original_host {
                if requests_sent >= MAX_REQUESTS {
                    return Err(GetError::Transport(format!(
                        "Get {}: stopped after 10 redirects",
                        go_quote(&location)
                    )));
                }
                if is_absolute_reference(&location) {
                    host_override = None;
                }
                referer = referer_for(&url, &next);
                drop(connection);
                url = next;
                continue;
            }
        }

        let body = match with_deadline(deadline, read_limited(response.into_body())).await {
            None => {
                return Err(GetError::Body(
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                        .to_string(),
                ))
            }
            Some(Err(message)) => return Err(GetError::Body(message)),
            Some(Ok(body)) => body,
        };
        drop(connection);
        return Ok(GetResponse { status, body });
    }
}

async fn with_deadline<F: std::future::Future>(
    deadline: Option<Instant>,
    work: F,
) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// The statuses Go's client follows when they carry a Location.
fn is_followed_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Go sends the previous URL as Referer, except from HTTPS to HTTP.
fn referer_for(previous: &Url, next: &Url) -> Option<String> {
    if previous.scheme == Scheme::Https && next.scheme == Scheme::Http {
        None
    } else {
        Some(previous.display())
    }
}

/// Aborts the task driving a connection when the exchange is over or abandoned.
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send_once(
    url: &Url,
    headers: &[(String, String)],
    host_override: Option<&str>,
    referer: Option<&str>,
) -> Result<(Response<Incoming>, ConnectionTask), String> {
    if let Scheme::Other(name) = &url.scheme {
        return Err(format!("unsupported protocol scheme {}", go_quote(name)));
    }
    let authority = url.authority();
    let mut builder = Request::builder()
        .method("GET")
        .uri(url.request_target())
        .header(header::HOST, host_override.unwrap_or(&authority));
    for (name, value) in headers {
        if hyper::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "net/http: invalid header field name {}",
                go_quote(name)
            ));
        }
        if hyper::http::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "net/http: invalid header field value for {}",
                go_quote(name)
            ));
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(referer) = referer {
        if !has_header(headers, "referer") {
            builder = builder.header(header::REFERER, referer);
        }
    }
    let request = builder
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|err| err.to_string())?;

    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|err| dial_error(&authority, &err))?;
    match url.scheme {
        Scheme::Https => {
            let tls = tls_connect(stream, &url.host).await?;
            exchange(tls, request).await
        }
        _ => exchange(stream, request).await,
    }
}

async fn exchange<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
) -> Result<(Response<Incoming>, ConnectionTask), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| transport_text(&err))?;
    let task = ConnectionTask(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| transport_text(&err))?;
    Ok((response, task))
}

/// A hyper failure in Go's words where they differ (a peer that hangs up early is an `EOF`).
fn transport_text(err: &hyper::Error) -> String {
    if err.is_incomplete_message() || err.is_closed() {
        "EOF".to_string()
    } else if err.is_parse() {
        format!("net/http: HTTP/1.x transport connection broken: {err}")
    } else {
        err.to_string()
    }
}

async fn read_limited(mut body: Incoming) -> Result<Vec<u8>, String> {
    let mut collected = Vec::new();
    while collected.len() < MAX_BODY_BYTES {
        match body.frame().await {
            None => break,
            Some(Err(err)) => return Err(transport_text(&err)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = MAX_BODY_BYTES - collected.len();
                    collected.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
    Ok(collected)
}

async fn tls_connect(
    stream: TcpStream,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let config = insecure_tls_config()?;
    let server_name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|err| format!("tls: invalid server name {}: {err}", go_quote(host)))?,
    };
    tokio_rustls::TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|err| tls_error_text(&err))
}

fn tls_error_text(err: &std::io::Error) -> String {
    let inner = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            format!("http: {HTTP_RESPONSE_TO_HTTPS_CLIENT}")
        }
        Some(tls) => format!("remote error: tls: {tls}"),
        None => err.to_string(),
    }
}

/// Kubelet probes HTTPS endpoints without verifying their certificates (`InsecureSkipVerify`).
fn insecure_tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(SkipServerVerification(provider.clone()));
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|err| err.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// Accepts any server certificate but still checks the handshake signatures, like Go's
/// `InsecureSkipVerify`: HTTPS probes skip verification as the kubelet's do, and a joining
/// agent reads the cluster CA this way before it checks the answer against its pinned hash.
#[derive(Debug)]
pub struct SkipServerVerification(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
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
        cert: &rustls::pki_types::CertificateDer<'_>,
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

/// Whether a Location names its own scheme or host (so a custom Host header must not follow it).
fn is_absolute_reference(location: &str) -> bool {
    location.starts_with("//") || scheme_prefix(location).is_some()
}

/// The scheme of an absolute reference (`https` in `https://x/`), if it has one.
fn scheme_prefix(reference: &str) -> Option<&str> {
    let colon = reference.find(':')?;
    let candidate = &reference[..colon];
    let mut chars = candidate.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(candidate)
}

/// Resolves a Location header against the URL that answered with it (RFC 3986, section 5).
pub(crate) fn resolve_location(base: &Url, location: &str) -> Result<Url, String> {
    let reference = location.split('#').next().unwrap_or("");
    if let Some(scheme) = scheme_prefix(reference) {
        let rest = &reference[scheme.len() + 1..];
        let Some(after_slashes) = rest.strip_prefix("//") else {
            return Err("missing host".to_string());
        };
        return parse_authority_and_rest(Scheme::parse(scheme), after_slashes);
    }
    if let Some(after_slashes) = reference.strip_prefix("//") {
        return parse_authority_and_rest(base.scheme.clone(), after_slashes);
    }
    let (path, query) = match reference.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (reference, None),
    };
    let mut next = base.clone();
    if path.is_empty() {
        if query.is_some() {
            next.query = query;
        }
        return Ok(next);
    }
    let merged = if path.starts_with('/') {
        path.to_string()
    } else {
        let directory = match base.path.rfind('/') {
            Some(at) => &base.path[..=at],
            None => "/",
        };
        format!("{directory}{path}")
    };
    next.path = remove_dot_segments(&escape_path(&merged));
    next.query = query;
    Ok(next)
}

fn parse_authority_and_rest(scheme: Scheme, text: &str) -> Result<Url, String> {
    let end = text.find(['/', '?']).unwrap_or(text.len());
    let authority = &text[..end];
    let rest = &text[end..];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = split_host_port(host_port)?;
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    let port = port.unwrap_or_else(|| scheme.default_port());
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (rest, None),
    };
    Ok(Url {
        scheme,
        host,
        port,
        path: remove_dot_segments(&escape_path(path)),
        query,
    })
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("missing ']' in host".to_string());
        };
        let port = match after.strip_prefix(':') {
            Some(port) => Some(parse_port(port)?),
            None if after.is_empty() => None,
            None => return Err(format!("invalid port {} after host", go_quote(after))),
        };
        return Ok((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, "")) => Ok((host.to_string(), None)),
        Some((host, port)) => Ok((host.to_string(), Some(parse_port(port)?))),
        None => Ok((text.to_string(), None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .map_err(|_| format!("invalid port {} after host", go_quote(&format!(":{text}"))))
}

fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if index == last {
                    output.push("");
                }
            }
            ".." => {
                if output.len() > 1 {
                    output.pop();
                }
                if index == last {
                    output.push("");
                }
            }
            other => output.push(other),
        }
    }
    let joined = output.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HTTPHeader;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn base() -> Url {
        Url {
            scheme: Scheme::Http,
            host: "10.0.0.1".to_string(),
            port: 8080,
            path: "/a/b".to_string(),
            query: Some("x=1".to_string()),
        }
    }

    #[test]
    fn resolves_locations_against_the_answering_url() {
        let cases = [
            ("/c", "http://10.0.0.1:8080/c"),
            ("c", "http://10.0.0.1:8080/a/c"),
            ("../c?y=2", "http://10.0.0.1:8080/c?y=2"),
            ("?y=2", "http://10.0.0.1:8080/a/b?y=2"),
            ("http://other:81/d", "http://other:81/d"),
            ("https://other/d#frag", "https://other:443/d"),
            ("//other/e", "http://other:80/e"),
            ("http://[::1]:9/f", "http://[::1]:9/f"),
        ];
        for (location, want) in cases {
            let resolved = resolve_location(&base(), location).map(|url| url.display());
            assert_eq!(resolved.as_deref(), Ok(want), "resolving {location}");
        }
        assert!(resolve_location(&base(), "http://h:notaport/").is_err());
    }

    #[test]
    fn builds_requests_like_kubelet() {
        let action = HTTPGetAction {
            path: Some("healthz?full=1".to_string()),
            port: IntOrString::String("web".to_string()),
            scheme: Some("HTTPS".to_string()),
            http_headers: Some(vec![
                HTTPHeader {
                    name: "host".to_string(),
                    value: "example.com".to_string(),
                },
                HTTPHeader {
                    name: "Accept".to_string(),
                    value: String::new(),
                },
            ]),
            ..Default::default()
        };
        let ports = vec![ContainerPort {
            name: Some("web".to_string()),
            container_port: 8443,
            ..Default::default()
        }];
        let request = build_request(&action, "127.0.0.2".parse().unwrap(), &ports, "probe")
            .expect("request builds");
        assert_eq!(
            request.url.display(),
            "https://127.0.0.2:8443/healthz?full=1"
        );
        assert_eq!(request.host_override.as_deref(), Some("example.com"));
        assert_eq!(
            request.headers,
            vec![(
                "User-Agent".to_string(),
                format!("kube-probe/{KUBE_MINOR_VERSION}")
            )]
        );
    }

    #[test]
    fn empty_path_prints_without_slash_but_requests_root() {
        let url = Url {
            path: String::new(),
            query: None,
            ..base()
        };
        assert_eq!(url.display(), "http://10.0.0.1:8080");
        assert_eq!(url.request_target(), "/");
    }
}
