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

mod admit;
mod budgets;
mod canned;
mod close;
pub(crate) mod conn_cap;
mod connection;
mod deadlines;
mod exchange;
pub(crate) mod fixed_slab;
mod input;
pub(crate) mod per_ip;
mod pools;
mod proxy;
mod send;
pub(crate) mod send_queue;
#[cfg(test)]
mod sequences;
mod streamed_body;
#[cfg(test)]
mod tests;
mod turns;

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use ringwall_h1::{
    encode_continue, encode_error, BodyKind, EncodeContext, Event, HeadCache, HttpDate,
};
use ringwall_timers::{
    ConnTimers, DeadlineKind, FireOutcome, MinRates, MonoTime, Timeouts, TimerAction,
};

use crate::app::deferred::Mailbox;
use crate::app::handler::{Handler, Request, Response};
use crate::app::request_body::{BodyChannel, RequestBody};
use crate::config::Config;
use crate::driver::conn_cap::ConnCap;
use crate::driver::fixed_slab::FixedSlab;
use crate::driver::per_ip::PerIpCap;
use crate::ops::log::CloseLogBudget;
use crate::ops::stats::{CloseReason, WorkerCounters};
use canned::{encode_canned, Canned};
use connection::{Connection, Hold, Phase, NO_IP_BUCKET};
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

/// A slot's generation is 24 bits: what fits beside the slot and the
/// operation tag in an io_uring `user_data` (the epoll backend's tokens
/// carry it too). It wraps to 0.
pub(crate) const GENERATION_MASK: u32 = (1 << 24) - 1;

/// Generations wrap at 24 bits; a slot would have to be reused 16 million
/// times while one stale CQE is still queued for a collision to matter.
pub(crate) fn next_generation(generation: u32) -> u32 {
    (generation + 1) & GENERATION_MASK
}

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
            unacked_bytes: crate::sys::socket::unacked_bytes,
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
                crate::sys::malloc::give_back_free_heap();
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
