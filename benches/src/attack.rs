//! The attack client: thousands of slow connections, each timing the moment
//! it sees the server close it, against the deadline the server claims.
//!
//! ```text
//!   run_attack ─► a few threads, each: one epoll + a heap of due times
//!     connect (spread over open_over) ─► drip one byte per interval ─► close seen?
//!        │                                                    │
//!        │   reference: connect (slowloris), head sent (slow   ├─ FIN / RST / failed write
//!        │   body), request sent (slow read), response read    │   at t: overshoot = t - deadline
//!        │   (idle)                                            └─ still open at deadline + slack:
//!        ▼                                                         a hang; we close it
//!   deadline = reference + expected_timeout
//! ```
//!
//! Timestamps are `CLOCK_MONOTONIC` nanoseconds taken right after
//! `epoll_wait` returns, and the loop never sleeps a fixed tick: it waits
//! exactly until the next drip (`epoll_pwait2`), handles at most
//! [`DUE_BATCH`] drips before looking at the sockets again, so a close is
//! seen within microseconds even while thousands of drips are due.
//!
//! What each mode measures (with the default paths, the benchmark app's
//! routes; [`AttackPaths`] names others):
//!
//! - **Slowloris**: `GET / HTTP/1.1\r\nHost: x\r\n`, then one byte of
//!   `X-a: b\r\n` (repeating) per interval, never the final CRLF. The header
//!   deadline runs from accept; the reference is the moment before we
//!   called `connect`.
//! - **SlowBody**: a full `POST /echo` head announcing `Content-Length:
//!   1000000`, then one body byte per interval. Reference: just before the
//!   head was written.
//! - **SlowRead**: `GET /bytes/N` on a socket with a 4 KiB receive buffer,
//!   reading one byte per interval. Reference: just before the request was
//!   written (the server starts its response after reading it). The close is seen by `EPOLLRDHUP`, the
//!   moment the FIN arrives, even with unread data queued before it. Servers
//!   differ: one that closes with a FIN behind unsent data (the window is
//!   shut) cannot get that FIN out; so a connection still open at deadline +
//!   slack is drained, once no other connection is being timed (a drain
//!   costs the kernel milliseconds in this thread), at full speed while
//!   bytes keep coming (a
//!   [`DRAIN_STALL`] without one ends it, [`DRAIN_CAP`] at most). If a FIN
//!   follows the data, the server had closed: `closed_behind_data`, untimed.
//!   Otherwise it is a hang (`whole_response_read` says when the server's
//!   socket buffers had taken the whole response, so no write deadline could
//!   start: ask for more bytes). At the deadline the client notes what has
//!   arrived (read, plus queued unread: `FIONREAD`); what arrives after it,
//!   until the end, is the connection's `bytes_after_deadline`: a server
//!   whose FIN left its kernel still sending (see [`crate::slow_read`]).
//! - **Idle**: one full keep-alive `GET /`, its response read whole, then
//!   nothing for `hold` (shorter than the server's idle timeout). Any close
//!   before the hold ends is a false kill; afterwards we close cleanly.
//!
//! Every reference is read just before the syscall that starts the server's
//! clock, so on one host a close before the deadline proves the server
//! early; the price is that overshoot includes the handshake or the request's
//! trip through loopback (microseconds). A close seen more than
//! [`EARLY_SLACK`] before the deadline is an early close: something
//! closed it that is not the deadline (a connection cap, a head limit), or
//! the server's clock was stale when it armed the timer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::check::{BodyCheck, Expect, Progress, ResponseParser};
use crate::client::EARLY_SLACK;
use crate::load::{run_load, LoadConfig, LoadReport};
use crate::slow_read::{SlowReadConn, SlowReadEnd, SlowReadSummary};
use crate::stats::{LatencyRecorder, LatencySummary, OvershootSummary};
use crate::sys::{self, Connect, Epoll, Events, Interest, Ready, SocketOpts};

/// How each attack connection misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackMode {
    /// One header byte per `interval`, never finishing the head.
    Slowloris { interval: Duration },
    /// A complete head, then one body byte per `interval`.
    SlowBody { interval: Duration },
    /// Asks for `response_bytes` and reads one byte per `interval`.
    SlowRead {
        response_bytes: usize,
        interval: Duration,
    },
    /// One full request and response, then silence for `hold`.
    Idle { hold: Duration },
}

impl AttackMode {
    pub fn name(&self) -> &'static str {
        match self {
            AttackMode::Slowloris { .. } => "slowloris",
            AttackMode::SlowBody { .. } => "slow-body",
            AttackMode::SlowRead { .. } => "slow-read",
            AttackMode::Idle { .. } => "idle",
        }
    }
}

/// An attack run.
#[derive(Clone, Debug)]
pub struct AttackConfig {
    pub target: SocketAddr,
    pub mode: AttackMode,
    pub connections: usize,
    /// The connects are spread evenly over this window.
    pub open_over: Duration,
    /// The server's deadline for this mode (header, body, write timeout; for
    /// `Idle` the idle timeout, informational: `hold` must stay below it).
    pub expected_timeout: Duration,
    /// A close later than deadline + slack is a hang.
    pub slack: Duration,
}

/// What the attack saw. Every connection ends in exactly one of
/// `connect_failed`, `closed`, `hangs`, `closed_behind_data`,
/// `idle_unusable`, or (idle mode) held to the end and closed by us.
#[derive(Clone, Debug, Default)]
pub struct AttackReport {
    pub mode: &'static str,
    pub connections: usize,
    pub opened: usize,
    pub connect_failed: usize,
    /// Closes by the server that the client saw and timed (early ones included).
    pub closed: usize,
    pub hangs: usize,
    pub early_closes: usize,
    pub fin_seen: usize,
    pub reset_seen: usize,
    pub write_failed_seen: usize,
    /// Overshoot of the timed closes that were not early.
    pub overshoot: OvershootSummary,
    /// Every timed close's `seen - deadline` in ns, early ones included (negative).
    pub overshoots_ns: Vec<i64>,
    /// Idle: connections the server closed before the hold ended.
    pub false_kills: usize,
    /// Connections on which the server sent bytes (e.g. a 408) during the attack.
    pub responses_seen: usize,
    /// Slowloris and slow body: the fewest bytes a connection dripped before
    /// the server closed it (`None`: no close seen). Drips that never left
    /// would pass a deadline test without testing that drips do not extend it.
    pub fewest_drips: Option<usize>,
    /// Slow read: still open at deadline + slack, then a FIN arrived behind the
    /// queued data while draining. The server had closed; when is unknown.
    pub closed_behind_data: usize,
    /// Slow read: hangs whose drain received the whole response and no FIN.
    /// The server's socket buffers took the response whole, so its write
    /// deadline never started; only a larger response can test it.
    pub whole_response_read: usize,
    /// Idle: the request before the idle period got no complete keep-alive
    /// response (an error, `Connection: close`, or no answer in time).
    pub idle_unusable: usize,
    /// Slow read: how each connection ended, and what still arrived after
    /// its deadline. `None` in the other modes.
    pub slow_read: Option<SlowReadSummary>,
    /// How late the client ran its own schedule (connects, drips, checks),
    /// in µs. A close can be seen late by about this much because of the
    /// client; when it is not small next to the overshoot, the client is the
    /// bottleneck (too many connections for too short an interval).
    pub client_lag: LatencySummary,
    pub elapsed: Duration,
}

impl AttackReport {
    /// Hangs, early closes and false kills: what a regression run fails on.
    pub fn failures(&self) -> usize {
        self.hangs + self.early_closes + self.false_kills
    }

    /// Adds a later run of the same attack (the soak's next wave): counts
    /// and overshoots add up, the overshoot summary is recomputed, and the
    /// client lag is the worse of the two, since lags cannot be merged from
    /// their summaries.
    pub fn merge(&mut self, wave: AttackReport) {
        self.connections += wave.connections;
        self.opened += wave.opened;
        self.connect_failed += wave.connect_failed;
        self.closed += wave.closed;
        self.hangs += wave.hangs;
        self.early_closes += wave.early_closes;
        self.fin_seen += wave.fin_seen;
        self.reset_seen += wave.reset_seen;
        self.write_failed_seen += wave.write_failed_seen;
        self.overshoots_ns.extend(wave.overshoots_ns);
        self.false_kills += wave.false_kills;
        self.responses_seen += wave.responses_seen;
        self.fewest_drips = fewest(self.fewest_drips, wave.fewest_drips);
        self.closed_behind_data += wave.closed_behind_data;
        self.whole_response_read += wave.whole_response_read;
        self.idle_unusable += wave.idle_unusable;
        if wave.client_lag.p99_us > self.client_lag.p99_us {
            self.client_lag = wave.client_lag;
        }
        self.elapsed += wave.elapsed;
        self.overshoot = OvershootSummary::from_ns(&timed_overshoots(&self.overshoots_ns));
        self.slow_read = match (self.slow_read.take(), wave.slow_read) {
            (Some(mine), Some(theirs)) => {
                let mut conns = mine.connections;
                conns.extend(theirs.connections);
                Some(SlowReadSummary::from_conns(conns))
            }
            (mine, theirs) => mine.or(theirs),
        };
    }
}

/// The smaller of two counts where `None` means none seen.
fn fewest(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The overshoots of closes that were not early: what the summary describes.
fn timed_overshoots(all_ns: &[i64]) -> Vec<i64> {
    all_ns
        .iter()
        .copied()
        .filter(|&o| o >= -(EARLY_SLACK.as_nanos() as i64))
        .collect()
}

/// Slow read: a connection still open at deadline + slack is drained while
/// bytes keep coming; this long without a byte (and no FIN) ends it as a hang.
pub const DRAIN_STALL: Duration = Duration::from_millis(250);
/// Slow read: no drain lasts longer than this.
pub const DRAIN_CAP: Duration = Duration::from_secs(10);
/// Drips and connects handled before the sockets are polled again.
pub const DUE_BATCH: usize = 64;
/// The receive buffer of a slow-read socket.
pub const SLOW_READ_RCVBUF: usize = 4096;
/// A connect or the idle request must be done within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
const SLOWLORIS_DRIP: &[u8] = b"X-a: b\r\n";
const SLOW_BODY_LENGTH: usize = 1_000_000;
const CONNS_PER_THREAD: usize = 2500;

/// The request targets the attack connections ask for. The defaults are
/// the routes of the benchmark app that `ringwall serve` and every peer
/// serve; another server names its own (`ringwall-bench slowloris
/// --slow-body-path`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttackPaths {
    /// Slowloris: the target of the `GET` head that never ends. No route is
    /// reached; only a server that looks at the target before the head is
    /// complete could care.
    pub slowloris: String,
    /// Slow body: the target of the `POST` whose body drips. Any route that
    /// reads the body: the deadline runs while the server waits for it.
    pub slow_body: String,
    /// Slow read: the target of the `GET` whose response is read one byte
    /// per interval; [`SLOW_READ_BYTES_PLACEHOLDER`] in it becomes the
    /// mode's `response_bytes`. Its response must be larger than the
    /// server's send buffer and the client's [`SLOW_READ_RCVBUF`] together,
    /// or the server's send finishes and no write deadline starts
    /// (`whole_response_read` counts such hangs).
    pub slow_read: String,
    /// Idle: the target of the one keep-alive `GET` before the silence. Any
    /// status will do, but it must keep the connection open.
    pub idle: String,
}

/// Replaced, in [`AttackPaths::slow_read`], by the response size slow read
/// asks for.
pub const SLOW_READ_BYTES_PLACEHOLDER: &str = "{bytes}";

impl Default for AttackPaths {
    fn default() -> AttackPaths {
        AttackPaths {
            slowloris: "/".into(),
            slow_body: "/echo".into(),
            slow_read: format!("/bytes/{SLOW_READ_BYTES_PLACEHOLDER}"),
            idle: "/".into(),
        }
    }
}

impl AttackPaths {
    /// Refuses a target that would not make one request line: each must be
    /// in origin form (`/` then visible ASCII, RFC 9112, section 3.2.1), or
    /// the server answers 400 and the mode measures the wrong deadline.
    pub fn validate(&self) -> io::Result<()> {
        for (mode, path) in [
            ("slowloris", &self.slowloris),
            ("slow-body", &self.slow_body),
            ("slow-read", &self.slow_read),
            ("idle", &self.idle),
        ] {
            if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the {mode} path (--{mode}-path) `{path}` is not an origin-form \
                         target: `/` then visible ASCII, no spaces"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The slow-read target with its placeholder filled in.
    pub fn slow_read_target(&self, response_bytes: usize) -> String {
        self.slow_read
            .replace(SLOW_READ_BYTES_PLACEHOLDER, &response_bytes.to_string())
    }
}

/// Runs the attack on the default [`AttackPaths`] and reports how the server
/// closed each connection.
pub fn run_attack(cfg: &AttackConfig) -> io::Result<AttackReport> {
    run_attack_on(cfg, &AttackPaths::default())
}

/// Runs the attack, each connection asking for its mode's path in `paths`,
/// and reports how the server closed each connection.
pub fn run_attack_on(cfg: &AttackConfig, paths: &AttackPaths) -> io::Result<AttackReport> {
    paths.validate()?;
    if cfg.connections == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "attack needs at least one connection",
        ));
    }
    if let AttackMode::Slowloris { interval }
    | AttackMode::SlowBody { interval }
    | AttackMode::SlowRead { interval, .. } = cfg.mode
    {
        if interval.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "drip interval must be positive",
            ));
        }
    }
    sys::ensure_fd_capacity(cfg.connections)?;
    let threads = cfg.connections.div_ceil(CONNS_PER_THREAD).clamp(1, 4);
    let start = sys::monotonic_ns();
    // A common origin a little ahead, so every thread is up before the first connect.
    let t0 = start + 10_000_000;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cfg = cfg.clone();
            let paths = paths.clone();
            std::thread::Builder::new()
                .name(format!("attack-{t}"))
                .spawn(move || {
                    AttackThread::new(&cfg, &paths, t, threads, t0).and_then(|mut th| th.run())
                })
        })
        .collect::<io::Result<_>>()?;
    let mut report = AttackReport {
        mode: cfg.mode.name(),
        connections: cfg.connections,
        ..AttackReport::default()
    };
    let mut first_err = None;
    let mut lag = LatencyRecorder::new();
    let mut slow_read = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => t.add_to(&mut report, &mut lag, &mut slow_read),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(io::Error::other("an attack thread panicked"))),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    report.overshoot = OvershootSummary::from_ns(&timed_overshoots(&report.overshoots_ns));
    if let AttackMode::SlowRead { .. } = cfg.mode {
        report.slow_read = Some(SlowReadSummary::from_conns(slow_read));
    }
    report.client_lag = lag.summary();
    report.elapsed = Duration::from_nanos(sys::monotonic_ns() - start);
    Ok(report)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The connect is scheduled.
    Scheduled,
    Connecting,
    /// Idle mode: the request is sent, its response not yet read whole.
    Requesting,
    /// Misbehaving (or idling) and watching for the close.
    Holding,
    /// Slow read past deadline + slack, waiting until no connection is being
    /// timed any more: a drain costs the kernel milliseconds per connection
    /// in this thread, which would delay the closes of the others.
    DrainPending,
    /// Slow read past deadline + slack: reading at full speed to find a FIN.
    Draining,
    Done,
}

impl Phase {
    /// Phases in which a close is still timed against the deadline.
    fn timed(self) -> bool {
        matches!(
            self,
            Phase::Scheduled | Phase::Connecting | Phase::Requesting | Phase::Holding
        )
    }
}

/// What is due at a heap entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Connect,
    Drip,
    /// Deadline + slack, or the end of the idle hold.
    Check,
    /// The connect, or the idle request, had to be done by now.
    Setup,
    /// The end of a slow-read drain.
    DrainEnd,
    /// Slow read: the deadline, when what has arrived so far is noted.
    Deadline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseKind {
    Fin,
    Reset,
    WriteFailed,
}

struct Slot {
    /// The connection's number, in connect order across threads.
    index: usize,
    stream: Option<TcpStream>,
    phase: Phase,
    /// Where the server's deadline starts (see the module docs).
    reference: u64,
    drip_pos: usize,
    got_bytes: bool,
    /// Idle mode: checks the one response.
    parser: Option<ResponseParser>,
    /// Idle mode: response bytes not yet consumed by the parser.
    pending: Vec<u8>,
    /// Just before `connect` was called.
    connect_started: u64,
    /// Slow read: response bytes read so far (drips and drain).
    bytes_in: u64,
    /// Slow read: `bytes_in` at the last drain check, and when the drain must end.
    drain_mark: u64,
    drain_until: u64,
    /// Slow read: bytes arrived (read or queued) at the deadline; `None` before it.
    arrived_at_deadline: Option<u64>,
    /// Slow read: how it ended, set where the end is recognised.
    end: Option<SlowReadEnd>,
    overshoot_ns: Option<i64>,
}

#[derive(Default)]
struct Tally {
    opened: usize,
    connect_failed: usize,
    closed: usize,
    hangs: usize,
    early_closes: usize,
    fin_seen: usize,
    reset_seen: usize,
    write_failed_seen: usize,
    overshoots_ns: Vec<i64>,
    false_kills: usize,
    responses_seen: usize,
    fewest_drips: Option<usize>,
    closed_behind_data: usize,
    whole_response_read: usize,
    idle_unusable: usize,
    slow_read: Vec<SlowReadConn>,
    lag: LatencyRecorder,
}

impl Tally {
    fn add_to(
        self,
        r: &mut AttackReport,
        lag: &mut LatencyRecorder,
        slow_read: &mut Vec<SlowReadConn>,
    ) {
        lag.merge(&self.lag);
        r.opened += self.opened;
        r.connect_failed += self.connect_failed;
        r.closed += self.closed;
        r.hangs += self.hangs;
        r.early_closes += self.early_closes;
        r.fin_seen += self.fin_seen;
        r.reset_seen += self.reset_seen;
        r.write_failed_seen += self.write_failed_seen;
        r.overshoots_ns.extend(self.overshoots_ns);
        r.false_kills += self.false_kills;
        r.responses_seen += self.responses_seen;
        r.fewest_drips = fewest(r.fewest_drips, self.fewest_drips);
        r.closed_behind_data += self.closed_behind_data;
        r.whole_response_read += self.whole_response_read;
        r.idle_unusable += self.idle_unusable;
        slow_read.extend(self.slow_read);
    }
}

struct AttackThread {
    target: SocketAddr,
    mode: AttackMode,
    expected_ns: u64,
    slack_ns: u64,
    epoll: Epoll,
    slots: Vec<Slot>,
    heap: BinaryHeap<Reverse<(u64, usize, Due)>>,
    unresolved: usize,
    /// Slots whose close is still timed (see [`Phase::timed`]).
    timed_open: usize,
    /// Slow-read slots waiting for `timed_open` to reach zero.
    drains_pending: usize,
    /// Past this everything still open is a hang: the loop always stops.
    hard_end: u64,
    host: String,
    paths: AttackPaths,
    scratch: Box<[u8]>,
    tally: Tally,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

impl AttackThread {
    fn new(
        cfg: &AttackConfig,
        paths: &AttackPaths,
        t: usize,
        threads: usize,
        t0: u64,
    ) -> io::Result<AttackThread> {
        let mut slots = Vec::new();
        let mut heap = BinaryHeap::new();
        let spread = ns(cfg.open_over);
        for k in (t..cfg.connections).step_by(threads) {
            let at = t0 + (spread as u128 * k as u128 / cfg.connections as u128) as u64;
            heap.push(Reverse((at, slots.len(), Due::Connect)));
            slots.push(Slot {
                index: k,
                stream: None,
                phase: Phase::Scheduled,
                reference: 0,
                drip_pos: 0,
                got_bytes: false,
                parser: None,
                pending: Vec::new(),
                connect_started: 0,
                bytes_in: 0,
                drain_mark: 0,
                drain_until: 0,
                arrived_at_deadline: None,
                end: None,
                overshoot_ns: None,
            });
        }
        let longest = match cfg.mode {
            AttackMode::Idle { hold } => ns(hold) + ns(SETUP_TIMEOUT),
            _ => ns(cfg.expected_timeout) + ns(DRAIN_CAP) + ns(DRAIN_STALL),
        };
        Ok(AttackThread {
            target: cfg.target,
            mode: cfg.mode,
            expected_ns: ns(cfg.expected_timeout),
            slack_ns: ns(cfg.slack),
            epoll: Epoll::new()?,
            unresolved: slots.len(),
            timed_open: slots.len(),
            drains_pending: 0,
            slots,
            heap,
            hard_end: t0 + spread + longest + ns(cfg.slack) + ns(SETUP_TIMEOUT),
            host: cfg.target.to_string(),
            paths: paths.clone(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            tally: Tally::default(),
        })
    }

    fn run(&mut self) -> io::Result<Tally> {
        sys::tighten_timer_slack();
        sys::raise_thread_priority();
        let mut events = Events::with_capacity(1024);
        while self.unresolved > 0 {
            let now = sys::monotonic_ns();
            if now >= self.hard_end {
                for i in 0..self.slots.len() {
                    if self.slots[i].phase != Phase::Done {
                        self.give_up(i);
                    }
                }
                break;
            }
            let more_due = self.run_due(now);
            self.start_drains_when_untimed();
            if self.unresolved == 0 {
                break;
            }
            let timeout = if more_due {
                Duration::ZERO
            } else {
                let next = self
                    .heap
                    .peek()
                    .map_or(self.hard_end, |Reverse((at, _, _))| *at);
                Duration::from_nanos(next.min(self.hard_end).saturating_sub(sys::monotonic_ns()))
            };
            self.epoll.wait(&mut events, Some(timeout))?;
            // The moment these events were seen, for every one of them.
            let seen = sys::monotonic_ns();
            for e in 0..events.len() {
                let (token, ready) = events.get(e);
                self.on_ready(token as usize, ready, seen);
            }
        }
        Ok(std::mem::take(&mut self.tally))
    }

    /// Handles up to [`DUE_BATCH`] due entries; true if more are due now.
    fn run_due(&mut self, now: u64) -> bool {
        for _ in 0..DUE_BATCH {
            let Some(&Reverse((at, i, due))) = self.heap.peek() else {
                return false;
            };
            if at > now {
                return false;
            }
            self.heap.pop();
            if self.slots[i].phase == Phase::Done {
                continue;
            }
            // Only work whose lateness can delay a timed close counts.
            if self.slots[i].phase.timed() {
                self.tally.lag.record_ns(now - at);
            }
            match due {
                Due::Connect => self.connect(i),
                Due::Drip => self.drip(i, at),
                Due::Check => self.check(i),
                Due::Setup => self.setup_expired(i),
                Due::DrainEnd => self.drain_end(i),
                Due::Deadline => self.note_arrived_at_deadline(i),
            }
        }
        self.heap
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= now)
    }

    fn connect(&mut self, i: usize) {
        let opts = SocketOpts {
            recv_buffer: matches!(self.mode, AttackMode::SlowRead { .. })
                .then_some(SLOW_READ_RCVBUF),
            nodelay: true,
        };
        // Before the syscall: the server cannot accept earlier, so a close
        // before this + deadline proves the server early.
        let started = sys::monotonic_ns();
        let (stream, state) = match sys::connect_nonblocking(self.target, opts) {
            Ok(s) => s,
            Err(_) => return self.connect_failed(i),
        };
        let interest = match state {
            Connect::Done => self.holding_interest(),
            Connect::InProgress => Interest::ReadWrite,
        };
        if self
            .epoll
            .add(stream.as_raw_fd(), i as u64, interest)
            .is_err()
        {
            return self.connect_failed(i);
        }
        self.slots[i].stream = Some(stream);
        self.slots[i].connect_started = started;
        match state {
            Connect::Done => self.connected(i),
            Connect::InProgress => {
                self.slots[i].phase = Phase::Connecting;
                self.heap
                    .push(Reverse((started + ns(SETUP_TIMEOUT), i, Due::Setup)));
            }
        }
    }

    fn holding_interest(&self) -> Interest {
        match self.mode {
            // Queued response bytes are read on the drip schedule, not on readiness.
            AttackMode::SlowRead { .. } => Interest::CloseOnly,
            _ => Interest::Read,
        }
    }

    /// The handshake is done: send the opening bytes, start the clock.
    fn connected(&mut self, i: usize) {
        self.tally.opened += 1;
        let host = &self.host;
        let paths = &self.paths;
        let opening: Vec<u8> = match self.mode {
            AttackMode::Slowloris { .. } => {
                format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", paths.slowloris).into_bytes()
            }
            AttackMode::SlowBody { .. } => format!(
                "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {SLOW_BODY_LENGTH}\r\n\r\n",
                paths.slow_body
            )
            .into_bytes(),
            AttackMode::SlowRead { response_bytes, .. } => format!(
                "GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                paths.slow_read_target(response_bytes)
            )
            .into_bytes(),
            AttackMode::Idle { .. } => {
                format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", paths.idle).into_bytes()
            }
        };
        let slot = &mut self.slots[i];
        // Taken before the syscall that starts the server's clock (see `connect`).
        let before_write = sys::monotonic_ns();
        slot.reference = match self.mode {
            // The header deadline runs from accept, which follows our connect.
            AttackMode::Slowloris { .. } => slot.connect_started,
            AttackMode::SlowBody { .. } | AttackMode::SlowRead { .. } => before_write,
            AttackMode::Idle { .. } => before_write,
        };
        let stream = slot.stream.as_mut().expect("connected slot has a socket");
        // A fresh socket's send buffer takes a request head whole.
        match stream.write(&opening) {
            Ok(n) if n == opening.len() => {}
            Ok(_) | Err(_) => {
                return self.server_closed(i, sys::monotonic_ns(), CloseKind::WriteFailed)
            }
        }
        let written = sys::monotonic_ns();
        match self.mode {
            AttackMode::Slowloris { interval }
            | AttackMode::SlowBody { interval }
            | AttackMode::SlowRead { interval, .. } => {
                slot.phase = Phase::Holding;
                let reference = slot.reference;
                self.heap
                    .push(Reverse((reference + ns(interval), i, Due::Drip)));
                if let AttackMode::SlowRead { .. } = self.mode {
                    self.heap
                        .push(Reverse((reference + self.expected_ns, i, Due::Deadline)));
                }
                self.heap.push(Reverse((
                    reference + self.expected_ns + self.slack_ns,
                    i,
                    Due::Check,
                )));
            }
            AttackMode::Idle { .. } => {
                slot.phase = Phase::Requesting;
                slot.parser = Some(ResponseParser::new(Expect {
                    status: None,
                    body: BodyCheck::Any,
                }));
                self.heap
                    .push(Reverse((written + ns(SETUP_TIMEOUT), i, Due::Setup)));
            }
        }
    }

    fn drip(&mut self, i: usize, due: u64) {
        let interval = match self.mode {
            AttackMode::Slowloris { interval }
            | AttackMode::SlowBody { interval }
            | AttackMode::SlowRead { interval, .. } => interval,
            AttackMode::Idle { .. } => return,
        };
        if self.slots[i].phase != Phase::Holding {
            return;
        }
        let slot = &mut self.slots[i];
        let stream = slot.stream.as_mut().expect("holding slot has a socket");
        match self.mode {
            AttackMode::SlowRead { .. } => {
                let mut byte = [0u8; 1];
                match stream.read(&mut byte) {
                    Ok(0) => return self.server_closed(i, sys::monotonic_ns(), CloseKind::Fin),
                    Ok(_) => slot.bytes_in += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return self.server_closed(i, sys::monotonic_ns(), CloseKind::Reset),
                }
            }
            _ => {
                let byte = match self.mode {
                    AttackMode::Slowloris { .. } => {
                        SLOWLORIS_DRIP[slot.drip_pos % SLOWLORIS_DRIP.len()]
                    }
                    _ => crate::check::echo_byte(slot.drip_pos),
                };
                match stream.write(&[byte]) {
                    Ok(_) => slot.drip_pos += 1,
                    // The server stopped reading; the bytes already queued keep it busy.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        return self.server_closed(i, sys::monotonic_ns(), CloseKind::WriteFailed)
                    }
                }
            }
        }
        // Scheduled from the previous due time, not from now: no drift.
        self.heap.push(Reverse((due + ns(interval), i, Due::Drip)));
    }

    /// Slow read: what has arrived by the deadline, so that whatever arrives
    /// later is known to have left the server after it.
    fn note_arrived_at_deadline(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if let Some(stream) = &slot.stream {
            slot.arrived_at_deadline = Some(slot.bytes_in + sys::bytes_queued(stream).unwrap_or(0));
        }
    }

    fn setup_expired(&mut self, i: usize) {
        match self.slots[i].phase {
            Phase::Connecting => self.connect_failed(i),
            Phase::Requesting => {
                self.tally.idle_unusable += 1;
                self.close_ours(i);
            }
            _ => {}
        }
    }

    fn check(&mut self, i: usize) {
        match self.slots[i].phase {
            Phase::Holding => match self.mode {
                // The hold ended with the connection alive: what we wanted.
                AttackMode::Idle { .. } => self.close_ours(i),
                AttackMode::SlowRead { .. } => {
                    self.slots[i].phase = Phase::DrainPending;
                    self.timed_open -= 1;
                    self.drains_pending += 1;
                }
                _ => {
                    self.tally.hangs += 1;
                    self.close_ours(i);
                }
            },
            Phase::Scheduled
            | Phase::Connecting
            | Phase::Requesting
            | Phase::DrainPending
            | Phase::Draining
            | Phase::Done => {}
        }
    }

    fn start_drains_when_untimed(&mut self) {
        if self.timed_open > 0 || self.drains_pending == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].phase == Phase::DrainPending {
                self.start_drain(i);
            }
        }
    }

    fn start_drain(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let stream = slot.stream.as_ref().expect("holding slot has a socket");
        // A 4 KiB window moves one segment per wakeup; open it so the drain
        // is bounded by the server's queue, not by round trips.
        let _ = sys::set_recv_buffer(stream, 1 << 20);
        if self
            .epoll
            .modify(stream.as_raw_fd(), i as u64, Interest::Read)
            .is_err()
        {
            self.tally.hangs += 1;
            return self.close_ours(i);
        }
        slot.phase = Phase::Draining;
        self.drains_pending -= 1;
        slot.drain_mark = slot.bytes_in;
        let now = sys::monotonic_ns();
        slot.drain_until = now + ns(DRAIN_CAP);
        self.heap
            .push(Reverse((now + ns(DRAIN_STALL), i, Due::DrainEnd)));
    }

    /// A drain goes on while bytes keep coming (up to [`DRAIN_CAP`]); a
    /// [`DRAIN_STALL`] without a byte and without a FIN is a hang.
    fn drain_end(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.phase != Phase::Draining {
            return;
        }
        let now = sys::monotonic_ns();
        if slot.bytes_in > slot.drain_mark && now < slot.drain_until {
            slot.drain_mark = slot.bytes_in;
            self.heap
                .push(Reverse((now + ns(DRAIN_STALL), i, Due::DrainEnd)));
            return;
        }
        if let AttackMode::SlowRead { response_bytes, .. } = self.mode {
            if slot.bytes_in >= response_bytes as u64 {
                self.tally.whole_response_read += 1;
            }
        }
        self.tally.hangs += 1;
        self.close_ours(i);
    }

    fn on_ready(&mut self, i: usize, ready: Ready, seen: u64) {
        let phase = self.slots[i].phase;
        if self.slots[i].stream.is_none() {
            return;
        }
        match phase {
            Phase::Connecting => {
                let stream = self.slots[i].stream.as_ref().expect("checked above");
                if ready.error() || ready.read_closed() || !matches!(stream.take_error(), Ok(None))
                {
                    return self.connect_failed(i);
                }
                if !ready.writable() {
                    return;
                }
                let fd = stream.as_raw_fd();
                if self
                    .epoll
                    .modify(fd, i as u64, self.holding_interest())
                    .is_err()
                {
                    return self.connect_failed(i);
                }
                self.connected(i);
            }
            Phase::Holding if matches!(self.mode, AttackMode::SlowRead { .. }) => {
                // The FIN arrived; the data before it stays unread.
                if ready.error() {
                    let kind = self.reset_or_fin(i);
                    self.server_closed(i, seen, kind);
                } else if ready.read_closed() {
                    self.server_closed(i, seen, CloseKind::Fin);
                }
            }
            Phase::DrainPending => {
                // Closed after deadline + slack: late, so still a hang.
                if ready.error() || ready.read_closed() {
                    self.tally.hangs += 1;
                    self.close_ours(i);
                }
            }
            Phase::Requesting | Phase::Holding | Phase::Draining => {
                if ready.readable() || ready.read_closed() || ready.error() {
                    self.read_available(i, seen);
                }
            }
            Phase::Scheduled | Phase::Done => {}
        }
    }

    /// Reads what is queued (bounded by what the socket holds now) and
    /// notices the close at its end.
    fn read_available(&mut self, i: usize, seen: u64) {
        // Bounded: a nonblocking socket runs dry; 64 reads of 64 KiB at most per event.
        for _ in 0..64 {
            let slot = &mut self.slots[i];
            let stream = slot.stream.as_mut().expect("caller checked the socket");
            match stream.read(&mut self.scratch) {
                Ok(0) => {
                    return if slot.phase == Phase::Draining {
                        self.tally.closed_behind_data += 1;
                        self.tally.fin_seen += 1;
                        slot.end = Some(SlowReadEnd::FinBehindData);
                        self.close_ours(i)
                    } else {
                        self.server_closed(i, seen, CloseKind::Fin)
                    };
                }
                Ok(n) => {
                    if slot.phase == Phase::Draining {
                        // One read per wakeup: level-triggered epoll comes back,
                        // and a drain never holds up the closes being timed.
                        slot.bytes_in += n as u64;
                        return;
                    }
                    if !slot.got_bytes {
                        slot.got_bytes = true;
                        if slot.phase != Phase::Requesting {
                            self.tally.responses_seen += 1;
                        }
                    }
                    if slot.phase == Phase::Requesting {
                        self.idle_response_bytes(i, n, seen);
                        if self.slots[i].phase == Phase::Done {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    return if self.slots[i].phase == Phase::Draining {
                        self.tally.closed_behind_data += 1;
                        self.tally.reset_seen += 1;
                        self.slots[i].end = Some(SlowReadEnd::ResetBehindData);
                        self.close_ours(i)
                    } else {
                        self.server_closed(i, seen, CloseKind::Reset)
                    };
                }
            }
        }
    }

    /// Idle mode: feeds response bytes; once the response is whole, the hold starts.
    fn idle_response_bytes(&mut self, i: usize, n: usize, seen: u64) {
        let slot = &mut self.slots[i];
        slot.pending.extend_from_slice(&self.scratch[..n]);
        let parser = slot.parser.as_mut().expect("idle slot has a parser");
        let mut used = 0;
        let outcome = loop {
            match parser.feed(&slot.pending[used..]) {
                Ok((0, Progress::Partial)) => break None,
                Ok((k, Progress::Partial)) => used += k,
                Ok((k, Progress::Complete { keep_alive, .. })) => {
                    break Some((used + k, keep_alive))
                }
                Err(_) => {
                    self.tally.idle_unusable += 1;
                    return self.close_ours(i);
                }
            }
        };
        let Some((used, keep_alive)) = outcome else {
            slot.pending.drain(..used);
            return;
        };
        if !keep_alive || used < slot.pending.len() {
            // Not kept alive, or bytes nobody asked for: no idle test possible.
            self.tally.idle_unusable += 1;
            return self.close_ours(i);
        }
        slot.phase = Phase::Holding;
        slot.parser = None;
        slot.pending = Vec::new();
        slot.reference = seen;
        let AttackMode::Idle { hold } = self.mode else {
            unreachable!("only idle slots request")
        };
        self.heap.push(Reverse((seen + ns(hold), i, Due::Check)));
    }

    fn reset_or_fin(&self, i: usize) -> CloseKind {
        let stream = self.slots[i]
            .stream
            .as_ref()
            .expect("caller checked the socket");
        match stream.take_error() {
            Ok(Some(e)) if e.kind() == io::ErrorKind::ConnectionReset => CloseKind::Reset,
            Ok(Some(_)) => CloseKind::Reset,
            _ => CloseKind::Fin,
        }
    }

    /// The server closed slot `i`; the client saw it at `at`.
    fn server_closed(&mut self, i: usize, at: u64, kind: CloseKind) {
        let phase = self.slots[i].phase;
        let end = match kind {
            CloseKind::Fin => {
                self.tally.fin_seen += 1;
                SlowReadEnd::Fin
            }
            CloseKind::Reset => {
                self.tally.reset_seen += 1;
                SlowReadEnd::Reset
            }
            CloseKind::WriteFailed => {
                self.tally.write_failed_seen += 1;
                SlowReadEnd::WriteFailed
            }
        };
        self.slots[i].end = Some(end);
        self.tally.closed += 1;
        match self.mode {
            AttackMode::Idle { .. } => {
                if phase == Phase::Requesting {
                    self.tally.idle_unusable += 1;
                } else {
                    self.tally.false_kills += 1;
                }
            }
            _ => {
                let deadline = self.slots[i].reference + self.expected_ns;
                let overshoot = at as i64 - deadline as i64;
                self.tally.overshoots_ns.push(overshoot);
                self.slots[i].overshoot_ns = Some(overshoot);
                if overshoot < -(EARLY_SLACK.as_nanos() as i64) {
                    self.tally.early_closes += 1;
                }
                if let AttackMode::Slowloris { .. } | AttackMode::SlowBody { .. } = self.mode {
                    let drips = Some(self.slots[i].drip_pos);
                    self.tally.fewest_drips = fewest(self.tally.fewest_drips, drips);
                }
            }
        }
        self.finish(i);
    }

    fn connect_failed(&mut self, i: usize) {
        self.tally.connect_failed += 1;
        self.slots[i].end = Some(SlowReadEnd::ConnectFailed);
        self.finish(i);
    }

    /// Hard stop: whatever is unresolved counts as a hang.
    fn give_up(&mut self, i: usize) {
        match self.slots[i].phase {
            Phase::Scheduled | Phase::Connecting => return self.connect_failed(i),
            Phase::Requesting => self.tally.idle_unusable += 1,
            _ => self.tally.hangs += 1,
        }
        self.finish(i);
    }

    /// We close it (end of the hold, a hang, a drain): a plain FIN.
    fn close_ours(&mut self, i: usize) {
        self.finish(i);
    }

    fn finish(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.phase == Phase::Done {
            return;
        }
        if slot.phase.timed() {
            self.timed_open -= 1;
        }
        if slot.phase == Phase::DrainPending {
            self.drains_pending -= 1;
        }
        if let AttackMode::SlowRead { .. } = self.mode {
            let queued = slot
                .stream
                .as_ref()
                .map_or(0, |s| sys::bytes_queued(s).unwrap_or(0));
            let arrived = slot.bytes_in + queued;
            self.tally.slow_read.push(SlowReadConn {
                index: slot.index,
                // Every other way to end is a hang: a drain that found no
                // close, a close after deadline + slack, the hard stop.
                end: slot.end.unwrap_or(SlowReadEnd::Hang),
                overshoot_ns: slot.overshoot_ns,
                bytes_received: arrived,
                bytes_after_deadline: slot
                    .arrived_at_deadline
                    .map_or(0, |at| arrived.saturating_sub(at)),
            });
        }
        // Dropping the socket closes it and removes it from the epoll set.
        slot.stream = None;
        slot.parser = None;
        slot.pending = Vec::new();
        slot.phase = Phase::Done;
        self.unresolved -= 1;
    }
}

/// An attack and the legit load that ran beside it, with the same load's
/// baseline measured alone just before.
#[derive(Clone, Debug)]
pub struct AttackWithLoad {
    pub attack: AttackReport,
    pub legit_baseline: LoadReport,
    pub legit_under_attack: LoadReport,
}

impl AttackWithLoad {
    /// Legit requests per second under attack as a share of the baseline.
    pub fn legit_kept_percent(&self) -> f64 {
        let base = self.legit_baseline.requests_per_sec();
        if base <= 0.0 {
            return 0.0;
        }
        100.0 * self.legit_under_attack.requests_per_sec() / base
    }
}

/// Runs `load` alone (the baseline), then `attack` and `load` together, both
/// starting at once: give `load` a duration that covers the attack's window
/// (`open_over + expected_timeout + slack`) to measure it under attack.
pub fn run_attack_with_load(
    attack: &AttackConfig,
    load: &LoadConfig,
) -> io::Result<AttackWithLoad> {
    run_attack_on_with_load(attack, &AttackPaths::default(), load)
}

/// [`run_attack_with_load`] with the attack asking for `paths`.
pub fn run_attack_on_with_load(
    attack: &AttackConfig,
    paths: &AttackPaths,
    load: &LoadConfig,
) -> io::Result<AttackWithLoad> {
    paths.validate()?;
    sys::ensure_fd_capacity(attack.connections + load.connections)?;
    let legit_baseline = run_load(load)?;
    let attack_cfg = attack.clone();
    let paths = paths.clone();
    let attacker = std::thread::Builder::new()
        .name("attack".into())
        .spawn(move || run_attack_on(&attack_cfg, &paths))?;
    let legit_under_attack = run_load(load);
    let attack = attacker
        .join()
        .map_err(|_| io::Error::other("the attack thread panicked"))??;
    Ok(AttackWithLoad {
        attack,
        legit_baseline,
        legit_under_attack: legit_under_attack?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_are_the_benchmark_apps_routes() {
        let paths = AttackPaths::default();
        assert_eq!(paths.slowloris, "/");
        assert_eq!(paths.slow_body, "/echo");
        assert_eq!(paths.slow_read_target(1 << 20), "/bytes/1048576");
        assert_eq!(paths.idle, "/");
        assert!(paths.validate().is_ok());
    }

    #[test]
    fn slow_read_target_without_the_placeholder_is_kept_as_given() {
        let paths = AttackPaths {
            slow_read: "/big.iso".into(),
            ..AttackPaths::default()
        };
        assert_eq!(paths.slow_read_target(4096), "/big.iso");
    }

    #[test]
    fn paths_not_in_origin_form_are_refused_naming_their_flag() {
        for bad in ["echo", "", "/a b", "/a\r\nX: y", "http://h/x", "/\u{e9}"] {
            let paths = AttackPaths {
                slow_body: bad.into(),
                ..AttackPaths::default()
            };
            let err = paths.validate().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("--slow-body-path"), "{err}");
        }
    }

    fn wave(hangs: usize, overshoots_ns: Vec<i64>) -> AttackReport {
        AttackReport {
            mode: "slowloris",
            connections: 10,
            opened: 10,
            closed: 10 - hangs,
            hangs,
            overshoot: OvershootSummary::from_ns(&overshoots_ns),
            overshoots_ns,
            ..AttackReport::default()
        }
    }

    #[test]
    fn merged_waves_add_up_and_are_summarised_again() {
        let mut total = wave(1, vec![1_000_000, 2_000_000]);
        // An early close (-10 ms) is kept with the rest but left out of the summary.
        total.merge(wave(2, vec![9_000_000, -10_000_000]));
        assert_eq!(total.connections, 20);
        assert_eq!(total.hangs, 3);
        assert_eq!(total.overshoots_ns.len(), 4);
        assert_eq!(total.overshoot.count, 3);
        assert_eq!(total.overshoot.max_us, 9_000.0);
    }
}
