//! Exec and port-forward sessions over SPDY driven by a client written here, for the timing
//! rules kubectl never exercises: streams that are never opened.

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue};
use skiff_stream::negotiate::{negotiate, StreamKind};
use skiff_stream::portforward::{PortForwardOptions, PortForwardSession};
use skiff_stream::remotecommand::{
    RemoteCommandOptions, RemoteCommandSession, SessionError, STREAM_CREATION_TIMEOUT,
};
use skiff_stream::spdy::frame::{Frame, FrameReader, FrameWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

struct Client {
    io: DuplexStream,
    writer: FrameWriter,
    reader: FrameReader,
    buffer: BytesMut,
}

impl Client {
    async fn open(&mut self, stream_id: u32, headers: &[(&str, &str)]) {
        let frame = Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        };
        let mut wire = Vec::new();
        self.writer.encode(&frame, &mut wire).unwrap();
        self.io.write_all(&wire).await.unwrap();
    }

    /// Everything sent on `stream_id` until its FIN.
    async fn read_stream(&mut self, stream_id: u32) -> Vec<u8> {
        let mut received = Vec::new();
        loop {
            let frame = loop {
                if let Some(frame) = self.reader.parse(&mut self.buffer).unwrap() {
                    break frame;
                }
                assert_ne!(self.io.read_buf(&mut self.buffer).await.unwrap(), 0);
            };
            if let Frame::Data {
                stream_id: id,
                fin,
                data,
            } = frame
            {
                if id == stream_id {
                    received.extend_from_slice(&data);
                    if fin {
                        return received;
                    }
                }
            }
        }
    }
}

fn spdy(
    protocol: &str,
    kind: StreamKind,
) -> (skiff_stream::negotiate::Negotiated, DuplexStream, Client) {
    let mut headers = HeaderMap::new();
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    headers.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
    headers.insert(
        "x-stream-protocol-version",
        HeaderValue::from_str(protocol).unwrap(),
    );
    let negotiated = negotiate(kind, &headers).unwrap();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let client = Client {
        io: client_io,
        writer: FrameWriter::new(),
        reader: FrameReader::new(),
        buffer: BytesMut::new(),
    };
    (negotiated, server_io, client)
}

#[tokio::test(start_paused = true)]
async fn exec_gives_up_when_the_client_does_not_open_every_stream() {
    let (negotiated, server_io, mut client) = spdy("v4.channel.k8s.io", StreamKind::RemoteCommand);
    let options = RemoteCommandOptions::from_query("stdin=true&stdout=true").unwrap();
    client.open(1, &[("streamType", "error")]).await;
    client.open(3, &[("streamType", "stdout")]).await;
    // stdin never comes.
    let started = tokio::time::Instant::now();
    let result =
        RemoteCommandSession::start(server_io, &negotiated, options, STREAM_CREATION_TIMEOUT).await;
    assert!(matches!(result, Err(SessionError::StreamCreationTimeout)));
    assert_eq!(started.elapsed(), STREAM_CREATION_TIMEOUT);
    // The server gives up on the connection: GOAWAY, then the end of the stream.
    let mut frames = Vec::new();
    loop {
        if let Some(frame) = client.reader.parse(&mut client.buffer).unwrap() {
            frames.push(frame);
            continue;
        }
        if client.io.read_buf(&mut client.buffer).await.unwrap() == 0 {
            break;
        }
    }
    assert!(
        matches!(frames.last(), Some(Frame::GoAway { .. })),
        "{frames:?}"
    );
    assert_eq!(
        SessionError::StreamCreationTimeout.to_string(),
        "timed out waiting for client to create streams"
    );
}

#[tokio::test(start_paused = true)]
async fn port_forward_drops_a_pair_whose_data_stream_never_comes() {
    let (negotiated, server_io, mut client) = spdy("portforward.k8s.io", StreamKind::PortForward);
    let options = PortForwardOptions::from_query("", negotiated.transport).unwrap();
    let mut session = PortForwardSession::start(server_io, &negotiated, &options)
        .await
        .unwrap();
    client
        .open(
            1,
            &[("streamType", "error"), ("port", "80"), ("requestID", "0")],
        )
        .await;
    client
        .open(
            3,
            &[("streamType", "error"), ("port", "81"), ("requestID", "1")],
        )
        .await;
    client
        .open(
            5,
            &[("streamType", "data"), ("port", "81"), ("requestID", "1")],
        )
        .await;
    let forwarded = session.next().await.expect("the complete pair");
    assert_eq!((forwarded.port, forwarded.request_id.as_str()), (81, "1"));
    // Nothing else arrives: the incomplete pair expires and its error stream says why.
    let waiting = tokio::spawn(async move {
        let next = session.next().await;
        (session, next.is_none())
    });
    let message = client.read_stream(1).await;
    assert_eq!(message, b"(request=0) timed out waiting for streams");
    drop(client);
    let (_session, ended) = waiting.await.unwrap();
    assert!(ended, "the session ends with the connection");
}

#[tokio::test]
async fn port_forward_rejects_an_invalid_port_on_the_error_stream() {
    let (negotiated, server_io, mut client) = spdy("portforward.k8s.io", StreamKind::PortForward);
    let mut session =
        PortForwardSession::start(server_io, &negotiated, &PortForwardOptions::default())
            .await
            .unwrap();
    client
        .open(
            1,
            &[
                ("streamType", "error"),
                ("port", "http"),
                ("requestID", "7"),
            ],
        )
        .await;
    client
        .open(
            3,
            &[("streamType", "data"), ("port", "http"), ("requestID", "7")],
        )
        .await;
    let waiting = tokio::spawn(async move { session.next().await.is_none() });
    assert_eq!(client.read_stream(1).await, b"invalid port: \"http\"");
    drop(client);
    assert!(waiting.await.unwrap());
}
