//! Plain HTTP to pods and node ports, the way a client outside the cluster talks to them, and
//! the demo server's answer line, so every e2e test reads pods the same way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long connecting to a pod may take: pod IPs are local, so a slow connect means trouble.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a plain page may take to answer, for callers with no reason to wait longer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP/1.1 GET of `path` on port 80 of `ip`, allowing `read_timeout` for the answer: the
/// status code and the body. Errors say which step failed, for test messages.
pub fn http_get(ip: &str, path: &str, read_timeout: Duration) -> Result<(u16, String), String> {
    let address: SocketAddr = format!("{ip}:80")
        .parse()
        .map_err(|e| format!("bad address {ip}: {e}"))?;
    http_get_at(address, path, CONNECT_TIMEOUT, read_timeout)
}

/// One HTTP/1.1 GET of `path` on a new connection to `address` (a pod, a node port, a cluster
/// IP): the status code and the body.
pub fn http_get_at(
    address: SocketAddr,
    path: &str,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<(u16, String), String> {
    let mut socket = TcpStream::connect_timeout(&address, connect_timeout)
        .map_err(|e| format!("connecting to {address}: {e}"))?;
    socket
        .set_read_timeout(Some(read_timeout))
        .and_then(|()| socket.set_write_timeout(Some(read_timeout)))
        .map_err(|e| e.to_string())?;
    socket
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                address.ip()
            )
            .as_bytes(),
        )
        .map_err(|e| format!("sending to {address}: {e}"))?;
    let mut raw = Vec::new();
    socket
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading from {address}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed response from {address}: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed status line from {address}: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The body `GET /` on port 80 of `ip` answers with 200, if it does: for polling until a pod
/// serves what it should.
pub fn ok_body(ip: &str) -> Option<String> {
    match http_get(ip, "/", READ_TIMEOUT) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// The line the demo server answers `GET /` with, for comparing whole bodies.
pub fn demo_line(version: &str, pod: &str) -> String {
    format!("version={version} pod={pod}\n")
}

/// The demo server's answer: `version=<tag> pod=<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The image tag the answering process runs.
    pub version: String,
    /// The name of the answering pod.
    pub pod: String,
}

/// Reads the demo server's `version=... pod=...` body, in any field order; `None` when either
/// field is missing.
pub fn parse_answer(body: &str) -> Option<Answer> {
    let mut version = None;
    let mut pod = None;
    for field in body.split_whitespace() {
        if let Some(v) = field.strip_prefix("version=") {
            version = Some(v.to_string());
        } else if let Some(p) = field.strip_prefix("pod=") {
            pod = Some(p.to_string());
        }
    }
    Some(Answer {
        version: version?,
        pod: pod?,
    })
}
