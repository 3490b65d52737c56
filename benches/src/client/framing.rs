//! HTTP/1.1 response framing, once: where a response head ends, what its
//! status line says, whether the connection stays open, and where its body
//! ends (RFC 9112 sections 4, 6 and 7). Both response readers build on it:
//! the load client's streaming checker ([`crate::check`]) and the strict
//! reader the tests use ([`super::response`]).
//!
//! ```text
//!   bytes ──► parse_head ──► Head { status, version, keep_alive, framing, .. }
//!                                      │
//!   bytes ──► BodyDecoder::new(framing).feed ──► body pieces ──► done
//! ```
//!
//! Nothing here allocates: the head is tokenized by httparse into the
//! caller's header array, and the body decoder hands out slices of the
//! caller's buffer. What a response must additionally be (a status, a body,
//! the exact bytes ringwall sends) is the callers' business.

use std::fmt;

/// Header fields a response head may have; more is a runaway head.
pub const MAX_HEADERS: usize = 64;

/// A chunk-size line longer than this is not one (a real one is a few hex
/// digits and perhaps an extension).
const MAX_CHUNK_SIZE_LINE: usize = 1024;
/// A trailer line longer than this is a runaway.
const MAX_TRAILER_LINE: usize = 8192;

/// Why bytes are not a well-framed HTTP/1.1 response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// The status line is not `HTTP/1.x 3DIGIT ...`.
    StatusLine,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// A head httparse rejects: a bad header name or value, a bad line end.
    MalformedHead,
    /// A `Content-Length` that is not a decimal number of at most 18 digits.
    MalformedContentLength,
    /// `Content-Length` fields that disagree (RFC 9110 section 8.6).
    DifferingContentLengths,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 section 6.3).
    BothFramings,
    /// A `Transfer-Encoding` whose final coding is not chunked: the body
    /// would run to the close (RFC 9112 section 6.3).
    NotFinallyChunked,
    /// A response that must have a body length has none: a close-delimited
    /// body cannot be told from a truncated one (ARCHITECTURE.md).
    NoLength,
    /// A chunk-size line that is not `1*HEXDIG [ chunk-ext ]`.
    MalformedChunkSize,
    /// Chunk data not followed by CRLF.
    ChunkWithoutCrlf,
    /// A trailer line too long to be one.
    TrailerTooLong,
}

impl FramingError {
    pub fn what(self) -> &'static str {
        match self {
            FramingError::StatusLine => "malformed status line",
            FramingError::TooManyHeaders => "too many headers",
            FramingError::MalformedHead => "malformed response head",
            FramingError::MalformedContentLength => "malformed Content-Length",
            FramingError::DifferingContentLengths => "differing Content-Length headers",
            FramingError::BothFramings => "both Content-Length and Transfer-Encoding",
            FramingError::NotFinallyChunked => "Transfer-Encoding without final chunked",
            FramingError::NoLength => "neither Content-Length nor chunked",
            FramingError::MalformedChunkSize => "malformed chunk size",
            FramingError::ChunkWithoutCrlf => "chunk data not followed by CRLF",
            FramingError::TrailerTooLong => "trailer section too long",
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what())
    }
}

impl std::error::Error for FramingError {}

/// Where a response's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: 1xx, 204, 304, or the answer to a HEAD.
    None,
    Length(usize),
    Chunked,
}

/// A parsed response head; `headers` borrow the caller's array.
#[derive(Debug)]
pub struct Head<'h, 'b> {
    /// The minor version: `HTTP/1.1` is 1.
    pub minor_version: u8,
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// The `Content-Length`, when one was sent (also on a bodiless answer).
    pub content_length: Option<usize>,
    pub framing: BodyFraming,
    /// False when the server announced it will close: `Connection: close`,
    /// or HTTP/1.0 without `keep-alive` (RFC 9112 section 9.3).
    pub keep_alive: bool,
}

impl Head<'_, '_> {
    /// An interim answer (RFC 9110 section 15.2): the final one follows on
    /// the same connection. 101 is final: the protocol changes after it.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Parses the response head at the front of `buf` into `headers`; `None`
/// when it is not complete yet. `head_request`: the request was HEAD, so no
/// body follows whatever the framing says (RFC 9110 section 9.3.2).
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    head_request: bool,
) -> Result<Option<Head<'h, 'b>>, FramingError> {
    let mut resp = httparse::Response::new(headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return Err(FramingError::TooManyHeaders),
        Err(httparse::Error::Status) | Err(httparse::Error::Version) => {
            return Err(FramingError::StatusLine)
        }
        Err(_) => return Err(FramingError::MalformedHead),
    };
    let minor_version = resp.version.unwrap_or(0);
    let status = resp.code.unwrap_or(0);
    let mut content_length: Option<usize> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut keep_alive = minor_version == 1;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(FramingError::DifferingContentLengths);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // RFC 9112 section 6.1: chunked must be the final coding.
            chunked = last_token_is(h.value, b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, b"close") {
                keep_alive = false;
            } else if has_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    if transfer_encoding && content_length.is_some() {
        return Err(FramingError::BothFramings);
    }
    if transfer_encoding && !chunked {
        return Err(FramingError::NotFinallyChunked);
    }
    // RFC 9112 section 6.3: 1xx, 204 and 304 end at the head, whatever the
    // headers say; so does the answer to a HEAD.
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if bodiless || head_request {
        BodyFraming::None
    } else if chunked {
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(n) => BodyFraming::Length(n),
            None => return Err(FramingError::NoLength),
        }
    };
    Ok(Some(Head {
        minor_version,
        status,
        reason: resp.reason.unwrap_or(""),
        headers: resp.headers,
        len,
        content_length,
        framing,
        keep_alive,
    }))
}

/// Where the body decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyState {
    Length { remaining: usize },
    ChunkSize,
    ChunkData { remaining: usize },
    ChunkDataEnd,
    Trailers,
    Done,
}

/// Finds the end of one body in a stream of bytes, handing out its content.
///
/// A pull decoder: it consumes only whole units (body bytes, a whole
/// chunk-size line, a whole trailer line), so the caller keeps the
/// unconsumed tail and feeds it again with more bytes behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyDecoder {
    state: BodyState,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> BodyDecoder {
        let state = match framing {
            BodyFraming::None => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length { remaining: n },
            BodyFraming::Chunked => BodyState::ChunkSize,
        };
        BodyDecoder { state }
    }

    /// Consumes what it can of `buf`, passing each piece of content to
    /// `content` (which may refuse it). Returns the bytes consumed and
    /// whether the body has ended.
    #[inline]
    pub fn feed<'b, E: From<FramingError>>(
        &mut self,
        buf: &'b [u8],
        mut content: impl FnMut(&'b [u8]) -> Result<(), E>,
    ) -> Result<(usize, bool), E> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                BodyState::Done => return Ok((pos, true)),
                BodyState::Length { remaining } => {
                    if remaining == 0 {
                        self.state = BodyState::Done;
                        continue;
                    }
                    let n = remaining.min(rest.len());
                    if n == 0 {
                        return Ok((pos, false));
                    }
                    content(&rest[..n])?;
                    pos += n;
                    self.state = BodyState::Length {
                        remaining: remaining - n,
                    };
                }
                BodyState::ChunkSize => {
                    let Some(line_end) = find_crlf(rest) else {
                        if rest.len() > MAX_CHUNK_SIZE_LINE {
                            return Err(FramingError::MalformedChunkSize.into());
                        }
                        return Ok((pos, false));
                    };
                    let size = parse_chunk_size(&rest[..line_end])?;
                    pos += line_end + 2;
                    self.state = if size == 0 {
                        BodyState::Trailers
                    } else {
                        BodyState::ChunkData { remaining: size }
                    };
                }
                BodyState::ChunkData { remaining } => {
                    let n = remaining.min(rest.len());
                    if n == 0 {
                        return Ok((pos, false));
                    }
                    content(&rest[..n])?;
                    pos += n;
                    self.state = if remaining == n {
                        BodyState::ChunkDataEnd
                    } else {
                        BodyState::ChunkData {
                            remaining: remaining - n,
                        }
                    };
                }
                BodyState::ChunkDataEnd => {
                    if rest.len() < 2 {
                        return Ok((pos, false));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(FramingError::ChunkWithoutCrlf.into());
                    }
                    pos += 2;
                    self.state = BodyState::ChunkSize;
                }
                // RFC 9112 section 7.1.2: trailer fields, then an empty line.
                BodyState::Trailers => {
                    let Some(line_end) = find_crlf(rest) else {
                        if rest.len() > MAX_TRAILER_LINE {
                            return Err(FramingError::TrailerTooLong.into());
                        }
                        return Ok((pos, false));
                    };
                    pos += line_end + 2;
                    if line_end == 0 {
                        self.state = BodyState::Done;
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// RFC 9110 section 8.6: `1*DIGIT`; 18 digits cannot overflow.
fn parse_content_length(value: &[u8]) -> Result<usize, FramingError> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::MalformedContentLength);
    }
    Ok(v.iter()
        .fold(0usize, |acc, &d| acc * 10 + (d - b'0') as usize))
}

/// RFC 9112 section 7.1: `chunk-size [ chunk-ext ]`, the extension after
/// optional whitespace and a `;`.
fn parse_chunk_size(line: &[u8]) -> Result<usize, FramingError> {
    let hex_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let hex = &line[..hex_end];
    if hex.is_empty() || hex.len() > 15 {
        return Err(FramingError::MalformedChunkSize);
    }
    if let Some(&after) = line.get(hex_end) {
        if after != b';' && after != b' ' && after != b'\t' {
            return Err(FramingError::MalformedChunkSize);
        }
    }
    Ok(hex.iter().fold(0usize, |acc, &d| {
        acc * 16 + (d as char).to_digit(16).unwrap_or(0) as usize
    }))
}

/// Whether the comma-separated list `value` holds `token` (ASCII
/// case-insensitive), as `Connection: keep-alive, close` does.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn last_token_is(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .next_back()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The framing of the complete head in `wire`, or its error.
    fn framing(wire: &[u8], head_request: bool) -> Result<(BodyFraming, bool), FramingError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = parse_head(wire, &mut headers, head_request)?.expect("a complete head");
        Ok((head.framing, head.keep_alive))
    }

    /// The body `wire` carries after its head, fed `step` bytes at a time.
    fn body(wire: &[u8], step: usize) -> Result<Vec<u8>, FramingError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = parse_head(wire, &mut headers, false)?.expect("a complete head");
        let mut decoder = BodyDecoder::new(head.framing);
        let (mut pos, mut fed, mut out) = (head.len, head.len, Vec::new());
        loop {
            fed = (fed + step).min(wire.len());
            let (n, done) = decoder.feed(&wire[pos..fed], |piece| {
                out.extend_from_slice(piece);
                Ok::<(), FramingError>(())
            })?;
            pos += n;
            if done {
                assert_eq!(pos, wire.len(), "the body ends where the wire does");
                return Ok(out);
            }
            assert!(fed < wire.len(), "the body did not end with the wire");
        }
    }

    macro_rules! framing_cases {
        ($($name:ident: $wire:expr, $head_request:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(framing($wire, $head_request), $want);
            }
        )*};
    }

    framing_cases! {
        content_length_frames_the_body:
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", false
            => Ok((BodyFraming::Length(13), true));
        repeated_equal_content_lengths_are_one:
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", false
            => Ok((BodyFraming::Length(3), true));
        differing_content_lengths_are_an_error:
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", false
            => Err(FramingError::DifferingContentLengths);
        signed_content_length_is_malformed:
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", false
            => Err(FramingError::MalformedContentLength);
        final_chunked_coding_frames_the_body:
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false
            => Ok((BodyFraming::Chunked, true));
        chunked_not_last_is_an_error:
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false
            => Err(FramingError::NotFinallyChunked);
        both_framings_are_an_error:
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false
            => Err(FramingError::BothFramings);
        no_length_is_an_error:
            b"HTTP/1.1 200 OK\r\n\r\n", false => Err(FramingError::NoLength);
        no_content_needs_no_length:
            b"HTTP/1.1 204 No Content\r\n\r\n", false => Ok((BodyFraming::None, true));
        head_answer_has_no_body_whatever_its_length:
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true => Ok((BodyFraming::None, true));
        connection_close_ends_keep_alive:
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false
            => Ok((BodyFraming::Length(0), false));
        http_1_0_closes_unless_kept_alive:
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false
            => Ok((BodyFraming::Length(0), false));
        http_1_0_keep_alive_stays_open:
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", false
            => Ok((BodyFraming::Length(0), true));
        body_first_is_a_bad_status_line:
            b"Hello, World!HTTP/1.1 200 OK\r\n\r\n", false => Err(FramingError::StatusLine);
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Le", &mut headers, false);
        assert!(matches!(head, Ok(None)));
    }

    #[test]
    fn chunked_body_is_decoded_at_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n8;x=y\r\n, World!\r\n0\r\nX-T: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 4096] {
            assert_eq!(body(wire, step).as_deref(), Ok(&b"Hello, World!"[..]));
        }
    }

    #[test]
    fn length_body_is_decoded_at_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for step in [1, 4, 4096] {
            assert_eq!(body(wire, step).as_deref(), Ok(&b"hello"[..]));
        }
    }

    #[test]
    fn chunk_framing_errors_are_named() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let with = |chunks: &[u8]| body(&[&head[..], chunks].concat(), 4096);
        assert_eq!(with(b"zz\r\n"), Err(FramingError::MalformedChunkSize));
        assert_eq!(with(b"5x\r\n"), Err(FramingError::MalformedChunkSize));
        assert_eq!(with(b"2\r\nabXY"), Err(FramingError::ChunkWithoutCrlf));
        assert_eq!(
            with(&vec![b'1'; MAX_CHUNK_SIZE_LINE + 1]),
            Err(FramingError::MalformedChunkSize)
        );
    }
}
