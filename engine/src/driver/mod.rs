//! The connection driver: every connection's HTTP state, deadlines, send
//! queue and close sequence, with no I/O (ARCHITECTURE.md, "The connection
//! driver").
//!
//! ```text
//!   backend ──► admit / on_bytes / on_eof / on_sent / on_timer_fired ──► Driver
//!      ▲                                                                  │
//!      └──────── Action: Read | StopReading | Send | Timer | ──────────────┘
//!                ShutdownWrite | Close { FIN or reset }
//! ```
//!
//! A backend (the io_uring worker, the epoll worker) moves bytes, arms the
//! one kernel timer each connection asks for and reports what happened;
//! the driver decides everything else and says what to do next as
//! [`Action`]s, which the backend takes with [`Driver::next_action`] after
//! each call. The driver never calls into a backend, so dependencies point
//! one way: backend → driver → h1 and timers. It reads no clock: the
//! backend passes `now` in ([`Driver::set_clock`], and afresh to
//! [`Driver::on_timer_fired`]).

mod connection;
mod exchange;
mod pools;
mod proxy;
pub(crate) mod send_queue;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use ringwall_h1::{
    encode_continue, encode_error, encode_response, BodyKind, EncodeContext, Event, HeadCache,
    HttpDate,
};
use ringwall_timers::{
    ConnTimers, DeadlineKind, FireOutcome, MinRates, MonoTime, Timeouts, TimerAction,
};

use crate::config::Config;
use crate::conn_cap::ConnCap;
use crate::deferred::Mailbox;
use crate::fixed_slab::FixedSlab;
use crate::handler::{Handler, Request, Response};
use crate::log::CloseLogBudget;
use crate::per_ip::PerIpCap;
use crate::request_body::{BodyChannel, RequestBody};
use crate::stats::{CloseReason, WorkerCounters};
use connection::{Connection, Phase, NO_IP_BUCKET};
use exchange::Exchange;
use pools::BufferPools;

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
/// Input bytes one connection may have had parsed (heads and chunk
/// framing; body data is copied, not parsed) since it last yielded or sat
/// idle, before it yields its worker: the fairness budget covers decoding,
/// not only requests and output, and it spans every read of a batch of
/// completions (a connection whose socket is full gets a completion per
/// receive buffer). Two clients sending bodies of one-byte chunks (five
/// bytes of framing per byte of data) cut a worker's legit throughput to
/// 3 % without it. Below `u16::MAX`: the count lives in the slot.
pub(crate) const TURN_BUDGET_INPUT_BYTES: u16 = 32 * 1024;
/// Input a yielded connection may buffer before its socket stops being read
/// until its turn comes: bounds what a client pipelining faster than it is
/// served can make the worker hold.
const INPUT_HIGH_WATER: usize = 64 * 1024;

/// A fall in partial-head bytes held that counts as the end of a storm,
/// after which free heap memory is given back (`Driver::tick_pools`):
/// 10,000 connections that each held 15 KiB of head kept RSS at 137 MB,
/// against a 4.7 MB baseline, for as long as the server ran.
const HEAD_STORM_BYTES: usize = 8 << 20;

/// What the backend must do next for a connection, in the order given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Read the socket (arm a receive, or watch for readability) unless
    /// already reading.
    Read(usize),
    /// Stop reading the socket (cancel the receive, or stop watching).
    StopReading(usize),
    /// Bytes are queued: unless a send is in flight, take them with
    /// [`Driver::start_send`] and send them.
    Send(usize),
    /// Program the connection's one kernel timer: `Submit` when none is
    /// pending, `Update` to move the pending one.
    Timer(usize, TimerAction),
    /// `shutdown(SHUT_WR)` now, and keep reading: the lingering close
    /// waits for the peer's EOF.
    ShutdownWrite(usize),
    /// Close the connection: stop reading, drop what is in flight, then
    /// FIN or reset as `mode` says; a `lingering` connection has sent its
    /// FIN already. Call [`Driver::release`] once nothing names the slot.
    Close {
        key: usize,
        mode: CloseMode,
        lingering: bool,
    },
}

/// How a close ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseMode {
    /// `shutdown(SHUT_WR)` then `close`: nothing of ours is unsent.
    Fin,
    /// SO_LINGER {1, 0}, then `close`: a deadline closed a connection
    /// whose response is still queued, and a FIN would leave an orphan
    /// socket holding it in kernel memory (measured: 100 slow readers
    /// pinned 161-171 MB for 80 s and more).
    Reset,
    /// A deadline closed a connection that sent something: a reset if the
    /// kernel still holds unacknowledged bytes of ours (SIOCOUTQ), a FIN
    /// otherwise. The backend asks the kernel and reports with
    /// [`Driver::count_forced_close`].
    ResetIfUnacked,
}

/// What [`Driver::admit`] made of an accepted socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A slot: `key` names the connection, and `generation` tells this
    /// occupant of the slot from earlier ones.
    Admitted { key: usize, generation: u32 },
    /// Over a cap: send [`Driver::refusal`] once without blocking, then
    /// close.
    Refused,
    /// The server is shutting down: close without a word.
    Dropped,
}

/// What the driver shares with every worker of the server.
pub(crate) struct DriverShared {
    /// The worker's number, as in its thread's name, for events.
    pub worker: usize,
    pub counters: Arc<CachePadded<WorkerCounters>>,
    pub cap: Arc<ConnCap>,
    /// `None` when `max_connections_per_ip` is 0.
    pub per_ip: Option<Arc<PerIpCap>>,
    /// Where deferred answers arrive from other threads.
    pub mailbox: Arc<Mailbox>,
}

/// All connections of one worker, sans-IO.
pub(crate) struct Driver<H: Handler> {
    /// At most `max_connections`, checked at each admission: the backend
    /// sizes its own per-slot table by the same bound and indexes it by
    /// these keys, so a key is always below `max_connections`.
    conns: FixedSlab<Connection>,
    /// Generation of each slab slot, bumped each time the slot is taken.
    generations: Vec<u32>,
    actions: VecDeque<Action>,
    handler: Arc<H>,
    config: Config,
    /// The last response head written with prepared fields, for the next
    /// response that has the same one.
    head_cache: HeadCache,
    /// Every connection's timers start as a clone of these: the timeouts
    /// and rates are shared, not copied into each slot.
    new_conn_timers: ConnTimers,
    /// The decoder's limits: the configured ones, with the streamed-body
    /// cap when bodies are streamed.
    limits: ringwall_h1::Limits,
    shared: DriverShared,
    /// Rate limit of the close events (target `ringwall::closes`).
    close_log: CloseLogBudget,
    date: HttpDate,
    date_secs: u64,
    /// CLOCK_MONOTONIC as the backend last read it; deadlines are armed
    /// from it. Timer fires never use it: the backend passes a fresh one.
    now: MonoTime,
    shutting_down: bool,
    /// The shutdown hands the sockets to a successor (see `begin_shutdown`).
    handing_over: bool,
    pools: BufferPools,
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
    /// Bytes of partial heads held by all connections, against
    /// `head_budget`.
    head_held: usize,
    head_budget: usize,
    /// The most `head_held` has been since memory was last given back to
    /// the system (see `tick_pools`).
    head_held_peak: usize,
    /// Where a refusal's 503 is encoded.
    refusal: Vec<u8>,
    /// The bytes of PROXY headers that arrived in pieces, by slot, until
    /// the header is whole (at most `MAX_V2_HEADER_BYTES` each). Kept out
    /// of the slot: most headers arrive whole in one read and are parsed
    /// in place, and a slot must stay small.
    proxy_headers: HashMap<usize, Vec<u8>>,
    /// The client address each connection's PROXY header carried, by slot,
    /// for connections with `has_proxied_peer`.
    proxied_peers: HashMap<usize, SocketAddr>,
    /// The deferred answer in progress, by slot, for connections with
    /// `in_exchange`: kept out of the slot, which the inline fast path
    /// would otherwise pay for.
    exchanges: HashMap<usize, Exchange>,
    /// The handler takes request bodies as they arrive
    /// ([`Handler::streams_request_bodies`]).
    stream_bodies: bool,
    /// The channel of each body being streamed to a handler, by slot, for
    /// connections with `body_to_handler`.
    body_channels: HashMap<usize, Arc<BodyChannel>>,
    /// Response bytes a socket's kernel queue holds unacknowledged
    /// (SIOCOUTQ): what the send rate judges is what the peer took.
    /// Replaced in tests, whose descriptors are not sockets.
    unacked_bytes: fn(RawFd) -> usize,
}

impl<H: Handler> Driver<H> {
    pub fn new(
        config: Config,
        handler: Arc<H>,
        shared: DriverShared,
        now: MonoTime,
        unix_secs: u64,
    ) -> Self {
        let timeouts = Timeouts {
            header: config.header_timeout,
            body: config.body_timeout,
            idle: config.idle_timeout,
            write: config.write_timeout,
            handler: config.handler_timeout,
        };
        let min_rates = MinRates {
            body: config.min_request_body_rate,
            send: config.min_response_rate,
        };
        let stream_bodies = handler.streams_request_bodies();
        let mut limits = config.limits;
        if stream_bodies {
            // A streamed body is never held whole: its own cap applies.
            limits.max_body_bytes = config.max_streamed_body_bytes;
        }
        let output_budget = config.max_queued_output_bytes / config.workers;
        let body_budget = config.max_buffered_body_bytes / config.workers;
        let head_budget = config.max_buffered_head_bytes / config.workers;
        Driver {
            conns: FixedSlab::with_capacity(config.max_connections),
            generations: Vec::new(),
            actions: VecDeque::new(),
            handler,
            new_conn_timers: ConnTimers::with_min_rates(timeouts, min_rates),
            head_cache: HeadCache::default(),
            limits,
            config,
            shared,
            close_log: CloseLogBudget::new(now),
            date: HttpDate::from_unix_secs(unix_secs),
            date_secs: unix_secs,
            now,
            shutting_down: false,
            handing_over: false,
            pools: BufferPools::default(),
            ready: VecDeque::new(),
            serving: VecDeque::new(),
            budget_waiters: VecDeque::new(),
            output_queued: 0,
            output_budget,
            body_reserved: 0,
            body_budget,
            head_held: 0,
            head_budget,
            head_held_peak: 0,
            refusal: Vec::new(),
            proxy_headers: HashMap::new(),
            proxied_peers: HashMap::new(),
            exchanges: HashMap::new(),
            stream_bodies,
            body_channels: HashMap::new(),
            unacked_bytes: crate::socket::unacked_bytes,
        }
    }

    /// Replaces the SIOCOUTQ look, for tests on fake descriptors.
    #[cfg(test)]
    pub(crate) fn set_unacked_bytes(&mut self, look: fn(RawFd) -> usize) {
        self.unacked_bytes = look;
    }

    /// The worker's counters.
    pub fn counters(&self) -> &WorkerCounters {
        &self.shared.counters
    }

    /// The clocks as the backend read them after its wait: deadlines are
    /// armed from `now`, and the `Date` header follows `unix_secs`.
    pub fn set_clock(&mut self, now: MonoTime, unix_secs: u64) {
        self.now = now;
        if unix_secs != self.date_secs {
            self.date_secs = unix_secs;
            self.date = HttpDate::from_unix_secs(unix_secs);
        }
    }

    /// The next thing to do, oldest first. The backend takes them all after
    /// each call into the driver.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether `key` names a connection the backend has not released yet.
    pub fn contains(&self, key: usize) -> bool {
        self.conns.contains(key)
    }

    /// Whether `key` names a live slot of this `generation`.
    pub fn is_current(&self, key: usize, generation: u32) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| c.generation == generation)
    }

    /// Whether the close of `key` was decided (its `Close` action issued).
    pub fn is_closed(&self, key: usize) -> bool {
        self.conns.get(key).is_none_or(|c| c.phase == Phase::Closed)
    }

    /// Whether the socket of `key` should be read now.
    pub fn wants_input(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(Connection::wants_input)
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The worker stopped: responders still held elsewhere post into
    /// nothing from now on.
    pub fn close_mailbox(&self) {
        self.shared.mailbox.close();
    }

    /// Keys of every connection not yet released.
    pub fn keys(&self) -> Vec<usize> {
        self.conns.iter().map(|(key, _)| key).collect()
    }

    /// Connections wait in the ready queue: the backend must not block in
    /// its next wait, and must call [`Driver::serve_ready`] after it.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether a connection's admission needs its peer's address (the
    /// per-address cap is on).
    pub fn needs_peer_on_accept(&self) -> bool {
        self.shared.per_ip.is_some()
    }

    /// The 503 a refused connection gets (see [`Admission::Refused`]).
    pub fn refusal(&self) -> &[u8] {
        &self.refusal
    }

    /// The pools hold memory to give back, or a storm of partial heads
    /// ended: the backend should call [`Driver::tick_pools`] about once a
    /// second until this is false.
    pub fn pools_hold_memory(&self) -> bool {
        self.pools.hold_memory() || self.head_storm_ended()
    }

    /// Once a second: frees pooled buffers nobody used since the last tick,
    /// and after a storm of partial heads gives the freed heap back to the
    /// system (see `malloc::give_back_free_heap`). True when it did: the
    /// backend gives back its own storm-sized memory too (its receive
    /// buffers).
    pub fn tick_pools(&mut self) -> bool {
        self.pools.tick();
        let storm_ended = self.head_storm_ended() && self.config.return_memory_to_os;
        if self.head_storm_ended() {
            if self.config.return_memory_to_os {
                crate::malloc::give_back_free_heap();
            }
            // The storm's decoders come back to the pool as its connections
            // close, and leave it a tick later: until the pool is back to
            // its floor, each tick gives back what it freed.
            if !self.pools.hold_memory() {
                self.head_held_peak = self.head_held;
            }
        }
        storm_ended
    }

    /// Partial heads held fell by [`HEAD_STORM_BYTES`] since memory was
    /// last given back: the connections that held them closed, and their
    /// buffers (below malloc's mmap threshold) sit free in the heap.
    fn head_storm_ended(&self) -> bool {
        self.head_held_peak - self.head_held >= HEAD_STORM_BYTES
    }

    // ---- accept ----

    /// Takes an accepted socket: a slot with its header deadline running,
    /// or a refusal (connection cap, per-address cap, shutdown). `peer` is
    /// needed only when [`Driver::needs_peer_on_accept`].
    pub fn admit(&mut self, fd: RawFd, peer: Option<SocketAddr>) -> Admission {
        if self.shutting_down && !self.handing_over {
            self.counters().count_close(CloseReason::Shutdown, false);
            return Admission::Dropped;
        }
        // Claim before taking a slot: one CAS, never check-then-add: an accept
        // storm overruns a cap that is checked and then incremented.
        if !self.shared.cap.try_claim() {
            self.encode_refusal(CloseReason::ConnectionCap);
            return Admission::Refused;
        }
        let mut ip_bucket = NO_IP_BUCKET;
        if let Some(per_ip) = &self.shared.per_ip {
            // A peer already gone has no address: admitted uncounted, its
            // first read ends it.
            if let Some(peer) = peer {
                match per_ip.try_claim(&peer) {
                    Some(bucket) => ip_bucket = bucket,
                    None => {
                        self.shared.cap.release();
                        self.encode_refusal(CloseReason::PerIpCap);
                        return Admission::Refused;
                    }
                }
            }
        }
        // The cap claimed above keeps the slots from filling; were they
        // full anyway, the connection is refused rather than the table
        // grown past the bound the backend relies on.
        let Some(slot) = self.conns.vacant_entry() else {
            if let (Some(per_ip), true) = (&self.shared.per_ip, ip_bucket != NO_IP_BUCKET) {
                per_ip.release(ip_bucket);
            }
            self.shared.cap.release();
            self.encode_refusal(CloseReason::ConnectionCap);
            return Admission::Refused;
        };
        let key = slot.key();
        if key == self.generations.len() {
            self.generations.push(0);
        }
        let generation = crate::user_data::next_generation(self.generations[key]);
        self.generations[key] = generation;
        let mut timers = self.new_conn_timers.clone();
        // The first head must arrive within header_timeout of accept.
        timers.on_accept(self.now);
        let mut conn = Connection::new(fd, generation, timers);
        conn.ip_bucket = ip_bucket;
        conn.awaiting_proxy_header = self.config.proxy_protocol;
        slot.insert(conn);
        self.counters().open_connections.incr();
        self.actions.push_back(Action::Read(key));
        self.sync_timer(key);
        Admission::Admitted { key, generation }
    }

    /// Encodes the best-effort 503 of a refused connection, counted under
    /// `reason`. nginx answers over-limit connections 503 too; a client
    /// seeing a bare close would retry at once.
    fn encode_refusal(&mut self, reason: CloseReason) {
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
        } else {
            self.refusal.clear();
        }
    }

    // ---- input ----

    /// Bytes arrived on `key`'s socket. They are copied (or discarded while
    /// lingering): the backend may reuse `input` when this returns.
    pub fn on_bytes(&mut self, key: usize, input: &[u8]) {
        self.counters().bytes_in.add(input.len() as u64);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase != Phase::Open || conn.close_after_flush {
            return;
        }
        let mut input = input;
        if conn.awaiting_proxy_header {
            match proxy::take_proxy_header(conn, &mut self.proxy_headers, key, input) {
                Ok((rest, source)) => {
                    input = rest;
                    if let Some(source) = source {
                        conn.has_proxied_peer = true;
                        self.proxied_peers.insert(key, source);
                    }
                }
                Err(_) => {
                    // No response: the peer is a load balancer that broke
                    // the protocol, or a client that bypassed it.
                    self.close_now(key, CloseReason::ProxyProtocolError);
                    return;
                }
            }
        }
        if !input.is_empty() {
            let limits = self.limits;
            conn.timers.on_request_bytes(self.now);
            conn.decoder
                .get_or_insert_with(|| self.pools.decoder(limits))
                .feed(input);
        }
        if conn.yielded
            || conn.budget_wait
            || conn.body_paused
            || (conn.in_exchange && !conn.body_to_handler)
        {
            // Its turn comes later (or after the pending answer); bound
            // what it may pile up meanwhile.
            if conn.buffered() > INPUT_HIGH_WATER && !conn.input_paused {
                conn.input_paused = true;
                self.actions.push_back(Action::StopReading(key));
            }
            self.account_head(key);
            self.flush_send(key);
        } else {
            self.process_input(key);
        }
    }

    /// The peer sent EOF (it may have half-closed after pipelining).
    pub fn on_eof(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.peer_eof = true;
        match conn.phase {
            Phase::Open => self.finish_after_peer_eof(key),
            Phase::Lingering => self.close_now(key, CloseReason::PeerEof),
            Phase::Closed => {}
        }
    }

    /// Reading or sending failed: the peer reset the connection, or it
    /// broke otherwise.
    pub fn on_error(&mut self, key: usize) {
        if !self.is_closed(key) {
            self.close_now(key, CloseReason::PeerReset);
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
            if conn.phase != Phase::Open
                || conn.close_after_flush
                || (conn.in_exchange && !conn.body_to_handler)
                || conn.body_paused
            {
                break;
            }
            let queued = conn.send.queued();
            if queued > OUTPUT_HIGH_WATER {
                self.pause(key);
                break;
            }
            if (conn.answer_pending || conn.buffered() > 0)
                && (answered >= TURN_BUDGET_REQUESTS
                    || conn.decoded_since_rest >= TURN_BUDGET_INPUT_BYTES
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
                let keep_alive = self.answer(key, None);
                self.release_body(key);
                if !keep_alive {
                    self.close_after_flush(key, CloseReason::Completed);
                }
                continue;
            }
            let Some(decoder) = conn.decoder.as_mut() else {
                break;
            };
            let buffered = decoder.buffered();
            let event = decoder.poll();
            // Heads and chunk framing are parsed a byte at a time; body
            // data is only copied, its cost the bandwidth's, which the
            // body budget bounds.
            let copied = match event {
                Ok(Some(Event::BodyData(n))) => n,
                _ => 0,
            };
            let parsed = buffered
                .saturating_sub(decoder.buffered())
                .saturating_sub(copied);
            conn.decoded_since_rest = conn
                .decoded_since_rest
                .saturating_add(u16::try_from(parsed).unwrap_or(u16::MAX));
            match event {
                Ok(None) => break,
                Ok(Some(Event::HeadStarted)) => conn.timers.on_head_started(self.now),
                Ok(Some(Event::HeadComplete)) => {
                    let head = conn.decoder().head().expect("head is set at HeadComplete");
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
                    if body_pending && self.stream_bodies {
                        // Handed over now; the body follows as it arrives.
                        answered += 1;
                        self.dispatch_streaming(key);
                    }
                }
                Ok(Some(Event::BodyData(n))) if conn.body_to_handler => {
                    conn.timers.on_body_progress(self.now, n as u64);
                    self.stream_body(key);
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
                Ok(Some(Event::RequestComplete)) if conn.body_to_handler => {
                    conn.timers.on_body_complete();
                    self.end_streamed_body(key);
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
        self.account_head(key);
        self.account_output(key);
        self.flush_send(key);
        self.sync_timer(key);
    }

    /// Brings the worker's partial-head total up to date with `key`'s
    /// decoder, or answers 503 and closes when its head does not fit: the
    /// worker never holds more partial-head bytes than its budget (plus one
    /// read). Only a head still incomplete after the bytes at hand were
    /// parsed counts, so a head that arrives whole never does, and the
    /// connections refused when slowloris heads fill the budget are the
    /// ones adding to it.
    fn account_head(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let held = if conn.phase == Phase::Open && !conn.close_after_flush {
            conn.decoder.as_ref().map_or(0, |d| d.partial_head_bytes())
        } else {
            0
        };
        let held = u32::try_from(held).unwrap_or(u32::MAX);
        let before = conn.head_reserved as usize;
        let after = held as usize;
        if after > before && self.head_held + (after - before) > self.head_budget {
            self.head_held -= before;
            conn.head_reserved = 0;
            self.refuse_head(key);
            return;
        }
        self.head_held = self.head_held - before + after;
        conn.head_reserved = held;
        self.head_held_peak = self.head_held_peak.max(self.head_held);
    }

    /// The worker's partial-head budget is full: 503, and the connection
    /// closes without reading more. A 503, not a 431: the head is within
    /// the limits, the server is the one out of room (the body budget
    /// answers the same way).
    fn refuse_head(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        // Nothing more of this request is read: its header deadline ends
        // here; the close that follows has its own.
        conn.timers.on_head_complete(self.now, false);
        let ctx = EncodeContext {
            date: &self.date,
            version: ringwall_h1::Version::Http11,
            keep_alive: false,
            head_request: false,
        };
        let _ = encode_response(
            &mut conn.send.pending,
            503,
            &[("Content-Type", b"text/plain"), ("Retry-After", b"1")],
            b"Service Unavailable: request head budget exhausted\n",
            &ctx,
        );
        self.close_after_flush(key, CloseReason::HeadBudget);
    }

    /// Reserves `bytes` of the worker's request-body budget for `key` as
    /// they arrive, or answers 503 and closes when they do not fit: the
    /// worker never holds more body bytes than its budget (plus one read).
    fn reserve_body(&mut self, key: usize, bytes: usize) -> bool {
        let conn_reserved = u32::try_from(bytes)
            .ok()
            .and_then(|b| self.conns[key].body_reserved.checked_add(b));
        if let (Some(conn_reserved), true) = (
            conn_reserved,
            self.body_reserved + bytes <= self.body_budget,
        ) {
            self.body_reserved += bytes;
            self.conns[key].body_reserved = conn_reserved;
            return true;
        }
        let conn = &mut self.conns[key];
        // Nothing more of this request is read: its head and body deadlines
        // end here; the close that follows has its own.
        conn.timers.on_head_complete(self.now, false);
        conn.timers.on_body_complete();
        let head = conn.decoder.as_ref().and_then(|d| d.head());
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
            self.body_reserved -= conn.body_reserved as usize;
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
        // Called on every send; nearly always nobody waits.
        if self.budget_waiters.is_empty() {
            return;
        }
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
        // Its next go starts with a whole budget.
        conn.decoded_since_rest = 0;
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
        self.actions.push_back(Action::StopReading(key));
    }

    /// Gives each connection that yielded last turn its next turn. The
    /// backend calls it after each batch of completions, never before:
    /// one connection's backlog cannot delay timers or other connections.
    pub fn serve_ready(&mut self) {
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
            if self.wants_input(key) {
                self.actions.push_back(Action::Read(key));
            }
            self.sync_timer(key);
        }
    }

    /// The peer sent EOF: answer every complete request already buffered,
    /// then close. While paused, the buffered requests wait for the drain,
    /// which calls back here through `process_input`.
    fn finish_after_peer_eof(&mut self, key: usize) {
        let conn = &self.conns[key];
        if conn.phase != Phase::Open
            || conn.paused
            || conn.yielded
            || conn.budget_wait
            || conn.answer_pending
            || conn.in_exchange
            || conn.close_after_flush
        {
            return;
        }
        self.close_after_flush(key, CloseReason::PeerEof);
    }

    /// Runs the handler on the complete request; returns keep-alive.
    fn answer(&mut self, key: usize, body_stream: Option<RequestBody>) -> bool {
        let conn = &mut self.conns[key];
        if conn.send.is_empty() && conn.send.pending.capacity() == 0 {
            if let Some((sending, pending)) = self.pools.send_buffers() {
                conn.send.give_buffers(sending, pending);
            }
        }
        let decoder = conn
            .decoder
            .as_ref()
            .expect("a complete request has its decoder");
        let head = decoder.head().expect("head is set at RequestComplete");
        let keep_alive = head.keep_alive() && !self.shutting_down;
        let version = head.version();
        let head_request = head.is_head();
        let request = Request {
            head,
            body: decoder.body(),
            fd: conn.fd,
            proxied_peer: if conn.has_proxied_peer {
                self.proxied_peers.get(&key).copied()
            } else {
                None
            },
            body_stream: Cell::new(body_stream),
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
            head_cache: &mut self.head_cache,
            sent: false,
            mailbox: &self.shared.mailbox,
            slot: (key as u32, conn.generation),
            deferred: None,
        };
        let handler = &self.handler;
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&request, &mut response)));
        let sent = response.sent && outcome.is_ok();
        let deferred = response.deferred.take().filter(|_| outcome.is_ok());
        if let Some(state) = deferred {
            self.counters().requests.incr();
            self.start_exchange(key, state, version, keep_alive, head_request);
            return true;
        }
        if !sent {
            // A handler that panicked or wrote nothing: answer 500 and close,
            // discarding anything half-written.
            conn.send.pending.truncate(mark);
            encode_internal_error(&mut conn.send.pending, &self.date, version, head_request);
        }
        self.counters().requests.incr();
        keep_alive && sent
    }

    fn pause(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.paused = true;
        // The server is behind, not the client: no body rate meanwhile.
        conn.timers.on_reading_paused();
        self.actions.push_back(Action::StopReading(key));
    }

    // ---- send ----

    fn flush_send(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.phase != Phase::Closed && !conn.send.is_empty() && !conn.send.in_flight() {
            self.actions.push_back(Action::Send(key));
        }
    }

    /// The bytes of `key`'s next send, or `None` when a send is in flight,
    /// nothing is queued or the connection is closed. The bytes stay put
    /// until [`Driver::on_sent`] or [`Driver::on_send_failed`]: the kernel
    /// may read them until then. May queue a timer action: carry it out.
    pub fn start_send(&mut self, key: usize) -> Option<&[u8]> {
        let conn = self.conns.get_mut(key)?;
        if conn.phase == Phase::Closed || conn.send.in_flight() || conn.send.is_empty() {
            return None;
        }
        let write_armed = conn.timers.deadline(DeadlineKind::Write).is_some();
        conn.timers.on_send_started(self.now);
        // A write deadline armed just now may be the earliest: the backend
        // arms it right after this send. One already armed was planned.
        if !write_armed {
            if let action @ (TimerAction::Submit(_) | TimerAction::Update(_)) = conn.timers.plan() {
                self.actions.push_back(Action::Timer(key, action));
            }
        }
        self.conns[key].send.start_send()
    }

    /// The send failed, or was cancelled.
    pub fn on_send_failed(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.send.abort_send();
        if conn.phase != Phase::Closed {
            self.close_now(key, CloseReason::PeerReset);
        }
    }

    /// A send could not go now (the socket's buffer is full): the same
    /// bytes are offered again by the next [`Driver::start_send`]. No
    /// deadline moves: no byte left, and the short send before it (the
    /// one that filled the buffer) started the response-rate clock.
    pub fn on_send_blocked(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.send.abort_send();
        }
    }

    /// `n` bytes of the send in flight left.
    pub fn on_sent(&mut self, key: usize, n: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let short = conn.send.complete_send(n);
        if n > 0 {
            conn.sent_any = true;
            let taken = bytes_taken(conn, self.unacked_bytes, n, short);
            conn.timers.on_send_progress(self.now, taken, short);
        }
        self.counters().bytes_out.add(n as u64);
        self.account_output(key);
        if self.conns[key].in_exchange {
            self.exchange_drained(key);
        }
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
        // Not while a deferred answer streams: the queue drains between
        // its chunks, and the idle deadline runs only between requests (a
        // reader at full speed was reset at the idle timeout mid-stream).
        let idle = conn.decoder_is_idle() && !conn.answer_pending && !conn.in_exchange;
        conn.timers.on_send_drained(self.now, idle);
        if conn.paused {
            conn.paused = false;
            conn.timers.on_reading_resumed(self.now);
            if !conn.yielded && !conn.budget_wait {
                self.process_input(key);
            }
            // process_input may have paused again (one more large answer):
            // reading then would pull input nobody parses.
            if self.wants_input(key) {
                self.actions.push_back(Action::Read(key));
            }
        }
        self.settle_if_idle(key);
    }

    /// `key` waits for its next request: it gives its buffers to the
    /// worker's pool, so it holds no buffer memory while it waits, or it
    /// closes if the server is stopping. Re-plans its timer.
    fn settle_if_idle(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_idle() {
            if self.shutting_down && !self.handing_over {
                self.close_now(key, CloseReason::Shutdown);
                return;
            }
            conn.decoded_since_rest = 0;
            self.pools.take_from(conn);
        }
        self.sync_timer(key);
    }

    // ---- deadlines ----

    /// Asks for the timer the plan needs: one kernel timer per connection,
    /// always due at or before the earliest live deadline.
    fn sync_timer(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        match conn.timers.plan() {
            TimerAction::Nothing => {}
            action => self.actions.push_back(Action::Timer(key, action)),
        }
    }

    /// `key`'s kernel timer fired; `now` is read after the fire, never a
    /// cached one: the batch may be old, and a stale clock makes a due
    /// deadline look early.
    pub fn on_timer_fired(&mut self, key: usize, now: MonoTime) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        self.shared.counters.timer_fires.incr();
        if conn.timers.due(now) == Some(DeadlineKind::SendRate) && conn.phase == Phase::Open {
            // Before judging the rate: what the peer took that no send
            // completion showed (a receive window reopening in steps
            // smaller than what wakes a blocked send) counts too.
            let taken = bytes_taken(conn, self.unacked_bytes, 0, false);
            conn.timers.on_send_taken(now, taken);
        }
        match conn.timers.on_fire(now) {
            FireOutcome::Expired(kind) => {
                let reason = match kind {
                    DeadlineKind::Header => CloseReason::HeaderTimeout,
                    DeadlineKind::Body => CloseReason::BodyTimeout,
                    DeadlineKind::Idle => CloseReason::IdleTimeout,
                    DeadlineKind::Write => CloseReason::WriteTimeout,
                    DeadlineKind::BodyRate => CloseReason::MinBodyRate,
                    DeadlineKind::SendRate => CloseReason::MinResponseRate,
                    DeadlineKind::Handler => {
                        // 503 if no head left yet; the responder learns.
                        self.handler_timed_out(key);
                        return;
                    }
                };
                self.close_now(key, reason);
            }
            FireOutcome::Rearm(at) => {
                self.shared.counters.timer_early_fires.incr();
                self.actions
                    .push_back(Action::Timer(key, TimerAction::Submit(at)));
            }
            FireOutcome::Nothing => self.shared.counters.timer_early_fires.incr(),
        }
    }

    /// `key`'s kernel timer was removed or failed without firing: none is
    /// pending any more.
    pub fn on_timer_gone(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        conn.timers.on_timer_gone();
        self.sync_timer(key);
    }

    // ---- close ----

    /// Records the first decision to close; counted at once when `reset`
    /// is known, else by [`Driver::count_forced_close`].
    fn record_reason(&mut self, key: usize, reason: CloseReason, reset: Option<bool>) {
        let conn = &mut self.conns[key];
        if conn.close_reason.is_none() {
            conn.close_reason = Some(reason);
            if crate::log::close_is_logged(reason) && crate::log::closes_enabled() {
                self.log_close(key, reason);
            }
        }
        let conn = &mut self.conns[key];
        if let (false, Some(reset)) = (conn.close_counted, reset) {
            conn.close_counted = true;
            let reason = conn.close_reason.unwrap_or(reason);
            self.shared.counters.count_close(reason, reset);
        }
    }

    /// The rate-limited close event, with the client's address (the PROXY
    /// header's when there was one). The one place the driver asks the
    /// kernel anything (getpeername), and only for an event that passed
    /// the rate limit.
    #[cold]
    fn log_close(&mut self, key: usize, reason: CloseReason) {
        let Some(suppressed) = self.close_log.admit(self.now) else {
            return;
        };
        let conn = &self.conns[key];
        let peer = if conn.has_proxied_peer {
            self.proxied_peers.get(&key).copied()
        } else {
            crate::socket::peer_addr(conn.fd)
        };
        crate::log::close_event(self.shared.worker, reason, peer, suppressed);
    }

    /// The backend resolved a [`CloseMode::ResetIfUnacked`]: count the
    /// close as a reset or a FIN.
    pub fn count_forced_close(&mut self, key: usize, reset: bool) {
        if let Some(reason) = self.conns.get(key).and_then(|c| c.close_reason) {
            self.record_reason(key, reason, Some(reset));
        }
    }

    /// Stop reading requests; close when the queued responses have left.
    fn close_after_flush(&mut self, key: usize, reason: CloseReason) {
        self.record_reason(key, reason, Some(false));
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
        self.actions.push_back(Action::ShutdownWrite(key));
        conn.phase = Phase::Lingering;
        // The linger is bounded by the write deadline, armed afresh: the
        // response has left, only the peer's EOF is awaited.
        conn.timers.clear_all();
        conn.timers.arm(DeadlineKind::Write, self.now);
        if !conn.peer_eof {
            conn.paused = false;
            self.actions.push_back(Action::Read(key));
        }
        self.sync_timer(key);
    }

    /// Decides the close of `key` and hands it to the backend. A close
    /// forced by a deadline or the shutdown timeout while response bytes
    /// are still unsent is a reset (see [`CloseMode::Reset`]); a close with
    /// nothing left unsent stays a FIN.
    fn close_now(&mut self, key: usize, reason: CloseReason) {
        let conn = &self.conns[key];
        if conn.phase == Phase::Closed {
            self.record_reason(key, reason, Some(false));
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
                | CloseReason::HandlerTimeout
                | CloseReason::Shutdown
        );
        let mode = if reason == CloseReason::HandlerAborted {
            // A truncated body must never look complete.
            CloseMode::Reset
        } else if !forced {
            CloseMode::Fin
        } else if !conn.send.is_empty() {
            CloseMode::Reset
        } else if conn.sent_any {
            CloseMode::ResetIfUnacked
        } else {
            CloseMode::Fin
        };
        let reset = match mode {
            CloseMode::Fin => Some(false),
            CloseMode::Reset => Some(true),
            CloseMode::ResetIfUnacked => None,
        };
        self.record_reason(key, reason, reset);
        if self.conns[key].in_exchange {
            self.exchange_gone(key);
        }
        if self.conns[key].body_to_handler {
            self.streamed_body_gone(key);
        }
        let conn = &mut self.conns[key];
        let lingering = conn.phase == Phase::Lingering;
        conn.phase = Phase::Closed;
        // Its partial head and queued output no longer count against the
        // worker's budgets.
        self.account_head(key);
        self.account_output(key);
        self.actions.push_back(Action::Close {
            key,
            mode,
            lingering,
        });
    }

    /// Frees `key`'s slot: the backend has closed the socket and nothing
    /// it has in flight names the slot any more.
    pub fn release(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.in_exchange) {
            self.exchange_gone(key);
        }
        if self.conns.get(key).is_some_and(|c| c.body_to_handler) {
            self.streamed_body_gone(key);
        }
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if conn.awaiting_proxy_header {
            self.proxy_headers.remove(&key);
        }
        if conn.has_proxied_peer {
            self.proxied_peers.remove(&key);
        }
        self.output_queued -= conn.output_accounted;
        self.body_reserved -= conn.body_reserved as usize;
        self.head_held -= conn.head_reserved as usize;
        if conn.output_accounted > 0 {
            self.wake_budget_waiters();
        }
        if let (Some(per_ip), true) = (&self.shared.per_ip, conn.ip_bucket != NO_IP_BUCKET) {
            per_ip.release(conn.ip_bucket);
        }
        self.shared.cap.release();
        self.counters().open_connections.sub(1);
        conn.send.abort_send();
        self.pools.take_from(&mut conn);
    }

    /// Releases every connection at once, for a backend that stops after a
    /// fatal error with operations still in flight; returns their keys,
    /// whose sockets the backend (their owner) shuts down and closes.
    pub fn release_all(&mut self) -> Vec<usize> {
        let keys = self.keys();
        for &key in &keys {
            self.release(key);
        }
        keys
    }

    // ---- shutdown ----

    /// Stop taking connections; close the idle ones now and the others
    /// once their last response has left (`keep-alive` ends).
    ///
    /// `handing_over`: a successor process accepts on the same sockets
    /// ([`crate::ServerHandle::hand_over`]): a connection accepted late is
    /// served rather than dropped, and an idle keep-alive connection is
    /// closed only after answering one more request with `Connection:
    /// close` (HAProxy's `idle-close-on-response`): closing it at once
    /// races the client's next request, which would be lost.
    pub fn begin_shutdown(&mut self, handing_over: bool) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.handing_over = handing_over;
        if handing_over {
            return;
        }
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle())
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close_now(key, CloseReason::Shutdown);
        }
    }

    /// Closes every connection not closed yet, for `reason`.
    pub fn close_all(&mut self, reason: CloseReason) {
        for key in self.keys() {
            if !self.is_closed(key) {
                self.close_now(key, reason);
            }
        }
    }
}

/// The response bytes `conn`'s peer took since the last look, for the
/// send rate, after a send moved `accepted` bytes into the kernel (`short`:
/// fewer than offered). The kernel's queue is looked at (one SIOCOUTQ)
/// only while the rate clock runs or is about to start: the bytes a send
/// moved into the kernel are not what the client took, because its socket
/// buffers and ours swallow a few hundred KiB at once, and credit for that
/// swallow would let a non-reader bank minutes. A connection whose
/// response leaves whole never pays for the look.
fn bytes_taken(
    conn: &mut Connection,
    unacked_bytes: fn(RawFd) -> usize,
    accepted: usize,
    short: bool,
) -> u64 {
    let rate_runs = conn.timers.deadline(DeadlineKind::SendRate).is_some();
    if !rate_runs && !short {
        // No clock to credit: the count does not matter.
        return accepted as u64;
    }
    let unacked = unacked_bytes(conn.fd);
    // The short send that starts the clock counts what of it the peer
    // acknowledged already (its receive buffer took it); the look is the
    // baseline from then on.
    let owed = if rate_runs {
        u64::from(conn.send.kernel_owed)
    } else {
        0
    } + accepted as u64;
    conn.send.kernel_owed = u32::try_from(unacked).unwrap_or(u32::MAX);
    owed.saturating_sub(unacked as u64)
}

/// The 500 of a handler that panicked, wrote nothing, or gave up: the
/// connection closes after it.
fn encode_internal_error(
    out: &mut Vec<u8>,
    date: &HttpDate,
    version: ringwall_h1::Version,
    head_request: bool,
) {
    let ctx = EncodeContext {
        date,
        version,
        keep_alive: false,
        head_request,
    };
    let _ = encode_response(
        out,
        500,
        &[("Content-Type", b"text/plain")],
        b"Internal Server Error\n",
        &ctx,
    );
}
