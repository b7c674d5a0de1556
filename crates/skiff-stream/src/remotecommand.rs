//! Exec and attach sessions: the streams kubectl opens (stdin, stdout, stderr, resize, error)
//! over SPDY or WebSocket, handed to the caller as one API, and the final status written as
//! the kubelet writes it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::negotiate::{Negotiated, Refusal, RemoteCommandVersion, StreamKind, Transport};
use crate::spdy::connection::SentSignal;
use crate::spdy::SpdyConnection;
use crate::websocket::{accept_websocket, ChannelConnection};

/// How long the kubelet waits for a client to open all its SPDY streams.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished session waits for the client to close the connection, as
/// kube-apiserver's WebSocket translator does.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long a finished session waits for the caller's stdout and stderr to be flushed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// A resize stream's undecoded bytes are bounded; a client exceeding it loses resizing.
const RESIZE_BUFFER_LIMIT: usize = 4096;

/// Which streams the client asked for (the `stdin`, `stdout`, `stderr` and `tty` query
/// parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoteCommandOptions {
    /// The client sends input.
    pub stdin: bool,
    /// The client wants standard output.
    pub stdout: bool,
    /// The client wants standard error (never with a terminal).
    pub stderr: bool,
    /// The command runs on a terminal: stdout carries both outputs, resizes arrive.
    pub tty: bool,
}

impl RemoteCommandOptions {
    /// Reads the options from a request's query string (`true`, `1` and the other spellings Go's
    /// `strconv.ParseBool` accepts), with the kubelet's rules: a terminal has no stderr, and
    /// at least one of stdin, stdout and stderr is required (400 otherwise).
    pub fn from_query(query: &str) -> Result<Self, Refusal> {
        let mut options = Self::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let on = matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True");
            match name {
                "stdin" => options.stdin = on,
                "stdout" => options.stdout = on,
                "stderr" => options.stderr = on,
                "tty" => options.tty = on,
                _ => {}
            }
        }
        if options.tty {
            options.stderr = false;
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(Refusal {
                status: http::StatusCode::BAD_REQUEST,
                content_type: "text/plain; charset=utf-8",
                body: "you must specify at least 1 of stdin, stdout, stderr\n".into(),
                headers: Vec::new(),
            });
        }
        Ok(options)
    }
}

/// A terminal size the client reports (Go's `remotecommand.TerminalSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// How the command ended, reported to the client on the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// It exited with this code (0 is success).
    Exited(i32),
    /// It could not run or be waited for: an internal error with this message.
    Failed(String),
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The negotiation was for another kind of session.
    #[error("negotiated {0:?}, which this session does not serve")]
    WrongKind(StreamKind),
    /// The client did not open every stream in time (the kubelet's message).
    #[error("timed out waiting for client to create streams")]
    StreamCreationTimeout,
    /// The connection ended before the streams were open.
    #[error("the connection closed before all streams were created")]
    Closed,
}

/// A running exec or attach session. The caller connects the streams to the command, then
/// calls [`RemoteCommandSession::finish`] with how it ended.
pub struct RemoteCommandSession {
    /// What the client types: read it (EOF when the client closes stdin).
    pub stdin: Option<DuplexStream>,
    /// Where the command's output goes: write it, then shut it down or drop it.
    pub stdout: Option<DuplexStream>,
    /// Where the command's errors go (absent with a terminal).
    pub stderr: Option<DuplexStream>,
    /// Terminal sizes, with a terminal on a protocol that has them.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    /// The options the session was opened with.
    pub options: RemoteCommandOptions,
    /// The protocol generation in use.
    pub version: RemoteCommandVersion,
    ending: Ending,
}

enum Ending {
    Spdy {
        connection: SpdyConnection,
        error: Option<(DuplexStream, SentSignal)>,
        outputs: Vec<SentSignal>,
    },
    WebSocket {
        connection: ChannelConnection,
        outputs: Vec<JoinHandle<()>>,
    },
}

impl RemoteCommandSession {
    /// Starts a session on `io`, an upgraded connection whose `101` answer (from
    /// [`Negotiated::response_head`] or its headers) was sent. Over SPDY this waits for the
    /// client to open its streams, at most `stream_creation_timeout`.
    pub async fn start<IO>(
        io: IO,
        negotiated: &Negotiated,
        options: RemoteCommandOptions,
        stream_creation_timeout: Duration,
    ) -> Result<Self, SessionError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(version) = negotiated.remote_command_version() else {
            return Err(SessionError::WrongKind(negotiated.kind));
        };
        match negotiated.transport {
            Transport::Spdy => start_spdy(io, version, options, stream_creation_timeout).await,
            Transport::WebSocket { base64 } => {
                Ok(start_websocket(io, version, options, base64).await)
            }
            Transport::SpdyOverWebSocket => Err(SessionError::WrongKind(negotiated.kind)),
        }
    }

    /// Reports how the command ended, as the kubelet does: v4 and later write a `Status`
    /// (Success, or Failure with reason `NonZeroExitCode` and the code as an `ExitCode`
    /// cause), older protocols write a failure's message as text. Everything the caller wrote
    /// to stdout and stderr goes out first (the caller must have shut them down or dropped
    /// them; they are waited for at most 30 s); then the session ends and waits for the client
    /// to close the connection.
    pub async fn finish(mut self, outcome: CommandOutcome) {
        let report = status_report(self.version, &outcome);
        // Input that still arrives is no longer wanted.
        drop(self.stdin.take());
        drop(self.resize.take());
        if let Some(mut stdout) = self.stdout.take() {
            let _ = stdout.shutdown().await;
        }
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.shutdown().await;
        }
        match self.ending {
            Ending::Spdy {
                connection,
                error,
                outputs,
            } => {
                for sent in outputs {
                    sent.wait(FLUSH_TIMEOUT).await;
                }
                if let Some((mut error, sent)) = error {
                    if let Some(report) = report {
                        let _ = error.write_all(&report).await;
                    }
                    let _ = error.shutdown().await;
                    sent.wait(FLUSH_TIMEOUT).await;
                }
                connection.close(FINISH_TIMEOUT).await;
            }
            Ending::WebSocket {
                connection,
                outputs,
            } => {
                for sent in outputs {
                    let _ = tokio::time::timeout(FLUSH_TIMEOUT, sent).await;
                }
                if let Some(report) = report {
                    connection.send(ERROR, &report).await;
                }
                connection.close(FINISH_TIMEOUT).await;
            }
        }
    }
}

/// The bytes written on the error stream for `outcome`, or none (success before v4).
pub fn status_report(version: RemoteCommandVersion, outcome: &CommandOutcome) -> Option<Vec<u8>> {
    let status = match outcome {
        CommandOutcome::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        CommandOutcome::Exited(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        CommandOutcome::Failed(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: error executing command in container: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": format!("error executing command in container: {message}")}]},
            "code": 500,
        }),
    };
    if version.status_as_json() {
        return Some(status.to_string().into_bytes());
    }
    if status["status"] == "Success" {
        return None;
    }
    status["message"].as_str().map(|m| m.as_bytes().to_vec())
}

async fn start_spdy<IO>(
    io: IO,
    version: RemoteCommandVersion,
    options: RemoteCommandOptions,
    stream_creation_timeout: Duration,
) -> Result<RemoteCommandSession, SessionError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = SpdyConnection::start(io);
    let expected = 1
        + usize::from(options.stdin)
        + usize::from(options.stdout)
        + usize::from(options.stderr)
        + usize::from(options.tty && version.supports_resize());
    let (mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None);
    let mut error = None;
    let mut outputs = Vec::new();
    let deadline = tokio::time::Instant::now() + stream_creation_timeout;
    let mut received = 0;
    while received < expected {
        let stream = match tokio::time::timeout_at(deadline, connection.accept()).await {
            Err(_) => return Err(SessionError::StreamCreationTimeout),
            Ok(None) => return Err(SessionError::Closed),
            Ok(Some(stream)) => stream,
        };
        let kind = stream.header("streamType").unwrap_or("").to_string();
        match kind.as_str() {
            "error" => error = Some((stream.io, stream.sent)),
            "stdin" => stdin = Some(stream.io),
            "stdout" => {
                stdout = Some(stream.io);
                outputs.push(stream.sent);
            }
            "stderr" => {
                stderr = Some(stream.io);
                outputs.push(stream.sent);
            }
            "resize" if version.supports_resize() => resize = Some(decode_resizes(stream.io)),
            other => {
                tracing::debug!(stream_type = other, "ignoring a stream of unknown type");
                continue;
            }
        }
        received += 1;
    }
    Ok(RemoteCommandSession {
        stdin,
        stdout,
        stderr,
        resize,
        options,
        version,
        ending: Ending::Spdy {
            connection,
            error,
            outputs,
        },
    })
}

async fn start_websocket<IO>(
    io: IO,
    version: RemoteCommandVersion,
    options: RemoteCommandOptions,
    base64: bool,
) -> RemoteCommandSession
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let socket = accept_websocket(io).await;
    let mut inbound = Vec::new();
    if options.stdin {
        inbound.push(STDIN);
    }
    inbound.push(RESIZE);
    let close_signals = version >= RemoteCommandVersion::V5;
    let (connection, channels) = ChannelConnection::start(socket, base64, &inbound, close_signals);
    let (mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None);
    for channel in channels {
        match channel.number {
            STDIN => stdin = Some(channel.io),
            _ if options.tty => resize = Some(decode_resizes(channel.io)),
            _ => drop(channel),
        }
    }
    // Up to v4, tell the client the connection is up: an empty message on the lowest channel
    // it reads. v5 is client-go's protocol, which has no use for that message, and client-go
    // before 1.33 creates its streams only after it starts reading: a message arriving in
    // between is dropped with an "Unknown stream id" error printed to the user.
    if version < RemoteCommandVersion::V5 {
        let first = if options.stdout {
            STDOUT
        } else if options.stderr {
            STDERR
        } else {
            ERROR
        };
        connection.send(first, &[]).await;
    }
    let mut outputs = Vec::new();
    if options.stdout {
        let channel = connection.outbound(STDOUT);
        stdout = Some(channel.io);
        outputs.push(channel.sent);
    }
    if options.stderr {
        let channel = connection.outbound(STDERR);
        stderr = Some(channel.io);
        outputs.push(channel.sent);
    }
    RemoteCommandSession {
        stdin,
        stdout,
        stderr,
        resize,
        options,
        version,
        ending: Ending::WebSocket {
            connection,
            outputs,
        },
    }
}

/// Decodes the JSON terminal sizes a resize stream carries, one after another.
fn decode_resizes(mut io: DuplexStream) -> mpsc::Receiver<TerminalSize> {
    let (sender, receiver) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let read = match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(chunk.get(..read).unwrap_or_default());
            let mut consumed = 0;
            let mut sizes =
                serde_json::Deserializer::from_slice(&pending).into_iter::<TerminalSize>();
            loop {
                match sizes.next() {
                    Some(Ok(size)) => {
                        consumed = sizes.byte_offset();
                        if sender.send(size).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(error)) if error.is_eof() => break,
                    Some(Err(_)) => return,
                    None => {
                        consumed = sizes.byte_offset();
                        break;
                    }
                }
            }
            pending.drain(..consumed);
            if pending.len() > RESIZE_BUFFER_LIMIT {
                return;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_kubelet_rules() {
        let options =
            RemoteCommandOptions::from_query("command=sh&stdin=true&stdout=1&stderr=true&tty=true")
                .unwrap();
        assert_eq!(
            options,
            RemoteCommandOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        let refusal = RemoteCommandOptions::from_query("command=ls&stdout=false").unwrap_err();
        assert_eq!(refusal.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(
            refusal.body,
            "you must specify at least 1 of stdin, stdout, stderr\n"
        );
    }

    #[test]
    fn exit_codes_are_reported_as_the_kubelet_reports_them() {
        let report = status_report(RemoteCommandVersion::V4, &CommandOutcome::Exited(3)).unwrap();
        let status: serde_json::Value = serde_json::from_slice(&report).unwrap();
        assert_eq!(
            status,
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: exit status 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })
        );
        let success = status_report(RemoteCommandVersion::V5, &CommandOutcome::Exited(0)).unwrap();
        assert_eq!(success, br#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(
            status_report(RemoteCommandVersion::V3, &CommandOutcome::Exited(0)),
            None
        );
        assert_eq!(
            status_report(RemoteCommandVersion::V2, &CommandOutcome::Exited(2)).unwrap(),
            b"command terminated with non-zero exit code: exit status 2"
        );
    }

    #[tokio::test]
    async fn resize_events_are_decoded_across_reads() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut sizes = decode_resizes(server);
        client.write_all(br#"{"Width":80,"Hei"#).await.unwrap();
        client
            .write_all(br#"ght":24}{"Width":120,"Height":40}"#)
            .await
            .unwrap();
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 120,
                height: 40
            })
        );
        client.write_all(b"not json").await.unwrap();
        assert_eq!(sizes.recv().await, None);
    }
}
