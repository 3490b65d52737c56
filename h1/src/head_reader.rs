//! Finds where a request head ends and parses it with httparse, looking at
//! each byte a bounded number of times however the head is split.
//!
//! A head that arrives whole is parsed once by httparse. A head that arrives
//! in pieces is checked as it grows: the request line by
//! [`RequestLineScanner`], then each new complete header line by
//! `httparse::parse_headers`, one line at a time. When the empty line that
//! ends the head arrives, httparse parses the whole head once more to record
//! where every field is. Only that parse needs header slots, so a head that
//! stays partial holds none.
//!
//! Errors are reported at positions fixed by the byte stream, never by how
//! it was split: inside the request line at the offending byte, in the
//! header section at the end of the offending line, and at `max_head_bytes`
//! when the head has not ended by then. Feeding a stream whole or in pieces
//! therefore ends in the same outcome (the `split_invariance` tests pin it).

use std::mem::MaybeUninit;

use httparse::{Header, Status, EMPTY_HEADER};

use crate::error::DecodeError;
use crate::head::{FieldSpan, HeadLayout, Span, MAX_SPANNED_HEAD};
use crate::limits::Limits;
use crate::request_line::{LineScan, RequestLineScanner};
use crate::token::{is_field_value_byte, is_token};
use crate::version::Version;

/// Progress through one head. All offsets are relative to the head's first
/// byte, so the decoder may move the head within its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadReader {
    line: RequestLineScanner,
    /// The request line has ended; header lines start at `lines_end`.
    line_done: bool,
    /// Offset just past the last header line known to be valid.
    lines_end: usize,
    /// Bytes below this offset contain no LF after `lines_end`.
    searched: usize,
    /// Valid header lines before `lines_end`.
    headers_seen: usize,
    /// No byte of this head has been looked at yet.
    fresh: bool,
}

impl HeadReader {
    pub(crate) const fn new() -> HeadReader {
        HeadReader {
            line: RequestLineScanner::new(),
            line_done: false,
            lines_end: 0,
            searched: 0,
            headers_seen: 0,
            fresh: true,
        }
    }

    /// Looks at the head bytes at hand. `head` starts at the head's first
    /// byte and may run past its end (pipelined requests). On success,
    /// `fields` holds the header positions.
    pub(crate) fn poll(
        &mut self,
        head: &[u8],
        limits: &Limits,
        scratch: &mut Vec<Header<'static>>,
        fields: &mut Vec<FieldSpan>,
    ) -> Result<Option<HeadLayout>, DecodeError> {
        if head.is_empty() {
            return Ok(None);
        }
        // Nothing past max_head_bytes is ever parsed: a head that has not
        // ended within it is 431 (RFC 6585 5), whatever follows.
        let window = &head[..head.len().min(head_limit(limits))];
        if self.fresh {
            self.fresh = false;
            // Fast path: most heads arrive whole, so try one full parse.
            // Only its success is used; a partial or failed parse falls
            // through to the incremental checks, which report errors at
            // split-independent positions. Header slots on the stack, left
            // uninitialised, serve every head with up to STACK_SLOTS fields
            // (a browser sends 10 to 20): no line count beforehand and no
            // heap slots (callgrind: about 150 instructions per request).
            let stack_slots = limits.max_headers.min(STACK_SLOTS);
            match parse_head_on_stack(window, stack_slots, fields) {
                Ok(Some(layout)) => return check_line_bounds(layout, limits, fields).map(Some),
                // More fields than the stack holds: one parse with as many
                // heap slots as the head has lines, if it has ended.
                Err(httparse::Error::TooManyHeaders) if limits.max_headers > STACK_SLOTS => {
                    if let Some(slots) = header_slots(window, limits.max_headers) {
                        if let Ok(Some(layout)) = parse_head(window, slots, scratch, fields) {
                            return check_line_bounds(layout, limits, fields).map(Some);
                        }
                    }
                }
                _ => {}
            }
        }
        if !self.line_done {
            match self.line.advance(window, limits)? {
                LineScan::NeedMore => return self.partial(window, limits),
                LineScan::Done { end } => {
                    self.line_done = true;
                    self.lines_end = end;
                    self.searched = end;
                }
            }
        }
        if let Some(i) = window[self.searched..].iter().rposition(|&b| b == b'\n') {
            let last_lf = self.searched + i;
            // One line at a time, with one header slot on the stack: a head
            // that stays partial (slowloris) then holds no header slots.
            // httparse checks each field line on its own, so this is the
            // verdict it gives on the lines together.
            for line in window[self.lines_end..=last_lf].split_inclusive(|&b| b == b'\n') {
                if matches!(line, b"\n" | b"\r\n") {
                    let head = &window[..self.lines_end + line.len()];
                    // Every line before this one was one valid field line.
                    return match parse_head(head, self.headers_seen, scratch, fields) {
                        Ok(Some(layout)) if layout.len == head.len() => {
                            check_line_bounds(layout, limits, fields).map(Some)
                        }
                        Ok(_) => Err(DecodeError::InvalidRequestLine),
                        Err(e) => Err(request_error(e, head)),
                    };
                }
                if self.headers_seen == limits.max_headers {
                    return Err(DecodeError::TooManyHeaders);
                }
                let mut slot = [EMPTY_HEADER; 1];
                if let Err(e) = httparse::parse_headers(line, &mut slot) {
                    return Err(field_line_error(e, line));
                }
                self.headers_seen += 1;
                self.lines_end += line.len();
            }
        }
        self.searched = window.len();
        self.partial(window, limits)
    }

    fn partial(&self, window: &[u8], limits: &Limits) -> Result<Option<HeadLayout>, DecodeError> {
        if window.len() >= head_limit(limits) {
            Err(DecodeError::HeadTooLarge)
        } else {
            Ok(None)
        }
    }
}

/// Lends `scratch` as `n` empty httparse header slots borrowing from any
/// buffer, and takes it back cleared, keeping its allocation.
///
/// A `Vec<Header<'static>>` cannot hold headers that borrow the input, and
/// `unsafe` is forbidden here. Collecting an emptied `vec::IntoIter` through
/// `map` into a type of the same size and alignment reuses the allocation
/// (std's in-place collect), so this converts the lifetime for free. The
/// `no_alloc` test pins that it stays free.
fn with_slots<'b, R>(
    scratch: &mut Vec<Header<'static>>,
    n: usize,
    f: impl FnOnce(&mut [Header<'b>]) -> R,
) -> R {
    fn recycle<'x, 'y>(mut v: Vec<Header<'x>>) -> Vec<Header<'y>> {
        v.clear();
        v.into_iter().map(|_| EMPTY_HEADER).collect()
    }
    let mut slots = recycle(std::mem::take(scratch));
    slots.resize(n, EMPTY_HEADER);
    let r = f(&mut slots);
    *scratch = recycle(slots);
    r
}

/// How many httparse header slots the head at the start of `bytes` can
/// need: one per line (a field line ends in LF), at most `max`; `None` when
/// no empty line ends a head in `bytes`, so httparse could only say
/// Partial and there is nothing to parse yet. Sizing the slots by the lines
/// present instead of by `max_headers` keeps the scratch small (100 slots
/// are 3.2 KiB), and a head that is still partial gets none: it may be held
/// for the whole header deadline (slowloris). Counting stops at the empty
/// line that ends the head, so pipelined bytes behind it do not inflate the
/// count.
fn header_slots(bytes: &[u8], max: usize) -> Option<usize> {
    // memchr finds each LF a word or a vector at a time: a byte-at-a-time
    // search here cost about 300 instructions per request (callgrind), a
    // quarter of the whole parse.
    let mut lines = 0;
    for at in memchr::memchr_iter(b'\n', bytes) {
        lines += 1;
        if matches!(&bytes[at + 1..], [b'\n', ..] | [b'\r', b'\n', ..]) {
            return Some(lines.min(max));
        }
    }
    None
}

/// `max_head_bytes`, or the longest head a [`Span`] can locate if that is
/// less.
fn head_limit(limits: &Limits) -> usize {
    limits.max_head_bytes.min(MAX_SPANNED_HEAD)
}

/// Header slots the fast path keeps on the stack (32 bytes each, never
/// initialised before httparse writes them).
const STACK_SLOTS: usize = 32;

/// Parses `buf` with httparse, giving it `slots` header slots; when it
/// holds a complete head, records where its parts are (`fields` gets the
/// header positions).
fn parse_head(
    buf: &[u8],
    slots: usize,
    scratch: &mut Vec<Header<'static>>,
    fields: &mut Vec<FieldSpan>,
) -> Result<Option<HeadLayout>, httparse::Error> {
    with_slots(scratch, slots, |slots| {
        let mut req = httparse::Request::new(slots);
        let status = req.parse(buf)?;
        Ok(record_layout(buf, status, &req, fields))
    })
}

/// [`parse_head`] with at most `slots` (up to [`STACK_SLOTS`]) header
/// slots on the stack.
fn parse_head_on_stack(
    buf: &[u8],
    slots: usize,
    fields: &mut Vec<FieldSpan>,
) -> Result<Option<HeadLayout>, httparse::Error> {
    let mut stack = [const { MaybeUninit::<Header<'_>>::uninit() }; STACK_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut stack[..slots])?;
    Ok(record_layout(buf, status, &req, fields))
}

/// Where a complete head's parts are, from httparse's verdict on `buf`.
fn record_layout(
    buf: &[u8],
    status: Status<usize>,
    req: &httparse::Request<'_, '_>,
    fields: &mut Vec<FieldSpan>,
) -> Option<HeadLayout> {
    let base = buf.as_ptr() as usize;
    // `buf` is within the window, so every offset fits a Span.
    let span = |s: &[u8]| -> Span {
        let start = s.as_ptr() as usize - base;
        Span::new(start..start + s.len())
    };
    let Status::Complete(len) = status else {
        return None;
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return None;
    };
    fields.clear();
    fields.extend(req.headers.iter().map(|h| FieldSpan {
        name: span(h.name.as_bytes()),
        value: span(h.value),
    }));
    Some(HeadLayout {
        len,
        method: span(method.as_bytes()),
        target: span(target.as_bytes()),
        version: if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        },
    })
}

/// A method over the limit is 501 (RFC 9110 9.1), a target over it 414
/// (RFC 9112 3). The request-line scanner catches both early on a head that
/// arrives in pieces; a head parsed whole is checked here, method first
/// because the scanner meets the method first.
fn check_line_bounds(
    layout: HeadLayout,
    limits: &Limits,
    fields: &mut Vec<FieldSpan>,
) -> Result<HeadLayout, DecodeError> {
    let error = if layout.method.len() > limits.max_method_bytes {
        DecodeError::MethodTooLong
    } else if layout.target.len() > limits.max_target_bytes {
        DecodeError::TargetTooLong
    } else {
        return Ok(layout);
    };
    fields.clear();
    Err(error)
}

/// Maps an httparse error on a complete head. The request line and every
/// header line have passed the incremental checks by now (unless the fast
/// path found the head whole, in which case there is no error), so what is
/// left is the target's UTF-8 check; the rest is mapped for completeness.
fn request_error(e: httparse::Error, head: &[u8]) -> DecodeError {
    match e {
        httparse::Error::Token => DecodeError::InvalidTarget,
        httparse::Error::Version => DecodeError::InvalidVersion,
        httparse::Error::TooManyHeaders => DecodeError::TooManyHeaders,
        other => field_line_error(other, head),
    }
}

/// Names the rule a header line broke. `lines` is a run of header lines;
/// the first one httparse rejects on its own is the culprit, so the variant
/// does not depend on how many lines were checked together.
fn field_line_error(e: httparse::Error, lines: &[u8]) -> DecodeError {
    if e == httparse::Error::TooManyHeaders {
        return DecodeError::TooManyHeaders;
    }
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let mut one = [EMPTY_HEADER; 1];
        if httparse::parse_headers(line, &mut one).is_err() {
            return classify_line(line).unwrap_or(match e {
                httparse::Error::HeaderValue => DecodeError::InvalidHeaderValue,
                httparse::Error::NewLine => DecodeError::BareCarriageReturn,
                _ => DecodeError::InvalidHeaderName,
            });
        }
    }
    DecodeError::InvalidHeaderName
}

/// Which rule a header line that httparse rejected breaks.
fn classify_line(line: &[u8]) -> Option<DecodeError> {
    // RFC 9112 5.2: obs-fold is a line starting with SP or HTAB.
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Some(DecodeError::ObsFold);
    }
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    // RFC 9112 2.2: a CR anywhere but right before LF is a bare CR.
    if body.contains(&b'\r') {
        return Some(DecodeError::BareCarriageReturn);
    }
    let colon = body.iter().position(|&b| b == b':')?;
    let name = &body[..colon];
    let trimmed = crate::token::trim_ows(name);
    if !name.is_empty() && matches!(name.last(), Some(b' ' | b'\t')) && is_token(trimmed) {
        // RFC 9112 5.1: "No whitespace is allowed between the field name
        // and colon ... a server MUST reject ... with 400".
        return Some(DecodeError::WhitespaceBeforeColon);
    }
    if !is_token(name) {
        return Some(DecodeError::InvalidHeaderName);
    }
    if !body[colon + 1..].iter().all(|&b| is_field_value_byte(b)) {
        return Some(DecodeError::InvalidHeaderValue);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_slots_count_lines_up_to_the_end_of_the_head() {
        let pipelined =
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(header_slots(pipelined, 100), Some(3));
        assert_eq!(header_slots(b"GET / HTTP/1.1\nHost: a\n\n", 100), Some(2));
        assert_eq!(header_slots(b"GET / HTTP/1.1\r\n\r\n", 100), Some(1));
    }

    #[test]
    fn a_head_without_its_empty_line_needs_no_slots() {
        assert_eq!(
            header_slots(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n", 100),
            None
        );
        assert_eq!(header_slots(b"GET / HTTP/1.1\r\nHo", 100), None);
        assert_eq!(header_slots(b"GET / HT", 100), None);
    }

    #[test]
    fn header_slots_are_capped_at_the_limit() {
        let many = b"GET / HTTP/1.1\r\n"
            .iter()
            .chain(b"X: 1\r\n".repeat(50).iter())
            .chain(b"\r\n")
            .copied()
            .collect::<Vec<u8>>();
        assert_eq!(header_slots(&many, 10), Some(10));
    }

    /// Fed a byte at a time, the final parse gets one slot per field line
    /// the reader counted: exactly `max_headers` lines fit, and the fields
    /// are all recorded.
    #[test]
    fn a_head_read_in_pieces_with_max_headers_parses_every_field() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
        let limits = Limits::new().with_max_headers(3);
        let mut reader = HeadReader::new();
        let (mut scratch, mut fields) = (Vec::new(), Vec::new());
        for end in 1..head.len() {
            let partial = reader.poll(&head[..end], &limits, &mut scratch, &mut fields);
            assert_eq!(partial, Ok(None), "after {end} bytes");
            assert_eq!(scratch.capacity(), 0, "a partial head holds no slots");
        }
        let layout = reader.poll(head, &limits, &mut scratch, &mut fields);
        assert_eq!(layout.map(|l| l.map(|l| l.len)), Ok(Some(head.len())));
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn recycled_scratch_keeps_its_allocation() {
        let mut scratch: Vec<Header<'static>> = Vec::new();
        with_slots(&mut scratch, 64, |s| assert_eq!(s.len(), 64));
        assert!(scratch.is_empty());
        let cap = scratch.capacity();
        assert!(cap >= 64);
        with_slots(&mut scratch, 64, |_| {});
        assert_eq!(scratch.capacity(), cap);
    }

    #[test]
    fn classify_names_each_header_rule() {
        assert_eq!(classify_line(b" folded\r\n"), Some(DecodeError::ObsFold));
        assert_eq!(
            classify_line(b"Host : x\r\n"),
            Some(DecodeError::WhitespaceBeforeColon)
        );
        assert_eq!(
            classify_line(b"A: b\rc\r\n"),
            Some(DecodeError::BareCarriageReturn)
        );
        assert_eq!(
            classify_line(b"A: b\0c\r\n"),
            Some(DecodeError::InvalidHeaderValue)
        );
        assert_eq!(
            classify_line(b"A(: b\r\n"),
            Some(DecodeError::InvalidHeaderName)
        );
    }
}
