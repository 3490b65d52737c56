//! The application's side: a [`Handler`] sees a complete [`Request`] and
//! answers through a [`Response`], inline on the worker thread, or defers
//! the answer to a [`Responder`] that completes it later from any thread.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::app::deferred::{ExchangeState, Mailbox, Responder};
use crate::app::request_body::RequestBody;

use crate::app::large_buffers::{LargeBufferPool, LARGE_BUFFER_MIN};

use ringwall_h1::{
    encode_response, encode_response_cached, encode_sized_head, sized_body_expected, EncodeContext,
    EncodeError, HeadCache, PreparedHeaders, RequestHead, Version,
};

/// Answers requests. Called inline on the worker thread that owns the
/// connection, so it must not block: a slow handler stalls every connection
/// of that worker. One that must wait (a database, another service, a
/// timer) calls [`Response::defer`] and answers through the [`Responder`]
/// from wherever the result arrives.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request through `response`, or defers the answer. A
    /// handler that panics or returns without sending or deferring gets a
    /// 500 in its place, and the connection closes.
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>);

    /// Whether requests with a body are handed over as soon as their head
    /// has parsed, with the body streamed through
    /// [`Request::body_stream`] as it arrives (bounded by
    /// [`ServerBuilder::max_streamed_body_bytes`](crate::ServerBuilder::max_streamed_body_bytes)
    /// instead of `max_body_bytes`), rather than collected whole first.
    /// Asked once, when the server starts. Default: collected whole.
    fn streams_request_bodies(&self) -> bool {
        false
    }
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
{
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) {
        self(request, response)
    }
}

/// A complete request: head and body (up to `max_body_bytes`).
pub struct Request<'a> {
    pub(crate) head: RequestHead<'a>,
    pub(crate) body: &'a [u8],
    pub(crate) fd: RawFd,
    /// The client's address from a PROXY protocol header, if any.
    pub(crate) proxied_peer: Option<SocketAddr>,
    /// The body still to come, for a handler that streams request bodies.
    pub(crate) body_stream: Cell<Option<RequestBody>>,
}

impl<'a> Request<'a> {
    /// The method, case-sensitive (RFC 9110 9.1).
    pub fn method(&self) -> &'a str {
        self.head.method()
    }
    /// The request-target as sent.
    pub fn target(&self) -> &'a str {
        self.head.target()
    }
    /// The path: for origin-form the target before `?`; for absolute-form
    /// the path part of the URI ("/" when it has none); "*" for
    /// asterisk-form; the authority for CONNECT's authority-form.
    pub fn path(&self) -> &'a str {
        self.head.path()
    }
    /// The query after `?`, without it; `None` when there is no `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query()
    }
    /// The HTTP version named in the request line.
    pub fn version(&self) -> Version {
        self.head.version()
    }
    /// Header fields in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.head.headers()
    }
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(name)
    }
    /// The request body, decoded (chunked framing removed). Empty for a
    /// request whose body is streamed (see [`Request::body_stream`]).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The body as it arrives, for a handler whose
    /// [`Handler::streams_request_bodies`] is true and a request that
    /// announced one; taken once (later calls return `None`). Read it from
    /// any thread, typically after [`Response::defer`]. Dropped unread, the
    /// rest of the body is discarded.
    pub fn body_stream(&self) -> Option<RequestBody> {
        self.body_stream.take()
    }
    /// The peer's address, read from the socket when asked (one syscall), so
    /// requests that never ask pay nothing. With
    /// [`crate::ServerBuilder::proxy_protocol`] on, the client address the
    /// connection's PROXY header carried instead (the socket's peer for a
    /// LOCAL or UNKNOWN header).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.proxied_peer
            .or_else(|| crate::sys::socket::peer_addr(self.fd))
    }
}

/// Where the handler writes its answer: straight into the connection's send
/// queue, framed by the encoder (Content-Length, Date, Connection).
pub struct Response<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    /// Where a large body's buffer comes from (see `large_buffers.rs`).
    pub(crate) large: &'a mut LargeBufferPool,
    pub(crate) ctx: EncodeContext<'a>,
    /// The worker's last head written with prepared fields.
    pub(crate) head_cache: &'a mut HeadCache,
    pub(crate) sent: bool,
    /// Where a deferred answer is posted, and the slot it answers.
    pub(crate) mailbox: &'a Arc<Mailbox>,
    pub(crate) slot: (u32, u32),
    /// Set by [`Response::defer`]: the exchange the responder completes.
    pub(crate) deferred: Option<Arc<ExchangeState>>,
}

impl Response<'_> {
    /// Writes the whole response. The engine adds `Content-Length`, `Date`
    /// and `Connection`; passing any of those, or a header value with CR, LF
    /// or NUL, is an error and nothing is written. A second call is an error.
    pub fn send(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<(), ResponseError> {
        self.write_whole(body.len(), |out, ctx, _| {
            encode_response(out, status, headers, body, ctx)
        })
    }

    /// [`Response::send`] with header fields checked once beforehand (see
    /// [`PreparedHeaders`]): for the fields sent on every response, copied
    /// as one block instead of checked and written one by one each time.
    /// The worker keeps the last head written this way and copies it whole
    /// while responses keep the same status, fields and body length (within
    /// the second of one Date).
    pub fn send_prepared(
        &mut self,
        status: u16,
        headers: &PreparedHeaders,
        body: &[u8],
    ) -> Result<(), ResponseError> {
        self.write_whole(body.len(), |out, ctx, head_cache| {
            encode_response_cached(out, status, headers, body, ctx, head_cache)
        })
    }

    /// One whole response, unless one was already sent or deferred.
    fn write_whole(
        &mut self,
        body_len: usize,
        encode: impl FnOnce(&mut Vec<u8>, &EncodeContext<'_>, &mut HeadCache) -> Result<(), EncodeError>,
    ) -> Result<(), ResponseError> {
        if self.sent || self.deferred.is_some() {
            return Err(ResponseError::AlreadySent);
        }
        self.make_room(body_len);
        encode(self.out, &self.ctx, self.head_cache).map_err(ResponseError::Encode)?;
        self.sent = true;
        Ok(())
    }

    /// Writes a response of exactly `body_len` body bytes, which
    /// `write_body` appends straight into the connection's send queue
    /// through a [`BodyWriter`]: no intermediate buffer, one copy. For a
    /// HEAD request (or a 1xx/204/304 status) `write_body` is not called,
    /// so no body is built for nothing. Writing more or fewer bytes than
    /// announced is an error and nothing is sent.
    pub fn send_sized(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        body_len: usize,
        write_body: impl FnOnce(&mut BodyWriter<'_>),
    ) -> Result<(), ResponseError> {
        if self.sent || self.deferred.is_some() {
            return Err(ResponseError::AlreadySent);
        }
        self.make_room(body_len);
        let mark = self.out.len();
        encode_sized_head(self.out, status, headers, body_len as u64, &self.ctx)
            .map_err(ResponseError::Encode)?;
        if sized_body_expected(status, &self.ctx) {
            let mut writer = BodyWriter {
                out: self.out,
                remaining: body_len,
            };
            write_body(&mut writer);
            if writer.remaining != 0 {
                let written = body_len - writer.remaining;
                self.out.truncate(mark);
                return Err(ResponseError::BodyLength {
                    announced: body_len,
                    written,
                });
            }
        }
        self.sent = true;
        Ok(())
    }

    /// Room for a head and `body_len` body bytes, in one allocation: a
    /// large body grown by doubling would copy itself several times. A
    /// large one comes from the worker's pool of recently freed large
    /// buffers when one fits, so its pages are already mapped.
    fn make_room(&mut self, body_len: usize) {
        const HEAD_ROOM: usize = 1024;
        let need = self.out.len() + HEAD_ROOM + body_len;
        if need <= self.out.capacity() {
            return;
        }
        if body_len >= LARGE_BUFFER_MIN {
            if let Some(mut buffer) = self.large.take(need) {
                buffer.extend_from_slice(self.out);
                let old = std::mem::replace(self.out, buffer);
                self.large.give(old);
                return;
            }
        }
        self.out.reserve_exact(need - self.out.len());
    }

    /// Answers later: the handler returns without answering and the
    /// returned [`Responder`] (`Send + 'static`) completes the response
    /// from any thread, whole or streamed. The worker serves its other
    /// connections meanwhile; this connection dispatches no further request
    /// until the response is complete, so responses leave in request order.
    /// The request itself is gone when the handler returns: copy what the
    /// answer needs first.
    ///
    /// While the answer is pending only the handler deadline
    /// ([`ServerBuilder::handler_timeout`](crate::ServerBuilder::handler_timeout))
    /// runs: when it passes, the client gets 503 and the responder learns
    /// the connection is gone. Dropping the responder unanswered answers
    /// 500.
    pub fn defer(&mut self) -> Result<Responder, ResponseError> {
        if self.sent || self.deferred.is_some() {
            return Err(ResponseError::AlreadySent);
        }
        let state = Arc::new(ExchangeState::default());
        self.deferred = Some(Arc::clone(&state));
        let (key, generation) = self.slot;
        Ok(Responder::new(
            Arc::clone(self.mailbox),
            key,
            generation,
            state,
        ))
    }

    /// Whether `send` has succeeded.
    pub fn is_sent(&self) -> bool {
        self.sent
    }

    /// Whether [`Response::defer`] has handed the answer to a responder.
    pub fn is_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// Whether the connection stays open after this response.
    pub fn keep_alive(&self) -> bool {
        self.ctx.keep_alive
    }
}

/// Appends a sized body into the send queue; see [`Response::send_sized`].
pub struct BodyWriter<'a> {
    out: &'a mut Vec<u8>,
    remaining: usize,
}

impl BodyWriter<'_> {
    /// Appends `bytes`, or as many as the announced length still allows;
    /// returns how many were taken.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.remaining);
        self.out.extend_from_slice(&bytes[..n]);
        self.remaining -= n;
        n
    }

    /// Body bytes still owed.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

/// A response the engine refused to write.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResponseError {
    /// This request was already answered or deferred; nothing more is sent.
    AlreadySent,
    /// The encoder refused the status, a header or the body ([`EncodeError`]).
    Encode(EncodeError),
    /// `send_sized` got a different number of body bytes than it announced.
    BodyLength {
        /// The body length given to `send_sized`, in bytes.
        announced: usize,
        /// The body bytes actually written.
        written: usize,
    },
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::AlreadySent => write!(f, "a response was already sent for this request"),
            ResponseError::Encode(e) => write!(f, "response not written: {e}"),
            ResponseError::BodyLength { announced, written } => write!(
                f,
                "response not written: {announced} body bytes announced, {written} written"
            ),
        }
    }
}

impl std::error::Error for ResponseError {}
