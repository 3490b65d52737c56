//! Request bodies streamed to the handler as they arrive, with flow
//! control that reaches TCP: while the consumer holds more than
//! [`BODY_HIGH_WATER`] unread, the worker stops reading the socket, and the
//! consumer's next read below [`BODY_LOW_WATER`] asks it to read again.
//!
//! A handler opts in with
//! [`Handler::streams_request_bodies`](crate::Handler::streams_request_bodies);
//! it is then called as soon as a
//! head that announces a body has parsed, and takes the body with
//! [`Request::body_stream`](crate::Request::body_stream).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::app::deferred::{Completion, ExchangeEvent, Mailbox};

/// The worker stops reading a connection whose consumer holds this much
/// unread body.
pub const BODY_HIGH_WATER: usize = 256 * 1024;
/// A consumer that reads the unread body down to this asks the worker to
/// read again.
pub const BODY_LOW_WATER: usize = 64 * 1024;

/// Why a streamed request body ended before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The connection closed first: the peer left, a deadline (body, body
    /// rate) passed, or the server shut down.
    Gone,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Gone => f.write_str("the connection closed before the request body ended"),
        }
    }
}

impl std::error::Error for BodyError {}

#[derive(Debug, Default)]
struct Inner {
    chunks: VecDeque<Vec<u8>>,
    unread: usize,
    ended: bool,
    failed: bool,
    /// The worker stopped reading because of this consumer; the next read
    /// that brings `unread` down to the low-water mark tells it to resume.
    reading_paused: bool,
    waker: Option<Waker>,
}

/// What the worker and the consumer share about one streamed body.
#[derive(Debug, Default)]
pub(crate) struct BodyChannel {
    inner: Mutex<Inner>,
    /// The consumer dropped its end: the worker discards the rest.
    abandoned: AtomicBool,
}

impl BodyChannel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The worker appends body bytes; returns whether the consumer is now
    /// far enough behind that the socket must stop being read.
    pub fn push(&self, bytes: &[u8]) -> bool {
        let mut inner = self.lock();
        if !bytes.is_empty() {
            inner.chunks.push_back(bytes.to_vec());
            inner.unread += bytes.len();
        }
        let behind = inner.unread > BODY_HIGH_WATER;
        if behind {
            inner.reading_paused = true;
        }
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        behind
    }

    /// The body is complete.
    pub fn end(&self) {
        self.finish(false);
    }

    /// The connection is gone before the body ended.
    pub fn fail(&self) {
        self.finish(true);
    }

    fn finish(&self, failed: bool) {
        let mut inner = self.lock();
        if inner.ended || inner.failed {
            return;
        }
        if failed {
            inner.failed = true;
        } else {
            inner.ended = true;
        }
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Whether the worker should read again: it paused for this consumer,
    /// and the consumer has caught up (or left).
    pub fn may_resume(&self) -> bool {
        let inner = self.lock();
        !inner.reading_paused || inner.unread <= BODY_LOW_WATER || self.is_abandoned()
    }

    /// The worker resumed reading.
    pub fn resumed(&self) {
        self.lock().reading_paused = false;
    }
}

/// A request body as it arrives; see
/// [`Request::body_stream`](crate::Request::body_stream). `Send`, so it can
/// be read on any thread.
/// Dropping it unread lets the worker discard the rest of the body.
#[derive(Debug)]
pub struct RequestBody {
    channel: Arc<BodyChannel>,
    mailbox: Arc<Mailbox>,
    key: u32,
    generation: u32,
    /// The announced `Content-Length`, if any.
    length: Option<u64>,
}

impl RequestBody {
    pub(crate) fn new(
        channel: Arc<BodyChannel>,
        mailbox: Arc<Mailbox>,
        key: u32,
        generation: u32,
        length: Option<u64>,
    ) -> RequestBody {
        RequestBody {
            channel,
            mailbox,
            key,
            generation,
            length,
        }
    }

    /// The length the request announced (`Content-Length`); `None` for a
    /// chunked body.
    pub fn content_length(&self) -> Option<u64> {
        self.length
    }

    /// The next piece of the body; `None` at its end.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<u8>, BodyError>>> {
        let mut inner = self.channel.lock();
        if let Some(chunk) = inner.chunks.pop_front() {
            inner.unread -= chunk.len();
            let wake_worker = inner.reading_paused && inner.unread <= BODY_LOW_WATER;
            if wake_worker {
                // Asked once: the worker clears the flag when it resumes.
                inner.reading_paused = false;
            }
            drop(inner);
            if wake_worker {
                self.ask_to_read();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if inner.ended {
            return Poll::Ready(None);
        }
        if inner.failed {
            return Poll::Ready(Some(Err(BodyError::Gone)));
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits (async) for the next piece of the body.
    pub async fn chunk(&mut self) -> Option<Result<Vec<u8>, BodyError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn ask_to_read(&self) {
        self.mailbox.post(Completion {
            key: self.key,
            generation: self.generation,
            event: ExchangeEvent::ReadBody,
        });
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let inner = self.channel.lock();
        let unfinished = !inner.ended && !inner.failed;
        let paused = inner.reading_paused;
        drop(inner);
        if unfinished {
            self.channel.abandoned.store(true, Ordering::Release);
            if paused {
                self.ask_to_read();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> (Arc<BodyChannel>, Arc<Mailbox>, RequestBody) {
        let channel = Arc::new(BodyChannel::default());
        let mailbox = Arc::new(Mailbox::new().unwrap());
        let body = RequestBody::new(Arc::clone(&channel), Arc::clone(&mailbox), 1, 2, None);
        (channel, mailbox, body)
    }

    fn taken(mailbox: &Mailbox) -> usize {
        let mut completions = Vec::new();
        mailbox.take(&mut completions);
        completions.len()
    }

    #[test]
    fn chunks_arrive_in_order_then_the_end() {
        let (channel, _mailbox, mut body) = body();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(body.poll_chunk(&mut cx).is_pending());
        channel.push(b"ab");
        channel.push(b"cd");
        channel.end();
        assert_eq!(
            body.poll_chunk(&mut cx),
            Poll::Ready(Some(Ok(b"ab".to_vec())))
        );
        assert_eq!(
            body.poll_chunk(&mut cx),
            Poll::Ready(Some(Ok(b"cd".to_vec())))
        );
        assert_eq!(body.poll_chunk(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_consumer_behind_pauses_reading_and_catching_up_asks_once_to_resume() {
        let (channel, mailbox, mut body) = body();
        let mut cx = Context::from_waker(Waker::noop());
        let chunk = vec![0; 64 * 1024];
        let mut behind = false;
        for _ in 0..5 {
            behind = channel.push(&chunk);
        }
        assert!(behind, "320 KiB unread is past the high-water mark");
        assert!(!channel.may_resume());
        for _ in 0..3 {
            assert!(body.poll_chunk(&mut cx).is_ready());
        }
        assert_eq!(taken(&mailbox), 0, "128 KiB unread: still behind");
        assert!(body.poll_chunk(&mut cx).is_ready());
        assert_eq!(
            taken(&mailbox),
            1,
            "64 KiB unread: the worker is asked to read"
        );
        assert!(body.poll_chunk(&mut cx).is_ready());
        assert_eq!(taken(&mailbox), 0, "asked once");
    }

    #[test]
    fn a_gone_connection_is_an_error_and_a_dropped_body_is_abandoned() {
        let (channel, _mailbox, mut body) = body();
        let mut cx = Context::from_waker(Waker::noop());
        channel.fail();
        assert_eq!(
            body.poll_chunk(&mut cx),
            Poll::Ready(Some(Err(BodyError::Gone)))
        );
        let (channel, _mailbox, body) = self::body();
        drop(body);
        assert!(channel.is_abandoned());
    }
}
