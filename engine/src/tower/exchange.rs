//! One request's answer: the service's future polled once on the worker,
//! answered inline when it and its body are ready, or handed to a task on
//! the runtime that answers through a [`Responder`].

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderName};
use http_body::Frame;
use tokio::runtime::Handle;

use super::BoxError;
use crate::{BodySender, Responder, Response};

/// Body bytes the inline path gathers before it hands the rest of a
/// response to the runtime: a body that is always ready (an iterator
/// stream) must not be gathered whole on the worker.
const INLINE_BODY_MAX: usize = 64 * 1024;

/// Response fields passed to the engine from the stack; a response with
/// more takes one allocation for them.
const INLINE_FIELDS: usize = 16;

/// Answers with what `call` produces. Called inside the runtime's context.
pub(crate) fn answer<F, B>(runtime: &Handle, response: &mut Response<'_>, call: F)
where
    F: Future<Output = Result<http::Response<B>, BoxError>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Boxed before the first poll: a future that is still pending moves,
    // pinned, into its task.
    let mut call = Box::pin(call);
    // A future still pending is polled again by its task on the runtime,
    // with that task's waker: this first poll's waker is never needed, and
    // an answer ready at once wakes no runtime thread.
    let mut cx = Context::from_waker(Waker::noop());
    let answered = match call.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(answer)) => answer,
        Poll::Ready(Err(_)) => {
            let _ = response.send(500, &[], b"");
            return;
        }
        Poll::Pending => {
            if let Ok(responder) = response.defer() {
                runtime.spawn(complete(call, responder));
            }
            return;
        }
    };
    drop(call);
    let (parts, body) = answered.into_parts();
    let mut gathered = Gathered::default();
    if body.is_end_stream() {
        answer_inline(response, &parts, &gathered);
        return;
    }
    // Boxed for the same reason as the call: a body that waits moves into
    // the task that streams it.
    let mut body = Box::pin(body);
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => gathered.push(frame),
            Poll::Ready(Some(Err(_))) => {
                let _ = response.send(500, &[], b"");
                return;
            }
            Poll::Ready(None) => break,
            Poll::Pending => {
                if let Ok(responder) = response.defer() {
                    runtime.spawn(stream_response(parts, body, gathered, responder));
                }
                return;
            }
        }
        if body.is_end_stream() {
            break;
        }
        if gathered.len >= INLINE_BODY_MAX {
            if let Ok(responder) = response.defer() {
                runtime.spawn(stream_response(parts, body, gathered, responder));
            }
            return;
        }
    }
    answer_inline(response, &parts, &gathered);
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

/// Calls `f` with the service's headers as the engine takes them, from the
/// stack when there are at most [`INLINE_FIELDS`].
fn with_engine_headers<R>(headers: &HeaderMap, f: impl FnOnce(&[(&str, &[u8])]) -> R) -> R {
    let fields = headers
        .iter()
        .filter(|(name, _)| !engine_owned(name))
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    if headers.len() > INLINE_FIELDS {
        let fields: Vec<_> = fields.collect();
        return f(&fields);
    }
    let mut inline: [(&str, &[u8]); INLINE_FIELDS] = [("", &[]); INLINE_FIELDS];
    let mut n = 0;
    for field in fields {
        inline[n] = field;
        n += 1;
    }
    f(&inline[..n])
}

/// Body data already taken from a response body. Most bodies are one
/// frame, kept without a `Vec`.
#[derive(Default)]
struct Gathered {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
    len: usize,
}

impl Gathered {
    fn push<D: Buf>(&mut self, frame: Frame<D>) {
        // Trailers have no place in an HTTP/1.1 answer the engine frames.
        if let Ok(mut data) = frame.into_data() {
            let bytes = data.copy_to_bytes(data.remaining());
            if bytes.is_empty() {
                return;
            }
            self.len += bytes.len();
            if self.first.is_none() {
                self.first = Some(bytes);
            } else {
                self.rest.push(bytes);
            }
        }
    }

    fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.first.iter().chain(&self.rest)
    }

    fn into_chunks(self) -> impl Iterator<Item = Bytes> {
        self.first.into_iter().chain(self.rest)
    }
}

fn answer_inline(response: &mut Response<'_>, parts: &http::response::Parts, gathered: &Gathered) {
    with_engine_headers(&parts.headers, |headers| {
        // One copy, straight into the send queue; the engine frames it.
        let _ = response.send_sized(parts.status.as_u16(), headers, gathered.len, |writer| {
            for chunk in gathered.chunks() {
                writer.write(chunk);
            }
        });
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
    if body.is_end_stream() && gathered.len == 0 {
        with_engine_headers(&parts.headers, |headers| {
            let _ = responder.send(status, headers, Vec::new());
        });
        return;
    }
    let length = body.size_hint().exact();
    let Ok(sender) = with_engine_headers(&parts.headers, |headers| {
        responder.stream(status, headers, length)
    }) else {
        return;
    };
    for chunk in gathered.into_chunks() {
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
                for chunk in one.into_chunks() {
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
