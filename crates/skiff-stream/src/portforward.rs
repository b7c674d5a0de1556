//! Port-forward sessions: for every local connection, kubectl opens a pair of SPDY streams
//! (an `error` and a `data` stream, both carrying the `port` and a shared `requestID`), over
//! SPDY directly or tunnelled in WebSocket messages. Each complete pair reaches the caller as
//! one [`ForwardedConnection`]: a byte stream and the port to connect it to in the pod.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use crate::negotiate::{Negotiated, Refusal, StreamKind, Transport};
use crate::remotecommand::{SessionError, STREAM_CREATION_TIMEOUT};
use crate::spdy::{SpdyConnection, SpdyStream};
use crate::websocket::{accept_websocket, tunnel, ChannelConnection, CHANNEL_BUFFER};

/// The ports a WebSocket port-forward asks for in its `port` query parameters (SPDY clients
/// name ports per stream instead).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortForwardOptions {
    /// The ports, in order: port `i` gets data channel `2i` and error channel `2i+1`.
    pub ports: Vec<u16>,
}

/// At most this many ports fit the one-byte channel numbers (255 is reserved).
const MAX_WEBSOCKET_PORTS: usize = 127;

impl PortForwardOptions {
    /// Reads the `port` query parameters (repeated or comma-separated) with the kubelet's
    /// messages, for the WebSocket transport; other transports need none.
    pub fn from_query(query: &str, transport: Transport) -> Result<Self, Refusal> {
        if !matches!(transport, Transport::WebSocket { .. }) {
            return Ok(Self::default());
        }
        let bad = |message: String| Refusal {
            status: http::StatusCode::BAD_REQUEST,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n"),
            headers: Vec::new(),
        };
        let values: Vec<&str> = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("port="))
            .collect();
        if values.is_empty() {
            return Err(bad("query parameter \"port\" is required".into()));
        }
        let mut ports = Vec::new();
        for value in values {
            if value.is_empty() {
                return Err(bad("query parameter \"port\" cannot be empty".into()));
            }
            for part in value.split("%2C").flat_map(|p| p.split(',')) {
                let port: u16 = part.parse().map_err(|_| {
                    bad(format!(
                        "unable to parse {value:?} as a port: invalid syntax"
                    ))
                })?;
                if port < 1 {
                    return Err(bad(format!("port {value:?} must be > 0")));
                }
                ports.push(port);
            }
        }
        if ports.len() > MAX_WEBSOCKET_PORTS {
            return Err(bad(format!(
                "at most {MAX_WEBSOCKET_PORTS} ports can be forwarded over one WebSocket"
            )));
        }
        Ok(Self { ports })
    }
}

/// One forwarded connection: bytes to and from `port` in the pod. When the pod closes its side,
/// shut `data` down and drop `errors`, as the kubelet does: kubectl closes its local connection
/// only once both streams ended, whether or not its client still sends.
pub struct ForwardedConnection {
    /// The pod port the client asked for.
    pub port: u16,
    /// The client's identifier of this connection (pairs the two streams).
    pub request_id: String,
    /// The connection's bytes: read what the client sends (EOF when it half-closes), write what
    /// the pod answers, then shut it down.
    pub data: DuplexStream,
    /// Where a failure to reach the port is reported.
    pub errors: ForwardErrors,
}

/// The error stream of one forwarded connection. Dropping it closes it with no error, which
/// kubectl reads as success.
pub struct ForwardErrors(DuplexStream);

impl ForwardErrors {
    /// Reports that forwarding failed with the kubelet's message, `error forwarding port P to
    /// pod NAME, uid UID: CAUSE`, which kubectl prints; then closes the stream.
    pub async fn forwarding_failed(self, port: u16, pod: &str, uid: &str, cause: &str) {
        self.report(&format!(
            "error forwarding port {port} to pod {pod}, uid {uid}: {cause}"
        ))
        .await;
    }

    /// Writes `message` on the error stream and closes it.
    pub async fn report(mut self, message: &str) {
        let _ = self.0.write_all(message.as_bytes()).await;
        let _ = self.0.shutdown().await;
    }
}

struct PendingPair {
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
    deadline: Instant,
}

/// A running port-forward session.
pub struct PortForwardSession {
    inner: Inner,
}

enum Inner {
    Spdy {
        connection: SpdyConnection,
        pending: HashMap<String, PendingPair>,
        pair_timeout: Duration,
    },
    /// The kubelet's WebSocket form: one connection per requested port, all known at once.
    WebSocket {
        ready: VecDeque<ForwardedConnection>,
    },
}

impl PortForwardSession {
    /// Starts a session on `io`, an upgraded connection whose `101` answer was sent.
    /// `options` matter for the WebSocket transport only.
    pub async fn start<IO>(
        io: IO,
        negotiated: &Negotiated,
        options: &PortForwardOptions,
    ) -> Result<Self, SessionError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if negotiated.kind != StreamKind::PortForward {
            return Err(SessionError::WrongKind(negotiated.kind));
        }
        let connection = match negotiated.transport {
            Transport::Spdy => SpdyConnection::start(io),
            Transport::SpdyOverWebSocket => {
                SpdyConnection::start(tunnel(accept_websocket(io).await))
            }
            Transport::WebSocket { base64 } => {
                let ready = start_websocket(io, base64, &options.ports).await;
                return Ok(Self {
                    inner: Inner::WebSocket { ready },
                });
            }
        };
        Ok(Self {
            inner: Inner::Spdy {
                connection,
                pending: HashMap::new(),
                pair_timeout: STREAM_CREATION_TIMEOUT,
            },
        })
    }

    /// The next connection the client forwards, or `None` once the session ended. A pair whose
    /// second stream does not arrive within the stream creation timeout is dropped with the
    /// kubelet's `timed out waiting for streams` on its error stream. Over the kubelet's
    /// WebSocket form, every requested port is one connection, yielded at once.
    pub async fn next(&mut self) -> Option<ForwardedConnection> {
        loop {
            let (connection, pending) = match &mut self.inner {
                Inner::WebSocket { ready } => return ready.pop_front(),
                Inner::Spdy {
                    connection,
                    pending,
                    ..
                } => (connection, pending),
            };
            let earliest = pending.values().map(|pair| pair.deadline).min();
            let stream = match earliest {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, connection.accept()).await {
                        Ok(stream) => stream,
                        Err(_) => {
                            self.expire(Instant::now()).await;
                            continue;
                        }
                    }
                }
                None => connection.accept().await,
            };
            let stream = stream?;
            if let Some(forwarded) = self.add(stream).await {
                return Some(forwarded);
            }
        }
    }

    async fn add(&mut self, stream: SpdyStream) -> Option<ForwardedConnection> {
        let Inner::Spdy {
            connection,
            pending,
            pair_timeout,
        } = &mut self.inner
        else {
            return None;
        };
        let stream_type = stream.header("streamType").unwrap_or("").to_string();
        // kubectl always sends requestID; older clients paired streams by id, the data stream
        // opened two after its error stream.
        let request_id = match stream.header("requestID") {
            Some(id) => id.to_string(),
            None if stream_type == "data" => stream.id.saturating_sub(2).to_string(),
            None => stream.id.to_string(),
        };
        let timeout = *pair_timeout;
        let pair = pending
            .entry(request_id.clone())
            .or_insert_with(|| PendingPair {
                data: None,
                error: None,
                deadline: Instant::now() + timeout,
            });
        match stream_type.as_str() {
            "data" if pair.data.is_none() => pair.data = Some(stream),
            "error" if pair.error.is_none() => pair.error = Some(stream),
            _ => {
                // An unknown type or a duplicate: refuse that stream alone.
                let id = stream.id;
                drop(stream);
                connection
                    .reset(id, crate::spdy::frame::STATUS_PROTOCOL_ERROR)
                    .await;
                return None;
            }
        }
        if pair.data.is_none() || pair.error.is_none() {
            return None;
        }
        let pair = pending.remove(&request_id)?;
        let (data, error) = (pair.data?, pair.error?);
        let errors = ForwardErrors(error.io);
        let raw_port = data.header("port").unwrap_or("").to_string();
        match raw_port.parse::<u16>() {
            Ok(port) if port > 0 => Some(ForwardedConnection {
                port,
                request_id,
                data: data.io,
                errors,
            }),
            _ => {
                errors.report(&format!("invalid port: {raw_port:?}")).await;
                None
            }
        }
    }

    async fn expire(&mut self, now: Instant) {
        let Inner::Spdy { pending, .. } = &mut self.inner else {
            return;
        };
        let expired: Vec<String> = pending
            .iter()
            .filter(|(_, pair)| pair.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(pair) = pending.remove(&id) {
                if let Some(error) = pair.error {
                    ForwardErrors(error.io)
                        .report(&format!("(request={id}) timed out waiting for streams"))
                        .await;
                }
            }
        }
    }

    /// Ends the session: over SPDY, GOAWAY, then waits up to `linger` for the client to close.
    /// (The WebSocket form ends by itself once every connection finished.)
    pub async fn close(self, linger: Duration) {
        if let Inner::Spdy { connection, .. } = self.inner {
            connection.close(linger).await;
        }
    }
}

/// The kubelet's WebSocket port-forward: port `i` has data channel `2i` (both ways) and error
/// channel `2i+1`; each begins with the port as two little-endian bytes.
async fn start_websocket<IO>(io: IO, base64: bool, ports: &[u16]) -> VecDeque<ForwardedConnection>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let socket = accept_websocket(io).await;
    let data_channels: Vec<u8> = (0..ports.len())
        .filter_map(|index| u8::try_from(index * 2).ok())
        .collect();
    let (connection, inbound) = ChannelConnection::start(socket, base64, &data_channels, false);
    let mut ready = VecDeque::new();
    for ((index, &port), from_client) in ports.iter().enumerate().zip(inbound) {
        let (Ok(data_number), Ok(error_number)) =
            (u8::try_from(index * 2), u8::try_from(index * 2 + 1))
        else {
            break;
        };
        connection.send(data_number, &port.to_le_bytes()).await;
        connection.send(error_number, &port.to_le_bytes()).await;
        let to_client = connection.outbound(data_number);
        let errors = connection.outbound(error_number);
        // Join the two directions of the data channel into one byte stream.
        let (caller_end, joint) = tokio::io::duplex(CHANNEL_BUFFER);
        let (mut joint_read, mut joint_write) = tokio::io::split(joint);
        let mut from_client = from_client.io;
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_client, &mut joint_write).await;
            let _ = joint_write.shutdown().await;
        });
        let mut to_client_io = to_client.io;
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut joint_read, &mut to_client_io).await;
            let _ = to_client_io.shutdown().await;
        });
        ready.push_back(ForwardedConnection {
            port,
            request_id: index.to_string(),
            data: caller_end,
            errors: ForwardErrors(errors.io),
        });
    }
    ready
}
