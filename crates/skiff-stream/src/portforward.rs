//! Port-forward sessions: for every local connection, kubectl opens a pair of SPDY streams
//! (an `error` and a `data` stream, both carrying the `port` and a shared `requestID`), over
//! SPDY directly or tunnelled in WebSocket messages. Each complete pair reaches the caller as
//! one [`ForwardedConnection`]: a byte stream and the port to connect it to in the pod.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use crate::negotiate::{Negotiated, StreamKind, Transport};
use crate::remotecommand::{SessionError, STREAM_CREATION_TIMEOUT};
use crate::spdy::{SpdyConnection, SpdyStream};
use crate::websocket::{accept_websocket, tunnel};

/// One forwarded connection: bytes to and from `port` in the pod.
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
    connection: SpdyConnection,
    pending: HashMap<String, PendingPair>,
    pair_timeout: Duration,
}

impl PortForwardSession {
    /// Starts a session on `io`, an upgraded connection whose `101` answer was sent.
    pub async fn start<IO>(io: IO, negotiated: &Negotiated) -> Result<Self, SessionError>
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
            Transport::WebSocket { .. } => return Err(SessionError::WrongKind(negotiated.kind)),
        };
        Ok(Self {
            connection,
            pending: HashMap::new(),
            pair_timeout: STREAM_CREATION_TIMEOUT,
        })
    }

    /// The next connection the client forwards, or `None` once the session ended. A pair whose
    /// second stream does not arrive within the stream creation timeout is dropped with the
    /// kubelet's `timed out waiting for streams` on its error stream.
    pub async fn next(&mut self) -> Option<ForwardedConnection> {
        loop {
            let earliest = self.pending.values().map(|pair| pair.deadline).min();
            let stream = match earliest {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.connection.accept()).await {
                        Ok(stream) => stream,
                        Err(_) => {
                            self.expire(Instant::now()).await;
                            continue;
                        }
                    }
                }
                None => self.connection.accept().await,
            };
            let stream = stream?;
            if let Some(forwarded) = self.add(stream).await {
                return Some(forwarded);
            }
        }
    }

    async fn add(&mut self, stream: SpdyStream) -> Option<ForwardedConnection> {
        let stream_type = stream.header("streamType").unwrap_or("").to_string();
        // kubectl always sends requestID; older clients paired streams by id, the data stream
        // opened two after its error stream.
        let request_id = match stream.header("requestID") {
            Some(id) => id.to_string(),
            None if stream_type == "data" => stream.id.saturating_sub(2).to_string(),
            None => stream.id.to_string(),
        };
        let pair = self
            .pending
            .entry(request_id.clone())
            .or_insert_with(|| PendingPair {
                data: None,
                error: None,
                deadline: Instant::now() + self.pair_timeout,
            });
        match stream_type.as_str() {
            "data" if pair.data.is_none() => pair.data = Some(stream),
            "error" if pair.error.is_none() => pair.error = Some(stream),
            _ => {
                // An unknown type or a duplicate: refuse that stream alone.
                let id = stream.id;
                drop(stream);
                self.connection
                    .reset(id, crate::spdy::frame::STATUS_PROTOCOL_ERROR)
                    .await;
                return None;
            }
        }
        if pair.data.is_none() || pair.error.is_none() {
            return None;
        }
        let pair = self.pending.remove(&request_id)?;
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
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, pair)| pair.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(pair) = self.pending.remove(&id) {
                if let Some(error) = pair.error {
                    ForwardErrors(error.io)
                        .report(&format!("(request={id}) timed out waiting for streams"))
                        .await;
                }
            }
        }
    }

    /// Ends the session: GOAWAY, then waits up to `linger` for the client to close.
    pub async fn close(self, linger: Duration) {
        self.connection.close(linger).await;
    }
}
