//! The chunked transfer coding (RFC 9112 7.1), decoded as a stream.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! A byte-at-a-time state machine with a bulk copy for chunk data: it holds
//! no input between calls, so its memory does not depend on the peer.
//!
//! Lines end in CRLF only. RFC 9112 2.2 lets a recipient accept a bare LF
//! in the start line and header fields, but disagreeing about chunk-line
//! endings is a known request-smuggling shape (a proxy that splits on LF and
//! a server that does not see different bodies), so here it is 400.
//! Extensions are accepted and ignored (RFC 9112 7.1.1: a recipient MUST
//! ignore unrecognized ones); their bytes are bounded per body. Trailer
//! fields are checked as field lines and discarded (RFC 9112 7.1.2 allows
//! it); their bytes are bounded like a head.

use crate::error::DecodeError;
use crate::limits::Limits;
use crate::token::{is_field_value_byte, is_tchar};

/// More hex digits than this cannot fit in a u64. Leading zeros count too,
/// so a size line stays bounded.
const MAX_SIZE_DIGITS: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading chunk-size hex digits.
    Size {
        size: u64,
        digits: u32,
    },
    /// Whitespace after the size; only a ";" may follow (BWS before an
    /// extension, RFC 9112 7.1.1).
    SizeSpace {
        size: u64,
    },
    /// Inside chunk extensions, up to CR.
    Extension {
        size: u64,
    },
    /// After the CR that ends a chunk-size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerLineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
    Done,
}

/// How far one call to [`ChunkedDecoder::decode`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ChunkedProgress {
    /// Input bytes used; the rest belongs to whatever follows the body.
    pub consumed: usize,
    /// Decoded bytes appended to the output.
    pub appended: usize,
    /// The last chunk and the trailer section have been read.
    pub done: bool,
}

/// Decodes a chunked body fed in arbitrary pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    decoded: u64,
    extension_bytes: usize,
    trailer_bytes: usize,
    max_body_bytes: u64,
    /// Budget for chunk extensions and for the trailer section, each, per
    /// body: the head's, since both are metadata like header fields.
    max_meta_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    #[must_use]
    pub fn new(limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            decoded: 0,
            extension_bytes: 0,
            trailer_bytes: 0,
            max_body_bytes: limits.max_body_bytes,
            max_meta_bytes: limits.max_head_bytes,
        }
    }

    /// The whole body has been read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far. The decoder counts the body it appends
    /// itself; the fuzz target checks this against what was appended.
    #[cfg(any(test, feature = "fuzzing"))]
    #[must_use]
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded
    }

    /// Decodes from `input`, appending chunk data to `body`. Stops at the end
    /// of the body; bytes after it are not consumed. After an error the
    /// decoder must not be used again.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<ChunkedProgress, DecodeError> {
        let mut i = 0;
        let mut appended = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { remaining } = self.state {
                let take = (input.len() - i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                body.extend_from_slice(&input[i..i + take]);
                i += take;
                appended += take;
                self.decoded += take as u64;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            self.state = self.step(input[i])?;
            i += 1;
        }
        Ok(ChunkedProgress {
            consumed: i,
            appended,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<State, DecodeError> {
        use DecodeError::*;
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    // RFC 9112 7.1: a numeral too long for a u64 is a
                    // malformed size (400), not a large one, so the digit
                    // count is checked before the limit, which waits for the
                    // size to end.
                    if digits == MAX_SIZE_DIGITS {
                        return Err(ChunkSizeOverflow);
                    }
                    State::Size {
                        size: size << 4 | u64::from(hex_value(b)),
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(InvalidChunkSize),
                b';' => self.extension_byte(State::Extension {
                    size: self.within_limit(size)?,
                })?,
                b' ' | b'\t' => self.extension_byte(State::SizeSpace {
                    size: self.within_limit(size)?,
                })?,
                b'\r' => State::SizeLf {
                    size: self.within_limit(size)?,
                },
                _ => return Err(InvalidChunkSize),
            },
            State::SizeSpace { size } => match b {
                b' ' | b'\t' => self.extension_byte(State::SizeSpace { size })?,
                b';' => self.extension_byte(State::Extension { size })?,
                _ => return Err(InvalidChunkSize),
            },
            // The extension grammar (token, "=", token / quoted-string) is
            // not checked: extensions are ignored, and what matters is that
            // the line ends where every parser thinks it does, so only
            // control bytes (which could hide a line end) are refused.
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b if is_field_value_byte(b) => self.extension_byte(State::Extension { size })?,
                _ => return Err(InvalidChunkExtension),
            },
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => State::TrailerLineStart,
                (b'\n', size) => State::Data { remaining: size },
                _ => return Err(InvalidChunkSize),
            },
            State::Data { .. } => unreachable!("chunk data is copied in bulk by decode"),
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkDataNotTerminated),
            },
            State::DataLf => match b {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(ChunkDataNotTerminated),
            },
            State::TrailerLineStart => self.trailer_byte(match b {
                b'\r' => State::EndLf,
                b if is_tchar(b) => State::TrailerName,
                _ => return Err(InvalidTrailer),
            })?,
            State::TrailerName => self.trailer_byte(match b {
                b':' => State::TrailerValue,
                b if is_tchar(b) => State::TrailerName,
                _ => return Err(InvalidTrailer),
            })?,
            State::TrailerValue => self.trailer_byte(match b {
                b'\r' => State::TrailerLf,
                b if is_field_value_byte(b) => State::TrailerValue,
                _ => return Err(InvalidTrailer),
            })?,
            State::TrailerLf => self.trailer_byte(match b {
                b'\n' => State::TrailerLineStart,
                _ => return Err(InvalidTrailer),
            })?,
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(InvalidTrailer),
            },
            State::Done => State::Done,
        })
    }

    /// The size of a chunk whose digits have ended, if the body stays within
    /// the limit. RFC 9110 15.5.14: refused as soon as the size is known,
    /// before any of its data is read.
    fn within_limit(&self, size: u64) -> Result<u64, DecodeError> {
        if size > self.max_body_bytes - self.decoded {
            return Err(DecodeError::BodyTooLarge);
        }
        Ok(size)
    }

    /// Counts one byte of chunk extensions (and the whitespace before them).
    fn extension_byte(&mut self, next: State) -> Result<State, DecodeError> {
        self.extension_bytes += 1;
        if self.extension_bytes > self.max_meta_bytes {
            return Err(DecodeError::ChunkExtensionsTooLong);
        }
        Ok(next)
    }

    /// Counts one byte of the trailer section.
    fn trailer_byte(&mut self, next: State) -> Result<State, DecodeError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_meta_bytes {
            return Err(DecodeError::TrailersTooLarge);
        }
        Ok(next)
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, ChunkedProgress), DecodeError> {
        let mut body = Vec::new();
        let p = ChunkedDecoder::new(&Limits::default()).decode(input, &mut body)?;
        Ok((body, p))
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let (body, p) = decode_all(b"3\r\nabc\r\n0\r\n\r\nGET").unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(
            p,
            ChunkedProgress {
                consumed: 13,
                appended: 3,
                done: true
            }
        );
    }

    #[test]
    fn byte_at_a_time_decodes_the_same() {
        let input = b"5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
        let mut d = ChunkedDecoder::new(&Limits::default());
        let mut body = Vec::new();
        for b in input.chunks(1) {
            let p = d.decode(b, &mut body).unwrap();
            assert_eq!(p.consumed, 1);
        }
        assert!(d.is_done());
        assert_eq!(body, b"hello0123456789");
        assert_eq!(d.decoded_bytes(), 15);
    }

    #[test]
    fn overflowing_size_is_malformed_even_past_the_limit() {
        // The first digits of both already pass the default limit; the
        // numeral's length decides (RFC 9112 7.1).
        for size in [&b"10000000000000000\r\n"[..], b"ffffffffffffffffff1\r\n"] {
            let err = decode_all(size).unwrap_err();
            assert_eq!((err, err.status()), (DecodeError::ChunkSizeOverflow, 400));
        }
    }

    #[test]
    fn representable_size_over_the_limit_is_413_when_its_digits_end() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        let mut body = Vec::new();
        // Still reading digits: nothing is refused yet.
        assert!(d.decode(b"ffffffffffffffff", &mut body).is_ok());
        let err = d.decode(b"\r\n", &mut body).unwrap_err();
        assert_eq!((err, err.status()), (DecodeError::BodyTooLarge, 413));
        for end in [&b";ext\r\n"[..], b" ;ext\r\n"] {
            let input = [&b"100001"[..], end].concat();
            assert_eq!(decode_all(&input), Err(DecodeError::BodyTooLarge));
        }
    }

    #[test]
    fn sixteen_hex_digits_fit_seventeen_overflow() {
        let limits = Limits {
            max_body_bytes: u64::MAX,
            ..Limits::default()
        };
        let mut body = Vec::new();
        let mut d = ChunkedDecoder::new(&limits);
        assert!(d.decode(b"ffffffffffffffff", &mut body).is_ok());
        let mut d = ChunkedDecoder::new(&limits);
        assert_eq!(
            d.decode(b"00000000000000001", &mut body),
            Err(DecodeError::ChunkSizeOverflow)
        );
    }
}
