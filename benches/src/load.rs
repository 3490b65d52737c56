//! The load generator: keep-alive, pipelined or churn HTTP/1.1 load whose
//! every response is parsed and checked before it counts.
//!
//! ```text
//!   run_load ─► N threads, each: one epoll, C/N nonblocking connections
//!     connection: connect ─► write batch ─► read + check responses ─► again
//!                    ▲                                  │
//!                    └── reconnect (backoff 1 ms..100 ms) ◄─ EOF, RST, write error,
//!                                                           bad response, timeout
//! ```
//!
//! A response that fails its check is counted by kind in [`ErrorCounts`] and
//! never as a request; the connection is then dropped and reopened, because
//! the byte stream can no longer be trusted. Seed 002: a generator that did
//! not reconnect after a server's close reported zero, so every way a
//! connection can end leads back to a connect.
//!
//! With a `pace`, a connection sends its next batch (churning: opens its
//! next connection) no sooner than `pace` after the last one: a steady rate,
//! so a long run such as the soak spends its CPU on checking rather than on
//! racing the server.
//!
//! Errors count failure events: one per broken response, dropped connection,
//! failed connect or timeout, not one per request of a pipelined batch lost
//! with its connection. When a server announces `Connection: close`, the
//! requests behind that response in a pipeline are dropped without counting
//! them as errors: the server said so.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::check::{BodyCheck, ErrorCounts, ErrorKind, Expect, Progress, ResponseParser};
use crate::stats::{LatencyRecorder, LatencySummary};
use crate::sys::{self, Connect, Epoll, Events, Interest, SocketOpts};

/// How requests are sent on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMode {
    /// One request at a time, reusing the connection.
    KeepAlive,
    /// `depth` requests in one write, then `depth` responses read in order.
    Pipelined { depth: usize },
    /// One request per connection with `Connection: close`; the server's
    /// close is awaited before reconnecting.
    Churn,
}

/// Which request is sent and what its response must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestSpec {
    /// `GET /`, expects `200` and exactly `Hello, World!`.
    Hello,
    /// `GET /bytes/N`, expects `200` and exactly N body bytes.
    Bytes(usize),
    /// `POST /echo` with N bytes, expects the same N bytes back.
    Echo(usize),
    /// `GET <path>`, expects `200` with a framed body of any length and
    /// content: legit traffic against a server whose pages are unknown.
    Get(String),
}

/// A load run. `duration` always bounds it; `max_requests` bounds the number
/// of requests sent (so successes never exceed it).
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    pub mode: LoadMode,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub request: RequestSpec,
    /// Each connection starts a batch (churning: a connection) at most once
    /// per `pace`: a steady rate rather than as fast as the server answers.
    /// `None`: as fast as it answers.
    pub pace: Option<Duration>,
}

impl LoadConfig {
    /// Keep-alive `Hello` load: 64 connections on 2 threads for 10 s.
    pub fn new(target: SocketAddr) -> LoadConfig {
        LoadConfig {
            target,
            mode: LoadMode::KeepAlive,
            connections: 64,
            threads: 2,
            duration: Duration::from_secs(10),
            max_requests: None,
            request: RequestSpec::Hello,
            pace: None,
        }
    }
}

/// The outcome of a load run. `requests` counts only checked, correct
/// responses.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub requests: u64,
    pub elapsed: Duration,
    pub errors: ErrorCounts,
    pub latency: LatencySummary,
    /// Connections that completed their handshake.
    pub connects: u64,
    /// Response bytes read, heads included.
    pub bytes_read: u64,
}

impl LoadReport {
    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.requests as f64 / secs
    }
}

/// No complete response within this long is a `timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN_NS: u64 = 1_000_000;
const BACKOFF_MAX_NS: u64 = 100_000_000;
/// How often connections are scanned for timeouts.
const SCAN_EVERY_NS: u64 = 50_000_000;

/// Runs the load described by `cfg` and returns what was received.
pub fn run_load(cfg: &LoadConfig) -> io::Result<LoadReport> {
    validate(cfg)?;
    sys::ensure_fd_capacity(cfg.connections)?;
    let plan = Arc::new(Plan::new(cfg));
    let threads = cfg.threads.clamp(1, cfg.connections);
    let start = sys::monotonic_ns();
    let end = start + cfg.duration.as_nanos() as u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Spread the connections as evenly as the division allows.
            let n = cfg.connections / threads + usize::from(t < cfg.connections % threads);
            let plan = Arc::clone(&plan);
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || LoadThread::new(&plan, n, end).and_then(|mut th| th.run()))
        })
        .collect::<io::Result<_>>()?;
    let mut report = LoadReport::default();
    let mut latency = LatencyRecorder::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(out)) => {
                report.requests += out.requests;
                report.connects += out.connects;
                report.bytes_read += out.bytes_read;
                report.errors.merge(&out.errors);
                latency.merge(&out.latency);
            }
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(io::Error::other("a load thread panicked"))),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    report.elapsed = Duration::from_nanos(sys::monotonic_ns() - start);
    report.latency = latency.summary();
    Ok(report)
}

fn validate(cfg: &LoadConfig) -> io::Result<()> {
    let bad = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            what.to_string(),
        ))
    };
    if cfg.connections == 0 {
        return bad("load needs at least one connection");
    }
    if let LoadMode::Pipelined { depth: 0 } = cfg.mode {
        return bad("pipeline depth must be at least 1");
    }
    if cfg.duration.is_zero() {
        return bad("load duration must be positive");
    }
    if cfg.pace.is_some_and(|p| p.is_zero()) {
        return bad("load pace must be positive");
    }
    Ok(())
}

/// What every connection of a run shares: the request bytes and the budget.
struct Plan {
    target: SocketAddr,
    /// `depth` copies of the request, back to back; a batch of n requests is
    /// its first `n * request_len` bytes.
    batch: Vec<u8>,
    request_len: usize,
    depth: usize,
    churn: bool,
    expect: Expect,
    read_buffer: usize,
    max_requests: Option<u64>,
    issued: AtomicU64,
    pace_ns: Option<u64>,
}

impl Plan {
    fn new(cfg: &LoadConfig) -> Plan {
        let churn = cfg.mode == LoadMode::Churn;
        let (one, expect) = request_bytes(&cfg.request, cfg.target, churn);
        let depth = match cfg.mode {
            LoadMode::Pipelined { depth } => depth,
            _ => 1,
        };
        let body_len = match cfg.request {
            RequestSpec::Bytes(n) | RequestSpec::Echo(n) => n,
            _ => 0,
        };
        Plan {
            target: cfg.target,
            batch: one.repeat(depth),
            request_len: one.len(),
            depth,
            churn,
            expect,
            read_buffer: if body_len > 16 * 1024 {
                64 * 1024
            } else {
                16 * 1024
            },
            max_requests: cfg.max_requests,
            issued: AtomicU64::new(0),
            pace_ns: cfg.pace.map(|p| p.as_nanos().min(u64::MAX as u128) as u64),
        }
    }

    /// Claims up to `depth` requests from the run's budget.
    fn claim(&self) -> usize {
        let Some(max) = self.max_requests else {
            return self.depth;
        };
        let before = self.issued.fetch_add(self.depth as u64, Ordering::Relaxed);
        max.saturating_sub(before).min(self.depth as u64) as usize
    }
}

/// The bytes of one request and what its response must be.
pub fn request_bytes(spec: &RequestSpec, target: SocketAddr, close: bool) -> (Vec<u8>, Expect) {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let ok = |body| Expect {
        status: Some(200),
        body,
    };
    match spec {
        RequestSpec::Hello => (
            format!("GET / HTTP/1.1\r\nHost: {target}\r\n{connection}\r\n").into_bytes(),
            ok(BodyCheck::Exact(b"Hello, World!")),
        ),
        RequestSpec::Bytes(n) => (
            format!("GET /bytes/{n} HTTP/1.1\r\nHost: {target}\r\n{connection}\r\n").into_bytes(),
            ok(BodyCheck::Length(*n)),
        ),
        RequestSpec::Echo(n) => {
            let mut req = format!(
                "POST /echo HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {n}\r\n{connection}\r\n"
            )
            .into_bytes();
            req.extend((0..*n).map(crate::check::echo_byte));
            (req, ok(BodyCheck::Echo(*n)))
        }
        RequestSpec::Get(path) => (
            format!("GET {path} HTTP/1.1\r\nHost: {target}\r\n{connection}\r\n").into_bytes(),
            ok(BodyCheck::Any),
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No socket; a reconnect is scheduled.
    Waiting,
    Connecting,
    /// Writing a batch and reading its responses.
    Active,
    /// The last response said the server will close; wait for its FIN.
    AwaitClose,
    /// The request budget is spent.
    Finished,
}

/// What a wakeup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Wakeup {
    Connect,
    /// A paced connection's next batch.
    Send,
}

struct Conn {
    stream: Option<TcpStream>,
    phase: Phase,
    parser: ResponseParser,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    write_off: usize,
    write_len: usize,
    /// Responses still owed for the current batch.
    inflight: usize,
    sent_at: u64,
    /// When the current phase must be over (connect, response, close).
    due: u64,
    /// Paced: when the next batch is sent (0: none is waiting). A wakeup
    /// for another time is stale.
    next_send: u64,
    writable_interest: bool,
    backoff_ns: u64,
}

struct ThreadOutcome {
    requests: u64,
    connects: u64,
    bytes_read: u64,
    errors: ErrorCounts,
    latency: LatencyRecorder,
}

struct LoadThread<'a> {
    plan: &'a Plan,
    epoll: Epoll,
    conns: Vec<Conn>,
    /// Reconnects and paced batches, by due time.
    wakeups: BinaryHeap<Reverse<(u64, usize, Wakeup)>>,
    end: u64,
    finished: usize,
    out: ThreadOutcome,
}

impl<'a> LoadThread<'a> {
    fn new(plan: &'a Plan, n: usize, end: u64) -> io::Result<LoadThread<'a>> {
        let conns = (0..n)
            .map(|_| Conn {
                stream: None,
                phase: Phase::Waiting,
                parser: ResponseParser::new(plan.expect),
                buf: vec![0u8; plan.read_buffer].into_boxed_slice(),
                start: 0,
                end: 0,
                write_off: 0,
                write_len: 0,
                inflight: 0,
                sent_at: 0,
                due: 0,
                next_send: 0,
                writable_interest: false,
                backoff_ns: 0,
            })
            .collect();
        let now = sys::monotonic_ns();
        Ok(LoadThread {
            plan,
            epoll: Epoll::new()?,
            conns,
            wakeups: (0..n).map(|i| Reverse((now, i, Wakeup::Connect))).collect(),
            end,
            finished: 0,
            out: ThreadOutcome {
                requests: 0,
                connects: 0,
                bytes_read: 0,
                errors: ErrorCounts::default(),
                latency: LatencyRecorder::new(),
            },
        })
    }

    fn run(&mut self) -> io::Result<ThreadOutcome> {
        let mut events = Events::with_capacity(256);
        let mut next_scan = sys::monotonic_ns() + SCAN_EVERY_NS;
        loop {
            let now = sys::monotonic_ns();
            if now >= self.end || self.finished == self.conns.len() {
                break;
            }
            self.start_due(now);
            if now >= next_scan {
                self.expire(now);
                next_scan = now + SCAN_EVERY_NS;
            }
            let mut wake = self.end.min(next_scan);
            if let Some(Reverse((due, _, _))) = self.wakeups.peek() {
                wake = wake.min(*due);
            }
            let timeout = Duration::from_nanos(wake.saturating_sub(sys::monotonic_ns()));
            self.epoll.wait(&mut events, Some(timeout))?;
            for e in 0..events.len() {
                let (token, ready) = events.get(e);
                self.on_ready(token as usize, ready);
            }
        }
        Ok(std::mem::replace(
            &mut self.out,
            ThreadOutcome {
                requests: 0,
                connects: 0,
                bytes_read: 0,
                errors: ErrorCounts::default(),
                latency: LatencyRecorder::new(),
            },
        ))
    }

    fn start_due(&mut self, now: u64) {
        while let Some(&Reverse((due, i, what))) = self.wakeups.peek() {
            if due > now {
                break;
            }
            self.wakeups.pop();
            let c = &self.conns[i];
            match what {
                Wakeup::Connect if c.phase == Phase::Waiting => self.connect(i),
                Wakeup::Send if c.phase == Phase::Active && c.next_send == due => {
                    self.send_batch(i)
                }
                _ => {}
            }
        }
    }

    fn expire(&mut self, now: u64) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.due == 0 || now < c.due {
                continue;
            }
            match c.phase {
                Phase::Connecting => self.fail(i, ErrorKind::Connect),
                Phase::Active | Phase::AwaitClose => self.fail(i, ErrorKind::Timeout),
                Phase::Waiting | Phase::Finished => {}
            }
        }
    }

    fn connect(&mut self, i: usize) {
        let opts = SocketOpts {
            recv_buffer: None,
            nodelay: true,
        };
        match sys::connect_nonblocking(self.plan.target, opts) {
            Ok((stream, state)) => {
                let interest = match state {
                    Connect::Done => Interest::Read,
                    Connect::InProgress => Interest::ReadWrite,
                };
                if let Err(_e) = self.epoll.add(stream.as_raw_fd(), i as u64, interest) {
                    self.out.errors.add(ErrorKind::Connect, 1);
                    self.schedule_reconnect(i, false);
                    return;
                }
                let c = &mut self.conns[i];
                c.stream = Some(stream);
                c.writable_interest = interest == Interest::ReadWrite;
                c.start = 0;
                c.end = 0;
                c.parser.reset();
                c.inflight = 0;
                match state {
                    Connect::Done => self.connected(i),
                    Connect::InProgress => {
                        c.phase = Phase::Connecting;
                        c.due = sys::monotonic_ns() + REQUEST_TIMEOUT.as_nanos() as u64;
                    }
                }
            }
            Err(_) => {
                self.out.errors.add(ErrorKind::Connect, 1);
                self.schedule_reconnect(i, false);
            }
        }
    }

    fn connected(&mut self, i: usize) {
        self.out.connects += 1;
        self.conns[i].phase = Phase::Active;
        self.send_batch(i);
    }

    fn send_batch(&mut self, i: usize) {
        let n = self.plan.claim();
        if n == 0 {
            self.drop_stream(i);
            self.conns[i].phase = Phase::Finished;
            self.finished += 1;
            return;
        }
        let now = sys::monotonic_ns();
        let c = &mut self.conns[i];
        c.next_send = 0;
        c.write_off = 0;
        c.write_len = n * self.plan.request_len;
        c.inflight = n;
        c.sent_at = now;
        c.due = now + REQUEST_TIMEOUT.as_nanos() as u64;
        self.flush(i);
    }

    /// Writes what it can of the batch; asks for writability if the socket
    /// buffer is full.
    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        while c.write_off < c.write_len {
            match stream.write(&self.plan.batch[c.write_off..c.write_len]) {
                Ok(0) => {
                    self.fail(i, ErrorKind::WriteFailed);
                    return;
                }
                Ok(n) => c.write_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fail(i, ErrorKind::WriteFailed);
                    return;
                }
            }
        }
        let want = c.write_off < c.write_len;
        if want != c.writable_interest {
            let interest = if want {
                Interest::ReadWrite
            } else {
                Interest::Read
            };
            if self
                .epoll
                .modify(stream.as_raw_fd(), i as u64, interest)
                .is_err()
            {
                self.fail(i, ErrorKind::WriteFailed);
                return;
            }
            c.writable_interest = want;
        }
    }

    fn on_ready(&mut self, i: usize, ready: sys::Ready) {
        let phase = self.conns[i].phase;
        if self.conns[i].stream.is_none() {
            // A stale event for a socket closed earlier in this batch.
            return;
        }
        match phase {
            Phase::Connecting => {
                if !(ready.writable() || ready.error() || ready.read_closed()) {
                    return;
                }
                let stream = self.conns[i].stream.as_ref().expect("checked above");
                match stream.take_error() {
                    Ok(None) if !ready.error() => {
                        let fd = stream.as_raw_fd();
                        if self.epoll.modify(fd, i as u64, Interest::Read).is_err() {
                            self.fail(i, ErrorKind::Connect);
                            return;
                        }
                        self.conns[i].writable_interest = false;
                        self.connected(i);
                    }
                    _ => self.fail(i, ErrorKind::Connect),
                }
            }
            Phase::Active | Phase::AwaitClose => {
                if ready.readable() || ready.read_closed() || ready.error() {
                    self.on_readable(i);
                }
                if self.conns[i].phase == Phase::Active && ready.writable() {
                    self.flush(i);
                }
            }
            Phase::Waiting | Phase::Finished => {}
        }
    }

    fn on_readable(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        if c.end == c.buf.len() {
            if c.start == 0 {
                self.fail(i, ErrorKind::BadFraming);
                return;
            }
            c.buf.copy_within(c.start..c.end, 0);
            c.end -= c.start;
            c.start = 0;
        }
        let n = match stream.read(&mut c.buf[c.end..]) {
            Ok(0) => {
                self.on_eof(i);
                return;
            }
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.fail(i, ErrorKind::Reset);
                return;
            }
            Err(_) => {
                self.fail(i, ErrorKind::Reset);
                return;
            }
        };
        c.end += n;
        self.out.bytes_read += n as u64;
        if c.phase == Phase::AwaitClose {
            // Bytes after the response that announced the close.
            self.fail(i, ErrorKind::BadFraming);
            return;
        }
        self.parse(i);
    }

    fn parse(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.inflight == 0 {
                if c.start < c.end {
                    // Bytes nobody asked for.
                    self.fail(i, ErrorKind::BadFraming);
                }
                return;
            }
            match c.parser.feed(&c.buf[c.start..c.end]) {
                Ok((n, Progress::Partial)) => {
                    c.start += n;
                    if c.start == c.end {
                        c.start = 0;
                        c.end = 0;
                    }
                    return;
                }
                Ok((n, Progress::Complete { keep_alive, .. })) => {
                    c.start += n;
                    c.inflight -= 1;
                    let now = sys::monotonic_ns();
                    self.out.latency.record_ns(now - c.sent_at);
                    self.out.requests += 1;
                    c.backoff_ns = 0;
                    if c.inflight == 0 && c.write_off < c.write_len {
                        // A full response to a request not yet fully sent.
                        self.fail(i, ErrorKind::BadFraming);
                        return;
                    }
                    if !keep_alive || (self.plan.churn && c.inflight == 0) {
                        if c.start < c.end {
                            self.fail(i, ErrorKind::BadFraming);
                            return;
                        }
                        c.inflight = 0;
                        c.phase = Phase::AwaitClose;
                        c.due = now + REQUEST_TIMEOUT.as_nanos() as u64;
                        return;
                    }
                    if c.inflight == 0 {
                        if c.start < c.end {
                            self.fail(i, ErrorKind::BadFraming);
                            return;
                        }
                        c.start = 0;
                        c.end = 0;
                        self.next_batch(i);
                        return;
                    }
                }
                Err(e) => {
                    self.fail(i, e.kind);
                    return;
                }
            }
        }
    }

    /// Sends the next batch now, or when the pace allows.
    fn next_batch(&mut self, i: usize) {
        let Some(pace) = self.plan.pace_ns else {
            return self.send_batch(i);
        };
        let c = &mut self.conns[i];
        let at = c.sent_at + pace;
        if at <= sys::monotonic_ns() {
            return self.send_batch(i);
        }
        // Nothing is owed while waiting: no timeout runs.
        c.due = 0;
        c.next_send = at;
        self.wakeups.push(Reverse((at, i, Wakeup::Send)));
    }

    fn on_eof(&mut self, i: usize) {
        let c = &self.conns[i];
        match c.phase {
            Phase::AwaitClose => {
                self.drop_stream(i);
                self.schedule_reconnect(i, true);
            }
            _ if c.inflight == 0 => {
                // Closed between batches: nothing was lost.
                self.drop_stream(i);
                self.schedule_reconnect(i, true);
            }
            _ => {
                let kind = if c.parser.in_response() || c.start < c.end {
                    ErrorKind::EofMidResponse
                } else {
                    ErrorKind::EofBeforeResponse
                };
                self.fail(i, kind);
            }
        }
    }

    /// Counts one failure, drops the connection and schedules a reconnect.
    fn fail(&mut self, i: usize, kind: ErrorKind) {
        // Past the end of the run nothing is counted: the run is over.
        if sys::monotonic_ns() < self.end {
            self.out.errors.add(kind, 1);
        }
        self.drop_stream(i);
        self.schedule_reconnect(i, false);
    }

    fn drop_stream(&mut self, i: usize) {
        let c = &mut self.conns[i];
        // Dropping the socket removes it from the epoll set.
        c.stream = None;
        c.phase = Phase::Waiting;
        c.inflight = 0;
        c.start = 0;
        c.end = 0;
        c.due = 0;
        c.next_send = 0;
        c.writable_interest = false;
        c.parser.reset();
    }

    /// After a clean close, reconnect at once (paced: when the pace allows);
    /// after a failure, back off (1 ms doubling to 100 ms) so a dead server
    /// is not hammered.
    fn schedule_reconnect(&mut self, i: usize, clean: bool) {
        let c = &mut self.conns[i];
        let now = sys::monotonic_ns();
        let delay = if clean {
            c.backoff_ns = 0;
            self.plan
                .pace_ns
                .map_or(0, |pace| (c.sent_at + pace).saturating_sub(now))
        } else {
            c.backoff_ns = (c.backoff_ns * 2).clamp(BACKOFF_MIN_NS, BACKOFF_MAX_NS);
            c.backoff_ns
        };
        c.phase = Phase::Waiting;
        self.wakeups
            .push(Reverse((now + delay, i, Wakeup::Connect)));
    }
}
