//! SPDY/3.1 frames: their wire layout, and the zlib header compression whose context lives as
//! long as the connection (one compressor per direction, primed with the SPDY/3 dictionary,
//! each header block ended with a sync flush).
//!
//! Parsing never trusts a length it was given: a frame longer than [`MAX_FRAME_LENGTH`], a
//! header block inflating past [`MAX_HEADER_BLOCK`], a count or length that does not fit what
//! is left, a wrong version or an unknown control frame are [`ProtocolError`]s, never a panic.

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::SPDY3_DICTIONARY;

/// The only protocol version this crate speaks (`Upgrade: SPDY/3.1`).
pub const SPDY_VERSION: u16 = 3;
/// Set on a data frame, SYN_STREAM, SYN_REPLY or HEADERS: the sender writes no more on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// Set on a SYN_STREAM: the receiver may not write on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// Set on SETTINGS: the receiver forgets persisted settings.
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;
/// The largest frame payload accepted from a peer. SPDY allows 16 MiB; Go's spdystream (what
/// kubectl uses) writes one frame per write call, and its copies write at most 32 KiB, so
/// 1 MiB bounds what one connection buffers without refusing any client seen.
pub const MAX_FRAME_LENGTH: usize = 1 << 20;
/// The most a header block may inflate to.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Length of every frame header, control or data.
pub const FRAME_HEADER_LENGTH: usize = 8;

/// RST_STREAM and GOAWAY status: the peer broke the protocol.
pub const STATUS_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream is refused.
pub const STATUS_REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: the stream is cancelled.
pub const STATUS_CANCEL: u32 = 5;
/// GOAWAY status: the session ends normally.
pub const GOAWAY_OK: u32 = 0;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// Header name/value pairs of a SYN_STREAM, SYN_REPLY or HEADERS frame. Names are lowercase on
/// the wire; a value holding several values separated by NUL is split into several pairs.
pub type HeaderList = Vec<(String, String)>;

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Entry flags (persist value, persisted).
    pub flags: u8,
    /// Setting identifier (24 bits).
    pub id: u32,
    /// Its value.
    pub value: u32,
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes on a stream.
    Data {
        /// The stream (31 bits).
        stream_id: u32,
        /// The sender's half of the stream ends.
        fin: bool,
        /// The payload.
        data: Bytes,
    },
    /// Opens a stream.
    SynStream {
        /// The new stream (odd when the client opens it).
        stream_id: u32,
        /// The stream it is associated with, 0 for none.
        associated_to: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// The opener writes nothing on it.
        fin: bool,
        /// The receiver may write nothing on it.
        unidirectional: bool,
        /// Its headers (`streamtype`, `port`, `requestid` for Kubernetes).
        headers: HeaderList,
    },
    /// Accepts a stream.
    SynReply {
        /// The accepted stream.
        stream_id: u32,
        /// The replier writes nothing on it.
        fin: bool,
        /// Reply headers.
        headers: HeaderList,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (`STATUS_*`).
        status: u32,
    },
    /// Connection settings.
    Settings {
        /// Forget persisted settings.
        clear: bool,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// Liveness check, echoed by the receiver when the peer started it.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender accepts no new streams.
    GoAway {
        /// The last stream the sender acted on.
        last_good_stream_id: u32,
        /// Why (`GOAWAY_OK`, ...).
        status: u32,
    },
    /// More headers on an open stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender's half ends.
        fin: bool,
        /// The headers.
        headers: HeaderList,
    },
    /// Flow control credit.
    WindowUpdate {
        /// The stream.
        stream_id: u32,
        /// Bytes the sender may now send beyond its window.
        delta: u32,
    },
}

/// What makes a connection unusable: the peer sent something SPDY/3.1 does not allow, or that
/// exceeds this crate's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A frame longer than this crate accepts.
    #[error("frame of {0} bytes exceeds the limit")]
    FrameTooLarge(usize),
    /// A control frame whose length does not fit its type.
    #[error("malformed {kind} frame: {reason}")]
    Malformed {
        /// The frame type.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header block that does not inflate, or inflates past the limit, or does not parse.
    #[error("invalid header block: {0}")]
    HeaderBlock(String),
}

/// Parses frames from bytes read off a connection, keeping the peer's header compression
/// context across frames.
pub struct FrameReader {
    inflater: Decompress,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    /// A reader for a new connection.
    pub fn new() -> Self {
        Self {
            inflater: Decompress::new(true),
        }
    }

    /// Takes one frame off the front of `buffer`, or `Ok(None)` when `buffer` does not yet hold a
    /// whole frame (read more and call again). Unknown control frame types (which SPDY tells
    /// receivers to ignore) are consumed and skipped.
    pub fn parse(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            if buffer.len() < FRAME_HEADER_LENGTH {
                return Ok(None);
            }
            let first = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
            let flags = buffer[4];
            let length =
                usize::from(buffer[5]) << 16 | usize::from(buffer[6]) << 8 | usize::from(buffer[7]);
            if length > MAX_FRAME_LENGTH {
                return Err(ProtocolError::FrameTooLarge(length));
            }
            let control = first & 0x8000_0000 != 0;
            // Check the version before waiting for the body: a peer speaking something else
            // should be told at once.
            if control {
                let version = ((first >> 16) & 0x7fff) as u16;
                if version != SPDY_VERSION {
                    return Err(ProtocolError::Version(version));
                }
            }
            if buffer.len() < FRAME_HEADER_LENGTH + length {
                buffer.reserve(FRAME_HEADER_LENGTH + length - buffer.len());
                return Ok(None);
            }
            buffer.advance(FRAME_HEADER_LENGTH);
            let body = buffer.split_to(length).freeze();
            if !control {
                return Ok(Some(Frame::Data {
                    stream_id: first & STREAM_ID_MASK,
                    fin: flags & FLAG_FIN != 0,
                    data: body,
                }));
            }
            let frame_type = (first & 0xffff) as u16;
            if let Some(frame) = self.control(frame_type, flags, body)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(
        &mut self,
        frame_type: u16,
        flags: u8,
        body: Bytes,
    ) -> Result<Option<Frame>, ProtocolError> {
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                need(&body, 10, "SYN_STREAM")?;
                let stream_id = be32(&body, 0) & STREAM_ID_MASK;
                let associated_to = be32(&body, 4) & STREAM_ID_MASK;
                let priority = body[8] >> 5;
                let headers = self.headers(&body[10..])?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin: flags & FLAG_FIN != 0,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                }
            }
            TYPE_SYN_REPLY => {
                need(&body, 4, "SYN_REPLY")?;
                Frame::SynReply {
                    stream_id: be32(&body, 0) & STREAM_ID_MASK,
                    fin: flags & FLAG_FIN != 0,
                    headers: self.headers(&body[4..])?,
                }
            }
            TYPE_HEADERS => {
                need(&body, 4, "HEADERS")?;
                Frame::Headers {
                    stream_id: be32(&body, 0) & STREAM_ID_MASK,
                    fin: flags & FLAG_FIN != 0,
                    headers: self.headers(&body[4..])?,
                }
            }
            TYPE_RST_STREAM => {
                exact(&body, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: be32(&body, 0) & STREAM_ID_MASK,
                    status: be32(&body, 4),
                }
            }
            TYPE_SETTINGS => {
                need(&body, 4, "SETTINGS")?;
                let count = be32(&body, 0) as usize;
                let expected = count.checked_mul(8).and_then(|n| n.checked_add(4));
                if expected != Some(body.len()) {
                    return Err(ProtocolError::Malformed {
                        kind: "SETTINGS",
                        reason: "entry count does not match the length",
                    });
                }
                let entries = (0..count)
                    .map(|index| {
                        let at = 4 + index * 8;
                        let flags_and_id = be32(&body, at);
                        Setting {
                            flags: (flags_and_id >> 24) as u8,
                            id: flags_and_id & 0x00ff_ffff,
                            value: be32(&body, at + 4),
                        }
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                }
            }
            TYPE_PING => {
                exact(&body, 4, "PING")?;
                Frame::Ping { id: be32(&body, 0) }
            }
            TYPE_GOAWAY => {
                exact(&body, 8, "GOAWAY")?;
                Frame::GoAway {
                    last_good_stream_id: be32(&body, 0) & STREAM_ID_MASK,
                    status: be32(&body, 4),
                }
            }
            TYPE_WINDOW_UPDATE => {
                exact(&body, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: be32(&body, 0) & STREAM_ID_MASK,
                    delta: be32(&body, 4) & STREAM_ID_MASK,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    fn headers(&mut self, block: &[u8]) -> Result<HeaderList, ProtocolError> {
        let plain = self.inflate(block)?;
        decode_header_block(&plain)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut output = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        let mut chunk = [0u8; 4096];
        loop {
            let before_in = self.inflater.total_in();
            let before_out = self.inflater.total_out();
            let result = self
                .inflater
                .decompress(input, &mut chunk, FlushDecompress::Sync);
            let consumed = (self.inflater.total_in() - before_in) as usize;
            let produced = (self.inflater.total_out() - before_out) as usize;
            input = input.get(consumed..).unwrap_or_default();
            output.extend_from_slice(chunk.get(..produced).unwrap_or_default());
            if output.len() > MAX_HEADER_BLOCK {
                return Err(ProtocolError::HeaderBlock("inflates past the limit".into()));
            }
            match result {
                Ok(Status::StreamEnd) => {
                    return Err(ProtocolError::HeaderBlock(
                        "the compression stream ended".into(),
                    ))
                }
                Ok(_) => {
                    // Done when all input is in and the last call did not fill the buffer.
                    if input.is_empty() && produced < chunk.len() {
                        return Ok(output);
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(ProtocolError::HeaderBlock("truncated".into()));
                    }
                }
                Err(error) if error.needs_dictionary().is_some() => {
                    self.inflater
                        .set_dictionary(&SPDY3_DICTIONARY)
                        .map_err(|e| ProtocolError::HeaderBlock(e.to_string()))?;
                }
                Err(error) => return Err(ProtocolError::HeaderBlock(error.to_string())),
            }
        }
    }
}

/// Serializes frames for one connection, keeping this side's header compression context.
pub struct FrameWriter {
    deflater: Compress,
}

impl Default for FrameWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameWriter {
    /// A writer for a new connection.
    pub fn new() -> Self {
        let mut deflater = Compress::new(Compression::default(), true);
        // Only fails for a compressor that already produced output, which this one has not.
        let _ = deflater.set_dictionary(&SPDY3_DICTIONARY);
        Self { deflater }
    }

    /// Appends `frame` to `out`. Fails only when a payload exceeds SPDY's 24-bit length.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let length = length24(data.len())?;
                out.extend_from_slice(&(stream_id & STREAM_ID_MASK).to_be_bytes());
                out.push(if *fin { FLAG_FIN } else { 0 });
                out.extend_from_slice(&length);
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let mut body = Vec::new();
                body.extend_from_slice(&(stream_id & STREAM_ID_MASK).to_be_bytes());
                body.extend_from_slice(&(associated_to & STREAM_ID_MASK).to_be_bytes());
                body.push((priority & 0x07) << 5);
                body.push(0);
                self.deflate(headers, &mut body)?;
                let flags = if *fin { FLAG_FIN } else { 0 }
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control(out, TYPE_SYN_STREAM, flags, &body)?;
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let mut body = (stream_id & STREAM_ID_MASK).to_be_bytes().to_vec();
                self.deflate(headers, &mut body)?;
                control(out, TYPE_SYN_REPLY, u8::from(*fin), &body)?;
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let mut body = (stream_id & STREAM_ID_MASK).to_be_bytes().to_vec();
                self.deflate(headers, &mut body)?;
                control(out, TYPE_HEADERS, u8::from(*fin), &body)?;
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = (stream_id & STREAM_ID_MASK).to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(out, TYPE_RST_STREAM, 0, &body)?;
            }
            Frame::Settings { clear, entries } => {
                let count = u32::try_from(entries.len()).map_err(|_| ProtocolError::Malformed {
                    kind: "SETTINGS",
                    reason: "too many entries",
                })?;
                let mut body = count.to_be_bytes().to_vec();
                for entry in entries {
                    let flags_and_id = u32::from(entry.flags) << 24 | (entry.id & 0x00ff_ffff);
                    body.extend_from_slice(&flags_and_id.to_be_bytes());
                    body.extend_from_slice(&entry.value.to_be_bytes());
                }
                control(out, TYPE_SETTINGS, u8::from(*clear), &body)?;
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes())?,
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut body = (last_good_stream_id & STREAM_ID_MASK)
                    .to_be_bytes()
                    .to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(out, TYPE_GOAWAY, 0, &body)?;
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut body = (stream_id & STREAM_ID_MASK).to_be_bytes().to_vec();
                body.extend_from_slice(&(delta & STREAM_ID_MASK).to_be_bytes());
                control(out, TYPE_WINDOW_UPDATE, 0, &body)?;
            }
        }
        Ok(())
    }

    fn deflate(&mut self, headers: &HeaderList, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let plain = encode_header_block(headers)?;
        let mut input = plain.as_slice();
        let mut chunk = [0u8; 4096];
        loop {
            let before_in = self.deflater.total_in();
            let before_out = self.deflater.total_out();
            self.deflater
                .compress(input, &mut chunk, FlushCompress::Sync)
                .map_err(|e| ProtocolError::HeaderBlock(e.to_string()))?;
            let consumed = (self.deflater.total_in() - before_in) as usize;
            let produced = (self.deflater.total_out() - before_out) as usize;
            input = input.get(consumed..).unwrap_or_default();
            out.extend_from_slice(chunk.get(..produced).unwrap_or_default());
            if input.is_empty() && produced < chunk.len() {
                return Ok(());
            }
        }
    }
}

/// The uncompressed SPDY/3 name/value block: a count, then length-prefixed names and values,
/// values of one name joined by NUL.
pub fn encode_header_block(headers: &HeaderList) -> Result<Vec<u8>, ProtocolError> {
    let mut grouped: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match grouped.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, values)) => values.push(value),
            None => grouped.push((name, vec![value])),
        }
    }
    let too_long = || ProtocolError::HeaderBlock("a header is too long".into());
    let mut block = u32::try_from(grouped.len())
        .map_err(|_| too_long())?
        .to_be_bytes()
        .to_vec();
    for (name, values) in grouped {
        let value = values.join("\0");
        block.extend_from_slice(
            &u32::try_from(name.len())
                .map_err(|_| too_long())?
                .to_be_bytes(),
        );
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(
            &u32::try_from(value.len())
                .map_err(|_| too_long())?
                .to_be_bytes(),
        );
        block.extend_from_slice(value.as_bytes());
    }
    Ok(block)
}

/// Parses an uncompressed name/value block.
pub fn decode_header_block(mut block: &[u8]) -> Result<HeaderList, ProtocolError> {
    let bad = |reason: &str| ProtocolError::HeaderBlock(reason.to_string());
    let count = take_u32(&mut block).ok_or_else(|| bad("missing the pair count"))? as usize;
    // Each pair takes at least 8 bytes: a count beyond that is a lie, refused before allocating.
    if count > block.len() / 8 {
        return Err(bad("pair count exceeds the block"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take_string(&mut block).ok_or_else(|| bad("truncated name"))?;
        let value = take_string(&mut block).ok_or_else(|| bad("truncated value"))?;
        if name.is_empty() {
            return Err(bad("empty header name"));
        }
        for part in value.split('\0') {
            headers.push((name.clone(), part.to_string()));
        }
    }
    if !block.is_empty() {
        return Err(bad("bytes after the last pair"));
    }
    Ok(headers)
}

fn take_u32(block: &mut &[u8]) -> Option<u32> {
    let (head, rest) = block.split_first_chunk::<4>()?;
    *block = rest;
    Some(u32::from_be_bytes(*head))
}

fn take_string(block: &mut &[u8]) -> Option<String> {
    let length = take_u32(block)? as usize;
    if block.len() < length {
        return None;
    }
    let (text, rest) = block.split_at(length);
    *block = rest;
    String::from_utf8(text.to_vec()).ok()
}

fn control(
    out: &mut Vec<u8>,
    frame_type: u16,
    flags: u8,
    body: &[u8],
) -> Result<(), ProtocolError> {
    let length = length24(body.len())?;
    out.extend_from_slice(&(0x8000 | SPDY_VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&length);
    out.extend_from_slice(body);
    Ok(())
}

fn length24(length: usize) -> Result<[u8; 3], ProtocolError> {
    if length > 0x00ff_ffff {
        return Err(ProtocolError::FrameTooLarge(length));
    }
    Ok([(length >> 16) as u8, (length >> 8) as u8, length as u8])
}

fn be32(body: &[u8], at: usize) -> u32 {
    match body.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn need(body: &[u8], minimum: usize, kind: &'static str) -> Result<(), ProtocolError> {
    if body.len() < minimum {
        return Err(ProtocolError::Malformed {
            kind,
            reason: "shorter than its fixed fields",
        });
    }
    Ok(())
}

fn exact(body: &[u8], length: usize, kind: &'static str) -> Result<(), ProtocolError> {
    if body.len() != length {
        return Err(ProtocolError::Malformed {
            kind,
            reason: "wrong length",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let mut writer = FrameWriter::new();
        let mut wire = Vec::new();
        for frame in frames {
            writer.encode(frame, &mut wire).expect("encodes");
        }
        let mut reader = FrameReader::new();
        let mut buffer = BytesMut::from(&wire[..]);
        let mut parsed = Vec::new();
        while let Some(frame) = reader.parse(&mut buffer).expect("parses") {
            parsed.push(frame);
        }
        assert!(buffer.is_empty(), "bytes left over");
        parsed
    }

    #[test]
    fn every_frame_type_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "error")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: STATUS_CANCEL,
            },
            Frame::Settings {
                clear: true,
                entries: vec![Setting {
                    flags: 0,
                    id: 7,
                    value: 65536,
                }],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: GOAWAY_OK,
            },
            Frame::Headers {
                stream_id: 1,
                fin: true,
                headers: headers(&[("a", "1"), ("a", "2")]),
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 4096,
            },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn compression_context_is_kept_across_frames() {
        // The second block repeats the first one's headers, so a shared context compresses it
        // to a back-reference far shorter than the first: proof the writer kept its state, and
        // the reader (which parses both) kept its own.
        let first = Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers(&[("streamtype", "stdout"), ("requestid", "0123456789abcdef")]),
        };
        let mut second = first.clone();
        if let Frame::SynStream { stream_id, .. } = &mut second {
            *stream_id = 3;
        }
        let mut writer = FrameWriter::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        writer.encode(&first, &mut a).unwrap();
        writer.encode(&second, &mut b).unwrap();
        assert!(b.len() < a.len(), "{} !< {}", b.len(), a.len());
        let mut reader = FrameReader::new();
        assert_eq!(
            reader.parse(&mut BytesMut::from(&a[..])).unwrap(),
            Some(first)
        );
        assert_eq!(
            reader.parse(&mut BytesMut::from(&b[..])).unwrap(),
            Some(second.clone())
        );
        // A reader that missed the first block cannot make sense of the second.
        let mut fresh = FrameReader::new();
        assert!(fresh.parse(&mut BytesMut::from(&b[..])).is_err());
    }

    #[test]
    fn fragmented_input_yields_the_same_frames() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "data"), ("port", "80")]),
            },
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from(vec![7u8; 5000]),
            },
        ];
        let mut writer = FrameWriter::new();
        let mut wire = Vec::new();
        for frame in &frames {
            writer.encode(frame, &mut wire).unwrap();
        }
        let mut reader = FrameReader::new();
        let mut buffer = BytesMut::new();
        let mut parsed = Vec::new();
        for byte in wire {
            buffer.extend_from_slice(&[byte]);
            while let Some(frame) = reader.parse(&mut buffer).unwrap() {
                parsed.push(frame);
            }
        }
        assert_eq!(parsed, frames);
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "version 2",
                vec![0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
            ),
            ("short ping", vec![0x80, 0x03, 0x00, 0x06, 0, 0, 0, 2, 0, 1]),
            (
                "short rst",
                vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4, 0, 0, 0, 1],
            ),
            (
                "settings count lies",
                vec![0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
            ),
            ("huge data frame", vec![0, 0, 0, 1, 0, 0xff, 0xff, 0xff]),
            (
                "syn_stream with garbage headers",
                vec![
                    0x80, 0x03, 0x00, 0x01, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
                ],
            ),
            (
                "short syn_reply",
                vec![0x80, 0x03, 0x00, 0x02, 0, 0, 0, 2, 0, 1],
            ),
        ];
        for (name, bytes) in cases {
            let mut reader = FrameReader::new();
            let result = reader.parse(&mut BytesMut::from(&bytes[..]));
            assert!(result.is_err(), "{name}: {result:?}");
        }
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        let mut wire = vec![0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 2, 9, 9];
        FrameWriter::new()
            .encode(&Frame::Ping { id: 1 }, &mut wire)
            .unwrap();
        let mut reader = FrameReader::new();
        let frame = reader.parse(&mut BytesMut::from(&wire[..])).unwrap();
        assert_eq!(frame, Some(Frame::Ping { id: 1 }));
    }

    #[test]
    fn header_block_counts_beyond_the_block_are_refused() {
        let block = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'a'];
        assert!(decode_header_block(&block).is_err());
        let dangling = [0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 9, b'b'];
        assert!(decode_header_block(&dangling).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut reader = FrameReader::new();
            let mut buffer = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = reader.parse(&mut buffer) {}
        }

        #[test]
        fn data_and_headers_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            values in proptest::collection::vec("[a-z0-9 ./-]{0,40}", 1..6),
            split in 1usize..64,
        ) {
            let mut frames = Vec::new();
            for (index, (payload, value)) in payloads.iter().zip(values.iter().cycle()).enumerate() {
                let stream_id = u32::try_from(index).unwrap() * 2 + 1;
                frames.push(Frame::SynStream {
                    stream_id, associated_to: 0, priority: 0, fin: false, unidirectional: false,
                    headers: headers(&[("streamtype", "data"), ("requestid", value)]),
                });
                frames.push(Frame::Data { stream_id, fin: index % 2 == 0, data: Bytes::from(payload.clone()) });
            }
            let mut writer = FrameWriter::new();
            let mut wire = Vec::new();
            for frame in &frames {
                writer.encode(frame, &mut wire).unwrap();
            }
            let mut reader = FrameReader::new();
            let mut buffer = BytesMut::new();
            let mut parsed = Vec::new();
            for piece in wire.chunks(split) {
                buffer.extend_from_slice(piece);
                while let Some(frame) = reader.parse(&mut buffer).unwrap() {
                    parsed.push(frame);
                }
            }
            prop_assert_eq!(parsed, frames);
        }
    }
}
