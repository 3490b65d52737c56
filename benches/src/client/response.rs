//! A strict HTTP/1.1 response parser: just enough to check byte for byte
//! what the server put on the wire.
//!
//! Strict on purpose: every response must be framed by `Content-Length` or
//! chunked (ARCHITECTURE.md), lines end in CRLF, and the status line is
//! `HTTP-version SP 3DIGIT SP reason` (RFC 9112 section 4). A server that
//! slips is reported, not tolerated. The framing rules themselves are
//! [`super::framing`]'s, shared with the load client's checker.

use std::io::{self, Read};

use super::framing::{has_token, parse_head, BodyDecoder, FramingError, MAX_HEADERS};

/// Heads larger than this are a runaway, not a response.
const MAX_HEAD: usize = 64 * 1024;

/// One response as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Header fields in arrival order, values with surrounding OWS removed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body with any chunked framing removed.
    pub body: Vec<u8>,
    /// Every byte of the response exactly as it arrived.
    pub raw: Vec<u8>,
}

impl Response {
    /// The first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first field named `name`, as text (lossy).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// How many fields are named `name`.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// Whether a `Connection` field lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .any(|(_, v)| has_token(v, token.as_bytes()))
    }

    /// The raw bytes with the `Date` value replaced by `*`: two answers to the
    /// same request must then be identical, byte for byte.
    pub fn raw_without_date(&self) -> Vec<u8> {
        let head_end = find(&self.raw, b"\r\n\r\n").expect("a parsed response has a head") + 4;
        let mut out = Vec::with_capacity(self.raw.len());
        for line in split_crlf(&self.raw[..head_end - 4]) {
            if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"date:") {
                out.extend_from_slice(b"Date: *");
            } else {
                out.extend_from_slice(line);
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.raw[head_end..]);
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the front of `buf`.
///
/// `Ok(None)`: incomplete, read more. `Ok(Some((response, consumed)))`: a
/// whole response occupying `buf[..consumed]`. `Err`: the bytes are not a
/// well-formed, well-framed HTTP/1.1 response. `head_request`: the request
/// was HEAD, so no body follows whatever the headers say.
///
/// The framing is [`super::framing`]'s, as the load client's; on top of it,
/// what every ringwall response must be: CRLF line ends only, a status line
/// with its reason phrase, one `Content-Length` at most, `chunked` as the
/// only transfer coding, and no framing on an interim answer.
pub fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<(Response, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head = match parse_head(buf, &mut fields, head_request) {
        Ok(Some(head)) => head,
        Ok(None) if buf.len() > MAX_HEAD => {
            return Err(format!("no end of head in {} bytes", buf.len()))
        }
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("{e}: {:?}", lossy(&buf[..buf.len().min(64)]))),
    };
    let head_bytes = &buf[..head.len];
    // RFC 9112 section 2.2 lets a recipient accept a bare LF; ringwall must
    // not send one.
    if !head_bytes.ends_with(b"\r\n\r\n")
        || split_crlf(head_bytes).any(|l| l.contains(&b'\r') || l.contains(&b'\n'))
    {
        return Err(format!(
            "bare CR or LF in the head: {:?}",
            lossy(head_bytes)
        ));
    }
    let status_line = split_crlf(head_bytes).next().unwrap_or_default();
    // RFC 9112 section 4: `HTTP-version SP status-code SP [ reason-phrase ]`.
    if status_line.get(12) != Some(&b' ') {
        return Err(format!("malformed status line: {:?}", lossy(status_line)));
    }
    let headers: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.trim_ascii().to_vec()))
        .collect();
    let count = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    let lengths = count("content-length");
    if lengths > 1 {
        return Err(format!("response has {lengths} Content-Length fields"));
    }
    if let Some((_, te)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        if !te.eq_ignore_ascii_case(b"chunked") || count("transfer-encoding") > 1 {
            return Err(format!("unexpected Transfer-Encoding: {:?}", lossy(te)));
        }
    }
    let status = head.status;
    if (100..200).contains(&status) && (lengths > 0 || count("transfer-encoding") > 0) {
        return Err(format!("a {status} response carries body framing"));
    }
    let mut body = Vec::new();
    let mut decoder = BodyDecoder::new(head.framing);
    let (used, done) = decoder
        .feed(&buf[head.len..], |piece| {
            body.extend_from_slice(piece);
            Ok::<(), FramingError>(())
        })
        .map_err(|e| e.to_string())?;
    if !done {
        return Ok(None);
    }
    let end = head.len + used;
    let response = Response {
        version: format!("HTTP/1.{}", head.minor_version),
        status,
        reason: head.reason.to_string(),
        headers,
        body,
        raw: buf[..end].to_vec(),
    };
    Ok(Some((response, end)))
}

/// Reads one response off `stream` (a request that was HEAD when
/// `head_request`), leaving whatever follows it unread only if it arrived in
/// a later read. The stream's read timeout bounds each read. `InvalidData`:
/// the bytes are not a well-formed, well-framed response; `UnexpectedEof`:
/// the server closed first.
pub fn read_response(stream: &mut impl Read, head_request: bool) -> io::Result<Response> {
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match parse_response(&received, head_request) {
            Ok(Some((response, _))) => return Ok(response),
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed after {} bytes of a response", received.len()),
                ))
            }
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The lines of a head, split on CRLF only, so a bare CR or LF stays inside
/// a line where it can be caught.
fn split_crlf(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(head);
    std::iter::from_fn(move || {
        let text = rest?;
        match find(text, b"\r\n") {
            Some(i) => {
                rest = Some(&text[i + 2..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// RFC 9110 5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`, the only form a server
/// may generate.
pub fn is_imf_fixdate(value: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let digits = |r: std::ops::Range<usize>| value[r].iter().all(u8::is_ascii_digit);
    value.len() == 29
        && DAYS.contains(&&value[0..3])
        && &value[3..5] == b", "
        && digits(5..7)
        && value[7] == b' '
        && MONTHS.contains(&&value[8..11])
        && value[11] == b' '
        && digits(12..16)
        && value[16] == b' '
        && digits(17..19)
        && value[19] == b':'
        && digits(20..22)
        && value[22] == b':'
        && digits(23..25)
        && &value[25..] == b" GMT"
}

/// The Unix time an IMF-fixdate names, or `None` if it is not one.
pub fn imf_fixdate_unix_secs(value: &[u8]) -> Option<u64> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    if !is_imf_fixdate(value) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> i64 {
        value[r]
            .iter()
            .fold(0, |n, &d| n * 10 + i64::from(d - b'0'))
    };
    let day = num(5..7);
    let month = MONTHS.iter().position(|m| *m == &value[8..11])? as i64 + 1;
    let year = num(12..16);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + num(17..19) * 3600 + num(20..22) * 60 + num(23..25);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    #[test]
    fn content_length_response_parses_and_reports_its_length() {
        let raw = format!("HTTP/1.1 200 OK\r\n{DATE}Content-Length: 5\r\n\r\nhelloHTTP/1.1");
        let (r, used) = parse_response(raw.as_bytes(), false).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(used, raw.len() - "HTTP/1.1".len());
        assert!(is_imf_fixdate(r.header("date").unwrap()));
    }

    #[test]
    fn incomplete_body_asks_for_more() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse_response(raw.as_bytes(), false), Ok(None));
        assert_eq!(parse_response(b"HTTP/1.1 200", false), Ok(None));
    }

    #[test]
    fn head_response_has_no_body_to_read() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let (r, used) = parse_response(raw.as_bytes(), true).unwrap().unwrap();
        assert!(r.body.is_empty());
        assert_eq!(used, raw.len());
    }

    #[test]
    fn chunked_response_is_decoded() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n";
        let (r, used) = parse_response(raw.as_bytes(), false).unwrap().unwrap();
        assert_eq!(r.body, b"hello!");
        assert_eq!(used, raw.len());
    }

    #[test]
    fn unframed_and_malformed_responses_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", false).is_err());
        assert!(parse_response(b"Hello, World!", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false).is_err());
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_response(both, false).is_err());
    }

    #[test]
    fn date_is_masked_for_comparison() {
        let a = format!("HTTP/1.1 200 OK\r\n{DATE}Content-Length: 0\r\n\r\n");
        let b =
            "HTTP/1.1 200 OK\r\nDate: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n";
        let a = parse_response(a.as_bytes(), false).unwrap().unwrap().0;
        let b = parse_response(b.as_bytes(), false).unwrap().unwrap().0;
        assert_ne!(a.raw, b.raw);
        assert_eq!(a.raw_without_date(), b.raw_without_date());
    }

    #[test]
    fn imf_fixdate_converts_to_unix_time() {
        assert_eq!(
            imf_fixdate_unix_secs(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            imf_fixdate_unix_secs(b"Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            imf_fixdate_unix_secs(b"Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
    }

    #[test]
    fn imf_fixdate_rejects_other_forms() {
        assert!(is_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!is_imf_fixdate(b"Sunday, 06-Nov-94 08:49:37 GMT"));
        assert!(!is_imf_fixdate(b"Sun Nov  6 08:49:37 1994"));
        assert!(!is_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 UTC"));
    }
}
