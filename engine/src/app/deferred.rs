//! Responses that are completed later, from any thread, and streamed.
//!
//! A handler calls [`Response::defer`](crate::Response::defer) and keeps the
//! [`Responder`]; the worker goes on serving other connections. What the
//! responder sends travels to the owning worker through its [`Mailbox`]: a
//! queue plus one eventfd write, coalesced so that a burst of completions
//! costs one wake. Responses leave in request order: a connection with a
//! response pending dispatches no further request until it is complete.
//!
//! A streamed body is bounded: [`BodySender::poll_ready`] says when the
//! connection's backlog (what was sent to the worker and not yet handed to
//! the kernel) is under [`STREAM_HIGH_WATER`], and wakes the producer when
//! it has drained below [`STREAM_LOW_WATER`]. A connection that closes
//! (disconnect, deadline, shutdown) marks its exchange gone: every later
//! call returns [`Gone`] and wakes a waiting producer.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::sys::socket;

/// A streamed body's producer may run ahead of the socket by this much.
pub const STREAM_HIGH_WATER: usize = 256 * 1024;
/// A producer held back at the high-water mark is woken once the backlog
/// is down to this.
pub const STREAM_LOW_WATER: usize = 64 * 1024;

/// What a responder sends to the worker.
#[derive(Debug)]
pub(crate) enum ExchangeEvent {
    /// A whole response.
    Whole {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// The head of a streamed response: `Content-Length: n` when `length`
    /// is given, chunked otherwise.
    Head {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        length: Option<u64>,
    },
    /// A piece of the streamed body.
    Data(Vec<u8>),
    /// The streamed body is complete.
    End,
    /// The producer gave up (dropped its responder or sender unfinished):
    /// a 500 if nothing was sent yet, else the connection is reset, so a
    /// truncated body never looks complete.
    Abort,
    /// The consumer of a streamed request body caught up: read again.
    ReadBody,
}

/// One message for a worker: an event of the exchange in slot `key`.
#[derive(Debug)]
pub(crate) struct Completion {
    pub key: u32,
    pub generation: u32,
    pub event: ExchangeEvent,
}

/// A worker's inbox for completions from other threads.
#[derive(Debug)]
pub(crate) struct Mailbox {
    queue: Mutex<Vec<Completion>>,
    /// A wake is on its way: the eventfd was written and the worker has
    /// not drained yet, so later posts only queue.
    wake_pending: AtomicBool,
    /// The worker stopped: posts are dropped.
    closed: AtomicBool,
    /// Readable when completions wait. Owned here, not by the worker: a
    /// responder may outlive the server and must never write to a closed
    /// (or reused) descriptor number.
    wake: OwnedFd,
}

impl Mailbox {
    pub fn new() -> io::Result<Mailbox> {
        Ok(Mailbox {
            queue: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake: socket::eventfd()?,
        })
    }

    /// The eventfd the worker watches.
    pub fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    pub fn post(&self, completion: Completion) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(completion);
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            socket::eventfd_signal(self.fd());
        }
    }

    /// Moves every queued completion into `into` (the worker calls this
    /// after its eventfd read). The flag is cleared first: a post that
    /// races this either lands in this batch or writes the eventfd again.
    pub fn take(&self, into: &mut Vec<Completion>) {
        self.wake_pending.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *queue, into);
    }

    /// The worker is gone: drop what waits and refuse what comes.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// What a producer and the worker share about one exchange.
#[derive(Debug, Default)]
pub(crate) struct ExchangeState {
    gone: AtomicBool,
    /// Body bytes posted and not yet taken into the send queue.
    in_mailbox: AtomicUsize,
    /// The connection's queued output, as the worker last saw it.
    in_queue: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl ExchangeState {
    fn backlog(&self) -> usize {
        self.in_mailbox.load(Ordering::Acquire) + self.in_queue.load(Ordering::Acquire)
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    fn poll_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_gone() {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Checked again after registering: a close in between has already
        // looked for a waker.
        if self.is_gone() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The worker took `bytes` of posted body into the send queue, which
    /// now holds `queued`.
    pub fn taken(&self, bytes: usize, queued: usize) {
        self.in_mailbox.fetch_sub(bytes, Ordering::AcqRel);
        self.in_queue.store(queued, Ordering::Release);
    }

    /// The connection's send queue now holds `queued`: wakes a held-back
    /// producer once the backlog is down to the low-water mark.
    pub fn drained_to(&self, queued: usize) {
        self.in_queue.store(queued, Ordering::Release);
        if self.backlog() <= STREAM_LOW_WATER {
            self.wake();
        }
    }

    /// The connection is gone (or the exchange was settled for the
    /// producer, as by the handler timeout): every later call fails.
    pub fn set_gone(&self) {
        self.gone.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The connection this response was for is gone: closed by the peer, a
/// deadline or shutdown. Nothing more of the response is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection is gone")
    }
}

impl std::error::Error for Gone {}

/// The producer's end of one exchange; aborts it when dropped unfinished.
#[derive(Debug)]
struct Exchange {
    mailbox: Arc<Mailbox>,
    key: u32,
    generation: u32,
    state: Arc<ExchangeState>,
    finished: bool,
}

impl Exchange {
    fn post(&self, event: ExchangeEvent) -> Result<(), Gone> {
        if self.state.is_gone() {
            return Err(Gone);
        }
        self.mailbox.post(Completion {
            key: self.key,
            generation: self.generation,
            event,
        });
        Ok(())
    }

    fn finish(&mut self, event: ExchangeEvent) -> Result<(), Gone> {
        self.finished = true;
        self.post(event)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.post(ExchangeEvent::Abort);
        }
    }
}

fn owned_headers(headers: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
        .collect()
}

/// Completes a deferred response from any thread; see
/// [`Response::defer`](crate::Response::defer). Dropping it without
/// answering answers 500.
///
/// Framing, `Date` and `Connection` are the engine's, as for
/// [`Response::send`](crate::Response::send); a header the engine writes
/// itself, or a value with CR, LF or NUL, turns the answer into a 500.
#[derive(Debug)]
pub struct Responder {
    exchange: Exchange,
}

impl Responder {
    pub(crate) fn new(
        mailbox: Arc<Mailbox>,
        key: u32,
        generation: u32,
        state: Arc<ExchangeState>,
    ) -> Responder {
        Responder {
            exchange: Exchange {
                mailbox,
                key,
                generation,
                state,
                finished: false,
            },
        }
    }

    /// Sends the whole response.
    pub fn send(
        mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        body: impl Into<Vec<u8>>,
    ) -> Result<(), Gone> {
        self.exchange.finish(ExchangeEvent::Whole {
            status,
            headers: owned_headers(headers),
            body: body.into(),
        })
    }

    /// Sends the status and headers, and returns the sender of the body:
    /// exactly `length` bytes with `Content-Length` when given, chunked
    /// otherwise (as is for an HTTP/1.0 client, which then sees the end of
    /// the body as the close of the connection).
    pub fn stream(
        mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        length: Option<u64>,
    ) -> Result<BodySender, Gone> {
        self.exchange.post(ExchangeEvent::Head {
            status,
            headers: owned_headers(headers),
            length,
        })?;
        // The sender takes over the exchange, and its abort-on-drop.
        let exchange = Exchange {
            mailbox: Arc::clone(&self.exchange.mailbox),
            key: self.exchange.key,
            generation: self.exchange.generation,
            state: Arc::clone(&self.exchange.state),
            finished: false,
        };
        self.exchange.finished = true;
        Ok(BodySender { exchange })
    }

    /// Whether the connection is gone (nothing sent would arrive).
    pub fn is_gone(&self) -> bool {
        self.exchange.state.is_gone()
    }

    /// Ready once the connection is gone (disconnect, deadline, shutdown):
    /// a producer can stop working on an answer nobody will read.
    pub fn poll_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.exchange.state.poll_gone(cx)
    }

    /// Waits (async) until the connection is gone.
    pub async fn gone(&self) {
        std::future::poll_fn(|cx| self.poll_gone(cx)).await
    }
}

/// Sends a streamed body; see [`Responder::stream`]. Dropping it without
/// [`finish`](BodySender::finish) resets the connection: a truncated body
/// must not look complete.
#[derive(Debug)]
pub struct BodySender {
    exchange: Exchange,
}

impl BodySender {
    /// Ready when the connection's backlog is under [`STREAM_HIGH_WATER`];
    /// otherwise registers `cx`'s waker, woken when the backlog is down to
    /// [`STREAM_LOW_WATER`] or the connection is gone. A producer that
    /// sends only when ready holds at most the high-water mark plus one
    /// chunk per connection.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Gone>> {
        let state = &self.exchange.state;
        if state.is_gone() {
            return Poll::Ready(Err(Gone));
        }
        if state.backlog() < STREAM_HIGH_WATER {
            return Poll::Ready(Ok(()));
        }
        *state.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Checked again after registering: a drain in between has already
        // looked for a waker.
        if state.is_gone() {
            Poll::Ready(Err(Gone))
        } else if state.backlog() < STREAM_HIGH_WATER {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Waits (async) until [`poll_ready`](BodySender::poll_ready) is ready.
    pub async fn ready(&self) -> Result<(), Gone> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Sends a piece of the body. It is accepted whatever the backlog:
    /// respect [`poll_ready`](BodySender::poll_ready) to stay bounded.
    pub fn send(&self, data: impl Into<Vec<u8>>) -> Result<(), Gone> {
        let data = data.into();
        if data.is_empty() {
            return if self.is_gone() { Err(Gone) } else { Ok(()) };
        }
        self.exchange
            .state
            .in_mailbox
            .fetch_add(data.len(), Ordering::AcqRel);
        self.exchange.post(ExchangeEvent::Data(data))
    }

    /// Ends the body.
    pub fn finish(mut self) -> Result<(), Gone> {
        self.exchange.finish(ExchangeEvent::End)
    }

    /// Whether the connection is gone.
    pub fn is_gone(&self) -> bool {
        self.exchange.state.is_gone()
    }

    /// Ready once the connection is gone, as [`Responder::poll_gone`]: a
    /// producer waiting for its next chunk (not for room) can stop.
    pub fn poll_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.exchange.state.poll_gone(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange() -> (Arc<Mailbox>, Responder, Arc<ExchangeState>) {
        let mailbox = Arc::new(Mailbox::new().unwrap());
        let state = Arc::new(ExchangeState::default());
        let responder = Responder::new(Arc::clone(&mailbox), 3, 7, Arc::clone(&state));
        (mailbox, responder, state)
    }

    fn drain(mailbox: &Mailbox) -> Vec<Completion> {
        let mut taken = Vec::new();
        mailbox.take(&mut taken);
        taken
    }

    #[test]
    fn a_burst_of_posts_writes_the_eventfd_once_until_drained() {
        let (mailbox, responder, _state) = exchange();
        let sender = responder.stream(200, &[], None).unwrap();
        sender.send(b"a".to_vec()).unwrap();
        sender.send(b"b".to_vec()).unwrap();
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from the eventfd.
        let read = unsafe { libc::read(mailbox.fd(), (&mut counter as *mut u64).cast(), 8) };
        assert_eq!((read, counter), (8, 1), "one wake for three posts");
        assert_eq!(drain(&mailbox).len(), 3);
        sender.send(b"c".to_vec()).unwrap();
        // SAFETY: as above.
        let read = unsafe { libc::read(mailbox.fd(), (&mut counter as *mut u64).cast(), 8) };
        assert_eq!(
            (read, counter),
            (8, 1),
            "a post after the drain wakes again"
        );
    }

    #[test]
    fn dropping_unanswered_aborts_and_finished_does_not() {
        let (mailbox, responder, _state) = exchange();
        drop(responder);
        let events = drain(&mailbox);
        assert!(matches!(
            events[..],
            [Completion {
                key: 3,
                generation: 7,
                event: ExchangeEvent::Abort
            }]
        ));
        let (mailbox, responder, _state) = exchange();
        responder.send(200, &[("A", b"b")], b"ok".to_vec()).unwrap();
        let events = drain(&mailbox);
        assert_eq!(events.len(), 1);
        assert!(matches!(
            events[0].event,
            ExchangeEvent::Whole { status: 200, .. }
        ));
    }

    #[test]
    fn a_sender_is_held_at_the_high_water_mark_and_woken_at_the_low() {
        struct Flag(AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::Release);
            }
        }
        let (_mailbox, responder, state) = exchange();
        let sender = responder.stream(200, &[], None).unwrap();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        assert!(sender.poll_ready(&mut cx).is_ready());
        sender.send(vec![0; STREAM_HIGH_WATER]).unwrap();
        assert!(sender.poll_ready(&mut cx).is_pending());
        // The worker takes it into the send queue: still too much.
        state.taken(STREAM_HIGH_WATER, STREAM_HIGH_WATER);
        state.drained_to(STREAM_LOW_WATER + 1);
        assert!(!flag.0.load(Ordering::Acquire));
        state.drained_to(STREAM_LOW_WATER);
        assert!(
            flag.0.load(Ordering::Acquire),
            "woken at the low-water mark"
        );
        assert!(sender.poll_ready(&mut cx).is_ready());
    }

    #[test]
    fn a_gone_connection_fails_every_call_and_wakes_the_producer() {
        let (mailbox, responder, state) = exchange();
        let sender = responder.stream(200, &[], Some(10)).unwrap();
        drain(&mailbox);
        state.set_gone();
        assert_eq!(sender.send(b"x".to_vec()), Err(Gone));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(sender.poll_ready(&mut cx), Poll::Ready(Err(Gone)));
        assert_eq!(sender.finish(), Err(Gone));
        assert!(
            drain(&mailbox).is_empty(),
            "nothing is posted for a gone exchange"
        );
    }
}
