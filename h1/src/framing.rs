//! How long the request body is: Content-Length and Transfer-Encoding
//! (RFC 9112 6).
//!
//! Every rule here closes a request-smuggling hole: when two parsers on a
//! path disagree on where a body ends, the rest of the body is read as a
//! second request. So anything ambiguous is rejected, never guessed.

use crate::error::DecodeError;
use crate::limits::Limits;
use crate::token::{list_elements, trim_ows};
use crate::version::Version;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No Content-Length and no Transfer-Encoding: no body (RFC 9112 6.3
    /// rule 7: a request has no body unless it announces one).
    None,
    /// `Content-Length` bytes follow (possibly zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Works out the body framing from the Content-Length and
/// Transfer-Encoding field values, in order of appearance.
pub(crate) fn body_kind<'a>(
    version: Version,
    content_lengths: impl Iterator<Item = &'a [u8]>,
    transfer_encodings: impl Iterator<Item = &'a [u8]> + Clone,
    limits: &Limits,
) -> Result<BodyKind, DecodeError> {
    let content_length = content_length(content_lengths)?;
    let has_te = transfer_encodings.clone().next().is_some();
    if has_te {
        // RFC 9112 6.1: Transfer-Encoding came with HTTP/1.1; in an
        // HTTP/1.0 message it means the framing is faulty.
        if version == Version::Http10 {
            return Err(DecodeError::TransferEncodingInHttp10);
        }
        // RFC 9112 6.1: a server MAY reject a message with both; it MUST
        // close the connection if it processes it. Rejecting removes the
        // CL.TE / TE.CL smuggling shapes altogether.
        if content_length.is_some() {
            return Err(DecodeError::ContentLengthWithTransferEncoding);
        }
        check_codings(transfer_encodings)?;
        return Ok(BodyKind::Chunked);
    }
    match content_length {
        // RFC 9110 15.5.14: refuse before reading any of it.
        Some(n) if n > limits.max_body_bytes => Err(DecodeError::BodyTooLarge),
        Some(n) => Ok(BodyKind::Length(n)),
        None => Ok(BodyKind::None),
    }
}

/// RFC 9112 6.3 rule 4: the final coding must be chunked, else the length
/// cannot be determined (400). RFC 9112 6.1: chunked MUST NOT be applied
/// more than once. Any other coding is one we do not implement (501,
/// RFC 9112 6.1 "SHOULD respond with 501").
///
/// "gzip" alone and "chunked, gzip" both leave the body unframed: 400,
/// which takes precedence over the 501 the unknown coding would earn.
fn check_codings<'a>(values: impl Iterator<Item = &'a [u8]> + Clone) -> Result<(), DecodeError> {
    let codings = || values.clone().flat_map(list_elements);
    let count = codings().count();
    let mut unsupported = false;
    for (i, coding) in codings().enumerate() {
        let chunked = coding.eq_ignore_ascii_case(b"chunked");
        let last = i + 1 == count;
        if chunked != last {
            return Err(DecodeError::ChunkedNotFinal);
        }
        unsupported |= !chunked;
    }
    if count == 0 {
        // A Transfer-Encoding field with no codings frames nothing.
        return Err(DecodeError::ChunkedNotFinal);
    }
    if unsupported {
        return Err(DecodeError::UnsupportedTransferCoding);
    }
    Ok(())
}

/// RFC 9110 8.6: `Content-Length = 1*DIGIT`. A recipient may see the field
/// repeated or as a list ("42, 42") after an intermediary merged lines; if
/// all values are the same valid number the length is unambiguous and we
/// accept it (as the RFC allows and nginx and hyper do). Differing values
/// are 400 (RFC 9112 6.3 rule 5), as is anything but digits: no sign, no
/// empty element, no value that overflows u64.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, DecodeError> {
    let mut found: Option<u64> = None;
    for value in values {
        // Empty elements are not skipped here: "Content-Length: ," or
        // "5," is a malformed length, not a list with one number.
        for element in value.split(|&b| b == b',').map(trim_ows) {
            let n = parse_decimal(element).ok_or(DecodeError::InvalidContentLength)?;
            match found {
                Some(prev) if prev != n => return Err(DecodeError::ConflictingContentLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// `1*DIGIT` as a u64, or `None` when empty, not all digits, or too large.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_rejects_sign_space_and_overflow() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"1 2"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"0x10"), None);
    }
}
