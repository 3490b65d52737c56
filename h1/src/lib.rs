//! Sans-IO HTTP/1.1 for ringwall: a request decoder and a response encoder.
//!
//! ```text
//!              feed(&[u8])          poll()
//!  socket ──► bytes in ──► Decoder ──────► Event: HeadStarted
//!                                                 HeadComplete   head()
//!                                                 BodyData(n)    body()
//!                                                 RequestComplete
//!                                          └─► Err(DecodeError) ─► encode_error, close
//!
//!  handler ──► status, headers, body ──► encode_response ──► bytes out ──► socket
//!                                        encode_chunked_head / encode_chunk
//!                                        encode_continue
//! ```
//!
//! The decoder parses heads with [httparse] and adds what a server needs
//! on top of it (RFC 9112, RFC 9110): body framing (Content-Length,
//! chunked), limits on every part of a request, pipelining, keep-alive and
//! `Expect: 100-continue`. Anything ambiguous is rejected with a status
//! ([`DecodeError::status`]), never guessed, because where two parsers guess
//! differently a request can be smuggled. A head that arrives in pieces costs
//! the same as one that arrives whole, and holds at most
//! [`Limits::max_head_bytes`]; after warm-up, decoding and encoding allocate
//! nothing.
//!
//! For servers behind a load balancer, [`parse_proxy_header`] reads the
//! PROXY protocol header (v1 or v2) that precedes the first request and
//! gives the client's address; it is stateless and the caller holds the
//! bytes until it decides.
//!
//! What it does not do: network I/O, timers and clocks (the caller passes
//! the time in as an [`HttpDate`]), routing, content codings (gzip),
//! upgrades and CONNECT tunnels, HTTP/2, or responses with trailers.
//!
//! A request body is collected in [`Decoder::body`] as it is decoded, so by
//! default the whole body is held in memory. A caller that takes each piece
//! as it arrives ([`Event::BodyData`], then [`Decoder::discard_body`], as
//! ringwall does for a handler that streams bodies) holds at most one
//! read's worth, whatever the body's length. Either way
//! [`Limits::max_body_bytes`] bounds the body (413 above it).
//!
//! [httparse]: https://docs.rs/httparse

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(missing_debug_implementations)]

mod chunked;
mod date;
mod decoder;
mod encoder;
mod error;
mod framing;
mod head;
mod head_reader;
mod limits;
mod proxy;
mod request_line;
mod status;
mod token;
mod version;

/// The chunked body decoder alone, for fuzz/fuzz_targets/chunked.rs; the
/// [`Decoder`] drives it for everyone else.
#[cfg(feature = "fuzzing")]
pub use chunked::{ChunkedDecoder, ChunkedProgress};
pub use date::HttpDate;
pub use decoder::{DecodeBuffers, Decoder, Event};
pub use encoder::{
    encode_chunk, encode_chunked_head, encode_continue, encode_error, encode_last_chunk,
    encode_response, encode_response_cached, encode_response_prepared, encode_sized_head,
    encode_stream_data, encode_stream_end, sized_body_expected, EncodeContext, HeadCache,
    PreparedHeaders,
};
pub use error::{DecodeError, EncodeError};
pub use framing::BodyKind;
pub use head::RequestHead;
pub use limits::{Limits, LimitsError};
pub use proxy::{
    parse_proxy_header, ProxyHeaderError, ProxyStatus, MAX_V1_HEADER_BYTES, MAX_V2_HEADER_BYTES,
};
pub use status::status_reason;
pub use version::Version;
