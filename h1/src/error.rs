//! Why a request was rejected, and the status it is answered with.

use std::fmt;

/// A request the decoder refuses. One variant per rejection rule.
///
/// The connection cannot be trusted after any of them (the framing of what
/// follows is unknown), so the answer is always: send [`status`](Self::status)
/// with `Connection: close`, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    // ---- request line (RFC 9112 3) ----
    /// A byte that cannot start or continue a request line: a bare CR, a
    /// missing LF, bytes after the version.
    InvalidRequestLine,
    /// The method is not a token (RFC 9110 9.1).
    InvalidMethod,
    /// The method is longer than `max_method_bytes` (RFC 9110 9.1: longer
    /// than any method the server implements, SHOULD be 501).
    MethodTooLong,
    /// The request-target is empty, has a forbidden byte, is not UTF-8, or is
    /// in none of the four forms of RFC 9112 3.2.
    InvalidTarget,
    /// The request-target is longer than `max_target_bytes` (RFC 9112 3:
    /// 414).
    TargetTooLong,
    /// The version is not `HTTP-name "/" DIGIT "." DIGIT` (RFC 9112 2.3).
    InvalidVersion,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (RFC 9110
    /// 15.6.6: 505).
    UnsupportedVersion,

    // ---- header section (RFC 9112 5) ----
    /// The head is longer than `max_head_bytes` (RFC 6585 5: 431).
    HeadTooLarge,
    /// More header lines than `max_headers` (431).
    TooManyHeaders,
    /// A header name with a non-token byte, or a line without a colon.
    InvalidHeaderName,
    /// Whitespace between a field name and the colon (RFC 9112 5.1: MUST
    /// reject with 400, it is a smuggling vector).
    WhitespaceBeforeColon,
    /// A header line starting with SP or HTAB, i.e. obs-fold (RFC 9112 5.2:
    /// MUST either reject or replace; we reject).
    ObsFold,
    /// A CR not followed by LF (RFC 9112 2.2: MUST treat as invalid).
    BareCarriageReturn,
    /// NUL or another control byte other than HTAB in a field value
    /// (RFC 9110 5.5).
    InvalidHeaderValue,

    // ---- Host (RFC 9112 3.2) ----
    /// HTTP/1.1 request without a Host header.
    MissingHost,
    /// More than one Host header.
    DuplicateHost,
    /// A Host value that is not `uri-host [ ":" port ]`.
    InvalidHost,

    // ---- framing (RFC 9112 6) ----
    /// Both Content-Length and Transfer-Encoding (RFC 9112 6.1 allows
    /// rejecting; it is the classic smuggling shape).
    ContentLengthWithTransferEncoding,
    /// A Content-Length that is not `1*DIGIT` or does not fit in u64
    /// (RFC 9112 6.3 rule 5).
    InvalidContentLength,
    /// Content-Length values that differ (RFC 9110 8.6, RFC 9112 6.3 rule 5).
    ConflictingContentLength,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1: the framing
    /// is faulty).
    TransferEncodingInHttp10,
    /// Transfer-Encoding whose final coding is not `chunked` (RFC 9112 6.3
    /// rule 4: MUST respond 400), or chunked applied twice (RFC 9112 6.1).
    ChunkedNotFinal,
    /// A transfer coding other than chunked (RFC 9112 6.1: SHOULD 501).
    UnsupportedTransferCoding,
    /// The body is longer than `max_body_bytes` (RFC 9110 15.5.14: 413).
    BodyTooLarge,

    // ---- chunked body (RFC 9112 7.1) ----
    /// A chunk-size line that is not `1*HEXDIG [ chunk-ext ] CRLF`.
    InvalidChunkSize,
    /// A chunk-size with more hex digits than fit in u64 (leading zeros
    /// count). RFC 9112 7.1 asks recipients to guard against overflow; a size
    /// that cannot be represented is malformed, so 400, not 413.
    ChunkSizeOverflow,
    /// A chunk extension with a control byte.
    InvalidChunkExtension,
    /// Chunk extensions adding up to more than `max_head_bytes` in one body
    /// (unbounded extensions were CVE-2024-22019 in Node.js).
    ChunkExtensionsTooLong,
    /// Chunk data not followed by CRLF.
    ChunkDataNotTerminated,
    /// A trailer line that is not a valid field line (RFC 9112 7.1.2).
    InvalidTrailer,
    /// Trailer section longer than `max_head_bytes` (431).
    TrailersTooLarge,
}

impl DecodeError {
    /// The status code to answer with. The single place where a rejection
    /// rule meets a status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        use DecodeError::*;
        match self {
            InvalidRequestLine
            | InvalidMethod
            | InvalidTarget
            | InvalidVersion
            | InvalidHeaderName
            | WhitespaceBeforeColon
            | ObsFold
            | BareCarriageReturn
            | InvalidHeaderValue
            | MissingHost
            | DuplicateHost
            | InvalidHost
            | ContentLengthWithTransferEncoding
            | InvalidContentLength
            | ConflictingContentLength
            | TransferEncodingInHttp10
            | ChunkedNotFinal
            | InvalidChunkSize
            | ChunkSizeOverflow
            | InvalidChunkExtension
            | ChunkExtensionsTooLong
            | ChunkDataNotTerminated
            | InvalidTrailer => 400,
            BodyTooLarge => 413,
            TargetTooLong => 414,
            HeadTooLarge | TooManyHeaders | TrailersTooLarge => 431,
            MethodTooLong | UnsupportedTransferCoding => 501,
            UnsupportedVersion => 505,
        }
    }

    /// A short text for the response body (and for logs).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        use DecodeError::*;
        match self {
            InvalidRequestLine => "malformed request line",
            InvalidMethod => "invalid method",
            MethodTooLong => "method too long",
            InvalidTarget => "invalid request target",
            TargetTooLong => "request target too long",
            InvalidVersion => "malformed HTTP version",
            UnsupportedVersion => "HTTP version not supported",
            HeadTooLarge => "request head too large",
            TooManyHeaders => "too many header fields",
            InvalidHeaderName => "invalid header field name",
            WhitespaceBeforeColon => "whitespace between header field name and colon",
            ObsFold => "obsolete line folding in header field",
            BareCarriageReturn => "bare CR in request head",
            InvalidHeaderValue => "control character in header field value",
            MissingHost => "missing Host header",
            DuplicateHost => "more than one Host header",
            InvalidHost => "invalid Host header",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            InvalidContentLength => "invalid Content-Length",
            ConflictingContentLength => "conflicting Content-Length values",
            TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            ChunkedNotFinal => "chunked is not the final transfer coding",
            UnsupportedTransferCoding => "transfer coding not implemented",
            BodyTooLarge => "request body too large",
            InvalidChunkSize => "invalid chunk size line",
            ChunkSizeOverflow => "chunk size too large",
            InvalidChunkExtension => "invalid chunk extension",
            ChunkExtensionsTooLong => "chunk extensions too long",
            ChunkDataNotTerminated => "chunk data not followed by CRLF",
            InvalidTrailer => "invalid trailer field",
            TrailersTooLarge => "trailer section too large",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for DecodeError {}

/// A response the encoder refuses to write. `out` is left untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The status is not a three-digit code in 100..=599 (RFC 9110 15).
    InvalidStatus(u16),
    /// A body was given with a status that has none (1xx, 204, 304:
    /// RFC 9110 6.4.1), or a streamed body was started for one.
    BodyNotAllowed(u16),
    /// The handler passed a header the encoder owns: Content-Length,
    /// Transfer-Encoding, Connection or Date. Letting both write it would
    /// produce two framings for one message.
    ReservedHeader {
        /// Position in the handler's header slice.
        index: usize,
        /// The canonical name of the reserved header.
        name: &'static str,
    },
    /// A header name that is not a token (RFC 9110 5.1).
    InvalidHeaderName {
        /// Position in the handler's header slice.
        index: usize,
    },
    /// A header value with CR, LF, NUL or another control byte except HTAB:
    /// written as is it would split the response (RFC 9110 5.5).
    InvalidHeaderValue {
        /// Position in the handler's header slice.
        index: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidStatus(s) => write!(f, "status {s} is not in 100..=599"),
            EncodeError::BodyNotAllowed(s) => write!(f, "status {s} cannot carry a body"),
            EncodeError::ReservedHeader { index, name } => write!(
                f,
                "header #{index} is {name}, which the encoder writes itself"
            ),
            EncodeError::InvalidHeaderName { index } => {
                write!(f, "header #{index} has a name that is not a token")
            }
            EncodeError::InvalidHeaderValue { index } => write!(
                f,
                "header #{index} has a control character in its value (response splitting)"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_reason_and_status() {
        assert_eq!(
            DecodeError::TargetTooLong.to_string(),
            "request target too long (414)"
        );
    }

    #[test]
    fn over_long_method_is_501_not_implemented() {
        assert_eq!(DecodeError::MethodTooLong.status(), 501);
        assert_eq!(
            DecodeError::MethodTooLong.to_string(),
            "method too long (501)"
        );
    }

    #[test]
    fn encode_error_display_names_the_header() {
        let e = EncodeError::ReservedHeader {
            index: 2,
            name: "Content-Length",
        };
        assert_eq!(
            e.to_string(),
            "header #2 is Content-Length, which the encoder writes itself"
        );
    }
}
