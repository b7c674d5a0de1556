//! `grpc` probes: one `grpc.health.v1.Health/Check` call over cleartext HTTP/2, with the
//! outcomes worded as kubelet's `pkg/probe/grpc` words them.
//!
//! The request and response messages are tiny (`HealthCheckRequest { string service = 1 }`,
//! `HealthCheckResponse { ServingStatus status = 1 }`), so they are encoded by hand.

use std::net::IpAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::text::{go_duration, go_quote, join_host_port};
use super::{ProbeResult, KUBE_MINOR_VERSION};

/// grpc-go waits this long before retrying a failed connection attempt.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// gRPC status codes the probe tells apart.
const CODE_OK: u32 = 0;
const CODE_DEADLINE_EXCEEDED: u32 = 4;
const CODE_UNIMPLEMENTED: u32 = 12;

/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// Calls the health service at `ip:port` for `service` within `timeout`.
pub(crate) async fn check(ip: IpAddr, port: u16, service: &str, timeout: Duration) -> ProbeResult {
    let address = join_host_port(&ip.to_string(), port);
    let deadline = Instant::now() + timeout;
    let Some(stream) = connect_until(ip, port, deadline).await else {
        return ProbeResult::Failure(format!(
            "timeout: failed to connect service {} within {}: context deadline exceeded",
            go_quote(&address),
            go_duration(timeout)
        ));
    };
    match tokio::time::timeout_at(deadline, call(stream, &address, service, deadline)).await {
        Err(_) => rpc_failure(
            RpcError::Status {
                code: CODE_DEADLINE_EXCEEDED,
                message: String::new(),
            },
            timeout,
        ),
        Ok(Err(error)) => rpc_failure(error, timeout),
        Ok(Ok(status)) if status == SERVING => ProbeResult::Success,
        Ok(Ok(status)) => ProbeResult::Failure(format!(
            "service unhealthy (responded with {})",
            go_quote(serving_status_name(status))
        )),
    }
}

/// Connects like a blocking grpc-go dial: failed attempts are retried until the deadline.
async fn connect_until(ip: IpAddr, port: u16, deadline: Instant) -> Option<TcpStream> {
    loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect((ip, port))).await {
            Err(_) => return None,
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(_)) => {
                let retry_at = (Instant::now() + RECONNECT_BACKOFF).min(deadline);
                tokio::time::sleep_until(retry_at).await;
                if retry_at >= deadline {
                    return None;
                }
            }
        }
    }
}

#[derive(Debug)]
enum RpcError {
    /// The server answered with a non-OK gRPC status.
    Status { code: u32, message: String },
    /// The exchange broke before a status arrived.
    Transport(String),
}

fn rpc_failure(error: RpcError, timeout: Duration) -> ProbeResult {
    match error {
        RpcError::Status {
            code: CODE_UNIMPLEMENTED,
            message,
        } => ProbeResult::Failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
        )),
        RpcError::Status {
            code: CODE_DEADLINE_EXCEEDED,
            ..
        } => ProbeResult::Failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        )),
        RpcError::Status { code, message } => ProbeResult::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {message}",
            code_name(code)
        )),
        RpcError::Transport(message) => ProbeResult::Failure(format!(
            "error: health rpc probe failed: rpc error: code = Unavailable desc = {message}"
        )),
    }
}

async fn call(
    stream: TcpStream,
    authority: &str,
    service: &str,
    deadline: Instant,
) -> Result<u64, RpcError> {
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|err| {
                RpcError::Transport(format!(
                    "connection error: desc = {}",
                    go_quote(&err.to_string())
                ))
            })?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let remaining_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, 99_999_999);
        let request = Request::builder()
            .method("POST")
            .uri(format!("http://{authority}{HEALTH_CHECK_PATH}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", format!("kube-probe/{KUBE_MINOR_VERSION}"))
            .header("grpc-timeout", format!("{remaining_ms}m"))
            .body(Full::new(encode_request(service)))
            .map_err(|err| RpcError::Transport(err.to_string()))?;
        let response = sender.send_request(request).await.map_err(|err| {
            RpcError::Transport(format!(
                "connection error: desc = {}",
                go_quote(&err.to_string())
            ))
        })?;
        let (parts, body) = response.into_parts();
        if parts.status != 200 {
            return Err(RpcError::Status {
                code: code_for_http_status(parts.status.as_u16()),
                message: format!(
                    "unexpected HTTP status code received from server: {} ({})",
                    parts.status.as_u16(),
                    parts.status.canonical_reason().unwrap_or("unknown")
                ),
            });
        }
        // A "trailers-only" answer carries the status in the headers.
        if let Some(code) = grpc_status(&parts.headers) {
            return Err(status_error(code, &parts.headers));
        }
        let collected = body
            .collect()
            .await
            .map_err(|err| RpcError::Transport(err.to_string()))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let payload = collected.to_bytes();
        match grpc_status(&trailers) {
            Some(CODE_OK) => decode_response(&payload).ok_or_else(|| RpcError::Status {
                code: 13,
                message: "grpc: failed to unmarshal the received message".to_string(),
            }),
            Some(code) => Err(status_error(code, &trailers)),
            None => Err(RpcError::Status {
                code: 13,
                message: "server closed the stream without sending trailers".to_string(),
            }),
        }
    }
    .await;
    driver.abort();
    result
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok())
}

fn status_error(code: u32, headers: &HeaderMap) -> RpcError {
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    if code == CODE_OK {
        RpcError::Status {
            code: 13,
            message: "server sent no response message".to_string(),
        }
    } else {
        RpcError::Status { code, message }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(digits, 16) {
                decoded.push(byte);
                index += 3;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// How grpc-go turns an HTTP status without a gRPC status into a code.
fn code_for_http_status(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => CODE_UNIMPLEMENTED,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

fn code_name(code: u32) -> String {
    let name = match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        other => return format!("Code({other})"),
    };
    name.to_string()
}

fn serving_status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// A length-prefixed `HealthCheckRequest`.
pub(crate) fn encode_request(service: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !service.is_empty() {
        message.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    frame(&message)
}

/// Wraps a message in gRPC's 5-byte prefix (uncompressed, big-endian length).
pub(crate) fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

fn put_varint(buffer: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buffer.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buffer.put_u8(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Reads `HealthCheckResponse.status` from a length-prefixed message (absent means 0).
pub(crate) fn decode_response(payload: &[u8]) -> Option<u64> {
    let header = payload.get(..5)?;
    if header[0] != 0 {
        return None; // compressed: never requested, so never expected
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = payload.get(5..5 + length)?;
    let mut status = 0;
    let mut at = 0;
    while at < message.len() {
        let key = read_varint(message, &mut at)?;
        match key & 7 {
            0 => {
                let value = read_varint(message, &mut at)?;
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => at += 8,
            2 => {
                let length = read_varint(message, &mut at)? as usize;
                at += length;
            }
            5 => at += 4,
            _ => return None,
        }
    }
    (at == message.len()).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests_and_decodes_responses() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("db")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert_eq!(decode_response(&frame(&[0x08, 0x01])), Some(1));
        assert_eq!(decode_response(&frame(&[0x08, 0x02])), Some(2));
        assert_eq!(decode_response(&frame(&[])), Some(0));
        assert_eq!(decode_response(&[0, 0, 0]), None);
    }

    #[test]
    fn decodes_grpc_messages() {
        assert_eq!(percent_decode("unknown%20service"), "unknown service");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
