//! WebSocket transports, on `tokio-tungstenite` over any upgraded byte stream: the Kubernetes
//! channel protocols (each message's first byte names its channel), and SPDY tunnelled in
//! binary messages.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The v5 channel that carries CLOSE signals: `[255, n]` half-closes channel `n`.
pub const CLOSE_CHANNEL: u8 = 255;
/// Bytes buffered per channel and direction between the connection and its caller.
pub const CHANNEL_BUFFER: usize = 64 * 1024;
/// Largest message accepted from a peer.
pub const MAX_MESSAGE: usize = 4 << 20;
const WRITE_CHUNK: usize = 32 * 1024;
const MESSAGE_QUEUE: usize = 64;

/// Opens the server side of a WebSocket whose `101` answer was already sent.
pub async fn accept_websocket<IO>(io: IO) -> WebSocketStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}

/// Turns a WebSocket carrying a byte stream in binary messages (the SPDY tunnel of
/// `SPDY/3.1+portforward.k8s.io`) back into a byte stream.
pub fn tunnel<IO>(socket: WebSocketStream<IO>) -> DuplexStream
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (caller_end, tunnel_end) = tokio::io::duplex(CHANNEL_BUFFER);
    let (mut from_caller, mut to_caller) = tokio::io::split(tunnel_end);
    let (mut sink, mut stream) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) if to_caller.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_caller.shutdown().await;
    });
    tokio::spawn(async move {
        let mut chunk = vec![0u8; WRITE_CHUNK];
        loop {
            match from_caller.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = Bytes::copy_from_slice(chunk.get(..n).unwrap_or_default());
                    if sink.send(Message::Binary(data)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
    });
    caller_end
}

/// A WebSocket multiplexed into numbered channels (`channel.k8s.io` and its versions).
pub struct ChannelConnection {
    outgoing: mpsc::Sender<Message>,
    base64: bool,
    reader: JoinHandle<()>,
    ended: Option<oneshot::Receiver<()>>,
}

/// A channel the peer writes and the caller reads.
pub struct InboundChannel {
    /// The channel number.
    pub number: u8,
    /// Where the caller reads (EOF at the peer's CLOSE signal or the connection's end).
    pub io: DuplexStream,
}

/// A channel the caller writes and the peer reads.
pub struct OutboundChannel {
    /// The channel number.
    pub number: u8,
    /// Where the caller writes (shut down or dropped, the channel is finished).
    pub io: DuplexStream,
    /// Completes once everything written is queued as messages.
    pub sent: JoinHandle<()>,
}

impl ChannelConnection {
    /// Starts demultiplexing `socket`: messages on the `inbound` channels go to their pipes,
    /// the others are dropped (as kube-apiserver does). `close_signals` honours v5's CLOSE.
    pub fn start<IO>(
        socket: WebSocketStream<IO>,
        base64: bool,
        inbound: &[u8],
        close_signals: bool,
    ) -> (Self, Vec<InboundChannel>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut outgoing_rx) = mpsc::channel::<Message>(MESSAGE_QUEUE);
        tokio::spawn(async move {
            while let Some(message) = outgoing_rx.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    return;
                }
            }
            // Every writer is gone (each channel finished): the session is over.
            let _ = sink.send(normal_close()).await;
        });
        let mut sinks: Vec<(u8, WriteHalf<DuplexStream>)> = Vec::new();
        let mut channels = Vec::new();
        for &number in inbound {
            let (caller_end, session_end) = tokio::io::duplex(CHANNEL_BUFFER);
            let (_unused, to_caller) = tokio::io::split(session_end);
            sinks.push((number, to_caller));
            channels.push(InboundChannel {
                number,
                io: caller_end,
            });
        }
        let (ended_tx, ended) = oneshot::channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let (number, payload) = match message {
                    Message::Binary(data) if !base64 => match data.split_first() {
                        Some((number, rest)) => (*number, rest.to_vec()),
                        None => continue,
                    },
                    Message::Text(text) if base64 => {
                        let bytes = text.as_bytes();
                        let Some((digit, rest)) = bytes.split_first() else {
                            continue;
                        };
                        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest)
                        else {
                            continue;
                        };
                        (digit.wrapping_sub(b'0'), decoded)
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if number == CLOSE_CHANNEL && close_signals {
                    if let Some(&target) = payload.first() {
                        if let Some(index) = sinks.iter().position(|(n, _)| *n == target) {
                            let (_, mut sink) = sinks.swap_remove(index);
                            let _ = sink.shutdown().await;
                        }
                    }
                    continue;
                }
                if let Some(index) = sinks.iter().position(|(n, _)| *n == number) {
                    if sinks[index].1.write_all(&payload).await.is_err() {
                        sinks.swap_remove(index);
                    }
                }
            }
            for (_, mut sink) in sinks {
                let _ = sink.shutdown().await;
            }
            let _ = ended_tx.send(());
        });
        let connection = Self {
            outgoing,
            base64,
            reader,
            ended: Some(ended),
        };
        (connection, channels)
    }

    /// A channel the caller writes; its bytes go out as messages on `number`.
    pub fn outbound(&self, number: u8) -> OutboundChannel {
        let (caller_end, session_end) = tokio::io::duplex(CHANNEL_BUFFER);
        let outgoing = self.outgoing.clone();
        let base64 = self.base64;
        let sent = tokio::spawn(async move {
            let mut from_caller = session_end;
            let mut chunk = vec![0u8; WRITE_CHUNK];
            loop {
                match from_caller.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let message = encode(number, chunk.get(..n).unwrap_or_default(), base64);
                        if outgoing.send(message).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        OutboundChannel {
            number,
            io: caller_end,
            sent,
        }
    }

    /// Sends one message on `number` (the empty first message, the final status).
    pub async fn send(&self, number: u8, payload: &[u8]) {
        let _ = self
            .outgoing
            .send(encode(number, payload, self.base64))
            .await;
    }

    /// Sends the close frame, then waits up to `linger` for the peer to close (it does once it
    /// has read everything), then drops the connection.
    pub async fn close(mut self, linger: Duration) {
        // A normal closure (1000): Go's client reads it as the end of every stream, while a
        // close without a code is an error there.
        let _ = self.outgoing.send(normal_close()).await;
        if let Some(ended) = self.ended.take() {
            let _ = tokio::time::timeout(linger, ended).await;
        }
        self.reader.abort();
    }
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

fn encode(number: u8, payload: &[u8], base64: bool) -> Message {
    if base64 {
        let digit = char::from(b'0'.wrapping_add(number));
        let text = format!(
            "{digit}{}",
            base64::engine::general_purpose::STANDARD.encode(payload)
        );
        Message::Text(text.into())
    } else {
        let mut data = Vec::with_capacity(payload.len() + 1);
        data.push(number);
        data.extend_from_slice(payload);
        Message::Binary(data.into())
    }
}
