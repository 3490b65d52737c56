//! Checks every response the load client receives, so a broken server cannot
//! look fast (a sink that misread reversed bytes once reported 4x the real
//! throughput).
//!
//! ```text
//!   socket bytes ──► ResponseParser::feed ──► Partial (keep reading)
//!                         │                ├─► Complete { keep_alive }
//!                         ▼                └─► Err(ResponseError)  → counted, reconnect
//!        status line, framing (Content-Length | chunked), body length and bytes
//! ```
//!
//! The framing (where a head and a body end, `Connection`) is
//! [`crate::client::framing`], which the tests' strict reader shares; this
//! module checks what arrives against what was expected. A pull parser: it
//! consumes only whole units (a complete head, a complete chunk-size line,
//! body bytes), so the caller keeps the unconsumed tail in its buffer and
//! feeds it again with more bytes behind it. It never allocates.

use std::fmt;

use crate::client::framing::{self, BodyDecoder, BodyFraming, FramingError, MAX_HEADERS};

/// The kinds of failure the load client counts. A failed request is never
/// counted as a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connect failed (refused, unreachable, descriptor limit).
    Connect,
    /// The connection was reset (`ECONNRESET`) while a request was pending.
    Reset,
    /// A write failed (`EPIPE`, `ECONNRESET`): the server had gone.
    WriteFailed,
    /// The server closed a connection that had a request pending and sent no
    /// byte of its response (a keep-alive close race, or a server that closes
    /// after each response without saying `Connection: close`).
    EofBeforeResponse,
    /// The server closed in the middle of a response.
    EofMidResponse,
    /// The status line was not `HTTP/1.1 200`.
    BadStatus,
    /// Malformed head, no or conflicting framing, a bad chunk, bytes where
    /// none belong.
    BadFraming,
    /// The framing announced fewer body bytes than expected.
    ShortBody,
    /// The body bytes differ from what was expected, or there are more.
    WrongBody,
    /// No complete response within the request timeout.
    Timeout,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::WriteFailed,
        ErrorKind::EofBeforeResponse,
        ErrorKind::EofMidResponse,
        ErrorKind::BadStatus,
        ErrorKind::BadFraming,
        ErrorKind::ShortBody,
        ErrorKind::WrongBody,
        ErrorKind::Timeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::WriteFailed => "write_failed",
            ErrorKind::EofBeforeResponse => "eof_before_response",
            ErrorKind::EofMidResponse => "eof_mid_response",
            ErrorKind::BadStatus => "bad_status",
            ErrorKind::BadFraming => "bad_framing",
            ErrorKind::ShortBody => "short_body",
            ErrorKind::WrongBody => "wrong_body",
            ErrorKind::Timeout => "timeout",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub connect: u64,
    pub reset: u64,
    pub write_failed: u64,
    pub eof_before_response: u64,
    pub eof_mid_response: u64,
    pub bad_status: u64,
    pub bad_framing: u64,
    pub short_body: u64,
    pub wrong_body: u64,
    pub timeout: u64,
}

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        *self.slot(kind) += n;
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        match kind {
            ErrorKind::Connect => self.connect,
            ErrorKind::Reset => self.reset,
            ErrorKind::WriteFailed => self.write_failed,
            ErrorKind::EofBeforeResponse => self.eof_before_response,
            ErrorKind::EofMidResponse => self.eof_mid_response,
            ErrorKind::BadStatus => self.bad_status,
            ErrorKind::BadFraming => self.bad_framing,
            ErrorKind::ShortBody => self.short_body,
            ErrorKind::WrongBody => self.wrong_body,
            ErrorKind::Timeout => self.timeout,
        }
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Reset => &mut self.reset,
            ErrorKind::WriteFailed => &mut self.write_failed,
            ErrorKind::EofBeforeResponse => &mut self.eof_before_response,
            ErrorKind::EofMidResponse => &mut self.eof_mid_response,
            ErrorKind::BadStatus => &mut self.bad_status,
            ErrorKind::BadFraming => &mut self.bad_framing,
            ErrorKind::ShortBody => &mut self.short_body,
            ErrorKind::WrongBody => &mut self.wrong_body,
            ErrorKind::Timeout => &mut self.timeout,
        }
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        for kind in ErrorKind::ALL {
            self.add(kind, other.get(kind));
        }
    }

    pub fn total(&self) -> u64 {
        ErrorKind::ALL.iter().map(|&k| self.get(k)).sum()
    }
}

impl fmt::Display for ErrorCounts {
    /// `none`, or the non-zero kinds: `bad_status=3 short_body=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in ErrorKind::ALL {
            let n = self.get(kind);
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{kind}={n}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Byte `offset` of every echo request body. Deterministic, so the echoed
/// body is checked byte for byte without keeping a copy per connection.
pub fn echo_byte(offset: usize) -> u8 {
    b'a' + (offset % 26) as u8
}

/// What the body must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyCheck {
    /// Exactly these bytes (`Hello, World!`).
    Exact(&'static [u8]),
    /// Exactly this many bytes; the content is the server's (`GET /bytes/N`).
    Length(usize),
    /// This many bytes of [`echo_byte`] (an echoed POST body).
    Echo(usize),
    /// Any body, as long as it is framed (probing an unknown server).
    Any,
    /// The answer to a HEAD of a resource of N bytes: no body follows,
    /// whatever the framing says (RFC 9110 9.3.2), and a Content-Length,
    /// when sent, says N.
    Head(usize),
}

impl BodyCheck {
    fn expected_len(self) -> Option<usize> {
        match self {
            BodyCheck::Exact(b) => Some(b.len()),
            BodyCheck::Length(n) | BodyCheck::Echo(n) => Some(n),
            BodyCheck::Any | BodyCheck::Head(_) => None,
        }
    }
}

/// What a response must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// `Some(200)`: the status line must be exactly `HTTP/1.1 200`. `None`:
    /// any final status and version (probing an unknown server).
    pub status: Option<u16>,
    pub body: BodyCheck,
}

/// A response that failed its check; `kind` is what gets counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseError {
    pub kind: ErrorKind,
    pub what: &'static str,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.what)
    }
}

impl std::error::Error for ResponseError {}

fn fail<T>(kind: ErrorKind, what: &'static str) -> Result<T, ResponseError> {
    Err(ResponseError { kind, what })
}

/// How far a `feed` got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The response is not complete; feed again with more bytes.
    Partial,
    /// The response is complete and checked. `keep_alive` is false when the
    /// server announced it will close (`Connection: close`, or HTTP/1.0
    /// without keep-alive).
    Complete { keep_alive: bool, status: u16 },
}

/// Where the parser is in the current response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body(BodyDecoder),
}

/// Parses and checks one response after another on one connection: the
/// framing is [`crate::client::framing`]'s, the checks against [`Expect`]
/// are this parser's.
#[derive(Debug)]
pub struct ResponseParser {
    expect: Expect,
    state: State,
    /// Body bytes seen so far in this response.
    body_seen: usize,
    keep_alive: bool,
    status: u16,
    /// Some byte of the current response has been consumed.
    started: bool,
}

impl ResponseParser {
    pub fn new(expect: Expect) -> ResponseParser {
        ResponseParser {
            expect,
            state: State::Head,
            body_seen: 0,
            keep_alive: true,
            status: 0,
            started: false,
        }
    }

    /// Forgets a partial response (after an error or a reconnect).
    pub fn reset(&mut self) {
        *self = ResponseParser::new(self.expect);
    }

    /// Whether part of a response has been consumed: an EOF now is
    /// `EofMidResponse`, not `EofBeforeResponse`.
    pub fn in_response(&self) -> bool {
        self.started
    }

    /// Consumes what it can of `buf`. Returns the bytes consumed and whether
    /// the response is complete; after `Complete` the next call starts the
    /// next response. Unconsumed bytes must be fed again with more behind them.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(usize, Progress), ResponseError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                State::Head => {
                    if rest.is_empty() {
                        return Ok((pos, Progress::Partial));
                    }
                    match self.parse_head(rest)? {
                        None => return Ok((pos, Progress::Partial)),
                        Some(n) => {
                            self.started = true;
                            pos += n;
                        }
                    }
                }
                State::Body(mut decoder) => {
                    let (expect, body_seen) = (self.expect.body, &mut self.body_seen);
                    let fed = decoder.feed(rest, |bytes| check_body(expect, body_seen, bytes));
                    self.state = State::Body(decoder);
                    let (n, done) = fed?;
                    pos += n;
                    if !done {
                        return Ok((pos, Progress::Partial));
                    }
                    if let Some(want) = expect.expected_len() {
                        if self.body_seen < want {
                            return fail(ErrorKind::ShortBody, "body shorter than expected");
                        }
                    }
                    return Ok((pos, self.complete()));
                }
            }
        }
    }

    fn complete(&mut self) -> Progress {
        let done = Progress::Complete {
            keep_alive: self.keep_alive,
            status: self.status,
        };
        self.reset();
        done
    }

    /// Parses and checks a complete head at the start of `buf`; `None` when
    /// incomplete.
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<usize>, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head_request = matches!(self.expect.body, BodyCheck::Head(_));
        let Some(head) = framing::parse_head(buf, &mut headers, head_request)? else {
            return Ok(None);
        };
        if head.is_interim() {
            return Ok(Some(head.len));
        }
        if let Some(want) = self.expect.status {
            if head.minor_version != 1 || head.status != want {
                return fail(ErrorKind::BadStatus, "status line is not HTTP/1.1 200");
            }
        }
        if let BodyCheck::Head(want) = self.expect.body {
            if head.content_length.is_some_and(|len| len != want) {
                return fail(ErrorKind::WrongBody, "HEAD Content-Length is not GET's");
            }
        }
        if let (BodyFraming::Length(len), Some(want)) =
            (head.framing, self.expect.body.expected_len())
        {
            if len < want {
                return fail(ErrorKind::ShortBody, "Content-Length shorter than expected");
            }
            if len > want {
                return fail(ErrorKind::WrongBody, "Content-Length longer than expected");
            }
        }
        self.status = head.status;
        self.keep_alive = head.keep_alive;
        self.body_seen = 0;
        self.state = State::Body(BodyDecoder::new(head.framing));
        Ok(Some(head.len))
    }
}

impl From<FramingError> for ResponseError {
    /// A broken status line is counted as a bad status, all else as bad framing.
    fn from(e: FramingError) -> ResponseError {
        let kind = match e {
            FramingError::StatusLine => ErrorKind::BadStatus,
            _ => ErrorKind::BadFraming,
        };
        ResponseError {
            kind,
            what: e.what(),
        }
    }
}

/// Checks the body bytes at `*body_seen` against `expect`, and counts them.
#[inline]
fn check_body(expect: BodyCheck, body_seen: &mut usize, bytes: &[u8]) -> Result<(), ResponseError> {
    let off = *body_seen;
    let end = off + bytes.len();
    match expect {
        BodyCheck::Any => {}
        BodyCheck::Head(_) => {
            return fail(ErrorKind::WrongBody, "body bytes after a HEAD response")
        }
        BodyCheck::Length(n) => {
            if end > n {
                return fail(ErrorKind::WrongBody, "body longer than expected");
            }
        }
        BodyCheck::Exact(want) => {
            if end > want.len() {
                return fail(ErrorKind::WrongBody, "body longer than expected");
            }
            if bytes != &want[off..end] {
                return fail(ErrorKind::WrongBody, "body bytes differ");
            }
        }
        BodyCheck::Echo(n) => {
            if end > n {
                return fail(ErrorKind::WrongBody, "echoed body longer than sent");
            }
            if !matches_echo(off, bytes) {
                return fail(ErrorKind::WrongBody, "echoed body bytes differ");
            }
        }
    }
    *body_seen = end;
    Ok(())
}

/// 26 periods of the echo pattern, enough to compare in slices.
static ECHO_PERIODS: [u8; 26 * 64] = {
    let mut b = [0u8; 26 * 64];
    let mut i = 0;
    while i < b.len() {
        b[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    b
};

fn matches_echo(mut off: usize, mut bytes: &[u8]) -> bool {
    let span = 26 * 63;
    while !bytes.is_empty() {
        let start = off % 26;
        let n = bytes.len().min(span);
        if bytes[..n] != ECHO_PERIODS[start..start + n] {
            return false;
        }
        bytes = &bytes[n..];
        off += n;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: Expect = Expect {
        status: Some(200),
        body: BodyCheck::Exact(b"Hello, World!"),
    };

    /// Feeds `wire` in pieces of `step` bytes the way a connection does,
    /// keeping the unconsumed tail; returns each response's outcome.
    fn run(expect: Expect, wire: &[u8], step: usize) -> Vec<Result<Progress, ErrorKind>> {
        let mut p = ResponseParser::new(expect);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match p.feed(&buf) {
                    Ok((n, prog)) => {
                        buf.drain(..n);
                        if let Progress::Complete { .. } = prog {
                            out.push(Ok(prog));
                            continue;
                        }
                        break;
                    }
                    Err(e) => {
                        out.push(Err(e.kind));
                        return out;
                    }
                }
            }
        }
        out
    }

    macro_rules! cases {
        ($($name:ident: $expect:expr, $wire:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                for step in [1, 3, 7, 4096] {
                    assert_eq!(run($expect, $wire, step), $want, "fed {step} bytes at a time");
                }
            }
        )*};
    }

    const OK: Progress = Progress::Complete {
        keep_alive: true,
        status: 200,
    };

    cases! {
        hello_with_content_length_passes: HELLO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!" => vec![Ok(OK)];
        pipelined_responses_are_split_at_their_lengths: HELLO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, World!"
            => vec![Ok(OK), Ok(OK)];
        chunked_hello_passes: HELLO,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n8;x=y\r\n, World!\r\n0\r\nX-T: 1\r\n\r\n" => vec![Ok(OK)];
        status_500_is_bad_status: HELLO,
            b"HTTP/1.1 500 Oops\r\nContent-Length: 13\r\n\r\nHello, World!" => vec![Err(ErrorKind::BadStatus)];
        http_1_0_is_bad_status: HELLO,
            b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!" => vec![Err(ErrorKind::BadStatus)];
        short_content_length_is_short_body: HELLO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello" => vec![Err(ErrorKind::ShortBody)];
        long_content_length_is_wrong_body: HELLO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nHello, World!" => vec![Err(ErrorKind::WrongBody)];
        different_bytes_are_wrong_body: HELLO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n!dlroW ,olleH" => vec![Err(ErrorKind::WrongBody)];
        reversed_wire_order_is_never_a_request: HELLO,
            b"Hello, World!HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" => vec![Err(ErrorKind::BadStatus)];
        no_framing_is_bad_framing: HELLO,
            b"HTTP/1.1 200 OK\r\n\r\nHello, World!" => vec![Err(ErrorKind::BadFraming)];
        both_framings_are_bad_framing: HELLO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n" => vec![Err(ErrorKind::BadFraming)];
        bad_chunk_size_is_bad_framing: HELLO,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" => vec![Err(ErrorKind::BadFraming)];
        short_chunked_body_is_short_body: HELLO,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n0\r\n\r\n" => vec![Err(ErrorKind::ShortBody)];
        connection_close_is_reported: HELLO,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nHello, World!"
            => vec![Ok(Progress::Complete { keep_alive: false, status: 200 })];
        interim_100_is_skipped: HELLO,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!" => vec![Ok(OK)];
        length_check_ignores_content: Expect { status: Some(200), body: BodyCheck::Length(4) },
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x00\xff\x01z" => vec![Ok(OK)];
        echo_pattern_passes: Expect { status: Some(200), body: BodyCheck::Echo(30) },
            b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nabcdefghijklmnopqrstuvwxyzabcd" => vec![Ok(OK)];
        echo_pattern_mismatch_is_wrong_body: Expect { status: Some(200), body: BodyCheck::Echo(30) },
            b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nabcdefghijklmnopqrstuvwxyzabce" => vec![Err(ErrorKind::WrongBody)];
        head_responses_carry_no_body: Expect { status: Some(200), body: BodyCheck::Head(67_108_864) },
            b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n"
            => vec![Ok(OK), Ok(OK)];
        head_length_other_than_get_is_wrong_body: Expect { status: Some(200), body: BodyCheck::Head(67_108_864) },
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" => vec![Err(ErrorKind::WrongBody)];
        any_accepts_404_with_body: Expect { status: None, body: BodyCheck::Any },
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop"
            => vec![Ok(Progress::Complete { keep_alive: true, status: 404 })];
    }

    #[test]
    fn long_echo_body_is_checked_across_feeds() {
        let n = 100_000;
        let mut wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
        wire.extend((0..n).map(echo_byte));
        let expect = Expect {
            status: Some(200),
            body: BodyCheck::Echo(n),
        };
        assert_eq!(run(expect, &wire, 1000), vec![Ok(OK)]);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        assert_eq!(run(expect, &wire, 999), vec![Err(ErrorKind::WrongBody)]);
    }

    #[test]
    fn partial_head_consumes_nothing_and_marks_no_response() {
        let mut p = ResponseParser::new(HELLO);
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nCont").unwrap(),
            (0, Progress::Partial)
        );
        assert!(!p.in_response());
        let (n, prog) = p
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHel")
            .unwrap();
        assert_eq!(prog, Progress::Partial);
        assert_eq!(n, 42);
        assert!(p.in_response());
    }

    #[test]
    fn error_counts_display_only_nonzero_kinds() {
        let mut e = ErrorCounts::default();
        assert_eq!(e.to_string(), "none");
        e.add(ErrorKind::BadStatus, 3);
        e.add(ErrorKind::Timeout, 1);
        assert_eq!(e.to_string(), "bad_status=3 timeout=1");
        assert_eq!(e.total(), 4);
    }
}
