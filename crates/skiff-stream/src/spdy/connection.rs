//! A server-side SPDY/3.1 session over any upgraded byte stream: the peer opens streams, this
//! side accepts each with a SYN_REPLY and hands it to the caller as a [`SpdyStream`], a bounded
//! in-memory pipe the caller reads and writes like a socket.
//!
//! Back-pressure: each stream buffers at most [`STREAM_BUFFER`] bytes per direction. When a
//! caller stops reading a stream, the session stops reading the connection (as Go's
//! spdystream, kubectl's side, does), so TCP slows the peer; as the caller drains the stream,
//! the session returns the credit in WINDOW_UPDATE frames for peers that count it. Writes
//! from the caller wait for room in a bounded queue of frames.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::frame::{
    Frame, FrameReader, FrameWriter, HeaderList, ProtocolError, GOAWAY_OK, STATUS_PROTOCOL_ERROR,
};

/// Bytes buffered per stream and direction between the session and its caller.
pub const STREAM_BUFFER: usize = 64 * 1024;
/// Largest data frame this side writes (what Go's io.Copy writes too).
const WRITE_CHUNK: usize = 32 * 1024;
/// Frames queued for the connection's writer before writers wait.
const FRAME_QUEUE: usize = 64;
/// Streams accepted but not yet taken by the caller before the session waits.
const ACCEPT_QUEUE: usize = 16;

/// One stream the peer opened.
pub struct SpdyStream {
    /// Its SPDY stream id.
    pub id: u32,
    /// The headers of its SYN_STREAM (names lowercase).
    pub headers: HeaderList,
    /// The caller's end: reads what the peer sends (EOF at the peer's FIN), writes what the peer
    /// receives (shut down or dropped, it sends FIN).
    pub io: DuplexStream,
    /// Completes once everything written to `io` and its FIN are queued for the connection.
    pub sent: SentSignal,
}

impl SpdyStream {
    /// The first value of header `name`, compared without case (Go canonicalizes names, so
    /// `streamType` and `streamtype` are the same header).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Resolves when a stream's outgoing half is fully queued (its FIN included).
pub struct SentSignal(JoinHandle<()>);

impl SentSignal {
    /// Waits for the stream's last frame to be queued, at most `limit`.
    pub async fn wait(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.0).await;
    }
}

enum Outgoing {
    Frame(Frame),
    /// Write GOAWAY, flush, shut the write side down, then answer.
    Close(oneshot::Sender<()>),
}

/// A SPDY/3.1 session in which the peer opens streams (the server role for exec, attach and
/// port-forward). Dropped without [`SpdyConnection::close`], it stops reading at once and
/// closes the connection after a GOAWAY, as the kubelet does when it gives up on a client.
pub struct SpdyConnection {
    incoming: mpsc::Receiver<SpdyStream>,
    outgoing: mpsc::Sender<Outgoing>,
    reader: Option<JoinHandle<Option<ProtocolError>>>,
}

impl Drop for SpdyConnection {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
            let (done, _) = oneshot::channel();
            let _ = self.outgoing.try_send(Outgoing::Close(done));
        }
    }
}

impl SpdyConnection {
    /// Starts serving the session on `io`, an upgraded connection whose 101 response was sent.
    pub fn start<IO>(io: IO) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(io);
        let (outgoing, outgoing_rx) = mpsc::channel(FRAME_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(write_frames(write_half, outgoing_rx));
        let reader = tokio::spawn(read_frames(read_half, outgoing.clone(), incoming_tx));
        Self {
            incoming,
            outgoing,
            reader: Some(reader),
        }
    }

    /// The next stream the peer opens, or `None` once the session ended.
    pub async fn accept(&mut self) -> Option<SpdyStream> {
        self.incoming.recv().await
    }

    /// Aborts one stream (RST_STREAM with `status`).
    pub async fn reset(&self, stream_id: u32, status: u32) {
        let _ = self
            .outgoing
            .send(Outgoing::Frame(Frame::RstStream { stream_id, status }))
            .await;
    }

    /// Ends the session: sends GOAWAY after every frame already queued, closes this side, and
    /// waits up to `linger` for the peer to close its side (so nothing it still has to read is
    /// cut off), then drops the connection.
    pub async fn close(mut self, linger: Duration) {
        let (done_tx, done) = oneshot::channel();
        if self.outgoing.send(Outgoing::Close(done_tx)).await.is_ok() {
            let _ = done.await;
        }
        // Streams the peer still opens are refused from now on.
        self.incoming.close();
        if let Some(mut reader) = self.reader.take() {
            if tokio::time::timeout(linger, &mut reader).await.is_err() {
                reader.abort();
            }
        }
    }
}

async fn write_frames<W: AsyncWrite>(write_half: W, mut outgoing: mpsc::Receiver<Outgoing>) {
    tokio::pin!(write_half);
    let mut writer = FrameWriter::new();
    let mut buffer = Vec::with_capacity(WRITE_CHUNK + 64);
    let mut highest_seen = 0u32;
    while let Some(item) = outgoing.recv().await {
        buffer.clear();
        match item {
            Outgoing::Frame(frame) => {
                if let Frame::SynReply { stream_id, .. } = &frame {
                    highest_seen = highest_seen.max(*stream_id);
                }
                if let Err(error) = writer.encode(&frame, &mut buffer) {
                    tracing::debug!(%error, "dropping an unencodable SPDY frame");
                    continue;
                }
                if write_half.write_all(&buffer).await.is_err() {
                    return;
                }
                // Flush only when nothing else is waiting, so bursts go out in few writes.
                if outgoing.is_empty() && write_half.flush().await.is_err() {
                    return;
                }
            }
            Outgoing::Close(done) => {
                let goaway = Frame::GoAway {
                    last_good_stream_id: highest_seen,
                    status: GOAWAY_OK,
                };
                if writer.encode(&goaway, &mut buffer).is_ok() {
                    let _ = write_half.write_all(&buffer).await;
                }
                let _ = write_half.flush().await;
                let _ = write_half.shutdown().await;
                let _ = done.send(());
                return;
            }
        }
    }
}

async fn read_frames<R: AsyncRead>(
    read_half: R,
    outgoing: mpsc::Sender<Outgoing>,
    incoming: mpsc::Sender<SpdyStream>,
) -> Option<ProtocolError> {
    tokio::pin!(read_half);
    let mut reader = FrameReader::new();
    let mut buffer = BytesMut::with_capacity(16 * 1024);
    let mut sinks: HashMap<u32, WriteHalf<DuplexStream>> = HashMap::new();
    // Stops the sending half of a stream the peer reset; entries of finished senders are
    // pruned as new streams open.
    let mut cancels: HashMap<u32, oneshot::Sender<()>> = HashMap::new();
    let mut last_peer_stream = 0u32;
    let mut accepting = true;
    let failure = 'session: loop {
        let frame = loop {
            match reader.parse(&mut buffer) {
                Ok(Some(frame)) => break frame,
                Ok(None) => match read_half.read_buf(&mut buffer).await {
                    Ok(0) | Err(_) => break 'session None,
                    Ok(_) => {}
                },
                Err(error) => {
                    let _ = outgoing
                        .send(Outgoing::Frame(Frame::GoAway {
                            last_good_stream_id: last_peer_stream,
                            status: STATUS_PROTOCOL_ERROR,
                        }))
                        .await;
                    break 'session Some(error);
                }
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
                ..
            } => {
                // Peer streams are odd and ascending; anything else is refused, as spdystream
                // does, without ending the session.
                if !accepting || stream_id % 2 == 0 || stream_id <= last_peer_stream {
                    let _ = outgoing
                        .send(Outgoing::Frame(Frame::RstStream {
                            stream_id,
                            status: STATUS_PROTOCOL_ERROR,
                        }))
                        .await;
                    continue;
                }
                last_peer_stream = stream_id;
                let (caller_end, session_end) = tokio::io::duplex(STREAM_BUFFER);
                let (from_caller, mut to_caller) = tokio::io::split(session_end);
                let reply = Frame::SynReply {
                    stream_id,
                    fin: false,
                    headers: Vec::new(),
                };
                if outgoing.send(Outgoing::Frame(reply)).await.is_err() {
                    break None;
                }
                cancels.retain(|_, cancel| !cancel.is_closed());
                let (cancel, cancelled) = oneshot::channel();
                cancels.insert(stream_id, cancel);
                let sent = SentSignal(tokio::spawn(send_stream(
                    stream_id,
                    from_caller,
                    outgoing.clone(),
                    cancelled,
                )));
                if fin {
                    let _ = to_caller.shutdown().await;
                } else {
                    sinks.insert(stream_id, to_caller);
                }
                let stream = SpdyStream {
                    id: stream_id,
                    headers,
                    io: caller_end,
                    sent,
                };
                if incoming.send(stream).await.is_err() {
                    // Nobody accepts streams any more: the caller is closing the session.
                    accepting = false;
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let Some(sink) = sinks.get_mut(&stream_id) else {
                    continue;
                };
                let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
                if !data.is_empty() {
                    if sink.write_all(&data).await.is_err() {
                        // The caller dropped its end: nothing more of this stream is wanted.
                        sinks.remove(&stream_id);
                        continue;
                    }
                    let credit = Frame::WindowUpdate {
                        stream_id,
                        delta: length,
                    };
                    if outgoing.send(Outgoing::Frame(credit)).await.is_err() {
                        break None;
                    }
                }
                if fin {
                    if let Some(mut sink) = sinks.remove(&stream_id) {
                        let _ = sink.shutdown().await;
                    }
                }
            }
            Frame::Headers {
                stream_id,
                fin: true,
                ..
            } => {
                if let Some(mut sink) = sinks.remove(&stream_id) {
                    let _ = sink.shutdown().await;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(mut sink) = sinks.remove(&stream_id) {
                    let _ = sink.shutdown().await;
                }
                if let Some(cancel) = cancels.remove(&stream_id) {
                    let _ = cancel.send(());
                }
            }
            Frame::Ping { id } => {
                // Echo the peer's pings (odd ids, the client's); ours would be even.
                if id % 2 == 1 {
                    let _ = outgoing.send(Outgoing::Frame(Frame::Ping { id })).await;
                }
            }
            Frame::GoAway { .. } => accepting = false,
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. } => {}
        }
    };
    for (_, mut sink) in sinks.drain() {
        let _ = sink.shutdown().await;
    }
    failure
}

/// Sends what the caller writes on `stream_id`, then FIN; stops without FIN once the peer reset
/// the stream (the caller's later writes then fail).
async fn send_stream(
    stream_id: u32,
    mut from_caller: ReadHalf<DuplexStream>,
    outgoing: mpsc::Sender<Outgoing>,
    mut cancelled: oneshot::Receiver<()>,
) {
    let mut chunk = vec![0u8; WRITE_CHUNK];
    loop {
        let read = tokio::select! {
            biased;
            _ = &mut cancelled => return,
            read = from_caller.read(&mut chunk) => read,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let data = Bytes::copy_from_slice(chunk.get(..n).unwrap_or_default());
                let frame = Frame::Data {
                    stream_id,
                    fin: false,
                    data,
                };
                if outgoing.send(Outgoing::Frame(frame)).await.is_err() {
                    return;
                }
            }
        }
    }
    let fin = Frame::Data {
        stream_id,
        fin: true,
        data: Bytes::new(),
    };
    let _ = outgoing.send(Outgoing::Frame(fin)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// The client half of a test session: frames written and read by hand.
    struct Client {
        io: DuplexStream,
        writer: FrameWriter,
        reader: FrameReader,
        buffer: BytesMut,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut wire = Vec::new();
            self.writer.encode(&frame, &mut wire).unwrap();
            self.io.write_all(&wire).await.unwrap();
        }

        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = self.reader.parse(&mut self.buffer).unwrap() {
                    return Some(frame);
                }
                let read = tokio::time::timeout(
                    Duration::from_secs(5),
                    self.io.read_buf(&mut self.buffer),
                )
                .await
                .expect("the session answers within 5 s")
                .unwrap();
                if read == 0 {
                    return None;
                }
            }
        }

        /// The next frame that is not flow-control credit.
        async fn next_significant(&mut self) -> Option<Frame> {
            loop {
                match self.next().await {
                    Some(Frame::WindowUpdate { .. }) => continue,
                    other => return other,
                }
            }
        }
    }

    fn session() -> (SpdyConnection, Client) {
        session_with_buffer(256 * 1024)
    }

    fn session_with_buffer(transit: usize) -> (SpdyConnection, Client) {
        let (server_io, client_io) = duplex(transit);
        let connection = SpdyConnection::start(server_io);
        let client = Client {
            io: client_io,
            writer: FrameWriter::new(),
            reader: FrameReader::new(),
            buffer: BytesMut::new(),
        };
        (connection, client)
    }

    fn syn(stream_id: u32, stream_type: &str) -> Frame {
        Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: vec![("streamtype".into(), stream_type.into())],
        }
    }

    #[tokio::test]
    async fn streams_are_replied_and_carry_data_both_ways_with_half_close() {
        let (mut connection, mut client) = session();
        client.send(syn(1, "stdin")).await;
        let mut stream = connection.accept().await.expect("a stream");
        assert_eq!(stream.header("streamType"), Some("stdin"));
        assert_eq!(
            client.next().await,
            Some(Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: vec![]
            })
        );
        client
            .send(Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::from_static(b"ping"),
            })
            .await;
        let mut received = Vec::new();
        stream.io.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"ping");
        stream.io.write_all(b"pong").await.unwrap();
        stream.io.shutdown().await.unwrap();
        let mut echoed = Vec::new();
        loop {
            match client.next_significant().await {
                Some(Frame::Data { data, fin, .. }) => {
                    echoed.extend_from_slice(&data);
                    if fin {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(echoed, b"pong");
    }

    #[tokio::test]
    async fn pings_are_echoed_and_even_stream_ids_refused() {
        let (mut connection, mut client) = session();
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
        client.send(syn(2, "data")).await;
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream_id: 2,
                status: STATUS_PROTOCOL_ERROR
            })
        );
        client.send(syn(3, "data")).await;
        assert_eq!(connection.accept().await.map(|s| s.id), Some(3));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Valid frames followed by arbitrary bytes: the session ends without a panic in its
        /// reader, whatever the peer sent.
        #[test]
        fn arbitrary_peer_bytes_never_panic_the_session(
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (mut connection, mut client) = session();
                client.send(syn(1, "stdin")).await;
                client
                    .send(Frame::Data { stream_id: 1, fin: false, data: Bytes::from_static(b"x") })
                    .await;
                client.io.write_all(&garbage).await.unwrap();
                drop(client);
                while let Some(stream) = connection.accept().await {
                    drop(stream);
                }
                let reader = connection.reader.take().unwrap();
                let outcome = tokio::time::timeout(Duration::from_secs(5), reader)
                    .await
                    .expect("the session ends with the connection");
                assert!(outcome.is_ok(), "the session's reader panicked");
            });
        }
    }

    #[tokio::test]
    async fn a_reset_stream_ends_both_directions_without_fin() {
        let (mut connection, mut client) = session();
        client.send(syn(1, "data")).await;
        let mut stream = connection.accept().await.unwrap();
        let _ = client.next().await; // SYN_REPLY
        client
            .send(Frame::RstStream {
                stream_id: 1,
                status: super::super::frame::STATUS_CANCEL,
            })
            .await;
        let mut rest = Vec::new();
        stream.io.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        // Writes fail once the session dropped its end, and no FIN goes out.
        let mut failed = false;
        for _ in 0..64 {
            if stream.io.write_all(&[0u8; 4096]).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to a reset stream keep succeeding");
        client.send(Frame::Ping { id: 3 }).await;
        assert_eq!(client.next_significant().await, Some(Frame::Ping { id: 3 }));
    }

    #[tokio::test]
    async fn a_malformed_frame_ends_the_session_with_goaway() {
        let (mut connection, mut client) = session();
        client
            .io
            .write_all(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 1, 0])
            .await
            .unwrap();
        assert!(matches!(
            client.next().await,
            Some(Frame::GoAway {
                status: STATUS_PROTOCOL_ERROR,
                ..
            })
        ));
        assert!(connection.accept().await.is_none());
    }

    #[tokio::test]
    async fn a_slow_reader_stops_the_session_reading_until_it_drains() {
        let (mut connection, mut client) = session_with_buffer(16 * 1024);
        client.send(syn(1, "stdin")).await;
        let mut stream = connection.accept().await.unwrap();
        let _ = client.next().await; // SYN_REPLY
                                     // Four times the stream buffer: the session can hold only one buffer's worth.
        let total = STREAM_BUFFER * 4;
        let mut sender = tokio::spawn(async move {
            for _ in 0..(total / 8192) {
                client
                    .send(Frame::Data {
                        stream_id: 1,
                        fin: false,
                        data: Bytes::from(vec![1u8; 8192]),
                    })
                    .await;
            }
            client
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut sender)
                .await
                .is_err(),
            "the peer wrote everything though nobody read the stream"
        );
        let mut got = 0usize;
        let mut chunk = vec![0u8; 65536];
        while got < total {
            got += stream.io.read(&mut chunk).await.unwrap();
        }
        let mut client = sender.await.unwrap();
        // Every byte read was credited back.
        let mut credited = 0usize;
        while credited < total {
            match client.next().await {
                Some(Frame::WindowUpdate { delta, .. }) => credited += delta as usize,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(credited, total);
    }
}
