//! What both backends share around the driver: reading its actions, and
//! admitting an accepted socket. The connection logic itself is the
//! driver's; this is only the glue every backend would otherwise repeat.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use ringwall_timers::TimerAction;

use crate::driver::{Action, Admission, CloseMode, Driver};
use crate::handler::Handler;
use crate::socket;
use crate::stats::WorkerCounters;

/// An accepted socket the driver gave a slot, for the backend's slot of
/// the same key to own.
pub(crate) struct AdmittedSocket {
    pub key: usize,
    pub generation: u32,
    pub fd: OwnedFd,
}

/// What a backend does for the driver's [`Action`]s; [`Plumbing::carry_out`]
/// is the one place actions are read, for every backend.
pub(crate) trait Plumbing<H: Handler> {
    fn driver(&mut self) -> &mut Driver<H>;
    /// Start (`on`) or stop reading `key`'s socket.
    fn set_reading(&mut self, key: usize, on: bool);
    /// Send what `key` has queued, unless a send is in flight.
    fn send(&mut self, key: usize);
    /// Program `key`'s one kernel timer.
    fn set_timer(&mut self, key: usize, action: TimerAction);
    /// `key`'s socket.
    fn fd(&self, key: usize) -> RawFd;
    /// Close `key`: a reset (SO_LINGER {1, 0}) or a FIN (skipped when
    /// `lingering`: sent already), then drop the socket once nothing in
    /// flight names it, then [`Driver::release`].
    fn close(&mut self, key: usize, reset: bool, lingering: bool);

    fn counters(&self) -> &WorkerCounters;

    /// Counts an accepted socket and asks the driver for a slot, reading
    /// the peer's address first only when the per-address cap needs it.
    /// A refused socket gets its best-effort 503 (one non-blocking send:
    /// whatever does not fit now is dropped) and is closed here, by the
    /// drop: nothing ever named it in flight.
    fn admit_socket(&mut self, fd: OwnedFd) -> Option<AdmittedSocket> {
        self.counters().accepted.incr();
        let raw = fd.as_raw_fd();
        let peer = if self.driver().needs_peer_on_accept() {
            socket::peer_addr(raw)
        } else {
            None
        };
        match self.driver().admit(raw, peer) {
            Admission::Admitted { key, generation } => Some(AdmittedSocket {
                key,
                generation,
                fd,
            }),
            Admission::Refused => {
                socket::send_nonblocking(raw, self.driver().refusal());
                None
            }
            Admission::Dropped => None,
        }
    }

    /// Carries out every action the driver has queued, in order.
    fn carry_out(&mut self) {
        while let Some(action) = self.driver().next_action() {
            match action {
                Action::Read(key) => self.set_reading(key, true),
                Action::StopReading(key) => self.set_reading(key, false),
                Action::Send(key) => self.send(key),
                Action::Timer(_, TimerAction::Nothing) => {}
                Action::Timer(key, timer) => self.set_timer(key, timer),
                Action::ShutdownWrite(key) => {
                    if self.driver().contains(key) {
                        socket::shutdown_write(self.fd(key))
                    }
                }
                Action::Close {
                    key,
                    mode,
                    lingering,
                } => {
                    let reset = match mode {
                        CloseMode::Fin => false,
                        CloseMode::Reset => true,
                        CloseMode::ResetIfUnacked => {
                            let reset = socket::unacked_bytes(self.fd(key)) > 0;
                            self.driver().count_forced_close(key, reset);
                            reset
                        }
                    };
                    if reset {
                        self.counters().resets.incr();
                    }
                    self.close(key, reset, lingering)
                }
            }
        }
    }
}
