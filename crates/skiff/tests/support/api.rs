//! Raw API requests with bodies, for tests that write many objects quickly or must tell a refused
//! connection from an answer (kubectl would hide both behind its retries and its start-up cost).
//! Every failure is returned, never a panic: a server that was just killed is an expected case.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;

/// How long one request may wait for its answer: a live server answers a write in milliseconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a running server listens, with what the admin needs to reach it: read from the
/// kubeconfig the server wrote at its start, so it follows the server across restarts.
#[derive(Clone)]
pub struct ApiEndpoint {
    address: String,
    host: String,
    token: String,
    tls: Arc<rustls::ClientConfig>,
}

impl ApiEndpoint {
    /// The server, CA and bearer token named by `kubeconfig`.
    pub fn from_kubeconfig(kubeconfig: &Path) -> Result<ApiEndpoint, String> {
        let text = std::fs::read_to_string(kubeconfig)
            .map_err(|e| format!("cannot read {}: {e}", kubeconfig.display()))?;
        let config: serde_json::Value = skiff_api::yaml::from_str(&text)
            .map_err(|e| format!("the kubeconfig is not YAML: {e}"))?;
        let cluster = &config["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap_or_default();
        let address = server
            .strip_prefix("https://")
            .ok_or_else(|| format!("the kubeconfig server {server:?} is not https"))?
            .to_string();
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h)
            .to_string();
        let token = config["users"][0]["user"]["token"]
            .as_str()
            .ok_or("the kubeconfig has no token")?
            .to_string();
        let ca_pem = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(
                    cluster["certificate-authority-data"]
                        .as_str()
                        .unwrap_or_default(),
                )
                .map_err(|e| format!("the kubeconfig CA is not base64: {e}"))?
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca_pem) {
            let cert = cert.map_err(|e| format!("the kubeconfig CA is not PEM: {e:?}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the kubeconfig CA is unusable: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("no TLS versions: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ApiEndpoint {
            address,
            host,
            token,
            tls: Arc::new(tls),
        })
    }

    /// Sends one request with the admin token (and a JSON body, if any) on a new connection and
    /// returns the status code and the whole body. An error means no complete answer arrived:
    /// the connection was refused or cut, or the answer was truncated.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let server_name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("bad server name {}: {e}", self.host))?;
        let connection = rustls::ClientConnection::new(self.tls.clone(), server_name)
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let socket = TcpStream::connect(&self.address)
            .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
        socket
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .and_then(|()| socket.set_write_timeout(Some(REQUEST_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(connection, socket);
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nAuthorization: Bearer {}\r\n",
            self.address, self.token
        );
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending {method} {path}: {e}"))?;
        let mut raw = Vec::new();
        if let Err(e) = stream.read_to_end(&mut raw) {
            // A server may close without a TLS close_notify; the framing below says whether what
            // arrived is whole.
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                return Err(format!("reading the answer to {method} {path}: {e}"));
            }
        }
        parse_complete_response(&raw)
    }
}

/// The status and body of a raw HTTP/1.1 answer, or an error when it is not whole (no header
/// end, a body shorter than its `Content-Length`, or chunks without their last one).
fn parse_complete_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete HTTP answer: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed status line in {head:?}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest
                .split_once("\r\n")
                .ok_or("a chunked answer ended before its last chunk")?;
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|e| format!("bad chunk size {size:?}: {e}"))?;
            if size == 0 {
                return Ok((status, out));
            }
            let chunk = after
                .get(..size)
                .ok_or("a chunked answer ended inside a chunk")?;
            out.push_str(chunk);
            rest = after[size..].trim_start_matches("\r\n");
        }
    }
    if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|e| format!("bad Content-Length {length:?}: {e}"))?;
        if body.len() < length {
            return Err(format!(
                "the answer ended after {} of {length} bytes",
                body.len()
            ));
        }
        return Ok((status, body[..length].to_string()));
    }
    Ok((status, body.to_string()))
}
