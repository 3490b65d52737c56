//! The ringwall request as an `http` one.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Body;
use crate::{Request, Version};

/// The ringwall request as an `http` one, or `None` when the http crate
/// refuses a part the engine's parser accepted.
///
/// The target and every header value are copied once, into one buffer that
/// the `Uri` and each `HeaderValue` share; a standard header name is the
/// http crate's static one (`HeaderName::from_bytes` allocates only for
/// other names).
pub(crate) fn http_request(request: &Request<'_>) -> Option<http::Request<Body>> {
    let body = match request.body_stream() {
        Some(streamed) => Body::from(streamed),
        None if request.body().is_empty() => Body::empty(),
        None => Body::from(Bytes::copy_from_slice(request.body())),
    };
    let target = request.target();
    let (fields, value_bytes) = request
        .headers()
        .fold((0, 0), |(n, len), (_, value)| (n + 1, len + value.len()));
    // Exactly sized: a `Vec` whose length is its capacity becomes `Bytes`
    // without reallocating.
    let mut head = Vec::with_capacity(target.len() + value_bytes);
    head.extend_from_slice(target.as_bytes());
    for (_, value) in request.headers() {
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
    let mut headers = HeaderMap::with_capacity(fields);
    let mut at = target.len();
    for (name, value) in request.headers() {
        let value = head.slice(at..at + value.len());
        at += value.len();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_maybe_shared(value).ok()?,
        );
    }
    *http_request.headers_mut() = headers;
    Some(http_request)
}
