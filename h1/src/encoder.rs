//! Writes responses: status line, headers, framing, body.
//!
//! The encoder owns the framing headers (Content-Length, Transfer-Encoding,
//! Connection) and Date, so a response always carries exactly one framing
//! and a Date (RFC 9110 6.6.1), whatever the handler does. Everything is
//! appended to a caller's `Vec<u8>`, which a connection reuses: with enough
//! capacity, encoding allocates nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::date::HttpDate;
use crate::error::{DecodeError, EncodeError};
use crate::status::status_reason;
use crate::token::{is_field_value, is_token};
use crate::version::Version;

/// What the encoder needs to know about the request being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeContext<'d> {
    /// The current `Date` value.
    pub date: &'d HttpDate,
    /// The request's version: an HTTP/1.0 client needs keep-alive spelled
    /// out and cannot read chunked.
    pub version: Version,
    /// Keep the connection open after this response; `false` writes
    /// `Connection: close` (and the caller closes after sending).
    pub keep_alive: bool,
    /// The request was HEAD: headers as for GET, no body.
    pub head_request: bool,
}

impl EncodeContext<'_> {
    /// Whether the connection stays open after a streamed response started
    /// with [`encode_chunked_head`]: an HTTP/1.0 client's streamed body ends
    /// when the connection closes.
    #[must_use]
    pub fn stream_keeps_alive(&self) -> bool {
        self.keep_alive && self.version == Version::Http11
    }
}

/// Header names the encoder writes itself.
const RESERVED: [&str; 4] = ["Content-Length", "Transfer-Encoding", "Connection", "Date"];

/// RFC 9110 6.4.1: 1xx, 204 and 304 responses end at their header section.
fn has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// Response header fields checked once and kept encoded, for the fields a
/// handler sends on every response (a Content-Type, a Server, a
/// Cache-Control): [`encode_response_prepared`] copies them as one block,
/// where a list passed to [`encode_response`] is checked and written field
/// by field on every response (callgrind: about 230 of the 570
/// instructions the encoder spent on a one-field `200 OK`).
#[derive(Debug, Clone)]
pub struct PreparedHeaders {
    /// `Name: value\r\n` for each field, in the order given.
    encoded: Box<[u8]>,
    /// Names this set of fields in a [`HeadCache`] key: a number never
    /// given to another `PreparedHeaders` (a clone keeps it, with the same
    /// bytes), so a cached head is never reused for other fields, even
    /// ones that reuse the freed memory of these.
    id: u64,
}

/// Equal when the encoded fields are.
impl PartialEq for PreparedHeaders {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for PreparedHeaders {}

static NEXT_PREPARED_ID: AtomicU64 = AtomicU64::new(0);

impl PreparedHeaders {
    /// Checks `headers` as [`encode_response`] does (a token for a name,
    /// no CR, LF or NUL in a value, none of the fields the encoder writes
    /// itself) and encodes them.
    pub fn new(headers: &[(&str, &[u8])]) -> Result<Self, EncodeError> {
        check_headers(headers)?;
        let mut encoded = Vec::with_capacity(fields_len(headers));
        write_fields(&mut encoded, headers);
        Ok(PreparedHeaders {
            encoded: encoded.into_boxed_slice(),
            id: NEXT_PREPARED_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The fields as they go on the wire.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }
}

/// A response's own header fields, as the handler gave them.
#[derive(Clone, Copy)]
enum Fields<'a> {
    /// Not yet checked.
    List(&'a [(&'a str, &'a [u8])]),
    /// Checked when prepared.
    Prepared(&'a PreparedHeaders),
}

impl Fields<'_> {
    fn check(self) -> Result<(), EncodeError> {
        match self {
            Fields::List(headers) => check_headers(headers),
            Fields::Prepared(_) => Ok(()),
        }
    }

    fn encoded_len(self) -> usize {
        match self {
            Fields::List(headers) => fields_len(headers),
            Fields::Prepared(prepared) => prepared.encoded.len(),
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Fields::List(headers) => write_fields(out, headers),
            Fields::Prepared(prepared) => out.extend_from_slice(&prepared.encoded),
        }
    }
}

fn fields_len(headers: &[(&str, &[u8])]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum()
}

fn write_fields(out: &mut Vec<u8>, headers: &[(&str, &[u8])]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes a complete response with a `Content-Length` body.
///
/// Writes the status line (always `HTTP/1.1`: RFC 9110 6.2, a server sends
/// its own highest version), the caller's headers, `Date`, `Content-Length`
/// (not for 1xx/204/304, RFC 9110 8.6), `Connection: close` when
/// `!keep_alive`, `Connection: keep-alive` for a keep-alive HTTP/1.0 client
/// (RFC 9112 C.2.2), the empty line and the body. For a HEAD request the
/// body is left out but Content-Length still gives its length (RFC 9110
/// 9.3.2). A 1xx response gets no Connection header: the final response
/// that follows decides.
///
/// On error `out` is left as it was.
pub fn encode_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
    ctx: &EncodeContext<'_>,
) -> Result<(), EncodeError> {
    write_response(out, status, Fields::List(headers), body, ctx)
}

/// [`encode_response`] with fields checked beforehand: the same bytes as
/// `encode_response` with the list the fields were prepared from.
pub fn encode_response_prepared(
    out: &mut Vec<u8>,
    status: u16,
    headers: &PreparedHeaders,
    body: &[u8],
    ctx: &EncodeContext<'_>,
) -> Result<(), EncodeError> {
    write_response(out, status, Fields::Prepared(headers), body, ctx)
}

/// The last head [`encode_response_cached`] wrote, to copy whole while
/// responses keep having the same status, prepared fields, body length,
/// Date and connection handling: a route that answers the same kind of
/// response (a health check, a fixed page, an API's typical reply) then
/// formats its head once a second instead of once a request (callgrind:
/// about 190 of the 310 instructions a `200 OK` with one prepared field
/// took). One per connection-owning thread; a few hundred bytes.
#[derive(Debug, Default)]
pub struct HeadCache {
    /// What `head` was written for; `None` until the first success.
    key: Option<HeadKey>,
    head: Vec<u8>,
}

/// Everything the bytes of a sized head depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadKey {
    fields: u64,
    status: u16,
    body_len: u64,
    version: Version,
    keep_alive: bool,
    date: HttpDate,
}

/// [`encode_response_prepared`], copying the head from `cache` when it
/// holds one written for the same status, fields, body length, Date and
/// connection handling, and keeping the head it writes otherwise. The same
/// bytes as `encode_response_prepared`; on error `out` is left as it was
/// and the cache is emptied.
pub fn encode_response_cached(
    out: &mut Vec<u8>,
    status: u16,
    headers: &PreparedHeaders,
    body: &[u8],
    ctx: &EncodeContext<'_>,
    cache: &mut HeadCache,
) -> Result<(), EncodeError> {
    let key = HeadKey {
        fields: headers.id,
        status,
        body_len: body.len() as u64,
        version: ctx.version,
        keep_alive: ctx.keep_alive,
        date: *ctx.date,
    };
    if cache.key != Some(key) {
        // Emptied first, so a refused response leaves no stale head keyed.
        cache.key = None;
        cache.head.clear();
        write_sized_head(
            &mut cache.head,
            status,
            Fields::Prepared(headers),
            key.body_len,
            ctx,
        )?;
        cache.key = Some(key);
    }
    out.extend_from_slice(&cache.head);
    if has_body(status) && !ctx.head_request {
        out.extend_from_slice(body);
    }
    Ok(())
}

fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    fields: Fields<'_>,
    body: &[u8],
    ctx: &EncodeContext<'_>,
) -> Result<(), EncodeError> {
    write_sized_head(out, status, fields, body.len() as u64, ctx)?;
    if has_body(status) && !ctx.head_request {
        out.extend_from_slice(body);
    }
    Ok(())
}

/// Writes the head of a response whose body of `body_len` bytes the caller
/// appends itself (or, for a HEAD request or a 1xx/204/304 status, does
/// not: [`sized_body_expected`] says which). Lets a body be written straight
/// into `out` instead of being built elsewhere and copied.
///
/// The same headers as [`encode_response`]; on error `out` is left as it was.
pub fn encode_sized_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    body_len: u64,
    ctx: &EncodeContext<'_>,
) -> Result<(), EncodeError> {
    write_sized_head(out, status, Fields::List(headers), body_len, ctx)
}

fn write_sized_head(
    out: &mut Vec<u8>,
    status: u16,
    fields: Fields<'_>,
    body_len: u64,
    ctx: &EncodeContext<'_>,
) -> Result<(), EncodeError> {
    check_status(status)?;
    if !has_body(status) && body_len != 0 {
        return Err(EncodeError::BodyNotAllowed(status));
    }
    fields.check()?;
    write_head_start(out, status, fields, ctx.date);
    if has_body(status) {
        out.extend_from_slice(b"Content-Length: ");
        write_decimal(out, body_len);
        out.extend_from_slice(b"\r\n");
    }
    if status >= 200 {
        write_connection(out, ctx.version, ctx.keep_alive);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Whether the body announced by [`encode_sized_head`] goes on the wire:
/// not for a HEAD request (RFC 9110 9.3.2) nor a 1xx, 204 or 304 status.
#[must_use]
pub fn sized_body_expected(status: u16, ctx: &EncodeContext<'_>) -> bool {
    has_body(status) && !ctx.head_request
}

/// Writes the head of a response whose body is streamed.
///
/// For an HTTP/1.1 client: `Transfer-Encoding: chunked`, then send the body
/// with [`encode_chunk`] and end it with [`encode_last_chunk`].
///
/// An HTTP/1.0 client cannot read chunked (RFC 9112 6.1), so the body is
/// delimited by closing the connection (RFC 9112 6.3 rule 8): the head gets
/// `Connection: close` and no Transfer-Encoding, the body bytes are sent as
/// they are, and the connection is closed after them.
/// [`encode_stream_data`] and [`encode_stream_end`] pick the right framing,
/// and [`EncodeContext::stream_keeps_alive`] tells whether to close.
///
/// For a HEAD request the head is the same (RFC 9110 9.3.2) and no body
/// follows. A status that has no body (1xx, 204, 304) is an error.
pub fn encode_chunked_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    ctx: &EncodeContext<'_>,
) -> Result<(), EncodeError> {
    check_status(status)?;
    if !has_body(status) {
        return Err(EncodeError::BodyNotAllowed(status));
    }
    check_headers(headers)?;
    write_head_start(out, status, Fields::List(headers), ctx.date);
    match ctx.version {
        Version::Http11 => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            write_connection(out, Version::Http11, ctx.keep_alive);
        }
        Version::Http10 => write_connection(out, Version::Http10, false),
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Writes one chunk (RFC 9112 7.1). Empty data writes nothing: a
/// zero-size chunk would end the body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_hex(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Ends a chunked body: the last chunk and an empty trailer section.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// A piece of a streamed body in the framing [`encode_chunked_head`] chose:
/// a chunk for HTTP/1.1, the bytes as they are for HTTP/1.0, nothing for a
/// HEAD request.
pub fn encode_stream_data(out: &mut Vec<u8>, ctx: &EncodeContext<'_>, data: &[u8]) {
    match (ctx.head_request, ctx.version) {
        (true, _) => {}
        (false, Version::Http11) => encode_chunk(out, data),
        (false, Version::Http10) => out.extend_from_slice(data),
    }
}

/// Ends a streamed body: the last chunk for HTTP/1.1; nothing for HTTP/1.0
/// (closing the connection ends it) or a HEAD request.
pub fn encode_stream_end(out: &mut Vec<u8>, ctx: &EncodeContext<'_>) {
    if !ctx.head_request && ctx.version == Version::Http11 {
        encode_last_chunk(out);
    }
}

/// `HTTP/1.1 100 Continue`: the client may send the body it announced with
/// `Expect: 100-continue` (RFC 9110 10.1.1, 15.2.1).
pub fn encode_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// The answer to a rejected request: its status, a short text body, and
/// `Connection: close`, since the stream cannot be framed any further.
pub fn encode_error(out: &mut Vec<u8>, err: &DecodeError, date: &HttpDate) {
    let reason = err.reason().as_bytes();
    write_head_start(out, err.status(), Fields::List(&[]), date);
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: ");
    write_decimal(out, reason.len() as u64 + 1);
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\n");
}

fn check_status(status: u16) -> Result<(), EncodeError> {
    if (100..=599).contains(&status) {
        Ok(())
    } else {
        Err(EncodeError::InvalidStatus(status))
    }
}

/// Every check happens before the first byte is written, so a failure
/// leaves `out` untouched.
fn check_headers(headers: &[(&str, &[u8])]) -> Result<(), EncodeError> {
    for (index, (name, value)) in headers.iter().enumerate() {
        if !is_token(name.as_bytes()) {
            return Err(EncodeError::InvalidHeaderName { index });
        }
        if let Some(reserved) = RESERVED
            .iter()
            .find(|r| r.len() == name.len() && r.eq_ignore_ascii_case(name))
        {
            return Err(EncodeError::ReservedHeader {
                index,
                name: reserved,
            });
        }
        if !is_field_value(value) {
            return Err(EncodeError::InvalidHeaderValue { index });
        }
    }
    Ok(())
}

/// Status line, the caller's headers, Date.
fn write_head_start(out: &mut Vec<u8>, status: u16, fields: Fields<'_>, date: &HttpDate) {
    // One reservation for the whole head, so each append below stays on
    // its no-grow path: the longest status line, Date and the framing
    // headers the callers add after this are well under 160 bytes.
    out.reserve(160 + fields.encoded_len());
    match common_status_line(status) {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            write_decimal(out, u64::from(status));
            out.push(b' ');
            out.extend_from_slice(status_reason(status).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    fields.write(out);
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The whole status line of the statuses nearly every response has, as one
/// constant: one copy instead of formatting the code and looking up the
/// reason on every response (callgrind: about 100 instructions per
/// response). The `common_status_lines_match_the_formatted_ones` test keeps
/// them equal to what the general path writes.
fn common_status_line(status: u16) -> Option<&'static [u8]> {
    Some(match status {
        200 => b"HTTP/1.1 200 OK\r\n",
        201 => b"HTTP/1.1 201 Created\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        503 => b"HTTP/1.1 503 Service Unavailable\r\n",
        _ => return None,
    })
}

fn write_connection(out: &mut Vec<u8>, version: Version, keep_alive: bool) {
    match (keep_alive, version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        // RFC 9112 9.3: persistence is HTTP/1.1's default.
        (true, Version::Http11) => {}
    }
}

fn write_decimal(out: &mut Vec<u8>, n: u64) {
    // Most lengths and every status fit in three digits: written without
    // the general loop's divisions and its variable-length copy.
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    if n < 100 {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    let mut n = n;
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn write_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n % 16) as usize];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_hex_digits() {
        let mut out = Vec::new();
        write_decimal(&mut out, 0);
        out.push(b' ');
        write_decimal(&mut out, u64::MAX);
        out.push(b' ');
        write_hex(&mut out, 0);
        out.push(b' ');
        write_hex(&mut out, 0x1a2b);
        out.push(b' ');
        write_hex(&mut out, u64::MAX);
        assert_eq!(
            out,
            b"0 18446744073709551615 0 1a2b ffffffffffffffff".to_vec()
        );
        for n in [7, 10, 42, 99, 100, 12345] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn common_status_lines_match_the_formatted_ones() {
        let mut common = 0;
        for status in 100..=599 {
            if let Some(line) = common_status_line(status) {
                let formatted = format!("HTTP/1.1 {status} {}\r\n", status_reason(status));
                assert_eq!(line, formatted.as_bytes(), "{status}");
                common += 1;
            }
        }
        assert_eq!(common, 11);
    }
}
