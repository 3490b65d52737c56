//! One worker: a thread, its ring, its listeners, its connections.
//!
//! ```text
//!   accept CQE ──► slot + ConnTimers::on_accept ──► Timeout SQE (ABS, CLOCK_MONOTONIC)
//!   recv CQE ───► Decoder::feed/poll ──► Handler ──► SendQueue ──► send SQE
//!                     │ transitions                     │
//!                     ▼                                 ▼
//!               ConnTimers::on_* ──► plan() ──► submit / update / nothing
//!   timer CQE ──► on_fire(fresh now) ──► close (SHUT_WR, close) | re-arm
//! ```
//!
//! Everything that reaches the worker arrives as a CQE and goes through
//! [`Worker::dispatch`], one `match` on the operation tag.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use io_uring::types::{Fd, TimeoutFlags, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use ringwall_h1::{
    encode_continue, encode_error, encode_response, parse_proxy_header, BodyKind, DecodeBuffers,
    Decoder, EncodeContext, Event, HttpDate, ProxyHeaderError, ProxyStatus, MAX_V2_HEADER_BYTES,
};
use ringwall_timers::{
    ConnTimers, DeadlineKind, FireOutcome, MinRates, MonoTime, Timeouts, TimerAction,
};
use slab::Slab;

use crate::buf_ring::ProvidedBufRing;
use crate::clock::{mono_now, unix_secs};
use crate::config::Config;
use crate::conn::{timespec_at, Conn, Phase, NO_IP_BUCKET};
use crate::conn_cap::ConnCap;
use crate::error::UringUnavailable;
use crate::handler::{Handler, Request, Response};
use crate::large_buffers::LargeBufferPool;
use crate::per_ip::PerIpCap;
use crate::socket::{self, Listener};
use crate::stats::{CloseReason, WorkerCounters};
use crate::user_data::{next_generation, OpTag, UserData, NO_SLOT};

/// Provided-buffer group id of every worker's receive ring (one per ring).
const RECV_BUFFER_GROUP: u16 = 0;
/// Stop reading a connection's requests while this much output is queued;
/// bounds memory against a client that pipelines without reading.
const OUTPUT_HIGH_WATER: usize = 1 << 20;
/// Requests one connection may have answered in one go before it yields
/// its worker: the rest of its pipeline waits for the next loop turn,
/// behind timers and every other connection. Without it one client's 400
/// pipelined expensive requests held a worker, and its deadlines, for
/// 14.8 s. 16 keeps a pipelined batch of 16 (the benchmark's) in one turn.
pub(crate) const TURN_BUDGET_REQUESTS: usize = 16;
/// Output bytes one connection may queue in one go before it yields; the
/// same fairness for handlers that write a lot per request.
pub(crate) const TURN_BUDGET_OUTPUT_BYTES: usize = 256 * 1024;
/// Input a yielded connection may buffer before its socket stops being read
/// until its turn comes: bounds what a client pipelining faster than it is
/// served can make the worker hold.
const INPUT_HIGH_WATER: usize = 64 * 1024;
/// `IORING_ENTER_GETEVENTS`: a non-waiting enter still needs it, or the
/// deferred task work (DEFER_TASKRUN) that posts completions never runs.
const ZERO_WAIT: Timespec = Timespec::new();
/// Idle buffers kept per worker for reuse, so steady traffic allocates nothing.
const POOLED_BUFFERS: usize = 256;
/// Buffers that grew past this (one huge request or response) are freed
/// instead of pooled, so a pool never pins large memory.
const POOLED_BUFFER_MAX_BYTES: usize = 64 * 1024;
/// Pause before re-arming accept after EMFILE and friends.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// What the spawning thread shares with a worker.
pub(crate) struct WorkerShared {
    pub counters: Arc<CachePadded<WorkerCounters>>,
    pub cap: Arc<ConnCap>,
    /// `None` when `max_connections_per_ip` is 0.
    pub per_ip: Option<Arc<PerIpCap>>,
    pub shutdown: Arc<AtomicBool>,
    /// Set before `shutdown` when a successor process accepts on the same
    /// sockets ([`crate::ServerHandle::hand_over`]).
    pub hand_over: Arc<AtomicBool>,
}

/// The ring plus the backlog that guarantees no SQE is ever dropped.
struct SqeSink {
    ring: IoUring,
    /// SQEs that did not fit even after submitting: pushed, in order, before
    /// anything new. A timer SQE is never lost: a dropped one is a
    /// deadline that never fires.
    backlog: VecDeque<squeue::Entry>,
}

impl SqeSink {
    /// Queues `entry`.
    ///
    /// # Safety
    /// Memory the entry points to must stay valid until the kernel is done
    /// with it (see each call site).
    unsafe fn push(&mut self, entry: squeue::Entry, counters: &WorkerCounters) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: forwarded from the caller's contract.
        if unsafe { self.ring.submission().push(&entry) }.is_ok() {
            return;
        }
        // Full: hand what is queued to the kernel to make room and retry.
        counters.sq_full_retries.incr();
        counters.ring_enters.incr();
        let _ = self.ring.submit();
        // SAFETY: as above.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(entry);
        }
    }

    /// Moves backlogged SQEs into the ring, in order, as space allows.
    fn flush_backlog(&mut self, counters: &WorkerCounters) {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: every backlogged entry was pushed under `push`'s
            // contract, whose memory outlives its submission.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.backlog.pop_front();
                continue;
            }
            counters.sq_full_retries.incr();
            counters.ring_enters.incr();
            if self.ring.submit().is_err() {
                // EBUSY: completions must be reaped first; the main loop does.
                return;
            }
            if self.ring.submission().is_full() {
                return;
            }
        }
    }
}

/// Buffers of idle and closed connections, kept for the next connection so
/// steady traffic allocates nothing. Bounded in count and in the size of
/// what is kept.
#[derive(Default)]
struct BufferPools {
    decode: Vec<DecodeBuffers>,
    send: Vec<(Vec<u8>, Vec<u8>)>,
    /// Send buffers of large responses, for the next large response.
    large: LargeBufferPool,
}

impl BufferPools {
    /// Takes what `conn` can give back: decoder buffers when it is between
    /// requests, send buffers when its queue is empty.
    fn take_from(&mut self, conn: &mut Conn) {
        // A request waiting for its answer lives in the decoder's buffers.
        if conn.has_decode_buffers && !conn.answer_pending {
            if let Some(bufs) = conn.decoder.reclaim() {
                conn.has_decode_buffers = false;
                if self.decode.len() < POOLED_BUFFERS
                    && bufs.retained_bytes() <= POOLED_BUFFER_MAX_BYTES
                {
                    self.decode.push(bufs);
                }
            }
        }
        if let Some((sending, pending)) = conn.send.take_buffers() {
            if self.send.len() < POOLED_BUFFERS
                && sending.capacity() + pending.capacity() <= POOLED_BUFFER_MAX_BYTES
            {
                self.send.push((sending, pending));
            } else {
                self.large.give(sending);
                self.large.give(pending);
            }
        }
    }
}

pub(crate) struct Worker<H: Handler> {
    // Field order is drop order: the ring goes first, so the kernel can no
    // longer touch the buffer ring, the slots or `wake_buf` when they go.
    sink: SqeSink,
    recv_buffers: ProvidedBufRing,
    conns: Slab<Conn>,
    /// Generation of each slab slot, bumped each time the slot is taken.
    generations: Vec<u32>,
    wake_fd: RawFd,
    wake_buf: Box<u64>,
    backoff_spec: Box<Timespec>,
    pool_tick_spec: Box<Timespec>,
    pool_timer_armed: bool,
    /// SO_LINGER through `IORING_OP_URING_CMD` (Linux 6.7+) until the
    /// kernel refuses it once.
    linger_through_ring: bool,
    shutdown_spec: Box<Timespec>,
    listeners: Vec<Listener>,
    handler: Arc<H>,
    config: Config,
    timeouts: Timeouts,
    shared: WorkerShared,
    date: HttpDate,
    date_secs: u64,
    /// CLOCK_MONOTONIC read after each wait; deadlines armed from it. Timer
    /// fires never use it: they read the clock afresh.
    now: MonoTime,
    shutting_down: bool,
    /// The shutdown hands the listening sockets to a successor process that
    /// accepts on them too: they stay listening (their queues are its now),
    /// a connection accepted late is served rather than dropped, and an
    /// idle keep-alive connection is closed only after answering one more
    /// request with `Connection: close` (HAProxy's `idle-close-on-response`):
    /// closing it at once races the client's next request, which would be
    /// lost.
    handing_over: bool,
    /// Multishot accepts the kernel holds (armed, no final CQE yet). The
    /// worker exits only once they are gone: a ring is torn down
    /// asynchronously after its fd is closed, and an accept still armed on
    /// an inherited socket, which stays listening, could take a connection
    /// meant for the next owner and reset it.
    accepts_armed: usize,
    /// The shutdown grace has passed: exit even if an accept's final CQE
    /// never came.
    shutdown_grace_over: bool,
    /// Multishot recv (Linux 6.0+), or single-shot recv re-armed per CQE.
    recv_multishot: bool,
    pools: BufferPools,
    cqes: Vec<(u64, i32, u32)>,
    min_rates: MinRates,
    /// Connections that yielded their turn, as (slot, generation): served
    /// after the next batch of completions, in order.
    ready: VecDeque<(usize, u32)>,
    /// The previous turn's queue, being served; swapped with `ready` so
    /// neither allocates in steady state.
    serving: VecDeque<(usize, u32)>,
    /// Connections waiting for the output budget, in arrival order.
    budget_waiters: VecDeque<(usize, u32)>,
    /// Output queued by all connections, against `output_budget`.
    output_queued: usize,
    output_budget: usize,
    /// Request-body bytes reserved by all connections, against `body_budget`.
    body_reserved: usize,
    body_budget: usize,
    /// Where a refusal's 503 is encoded.
    refusal: Vec<u8>,
    /// The bytes of PROXY headers that arrived in pieces, by slot, until
    /// the header is whole (at most `MAX_V2_HEADER_BYTES` each). Kept out
    /// of the slot: most headers arrive whole in one recv and are parsed
    /// in place, and a slot must stay small.
    proxy_headers: HashMap<usize, Vec<u8>>,
    /// The client address each connection's PROXY header carried, by slot,
    /// for connections with `has_proxied_peer`.
    proxied_peers: HashMap<usize, SocketAddr>,
}

/// Builds the ring with the best flags the kernel takes, saying so when it
/// has to fall back.
fn build_ring(entries: u32, worker: usize) -> Result<IoUring, UringUnavailable> {
    type Setup = fn(&mut io_uring::Builder);
    let attempts: [(&str, Setup); 4] = [
        ("SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL", |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_submit_all();
        }),
        ("SINGLE_ISSUER|COOP_TASKRUN|SUBMIT_ALL", |b| {
            b.setup_single_issuer()
                .setup_coop_taskrun()
                .setup_submit_all();
        }),
        ("COOP_TASKRUN", |b| {
            b.setup_coop_taskrun();
        }),
        ("no setup flags", |_| {}),
    ];
    let mut last_err = None;
    for (i, (name, setup)) in attempts.iter().enumerate() {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries.saturating_mul(4).max(4096));
        setup(&mut builder);
        match builder.build(entries) {
            Ok(ring) => {
                if i > 0 {
                    eprintln!(
                        "ringwall: worker {worker}: the kernel refused {}; running with {name}",
                        attempts[0].0
                    );
                }
                return Ok(ring);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(UringUnavailable::diagnose(e)),
        }
    }
    Err(UringUnavailable::diagnose(last_err.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EINVAL)
    })))
}

impl<H: Handler> Worker<H> {
    /// Sets the worker up on the thread that will run it: under
    /// SINGLE_ISSUER only the creating thread may submit.
    pub fn new(
        index: usize,
        config: Config,
        listeners: Vec<Listener>,
        handler: Arc<H>,
        shared: WorkerShared,
    ) -> Result<Self, crate::StartError> {
        let ring = build_ring(config.ring_entries, index).map_err(crate::StartError::IoUring)?;
        let recv_buffers = ProvidedBufRing::new(
            &ring.submitter(),
            config.recv_buffers,
            config.recv_buffer_size,
            RECV_BUFFER_GROUP,
        )
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) || e.kind() == io::ErrorKind::InvalidInput {
                crate::StartError::IoUring(UringUnavailable::MissingFeature {
                    feature: "provided buffer rings (IORING_REGISTER_PBUF_RING)",
                    needs: "Linux 5.19 or later",
                })
            } else {
                crate::StartError::Worker(e)
            }
        })?;
        let wake_fd = socket::eventfd().map_err(crate::StartError::Worker)?;
        let timeouts = Timeouts {
            header: config.header_timeout,
            body: config.body_timeout,
            idle: config.idle_timeout,
            write: config.write_timeout,
        };
        let secs = unix_secs();
        let recv_multishot = config.recv_multishot;
        let min_rates = MinRates {
            body: config.min_request_body_rate,
            send: config.min_response_rate,
        };
        let output_budget = config.max_queued_output_bytes / config.workers;
        let body_budget = config.max_buffered_body_bytes / config.workers;
        Ok(Worker {
            sink: SqeSink {
                ring,
                backlog: VecDeque::new(),
            },
            recv_buffers,
            // Full capacity up front: slots never move, so the timespecs in
            // them stay where queued SQEs point.
            conns: Slab::with_capacity(config.max_connections),
            generations: Vec::new(),
            wake_fd,
            wake_buf: Box::new(0),
            backoff_spec: Box::new(Timespec::from(ACCEPT_BACKOFF)),
            pool_tick_spec: Box::new(Timespec::new().sec(1)),
            pool_timer_armed: false,
            linger_through_ring: true,
            shutdown_spec: Box::new(Timespec::from(config.shutdown_timeout)),
            listeners,
            handler,
            timeouts,
            config,
            shared,
            date: HttpDate::from_unix_secs(secs),
            date_secs: secs,
            now: mono_now(),
            shutting_down: false,
            handing_over: false,
            accepts_armed: 0,
            shutdown_grace_over: false,
            recv_multishot,
            pools: BufferPools::default(),
            cqes: Vec::with_capacity(1024),
            min_rates,
            ready: VecDeque::new(),
            serving: VecDeque::new(),
            budget_waiters: VecDeque::new(),
            output_queued: 0,
            output_budget,
            body_reserved: 0,
            body_budget,
            refusal: Vec::new(),
            proxy_headers: HashMap::new(),
            proxied_peers: HashMap::new(),
        })
    }

    pub fn wake_fd(&self) -> RawFd {
        self.wake_fd
    }

    fn counters(&self) -> &WorkerCounters {
        &self.shared.counters
    }

    /// # Safety
    /// As [`SqeSink::push`].
    unsafe fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: forwarded.
        unsafe { self.sink.push(entry, &self.shared.counters) }
    }

    /// Runs until shutdown has closed every connection.
    pub fn run(mut self) {
        for index in 0..self.listeners.len() {
            self.arm_accept(index);
        }
        self.arm_wake();
        // A shutdown requested before the wake read was armed.
        if self.shared.shutdown.load(Ordering::Acquire) {
            self.begin_shutdown();
        }
        loop {
            if self.shutting_down
                && self.conns.is_empty()
                && (self.accepts_armed == 0 || self.shutdown_grace_over)
            {
                break;
            }
            self.sink.flush_backlog(&self.shared.counters);
            self.shared.counters.ring_enters.incr();
            // With connections waiting for their turn, only look: their
            // work must not wait for the next completion.
            let entered = if self.ready.is_empty() {
                self.sink.ring.submit_and_wait(1)
            } else {
                let args = io_uring::types::SubmitArgs::new().timespec(&ZERO_WAIT);
                self.sink.ring.submitter().submit_with_args(1, &args)
            };
            match entered {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                // EBUSY: completions must be reaped first. EAGAIN/ENOMEM: the
                // kernel is short of memory for requests; retry after reaping.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::ENOMEM)
                    ) => {}
                Err(e) => {
                    eprintln!("ringwall: io_uring_enter failed: {e}; worker stops");
                    break;
                }
            }
            self.now = mono_now();
            let secs = unix_secs();
            if secs != self.date_secs {
                self.date_secs = secs;
                self.date = HttpDate::from_unix_secs(secs);
            }
            self.cqes.clear();
            for cqe in self.sink.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            for i in 0..self.cqes.len() {
                let (user_data, result, flags) = self.cqes[i];
                self.dispatch(user_data, result, flags);
            }
            // After the completions (timers first among equals), never
            // before: one connection's backlog cannot delay them. What they
            // produced (responses, FINs) leaves before that backlog runs.
            if !self.ready.is_empty() {
                self.shared.counters.ring_enters.incr();
                let _ = self.sink.ring.submit();
            }
            self.serve_ready();
            if !self.pool_timer_armed && !self.pools.large.is_empty() {
                self.arm_pool_timer();
            }
        }
        for listener in self.listeners.drain(..) {
            // An inherited or handed-over socket is shared: close our dup,
            // never shut it down.
            if !listener.inherited && !self.handing_over {
                socket::stop_listening(listener.fd);
            }
            socket::close(listener.fd);
        }
        // Normally empty; after a fatal ring error, release what is left so
        // the fds, the cap and the counters do not leak.
        for conn in self.conns.drain() {
            socket::shutdown_write(conn.fd);
            socket::close(conn.fd);
            self.shared.cap.release();
            if let (Some(per_ip), true) = (&self.shared.per_ip, conn.ip_bucket != NO_IP_BUCKET) {
                per_ip.release(conn.ip_bucket);
            }
            self.shared.counters.open_connections.sub(1);
        }
    }

    /// The one place every completion is handled.
    fn dispatch(&mut self, user_data: u64, result: i32, flags: u32) {
        let Some(ud) = UserData::decode(user_data) else {
            self.counters().stale_completions.incr();
            return;
        };
        let more = cqueue::more(flags);
        match ud.tag {
            OpTag::Accept => self.on_accept(ud.slot as usize, result, more),
            OpTag::Wake => self.begin_shutdown(),
            OpTag::ShutdownTimer => {
                self.shutdown_grace_over = true;
                self.close_all(CloseReason::Shutdown);
            }
            OpTag::AcceptBackoff => {
                if !self.shutting_down {
                    self.arm_accept(ud.slot as usize)
                }
            }
            OpTag::PoolTimer => {
                self.pool_timer_armed = false;
                self.pools.large.tick();
            }
            OpTag::Cancel if ud.slot == NO_SLOT => {}
            OpTag::Recv
            | OpTag::Send
            | OpTag::Timer
            | OpTag::TimerUpdate
            | OpTag::Cancel
            | OpTag::Shutdown
            | OpTag::TimerRemove
            | OpTag::Linger => {
                let key = ud.slot as usize;
                match self.conns.get(key) {
                    Some(conn) if conn.generation == ud.generation => {}
                    _ => {
                        // Names a slot's previous occupant: drop it.
                        self.counters().stale_completions.incr();
                        return;
                    }
                }
                match ud.tag {
                    OpTag::Recv => self.on_recv(key, result, flags, more),
                    OpTag::Send => self.on_send(key, result),
                    OpTag::Timer => self.on_timer(key, result),
                    // Their results need no action: an update that failed
                    // (-ENOENT) raced the fire, whose CQE re-plans; a cancel,
                    // shutdown or timer removal on a closing connection only
                    // has to be counted out.
                    OpTag::TimerUpdate | OpTag::Cancel | OpTag::Shutdown | OpTag::TimerRemove => {
                        self.conns[key].inflight -= 1
                    }
                    OpTag::Linger => {
                        let conn = &mut self.conns[key];
                        conn.inflight -= 1;
                        if result < 0 {
                            // Kernels before 6.7 have no socket setsockopt
                            // command: the syscall, now and from now on.
                            socket::set_linger_zero(conn.fd);
                            self.linger_through_ring = false;
                        }
                    }
                    _ => unreachable!("connection tags are matched above"),
                }
                self.maybe_free(key);
            }
        }
    }

    /// A relative one-second timeout: the pool is checked even on a worker
    /// that no completion wakes.
    fn arm_pool_timer(&mut self) {
        self.pool_timer_armed = true;
        let entry = opcode::Timeout::new(&*self.pool_tick_spec as *const Timespec)
            .build()
            .user_data(UserData::worker(OpTag::PoolTimer).encode());
        // SAFETY: pool_tick_spec is boxed in the worker and outlives the ring.
        unsafe { self.push(entry) };
    }

    // ---- accept ----

    fn arm_accept(&mut self, index: usize) {
        let entry = opcode::AcceptMulti::new(Fd(self.listeners[index].fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(UserData::new(index as u32, 0, OpTag::Accept).encode());
        self.accepts_armed += 1;
        // SAFETY: multishot accept without an address buffer points at no memory.
        unsafe { self.push(entry) };
    }

    fn on_accept(&mut self, listener: usize, result: i32, more: bool) {
        if !more {
            self.accepts_armed -= 1;
        }
        if result < 0 {
            if result != -libc::ECANCELED {
                self.counters().accept_errors.incr();
            }
            if !more && !self.shutting_down {
                // EMFILE and friends would fail again at once: back off.
                let entry = opcode::Timeout::new(&*self.backoff_spec as *const Timespec)
                    .build()
                    .user_data(UserData::new(listener as u32, 0, OpTag::AcceptBackoff).encode());
                // SAFETY: backoff_spec is boxed in the worker and outlives the ring.
                unsafe { self.push(entry) };
            }
            return;
        }
        if !more && !self.shutting_down {
            self.arm_accept(listener);
        }
        let fd = result as RawFd;
        self.counters().accepted.incr();
        if self.shutting_down && !self.handing_over {
            self.counters().count_close(CloseReason::Shutdown, false);
            socket::close(fd);
            return;
        }
        // Claim before taking a slot: one CAS, never check-then-add: an accept
        // storm overruns a cap that is checked and then incremented.
        if !self.shared.cap.try_claim() {
            self.refuse(fd, CloseReason::ConnectionCap);
            return;
        }
        let mut ip_bucket = NO_IP_BUCKET;
        if let Some(per_ip) = &self.shared.per_ip {
            // A peer already gone has no address: admitted uncounted, its
            // first recv ends it.
            if let Some(peer) = socket::peer_addr(fd) {
                match per_ip.try_claim(&peer) {
                    Some(bucket) => ip_bucket = bucket,
                    None => {
                        self.shared.cap.release();
                        self.refuse(fd, CloseReason::PerIpCap);
                        return;
                    }
                }
            }
        }
        let key = self.conns.vacant_key();
        if key == self.generations.len() {
            self.generations.push(0);
        }
        let generation = next_generation(self.generations[key]);
        self.generations[key] = generation;
        let mut timers = ConnTimers::with_min_rates(self.timeouts, self.min_rates);
        // The first head must arrive within header_timeout of accept.
        timers.on_accept(self.now);
        let mut conn = Conn::new(fd, generation, Decoder::new(self.config.limits), timers);
        conn.ip_bucket = ip_bucket;
        conn.awaiting_proxy_header = self.config.proxy_protocol;
        debug_assert!(self.conns.len() < self.conns.capacity());
        self.conns.insert(conn);
        self.counters().open_connections.incr();
        self.arm_recv(key);
        self.sync_timer(key);
    }

    /// Answers a refused connection with a best-effort 503 (one
    /// non-blocking send: whatever does not fit now is dropped) and closes
    /// it, counted under `reason`. nginx answers over-limit connections
    /// 503 too; a client seeing a bare close would retry at once.
    fn refuse(&mut self, fd: RawFd, reason: CloseReason) {
        self.counters().count_close(reason, false);
        self.refusal.clear();
        let ctx = EncodeContext {
            date: &self.date,
            version: ringwall_h1::Version::Http11,
            keep_alive: false,
            head_request: false,
        };
        let body: &[u8] = match reason {
            CloseReason::PerIpCap => {
                b"Service Unavailable: too many connections from this address\n"
            }
            _ => b"Service Unavailable: connection limit reached\n",
        };
        if encode_response(
            &mut self.refusal,
            503,
            &[("Content-Type", b"text/plain"), ("Retry-After", b"1")],
            body,
            &ctx,
        )
        .is_ok()
        {
            // Counted first: a client that reads the 503 sees the counter.
            self.counters().cap_responses.incr();
            socket::send_nonblocking(fd, &self.refusal);
        }
        socket::close(fd);
    }

    // ---- receive ----

    fn arm_recv(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.recv_armed || conn.phase == Phase::Closed {
            return;
        }
        conn.recv_armed = true;
        conn.inflight += 1;
        let entry = if self.recv_multishot {
            opcode::RecvMulti::new(Fd(conn.fd), self.recv_buffers.group).build()
        } else {
            // Single-shot recv that still picks a provided buffer, so an idle
            // connection holds no buffer on this path either.
            opcode::Recv::new(
                Fd(conn.fd),
                std::ptr::null_mut(),
                self.config.recv_buffer_size,
            )
            .buf_group(self.recv_buffers.group)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
        }
        .user_data(UserData::new(key as u32, conn.generation, OpTag::Recv).encode());
        // SAFETY: the kernel writes into provided buffers, which live in
        // `recv_buffers` until after the ring is gone.
        unsafe { self.push(entry) };
    }

    fn on_recv(&mut self, key: usize, result: i32, flags: u32, more: bool) {
        if !more {
            let conn = &mut self.conns[key];
            conn.recv_armed = false;
            conn.inflight -= 1;
        }
        if result > 0 {
            let len = result as usize;
            let Some(bid) = cqueue::buffer_select(flags) else {
                return;
            };
            self.counters().bytes_in.add(len as u64);
            let conn = &mut self.conns[key];
            let mut proxy_failed = false;
            if conn.phase == Phase::Open && !conn.close_after_flush {
                let mut input = self.recv_buffers.filled(bid, len);
                if conn.awaiting_proxy_header {
                    match take_proxy_header(conn, &mut self.proxy_headers, key, input) {
                        Ok((rest, source)) => {
                            input = rest;
                            if let Some(source) = source {
                                conn.has_proxied_peer = true;
                                self.proxied_peers.insert(key, source);
                            }
                        }
                        Err(_) => {
                            proxy_failed = true;
                            input = &[];
                        }
                    }
                }
                if !input.is_empty() {
                    if !conn.has_decode_buffers {
                        if let Some(bufs) = self.pools.decode.pop() {
                            conn.decoder.lend(bufs);
                        }
                        conn.has_decode_buffers = true;
                    }
                    conn.timers.on_request_bytes(self.now);
                    conn.decoder.feed(input);
                }
            }
            // Copied out (or discarded while lingering): the buffer goes back now.
            self.recv_buffers.recycle(bid);
            if proxy_failed {
                // No response: the peer is a load balancer that broke the
                // protocol, or a client that bypassed it.
                self.close_now(key, CloseReason::ProxyProtocolError);
                return;
            }
            let conn = &self.conns[key];
            if conn.yielded || conn.budget_wait {
                // Its turn comes later; bound what it may pile up meanwhile.
                if conn.decoder.buffered() > INPUT_HIGH_WATER && !conn.input_paused {
                    self.conns[key].input_paused = true;
                    self.stop_reading(key);
                }
            } else if conn.phase == Phase::Open {
                self.process_input(key);
            }
        } else if result == 0 {
            let conn = &mut self.conns[key];
            conn.peer_eof = true;
            match conn.phase {
                Phase::Open => self.finish_after_peer_eof(key),
                Phase::Lingering => self.close_now(key, CloseReason::PeerEof),
                Phase::Closed => {}
            }
            return;
        } else if result == -libc::EINVAL && self.recv_multishot {
            // Kernels before 6.0 reject multishot recv: fall back for good.
            eprintln!("ringwall: the kernel rejects multishot recv; using single-shot recv");
            self.recv_multishot = false;
        } else if result == -libc::ENOBUFS || result == -libc::ECANCELED {
            // ENOBUFS: every provided buffer was in use; re-armed below once
            // this batch has recycled some. ECANCELED: we paused or closed.
        } else {
            self.close_now(key, CloseReason::PeerReset);
            return;
        }
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if !more && conn.wants_input() {
            self.arm_recv(key);
        }
    }

    /// Drains the decoder's events: deadlines follow the transitions, complete
    /// requests go to the handler, errors are answered and close. Stops
    /// after [`TURN_BUDGET_REQUESTS`] requests or [`TURN_BUDGET_OUTPUT_BYTES`]
    /// of output, and yields the rest of the connection's pipeline to the
    /// next loop turn.
    fn process_input(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let output_at_start = conn.send.queued();
        let mut answered = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.phase != Phase::Open || conn.close_after_flush {
                break;
            }
            let queued = conn.send.queued();
            if queued > OUTPUT_HIGH_WATER {
                self.pause(key);
                break;
            }
            if (conn.answer_pending || conn.decoder.buffered() > 0)
                && (answered >= TURN_BUDGET_REQUESTS
                    || queued.saturating_sub(output_at_start) >= TURN_BUDGET_OUTPUT_BYTES)
            {
                self.yield_turn(key);
                break;
            }
            if conn.answer_pending {
                // The worker's output total as it will be once this
                // connection's new output is counted. Over budget, the
                // complete request waits: parsing went on to here, so its
                // deadlines ended normally, and only the handler waits.
                let worker_output =
                    (self.output_queued + queued).saturating_sub(conn.output_accounted);
                if worker_output > self.output_budget {
                    self.wait_for_output_budget(key);
                    break;
                }
                conn.answer_pending = false;
                answered += 1;
                let keep_alive = self.answer(key);
                self.release_body(key);
                if !keep_alive {
                    self.close_after_flush(key, CloseReason::Completed);
                }
                continue;
            }
            match conn.decoder.poll() {
                Ok(None) => break,
                Ok(Some(Event::HeadStarted)) => conn.timers.on_head_started(self.now),
                Ok(Some(Event::HeadComplete)) => {
                    let head = conn.decoder.head().expect("head is set at HeadComplete");
                    let body_pending = match head.body_kind() {
                        BodyKind::None => false,
                        BodyKind::Length(n) => n > 0,
                        BodyKind::Chunked => true,
                    };
                    // RFC 9110 10.1.1: send 100 before reading the body.
                    if body_pending && head.expect_continue() {
                        encode_continue(&mut conn.send.pending);
                    }
                    conn.timers.on_head_complete(self.now, body_pending);
                }
                Ok(Some(Event::BodyData(n))) => {
                    conn.timers.on_body_progress(self.now, n as u64);
                    // Bytes as they arrive, not the announced length: an
                    // attacker announcing megabytes and sending one byte must
                    // not lock everyone else's uploads out.
                    if !self.reserve_body(key, n) {
                        continue;
                    }
                }
                Ok(Some(Event::RequestComplete)) => {
                    conn.timers.on_body_complete();
                    // Answered at the top of the loop, once the output
                    // budget allows.
                    conn.answer_pending = true;
                }
                Err(err) => {
                    encode_error(&mut conn.send.pending, &err, &self.date);
                    self.close_after_flush(key, CloseReason::ProtocolError(err.status()));
                }
            }
        }
        if self.conns.get(key).is_some_and(|c| c.peer_eof) {
            self.finish_after_peer_eof(key);
        }
        self.account_output(key);
        self.flush_send(key);
        self.sync_timer(key);
    }

    /// Reserves `bytes` of the worker's request-body budget for `key` as
    /// they arrive, or answers 503 and closes when they do not fit: the
    /// worker never holds more body bytes than its budget (plus one recv).
    fn reserve_body(&mut self, key: usize, bytes: usize) -> bool {
        if self.body_reserved + bytes <= self.body_budget {
            self.body_reserved += bytes;
            self.conns[key].body_reserved += bytes;
            return true;
        }
        let conn = &mut self.conns[key];
        // Nothing more of this request is read: its head and body deadlines
        // end here; the close that follows has its own.
        conn.timers.on_head_complete(self.now, false);
        conn.timers.on_body_complete();
        let head = conn.decoder.head();
        let ctx = EncodeContext {
            date: &self.date,
            version: head.map_or(ringwall_h1::Version::Http11, |h| h.version()),
            keep_alive: false,
            head_request: head.is_some_and(|h| h.is_head()),
        };
        let _ = encode_response(
            &mut conn.send.pending,
            503,
            &[("Content-Type", b"text/plain"), ("Retry-After", b"1")],
            b"Service Unavailable: request body budget exhausted\n",
            &ctx,
        );
        self.close_after_flush(key, CloseReason::BodyBudget);
        false
    }

    fn release_body(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            self.body_reserved -= conn.body_reserved;
            conn.body_reserved = 0;
        }
    }

    /// Brings the worker's output total up to date with `key`'s queue, and
    /// lets waiting connections go once it is back under budget.
    fn account_output(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let queued = if conn.phase == Phase::Closed {
            0
        } else {
            conn.send.queued()
        };
        self.output_queued = self.output_queued + queued - conn.output_accounted;
        conn.output_accounted = queued;
        self.wake_budget_waiters();
    }

    /// Lets connections waiting for the output budget go, oldest first,
    /// while the worker is under it. Called wherever output shrinks: a
    /// send, or a close that drops a queue.
    fn wake_budget_waiters(&mut self) {
        while self.output_queued <= self.output_budget {
            let Some((waiter, generation)) = self.budget_waiters.pop_front() else {
                break;
            };
            if let Some(conn) = self.conns.get_mut(waiter) {
                if conn.generation == generation && conn.budget_wait {
                    conn.budget_wait = false;
                    self.requeue(waiter);
                }
            }
        }
    }

    /// The connection used its turn: the rest of its pipeline runs on a
    /// later loop turn.
    fn yield_turn(&mut self, key: usize) {
        self.counters().turn_yields.incr();
        self.requeue(key);
    }

    fn requeue(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.yielded {
            return;
        }
        conn.yielded = true;
        // The server is behind, not the client: no body rate meanwhile.
        conn.timers.on_reading_paused();
        self.ready.push_back((key, conn.generation));
    }

    /// The worker's output is over budget: this connection dispatches
    /// nothing more, and stops reading, until sends drain it.
    fn wait_for_output_budget(&mut self, key: usize) {
        self.counters().output_budget_waits.incr();
        let conn = &mut self.conns[key];
        conn.budget_wait = true;
        conn.timers.on_reading_paused();
        self.budget_waiters.push_back((key, conn.generation));
        self.stop_reading(key);
    }

    /// Gives each connection that yielded last turn its next turn.
    fn serve_ready(&mut self) {
        std::mem::swap(&mut self.ready, &mut self.serving);
        while let Some((key, generation)) = self.serving.pop_front() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.generation != generation || !conn.yielded {
                continue;
            }
            conn.yielded = false;
            conn.input_paused = false;
            conn.timers.on_reading_resumed(self.now);
            if conn.phase == Phase::Open {
                self.process_input(key);
            }
            if self.conns.get(key).is_some_and(|c| c.wants_input()) {
                self.arm_recv(key);
            }
            self.sync_timer(key);
        }
    }

    /// The peer sent EOF (it may have half-closed after pipelining): answer
    /// every complete request already buffered, then close. While paused,
    /// the buffered requests wait for the drain, which calls back here
    /// through `process_input`.
    fn finish_after_peer_eof(&mut self, key: usize) {
        let conn = &self.conns[key];
        if conn.phase != Phase::Open
            || conn.paused
            || conn.yielded
            || conn.budget_wait
            || conn.answer_pending
            || conn.close_after_flush
        {
            return;
        }
        self.close_after_flush(key, CloseReason::PeerEof);
    }

    /// Runs the handler on the complete request; returns keep-alive.
    fn answer(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        if conn.send.is_empty() && conn.send.pending.capacity() == 0 {
            if let Some((sending, pending)) = self.pools.send.pop() {
                conn.send.give_buffers(sending, pending);
            }
        }
        let head = conn.decoder.head().expect("head is set at RequestComplete");
        let keep_alive = head.keep_alive() && !self.shutting_down;
        let version = head.version();
        let head_request = head.is_head();
        let request = Request {
            head,
            body: conn.decoder.body(),
            fd: conn.fd,
            proxied_peer: if conn.has_proxied_peer {
                self.proxied_peers.get(&key).copied()
            } else {
                None
            },
        };
        let mark = conn.send.pending.len();
        let mut response = Response {
            out: &mut conn.send.pending,
            large: &mut self.pools.large,
            ctx: EncodeContext {
                date: &self.date,
                version,
                keep_alive,
                head_request,
            },
            sent: false,
        };
        let handler = &self.handler;
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&request, &mut response)));
        let sent = response.sent && outcome.is_ok();
        if !sent {
            // A handler that panicked or wrote nothing: answer 500 and close,
            // discarding anything half-written.
            conn.send.pending.truncate(mark);
            let ctx = EncodeContext {
                date: &self.date,
                version,
                keep_alive: false,
                head_request,
            };
            let _ = encode_response(
                &mut conn.send.pending,
                500,
                &[("Content-Type", b"text/plain")],
                b"Internal Server Error\n",
                &ctx,
            );
        }
        self.counters().requests.incr();
        keep_alive && sent
    }

    fn pause(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.paused = true;
        // The server is behind, not the client: no body rate meanwhile.
        conn.timers.on_reading_paused();
        self.stop_reading(key);
    }

    /// Cancels the connection's recv, if one is armed.
    fn stop_reading(&mut self, key: usize) {
        let conn = &self.conns[key];
        if conn.recv_armed {
            let target = UserData::new(key as u32, conn.generation, OpTag::Recv).encode();
            self.cancel(key, target);
        }
    }

    // ---- send ----

    fn flush_send(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        let Some(bytes) = conn.send.start_send() else {
            return;
        };
        // A send takes a u32 length; a longer queue leaves in several sends.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(Fd(conn.fd), bytes.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(UserData::new(key as u32, conn.generation, OpTag::Send).encode());
        conn.inflight += 1;
        conn.timers.on_send_started(self.now);
        // SAFETY: the bytes are the send queue's in-flight buffer, which is not
        // touched until this send's CQE, and the slot is not freed before it.
        unsafe { self.push(entry) };
    }

    fn on_send(&mut self, key: usize, result: i32) {
        let conn = &mut self.conns[key];
        conn.inflight -= 1;
        if result < 0 {
            conn.send.abort_send();
            if conn.phase != Phase::Closed {
                self.close_now(key, CloseReason::PeerReset);
            }
            return;
        }
        let short = conn.send.complete_send(result as usize);
        if result > 0 {
            conn.sent_any = true;
            conn.timers.on_send_progress(self.now, result as u64, short);
        }
        self.counters().bytes_out.add(result as u64);
        self.account_output(key);
        let conn = &mut self.conns[key];
        if conn.phase == Phase::Closed {
            return;
        }
        if !conn.send.is_empty() {
            self.flush_send(key);
            self.sync_timer(key);
            return;
        }
        // Everything queued has left.
        if conn.close_after_flush {
            if conn.peer_eof {
                self.close_now(key, CloseReason::Completed);
            } else {
                self.start_linger(key);
            }
            return;
        }
        let idle = conn.decoder.is_idle() && !conn.answer_pending;
        conn.timers.on_send_drained(self.now, idle);
        if conn.paused {
            conn.paused = false;
            conn.timers.on_reading_resumed(self.now);
            if !conn.yielded && !conn.budget_wait {
                self.process_input(key);
            }
            // process_input may have paused again (one more large answer):
            // re-arming then would pull input nobody parses.
            if self.conns.get(key).is_some_and(|c| c.wants_input()) {
                self.arm_recv(key);
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Open
            && conn.send.is_empty()
            && conn.decoder.is_idle()
            && !conn.answer_pending
        {
            if self.shutting_down && !self.handing_over {
                self.close_now(key, CloseReason::Shutdown);
                return;
            }
            self.release_idle_buffers(key);
        }
        self.sync_timer(key);
    }

    /// An idle keep-alive connection gives its buffers to the worker's pool,
    /// so it holds no buffer memory while it waits.
    fn release_idle_buffers(&mut self, key: usize) {
        self.pools.take_from(&mut self.conns[key]);
    }

    // ---- deadlines ----

    /// Carries out the timer plan: one kernel timer per connection, always
    /// due at or before the earliest live deadline.
    fn sync_timer(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        match conn.timers.plan() {
            TimerAction::Nothing => {}
            TimerAction::Submit(at) => self.submit_timer(key, at),
            TimerAction::Update(at) => {
                conn.update_spec = timespec_at(at);
                conn.inflight += 1;
                let target = UserData::new(key as u32, conn.generation, OpTag::Timer).encode();
                let entry =
                    opcode::TimeoutUpdate::new(target, &conn.update_spec as *const Timespec)
                        .flags(TimeoutFlags::ABS)
                        .build()
                        .user_data(
                            UserData::new(key as u32, conn.generation, OpTag::TimerUpdate).encode(),
                        );
                self.shared.counters.timer_updates.incr();
                // SAFETY: update_spec lives in the slot, which never moves and
                // is not freed while this SQE is counted in `inflight`.
                unsafe { self.push(entry) };
            }
        }
    }

    fn submit_timer(&mut self, key: usize, at: MonoTime) {
        let conn = &mut self.conns[key];
        conn.timer_spec = timespec_at(at);
        conn.inflight += 1;
        // ABS on CLOCK_MONOTONIC (the default clock): the kernel fires at the
        // deadline itself, not "now + relative" measured later.
        let entry = opcode::Timeout::new(&conn.timer_spec as *const Timespec)
            .flags(TimeoutFlags::ABS)
            .build()
            .user_data(UserData::new(key as u32, conn.generation, OpTag::Timer).encode());
        self.shared.counters.timer_submits.incr();
        // SAFETY: timer_spec lives in the slot, which never moves and is not
        // freed while this SQE is counted in `inflight`.
        unsafe { self.push(entry) };
    }

    fn on_timer(&mut self, key: usize, result: i32) {
        let conn = &mut self.conns[key];
        conn.inflight -= 1;
        if conn.phase == Phase::Closed {
            return;
        }
        if result != -libc::ETIME {
            // Removed or failed: no timer is pending any more.
            conn.timers.on_timer_gone();
            self.sync_timer(key);
            return;
        }
        self.shared.counters.timer_fires.incr();
        // Never a cached `now`: the batch may be old, and a stale clock
        // makes a due deadline look early.
        let now = mono_now();
        match conn.timers.on_fire(now) {
            FireOutcome::Expired(kind) => {
                let reason = match kind {
                    DeadlineKind::Header => CloseReason::HeaderTimeout,
                    DeadlineKind::Body => CloseReason::BodyTimeout,
                    DeadlineKind::Idle => CloseReason::IdleTimeout,
                    DeadlineKind::Write => CloseReason::WriteTimeout,
                    DeadlineKind::BodyRate => CloseReason::MinBodyRate,
                    DeadlineKind::SendRate => CloseReason::MinResponseRate,
                };
                self.close_now(key, reason);
            }
            FireOutcome::Rearm(at) => {
                self.shared.counters.timer_early_fires.incr();
                self.submit_timer(key, at);
            }
            FireOutcome::Nothing => self.shared.counters.timer_early_fires.incr(),
        }
    }

    // ---- close ----

    /// Submits a cancel for the operation `target` names. The cancel is
    /// counted in the slot's `inflight` like any other SQE that names it.
    fn cancel(&mut self, key: usize, target: u64) {
        let conn = &mut self.conns[key];
        conn.inflight += 1;
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(UserData::new(key as u32, conn.generation, OpTag::Cancel).encode());
        // SAFETY: a cancel points at no memory.
        unsafe { self.push(entry) };
    }

    fn record_reason(&mut self, key: usize, reason: CloseReason, reset: bool) {
        let conn = &mut self.conns[key];
        if conn.close_reason.is_none() {
            conn.close_reason = Some(reason);
            self.shared.counters.count_close(reason, reset);
        }
    }

    /// Whether closing `key` now would leave response bytes behind: queued
    /// here, or in the kernel not yet acknowledged. Such a close is a reset
    /// (see `close_now`).
    fn has_unsent(&self, key: usize) -> bool {
        let conn = &self.conns[key];
        !conn.send.is_empty() || (conn.sent_any && socket::unacked_bytes(conn.fd) > 0)
    }

    /// Stop reading requests; close when the queued responses have left.
    fn close_after_flush(&mut self, key: usize, reason: CloseReason) {
        self.record_reason(key, reason, false);
        let conn = &mut self.conns[key];
        conn.close_after_flush = true;
        if conn.send.is_empty() {
            if conn.peer_eof {
                self.close_now(key, reason);
            } else {
                self.start_linger(key);
            }
        }
    }

    /// FIN now, then wait (bounded) for the peer's EOF before closing, so
    /// unread request bytes do not turn the close into a reset.
    fn start_linger(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        socket::shutdown_write(conn.fd);
        conn.phase = Phase::Lingering;
        // The linger is bounded by the write deadline, armed afresh: the
        // response has left, only the peer's EOF is awaited.
        conn.timers.clear_all();
        conn.timers.arm(DeadlineKind::Write, self.now);
        if !conn.recv_armed && !conn.peer_eof {
            conn.paused = false;
            self.arm_recv(key);
        }
        self.sync_timer(key);
    }

    /// Cancel the connection's operations, `shutdown(SHUT_WR)`, `close`. The
    /// slot is freed when the last CQE naming it has arrived.
    ///
    /// A close forced by a deadline or the shutdown timeout while response
    /// bytes are still unsent is a reset instead (SO_LINGER {1, 0}, then
    /// close): a FIN would queue behind those bytes and leave an orphan
    /// socket holding them in kernel memory for as long as the peer keeps
    /// acknowledging (measured: 100 slow readers pinned 161-171 MB for 80 s
    /// and more). A close with nothing left unsent stays a FIN.
    fn close_now(&mut self, key: usize, reason: CloseReason) {
        if self.conns[key].phase == Phase::Closed {
            self.record_reason(key, reason, false);
            return;
        }
        let forced = matches!(
            reason,
            CloseReason::HeaderTimeout
                | CloseReason::BodyTimeout
                | CloseReason::IdleTimeout
                | CloseReason::WriteTimeout
                | CloseReason::MinBodyRate
                | CloseReason::MinResponseRate
                | CloseReason::Shutdown
        );
        let reset = forced && self.has_unsent(key);
        self.record_reason(key, reason, reset);
        let conn = &mut self.conns[key];
        if reset {
            self.shared.counters.resets.incr();
            if self.linger_through_ring {
                // Through the ring, so the resets of a burst of expiries
                // leave in one io_uring_enter like FINs do; the fd is closed
                // only after this SQE's CQE (it counts in `inflight`).
                conn.inflight += 1;
                let entry = opcode::SetSockOpt::new(
                    Fd(conn.fd),
                    libc::SOL_SOCKET as u32,
                    libc::SO_LINGER as u32,
                    (&socket::LINGER_ZERO as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                )
                .build()
                .user_data(UserData::new(key as u32, conn.generation, OpTag::Linger).encode());
                // SAFETY: the option value is a static; the fd stays open
                // until the slot frees, which waits for this SQE's CQE.
                unsafe { self.push(entry) };
            } else {
                socket::set_linger_zero(conn.fd);
            }
        }
        let conn = &mut self.conns[key];
        let was_lingering = conn.phase == Phase::Lingering;
        conn.phase = Phase::Closed;
        let generation = conn.generation;
        let (recv_armed, timer_pending, send_in_flight) = (
            conn.recv_armed,
            conn.timers.pending_timer().is_some(),
            conn.send.in_flight(),
        );
        // FIN now (a lingering connection sent it already); the fd itself is
        // closed in `maybe_free`, once no queued or in-flight SQE names it:
        // closing earlier would let a new socket take the number and receive
        // this connection's queued send.
        let fd = conn.fd;
        let slot = key as u32;
        if !was_lingering && !reset {
            // Through the ring rather than a syscall here: the FINs of a batch
            // of expiries leave together in the next io_uring_enter, instead
            // of each waking its peer, which can preempt this worker before
            // the next FIN (measured: overshoot p99 at 5,000 slowloris
            // connections 4.3-5.2 ms against 5.1-8.1 ms).
            let conn = &mut self.conns[key];
            conn.inflight += 1;
            let entry = opcode::Shutdown::new(Fd(fd), libc::SHUT_WR)
                .build()
                .user_data(UserData::new(slot, generation, OpTag::Shutdown).encode());
            // SAFETY: a shutdown points at no memory; the fd stays open until
            // the slot frees, which waits for this SQE's CQE.
            unsafe { self.push(entry) };
        }
        if recv_armed {
            self.cancel(key, UserData::new(slot, generation, OpTag::Recv).encode());
        }
        if send_in_flight {
            self.cancel(key, UserData::new(slot, generation, OpTag::Send).encode());
        }
        if timer_pending {
            let conn = &mut self.conns[key];
            conn.inflight += 1;
            let entry =
                opcode::TimeoutRemove::new(UserData::new(slot, generation, OpTag::Timer).encode())
                    .build()
                    .user_data(UserData::new(slot, generation, OpTag::TimerRemove).encode());
            // SAFETY: a timeout removal points at no memory.
            unsafe { self.push(entry) };
        }
        self.maybe_free(key);
    }

    fn maybe_free(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.phase != Phase::Closed || conn.inflight > 0 {
            return;
        }
        let mut conn = self.conns.remove(key);
        if conn.awaiting_proxy_header {
            self.proxy_headers.remove(&key);
        }
        if conn.has_proxied_peer {
            self.proxied_peers.remove(&key);
        }
        socket::close(conn.fd);
        self.output_queued -= conn.output_accounted;
        self.body_reserved -= conn.body_reserved;
        if conn.output_accounted > 0 {
            self.wake_budget_waiters();
        }
        if let (Some(per_ip), true) = (&self.shared.per_ip, conn.ip_bucket != NO_IP_BUCKET) {
            per_ip.release(conn.ip_bucket);
        }
        self.shared.cap.release();
        self.counters().open_connections.sub(1);
        self.pools.take_from(&mut conn);
    }

    // ---- shutdown ----

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(
            Fd(self.wake_fd),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(UserData::worker(OpTag::Wake).encode());
        // SAFETY: wake_buf is boxed in the worker and outlives the ring.
        unsafe { self.push(entry) };
    }

    /// Stop accepting, close idle connections, let in-flight requests finish
    /// within `shutdown_timeout`.
    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.handing_over = self.shared.hand_over.load(Ordering::Acquire);
        for index in 0..self.listeners.len() {
            let target = UserData::new(index as u32, 0, OpTag::Accept).encode();
            let entry = opcode::AsyncCancel::new(target)
                .build()
                .user_data(UserData::worker(OpTag::Cancel).encode());
            // SAFETY: a cancel points at no memory.
            unsafe { self.push(entry) };
        }
        // New connects to sockets we bound are refused from now on. An
        // inherited socket keeps listening: systemd shares it, and its
        // backlog waits for the next instance; cancelling our accepts is
        // all it takes. The fds stay open until the worker exits, so no
        // queued accept SQE can name a reused number. A socket handed over
        // to a successor is shared the same way.
        for listener in &self.listeners {
            if !listener.inherited && !self.handing_over {
                socket::stop_listening(listener.fd);
            }
        }
        let entry = opcode::Timeout::new(&*self.shutdown_spec as *const Timespec)
            .build()
            .user_data(UserData::worker(OpTag::ShutdownTimer).encode());
        // SAFETY: shutdown_spec is boxed in the worker and outlives the ring.
        unsafe { self.push(entry) };
        if self.handing_over {
            return;
        }
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.phase == Phase::Open
                    && c.send.is_empty()
                    && c.decoder.is_idle()
                    && !c.answer_pending
            })
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close_now(key, CloseReason::Shutdown);
        }
    }

    fn close_all(&mut self, reason: CloseReason) {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_now(key, reason);
        }
    }
}

/// Reads a connection's PROXY header from `input`, the bytes of one recv:
/// returns the bytes after the header (empty while it is incomplete) and,
/// once it is whole, the client address it carried. A header that arrived in pieces is
/// gathered in `pending` under the slot's `key`; one that arrives whole is
/// parsed in place and copies nothing.
fn take_proxy_header<'a>(
    conn: &mut Conn,
    pending: &mut HashMap<usize, Vec<u8>>,
    key: usize,
    input: &'a [u8],
) -> Result<(&'a [u8], Option<SocketAddr>), ProxyHeaderError> {
    let (status, earlier) = match pending.get_mut(&key) {
        None => (parse_proxy_header(input), 0),
        Some(gathered) => {
            let earlier = gathered.len();
            // Up to the cap only: a prefix that long is always decided, so
            // nothing more than one header is ever held.
            let room = MAX_V2_HEADER_BYTES.saturating_sub(earlier);
            gathered.extend_from_slice(&input[..input.len().min(room)]);
            (parse_proxy_header(gathered), earlier)
        }
    };
    match status {
        Ok(ProxyStatus::Incomplete) => {
            if earlier == 0 {
                pending.insert(key, input.to_vec());
            }
            Ok((&[], None))
        }
        Ok(ProxyStatus::Done { consumed, source }) => {
            if earlier > 0 {
                pending.remove(&key);
            }
            conn.awaiting_proxy_header = false;
            // The earlier bytes were an incomplete header, so the header
            // ends inside this recv.
            Ok((&input[consumed - earlier..], source))
        }
        Err(e) => {
            pending.remove(&key);
            Err(e)
        }
    }
}
