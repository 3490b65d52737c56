//! The protocol version, on its own: the head parser, the framing rules
//! and the encoder all need it, and none of them should need another to
//! get it.

/// The protocol version of a request. Anything else is rejected (505).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: keep-alive only when asked for.
    Http10,
    /// HTTP/1.1: keep-alive unless closed; a Host is required.
    Http11,
}
