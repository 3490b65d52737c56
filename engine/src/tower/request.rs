//! The ringwall request as an `http` one, and what a service learns of the
//! connection it came on.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Body;
use crate::{Request, Version};

/// Request fields gathered on the stack; a head with more takes one
/// allocation for them.
const INLINE_FIELDS: usize = 32;

/// The client's address, in every request's extensions: the socket's
/// peer, or the address a PROXY protocol header carried when the server
/// takes one ([`ServerBuilder::proxy_protocol`](crate::ServerBuilder::proxy_protocol)).
/// Absent only when the peer was already gone as the request was read.
///
/// ```
/// # use ringwall::tower::{Body, PeerAddr};
/// fn client(request: &http::Request<Body>) -> Option<std::net::SocketAddr> {
///     request.extensions().get::<PeerAddr>().map(|peer| peer.0)
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// What a make-service is called with: the connection a request arrived
/// on. ringwall has no per-connection hook for the service, so the
/// make-service is called once per request (for axum's
/// `IntoMakeServiceWithConnectInfo`, a clone of the router, which is an
/// `Arc`, and one request extension).
///
/// With the `axum` feature, `SocketAddr: Connected<IncomingConnection>`,
/// so `router.into_make_service_with_connect_info::<SocketAddr>()` gives
/// handlers `ConnectInfo<SocketAddr>`.
#[derive(Clone, Copy, Debug)]
pub struct IncomingConnection {
    pub(crate) peer_addr: Option<SocketAddr>,
}

impl IncomingConnection {
    /// The client's address, as [`PeerAddr`] carries it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }
}

/// The ringwall request as an `http` one, or `None` when the http crate
/// refuses a part the engine's parser accepted.
///
/// The target and every header value are copied once, into one buffer that
/// the `Uri` and each `HeaderValue` share; a standard header name is the
/// http crate's static one (`HeaderName::from_bytes` allocates only for
/// other names).
pub(crate) fn http_request(
    request: &Request<'_>,
    peer_addr: Option<SocketAddr>,
) -> Option<http::Request<Body>> {
    let body = match request.body_stream() {
        Some(streamed) => Body::from(streamed),
        None if request.body().is_empty() => Body::empty(),
        None => Body::from(Bytes::copy_from_slice(request.body())),
    };
    let target = request.target();
    // One pass over the fields (each yields its name through a UTF-8
    // check), into the stack for a usual head.
    let mut inline = [("", &[][..]); INLINE_FIELDS];
    let mut spilled = Vec::new();
    let fields: &[(&str, &[u8])] = if request.headers().size_hint().0 <= INLINE_FIELDS {
        let mut n = 0;
        for field in request.headers() {
            inline[n] = field;
            n += 1;
        }
        &inline[..n]
    } else {
        spilled.extend(request.headers());
        &spilled
    };
    let value_bytes: usize = fields.iter().map(|(_, value)| value.len()).sum();
    // Exactly sized: a `Vec` whose length is its capacity becomes `Bytes`
    // without reallocating.
    let mut head = Vec::with_capacity(target.len() + value_bytes);
    head.extend_from_slice(target.as_bytes());
    for (_, value) in fields {
        head.extend_from_slice(value);
    }
    let head = Bytes::from(head);

    let mut http_request = http::Request::new(body);
    *http_request.method_mut() = http::Method::from_bytes(request.method().as_bytes()).ok()?;
    *http_request.uri_mut() = http::Uri::from_maybe_shared(head.slice(..target.len())).ok()?;
    *http_request.version_mut() = match request.version() {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut at = target.len();
    for (name, value) in fields {
        let value = head.slice(at..at + value.len());
        at += value.len();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_maybe_shared(value).ok()?,
        );
    }
    *http_request.headers_mut() = headers;
    if let Some(addr) = peer_addr {
        http_request.extensions_mut().insert(PeerAddr(addr));
    }
    Some(http_request)
}
