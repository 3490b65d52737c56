//! Any tower [`Service`] on ringwall: an axum `Router`, a hyper-style
//! `service_fn`, a stack of tower-http layers. Behind the `tower` feature.
//!
//! ```text
//!  worker thread                                   tokio runtime
//!  ─────────────                                   ─────────────
//!  Request ─► http::Request<Body> ─► service.call
//!             (Handle::enter)          │ polled once, here
//!                     ready at once ◄──┤
//!  Response::send_sized ◄── frames ────┘ pending, or a body that waits
//!                                      └──► Response::defer ─► spawn ─► Responder
//!                                                                       │ BodySender
//!  the worker's mailbox ◄───────────────────────────────────────────────┘ (ready().await
//!                                                                          before each send)
//! ```
//!
//! Most handlers answer without waiting, so the service's future is polled
//! once on the worker thread, inside the runtime's context (tokio timers
//! and I/O register with its drivers), and a response whose body frames are
//! all ready at once is written inline: no thread hop, no wake. Only a
//! future (or body) that waits is spawned onto the runtime, answering
//! through a [`Responder`]; it is dropped, and so cancelled, when the
//! connection goes (disconnect, deadline, shutdown). A panic, inline or in
//! the task, answers 500.
//!
//! Request bodies stream from the socket as they arrive ([`Body`]), with
//! ringwall's flow control; response bodies stream back with its
//! backpressure, so memory per connection is bounded both ways.
//!
//! What it does not do: HTTP upgrades (WebSocket), trailers (dropped), or
//! build a runtime: pass the [`Handle`] of yours.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body::{Frame, SizeHint};
use tokio::runtime::Handle;
use tower_service::Service;

use crate::{BodyError, BodySender, Handler, Request, RequestBody, Responder, Response, Version};

/// The error type a service and its response body convert theirs into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body bytes the inline path gathers before it hands the rest of a
/// response to the runtime: a body that is always ready (an iterator
/// stream) must not be gathered whole on the worker.
const INLINE_BODY_MAX: usize = 64 * 1024;

/// A request body: streamed from the connection as it arrives.
#[derive(Debug, Default)]
pub struct Body {
    kind: BodyKind,
}

#[derive(Debug, Default)]
enum BodyKind {
    #[default]
    Empty,
    Full(Bytes),
    Streamed(RequestBody),
}

impl Body {
    /// A body with nothing in it.
    pub fn empty() -> Body {
        Body::default()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body {
            kind: BodyKind::Full(bytes),
        }
    }
}

impl From<RequestBody> for Body {
    fn from(body: RequestBody) -> Body {
        Body {
            kind: BodyKind::Streamed(body),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            BodyKind::Empty => Poll::Ready(None),
            BodyKind::Full(_) => {
                let BodyKind::Full(bytes) = std::mem::take(&mut self.kind) else {
                    unreachable!("matched Full above");
                };
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            BodyKind::Streamed(body) => body
                .poll_chunk(cx)
                .map(|chunk| chunk.map(|piece| piece.map(|bytes| Frame::data(Bytes::from(bytes))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Empty => SizeHint::with_exact(0),
            BodyKind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            BodyKind::Streamed(body) => match body.content_length() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}

/// A ringwall [`Handler`] that serves a tower [`Service`] on a tokio
/// runtime.
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// let app = Router::new().route("/", get(|| async { "Hello, World!" }));
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// let handler = ringwall::tower::ServiceHandler::new(app, runtime.handle().clone());
/// let server = ringwall::Server::builder()
///     .bind("127.0.0.1:8080".parse().unwrap())
///     .build()?
///     .serve(handler)?;
/// server.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServiceHandler<S> {
    service: S,
    runtime: Handle,
}

impl<S> ServiceHandler<S> {
    /// Serves `service`; its futures run in `runtime`'s context.
    pub fn new(service: S, runtime: Handle) -> ServiceHandler<S> {
        ServiceHandler { service, runtime }
    }
}

impl<S, B> Handler for ServiceHandler<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) {
        let Some(http_request) = http_request(request) else {
            let _ = response.send(
                400,
                &[("Content-Type", b"text/plain")],
                b"Bad Request: the request is not one the http crate accepts\n",
            );
            return;
        };
        let _context = self.runtime.enter();
        let mut service = self.service.clone();
        let mut call = Box::pin(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            service.call(http_request).await.map_err(Into::into)
        });
        // A future still pending is polled again by its task on the
        // runtime, with that task's waker: this first poll's waker is never
        // needed.
        let mut cx = Context::from_waker(Waker::noop());
        let answered = match call.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(answer)) => answer,
            Poll::Ready(Err(_)) => {
                let _ = response.send(500, &[], b"");
                return;
            }
            Poll::Pending => {
                if let Ok(responder) = response.defer() {
                    self.runtime.spawn(complete(call, responder));
                }
                return;
            }
        };
        let (parts, body) = answered.into_parts();
        let mut body = Box::pin(body);
        let mut gathered = Gathered::default();
        loop {
            if body.is_end_stream() {
                answer_inline(response, &parts, &gathered);
                return;
            }
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => gathered.push(frame),
                Poll::Ready(Some(Err(_))) => {
                    let _ = response.send(500, &[], b"");
                    return;
                }
                Poll::Ready(None) => {
                    answer_inline(response, &parts, &gathered);
                    return;
                }
                Poll::Pending => break,
            }
            if gathered.len >= INLINE_BODY_MAX {
                break;
            }
        }
        if let Ok(responder) = response.defer() {
            self.runtime
                .spawn(stream_response(parts, body, gathered, responder));
        }
    }

    fn streams_request_bodies(&self) -> bool {
        true
    }
}

/// The ringwall request as an `http` one, or `None` when the http crate
/// refuses a part the engine's parser accepted.
fn http_request(request: &Request<'_>) -> Option<http::Request<Body>> {
    let body = match request.body_stream() {
        Some(streamed) => Body::from(streamed),
        None if request.body().is_empty() => Body::empty(),
        None => Body::from(Bytes::copy_from_slice(request.body())),
    };
    let mut http_request = http::Request::new(body);
    *http_request.method_mut() = http::Method::from_bytes(request.method().as_bytes()).ok()?;
    *http_request.uri_mut() = http::Uri::try_from(request.target()).ok()?;
    *http_request.version_mut() = match request.version() {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
    };
    let headers = http_request.headers_mut();
    for (name, value) in request.headers() {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    Some(http_request)
}

/// Whether the engine writes this header itself (framing, `Date`,
/// `Connection`) or it is hop-by-hop and means nothing past this hop: the
/// service's copy is dropped.
fn engine_owned(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || name == header::DATE
        || name.as_str() == "keep-alive"
}

/// The service's headers as the engine takes them.
fn engine_headers(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .filter(|(name, _)| !engine_owned(name))
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// Body data already taken from a response body.
#[derive(Default)]
struct Gathered {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Gathered {
    fn push<D: Buf>(&mut self, frame: Frame<D>) {
        // Trailers have no place in an HTTP/1.1 answer the engine frames.
        if let Ok(mut data) = frame.into_data() {
            let bytes = data.copy_to_bytes(data.remaining());
            if !bytes.is_empty() {
                self.len += bytes.len();
                self.chunks.push(bytes);
            }
        }
    }
}

fn answer_inline(response: &mut Response<'_>, parts: &http::response::Parts, gathered: &Gathered) {
    let headers = engine_headers(&parts.headers);
    // One copy, straight into the send queue; the engine frames it.
    let _ = response.send_sized(parts.status.as_u16(), &headers, gathered.len, |writer| {
        for chunk in &gathered.chunks {
            writer.write(chunk);
        }
    });
}

/// Runs a service future that did not finish inline, on the runtime, and
/// answers through `responder`; drops it (cancels it) once the connection
/// is gone.
async fn complete<F, B>(mut call: Pin<Box<F>>, responder: Responder)
where
    F: Future<Output = Result<http::Response<B>, BoxError>>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
            return Poll::Ready(Some(outcome));
        }
        responder.poll_gone(cx).map(|()| None)
    })
    .await;
    drop(call);
    match outcome {
        None => {}
        Some(Err(_)) => {
            let _ = responder.send(500, &[], Vec::new());
        }
        Some(Ok(answer)) => {
            let (parts, body) = answer.into_parts();
            stream_response(parts, Box::pin(body), Gathered::default(), responder).await;
        }
    }
}

/// Sends a response whose body was not (all) ready at once: the head, what
/// was gathered, then each frame as it comes, waiting for room before each.
/// A body that fails, or a connection that goes, ends it; the dropped
/// sender resets the connection, so a truncated body never looks complete.
async fn stream_response<B>(
    parts: http::response::Parts,
    mut body: Pin<Box<B>>,
    gathered: Gathered,
    responder: Responder,
) where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let status = parts.status.as_u16();
    let headers = engine_headers(&parts.headers);
    if body.is_end_stream() && gathered.chunks.is_empty() {
        let _ = responder.send(status, &headers, Vec::new());
        return;
    }
    let length = body.size_hint().exact();
    let Ok(sender) = responder.stream(status, &headers, length) else {
        return;
    };
    for chunk in gathered.chunks {
        if sender.send(Vec::from(chunk)).is_err() {
            return;
        }
    }
    loop {
        if poll_fn(|cx| sender.poll_ready(cx)).await.is_err() {
            return;
        }
        let Some(frame) = next_frame(&mut body, &sender).await else {
            return;
        };
        match frame {
            None => break,
            Some(Ok(frame)) => {
                let mut one = Gathered::default();
                one.push(frame);
                for chunk in one.chunks {
                    if sender.send(Vec::from(chunk)).is_err() {
                        return;
                    }
                }
            }
            Some(Err(_)) => return,
        }
    }
    let _ = sender.finish();
}

/// The body's next frame, or `None` once the connection is gone.
async fn next_frame<B: http_body::Body>(
    body: &mut Pin<Box<B>>,
    sender: &BodySender,
) -> Option<Option<Result<Frame<B::Data>, B::Error>>> {
    poll_fn(|cx| {
        if let Poll::Ready(frame) = body.as_mut().poll_frame(cx) {
            return Poll::Ready(Some(frame));
        }
        sender.poll_gone(cx).map(|()| None)
    })
    .await
}
