//! The epoll backend, for where io_uring is refused (container seccomp
//! profiles, `kernel.io_uring_disabled`, gVisor): the same [`Driver`], so
//! the same HTTP handling, deadlines, limits, counters and shutdown as the
//! io_uring worker; only the plumbing differs.
//!
//! ```text
//!   listener readable ──► accept4 (non-blocking) ──► Driver::admit
//!   socket readable ────► recv ──► Driver::on_bytes / on_eof
//!   socket writable ────► send ──► Driver::on_sent (or blocked: wait for EPOLLOUT)
//!   timerfd readable ───► every due deadline ──► Driver::on_timer_fired (fresh now)
//! ```
//!
//! Deadlines: one timerfd per worker (CLOCK_MONOTONIC, `TFD_TIMER_ABSTIME`),
//! always set to the earliest pending connection timer, which a binary
//! heap keeps. The alternative, one timerfd per connection (closest to the
//! ring's one `IORING_OP_TIMEOUT` each), costs a descriptor, a
//! `timerfd_create`, an `epoll_ctl` and a `close` per connection, and a
//! `timerfd_settime` per deadline change, where the heap costs a
//! `timerfd_settime` only when the earliest deadline of the worker moves;
//! the kernel fires both at the same absolute time, and a burst of expiries
//! is one wake here instead of one per connection.
//!
//! Level-triggered epoll: a readable socket is read once per wake (one
//! `recv` of up to `recv_buffer_size`), so one busy connection cannot hold
//! the worker; what is left is reported again by the next `epoll_wait`.

mod plumbing;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ringwall_timers::{MonoTime, TimerAction};

use crate::app::deferred::{Completion, Mailbox};
use crate::app::handler::Handler;
use crate::backend::{fatal_wait_error, place_slot, Plumbing};
use crate::backend::{WorkerSetup, WorkerShared, ACCEPT_BACKOFF};
use crate::driver::Driver;
use crate::ops::stats::CloseReason;
use crate::sys::clock::{mono_now, unix_secs};
use crate::sys::cvt;
use crate::sys::socket::{self, Listener};

/// Events one `epoll_wait` returns at most.
const EVENTS_PER_WAIT: usize = 256;
/// Connections one listener wake accepts at most, so an accept storm
/// cannot starve the sockets already open.
const ACCEPTS_PER_WAKE: usize = 64;
/// Pause before accepting again after EMFILE and friends.
/// Events handled between two looks at the deadline heap within a turn.
const TIMER_CHECK_EVERY: usize = 32;
/// How often the large-buffer pool is checked while it holds memory.
const POOL_TICK: Duration = Duration::from_secs(1);

/// `epoll_event.u64` of the worker's own descriptors; a connection's is
/// its key and generation, neither of which reaches these values.
const TOKEN_WAKE: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;
const TOKEN_MAILBOX: u64 = u64::MAX - 2;
/// Listener `i` is `TOKEN_LISTENER_BASE - i`.
const TOKEN_LISTENER_BASE: u64 = u64::MAX - 3;
/// Above any connection token: slot keys are u32 and live in the low half.
const FIRST_WORKER_TOKEN: u64 = u64::MAX - 1024;

fn conn_token(key: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | key as u64
}

/// What the epoll side keeps per connection, beside the driver's slot.
struct Slot {
    /// The socket; `None` once closed. Nothing is in flight on this
    /// backend, so it is closed (dropped) as soon as the driver decides.
    fd: Option<OwnedFd>,
    generation: u32,
    /// The events epoll watches for on `fd`.
    interest: u32,
    /// A send found the socket's buffer full: wait for EPOLLOUT.
    send_blocked: bool,
    /// The pending timer's due time, the driver's one kernel timer.
    /// Heap entries that do not match it are stale and skipped.
    timer_due: Option<MonoTime>,
}

impl Slot {
    /// The socket's number for a syscall. A closed slot's is -1, which the
    /// kernel refuses (EBADF) rather than mistaking for a socket that took
    /// the number since.
    fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

pub(crate) struct EpollWorker<H: Handler> {
    /// This worker's number, as in its thread's name, for events.
    index: usize,
    epoll_fd: OwnedFd,
    timer_fd: OwnedFd,
    /// Shared with the server's stop path, which signals it: it stays open
    /// until both are done with it, so a signal never reaches a number
    /// that was closed and reused.
    wake_fd: Arc<OwnedFd>,
    driver: Driver<H>,
    slots: Vec<Slot>,
    /// Pending connection timers, earliest first: (due, key, generation).
    timers: BinaryHeap<Reverse<(MonoTime, usize, u32)>>,
    /// What the timerfd is set to, if anything.
    timer_fd_due: Option<MonoTime>,
    listeners: Vec<Listener>,
    /// Listeners not watched for a while after an accept error, and when
    /// they are watched again.
    accept_paused_until: Option<MonoTime>,
    recv_buffer: Vec<u8>,
    /// Deferred answers from other threads.
    mailbox: Arc<Mailbox>,
    completions: Vec<Completion>,
    events: Vec<libc::epoll_event>,
    shared: WorkerShared,
    shutting_down: bool,
    shutdown_deadline: Option<MonoTime>,
    shutdown_timeout: Duration,
    next_pool_tick: Option<MonoTime>,
}

impl<H: Handler> EpollWorker<H> {
    pub fn new(setup: WorkerSetup<H>) -> Result<Self, crate::StartError> {
        let config = setup.config;
        let index = setup.index;
        let (listeners, handler, shared) = (setup.listeners, setup.handler, setup.shared);
        // SAFETY: plain epoll_create1 call; the result is checked.
        let epoll_fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
            .map_err(crate::StartError::Worker)?;
        // SAFETY: epoll_create1 just returned this descriptor; nothing else owns it.
        let epoll_fd = unsafe { OwnedFd::from_raw_fd(epoll_fd) };
        // SAFETY: plain timerfd_create call; the result is checked.
        let timer_fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })
        .map_err(crate::StartError::Worker)?;
        // SAFETY: timerfd_create just returned this descriptor; nothing else owns it.
        let timer_fd = unsafe { OwnedFd::from_raw_fd(timer_fd) };
        let wake_fd = Arc::new(socket::eventfd().map_err(crate::StartError::Worker)?);
        let mailbox = Arc::new(Mailbox::new().map_err(crate::StartError::Worker)?);
        let driver_shared = shared.for_driver(index, Arc::clone(&mailbox));
        let worker = EpollWorker {
            index,
            epoll_fd,
            timer_fd,
            wake_fd,
            slots: Vec::new(),
            timers: BinaryHeap::new(),
            timer_fd_due: None,
            accept_paused_until: None,
            recv_buffer: vec![0; config.recv_buffer_size as usize],
            mailbox,
            completions: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT],
            shutting_down: false,
            shutdown_deadline: None,
            shutdown_timeout: config.shutdown_timeout,
            next_pool_tick: None,
            listeners,
            driver: Driver::new(config, handler, driver_shared, mono_now(), unix_secs()),
            shared,
        };
        let setup = || -> io::Result<()> {
            worker.watch(worker.wake_fd.as_raw_fd(), libc::EPOLLIN as u32, TOKEN_WAKE)?;
            worker.watch(
                worker.timer_fd.as_raw_fd(),
                libc::EPOLLIN as u32,
                TOKEN_TIMER,
            )?;
            worker.watch(worker.mailbox.fd(), libc::EPOLLIN as u32, TOKEN_MAILBOX)?;
            for (i, listener) in worker.listeners.iter().enumerate() {
                // Non-blocking: several workers may wake for one connection
                // on a shared (inherited) socket, and the losers must not
                // block in accept.
                socket::set_nonblocking(listener.fd.as_raw_fd())?;
                worker.watch(
                    listener.fd.as_raw_fd(),
                    libc::EPOLLIN as u32,
                    TOKEN_LISTENER_BASE - i as u64,
                )?;
            }
            Ok(())
        };
        // On error `worker` drops, closing every descriptor it owns: the
        // wake fd is handed to the server only on success.
        setup().map_err(crate::StartError::Worker)?;
        Ok(worker)
    }

    pub fn wake_fd(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.wake_fd)
    }

    fn watch(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.epoll_ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    fn unwatch(epoll_fd: RawFd, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `event` is a live epoll_event (ignored by EPOLL_CTL_DEL).
        cvt(unsafe { libc::epoll_ctl(epoll_fd, libc::EPOLL_CTL_DEL, fd, &mut event) }).map(|_| ())
    }

    fn epoll_ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a live epoll_event; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.epoll_fd.as_raw_fd(), op, fd, &mut event) }).map(|_| ())
    }

    /// Runs until shutdown has closed every connection, or until
    /// `epoll_wait` fails: then it releases every connection and returns
    /// that error.
    pub fn run(mut self) -> io::Result<()> {
        let mut fatal = None;
        if self.shared.shutdown.load(Ordering::Acquire) {
            self.begin_shutdown();
        }
        loop {
            if self.shutting_down && self.driver.is_empty() {
                break;
            }
            let timeout_ms = self.wait_timeout_ms();
            self.shared.counters.ring_enters.incr();
            // SAFETY: `events` is a live buffer of `events.len()` entries,
            // which the kernel fills at most.
            let ready = unsafe {
                libc::epoll_wait(
                    self.epoll_fd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    timeout_ms,
                )
            };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                fatal = Some(fatal_wait_error(self.index, "epoll_wait", e));
                break;
            }
            let now = mono_now();
            self.driver.set_clock(now, unix_secs());
            // Deadlines first: a connection's backlog never delays them.
            if self.timer_fd_due.is_some_and(|due| due <= now) {
                self.fire_due_timers();
            }
            for i in 0..ready as usize {
                // A long turn (a recv and a send syscall per ready
                // connection) must not hold deadlines that fall due during
                // it: look every few dozen events, one clock read each.
                if i % TIMER_CHECK_EVERY == TIMER_CHECK_EVERY - 1 {
                    let due_now = self.timers.peek().map(|Reverse((at, _, _))| *at);
                    if due_now.is_some_and(|at| at <= mono_now()) {
                        self.fire_due_timers();
                    }
                }
                let event = self.events[i];
                self.dispatch(event.u64, event.events);
            }
            self.on_worker_deadlines();
            if self.driver.has_ready() {
                self.driver.serve_ready();
                self.carry_out();
            }
            self.arm_timer_fd();
        }
        let listeners = std::mem::take(&mut self.listeners);
        self.wind_down(listeners);
        fatal.map_or(Ok(()), Err)
    }

    /// How long `epoll_wait` may block: not at all with connections waiting
    /// for their turn; else until the next worker deadline (shutdown grace,
    /// accept backoff, pool tick). Connection deadlines wake it through
    /// the timerfd, at kernel precision.
    fn wait_timeout_ms(&self) -> libc::c_int {
        if self.driver.has_ready() {
            return 0;
        }
        let next = [
            self.shutdown_deadline,
            self.accept_paused_until,
            self.next_pool_tick,
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            None => -1,
            Some(at) => {
                let wait = at.saturating_duration_since(mono_now());
                // Rounded up: waking a millisecond early would spin.
                wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        }
    }

    /// The one place every readiness event is handled.
    fn dispatch(&mut self, token: u64, events: u32) {
        match token {
            TOKEN_WAKE => {
                let mut value = 0u64;
                // SAFETY: reads 8 bytes into a live u64 from the eventfd.
                unsafe { libc::read(self.wake_fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
                self.begin_shutdown();
            }
            TOKEN_MAILBOX => {
                let mut count = 0u64;
                // SAFETY: reads 8 bytes into a live u64 from the eventfd.
                unsafe { libc::read(self.mailbox.fd(), (&mut count as *mut u64).cast(), 8) };
                self.mailbox.take(&mut self.completions);
                self.driver.on_completions(&mut self.completions);
            }
            TOKEN_TIMER => {
                let mut expirations = 0u64;
                // SAFETY: reads 8 bytes into a live u64 from the timerfd.
                unsafe {
                    libc::read(
                        self.timer_fd.as_raw_fd(),
                        (&mut expirations as *mut u64).cast(),
                        8,
                    )
                };
                self.fire_due_timers();
            }
            token if token >= FIRST_WORKER_TOKEN => {
                let index = (TOKEN_LISTENER_BASE - token) as usize;
                self.accept_from(index);
            }
            token => {
                let key = (token & u64::from(u32::MAX)) as usize;
                let generation = (token >> 32) as u32;
                if !self.driver.is_current(key, generation) {
                    self.shared.counters.stale_completions.incr();
                    return;
                }
                let error = events & (libc::EPOLLERR as u32) != 0;
                if events & (libc::EPOLLOUT as u32) != 0 || error {
                    self.on_writable(key);
                }
                if events & (libc::EPOLLIN as u32 | libc::EPOLLHUP as u32) != 0 || error {
                    self.on_readable(key);
                }
            }
        }
        self.carry_out();
    }

    // ---- what the driver asks for ----

    fn set_interest(&mut self, key: usize, interest: u32) {
        let slot = &mut self.slots[key];
        if slot.interest == interest {
            return;
        }
        slot.interest = interest;
        let (fd, token) = (slot.raw_fd(), conn_token(key, slot.generation));
        // A failure leaves the old interest: the socket is gone or broken,
        // and its next read or send fails and closes it.
        let _ = self.epoll_ctl(libc::EPOLL_CTL_MOD, fd, interest, token);
    }

    // ---- accept ----

    fn accept_from(&mut self, index: usize) {
        if self.shutting_down || index >= self.listeners.len() {
            return;
        }
        let listener = self.listeners[index].fd.as_raw_fd();
        for _ in 0..ACCEPTS_PER_WAKE {
            // SAFETY: accept4 without an address buffer; the result is checked.
            let fd = unsafe {
                libc::accept4(
                    listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            // A connection accepted late in a long turn arrived after the
            // turn's clock read: its header deadline must start from now,
            // or it would be closed early (measured: up to 124 of 1,000
            // slowloris connections per round, before this).
            self.driver.set_clock(mono_now(), unix_secs());
            if fd < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    // The peer left before we took it: nothing to do.
                    Some(libc::ECONNABORTED) => continue,
                    _ => {
                        // EMFILE and friends would fail again at once: back off.
                        self.shared.counters.accept_errors.incr();
                        self.pause_accepting();
                    }
                }
                return;
            }
            // SAFETY: accept4 just returned this descriptor; nothing else
            // owns or closes it.
            self.admit(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    fn admit(&mut self, fd: OwnedFd) {
        let Some(admitted) = self.admit_socket(fd) else {
            return;
        };
        let (key, generation) = (admitted.key, admitted.generation);
        let raw = admitted.fd.as_raw_fd();
        let slot = Slot {
            fd: Some(admitted.fd),
            generation,
            interest: 0,
            send_blocked: false,
            timer_due: None,
        };
        place_slot(&mut self.slots, key, slot);
        // Registered with no events; the driver's Read turns reading on.
        if self.watch(raw, 0, conn_token(key, generation)).is_err() {
            self.driver.on_error(key);
        }
        self.carry_out();
    }

    fn pause_accepting(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        self.accept_paused_until = Some(mono_now().saturating_add(ACCEPT_BACKOFF));
        for listener in &self.listeners {
            let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, listener.fd.as_raw_fd(), 0, 0);
        }
    }

    /// Shutdown grace, accept backoff and pool tick, when due.
    fn on_worker_deadlines(&mut self) {
        let now = mono_now();
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.accept_paused_until = None;
            if !self.shutting_down {
                for (i, listener) in self.listeners.iter().enumerate() {
                    let _ = self.watch(
                        listener.fd.as_raw_fd(),
                        libc::EPOLLIN as u32,
                        TOKEN_LISTENER_BASE - i as u64,
                    );
                }
            }
        }
        if self.shutdown_deadline.is_some_and(|at| at <= now) {
            self.shutdown_deadline = None;
            self.driver.close_all(CloseReason::Shutdown);
            self.carry_out();
        }
        match self.next_pool_tick {
            Some(at) if at <= now => {
                let _ = self.driver.tick_pools();
                self.next_pool_tick = None;
            }
            _ => {}
        }
        if self.next_pool_tick.is_none() && self.driver.pools_hold_memory() {
            self.next_pool_tick = Some(now.saturating_add(POOL_TICK));
        }
    }

    // ---- receive ----

    fn on_readable(&mut self, key: usize) {
        if !self.driver.contains(key) || self.slots[key].interest & libc::EPOLLIN as u32 == 0 {
            return;
        }
        let fd = self.slots[key].raw_fd();
        // SAFETY: `recv_buffer` is a live buffer of its length.
        let n = unsafe {
            libc::recv(
                fd,
                self.recv_buffer.as_mut_ptr().cast(),
                self.recv_buffer.len(),
                0,
            )
        };
        if n > 0 {
            self.driver.on_bytes(key, &self.recv_buffer[..n as usize]);
        } else if n == 0 {
            // EOF stays readable: stop watching it before anything else.
            self.set_reading(key, false);
            self.driver.on_eof(key);
        } else {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                self.driver.on_error(key);
            }
        }
        if self.driver.contains(key) && !self.driver.wants_input(key) {
            self.set_reading(key, false);
        }
    }

    // ---- send ----

    fn on_writable(&mut self, key: usize) {
        if !self.driver.contains(key) || !self.slots[key].send_blocked {
            return;
        }
        self.slots[key].send_blocked = false;
        let interest = self.slots[key].interest & !(libc::EPOLLOUT as u32);
        self.set_interest(key, interest);
        self.send(key);
    }

    // ---- deadlines ----

    /// The driver's one timer for `key`, due at `at` (a Submit or an
    /// Update: either way the earlier entry, if any, is stale now).
    fn set_timer_due(&mut self, key: usize, at: MonoTime) {
        if self.driver.is_closed(key) {
            return;
        }
        let slot = &mut self.slots[key];
        let update = slot.timer_due.is_some();
        slot.timer_due = Some(at);
        self.timers.push(Reverse((at, key, slot.generation)));
        if update {
            self.shared.counters.timer_updates.incr();
        } else {
            self.shared.counters.timer_submits.incr();
        }
        // Stale entries (moved or closed timers) wait in the heap until
        // their time; rebuild it when they outnumber the live ones.
        if self.timers.len() > 2 * self.slots.len() + 1024 {
            let slots = &self.slots;
            let driver = &self.driver;
            self.timers.retain(|Reverse((at, key, generation))| {
                driver.is_current(*key, *generation) && slots[*key].timer_due == Some(*at)
            });
        }
    }

    /// Fires every connection timer that is due, with the clock read now.
    fn fire_due_timers(&mut self) {
        let now = mono_now();
        while let Some(&Reverse((at, key, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.driver.is_current(key, generation) || self.slots[key].timer_due != Some(at) {
                continue;
            }
            self.slots[key].timer_due = None;
            self.driver.on_timer_fired(key, now);
            self.carry_out();
        }
        self.timer_fd_due = None;
    }

    /// Sets the timerfd to the earliest live connection timer.
    fn arm_timer_fd(&mut self) {
        while let Some(&Reverse((at, key, generation))) = self.timers.peek() {
            if self.driver.is_current(key, generation) && self.slots[key].timer_due == Some(at) {
                break;
            }
            self.timers.pop();
        }
        let next = self.timers.peek().map(|Reverse((at, _, _))| *at);
        if next == self.timer_fd_due {
            return;
        }
        self.timer_fd_due = next;
        let (secs, nanos) = next.map_or((0, 0), MonoTime::secs_nanos);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            // All zero disarms.
            it_value: libc::timespec {
                tv_sec: secs as libc::time_t,
                tv_nsec: nanos as libc::c_long,
            },
        };
        // SAFETY: `spec` is a live itimerspec; no old value is asked for.
        unsafe {
            libc::timerfd_settime(
                self.timer_fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
    }

    // ---- close ----

    // ---- shutdown ----

    /// Stop accepting, close idle connections, let in-flight requests
    /// finish within `shutdown_timeout`.
    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let handing_over = self.shared.hand_over.load(Ordering::Acquire);
        for listener in &self.listeners {
            let _ = Self::unwatch(self.epoll_fd.as_raw_fd(), listener.fd.as_raw_fd());
        }
        socket::stop_accepting(&mut self.listeners, handing_over);
        self.shutdown_deadline = Some(mono_now().saturating_add(self.shutdown_timeout));
        self.driver.begin_shutdown(handing_over);
        self.carry_out();
    }
}
