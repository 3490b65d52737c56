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
mod operations;
mod ring;
mod sqe_sink;
pub(crate) mod user_data;

pub(crate) use super::{WorkerSetup, WorkerShared};
pub(crate) use ring::probe;
use ring::{build_ring, timespec_at};
use sqe_sink::SqeSink;

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use io_uring::types::{Fd, TimeoutFlags, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use ringwall_timers::{MonoTime, TimerAction};

use crate::app::deferred::{Completion, Mailbox};
use crate::app::handler::Handler;
use crate::backend::uring::buf_ring::ProvidedBufRing;
use crate::backend::uring::user_data::{OpTag, UserData, NO_SLOT};
use crate::backend::{fatal_wait_error, place_slot, Plumbing, ACCEPT_BACKOFF};
use crate::driver::Driver;
use crate::error::UringUnavailable;
use crate::ops::stats::{CloseReason, WorkerCounters};
use crate::sys::clock::{mono_now, unix_secs};
use crate::sys::socket::{self, Listener};

/// Provided-buffer group id of every worker's receive ring (one per ring).
const RECV_BUFFER_GROUP: u16 = 0;
/// `IORING_ENTER_GETEVENTS`: a non-waiting enter still needs it, or the
/// deferred task work (DEFER_TASKRUN) that posts completions never runs.
const ZERO_WAIT: Timespec = Timespec::new();

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
