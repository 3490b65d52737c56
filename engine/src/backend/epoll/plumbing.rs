//! What the shared plumbing (`crate::backend::Plumbing`) asks of the epoll
//! worker: its per-slot table, reads, sends and the close sequence.

use super::*;

impl<H: Handler> Plumbing<H> for EpollWorker<H> {
    fn driver(&mut self) -> &mut Driver<H> {
        &mut self.driver
    }

    fn set_reading(&mut self, key: usize, on: bool) {
        if self.driver.is_closed(key) {
            return;
        }
        let interest = self.slots[key].interest;
        let interest = if on {
            interest | libc::EPOLLIN as u32
        } else {
            interest & !(libc::EPOLLIN as u32)
        };
        self.set_interest(key, interest);
    }

    fn send(&mut self, key: usize) {
        if !self.driver.contains(key) || self.slots[key].send_blocked {
            return;
        }
        let fd = self.slots[key].raw_fd();
        let Some(bytes) = self.driver.start_send(key) else {
            return;
        };
        // SAFETY: `bytes` is a live slice of its length.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // A short send queues another Send; it finds the buffer full
            // and waits for EPOLLOUT.
            self.driver.on_sent(key, n as usize);
            return;
        }
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
            self.driver.on_send_blocked(key);
            self.slots[key].send_blocked = true;
            let interest = self.slots[key].interest | libc::EPOLLOUT as u32;
            self.set_interest(key, interest);
        } else {
            self.driver.on_send_failed(key);
        }
    }

    fn set_timer(&mut self, key: usize, action: TimerAction) {
        if let TimerAction::Submit(at) | TimerAction::Update(at) = action {
            self.set_timer_due(key, at);
        }
    }

    fn fd(&self, key: usize) -> RawFd {
        self.slots[key].raw_fd()
    }

    fn take_socket(&mut self, key: usize) -> Option<OwnedFd> {
        self.slots[key].fd.take()
    }

    /// Carries out a close the driver decided: FIN or reset, then close.
    /// Nothing is in flight on this backend, so the slot is released at once.
    fn close(&mut self, key: usize, reset: bool, lingering: bool) {
        let fd = self.slots[key].raw_fd();
        if reset {
            socket::set_linger_zero(fd);
        } else if !lingering {
            socket::shutdown_write(fd);
        }
        self.slots[key].timer_due = None;
        // Closing (dropping) the only descriptor of the socket removes it
        // from epoll.
        drop(self.slots[key].fd.take());
        self.driver.release(key);
    }
}
