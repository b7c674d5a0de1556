//! Upgrade negotiation: from the headers of an `exec`, `attach` or `portforward` request, the
//! transport and subprotocol to speak, with the headers of the `101 Switching Protocols`
//! answer, or the refusal Kubernetes sends. Pure: no I/O, so an HTTP server calls it before
//! deciding whether to upgrade.
//!
//! What is accepted is the union of what kube-apiserver serves itself and what it proxies to a
//! kubelet: WebSocket `v5.channel.k8s.io` (translated by the API server), the kubelet's
//! WebSocket `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, `channel.k8s.io` and
//! `base64.channel.k8s.io`, SPDY `v5`..`v2.channel.k8s.io` and `channel.k8s.io`, SPDY
//! `portforward.k8s.io`, and the same tunnelled in WebSocket messages (`SPDY/3.1+portforward.k8s.io`,
//! kubectl 1.31 and later).

use http::header::{
    CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, StatusCode};

/// `X-Stream-Protocol-Version`: the SPDY subprotocols a client offers, and the one chosen.
pub const HEADER_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// `X-Accepted-Stream-Protocol-Versions`: what the server accepts, sent with a refusal.
pub const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";
/// The prefix marking a WebSocket subprotocol that tunnels SPDY.
pub const SPDY_TUNNEL_PREFIX: &str = "SPDY/3.1+";
/// The SPDY port-forward subprotocol.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// Remote command subprotocols over SPDY, newest first (kubelet's list, v5 included: over SPDY
/// it behaves as v4, SPDY having its own half-close).
const SPDY_REMOTE_COMMAND: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// Remote command subprotocols over WebSocket.
const WEBSOCKET_REMOTE_COMMAND: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// Port-forward subprotocols of the kubelet's WebSocket transport.
const WEBSOCKET_PORT_FORWARD: &[&str] = &["v4.channel.k8s.io", "v4.base64.channel.k8s.io"];

/// Which subresource the request is for: exec and attach share their protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `pods/exec` or `pods/attach`.
    RemoteCommand,
    /// `pods/portforward`.
    PortForward,
}

/// The remote command protocol generation, which decides the streams and the status format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RemoteCommandVersion {
    /// `channel.k8s.io` over SPDY: no resize, errors as text.
    V1,
    /// `v2.channel.k8s.io`: no resize, errors as text.
    V2,
    /// `v3.channel.k8s.io` (and WebSocket `channel.k8s.io`): resize, errors as text.
    V3,
    /// `v4.channel.k8s.io`: a `Status` JSON on the error stream carries the exit code.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the WebSocket CLOSE signal for half-closing stdin.
    V5,
}

impl RemoteCommandVersion {
    /// Whether the client may send terminal sizes.
    pub fn supports_resize(self) -> bool {
        self >= Self::V3
    }

    /// Whether the final status is a `Status` JSON (otherwise a failure's message as text).
    pub fn status_as_json(self) -> bool {
        self >= Self::V4
    }
}

/// How the upgraded connection carries streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SPDY/3.1 streams.
    Spdy,
    /// WebSocket messages prefixed with a channel number (or its ASCII digit, base64 payload).
    WebSocket {
        /// `base64.channel.k8s.io` style: text messages, base64 payloads.
        base64: bool,
    },
    /// SPDY/3.1 bytes carried in binary WebSocket messages.
    SpdyOverWebSocket,
}

/// A successful negotiation.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// What kind of session follows.
    pub kind: StreamKind,
    /// How streams travel.
    pub transport: Transport,
    /// The chosen subprotocol (`""` when a WebSocket client offered none).
    pub protocol: String,
    /// Headers of the `101 Switching Protocols` answer.
    pub response_headers: HeaderMap,
}

impl Negotiated {
    /// The remote command generation, for exec and attach sessions.
    pub fn remote_command_version(&self) -> Option<RemoteCommandVersion> {
        if self.kind != StreamKind::RemoteCommand {
            return None;
        }
        let name = self.protocol.as_str();
        Some(match name {
            "v5.channel.k8s.io" => RemoteCommandVersion::V5,
            "v4.channel.k8s.io" | "v4.base64.channel.k8s.io" => RemoteCommandVersion::V4,
            "v3.channel.k8s.io" => RemoteCommandVersion::V3,
            "v2.channel.k8s.io" => RemoteCommandVersion::V2,
            _ if matches!(self.transport, Transport::WebSocket { .. }) => RemoteCommandVersion::V3,
            _ => RemoteCommandVersion::V1,
        })
    }

    /// The whole `101` response head, for servers that write responses themselves.
    pub fn response_head(&self) -> Vec<u8> {
        let mut head = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for (name, value) in &self.response_headers {
            head.extend_from_slice(canonical(name.as_str()).as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}

/// A refused upgrade: answer it as a plain HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 or 403, as Kubernetes answers.
    pub status: StatusCode,
    /// `text/plain; charset=utf-8` for the kubelet's messages, `application/json` for a `Status`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Extra headers (`X-Accepted-Stream-Protocol-Versions`, once per protocol).
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn text(status: StatusCode, message: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n"),
            headers: Vec::new(),
        }
    }

    fn status_json(status: StatusCode, reason: &str, message: &str) -> Self {
        let body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": status.as_u16(),
        });
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// The whole response, for servers that write responses themselves.
    pub fn response_bytes(&self) -> Vec<u8> {
        let reason = self.status.canonical_reason().unwrap_or("");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status.as_u16(),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(canonical(name).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// Chooses the transport and subprotocol for a streaming request, or the refusal Kubernetes
/// sends: a `Status` 400 `Upgrade request required` when the request is no upgrade, 400
/// `unable to upgrade: X-Stream-Protocol-Version is required` when a SPDY client offers no
/// protocol, 403 `unable to upgrade: unable to negotiate protocol: ...` when nothing matches.
pub fn negotiate(kind: StreamKind, headers: &HeaderMap) -> Result<Negotiated, Refusal> {
    let is_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("upgrade"));
    if !is_upgrade {
        return Err(Refusal::status_json(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
        ));
    }
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .trim();
    if upgrade.eq_ignore_ascii_case("websocket") {
        negotiate_websocket(kind, headers)
    } else if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        negotiate_spdy(kind, headers)
    } else {
        Err(Refusal::text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request".into(),
        ))
    }
}

fn negotiate_spdy(kind: StreamKind, headers: &HeaderMap) -> Result<Negotiated, Refusal> {
    let offered = comma_separated(headers, HEADER_PROTOCOL_VERSION);
    let accepted: &[&str] = match kind {
        StreamKind::RemoteCommand => SPDY_REMOTE_COMMAND,
        StreamKind::PortForward => &[PORT_FORWARD_PROTOCOL],
    };
    let protocol = choose_spdy(&offered, accepted)?;
    let mut response_headers = HeaderMap::new();
    response_headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    insert(&mut response_headers, HEADER_PROTOCOL_VERSION, &protocol);
    Ok(Negotiated {
        kind,
        transport: Transport::Spdy,
        protocol,
        response_headers,
    })
}

/// kubelet's `httpstream.Handshake`: the first protocol the client lists that the server
/// accepts.
fn choose_spdy(offered: &[String], accepted: &[&str]) -> Result<String, Refusal> {
    if offered.is_empty() {
        return Err(Refusal::text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required".into(),
        ));
    }
    if let Some(found) = offered.iter().find(|p| accepted.contains(&p.as_str())) {
        return Ok(found.clone());
    }
    let mut refusal = Refusal::text(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
            offered.join(" "),
            accepted.join(" ")
        ),
    );
    for protocol in accepted {
        refusal
            .headers
            .push((HEADER_ACCEPTED_PROTOCOL_VERSIONS, protocol.to_string()));
    }
    Err(refusal)
}

fn negotiate_websocket(kind: StreamKind, headers: &HeaderMap) -> Result<Negotiated, Refusal> {
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    let version_ok = headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|value| value.as_bytes() == b"13");
    if key.is_empty() || !version_ok {
        return Err(Refusal::text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: invalid WebSocket handshake".into(),
        ));
    }
    let offered = comma_separated(headers, SEC_WEBSOCKET_PROTOCOL.as_str());
    let (transport, protocol, answered) = match kind {
        StreamKind::PortForward if offered.iter().any(|p| p.starts_with(SPDY_TUNNEL_PREFIX)) => {
            let tunnelled: Vec<String> = offered
                .iter()
                .filter_map(|p| p.strip_prefix(SPDY_TUNNEL_PREFIX))
                .filter(|p| p.ends_with(".k8s.io"))
                .map(str::to_string)
                .collect();
            if tunnelled.is_empty() {
                return Err(Refusal::text(
                    StatusCode::BAD_REQUEST,
                    "unable to upgrade: no tunneling spdy protocols provided".into(),
                ));
            }
            let protocol = choose_spdy(&tunnelled, &[PORT_FORWARD_PROTOCOL])?;
            let answered = format!("{SPDY_TUNNEL_PREFIX}{protocol}");
            (Transport::SpdyOverWebSocket, protocol, answered)
        }
        StreamKind::PortForward => {
            // The kubelet's own WebSocket port-forward: a data and an error channel per port.
            let protocol = choose_websocket(&offered, WEBSOCKET_PORT_FORWARD)?;
            let base64 = protocol.contains("base64");
            let answered = protocol.clone();
            (Transport::WebSocket { base64 }, protocol, answered)
        }
        StreamKind::RemoteCommand => {
            let protocol = choose_websocket(&offered, WEBSOCKET_REMOTE_COMMAND)?;
            let base64 = protocol.contains("base64");
            let answered = protocol.clone();
            (Transport::WebSocket { base64 }, protocol, answered)
        }
    };
    let mut response_headers = HeaderMap::new();
    response_headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    insert(
        &mut response_headers,
        "sec-websocket-accept",
        &websocket_accept(key),
    );
    if !answered.is_empty() {
        insert(&mut response_headers, "sec-websocket-protocol", &answered);
    }
    Ok(Negotiated {
        kind,
        transport,
        protocol,
        response_headers,
    })
}

/// The WebSocket library kube-apiserver and the kubelet use: the first offered subprotocol the
/// server knows, none when none is offered, and a bare 403 when nothing matches.
fn choose_websocket(offered: &[String], accepted: &[&str]) -> Result<String, Refusal> {
    if offered.is_empty() {
        return Ok(String::new());
    }
    offered
        .iter()
        .find(|p| accepted.contains(&p.as_str()))
        .cloned()
        .ok_or_else(|| Refusal {
            status: StatusCode::FORBIDDEN,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
            headers: Vec::new(),
        })
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455, section 4.2.2): the base64 of the
/// SHA-1 of the key followed by the protocol's fixed GUID.
fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key);
    context.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(context.finish().as_ref())
}

fn comma_separated(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|part| part.trim().to_string())
        .filter(|part| !part.is_empty())
        .collect()
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// `x-stream-protocol-version` as Go writes it: `X-Stream-Protocol-Version`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn spdy_picks_the_clients_first_supported_protocol() {
        let request = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            (
                "x-stream-protocol-version",
                "v9.channel.k8s.io, v4.channel.k8s.io",
            ),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        let chosen = negotiate(StreamKind::RemoteCommand, &request).unwrap();
        assert_eq!(chosen.protocol, "v4.channel.k8s.io");
        assert_eq!(chosen.transport, Transport::Spdy);
        assert_eq!(
            chosen.remote_command_version(),
            Some(RemoteCommandVersion::V4)
        );
        let head = String::from_utf8(chosen.response_head()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(head.contains("X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"));
        assert!(head.contains("Upgrade: SPDY/3.1\r\n"));
    }

    #[test]
    fn spdy_refusals_carry_the_kubelet_messages() {
        let none = headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]);
        let refusal = negotiate(StreamKind::RemoteCommand, &none).unwrap_err();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refusal.body,
            "unable to upgrade: X-Stream-Protocol-Version is required\n"
        );
        let wrong = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        let refusal = negotiate(StreamKind::PortForward, &wrong).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refusal.body,
            "unable to upgrade: unable to negotiate protocol: client supports [v4.channel.k8s.io], server accepts [portforward.k8s.io]\n"
        );
        assert_eq!(
            refusal.headers,
            vec![(
                HEADER_ACCEPTED_PROTOCOL_VERSIONS,
                "portforward.k8s.io".to_string()
            )]
        );
        let response = String::from_utf8(refusal.response_bytes()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{response}"
        );
        assert!(
            response.contains("\r\nX-Accepted-Stream-Protocol-Versions: portforward.k8s.io\r\n"),
            "{response}"
        );
    }

    #[test]
    fn a_plain_request_needs_an_upgrade() {
        let refusal = negotiate(StreamKind::RemoteCommand, &HeaderMap::new()).unwrap_err();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        let status: serde_json::Value = serde_json::from_str(&refusal.body).unwrap();
        assert_eq!(status["message"], "Upgrade request required");
        assert_eq!(status["reason"], "BadRequest");
        assert_eq!(status["code"], 400);
    }

    #[test]
    fn websocket_accepts_v5_and_answers_the_key() {
        // The example key of RFC 6455, section 1.3.
        let request = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            (
                "sec-websocket-protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
        ]);
        let chosen = negotiate(StreamKind::RemoteCommand, &request).unwrap();
        assert_eq!(
            chosen.remote_command_version(),
            Some(RemoteCommandVersion::V5)
        );
        assert_eq!(chosen.transport, Transport::WebSocket { base64: false });
        assert_eq!(
            chosen.response_headers.get("sec-websocket-accept").unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            chosen
                .response_headers
                .get("sec-websocket-protocol")
                .unwrap(),
            "v5.channel.k8s.io"
        );
    }

    #[test]
    fn websocket_base64_and_unknown_protocols() {
        let base = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        let mut request = headers(&base);
        request.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("base64.channel.k8s.io"),
        );
        let chosen = negotiate(StreamKind::RemoteCommand, &request).unwrap();
        assert_eq!(chosen.transport, Transport::WebSocket { base64: true });
        assert_eq!(
            chosen.remote_command_version(),
            Some(RemoteCommandVersion::V3)
        );
        request.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v9.channel.k8s.io"),
        );
        let refusal = negotiate(StreamKind::RemoteCommand, &request).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        let refusal = negotiate(StreamKind::PortForward, &request).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        request.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.base64.channel.k8s.io"),
        );
        let chosen = negotiate(StreamKind::PortForward, &request).unwrap();
        assert_eq!(chosen.transport, Transport::WebSocket { base64: true });
        request.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("SPDY/3.1+other"),
        );
        let refusal = negotiate(StreamKind::PortForward, &request).unwrap_err();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refusal.body,
            "unable to upgrade: no tunneling spdy protocols provided\n"
        );
    }

    #[test]
    fn port_forward_tunnels_spdy_in_websocket() {
        let request = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        let chosen = negotiate(StreamKind::PortForward, &request).unwrap();
        assert_eq!(chosen.transport, Transport::SpdyOverWebSocket);
        assert_eq!(chosen.protocol, "portforward.k8s.io");
        assert_eq!(
            chosen
                .response_headers
                .get("sec-websocket-protocol")
                .unwrap(),
            "SPDY/3.1+portforward.k8s.io"
        );
    }
}
