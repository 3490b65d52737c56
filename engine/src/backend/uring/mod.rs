//! The io_uring backend: one worker is a thread, its ring, its listeners,
//! and the [`Driver`] that holds its connections. The worker only moves
//! bytes, arms the timer each connection asks for and reports
//! completions; every decision is the driver's.
//!
//! ```text
//!   accept CQE ──► Driver::admit ──────────────┐
//!   recv CQE ───► Driver::on_bytes / on_eof ───┤
//!   send CQE ───► Driver::on_sent ─────────────┼──► Actions ──► SQEs: recv, send,
//!   timer CQE ──► Driver::on_timer_fired ──────┘     Timeout (ABS, CLOCK_MONOTONIC),
//!                 (fresh now)                        update, shutdown, linger, cancel
//! ```
//!
//! Everything that reaches the worker arrives as a CQE and goes through
//! [`Worker::dispatch`], one `match` on the operation tag.

pub(crate) mod buf_ring;
pub(crate) mod user_data;

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use io_uring::types::{Fd, TimeoutFlags, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use ringwall_timers::{MonoTime, TimerAction};

use crate::app::deferred::{Completion, Mailbox};
use crate::app::handler::Handler;
use crate::backend::uring::buf_ring::ProvidedBufRing;
use crate::backend::uring::user_data::{OpTag, UserData, NO_SLOT};
use crate::backend::{fatal_wait_error, place_slot, Plumbing};
use crate::config::Config;
use crate::driver::conn_cap::ConnCap;
use crate::driver::per_ip::PerIpCap;
use crate::driver::{Driver, DriverShared};
use crate::error::UringUnavailable;
use crate::ops::stats::{CloseReason, WorkerCounters};
use crate::sys::clock::{mono_now, unix_secs};
use crate::sys::socket::{self, Listener};

/// Provided-buffer group id of every worker's receive ring (one per ring).
const RECV_BUFFER_GROUP: u16 = 0;
/// `IORING_ENTER_GETEVENTS`: a non-waiting enter still needs it, or the
/// deferred task work (DEFER_TASKRUN) that posts completions never runs.
const ZERO_WAIT: Timespec = Timespec::new();
/// Pause before re-arming accept after EMFILE and friends.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Everything a worker of either backend starts from.
pub(crate) struct WorkerSetup<H> {
    pub index: usize,
    pub config: Config,
    pub listeners: Vec<Listener>,
    pub handler: Arc<H>,
    pub shared: WorkerShared,
}

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

/// What the ring side keeps per connection, beside the driver's slot of
/// the same key.
struct IoSlot {
    /// The socket; `None` once closed. It is closed (through the ring, or
    /// by dropping it) only when no SQE names the slot (`inflight` is
    /// zero): an fd closed earlier could be reused by a new socket and
    /// receive a queued send meant for this one (ARCHITECTURE.md, Engine
    /// invariants).
    fd: Option<OwnedFd>,
    generation: u32,
    /// Read by the kernel when the timer SQE is submitted. It lives here,
    /// not on a stack, because the SQE may wait in the backlog; the slots
    /// never move (their Vec is allocated at full capacity up front).
    timer_spec: Timespec,
    /// The same for the update SQE, kept apart so a queued timer SQE and a
    /// queued update never share a timespec.
    update_spec: Timespec,
    /// SQEs that name this slot and whose final CQE has not arrived. The
    /// slot (its timespecs, the send bytes) is released only at zero.
    inflight: u32,
    recv_armed: bool,
    send_in_flight: bool,
    timer_armed: bool,
}

impl IoSlot {
    /// The socket's number for an SQE or a syscall. A closed slot's is -1,
    /// which the kernel refuses (EBADF) rather than mistaking for a
    /// socket that took the number since.
    fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
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

pub(crate) struct Worker<H: Handler> {
    /// The ring. Dropped first, by `Worker`'s `Drop`, whatever the field
    /// order: until it is gone the kernel may still read or write the
    /// buffer ring, the slots' timespecs, `wake_buf`, `mailbox_buf` and the
    /// boxed timespecs, and use the connections', listeners' and eventfds'
    /// fds.
    sink: ManuallyDrop<SqeSink>,
    /// This worker's number, as in its thread's name, for events.
    index: usize,
    recv_buffers: ProvidedBufRing,
    driver: Driver<H>,
    /// By the driver's slot keys; never reallocated (see `IoSlot`).
    slots: Vec<IoSlot>,
    /// Shared with the server's stop path, which signals it to wake the
    /// ring: it stays open until both are done with it, so a signal never
    /// reaches a number that was closed and reused.
    wake_fd: Arc<OwnedFd>,
    wake_buf: Box<u64>,
    /// Deferred answers from other threads; its eventfd is read into
    /// `mailbox_buf`.
    mailbox: Arc<Mailbox>,
    mailbox_buf: Box<u64>,
    completions: Vec<Completion>,
    backoff_spec: Box<Timespec>,
    pool_tick_spec: Box<Timespec>,
    pool_timer_armed: bool,
    /// SO_LINGER through `IORING_OP_URING_CMD` (Linux 6.7+) until the
    /// kernel refuses it once.
    linger_through_ring: bool,
    /// Sockets are closed through the ring (`close_socket`) when the
    /// kernel has `IOSQE_CQE_SKIP_SUCCESS` (5.17+), by syscall otherwise.
    close_through_ring: bool,
    shutdown_spec: Box<Timespec>,
    listeners: Vec<Listener>,
    recv_buffer_size: u32,
    shared: WorkerShared,
    shutting_down: bool,
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
    cqes: Vec<(u64, i32, u32)>,
}

impl<H: Handler> Drop for Worker<H> {
    fn drop(&mut self) {
        // The ring first: closing it ends the kernel's use of everything
        // the other fields hold (the registered buffer ring, whose memory
        // `recv_buffers` unmaps; the slots' timespecs; the send bytes the
        // driver holds; `wake_buf`, `mailbox_buf` and the boxed timespecs;
        // the fds). The rest then drops in any order.
        // SAFETY: `sink` is dropped once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.sink) };
    }
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
                    crate::ops::log::warn!(
                        worker,
                        wanted = attempts[0].0,
                        using = name,
                        "the kernel refused the preferred io_uring setup flags; falling back"
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

/// Whether io_uring can serve here: a small ring with a provided-buffer
/// ring (Linux 5.19, which also brought multishot accept). The error
/// names why not.
pub(crate) fn probe() -> Result<(), UringUnavailable> {
    let ring = IoUring::new(8).map_err(UringUnavailable::diagnose)?;
    ProvidedBufRing::new(&ring.submitter(), 2, 64, RECV_BUFFER_GROUP)
        .map(drop)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) || e.kind() == io::ErrorKind::InvalidInput {
                UringUnavailable::MissingFeature {
                    feature: "provided buffer rings (IORING_REGISTER_PBUF_RING)",
                    needs: "Linux 5.19 or later",
                }
            } else {
                UringUnavailable::Setup(e)
            }
        })
}

impl WorkerShared {
    /// What the worker's driver shares with the rest of the server.
    pub fn for_driver(&self, worker: usize, mailbox: Arc<Mailbox>) -> DriverShared {
        DriverShared {
            mailbox,
            worker,
            counters: Arc::clone(&self.counters),
            cap: Arc::clone(&self.cap),
            per_ip: self.per_ip.clone(),
        }
    }
}

impl<H: Handler> Worker<H> {
    /// Sets the worker up on the thread that will run it: under
    /// SINGLE_ISSUER only the creating thread may submit.
    pub fn new(setup: WorkerSetup<H>) -> Result<Self, crate::StartError> {
        let WorkerSetup {
            index,
            config,
            listeners,
            handler,
            shared,
        } = setup;
        let wake_fd = Arc::new(socket::eventfd().map_err(crate::StartError::Worker)?);
        let mailbox = Arc::new(Mailbox::new().map_err(crate::StartError::Worker)?);
        let ring = build_ring(config.ring_entries, index).map_err(crate::StartError::IoUring)?;
        // Nothing fallible after the buffer ring is registered: an early
        // return would drop it (and unmap its memory) before the ring that
        // registered it, which only `Worker`'s `Drop` orders.
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
        let recv_multishot = config.recv_multishot;
        let close_through_ring = ring.params().is_feature_skip_cqe_on_success();
        let driver_shared = shared.for_driver(index, Arc::clone(&mailbox));
        Ok(Worker {
            sink: ManuallyDrop::new(SqeSink {
                ring,
                backlog: VecDeque::new(),
            }),
            index,
            recv_buffers,
            // Full capacity up front: slots never move, so the timespecs in
            // them stay where queued SQEs point.
            slots: Vec::with_capacity(config.max_connections),
            wake_fd,
            wake_buf: Box::new(0),
            mailbox: Arc::clone(&mailbox),
            mailbox_buf: Box::new(0),
            completions: Vec::new(),
            backoff_spec: Box::new(Timespec::from(ACCEPT_BACKOFF)),
            pool_tick_spec: Box::new(Timespec::new().sec(1)),
            pool_timer_armed: false,
            linger_through_ring: true,
            close_through_ring,
            shutdown_spec: Box::new(Timespec::from(config.shutdown_timeout)),
            listeners,
            recv_buffer_size: config.recv_buffer_size,
            shutting_down: false,
            accepts_armed: 0,
            shutdown_grace_over: false,
            recv_multishot,
            cqes: Vec::with_capacity(1024),
            driver: Driver::new(config, handler, driver_shared, mono_now(), unix_secs()),
            shared,
        })
    }

    pub fn wake_fd(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.wake_fd)
    }

    /// # Safety
    /// As [`SqeSink::push`].
    unsafe fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: forwarded.
        unsafe { self.sink.push(entry, &self.shared.counters) }
    }

    fn user_data(&self, key: usize, tag: OpTag) -> u64 {
        UserData::new(key as u32, self.slots[key].generation, tag).encode()
    }

    /// Runs until shutdown has closed every connection, or until
    /// `io_uring_enter` fails in a way no retry mends: then it releases
    /// every connection and returns that error.
    pub fn run(mut self) -> io::Result<()> {
        let mut fatal = None;
        for index in 0..self.listeners.len() {
            self.arm_accept(index);
        }
        self.arm_wake();
        self.arm_mailbox();
        // A shutdown requested before the wake read was armed.
        if self.shared.shutdown.load(Ordering::Acquire) {
            self.begin_shutdown();
            self.carry_out();
        }
        loop {
            if self.shutting_down
                && self.driver.is_empty()
                && (self.accepts_armed == 0 || self.shutdown_grace_over)
            {
                break;
            }
            self.sink.flush_backlog(&self.shared.counters);
            self.shared.counters.ring_enters.incr();
            // With connections waiting for their turn, only look: their
            // work must not wait for the next completion.
            let entered = if self.driver.has_ready() {
                let args = io_uring::types::SubmitArgs::new().timespec(&ZERO_WAIT);
                self.sink.ring.submitter().submit_with_args(1, &args)
            } else {
                self.sink.ring.submit_and_wait(1)
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
                    fatal = Some(fatal_wait_error(self.index, "io_uring_enter", e));
                    break;
                }
            }
            self.driver.set_clock(mono_now(), unix_secs());
            self.cqes.clear();
            for cqe in self.sink.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            self.shared.counters.completions.add(self.cqes.len() as u64);
            for i in 0..self.cqes.len() {
                let (user_data, result, flags) = self.cqes[i];
                self.dispatch(user_data, result, flags);
            }
            // After the completions (timers first among equals), never
            // before: one connection's backlog cannot delay them. What they
            // produced (responses, FINs) leaves before that backlog runs.
            if self.driver.has_ready() {
                self.shared.counters.ring_enters.incr();
                let _ = self.sink.ring.submit();
                self.driver.serve_ready();
                self.carry_out();
            }
            if !self.pool_timer_armed && self.driver.pools_hold_memory() {
                self.arm_pool_timer();
            }
        }
        // Closes queued by the last releases (`close_socket`) leave before
        // the ring is dropped, which would discard them and leak their fds.
        self.submit_all();
        let listeners = std::mem::take(&mut self.listeners);
        self.wind_down(listeners);
        fatal.map_or(Ok(()), Err)
    }

    /// Submits everything queued, the backlog included, as far as the
    /// kernel takes it (a bounded number of tries: a ring that refuses
    /// submissions for good is being torn down anyway).
    fn submit_all(&mut self) {
        for _ in 0..64 {
            self.sink.flush_backlog(&self.shared.counters);
            self.shared.counters.ring_enters.incr();
            let submitted = self.sink.ring.submit();
            if submitted.is_err()
                || (self.sink.backlog.is_empty() && self.sink.ring.submission().is_empty())
            {
                return;
            }
        }
    }

    /// The one place every completion is handled.
    fn dispatch(&mut self, user_data: u64, result: i32, flags: u32) {
        let Some(ud) = UserData::decode(user_data) else {
            self.shared.counters.stale_completions.incr();
            return;
        };
        let more = cqueue::more(flags);
        match ud.tag {
            OpTag::Accept => self.on_accept(ud.slot as usize, result, more),
            OpTag::Wake => self.begin_shutdown(),
            OpTag::Mailbox => {
                self.mailbox.take(&mut self.completions);
                self.driver.on_completions(&mut self.completions);
                self.arm_mailbox();
            }
            OpTag::ShutdownTimer => {
                self.shutdown_grace_over = true;
                self.driver.close_all(CloseReason::Shutdown);
            }
            OpTag::AcceptBackoff => {
                if !self.shutting_down {
                    self.arm_accept(ud.slot as usize)
                }
            }
            OpTag::PoolTimer => {
                self.pool_timer_armed = false;
                if self.driver.tick_pools() {
                    self.recv_buffers.give_back_pages();
                }
            }
            OpTag::Cancel if ud.slot == NO_SLOT => {}
            // A failed ring close (only failures complete): the kernel has
            // dropped the descriptor all the same unless it was not open,
            // which nothing here can mend.
            OpTag::Close => {}
            OpTag::Recv
            | OpTag::Send
            | OpTag::Timer
            | OpTag::TimerUpdate
            | OpTag::Cancel
            | OpTag::TimerRemove
            | OpTag::Linger => {
                let key = ud.slot as usize;
                if !self.driver.is_current(key, ud.generation) {
                    // Names a slot's previous occupant: drop it.
                    self.shared.counters.stale_completions.incr();
                    return;
                }
                match ud.tag {
                    OpTag::Recv => self.on_recv(key, result, flags, more),
                    OpTag::Send => self.on_send(key, result),
                    OpTag::Timer => self.on_timer(key, result),
                    // Their results need no action: an update that failed
                    // (-ENOENT) raced the fire, whose CQE re-plans; a cancel,
                    // shutdown or timer removal on a closing connection only
                    // has to be counted out.
                    OpTag::TimerUpdate | OpTag::Cancel | OpTag::TimerRemove => {
                        self.slots[key].inflight -= 1
                    }
                    OpTag::Linger => {
                        let slot = &mut self.slots[key];
                        slot.inflight -= 1;
                        if result < 0 {
                            // Kernels before 6.7 have no socket setsockopt
                            // command: the syscall, now and from now on.
                            socket::set_linger_zero(slot.raw_fd());
                            if self.linger_through_ring {
                                crate::ops::log::info!(
                                    worker = self.index,
                                    error = %io::Error::from_raw_os_error(-result),
                                    "the kernel has no io_uring setsockopt; resets set SO_LINGER by syscall"
                                );
                            }
                            self.linger_through_ring = false;
                        }
                    }
                    _ => unreachable!("connection tags are matched above"),
                }
                self.carry_out();
                self.maybe_release(key);
            }
        }
        self.carry_out();
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

    // ---- what the driver asks for ----

    // ---- accept ----

    fn arm_accept(&mut self, index: usize) {
        let entry = opcode::AcceptMulti::new(Fd(self.listeners[index].fd.as_raw_fd()))
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
                self.shared.counters.accept_errors.incr();
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
        // SAFETY: a non-negative accept result is a descriptor the kernel
        // just opened for this worker; nothing else owns or closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(result as RawFd) };
        let Some(admitted) = self.admit_socket(fd) else {
            return;
        };
        let (key, generation) = (admitted.key, admitted.generation);

        let slot = IoSlot {
            fd: Some(admitted.fd),
            generation,
            timer_spec: Timespec::new(),
            update_spec: Timespec::new(),
            inflight: 0,
            recv_armed: false,
            send_in_flight: false,
            timer_armed: false,
        };
        // The driver's keys stay below `max_connections`, the capacity
        // `slots` was allocated with (its table is a `FixedSlab` of that
        // size), so this push never moves a slot under a queued SQE. A
        // replaced slot's socket was taken and closed in `maybe_release`.
        place_slot(&mut self.slots, key, slot);
    }

    // ---- receive ----

    fn arm_recv(&mut self, key: usize) {
        if self.driver.is_closed(key) {
            return;
        }
        let slot = &mut self.slots[key];
        if slot.recv_armed {
            return;
        }
        slot.recv_armed = true;
        slot.inflight += 1;
        let entry = if self.recv_multishot {
            opcode::RecvMulti::new(Fd(slot.raw_fd()), self.recv_buffers.group).build()
        } else {
            // Single-shot recv that still picks a provided buffer, so an idle
            // connection holds no buffer on this path either.
            opcode::Recv::new(
                Fd(slot.raw_fd()),
                std::ptr::null_mut(),
                self.recv_buffer_size,
            )
            .buf_group(self.recv_buffers.group)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
        }
        .user_data(UserData::new(key as u32, slot.generation, OpTag::Recv).encode());
        // SAFETY: the kernel writes into provided buffers, which live in
        // `recv_buffers` until after the ring is gone.
        unsafe { self.push(entry) };
    }

    fn on_recv(&mut self, key: usize, result: i32, flags: u32, more: bool) {
        if !more {
            let slot = &mut self.slots[key];
            slot.recv_armed = false;
            slot.inflight -= 1;
        }
        if result > 0 {
            let Some(bid) = cqueue::buffer_select(flags) else {
                return;
            };
            let input = self.recv_buffers.filled(bid, result as usize);
            self.driver.on_bytes(key, input);
            // Copied out (or discarded): the buffer goes back now.
            self.recv_buffers.recycle(bid);
        } else if result == 0 {
            self.driver.on_eof(key);
            return;
        } else if result == -libc::EINVAL && self.recv_multishot {
            // Kernels before 6.0 reject multishot recv: fall back for good.
            crate::ops::log::warn!(
                worker = self.index,
                "the kernel rejects multishot recv; falling back to single-shot recv"
            );
            self.recv_multishot = false;
        } else if result == -libc::ENOBUFS || result == -libc::ECANCELED {
            // ENOBUFS: every provided buffer was in use; re-armed below once
            // this batch has recycled some. ECANCELED: we paused or closed.
        } else {
            self.driver.on_error(key);
            return;
        }
        if !more && self.driver.wants_input(key) {
            self.arm_recv(key);
        }
    }

    // ---- send ----

    fn start_send(&mut self, key: usize) {
        if !self.driver.contains(key) || self.slots[key].send_in_flight {
            return;
        }
        let (fd, generation) = (self.slots[key].raw_fd(), self.slots[key].generation);
        let Some(bytes) = self.driver.start_send(key) else {
            return;
        };
        // A send takes a u32 length; a longer queue leaves in several sends.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(Fd(fd), bytes.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(UserData::new(key as u32, generation, OpTag::Send).encode());
        let slot = &mut self.slots[key];
        slot.inflight += 1;
        slot.send_in_flight = true;
        // SAFETY: the bytes are the send queue's in-flight buffer, which the
        // driver does not touch until this send's CQE reaches it, and the
        // driver's slot is not released before (it counts in `inflight`).
        unsafe { self.push(entry) };
    }

    fn on_send(&mut self, key: usize, result: i32) {
        let slot = &mut self.slots[key];
        slot.inflight -= 1;
        slot.send_in_flight = false;
        if result < 0 {
            self.driver.on_send_failed(key);
        } else {
            self.driver.on_sent(key, result as usize);
        }
    }

    // ---- deadlines ----

    fn submit_timer(&mut self, key: usize, at: MonoTime) {
        if self.driver.is_closed(key) {
            return;
        }
        let slot = &mut self.slots[key];
        slot.timer_spec = timespec_at(at);
        slot.inflight += 1;
        slot.timer_armed = true;
        // ABS on CLOCK_MONOTONIC (the default clock): the kernel fires at the
        // deadline itself, not "now + relative" measured later.
        let entry = opcode::Timeout::new(&slot.timer_spec as *const Timespec)
            .flags(TimeoutFlags::ABS)
            .build()
            .user_data(UserData::new(key as u32, slot.generation, OpTag::Timer).encode());
        self.shared.counters.timer_submits.incr();
        // SAFETY: timer_spec lives in the slot, which never moves and is not
        // reused while this SQE is counted in `inflight`.
        unsafe { self.push(entry) };
    }

    fn update_timer(&mut self, key: usize, at: MonoTime) {
        if self.driver.is_closed(key) {
            return;
        }
        let slot = &mut self.slots[key];
        slot.update_spec = timespec_at(at);
        slot.inflight += 1;
        let target = UserData::new(key as u32, slot.generation, OpTag::Timer).encode();
        let entry = opcode::TimeoutUpdate::new(target, &slot.update_spec as *const Timespec)
            .flags(TimeoutFlags::ABS)
            .build()
            .user_data(UserData::new(key as u32, slot.generation, OpTag::TimerUpdate).encode());
        self.shared.counters.timer_updates.incr();
        // SAFETY: update_spec lives in the slot, which never moves and is
        // not reused while this SQE is counted in `inflight`.
        unsafe { self.push(entry) };
    }

    fn on_timer(&mut self, key: usize, result: i32) {
        let slot = &mut self.slots[key];
        slot.inflight -= 1;
        slot.timer_armed = false;
        if result == -libc::ETIME {
            // Never the batch's cached clock: see `Driver::on_timer_fired`.
            self.driver.on_timer_fired(key, mono_now());
        } else {
            // Removed or failed: no timer is pending any more.
            self.driver.on_timer_gone(key);
        }
    }

    // ---- close ----

    /// Submits a cancel for the operation `target` names. The cancel is
    /// counted in the slot's `inflight` like any other SQE that names it.
    fn cancel(&mut self, key: usize, target: u64) {
        let user_data = self.user_data(key, OpTag::Cancel);
        self.slots[key].inflight += 1;
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: a cancel points at no memory.
        unsafe { self.push(entry) };
    }

    /// Carries out a close the driver decided: FIN or reset, then cancel
    /// everything in flight. The fd itself is closed in `maybe_release`,
    /// once no queued or in-flight SQE names it: closing earlier would let
    /// a new socket take the number and receive this connection's queued
    /// send.
    fn close_conn(&mut self, key: usize, reset: bool, lingering: bool) {
        let fd = self.slots[key].raw_fd();
        if reset {
            if self.linger_through_ring {
                // Through the ring, so the resets of a burst of expiries
                // leave in one io_uring_enter like FINs do; the fd is closed
                // only after this SQE's CQE (it counts in `inflight`).
                let user_data = self.user_data(key, OpTag::Linger);
                self.slots[key].inflight += 1;
                let entry = opcode::SetSockOpt::new(
                    Fd(fd),
                    libc::SOL_SOCKET as u32,
                    libc::SO_LINGER as u32,
                    (&socket::LINGER_ZERO as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                )
                .build()
                .user_data(user_data);
                // SAFETY: the option value is a static; the fd stays open
                // until the slot is released, which waits for this SQE's CQE.
                unsafe { self.push(entry) };
            } else {
                socket::set_linger_zero(fd);
            }
        } else if !lingering {
            // FIN now (a lingering connection sent it already), by syscall
            // here. IORING_OP_SHUTDOWN is always punted to an io-wq kernel
            // thread, a hop per FIN that a burst of expiries pays thousands
            // of times over: at 5,000 slowloris expiries at once, overshoot
            // p99 median of 16 alternated rounds 47.5 ms by syscall against
            // 54.6 ms through the ring (p50 about 15 against 19 ms); opened
            // over 1 s with legit load, 4.51 against 4.95 ms (6 rounds).
            // BENCHMARKS.md, "Burst closes".
            socket::shutdown_write(fd);
        }
        let slot = &self.slots[key];
        let (recv_armed, send_in_flight, timer_armed) =
            (slot.recv_armed, slot.send_in_flight, slot.timer_armed);
        if recv_armed {
            let target = self.user_data(key, OpTag::Recv);
            self.cancel(key, target);
        }
        if send_in_flight {
            let target = self.user_data(key, OpTag::Send);
            self.cancel(key, target);
        }
        if timer_armed {
            let user_data = self.user_data(key, OpTag::TimerRemove);
            let target = self.user_data(key, OpTag::Timer);
            self.slots[key].inflight += 1;
            let entry = opcode::TimeoutRemove::new(target)
                .build()
                .user_data(user_data);
            // SAFETY: a timeout removal points at no memory.
            unsafe { self.push(entry) };
        }
        self.maybe_release(key);
    }

    /// Closes the fd and frees both halves of the slot once the driver has
    /// closed the connection and no SQE names it.
    fn maybe_release(&mut self, key: usize) {
        if !self.driver.contains(key) || !self.driver.is_closed(key) {
            return;
        }
        if self.slots[key].inflight > 0 {
            return;
        }
        if let Some(fd) = self.slots[key].fd.take() {
            self.close_socket(fd);
        }
        self.driver.release(key);
    }

    /// Closes a socket no SQE names any more (every operation on it has
    /// completed) through the ring, so a burst's closes leave in the next
    /// io_uring_enter instead of one syscall each. Only a failure posts a
    /// CQE. Measured at 5,000 header expiries at once (`ringwall-bench
    /// deadline --connections 5000 --open-over 0s --workers 2`, six
    /// alternating rounds): close-overshoot p99 median 136 ms against 230
    /// ms with `close(2)`, syscalls per expiry 0.97 against 1.29, CQEs per
    /// expiry 4 both.
    ///
    /// The slot is released at once: the close names the number, not the
    /// slot; no later SQE names the number (the slot's fd is gone), and no
    /// accept can be given it before the close has run.
    fn close_socket(&mut self, fd: OwnedFd) {
        if !self.close_through_ring {
            drop(fd);
            return;
        }
        let entry = opcode::Close::new(Fd(fd.into_raw_fd()))
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(UserData::worker(OpTag::Close).encode());
        // SAFETY: a close points at no memory; the fd was ours alone and is
        // owned by this SQE from here on.
        unsafe { self.push(entry) };
    }

    // ---- shutdown ----

    /// One read kept armed on the mailbox's eventfd: a burst of
    /// completions posted before the worker drains costs one CQE.
    fn arm_mailbox(&mut self) {
        let entry = opcode::Read::new(
            Fd(self.mailbox.fd()),
            (&mut *self.mailbox_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(UserData::worker(OpTag::Mailbox).encode());
        // SAFETY: mailbox_buf is boxed in the worker and outlives the ring;
        // the eventfd is owned by the mailbox, which the worker holds.
        unsafe { self.push(entry) };
    }

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(
            Fd(self.wake_fd.as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(UserData::worker(OpTag::Wake).encode());
        // SAFETY: wake_buf is boxed in the worker and outlives the ring
        // (`Worker`'s `Drop`); so does the eventfd, which the worker co-owns.
        unsafe { self.push(entry) };
    }

    /// Stop accepting, close idle connections, let in-flight requests finish
    /// within `shutdown_timeout`.
    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let handing_over = self.shared.hand_over.load(Ordering::Acquire);
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
        // queued accept SQE can name a reused number.
        // A socket handed over to a successor is shared the same way.
        for listener in &mut self.listeners {
            listener.inherited |= handing_over;
            if !listener.inherited {
                socket::stop_listening(listener.fd.as_raw_fd());
            }
        }
        let entry = opcode::Timeout::new(&*self.shutdown_spec as *const Timespec)
            .build()
            .user_data(UserData::worker(OpTag::ShutdownTimer).encode());
        // SAFETY: shutdown_spec is boxed in the worker and outlives the ring.
        unsafe { self.push(entry) };
        self.driver.begin_shutdown(handing_over);
    }
}

impl<H: Handler> Plumbing<H> for Worker<H> {
    fn driver(&mut self) -> &mut Driver<H> {
        &mut self.driver
    }

    fn set_reading(&mut self, key: usize, on: bool) {
        if on {
            self.arm_recv(key);
        } else if self.driver.contains(key) && self.slots[key].recv_armed {
            let target = self.user_data(key, OpTag::Recv);
            self.cancel(key, target);
        }
    }

    fn send(&mut self, key: usize) {
        self.start_send(key);
    }

    fn set_timer(&mut self, key: usize, action: TimerAction) {
        match action {
            TimerAction::Submit(at) => self.submit_timer(key, at),
            TimerAction::Update(at) => self.update_timer(key, at),
            TimerAction::Nothing => {}
        }
    }

    fn fd(&self, key: usize) -> RawFd {
        self.slots[key].raw_fd()
    }

    fn take_socket(&mut self, key: usize) -> Option<OwnedFd> {
        self.slots[key].fd.take()
    }

    fn close(&mut self, key: usize, reset: bool, lingering: bool) {
        self.close_conn(key, reset, lingering);
    }
}

fn timespec_at(t: MonoTime) -> Timespec {
    let (secs, nanos) = t.secs_nanos();
    Timespec::new().sec(secs).nsec(nanos)
}
