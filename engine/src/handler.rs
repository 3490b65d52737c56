//! The application's side: a [`Handler`] sees a complete [`Request`] and
//! answers through a [`Response`], inline on the worker thread.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use ringwall_h1::{encode_response, EncodeContext, EncodeError, RequestHead, Version};

/// Answers requests. Called inline on the worker thread that owns the
/// connection, so it must not block: a slow handler stalls every connection
/// of that worker.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>);
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
}

impl<'a> Request<'a> {
    pub fn method(&self) -> &'a str {
        self.head.method()
    }
    pub fn target(&self) -> &'a str {
        self.head.target()
    }
    pub fn path(&self) -> &'a str {
        self.head.path()
    }
    pub fn query(&self) -> Option<&'a str> {
        self.head.query()
    }
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
    /// The request body, decoded (chunked framing removed).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// The peer's address, read from the socket when asked (one syscall), so
    /// requests that never ask pay nothing.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        crate::socket::peer_addr(self.fd)
    }
}

/// Where the handler writes its answer: straight into the connection's send
/// queue, framed by the encoder (Content-Length, Date, Connection).
pub struct Response<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) ctx: EncodeContext<'a>,
    pub(crate) sent: bool,
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
        if self.sent {
            return Err(ResponseError::AlreadySent);
        }
        encode_response(self.out, status, headers, body, &self.ctx)
            .map_err(ResponseError::Encode)?;
        self.sent = true;
        Ok(())
    }

    /// Whether `send` has succeeded.
    pub fn is_sent(&self) -> bool {
        self.sent
    }

    /// Whether the connection stays open after this response.
    pub fn keep_alive(&self) -> bool {
        self.ctx.keep_alive
    }
}

/// A response the engine refused to write.
#[derive(Debug)]
pub enum ResponseError {
    AlreadySent,
    Encode(EncodeError),
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::AlreadySent => write!(f, "a response was already sent for this request"),
            ResponseError::Encode(e) => write!(f, "response not written: {e}"),
        }
    }
}

impl std::error::Error for ResponseError {}
