//! What real kubectl binaries send, captured once from kubectl 1.27 (SPDY) and 1.33
//! (WebSocket) against a loopback server that answered `101` and recorded the bytes that
//! followed: the request heads must negotiate, and the first frames must parse.

use bytes::BytesMut;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use skiff_stream::negotiate::{negotiate, RemoteCommandVersion, StreamKind, Transport};
use skiff_stream::spdy::dictionary::SPDY3_DICTIONARY;
use skiff_stream::spdy::frame::{Frame, FrameReader};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn request_headers(name: &str) -> HeaderMap {
    let text = String::from_utf8(fixture(name)).unwrap();
    let mut headers = HeaderMap::new();
    for line in text.split("\r\n").skip(1).filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    headers
}

fn first_frame(bytes: &[u8]) -> Frame {
    let mut buffer = BytesMut::from(bytes);
    FrameReader::new()
        .parse(&mut buffer)
        .expect("a valid frame")
        .expect("a whole frame")
}

fn header<'a>(frame: &'a Frame, name: &str) -> Option<&'a str> {
    let Frame::SynStream { headers, .. } = frame else {
        panic!("not a SYN_STREAM: {frame:?}");
    };
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Messages a client sent, decoded (unmasked) as the server side reads them.
async fn websocket_messages(bytes: Vec<u8>) -> Vec<Message> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client.write_all(&bytes).await.unwrap();
    drop(client);
    let socket = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
    socket
        .filter_map(|message| async move { message.ok() })
        .collect()
        .await
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

#[test]
fn kubectl_127_exec_negotiates_v4_over_spdy_and_opens_the_error_stream_first() {
    let negotiated = negotiate(
        StreamKind::RemoteCommand,
        &request_headers("spdy-exec-1.27.request"),
    )
    .unwrap();
    assert_eq!(negotiated.transport, Transport::Spdy);
    assert_eq!(
        negotiated.remote_command_version(),
        Some(RemoteCommandVersion::V4)
    );
    let frames = fixture("spdy-exec-1.27.frames");
    // Go primes zlib with the SPDY/3 dictionary: the zlib header names it by its Adler-32,
    // which must be the checksum of the dictionary built here.
    let dictionary_id = u32::from_be_bytes(frames[20..24].try_into().unwrap());
    assert_eq!(dictionary_id, adler32(&SPDY3_DICTIONARY));
    let frame = first_frame(&frames);
    assert!(matches!(frame, Frame::SynStream { stream_id: 1, .. }));
    assert_eq!(header(&frame, "streamtype"), Some("error"));
}

#[test]
fn kubectl_127_port_forward_opens_an_error_stream_with_port_and_request_id() {
    let negotiated =
        negotiate(StreamKind::PortForward, &request_headers("pf-1.27.request")).unwrap();
    assert_eq!(negotiated.transport, Transport::Spdy);
    assert_eq!(negotiated.protocol, "portforward.k8s.io");
    let frame = first_frame(&fixture("pf-1.27.frames"));
    assert_eq!(header(&frame, "streamtype"), Some("error"));
    assert_eq!(header(&frame, "port"), Some("80"));
    assert_eq!(header(&frame, "requestid"), Some("0"));
}

#[tokio::test]
async fn kubectl_133_exec_negotiates_v5_and_half_closes_stdin_with_a_close_signal() {
    let negotiated = negotiate(
        StreamKind::RemoteCommand,
        &request_headers("ws-exec-1.33.request"),
    )
    .unwrap();
    assert_eq!(negotiated.transport, Transport::WebSocket { base64: false });
    assert_eq!(
        negotiated.remote_command_version(),
        Some(RemoteCommandVersion::V5)
    );
    let messages = websocket_messages(fixture("ws-exec-1.33.frames")).await;
    assert_eq!(
        messages,
        vec![
            Message::Binary(b"\0hi\n".to_vec().into()),
            Message::Binary(vec![255u8, 0].into()),
        ]
    );
}

#[tokio::test]
async fn kubectl_133_port_forward_tunnels_spdy_frames_in_binary_messages() {
    let negotiated =
        negotiate(StreamKind::PortForward, &request_headers("pf-1.33.request")).unwrap();
    assert_eq!(negotiated.transport, Transport::SpdyOverWebSocket);
    let mut spdy = Vec::new();
    for message in websocket_messages(fixture("pf-1.33.frames")).await {
        match message {
            Message::Binary(data) => spdy.extend_from_slice(&data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let frame = first_frame(&spdy);
    assert_eq!(header(&frame, "streamtype"), Some("error"));
    assert_eq!(header(&frame, "port"), Some("80"));
}
