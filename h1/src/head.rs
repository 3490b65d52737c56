//! A parsed request head: where its parts are, what it means for the
//! connection, and the checks a head must pass before its body is read.

use std::ops::Range;

use crate::error::DecodeError;
use crate::framing::{body_kind, BodyKind};
use crate::limits::Limits;
use crate::token::list_elements;
use crate::version::Version;

/// The longest head whose parts a [`Span`] can locate: the head reader never
/// looks further, whatever `max_head_bytes` says (4 GiB, far past any
/// sensible limit).
pub(crate) const MAX_SPANNED_HEAD: usize = u32::MAX as usize;

/// Where a part of a head is, in bytes from the head's first byte. Offsets
/// rather than slices, so nothing borrows the input across feeds; `u32`
/// rather than `usize` (a head is at most [`MAX_SPANNED_HEAD`] bytes), so a
/// parsed head's record is half the size: it is moved on every request and
/// boxed with every connection that has one in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `range` lies within the first [`MAX_SPANNED_HEAD`] bytes.
    pub(crate) fn new(range: Range<usize>) -> Span {
        debug_assert!(range.start <= range.end && range.end <= MAX_SPANNED_HEAD);
        Span {
            start: range.start as u32,
            end: range.end as u32,
        }
    }

    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    pub(crate) fn start(self) -> usize {
        self.start as usize
    }

    pub(crate) fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// Where a header's name and value are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldSpan {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

/// Where the request line's parts are, from the parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadLayout {
    /// Bytes from the head's first byte through its empty line.
    pub(crate) len: usize,
    pub(crate) method: Span,
    pub(crate) target: Span,
    pub(crate) version: Version,
}

/// A head that passed every check, and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadInfo {
    pub(crate) layout: HeadLayout,
    /// `None` for an absolute-form target without a path: RFC 9110 4.2.3
    /// says an empty path means "/".
    path: Option<Span>,
    query: Option<Span>,
    keep_alive: bool,
    expect_continue: bool,
    body_kind: BodyKind,
    /// The method, when it is one of [`KNOWN_METHODS`]: handed out as
    /// that constant, with no UTF-8 check per call.
    known_method: Option<KnownMethod>,
}

/// Index into [`KNOWN_METHODS`]; one byte, so `HeadInfo` does not grow.
type KnownMethod = u8;

/// The methods of RFC 9110 9.3 plus PATCH (RFC 5789).
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

const KNOWN_HEAD: Option<KnownMethod> = Some(1);
const _: () = assert!(matches!(KNOWN_METHODS[1].as_bytes(), b"HEAD"));

fn known_method(method: &[u8]) -> Option<KnownMethod> {
    KNOWN_METHODS
        .iter()
        .position(|m| m.as_bytes() == method)
        .map(|i| i as KnownMethod)
}

impl HeadInfo {
    pub(crate) fn body_kind(&self) -> BodyKind {
        self.body_kind
    }
}

/// Checks a complete head and works out its meaning. `head` is the head's
/// bytes, `fields` its header positions.
pub(crate) fn analyze(
    head: &[u8],
    layout: HeadLayout,
    fields: &[FieldSpan],
    limits: &Limits,
) -> Result<HeadInfo, DecodeError> {
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| {
                // Length first: most fields are none of the five looked for.
                f.name.len() == name.len()
                    && head[f.name.range()].eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|f| &head[f.value.range()])
    };
    let method = &head[layout.method.range()];
    let target = &head[layout.target.range()];
    let (path, query) = target_parts(method, target, layout.target.start())?;

    // One pass sorts the fields the decoder acts on, by length first: most
    // fields are none of them, and five filtered passes cost about 400
    // instructions per request (callgrind).
    let mut hosts = 0;
    let mut host: &[u8] = b"";
    let mut has_framing = false;
    let mut option_close = false;
    let mut option_keep_alive = false;
    let mut continue_expected = false;
    for field in fields {
        let name = &head[field.name.range()];
        let value = &head[field.value.range()];
        match name.len() {
            4 if token_is(name, b"host") => {
                hosts += 1;
                host = value;
            }
            14 if token_is(name, b"content-length") => has_framing = true,
            17 if token_is(name, b"transfer-encoding") => has_framing = true,
            // RFC 9112 9.3: Connection is a list of tokens (RFC 9110
            // 7.6.1), over any number of lines.
            10 if token_is(name, b"connection") => {
                for option in list_elements(value) {
                    option_close |= option.eq_ignore_ascii_case(b"close");
                    option_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            6 if token_is(name, b"expect") => {
                continue_expected |=
                    list_elements(value).any(|e| e.eq_ignore_ascii_case(b"100-continue"));
            }
            _ => {}
        }
    }

    // RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request) status
    // code to any HTTP/1.1 request message that lacks a Host header field and
    // to any request message that contains more than one Host header field
    // line or a Host header field with an invalid field value."
    match hosts {
        0 if layout.version == Version::Http11 => return Err(DecodeError::MissingHost),
        1 if !is_valid_host(host) => return Err(DecodeError::InvalidHost),
        0 | 1 => {}
        _ => return Err(DecodeError::DuplicateHost),
    }

    let body_kind = if has_framing {
        body_kind(
            layout.version,
            values("content-length"),
            values("transfer-encoding"),
            limits,
        )?
    } else {
        BodyKind::None
    };

    // RFC 9112 9.3: HTTP/1.1 persists unless "close" is a connection
    // option; HTTP/1.0 persists only with "keep-alive" (RFC 9112 C.2.2).
    let keep_alive = !option_close && (layout.version == Version::Http11 || option_keep_alive);

    // RFC 9110 10.1.1: "A server that receives a 100-continue expectation
    // in an HTTP/1.0 request MUST ignore that expectation." Other
    // expectations are ignored too (the MAY-417 is not taken).
    let expect_continue = layout.version == Version::Http11 && continue_expected;

    Ok(HeadInfo {
        layout,
        path,
        query,
        keep_alive,
        expect_continue,
        body_kind,
        known_method: known_method(method),
    })
}

/// Whether the field name `name`, a token (httparse checked it), is
/// `lowercase` in any case. Setting bit 0x20 lowercases a letter and leaves
/// `-` as it is; the only other byte it would turn into a letter or `-` is
/// a control byte, which no token holds. Cheaper than
/// `eq_ignore_ascii_case`, which lowercases both sides byte by byte.
fn token_is(name: &[u8], lowercase: &[u8]) -> bool {
    debug_assert!(lowercase
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b == b'-'));
    name.len() == lowercase.len() && name.iter().zip(lowercase).all(|(&a, &b)| a | 0x20 == b)
}

type TargetParts = (Option<Span>, Option<Span>);

/// Splits the target into path and query after checking its form
/// (RFC 9112 3.2). `at` is the target's offset in the head.
fn target_parts(method: &[u8], target: &[u8], at: usize) -> Result<TargetParts, DecodeError> {
    let abs = |r: Range<usize>| Span::new(r.start + at..r.end + at);
    if method == b"CONNECT" {
        // RFC 9112 3.2.3: authority-form, only for CONNECT.
        if !is_valid_host(target) {
            return Err(DecodeError::InvalidTarget);
        }
        return Ok((Some(abs(0..target.len())), None));
    }
    if target == b"*" {
        // RFC 9112 3.2.4: asterisk-form, only for a server-wide OPTIONS.
        if method != b"OPTIONS" {
            return Err(DecodeError::InvalidTarget);
        }
        return Ok((Some(abs(0..1)), None));
    }
    let path_start = if target.starts_with(b"/") {
        // RFC 9112 3.2.1: origin-form.
        0
    } else {
        // RFC 9112 3.2.2: absolute-form, scheme "://" authority path.
        let scheme_len = target
            .iter()
            .position(|&b| b == b':')
            .ok_or(DecodeError::InvalidTarget)?;
        let scheme = &target[..scheme_len];
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok || !target[scheme_len..].starts_with(b"://") {
            return Err(DecodeError::InvalidTarget);
        }
        let authority_start = scheme_len + 3;
        target[authority_start..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .map_or(target.len(), |i| authority_start + i)
    };
    // A client does not send a fragment (RFC 9110 4.2.5); if one arrives it
    // belongs to neither path nor query.
    let end = target
        .iter()
        .position(|&b| b == b'#')
        .unwrap_or(target.len());
    let (path_end, query) = match target[path_start..end].iter().position(|&b| b == b'?') {
        Some(q) => (path_start + q, Some(abs(path_start + q + 1..end))),
        None => (end, None),
    };
    let path = (path_end > path_start).then(|| abs(path_start..path_end));
    Ok((path, query))
}

/// RFC 9110 7.2: `Host = uri-host [ ":" port ]`, where uri-host is an
/// IP-literal, an IPv4 address or a reg-name (RFC 3986 3.2.2). This accepts
/// their alphabet (unreserved, pct-encoded, sub-delims, ":" and brackets);
/// that keeps out whitespace, "/", "@" and control bytes, which is what makes
/// a Host value dangerous when echoed into URLs and logs. An empty value is
/// valid (RFC 9110 7.2: a target URI without authority).
fn is_valid_host(v: &[u8]) -> bool {
    // No early exit: a branch per byte costs more than stopping early on
    // the rare invalid value saves (callgrind: about 35 of the instructions
    // spent on a 15-byte Host).
    v.iter()
        .fold(true, |valid, &b| valid & HOST_BYTE[usize::from(b)])
}

/// The bytes `is_valid_host` allows, as a table: one load per byte where
/// the ranges and the list cost a dozen compares (every request's Host is
/// checked).
static HOST_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric()
            || matches!(
                b as u8,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            );
        b += 1;
    }
    table
};

/// A complete request head, borrowed from the decoder.
///
/// Valid from [`Event::HeadComplete`](crate::Event::HeadComplete) until the
/// `poll` after [`Event::RequestComplete`](crate::Event::RequestComplete).
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    bytes: &'a [u8],
    info: &'a HeadInfo,
    fields: &'a [FieldSpan],
}

impl<'a> RequestHead<'a> {
    pub(crate) fn new(bytes: &'a [u8], info: &'a HeadInfo, fields: &'a [FieldSpan]) -> Self {
        RequestHead {
            bytes,
            info,
            fields,
        }
    }

    /// httparse checked these parts are tokens or UTF-8 before they were
    /// recorded, so the conversion cannot fail; "" is never returned.
    fn str_at(&self, span: Span) -> &'a str {
        std::str::from_utf8(&self.bytes[span.range()]).unwrap_or("")
    }

    /// The method, case-sensitive (RFC 9110 9.1).
    #[must_use]
    pub fn method(&self) -> &'a str {
        if let Some(known) = self.info.known_method {
            return KNOWN_METHODS[usize::from(known)];
        }
        self.str_at(self.info.layout.method)
    }

    /// The request-target as sent.
    #[must_use]
    pub fn target(&self) -> &'a str {
        self.str_at(self.info.layout.target)
    }

    /// The path: for origin-form the target before `?`; for absolute-form
    /// the path part of the URI ("/" when it has none); "*" for
    /// asterisk-form; the authority for CONNECT's authority-form.
    #[must_use]
    pub fn path(&self) -> &'a str {
        match self.info.path {
            Some(span) => self.str_at(span),
            None => "/",
        }
    }

    /// The query after `?`, without it; `None` when there is no `?`.
    #[must_use]
    pub fn query(&self) -> Option<&'a str> {
        self.info.query.map(|span| self.str_at(span))
    }

    /// The HTTP version named in the request line.
    #[must_use]
    pub fn version(&self) -> Version {
        self.info.layout.version
    }

    /// The header lines in order, values without surrounding whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.fields.iter().map(move |f| {
            (
                std::str::from_utf8(&bytes[f.name.range()]).unwrap_or(""),
                &bytes[f.value.range()],
            )
        })
    }

    /// The first header named `name`, compared ASCII case-insensitively
    /// (RFC 9110 5.1).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether the connection may carry another request after this one.
    #[must_use]
    pub fn keep_alive(&self) -> bool {
        self.info.keep_alive
    }

    /// HTTP/1.1 `Expect: 100-continue`: send 100 before reading the body.
    #[must_use]
    pub fn expect_continue(&self) -> bool {
        self.info.expect_continue
    }

    /// Method HEAD: the response carries the headers of a GET but no body
    /// (RFC 9110 9.3.2).
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.info.known_method == KNOWN_HEAD
    }

    /// How the request body is framed.
    #[must_use]
    pub fn body_kind(&self) -> BodyKind {
        self.info.body_kind
    }
}

impl std::fmt::Debug for RequestHead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version())
            .field("headers", &self.fields.len())
            .field("body_kind", &self.body_kind())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_are_found_at_their_index() {
        for (index, method) in KNOWN_METHODS.iter().enumerate() {
            assert_eq!(known_method(method.as_bytes()), Some(index as KnownMethod));
            assert_eq!(known_method(method.to_lowercase().as_bytes()), None);
        }
        for other in [&b""[..], b"GE", b"GETS", b"PROPFIND", b"get"] {
            assert_eq!(known_method(other), None);
        }
    }

    #[test]
    fn token_is_agrees_with_eq_ignore_ascii_case_on_every_token() {
        for lowercase in [
            &b"host"[..],
            b"content-length",
            b"transfer-encoding",
            b"connection",
        ] {
            for at in 0..lowercase.len() {
                for b in 0..=255u8 {
                    let mut name = lowercase.to_vec();
                    name[at] = b;
                    if crate::token::is_token(&name) {
                        assert_eq!(
                            token_is(&name, lowercase),
                            name.eq_ignore_ascii_case(lowercase),
                            "{:?}",
                            String::from_utf8_lossy(&name)
                        );
                    }
                }
            }
            assert!(token_is(&lowercase.to_ascii_uppercase(), lowercase));
            assert!(!token_is(&lowercase[1..], lowercase));
        }
    }

    #[test]
    fn host_check_looks_at_every_byte() {
        assert!(is_valid_host(b"127.0.0.1:8080"));
        assert!(is_valid_host(b"[::1]:80"));
        assert!(is_valid_host(b""));
        for bad in [&b" a"[..], b"a b", b"a/b", b"a@b", b"ab\x7f", b"\xffab"] {
            assert!(!is_valid_host(bad), "{bad:?}");
        }
    }
}
