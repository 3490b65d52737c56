//! The driver on a virtual clock, with no sockets: whole conversations,
//! deadlines, pipelining, half-close and the close modes, checked through
//! the actions a backend would carry out.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use ringwall_timers::{MonoTime, TimerAction};

use super::{Action, Admission, CloseMode, Driver, DriverShared};
use crate::app::deferred::{Mailbox, Responder};
use crate::app::handler::{Handler, Request, Response};
use crate::app::request_body::RequestBody;
use crate::driver::conn_cap::ConnCap;
use crate::ops::stats::WorkerCounters;

const HEADER: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(5);
const WRITE: Duration = Duration::from_secs(3);
const T0: MonoTime = MonoTime::from_nanos(1_000_000_000_000);

type EchoPath = fn(&Request<'_>, &mut Response<'_>);

/// Answers 200 with the request's path, so responses show their order.
fn echo_path(request: &Request<'_>, response: &mut Response<'_>) {
    let _ = response.send(200, &[], request.path().as_bytes());
}

thread_local! {
    /// What the fake SIOCOUTQ reports: response bytes the kernel holds
    /// unacknowledged (each test runs on its own thread).
    static UNACKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn fake_unacked(_fd: std::os::fd::RawFd) -> usize {
    UNACKED.with(|u| u.get())
}

fn set_unacked(bytes: usize) {
    UNACKED.with(|u| u.set(bytes));
}

/// A driver as one worker's backend would hold it, and what it asked for.
struct Harness<H: Handler = EchoPath> {
    driver: Driver<H>,
    counters: Arc<CachePadded<WorkerCounters>>,
    mailbox: Arc<Mailbox>,
    /// Every action taken, in order.
    log: Vec<Action>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(|b| b)
    }

    fn with(configure: impl FnOnce(crate::ServerBuilder) -> crate::ServerBuilder) -> Harness {
        Harness::with_handler(echo_path as EchoPath, configure)
    }
}

impl<H: Handler> Harness<H> {
    fn with_handler(
        handler: H,
        configure: impl FnOnce(crate::ServerBuilder) -> crate::ServerBuilder,
    ) -> Harness<H> {
        let builder = crate::Server::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .workers(1)
            .header_timeout(HEADER)
            .idle_timeout(IDLE)
            .write_timeout(WRITE);
        let config = configure(builder).build().unwrap().config().clone();
        let counters = Arc::new(CachePadded::new(WorkerCounters::default()));
        let mailbox = Arc::new(Mailbox::new().unwrap());
        let shared = DriverShared {
            mailbox: Arc::clone(&mailbox),
            worker: 0,
            counters: counters.clone(),
            cap: Arc::new(ConnCap::new(config.max_connections)),
            per_ip: None,
        };
        let mut driver = Driver::new(config, Arc::new(handler), shared, T0, 0);
        // The descriptors here are not sockets: the kernel's queue is the
        // test's to say (`UNACKED`).
        driver.set_unacked_bytes(fake_unacked);
        Harness {
            driver,
            counters,
            mailbox,
            log: Vec::new(),
        }
    }

    /// What responders posted, delivered as the backend would on a wake.
    fn deliver(&mut self) {
        let mut completions = Vec::new();
        self.mailbox.take(&mut completions);
        self.driver.on_completions(&mut completions);
    }

    /// Takes every queued action into the log and returns them.
    fn actions(&mut self) -> Vec<Action> {
        let mut taken = Vec::new();
        while let Some(action) = self.driver.next_action() {
            taken.push(action);
        }
        self.log.extend(taken.iter().copied());
        taken
    }

    fn admit(&mut self) -> usize {
        match self.driver.admit(100, None) {
            Admission::Admitted { key, .. } => key,
            other => panic!("not admitted: {other:?}"),
        }
    }

    fn at(&mut self, offset: Duration) {
        self.driver.set_clock(T0.saturating_add(offset), 0);
    }

    /// Sends what is queued and reports it all sent; returns the bytes.
    fn send_all(&mut self, key: usize) -> Vec<u8> {
        let bytes = self.driver.start_send(key).expect("bytes queued").to_vec();
        self.driver.on_sent(key, bytes.len());
        bytes
    }

    /// The timer the driver last asked for on `key`.
    fn timer_due(&self, key: usize) -> Option<MonoTime> {
        self.log.iter().rev().find_map(|a| match a {
            Action::Timer(k, TimerAction::Submit(at) | TimerAction::Update(at)) if *k == key => {
                Some(*at)
            }
            _ => None,
        })
    }
}

fn close_of(actions: &[Action]) -> Option<(CloseMode, bool)> {
    actions.iter().find_map(|a| match a {
        Action::Close {
            mode, lingering, ..
        } => Some((*mode, *lingering)),
        _ => None,
    })
}

#[test]
fn an_accepted_connection_reads_and_arms_its_header_deadline() {
    let mut h = Harness::new();
    let key = h.admit();
    let actions = h.actions();
    assert_eq!(
        actions,
        vec![
            Action::Read(key),
            Action::Timer(key, TimerAction::Submit(T0.saturating_add(HEADER)))
        ]
    );
}

#[test]
fn a_keep_alive_conversation_answers_then_waits_on_the_idle_deadline() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.at(Duration::from_millis(10));
    h.driver
        .on_bytes(key, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(h.actions().contains(&Action::Send(key)));
    let response = h.send_all(key);
    assert!(response.starts_with(b"HTTP/1.1 200 "), "{response:?}");
    assert!(response.ends_with(b"/a"));
    h.actions();
    // The header deadline's timer fires early (idle is later): re-armed at
    // the idle deadline, no close.
    h.driver.on_timer_fired(key, T0.saturating_add(HEADER));
    let idle_due = T0
        .saturating_add(Duration::from_millis(10))
        .saturating_add(IDLE);
    assert_eq!(
        h.actions(),
        vec![Action::Timer(key, TimerAction::Submit(idle_due))]
    );
    h.driver.on_timer_fired(key, idle_due);
    // It sent a response: whether the close is a reset depends on what
    // the kernel still holds, which the backend checks.
    let actions = h.actions();
    assert_eq!(close_of(&actions), Some((CloseMode::ResetIfUnacked, false)));
    h.driver.count_forced_close(key, false);
    assert_eq!(h.counters.idle_timeout.get(), 1);
    assert_eq!(h.counters.idle_timeout_reset.get(), 0);
    assert_eq!(h.counters.requests.get(), 1);
    h.driver.release(key);
    assert!(h.driver.is_empty());
    assert_eq!(h.counters.open_connections.get(), 0);
}

#[test]
fn a_slowloris_head_is_closed_at_the_header_deadline_and_not_before() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.at(Duration::from_secs(1));
    h.driver.on_bytes(key, b"GET / HTTP/1.1\r\nX-a: b\r\n");
    h.actions();
    // A fire a millisecond early (the kernel's timer is never late, but a
    // moved one can be) closes nothing.
    h.driver
        .on_timer_fired(key, T0.saturating_add(HEADER - Duration::from_millis(1)));
    let actions = h.actions();
    assert_eq!(close_of(&actions), None, "{actions:?}");
    h.driver.on_timer_fired(key, T0.saturating_add(HEADER));
    let actions = h.actions();
    assert_eq!(close_of(&actions), Some((CloseMode::Fin, false)));
    assert_eq!(h.counters.header_timeout.get(), 1);
    // Late completions of the closed connection change nothing.
    h.driver.on_bytes(key, b"\r\n");
    h.driver.on_eof(key);
    assert!(h.actions().is_empty());
    assert_eq!(h.counters.requests.get(), 0);
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_send() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let sends = h
        .actions()
        .iter()
        .filter(|a| **a == Action::Send(key))
        .count();
    assert_eq!(sends, 1);
    let bytes = String::from_utf8(h.send_all(key)).unwrap();
    let order: Vec<usize> = ["/1", "/2", "/3"]
        .iter()
        .map(|p| bytes.find(p).expect("every response"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{bytes}");
}

#[test]
fn a_deep_pipeline_yields_its_turn_and_finishes_on_the_next() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    let pipeline = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20);
    h.driver.on_bytes(key, &pipeline);
    assert_eq!(h.counters.requests.get(), 16);
    assert!(h.driver.has_ready());
    h.driver.serve_ready();
    assert_eq!(h.counters.requests.get(), 20);
    assert!(!h.driver.has_ready());
}

/// A GET whose chunked body is `chunks` one-byte chunks.
fn tiny_chunk_request(chunks: usize) -> Vec<u8> {
    let mut request =
        b"GET /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend(b"1\r\nx\r\n".repeat(chunks));
    request.extend(b"0\r\n\r\n");
    request
}

#[test]
fn a_body_of_tiny_chunks_yields_its_turn_like_a_deep_pipeline() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    // Five bytes of framing a chunk: four budgets' worth.
    let chunks = 4 * usize::from(super::TURN_BUDGET_INPUT_BYTES) / 5;
    h.driver.on_bytes(key, &tiny_chunk_request(chunks));
    // One go parses about its budget of framing, however little body it
    // carries: the rest waits behind timers and other connections.
    assert_eq!(h.counters.turn_yields.get(), 1);
    assert_eq!(h.counters.requests.get(), 0);
    assert!(h.driver.has_ready());
    let mut turns = 1;
    while h.driver.has_ready() {
        h.driver.serve_ready();
        turns += 1;
        assert!(turns <= 8, "still decoding after {turns} turns");
    }
    assert!(turns >= 4, "decoded {chunks} chunks in {turns} turns");
    assert_eq!(h.counters.requests.get(), 1);
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.ends_with("/tiny"), "{response}");
}

#[test]
fn a_half_closed_pipeline_is_answered_then_closed_without_lingering() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    h.driver.on_eof(key);
    let bytes = String::from_utf8(h.send_all(key)).unwrap();
    assert!(bytes.contains("/a") && bytes.contains("/b"), "{bytes}");
    let actions = h.actions();
    assert!(!actions.contains(&Action::ShutdownWrite(key)));
    assert_eq!(close_of(&actions), Some((CloseMode::Fin, false)));
    assert_eq!(h.counters.peer_eof.get(), 1);
}

#[test]
fn connection_close_lingers_after_the_response_until_the_peer_eof() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    h.actions();
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.contains("Connection: close"), "{response}");
    let actions = h.actions();
    let shutdown = actions
        .iter()
        .position(|a| *a == Action::ShutdownWrite(key));
    let read = actions.iter().position(|a| *a == Action::Read(key));
    assert!(shutdown.is_some() && read > shutdown, "{actions:?}");
    // Unread bytes the peer sent meanwhile are discarded, not answered.
    h.driver.on_bytes(key, b"GET /more HTTP/1.1\r\n\r\n");
    assert!(h.actions().is_empty());
    h.driver.on_eof(key);
    assert_eq!(close_of(&h.actions()), Some((CloseMode::Fin, true)));
    assert_eq!(h.counters.completed.get(), 1);
    assert_eq!(h.counters.requests.get(), 1);
}

#[test]
fn a_write_stall_with_queued_bytes_is_a_reset_at_the_write_deadline() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.actions();
    // The send never completes: the peer reads nothing.
    assert!(h.driver.start_send(key).is_some());
    h.actions();
    let due = h.timer_due(key).expect("a timer");
    assert!(due <= T0.saturating_add(WRITE), "{due:?}");
    h.driver.on_timer_fired(key, T0.saturating_add(WRITE));
    let actions = h.actions();
    if close_of(&actions).is_none() {
        // The header deadline's timer was earlier: it re-arms at the write
        // deadline.
        h.driver.on_timer_fired(key, T0.saturating_add(WRITE));
    }
    let actions = h.log.clone();
    assert_eq!(close_of(&actions), Some((CloseMode::Reset, false)));
    assert_eq!(h.counters.write_timeout_reset.get(), 1);
}

#[test]
fn a_malformed_request_is_answered_400_and_closed() {
    let mut h = Harness::new();
    let key = h.admit();
    h.actions();
    h.driver
        .on_bytes(key, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(h.actions().contains(&Action::ShutdownWrite(key)));
    assert_eq!(h.counters.protocol_error_400.get(), 1);
    assert_eq!(h.counters.requests.get(), 0);
}

#[test]
fn shutdown_closes_idle_connections_and_lets_busy_ones_finish() {
    let mut h = Harness::new();
    let idle = h.admit();
    let busy = h.admit();
    h.actions();
    h.driver
        .on_bytes(busy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.actions();
    h.driver.begin_shutdown(false);
    let actions = h.actions();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Close { key, .. } if *key == idle)));
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Close { key, .. } if *key == busy)));
    // The busy one's response (answered before the shutdown) leaves
    // whole, and the connection closes once it has.
    let response = String::from_utf8(h.send_all(busy)).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(h
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Close { key, .. } if *key == busy)));
    // It sent something: counted once the backend has checked the kernel.
    assert_eq!(h.counters.shutdown.get(), 1);
    h.driver.count_forced_close(busy, false);
    assert_eq!(h.counters.shutdown.get(), 2);
    assert!(h.driver.admit(101, None) == Admission::Dropped);
}

/// A deferred request as the test holds it: its path, its responder, its
/// streamed body.
type Held = (String, Responder, Option<RequestBody>);

/// Defers every request, keeping its responder (and streamed body) for
/// the test to complete.
#[derive(Clone, Default)]
struct Deferring {
    held: Arc<Mutex<Vec<Held>>>,
    streams: bool,
}

impl Handler for Deferring {
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) {
        let responder = response.defer().expect("not answered yet");
        let body = request.body_stream();
        self.held
            .lock()
            .unwrap()
            .push((request.path().to_owned(), responder, body));
    }

    fn streams_request_bodies(&self) -> bool {
        self.streams
    }
}

impl Deferring {
    fn take(&self) -> Vec<Held> {
        std::mem::take(&mut *self.held.lock().unwrap())
    }
}

/// A connection whose `GET /s` went to a deferring handler: the harness,
/// the connection and the request's responder.
fn deferred_get_s() -> (Harness<Deferring>, usize, Responder) {
    let handler = Deferring::default();
    let mut h = Harness::with_handler(handler.clone(), |b| b);
    let key = h.admit();
    h.actions();
    h.driver
        .on_bytes(key, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    let (_, responder, _) = handler.take().remove(0);
    (h, key, responder)
}

fn sends(actions: &[Action], key: usize) -> usize {
    actions.iter().filter(|a| **a == Action::Send(key)).count()
}

#[test]
fn a_deferred_answer_leaves_when_it_arrives_and_holds_the_pipeline_in_order() {
    let handler = Deferring::default();
    let mut h = Harness::with_handler(handler.clone(), |b| b);
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let mut held = handler.take();
    assert_eq!(held.len(), 1, "the second waits for the first's answer");
    assert_eq!(sends(&h.actions(), key), 0);
    let (path, responder, _) = held.remove(0);
    assert_eq!(path, "/1");
    responder.send(200, &[], b"one".to_vec()).unwrap();
    h.deliver();
    let mut held = handler.take();
    assert_eq!(held.len(), 1, "now the second is dispatched");
    let first = String::from_utf8(h.send_all(key)).unwrap();
    assert!(
        first.starts_with("HTTP/1.1 200 ") && first.ends_with("one"),
        "{first}"
    );
    held.remove(0).1.send(200, &[], b"two".to_vec()).unwrap();
    h.deliver();
    let second = String::from_utf8(h.send_all(key)).unwrap();
    assert!(second.ends_with("two"), "{second}");
    assert_eq!(h.counters.requests.get(), 2);
}

#[test]
fn a_streamed_answer_is_chunked_and_its_sender_is_told_when_the_connection_goes() {
    let (mut h, key, responder) = deferred_get_s();
    let sender = responder.stream(200, &[], None).unwrap();
    sender.send(b"hello".to_vec()).unwrap();
    h.deliver();
    let head_and_chunk = String::from_utf8(h.send_all(key)).unwrap();
    assert!(
        head_and_chunk.contains("Transfer-Encoding: chunked"),
        "{head_and_chunk}"
    );
    assert!(
        head_and_chunk.ends_with("5\r\nhello\r\n"),
        "{head_and_chunk:?}"
    );
    sender.send(b"!".to_vec()).unwrap();
    h.deliver();
    assert_eq!(h.send_all(key), b"1\r\n!\r\n");
    h.driver.on_error(key);
    h.deliver();
    assert!(sender.is_gone());
    assert_eq!(sender.send(b"late".to_vec()), Err(crate::Gone));
}

#[test]
fn a_dropped_responder_answers_500_and_closes() {
    let handler = Deferring::default();
    let mut h = Harness::with_handler(handler.clone(), |b| b);
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(handler.take());
    h.deliver();
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
    assert!(h.actions().contains(&Action::ShutdownWrite(key)));
}

#[test]
fn a_handler_that_never_answers_gets_503_at_the_handler_deadline() {
    let handler = Deferring::default();
    let handler_timeout = Duration::from_secs(4);
    let mut h = Harness::with_handler(handler.clone(), |b| b.handler_timeout(handler_timeout));
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (_, responder, _) = handler.take().remove(0);
    h.actions();
    // Only the handler deadline runs: the header deadline (2 s) is over.
    h.driver.on_timer_fired(key, T0.saturating_add(HEADER));
    assert!(!responder.is_gone());
    h.driver
        .on_timer_fired(key, T0.saturating_add(handler_timeout));
    assert!(responder.is_gone(), "the responder learns it is too late");
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
    assert_eq!(h.counters.handler_timeout.get(), 1);
    assert_eq!(responder.send(200, &[], b"late".to_vec()), Err(crate::Gone));
}

#[test]
fn a_streamed_request_body_reaches_the_handler_as_it_arrives() {
    let handler = Deferring {
        streams: true,
        ..Deferring::default()
    };
    let mut h = Harness::with_handler(handler.clone(), |b| b);
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
    );
    let (path, responder, body) = handler.take().remove(0);
    assert_eq!(path, "/up", "handed over at the head");
    let mut body = body.expect("a body stream");
    assert_eq!(body.content_length(), Some(10));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(
        body.poll_chunk(&mut cx),
        Poll::Ready(Some(Ok(b"hello".to_vec())))
    );
    assert!(body.poll_chunk(&mut cx).is_pending());
    h.driver.on_bytes(key, b"world");
    assert_eq!(
        body.poll_chunk(&mut cx),
        Poll::Ready(Some(Ok(b"world".to_vec())))
    );
    assert_eq!(body.poll_chunk(&mut cx), Poll::Ready(None));
    responder.send(200, &[], b"got it".to_vec()).unwrap();
    h.deliver();
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.ends_with("got it"), "{response}");
}

#[test]
fn a_streamed_body_whose_consumer_is_behind_stops_reading_until_it_catches_up() {
    let handler = Deferring {
        streams: true,
        ..Deferring::default()
    };
    let mut h = Harness::with_handler(handler.clone(), |b| b);
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
    );
    let (_, _responder, body) = handler.take().remove(0);
    let mut body = body.unwrap();
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..5 {
        h.driver.on_bytes(key, &piece);
    }
    assert!(h.actions().contains(&Action::StopReading(key)));
    assert!(!h.driver.wants_input(key));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..4 {
        assert!(body.poll_chunk(&mut cx).is_ready());
    }
    h.deliver();
    assert!(
        h.driver.wants_input(key),
        "reading resumes once the consumer caught up"
    );
    assert!(h.actions().contains(&Action::Read(key)));
}

#[test]
fn a_full_connection_table_refuses_even_when_the_cap_would_admit() {
    // The server-wide cap normally stops admissions first; here it is set
    // above the table's size, as if the two disagreed. The table must not
    // grow past `max_connections`: the io_uring worker's slot table,
    // indexed by the same keys, was allocated for exactly that many.
    let config = crate::Server::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .max_connections(2)
        .build()
        .unwrap()
        .config()
        .clone();
    let counters = Arc::new(CachePadded::new(WorkerCounters::default()));
    let cap = Arc::new(ConnCap::new(10));
    // One address may hold all ten, so only the table can refuse; its
    // claim must be handed back like the server-wide one.
    let per_ip = Arc::new(crate::driver::per_ip::PerIpCap::new(10, 0));
    let shared = DriverShared {
        mailbox: Arc::new(Mailbox::new().unwrap()),
        worker: 0,
        counters: counters.clone(),
        cap: cap.clone(),
        per_ip: Some(per_ip.clone()),
    };
    let mut driver = Driver::new(config, Arc::new(echo_path as EchoPath), shared, T0, 0);
    let peer: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
    for fd in [100, 101] {
        assert!(matches!(
            driver.admit(fd, Some(peer)),
            Admission::Admitted { key, .. } if key < 2
        ));
    }
    assert!(matches!(driver.admit(102, Some(peer)), Admission::Refused));
    assert_eq!(cap.open(), 2, "the refused connection's claim is released");
    let mut stats = crate::Stats::default();
    counters.add_to(&mut stats);
    assert_eq!(stats.closes.connection_cap, 1);
    assert_eq!(stats.open_connections, 2);
    // Two held, so eight more claims fit under the per-address cap of ten:
    // the refused connection's claim was handed back, not leaked.
    for _ in 0..8 {
        assert!(per_ip.try_claim(&peer).is_some());
    }
    assert!(per_ip.try_claim(&peer).is_none());
}

#[test]
fn a_send_whose_write_deadline_is_earliest_moves_the_pending_timer() {
    let write = Duration::from_millis(200);
    let mut h = Harness::with(|b| {
        b.header_timeout(Duration::from_secs(5))
            .write_timeout(write)
            .idle_timeout(Duration::from_millis(400))
    });
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let actions = h.actions();
    assert!(actions.contains(&Action::Send(key)), "{actions:?}");
    assert!(h.driver.start_send(key).is_some());
    let actions = h.actions();
    assert_eq!(
        actions,
        vec![Action::Timer(
            key,
            TimerAction::Update(T0.saturating_add(write))
        )]
    );
}

#[test]
fn shutdown_waits_for_a_pending_answer_then_closes() {
    let handler = Deferring::default();
    let mut h = Harness::with_handler(handler.clone(), |b| b);
    let key = h.admit();
    h.actions();
    h.driver
        .on_bytes(key, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let (_, responder, _) = handler.take().remove(0);
    h.driver.begin_shutdown(false);
    let actions = h.actions();
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Close { .. })),
        "a pending answer is not idle: {actions:?}"
    );
    assert!(!responder.is_gone());
    responder
        .send(200, &[], b"late but whole".to_vec())
        .unwrap();
    h.deliver();
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.ends_with("late but whole"), "{response}");
    assert!(h
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Close { key: k, .. } if *k == key)));
}

#[test]
fn a_streamed_body_over_its_cap_is_answered_413_before_the_handler_sees_it() {
    let handler = Deferring {
        streams: true,
        ..Deferring::default()
    };
    let mut h = Harness::with_handler(handler.clone(), |b| b.max_streamed_body_bytes(1000));
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
    );
    assert!(handler.take().is_empty());
    let response = String::from_utf8(h.send_all(key)).unwrap();
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    // Under the cap, and far over the buffered max_body_bytes (1 MiB):
    // streamed, so accepted.
    let mut h = Harness::with_handler(handler.clone(), |b| b.max_streamed_body_bytes(1 << 30));
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(
        key,
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n",
    );
    assert_eq!(handler.take().len(), 1);
}

#[test]
fn a_prepared_answer_is_written_once_and_a_second_send_is_refused() {
    use crate::app::handler::ResponseError;
    use ringwall_h1::PreparedHeaders;
    let seconds = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&seconds);
    let prepared = PreparedHeaders::new(&[("Content-Type", b"text/plain")]).unwrap();
    let handler = move |_: &Request<'_>, response: &mut Response<'_>| {
        response.send_prepared(200, &prepared, b"first").unwrap();
        let again = [
            response.send_prepared(200, &prepared, b"second"),
            response.send(200, &[], b"second"),
        ];
        seen.lock()
            .unwrap()
            .extend(again.map(|r| matches!(r, Err(ResponseError::AlreadySent))));
    };
    let mut h = Harness::with_handler(handler, |b| b);
    let key = h.admit();
    h.actions();
    h.driver.on_bytes(key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.actions();
    let bytes = String::from_utf8(h.send_all(key)).unwrap();
    assert!(
        bytes.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: "),
        "{bytes}"
    );
    assert!(
        bytes.ends_with("\r\nContent-Length: 5\r\n\r\nfirst"),
        "{bytes}"
    );
    assert_eq!(*seconds.lock().unwrap(), [true, true]);
}

/// Fires `key`'s kernel timer at `at` and returns what the driver did.
fn expire_at(h: &mut Harness<Deferring>, key: usize, at: MonoTime) -> Vec<Action> {
    h.driver.on_timer_fired(key, at);
    h.actions()
}

#[test]
fn a_streamed_answer_is_not_cut_at_the_idle_timeout_while_it_streams() {
    let (mut h, key, responder) = deferred_get_s();
    let sender = responder.stream(200, &[], None).unwrap();
    // A reader at full speed: every chunk leaves at once, so the queue
    // drains between chunks for far longer than the idle timeout.
    let mut offset = Duration::ZERO;
    while offset < IDLE * 3 {
        sender.send(b"chunk".to_vec()).unwrap();
        h.at(offset);
        h.deliver();
        h.send_all(key);
        offset += Duration::from_millis(500);
        let actions = expire_at(&mut h, key, T0.saturating_add(offset));
        assert_eq!(close_of(&actions), None, "closed mid-stream at {offset:?}");
    }
    sender.finish().unwrap();
    h.deliver();
    assert!(h.send_all(key).ends_with(b"0\r\n\r\n"));
    // Between requests the idle deadline governs again.
    let due = h.timer_due(key).expect("a timer after the stream");
    assert!(due <= T0.saturating_add(offset + IDLE), "{due:?}");
    let actions = expire_at(&mut h, key, T0.saturating_add(offset + IDLE));
    assert_eq!(close_of(&actions), Some((CloseMode::ResetIfUnacked, false)));
    h.driver.count_forced_close(key, false);
    assert_eq!(h.counters.idle_timeout.get(), 1);
}

#[test]
fn a_sized_stream_that_ends_after_its_bytes_drained_waits_on_the_idle_deadline() {
    let (mut h, key, responder) = deferred_get_s();
    let sender = responder.stream(200, &[], Some(3)).unwrap();
    sender.send(b"abc".to_vec()).unwrap();
    h.deliver();
    h.send_all(key);
    // Every byte left before the end arrives: nothing more is queued, so
    // only the end of the exchange can start the idle clock.
    h.at(Duration::from_secs(1));
    sender.finish().unwrap();
    h.deliver();
    h.actions();
    let due = h.timer_due(key).expect("a timer");
    assert!(
        due <= T0.saturating_add(Duration::from_secs(1) + IDLE),
        "{due:?}"
    );
    let actions = expire_at(
        &mut h,
        key,
        T0.saturating_add(Duration::from_secs(1) + IDLE),
    );
    assert_eq!(close_of(&actions), Some((CloseMode::ResetIfUnacked, false)));
    h.driver.count_forced_close(key, false);
    assert_eq!(h.counters.idle_timeout.get(), 1);
}

/// Answers `GET /big` with 1 MiB, anything else with its path.
fn big_or_path(request: &Request<'_>, response: &mut Response<'_>) {
    if request.path() == "/big" {
        let _ = response.send(200, &[], &vec![b'x'; 1 << 20]);
    } else {
        echo_path(request, response);
    }
}

/// A connection asking for 1 MiB whose first send the kernel took only
/// 300 KB of, all of it still unacknowledged: the send-rate clock (240
/// B/s after 1 s) runs from here, and the write timeout is `write`.
fn slow_big_response(write: Duration) -> (Harness<EchoPath>, usize) {
    let mut h = Harness::with_handler(big_or_path as EchoPath, |b| {
        b.write_timeout(write)
            .min_response_rate(Some(ringwall_timers::MinRate::new(
                240,
                Duration::from_secs(1),
            )))
    });
    let key = h.admit();
    h.actions();
    h.driver
        .on_bytes(key, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    h.actions();
    assert!(h.driver.start_send(key).is_some());
    set_unacked(300_000);
    h.driver.on_sent(key, 300_000);
    h.actions();
    (h, key)
}

#[test]
fn a_non_reader_banks_nothing_for_what_its_socket_buffers_swallowed() {
    let (mut h, key) = slow_big_response(Duration::from_secs(60));
    // The peer takes nothing: the rate expires at its grace.
    h.driver
        .on_timer_fired(key, T0.saturating_add(Duration::from_secs(1)));
    let actions = h.actions();
    assert_eq!(close_of(&actions), Some((CloseMode::Reset, false)));
    assert_eq!(h.counters.min_response_rate_reset.get(), 1);
}

#[test]
fn a_reader_that_takes_a_burst_then_pauses_past_grace_keeps_its_connection() {
    let (mut h, key) = slow_big_response(Duration::from_secs(60));
    // Half a second later the peer takes 200 KB at once (a receive window
    // reopening) and the kernel takes 200 KB more; then a pause of 20 s,
    // twenty times the grace, paid for by the burst (200 KB at 240 B/s).
    h.at(Duration::from_millis(500));
    assert!(h.driver.start_send(key).is_some());
    set_unacked(300_000);
    h.driver.on_sent(key, 200_000);
    h.actions();
    for second in 1..=20 {
        h.driver
            .on_timer_fired(key, T0.saturating_add(Duration::from_secs(second)));
        let actions = h.actions();
        assert_eq!(close_of(&actions), None, "reset at {second} s");
    }
}

#[test]
fn bytes_the_peer_acknowledged_without_a_send_completing_count_for_the_rate_only() {
    let (mut h, key) = slow_big_response(Duration::from_secs(3));
    assert!(h.driver.start_send(key).is_some());
    // At the rate deadline no send has completed, but the peer took 2,400
    // bytes of what the kernel held: 10 s more at 240 B/s.
    set_unacked(300_000 - 2_400);
    h.driver
        .on_timer_fired(key, T0.saturating_add(Duration::from_secs(1)));
    let actions = h.actions();
    assert_eq!(close_of(&actions), None, "{actions:?}");
    // The stall bound did not move: no send made progress for 3 s.
    h.driver
        .on_timer_fired(key, T0.saturating_add(Duration::from_secs(3)));
    let actions = h.actions();
    assert_eq!(close_of(&actions), Some((CloseMode::Reset, false)));
    assert_eq!(h.counters.write_timeout_reset.get(), 1);
}

/// A head of about `bytes` bytes that is not finished (no blank line).
fn partial_head(bytes: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while head.len() < bytes {
        head.extend(b"X-Filler: ");
        head.extend([b'a'; 500]);
        head.extend(b"\r\n");
    }
    head
}

#[test]
fn partial_heads_over_the_head_budget_get_503_and_whole_heads_never_count() {
    let mut h = Harness::with(|b| b.max_buffered_head_bytes(8 * 1024));
    let first = h.admit();
    h.driver.on_bytes(first, &partial_head(5 * 1024));
    h.actions();
    assert_eq!(h.counters.head_budget.get(), 0);
    // A second partial head that does not fit: 503, and a close once sent.
    let second = h.admit();
    h.driver.on_bytes(second, &partial_head(5 * 1024));
    let answer = String::from_utf8(h.send_all(second)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("head budget"), "{answer}");
    assert_eq!(h.counters.head_budget.get(), 1);
    assert!(h.actions().contains(&Action::ShutdownWrite(second)));
    // A head that arrives whole is parsed at once and never counts, full
    // budget or not.
    let whole = h.admit();
    let mut head = partial_head(6 * 1024);
    head.extend(b"\r\n");
    h.driver.on_bytes(whole, &head);
    let answer = String::from_utf8(h.send_all(whole)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // The first head finishing frees its share: another partial fits.
    h.driver.on_bytes(first, b"\r\n");
    assert!(String::from_utf8(h.send_all(first))
        .unwrap()
        .starts_with("HTTP/1.1 200 "));
    let third = h.admit();
    h.driver.on_bytes(third, &partial_head(5 * 1024));
    h.actions();
    assert_eq!(h.counters.head_budget.get(), 1);
    // Closed connections give their share back as well.
    h.driver.on_error(third);
    let fourth = h.admit();
    h.driver.on_bytes(fourth, &partial_head(5 * 1024));
    h.actions();
    assert_eq!(h.counters.head_budget.get(), 1);
}
