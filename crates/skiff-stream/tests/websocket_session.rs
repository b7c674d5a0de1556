//! Exec sessions over WebSocket driven by a client written here, for what kubectl does not do
//! without a terminal: resize events, v5's CLOSE signal, and the base64 channel protocol.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use skiff_stream::negotiate::{negotiate, StreamKind};
use skiff_stream::remotecommand::{
    CommandOutcome, RemoteCommandOptions, RemoteCommandSession, TerminalSize,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const LIMIT: Duration = Duration::from_secs(10);

async fn open(
    protocol: &str,
    query: &str,
) -> (RemoteCommandSession, WebSocketStream<DuplexStream>) {
    open_with_transit(protocol, query, 64 * 1024).await
}

async fn open_with_transit(
    protocol: &str,
    query: &str,
    transit: usize,
) -> (RemoteCommandSession, WebSocketStream<DuplexStream>) {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", protocol),
    ] {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }
    let negotiated = negotiate(StreamKind::RemoteCommand, &headers).unwrap();
    let options = RemoteCommandOptions::from_query(query).unwrap();
    let (server_io, client_io) = tokio::io::duplex(transit);
    let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let session = RemoteCommandSession::start(server_io, &negotiated, options, LIMIT)
        .await
        .unwrap();
    (session, client)
}

async fn next(client: &mut WebSocketStream<DuplexStream>) -> Message {
    tokio::time::timeout(LIMIT, client.next())
        .await
        .expect("a message within the limit")
        .expect("the connection is open")
        .expect("a valid message")
}

#[tokio::test]
async fn v5_carries_resizes_half_closes_stdin_and_ends_with_the_exit_status() {
    let (mut session, mut client) =
        open("v5.channel.k8s.io", "stdin=true&stdout=true&tty=true").await;
    assert!(session.stderr.is_none(), "a terminal has no stderr");
    let mut resize = b"\x04".to_vec();
    resize.extend_from_slice(br#"{"Width":100,"Height":30}"#);
    client.send(Message::Binary(resize.into())).await.unwrap();
    client
        .send(Message::Binary(b"\0typed".to_vec().into()))
        .await
        .unwrap();
    client
        .send(Message::Binary(vec![255u8, 0].into()))
        .await
        .unwrap();
    let size = tokio::time::timeout(LIMIT, session.resize.as_mut().unwrap().recv())
        .await
        .unwrap();
    assert_eq!(
        size,
        Some(TerminalSize {
            width: 100,
            height: 30
        })
    );
    // The CLOSE signal ends stdin: reading to the end finishes.
    let mut typed = Vec::new();
    tokio::time::timeout(
        LIMIT,
        session.stdin.as_mut().unwrap().read_to_end(&mut typed),
    )
    .await
    .expect("stdin ends at the CLOSE signal")
    .unwrap();
    assert_eq!(typed, b"typed");
    session
        .stdout
        .as_mut()
        .unwrap()
        .write_all(b"result")
        .await
        .unwrap();
    let finishing = tokio::spawn(session.finish(CommandOutcome::Exited(2)));
    // Output first (v5 sends no empty "ready" message before it), then the status, then a
    // normal close.
    assert_eq!(
        next(&mut client).await,
        Message::Binary(b"\x01result".to_vec().into())
    );
    let Message::Binary(status) = next(&mut client).await else {
        panic!("expected the status");
    };
    assert_eq!(status[0], 3);
    let status: serde_json::Value = serde_json::from_slice(&status[1..]).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "2");
    let Message::Close(Some(frame)) = next(&mut client).await else {
        panic!("expected a close frame");
    };
    assert_eq!(frame.code, CloseCode::Normal);
    // The session ends once the client closes its side.
    drop(client);
    tokio::time::timeout(LIMIT, finishing)
        .await
        .expect("finish returns once the client closed")
        .unwrap();
}

#[tokio::test]
async fn base64_protocol_encodes_every_channel_and_reports_failures_as_text() {
    let (mut session, mut client) = open("base64.channel.k8s.io", "stdout=true&stderr=true").await;
    assert!(session.stdin.is_none());
    assert_eq!(next(&mut client).await, Message::Text("1".into()));
    session
        .stdout
        .as_mut()
        .unwrap()
        .write_all(b"out")
        .await
        .unwrap();
    session
        .stderr
        .as_mut()
        .unwrap()
        .write_all(b"err")
        .await
        .unwrap();
    let finishing = tokio::spawn(session.finish(CommandOutcome::Exited(1)));
    let mut texts = Vec::new();
    loop {
        match next(&mut client).await {
            Message::Text(text) => texts.push(text.to_string()),
            Message::Close(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    // stdout and stderr may interleave; the status comes last.
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[..2].contains(&"1b3V0".to_string()), "{texts:?}");
    assert!(texts[..2].contains(&"2ZXJy".to_string()), "{texts:?}");
    use base64::Engine;
    let status = base64::engine::general_purpose::STANDARD
        .decode(texts[2].strip_prefix('3').unwrap())
        .unwrap();
    assert_eq!(
        status,
        b"command terminated with non-zero exit code: exit status 1"
    );
    drop(client);
    tokio::time::timeout(LIMIT, finishing)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn kubelet_websocket_port_forward_prefixes_each_channel_with_its_port() {
    use skiff_stream::portforward::{PortForwardOptions, PortForwardSession};
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "v4.channel.k8s.io"),
    ] {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }
    let negotiated = negotiate(StreamKind::PortForward, &headers).unwrap();
    let refusal = PortForwardOptions::from_query("", negotiated.transport).unwrap_err();
    assert_eq!(refusal.body, "query parameter \"port\" is required\n");
    let options = PortForwardOptions::from_query("port=80&port=81", negotiated.transport).unwrap();
    assert_eq!(options.ports, vec![80, 81]);
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let mut session = PortForwardSession::start(server_io, &negotiated, &options)
        .await
        .unwrap();
    for expected in [[0u8, 80, 0], [1, 80, 0], [2, 81, 0], [3, 81, 0]] {
        assert_eq!(
            next(&mut client).await,
            Message::Binary(expected.to_vec().into())
        );
    }
    let mut web = session.next().await.unwrap();
    let other = session.next().await.unwrap();
    assert_eq!((web.port, other.port), (80, 81));
    assert!(session.next().await.is_none());
    client
        .send(Message::Binary(b"\0hello".to_vec().into()))
        .await
        .unwrap();
    let mut greeting = [0u8; 5];
    tokio::time::timeout(LIMIT, web.data.read_exact(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&greeting, b"hello");
    web.data.write_all(b"world").await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Message::Binary(b"\0world".to_vec().into())
    );
    other
        .errors
        .forwarding_failed(81, "p", "u1", "connection refused")
        .await;
    assert_eq!(
        next(&mut client).await,
        Message::Binary(
            b"\x03error forwarding port 81 to pod p, uid u1: connection refused"
                .to_vec()
                .into()
        )
    );
    // Once every channel is finished, the server closes the WebSocket normally.
    drop(web);
    drop(other.data);
    let Message::Close(Some(frame)) = next(&mut client).await else {
        panic!("expected a close frame");
    };
    assert_eq!(frame.code, CloseCode::Normal);
}

#[tokio::test]
async fn unread_stdin_pushes_back_on_the_client() {
    let (mut session, mut client) =
        open_with_transit("v5.channel.k8s.io", "stdin=true&stdout=true", 16 * 1024).await;
    const MESSAGES: usize = 64;
    const SIZE: usize = 8192;
    let mut sender = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            let mut message = vec![0u8];
            message.extend_from_slice(&[7u8; SIZE]);
            client.send(Message::Binary(message.into())).await.unwrap();
        }
        client
    });
    // 512 KiB cannot fit the 64 KiB stdin buffer and 16 KiB in transit while nobody reads.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut sender)
            .await
            .is_err(),
        "the client sent everything though stdin was never read"
    );
    let mut stdin = session.stdin.take().unwrap();
    let mut received = vec![0u8; MESSAGES * SIZE];
    tokio::time::timeout(LIMIT, stdin.read_exact(&mut received))
        .await
        .expect("stdin drains")
        .unwrap();
    assert!(received.iter().all(|byte| *byte == 7));
    tokio::time::timeout(LIMIT, sender)
        .await
        .expect("the client finishes once stdin is read")
        .unwrap();
}
