//! What both backends share around the driver: reading its actions, and
//! admitting an accepted socket. The connection logic itself is the
//! driver's; this is only the glue every backend would otherwise repeat.

pub(crate) mod epoll;
pub(crate) mod uring;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use ringwall_timers::TimerAction;

use crate::app::deferred::Mailbox;
use crate::app::handler::Handler;
use crate::config::Config;
use crate::driver::conn_cap::ConnCap;
use crate::driver::per_ip::PerIpCap;
use crate::driver::{Action, Admission, CloseMode, Driver, DriverShared};
use crate::ops::stats::WorkerCounters;
use crate::sys::socket::{self, Listener};

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

    /// Counts an accepted socket and asks the driver for a slot, reading
    /// the peer's address first only when the per-address cap needs it.
    /// A refused socket gets its best-effort 503 (one non-blocking send:
    /// whatever does not fit now is dropped) and is closed here, by the
    /// drop: nothing ever named it in flight.
    fn admit_socket(&mut self, fd: OwnedFd) -> Option<AdmittedSocket> {
        self.driver().counters().accepted.incr();
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

    /// Takes `key`'s socket out of its slot (to shut down and drop it).
    fn take_socket(&mut self, key: usize) -> Option<OwnedFd>;

    /// When the worker's loop has ended: closes `listeners`, releases the
    /// connections left (normally none; after a fatal error, so that the
    /// descriptors, the cap and the counters do not leak), and closes the
    /// mailbox, so that responders still held elsewhere post into nothing.
    fn wind_down(&mut self, listeners: Vec<socket::Listener>) {
        socket::close_listeners(listeners);
        for key in self.driver().release_all() {
            if let Some(fd) = self.take_socket(key) {
                socket::shutdown_write(fd.as_raw_fd());
                // Closed here, by the drop.
            }
        }
        self.driver().close_mailbox();
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
                        self.driver().counters().resets.incr();
                    }
                    self.close(key, reset, lingering)
                }
            }
        }
    }
}

/// Logs the error that ends a worker's loop (`call`: the wait that failed)
/// and gives it back, for `run` to return.
pub(crate) fn fatal_wait_error(worker: usize, call: &'static str, error: io::Error) -> io::Error {
    crate::ops::log::error!(
        worker,
        call,
        error = %error,
        "the worker's wait failed; the worker stops and the server shuts down"
    );
    error
}

/// Puts a backend's per-connection slot at the driver's `key`. The driver's
/// keys are dense from 0 (a slab), so a key never seen before is the next
/// index; a key seen before replaces its earlier occupant, whose socket the
/// backend has already closed.
pub(crate) fn place_slot<T>(slots: &mut Vec<T>, key: usize, slot: T) {
    if key == slots.len() {
        slots.push(slot);
    } else {
        slots[key] = slot;
    }
}

/// Pause before re-arming accept after EMFILE and friends.
pub(crate) const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

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
