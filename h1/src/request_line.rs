//! An incremental scanner for the request line (RFC 9112 3).
//!
//! httparse re-parses from the first byte each time it is called, so calling
//! it on every drip of a slow head costs O(n²). This scanner remembers where
//! it stopped and looks at each byte once. It accepts exactly the request
//! lines httparse accepts (same byte classes, same line endings; httparse
//! additionally insists that the target be UTF-8, which the final parse
//! checks), so it only reports errors sooner, never different ones. It adds
//! what httparse cannot tell while a line is still partial:
//!
//! - a method longer than `max_method_bytes` (501) or a target longer than
//!   `max_target_bytes` (414) is reported as soon as its first excess byte
//!   arrives, so a partial line holds bounded memory;
//! - the version needs no bound of its own: `HTTP/D.D` is eight bytes, and
//!   the first byte past them that is not CR or LF is 400;
//! - a version that reads `HTTP/x.y` but is neither 1.0 nor 1.1 is 505, any
//!   other version text is 400. httparse calls both `Error::Version`.

use crate::error::DecodeError;
use crate::limits::Limits;
use crate::token::{is_target_byte, is_tchar};

/// How far the request line has been scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the request line. RFC 9112 2.2: "a server that is expecting
    /// to receive and parse a request-line SHOULD ignore at least one empty
    /// line (CRLF) received prior to the request-line". httparse ignores any
    /// number of them; they still count against `max_head_bytes`.
    EmptyLines,
    /// A CR in the empty lines; LF must follow.
    EmptyLineLf,
    Method,
    Target,
    /// Byte `n` of `HTTP/D.D`.
    Version(u8),
    /// After the version: CR LF or LF.
    VersionEnd,
    /// After the CR that ends the line.
    LineLf,
    Done,
}

/// The outcome of scanning the bytes at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineScan {
    /// The line is well-formed so far and not finished.
    NeedMore,
    /// The request line ends just before this offset (past its LF).
    Done { end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLineScanner {
    state: State,
    /// Offset of the next byte to look at, relative to the head start.
    pos: usize,
    method_len: usize,
    target_len: usize,
    major: u8,
    minor: u8,
}

const HTTP_NAME: &[u8; 5] = b"HTTP/";

impl RequestLineScanner {
    pub(crate) const fn new() -> RequestLineScanner {
        RequestLineScanner {
            state: State::EmptyLines,
            pos: 0,
            method_len: 0,
            target_len: 0,
            major: 0,
            minor: 0,
        }
    }

    /// Scans `head[self.pos..]`; `head` starts at the head's first byte and
    /// only ever grows between calls.
    pub(crate) fn advance(
        &mut self,
        head: &[u8],
        limits: &Limits,
    ) -> Result<LineScan, DecodeError> {
        while self.pos < head.len() {
            if self.state == State::Target {
                // The target is the bulk of a long line: take it in one run.
                let run = head[self.pos..]
                    .iter()
                    .take_while(|&&b| is_target_byte(b))
                    .count();
                self.target_len += run;
                self.pos += run;
                if self.target_len > limits.max_target_bytes {
                    return Err(DecodeError::TargetTooLong);
                }
                if self.pos == head.len() {
                    break;
                }
            }
            let b = head[self.pos];
            self.pos += 1;
            self.state = self.step(b, limits)?;
            if self.state == State::Done {
                return Ok(LineScan::Done { end: self.pos });
            }
        }
        Ok(LineScan::NeedMore)
    }

    fn step(&mut self, b: u8, limits: &Limits) -> Result<State, DecodeError> {
        use DecodeError::*;
        Ok(match self.state {
            State::EmptyLines => match b {
                b'\r' => State::EmptyLineLf,
                b'\n' => State::EmptyLines,
                b if is_tchar(b) => self.method_byte(limits)?,
                _ => return Err(InvalidMethod),
            },
            State::EmptyLineLf => match b {
                b'\n' => State::EmptyLines,
                _ => return Err(BareCarriageReturn),
            },
            // RFC 9110 9.1: method = token. A single SP follows (RFC 9112
            // 3: no other whitespace; lenient splitting is a smuggling aid).
            State::Method => match b {
                b' ' => State::Target,
                b if is_tchar(b) => self.method_byte(limits)?,
                _ => return Err(InvalidMethod),
            },
            // Target bytes are consumed in bulk by `advance`; `b` is the
            // first byte that is not one.
            State::Target => match b {
                b' ' if self.target_len == 0 => return Err(InvalidTarget),
                b' ' => State::Version(0),
                // "GET /\r\n": an HTTP/0.9 line, which has no version.
                b'\r' | b'\n' => return Err(InvalidRequestLine),
                _ => return Err(InvalidTarget),
            },
            // RFC 9112 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT,
            // HTTP-name is case-sensitive.
            State::Version(n) => {
                let ok = match n {
                    0..=4 => b == HTTP_NAME[usize::from(n)],
                    5 => b.is_ascii_digit(),
                    6 => b == b'.',
                    _ => b.is_ascii_digit(),
                };
                if !ok {
                    return Err(InvalidVersion);
                }
                match n {
                    5 => self.major = b - b'0',
                    7 => self.minor = b - b'0',
                    _ => {}
                }
                if n == 7 {
                    State::VersionEnd
                } else {
                    State::Version(n + 1)
                }
            }
            State::VersionEnd => match b {
                b'\r' => State::LineLf,
                b'\n' => self.finish()?,
                _ => return Err(InvalidVersion),
            },
            State::LineLf => match b {
                b'\n' => self.finish()?,
                _ => return Err(BareCarriageReturn),
            },
            State::Done => State::Done,
        })
    }

    /// Counts one more method byte. RFC 9110 9.1: a method longer than any
    /// the server implements SHOULD be answered 501; failing at the first
    /// excess byte keeps a partial line from holding a method of up to
    /// `max_head_bytes`.
    fn method_byte(&mut self, limits: &Limits) -> Result<State, DecodeError> {
        self.method_len += 1;
        if self.method_len > limits.max_method_bytes {
            return Err(DecodeError::MethodTooLong);
        }
        Ok(State::Method)
    }

    /// The version is known to be well-formed; only 1.0 and 1.1 are spoken.
    fn finish(&self) -> Result<State, DecodeError> {
        match (self.major, self.minor) {
            (1, 0) | (1, 1) => Ok(State::Done),
            _ => Err(DecodeError::UnsupportedVersion),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Method up to 8 bytes, target up to 16.
    fn limits() -> Limits {
        Limits {
            max_method_bytes: 8,
            max_target_bytes: 16,
            ..Limits::default()
        }
    }

    fn scan(line: &[u8]) -> Result<LineScan, DecodeError> {
        RequestLineScanner::new().advance(line, &limits())
    }

    #[test]
    fn a_complete_line_reports_its_end() {
        assert_eq!(
            scan(b"GET / HTTP/1.1\r\nHost"),
            Ok(LineScan::Done { end: 16 })
        );
        assert_eq!(scan(b"GET / HTTP/1.0\n"), Ok(LineScan::Done { end: 15 }));
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        assert_eq!(
            scan(b"\r\n\nGET / HTTP/1.1\r\n"),
            Ok(LineScan::Done { end: 19 })
        );
    }

    #[test]
    fn byte_at_a_time_gives_the_same_end() {
        let line = b"\r\nPOST /abc?d=e HTTP/1.1\r\n";
        let mut s = RequestLineScanner::new();
        for n in 1..line.len() {
            assert_eq!(
                s.advance(&line[..n], &limits()),
                Ok(LineScan::NeedMore),
                "{n}"
            );
        }
        assert_eq!(
            s.advance(line, &limits()),
            Ok(LineScan::Done { end: line.len() })
        );
    }

    #[test]
    fn target_over_the_limit_fails_before_the_line_ends() {
        let mut s = RequestLineScanner::new();
        assert_eq!(
            s.advance(b"GET /234567890123456", &limits()),
            Ok(LineScan::NeedMore)
        );
        assert_eq!(
            s.advance(b"GET /2345678901234567", &limits()),
            Err(DecodeError::TargetTooLong)
        );
    }

    #[test]
    fn method_over_the_limit_fails_before_the_line_ends() {
        let mut s = RequestLineScanner::new();
        assert_eq!(
            s.advance(b"\r\n12345678", &limits()),
            Ok(LineScan::NeedMore)
        );
        assert_eq!(
            s.advance(b"\r\n123456789", &limits()),
            Err(DecodeError::MethodTooLong)
        );
    }

    #[test]
    fn method_of_exactly_the_limit_is_counted_from_its_first_byte() {
        // The first method byte is taken in the empty-lines state; it must
        // count like the others.
        assert_eq!(
            scan(b"ABCDEFGH / HTTP/1.1\r\n"),
            Ok(LineScan::Done { end: 21 })
        );
        assert_eq!(
            scan(b"ABCDEFGHI / HTTP/1.1\r\n"),
            Err(DecodeError::MethodTooLong)
        );
    }

    #[test]
    fn version_shaped_but_unknown_is_505_only_once_the_line_ends() {
        assert_eq!(scan(b"GET / HTTP/2.0"), Ok(LineScan::NeedMore));
        assert_eq!(
            scan(b"GET / HTTP/2.0\r\n"),
            Err(DecodeError::UnsupportedVersion)
        );
        assert_eq!(scan(b"GET / HTTP/2.0x"), Err(DecodeError::InvalidVersion));
    }
}
