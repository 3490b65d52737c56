//! Each operation the worker arms (accept, recv, send, the timer, cancel,
//! close, the mailbox and wake reads) and what its completion does, called
//! from the one dispatch in `mod.rs`.

use super::*;

impl<H: Handler> Worker<H> {
    /// A relative one-second timeout: the pool is checked even on a worker
    /// that no completion wakes.
    pub(super) fn arm_pool_timer(&mut self) {
        self.pool_timer_armed = true;
        let entry = opcode::Timeout::new(&*self.pool_tick_spec as *const Timespec)
            .build()
            .user_data(UserData::worker(OpTag::PoolTimer).encode());
        // SAFETY: pool_tick_spec is boxed in the worker and outlives the ring.
        unsafe { self.push(entry) };
    }

    // ---- what the driver asks for ----

    // ---- accept ----

    pub(super) fn arm_accept(&mut self, index: usize) {
        let entry = opcode::AcceptMulti::new(Fd(self.listeners[index].fd.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(UserData::new(index as u32, 0, OpTag::Accept).encode());
        self.accepts_armed += 1;
        // SAFETY: multishot accept without an address buffer points at no memory.
        unsafe { self.push(entry) };
    }

    pub(super) fn on_accept(&mut self, listener: usize, result: i32, more: bool) {
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

    pub(super) fn arm_recv(&mut self, key: usize) {
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

    pub(super) fn on_recv(&mut self, key: usize, result: i32, flags: u32, more: bool) {
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

    pub(super) fn start_send(&mut self, key: usize) {
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

    pub(super) fn on_send(&mut self, key: usize, result: i32) {
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

    pub(super) fn submit_timer(&mut self, key: usize, at: MonoTime) {
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

    pub(super) fn update_timer(&mut self, key: usize, at: MonoTime) {
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

    pub(super) fn on_timer(&mut self, key: usize, result: i32) {
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
    pub(super) fn cancel(&mut self, key: usize, target: u64) {
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
    pub(super) fn close_conn(&mut self, key: usize, reset: bool, lingering: bool) {
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
    pub(super) fn maybe_release(&mut self, key: usize) {
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
    pub(super) fn close_socket(&mut self, fd: OwnedFd) {
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
    pub(super) fn arm_mailbox(&mut self) {
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

    pub(super) fn arm_wake(&mut self) {
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
    pub(super) fn begin_shutdown(&mut self) {
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
        socket::stop_accepting(&mut self.listeners, handing_over);
        let entry = opcode::Timeout::new(&*self.shutdown_spec as *const Timespec)
            .build()
            .user_data(UserData::worker(OpTag::ShutdownTimer).encode());
        // SAFETY: shutdown_spec is boxed in the worker and outlives the ring.
        unsafe { self.push(entry) };
        self.driver.begin_shutdown(handing_over);
    }
}
