//! The driver on a virtual clock, with no sockets: whole conversations,
//! deadlines, pipelining, half-close and the close modes, checked through
//! the actions a backend would carry out.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use ringwall_timers::{MonoTime, TimerAction};

use super::{Action, Admission, CloseMode, Driver, DriverShared};
use crate::conn_cap::ConnCap;
use crate::handler::{Request, Response};
use crate::stats::WorkerCounters;

const HEADER: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(5);
const WRITE: Duration = Duration::from_secs(3);
const T0: MonoTime = MonoTime::from_nanos(1_000_000_000_000);

type EchoPath = fn(&Request<'_>, &mut Response<'_>);

/// Answers 200 with the request's path, so responses show their order.
fn echo_path(request: &Request<'_>, response: &mut Response<'_>) {
    let _ = response.send(200, &[], request.path().as_bytes());
}

/// A driver as one worker's backend would hold it, and what it asked for.
struct Harness {
    driver: Driver<EchoPath>,
    counters: Arc<CachePadded<WorkerCounters>>,
    /// Every action taken, in order.
    log: Vec<Action>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(|b| b)
    }

    fn with(configure: impl FnOnce(crate::ServerBuilder) -> crate::ServerBuilder) -> Harness {
        let builder = crate::Server::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .workers(1)
            .header_timeout(HEADER)
            .idle_timeout(IDLE)
            .write_timeout(WRITE);
        let config = configure(builder).build().unwrap().config().clone();
        let counters = Arc::new(CachePadded::new(WorkerCounters::default()));
        let shared = DriverShared {
            worker: 0,
            counters: counters.clone(),
            cap: Arc::new(ConnCap::new(config.max_connections)),
            per_ip: None,
        };
        let driver = Driver::new(config, Arc::new(echo_path as EchoPath), shared, T0, 0);
        Harness {
            driver,
            counters,
            log: Vec::new(),
        }
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
