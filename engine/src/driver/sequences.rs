//! The driver over random event sequences, on a virtual clock, with a
//! simulated backend (as `timers/tests/one_timer_invariant.rs` does for
//! the deadline model): bytes in random pieces, EOF, errors, short and
//! blocked sends, time passing, timer fires, turns, shutdown.
//!
//! After every step it checks:
//!
//! 1. one timer per connection, due at or before its earliest live
//!    deadline, and the driver's belief about it matches the simulated
//!    kernel's (a `Submit` only when none is armed, an `Update` only when
//!    one is);
//! 2. no action names a connection after its close, until the slot is
//!    taken again;
//!
//! and at the end of each sequence:
//!
//! 3. every admitted connection closed exactly once;
//! 4. each connection's responses left in request order;
//! 5. the worker's budgets (queued output, request bodies, partial heads)
//!    are back to zero.
//!
//! Sequences come from a seeded generator; a failure names its seed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use ringwall_timers::{MonoTime, TimerAction};

use super::{Action, Admission, Driver, DriverShared};
use crate::app::deferred::Mailbox;
use crate::app::handler::{Request, Response};
use crate::driver::conn_cap::ConnCap;
use crate::ops::stats::WorkerCounters;

const SEEDS: u64 = 2_000;
const STEPS: usize = 150;
const MAX_LIVE: usize = 6;
const T0: MonoTime = MonoTime::from_nanos(1_000_000_000_000);

/// SplitMix64, as in the timers' invariant test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

type EchoPath = fn(&Request<'_>, &mut Response<'_>);

/// Answers 200 with the request's path, so the order of responses shows.
fn echo_path(request: &Request<'_>, response: &mut Response<'_>) {
    let _ = response.send(200, &[], request.path().as_bytes());
}

/// One simulated connection: what its client still has to send, what the
/// server sent it, and what the backend holds for it.
#[derive(Default)]
struct SimConn {
    generation: u32,
    /// Request bytes the client has not sent yet.
    to_send: Vec<u8>,
    /// Requests written into `to_send` so far (each `GET /rN`).
    requests: usize,
    /// Every byte the server sent, in order.
    received: Vec<u8>,
    /// The bytes of the send in flight.
    in_flight: Option<Vec<u8>>,
    /// The simulated kernel timer's expiry.
    kernel_timer: Option<MonoTime>,
    closes: usize,
}

struct Sim {
    driver: Driver<EchoPath>,
    rng: Rng,
    now: MonoTime,
    conns: HashMap<usize, SimConn>,
    /// Every connection ever admitted, as (key, generation), with its sim.
    finished: Vec<SimConn>,
    /// Keys closed and not yet re-admitted: no action may name them.
    closed: HashMap<usize, u32>,
    seed: u64,
}

fn no_unacked(_fd: std::os::fd::RawFd) -> usize {
    0
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let config = crate::Server::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .workers(1)
            .header_timeout(Duration::from_secs(2))
            .body_timeout(Duration::from_secs(4))
            .idle_timeout(Duration::from_secs(5))
            .write_timeout(Duration::from_secs(3))
            .max_buffered_head_bytes(4 * 1024)
            .max_buffered_body_bytes(8 * 1024)
            .max_queued_output_bytes(64 * 1024)
            .build()
            .unwrap()
            .config()
            .clone();
        let shared = DriverShared {
            mailbox: Arc::new(Mailbox::new().unwrap()),
            worker: 0,
            counters: Arc::new(CachePadded::new(WorkerCounters::default())),
            cap: Arc::new(ConnCap::new(config.max_connections)),
            per_ip: None,
        };
        let mut driver = Driver::new(config, Arc::new(echo_path as EchoPath), shared, T0, 0);
        driver.set_unacked_bytes(no_unacked);
        Sim {
            driver,
            rng: Rng(seed),
            now: T0,
            conns: HashMap::new(),
            finished: Vec::new(),
            closed: HashMap::new(),
            seed,
        }
    }

    /// A request for the client of `conn` to send: mostly well formed, with
    /// or without a body, sometimes pipelined with a close, rarely garbage.
    fn next_request(rng: &mut Rng, conn: &mut SimConn) {
        let n = conn.requests;
        conn.requests += 1;
        let request = match rng.below(10) {
            0 => format!("POST /r{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
            1 => format!(
                "POST /r{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ),
            2 => format!("GET /r{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            3 => format!("GET /r{n} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "p".repeat(3000)),
            4 if rng.below(4) == 0 => "GARBAGE\r\n\r\n".to_owned(),
            _ => format!("GET /r{n} HTTP/1.1\r\nHost: x\r\n\r\n"),
        };
        conn.to_send.extend_from_slice(request.as_bytes());
    }

    fn live_key(&mut self) -> Option<usize> {
        let mut keys: Vec<usize> = self.conns.keys().copied().collect();
        keys.sort_unstable();
        if keys.is_empty() {
            return None;
        }
        Some(keys[self.rng.below(keys.len() as u64) as usize])
    }

    fn step(&mut self) {
        match self.rng.below(12) {
            0 if self.conns.len() < MAX_LIVE => {
                if let Admission::Admitted { key, generation } = self.driver.admit(100, None) {
                    self.closed.remove(&key);
                    let conn = SimConn {
                        generation,
                        ..SimConn::default()
                    };
                    assert!(
                        self.conns.insert(key, conn).is_none(),
                        "key {key} reused live"
                    );
                }
            }
            1..=3 => {
                let Some(key) = self.live_key() else { return };
                let conn = self.conns.get_mut(&key).unwrap();
                if conn.to_send.is_empty() {
                    Self::next_request(&mut self.rng, conn);
                }
                let len = conn.to_send.len() as u64;
                let take = 1 + self.rng.below(len) as usize;
                let piece: Vec<u8> = conn.to_send.drain(..take).collect();
                if self.driver.wants_input(key) || self.rng.below(4) == 0 {
                    self.driver.on_bytes(key, &piece);
                }
            }
            4 => {
                let Some(key) = self.live_key() else { return };
                if self.rng.below(3) == 0 {
                    self.driver.on_eof(key);
                }
            }
            5 => {
                let Some(key) = self.live_key() else { return };
                if self.rng.below(6) == 0 {
                    self.driver.on_error(key);
                }
            }
            6 | 7 => {
                let Some(key) = self.live_key() else { return };
                let conn = self.conns.get_mut(&key).unwrap();
                let Some(bytes) = conn.in_flight.take() else {
                    return;
                };
                match self.rng.below(8) {
                    0 => self.driver.on_send_blocked(key),
                    1 if self.rng.below(4) == 0 => self.driver.on_send_failed(key),
                    _ => {
                        let n = 1 + self.rng.below(bytes.len() as u64) as usize;
                        conn.received.extend_from_slice(&bytes[..n]);
                        self.driver.on_sent(key, n);
                    }
                }
                // The backend offers the queue again after every send.
                self.try_send(key);
            }
            8 => {
                let advance = Duration::from_millis(self.rng.below(3_000));
                self.now = self.now.saturating_add(advance);
                self.driver.set_clock(self.now, 0);
            }
            9 => self.fire_due_timers(),
            10 => self.driver.serve_ready(),
            _ => {
                if self.rng.below(40) == 0 {
                    self.driver.begin_shutdown(false);
                }
            }
        }
    }

    fn fire_due_timers(&mut self) {
        let mut due: Vec<(usize, MonoTime)> = self
            .conns
            .iter()
            .filter_map(|(&k, c)| {
                c.kernel_timer
                    .filter(|&at| at <= self.now)
                    .map(|at| (k, at))
            })
            .collect();
        due.sort_unstable();
        for (key, _) in due {
            self.conns.get_mut(&key).unwrap().kernel_timer = None;
            self.driver.on_timer_fired(key, self.now);
            self.apply_actions();
        }
    }

    fn try_send(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if conn.in_flight.is_some() {
            return;
        }
        if let Some(bytes) = self.driver.start_send(key) {
            conn.in_flight = Some(bytes.to_vec());
        }
    }

    /// Carries out every action the way a backend does, checking that none
    /// names a closed connection and that timers are submitted once.
    fn apply_actions(&mut self) {
        while let Some(action) = self.driver.next_action() {
            let key = match action {
                Action::Read(k) | Action::StopReading(k) | Action::Send(k) => k,
                Action::Timer(k, _) | Action::ShutdownWrite(k) => k,
                Action::Close { key, .. } => key,
            };
            assert!(
                !self.closed.contains_key(&key),
                "seed {}: {action:?} names a closed connection",
                self.seed
            );
            match action {
                Action::Send(k) => self.try_send(k),
                Action::Timer(k, TimerAction::Submit(at)) => {
                    let conn = self.conns.get_mut(&k).unwrap();
                    assert!(
                        conn.kernel_timer.is_none(),
                        "seed {}: a second timer submitted for {k}",
                        self.seed
                    );
                    conn.kernel_timer = Some(at);
                }
                Action::Timer(k, TimerAction::Update(at)) => {
                    let conn = self.conns.get_mut(&k).unwrap();
                    assert!(
                        conn.kernel_timer.is_some(),
                        "seed {}: an update for {k} with no timer armed",
                        self.seed
                    );
                    conn.kernel_timer = Some(at);
                }
                Action::Timer(_, TimerAction::Nothing) => {}
                Action::Close { key, .. } => {
                    let mut conn = self.conns.remove(&key).unwrap();
                    conn.closes += 1;
                    // Cancelled with the connection's other operations,
                    // then the slot is released.
                    if conn.in_flight.take().is_some() {
                        self.driver.on_send_failed(key);
                    }
                    self.driver.count_forced_close(key, false);
                    self.driver.release(key);
                    self.closed.insert(key, conn.generation);
                    self.finished.push(conn);
                }
                Action::Read(_) | Action::StopReading(_) | Action::ShutdownWrite(_) => {}
            }
        }
    }

    fn check_timers(&self) {
        for (&key, sim) in &self.conns {
            let conn = self
                .driver
                .conns
                .get(key)
                .expect("a live connection has its slot");
            assert_eq!(conn.generation, sim.generation, "seed {}", self.seed);
            assert_eq!(
                conn.timers.pending_timer(),
                sim.kernel_timer,
                "seed {}: the driver's timer for {key} is not the kernel's",
                self.seed
            );
            if let Some((kind, at)) = conn.timers.earliest() {
                let armed = sim.kernel_timer.unwrap_or_else(|| {
                    panic!("seed {}: {key}'s {kind:?} deadline has no timer", self.seed)
                });
                assert!(
                    armed <= at,
                    "seed {}: {key}'s timer at {armed:?} is after its {kind:?} deadline {at:?}",
                    self.seed
                );
            }
        }
    }

    /// Closes everything left, as a stopping worker does, and checks what
    /// every connection saw.
    fn finish(mut self) {
        self.driver.begin_shutdown(false);
        self.driver
            .close_all(crate::ops::stats::CloseReason::Shutdown);
        self.apply_actions();
        assert!(
            self.conns.is_empty(),
            "seed {}: connections left",
            self.seed
        );
        assert!(self.driver.is_empty(), "seed {}: slots left", self.seed);
        for conn in &self.finished {
            assert_eq!(conn.closes, 1, "seed {}", self.seed);
            let order: Vec<usize> = conn
                .received
                .split(|&b| b == b'/')
                .skip(1)
                .filter_map(|part| part.strip_prefix(b"r"))
                .filter_map(|digits| {
                    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
                    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
                })
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "seed {}: responses out of order: {order:?}",
                self.seed
            );
        }
        assert_eq!(self.driver.output_queued, 0, "seed {}", self.seed);
        assert_eq!(self.driver.body_reserved, 0, "seed {}", self.seed);
        assert_eq!(self.driver.head_held, 0, "seed {}", self.seed);
    }
}

#[test]
fn random_event_sequences_keep_the_driver_invariants() {
    let mut closed = 0;
    for seed in 0..SEEDS {
        let mut sim = Sim::new(seed);
        for _ in 0..STEPS {
            sim.step();
            sim.apply_actions();
            sim.check_timers();
        }
        closed += sim.finished.len();
        sim.finish();
    }
    // The sequences did exercise connections, not an empty driver.
    assert!(
        closed > SEEDS as usize * 2,
        "{closed} connections in {SEEDS} sequences"
    );
}
