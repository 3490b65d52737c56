//! The bounds a request must stay within, and their validation.

use std::fmt;

/// Upper bounds on what one request may make the decoder hold.
///
/// Every bound is checked as the bytes arrive, so a connection never holds
/// more than about `max_head_bytes` of an unfinished head, whatever the peer
/// sends.
///
/// Built from [`Limits::new`] (the defaults) and the `with_*` methods, so
/// that a later release can add a bound without breaking callers:
///
/// ```
/// use ringwall_h1::Limits;
///
/// const SMALL: Limits = Limits::new()
///     .with_max_head_bytes(4096)
///     .with_max_target_bytes(2048)
///     .with_max_body_bytes(64 * 1024);
/// assert_eq!(SMALL.validate(), Ok(()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Bytes of the request head: request line, header lines, the empty line
    /// (and any empty lines before the request line). Over it: 431.
    ///
    /// Default 16 KiB: twice nginx's 8 KiB `large_client_header_buffers`
    /// line size, well below Go's 1 MiB `DefaultMaxHeaderBytes` (which
    /// allows a slowloris peer to pin a megabyte per connection). A value
    /// over 4 GiB acts as 4 GiB.
    pub max_head_bytes: usize,
    /// Header lines in one head. Over it: 431.
    ///
    /// Default 100: hyper's default (`DEFAULT_MAX_HEADERS`); browsers send
    /// about 10-20.
    pub max_headers: usize,
    /// Bytes of the method. Over it: 501 (RFC 9110 9.1: a method longer
    /// than any the server implements SHOULD get 501).
    ///
    /// Default 32: the longest method in the IANA HTTP Method Registry,
    /// `UPDATEREDIRECTREF`, has 17 bytes, so no registered method is refused.
    pub max_method_bytes: usize,
    /// Bytes of the request-target. Over it: 414.
    ///
    /// Default 8 KiB: nginx's `large_client_header_buffers 4 8k` caps a
    /// request line at 8 KiB, and RFC 9112 3 asks for at least 8000 octets.
    pub max_target_bytes: usize,
    /// Decoded body bytes (Content-Length or the sum of chunk sizes).
    /// Over it: 413.
    ///
    /// Default 1 MiB: nginx's `client_max_body_size 1m`. The decoder buffers
    /// the whole body, so this is also the body memory per connection.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new()
    }
}

impl Limits {
    /// The default limits (each field's docs give its default and why).
    pub const fn new() -> Limits {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_method_bytes: 32,
            max_target_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
        }
    }

    /// These limits with [`max_head_bytes`](Self::max_head_bytes) set.
    pub const fn with_max_head_bytes(mut self, n: usize) -> Limits {
        self.max_head_bytes = n;
        self
    }

    /// These limits with [`max_headers`](Self::max_headers) set.
    pub const fn with_max_headers(mut self, n: usize) -> Limits {
        self.max_headers = n;
        self
    }

    /// These limits with [`max_method_bytes`](Self::max_method_bytes) set.
    pub const fn with_max_method_bytes(mut self, n: usize) -> Limits {
        self.max_method_bytes = n;
        self
    }

    /// These limits with [`max_target_bytes`](Self::max_target_bytes) set.
    pub const fn with_max_target_bytes(mut self, n: usize) -> Limits {
        self.max_target_bytes = n;
        self
    }

    /// These limits with [`max_body_bytes`](Self::max_body_bytes) set.
    pub const fn with_max_body_bytes(mut self, n: u64) -> Limits {
        self.max_body_bytes = n;
        self
    }

    /// Checks that the limits can all be reached and none is zero.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let zero = [
            ("max_head_bytes", self.max_head_bytes == 0),
            ("max_headers", self.max_headers == 0),
            ("max_method_bytes", self.max_method_bytes == 0),
            ("max_target_bytes", self.max_target_bytes == 0),
            ("max_body_bytes", self.max_body_bytes == 0),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(LimitsError::Zero { field });
        }
        // The method and the target are part of the head: a larger limit on
        // either could never be the one that fires.
        if self.max_method_bytes > self.max_head_bytes {
            return Err(LimitsError::MethodLongerThanHead {
                max_method_bytes: self.max_method_bytes,
                max_head_bytes: self.max_head_bytes,
            });
        }
        if self.max_target_bytes > self.max_head_bytes {
            return Err(LimitsError::TargetLongerThanHead {
                max_target_bytes: self.max_target_bytes,
                max_head_bytes: self.max_head_bytes,
            });
        }
        // The shortest header line, "a:" LF, is three bytes. More headers
        // than fit in the head can never be reached, and the decoder keeps a
        // parse slot per allowed header.
        if self.max_headers > self.max_head_bytes / 3 {
            return Err(LimitsError::HeadersCannotFit {
                max_headers: self.max_headers,
                max_head_bytes: self.max_head_bytes,
            });
        }
        Ok(())
    }
}

/// Why a [`Limits`] value cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitsError {
    /// A limit is zero: no request could pass it.
    Zero {
        /// The name of the zero field, such as `"max_headers"`.
        field: &'static str,
    },
    /// `max_method_bytes` exceeds `max_head_bytes`.
    MethodLongerThanHead {
        /// The `max_method_bytes` given.
        max_method_bytes: usize,
        /// The `max_head_bytes` given.
        max_head_bytes: usize,
    },
    /// `max_target_bytes` exceeds `max_head_bytes`.
    TargetLongerThanHead {
        /// The `max_target_bytes` given.
        max_target_bytes: usize,
        /// The `max_head_bytes` given.
        max_head_bytes: usize,
    },
    /// `max_headers` header lines of at least three bytes do not fit in
    /// `max_head_bytes`.
    HeadersCannotFit {
        /// The `max_headers` given.
        max_headers: usize,
        /// The `max_head_bytes` given.
        max_head_bytes: usize,
    },
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsError::Zero { field } => write!(f, "{field} must be greater than zero"),
            LimitsError::MethodLongerThanHead {
                max_method_bytes,
                max_head_bytes,
            } => write!(
                f,
                "max_method_bytes ({max_method_bytes}) exceeds max_head_bytes ({max_head_bytes}), \
                 which contains the method"
            ),
            LimitsError::TargetLongerThanHead {
                max_target_bytes,
                max_head_bytes,
            } => write!(
                f,
                "max_target_bytes ({max_target_bytes}) exceeds max_head_bytes ({max_head_bytes}), \
                 which contains the target"
            ),
            LimitsError::HeadersCannotFit {
                max_headers,
                max_head_bytes,
            } => write!(
                f,
                "max_headers ({max_headers}) cannot fit in max_head_bytes ({max_head_bytes}): \
                 a header line takes at least 3 bytes"
            ),
        }
    }
}

impl std::error::Error for LimitsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn zero_limits_are_rejected() {
        let d = Limits::default();
        let cases = [
            (
                Limits {
                    max_head_bytes: 0,
                    ..d
                },
                "max_head_bytes",
            ),
            (
                Limits {
                    max_headers: 0,
                    ..d
                },
                "max_headers",
            ),
            (
                Limits {
                    max_method_bytes: 0,
                    ..d
                },
                "max_method_bytes",
            ),
            (
                Limits {
                    max_target_bytes: 0,
                    ..d
                },
                "max_target_bytes",
            ),
            (
                Limits {
                    max_body_bytes: 0,
                    ..d
                },
                "max_body_bytes",
            ),
        ];
        for (limits, field) in cases {
            assert_eq!(limits.validate(), Err(LimitsError::Zero { field }));
        }
    }

    #[test]
    fn target_limit_above_head_limit_is_rejected() {
        let l = Limits {
            max_head_bytes: 100,
            max_target_bytes: 101,
            max_headers: 10,
            ..Limits::default()
        };
        let err = l.validate().unwrap_err();
        assert!(matches!(err, LimitsError::TargetLongerThanHead { .. }));
        assert!(err.to_string().contains("max_target_bytes (101)"));
    }

    #[test]
    fn method_limit_above_head_limit_is_rejected() {
        let l = Limits {
            max_head_bytes: 100,
            max_method_bytes: 101,
            max_target_bytes: 50,
            max_headers: 10,
            ..Limits::default()
        };
        let err = l.validate().unwrap_err();
        assert!(matches!(err, LimitsError::MethodLongerThanHead { .. }));
        assert!(err.to_string().contains("max_method_bytes (101)"));
        // Equal to the head limit is reachable, so valid.
        let l = Limits {
            max_method_bytes: 100,
            ..l
        };
        assert_eq!(l.validate(), Ok(()));
    }

    #[test]
    fn more_headers_than_fit_in_the_head_is_rejected() {
        let l = Limits {
            max_head_bytes: 300,
            max_target_bytes: 100,
            max_headers: 101,
            ..Limits::default()
        };
        assert!(matches!(
            l.validate(),
            Err(LimitsError::HeadersCannotFit { .. })
        ));
    }
}
