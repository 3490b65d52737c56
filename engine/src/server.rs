//! Starting workers, and the handle that stops them.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crossbeam_utils::CachePadded;

use crate::app::handler::Handler;
use crate::backend::epoll::EpollWorker;
use crate::backend::uring::{Worker, WorkerSetup, WorkerShared};
use crate::config::{Backend, Config, ServerBuilder};
use crate::driver::conn_cap::ConnCap;
use crate::driver::per_ip::PerIpCap;
use crate::error::{ServeError, StartError, UringUnavailable, WorkerFailure};
use crate::ops::stats::{Stats, WorkerCounters};
use crate::sys::socket::{self, Listener};
use ringwall_timers::MinRate;

/// A configured server, ready to [`serve`](Server::serve).
#[derive(Debug)]
pub struct Server {
    pub(crate) config: Config,
    /// Sockets from `ServerBuilder::listen_fd`; closed when `serve` returns,
    /// after each worker has its own dup.
    pub(crate) inherited: Vec<Arc<OwnedFd>>,
}

impl Server {
    /// A builder with every setting at its default.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The validated settings this server will run with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Binds every address, starts the workers and returns once all are
    /// accepting. Each worker gets its own `SO_REUSEPORT` listener per
    /// address; with port 0 the first bind picks the port and the rest share it.
    /// An address another socket already listens on is refused
    /// ([`StartError::AddrInUse`]) unless [`ServerBuilder::reuse_port`] is on.
    /// Each socket passed with `listen_fd` is checked and dup'd once per
    /// worker (ARCHITECTURE.md, Engine invariants); its addresses follow the
    /// bound ones in [`ServerHandle::local_addrs`].
    pub fn serve<H: Handler>(self, handler: H) -> Result<ServerHandle, StartError> {
        socket::raise_nofile_limit();
        socket::presize_fd_table(self.config.max_connections);
        if self.config.return_memory_to_os {
            crate::sys::malloc::return_large_buffers_to_os();
        }
        let (backend, fallback) = choose_backend(self.config.backend)?;
        let workers = self.config.workers;
        // On an early return these drop, which closes them and nothing
        // more: nothing accepts yet, and an inherited socket's dup must
        // never be shut down.
        let mut listeners: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
        let mut local_addrs = self.bind(&mut listeners)?;
        local_addrs.extend(self.share_inherited(&mut listeners)?);
        let listening = self.handle_copies(&listeners)?;
        let cap = Arc::new(ConnCap::new(self.config.max_connections));
        let per_ip = (self.config.max_connections_per_ip > 0).then(|| {
            Arc::new(PerIpCap::new(
                self.config.max_connections_per_ip,
                socket::random_u64(),
            ))
        });
        let stop = Arc::new(Stop::default());
        let hand_over = Arc::new(AtomicBool::new(false));
        let shared = |counters| WorkerShared {
            counters,
            cap: Arc::clone(&cap),
            per_ip: per_ip.clone(),
            shutdown: Arc::clone(&stop.requested),
            hand_over: Arc::clone(&hand_over),
        };
        let (threads, counters, first_error) =
            self.spawn_workers(backend, listeners, Arc::new(handler), shared, &stop);
        let mut handle = ServerHandle {
            backend,
            fallback,
            local_addrs,
            stats: StatsReader {
                workers: counters.into(),
            },
            cap,
            stop,
            hand_over,
            listening,
            threads,
            announce_stop: false,
            title: Title(self.config.name.clone()),
        };
        if let Some(e) = first_error {
            handle.stop_workers();
            return Err(e);
        }
        handle.announce_stop = true;
        log_start(
            &self.config,
            &handle.title,
            &handle.local_addrs,
            handle.backend,
            handle.fallback.as_ref(),
        );
        Ok(handle)
    }

    /// Binds every configured address once per worker (`SO_REUSEPORT`),
    /// after checking that no other process serves it; returns the bound
    /// addresses (port 0 resolved).
    fn bind(&self, listeners: &mut [Vec<Listener>]) -> Result<Vec<SocketAddr>, StartError> {
        let mut local_addrs = Vec::new();
        for addr in &self.config.addrs {
            // Port 0 is a port nobody serves yet, picked by the kernel.
            if addr.port() != 0 && !self.config.reuse_port {
                match socket::check_unserved(addr) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                        return Err(StartError::AddrInUse { addr: *addr });
                    }
                    Err(source) => {
                        return Err(StartError::Bind {
                            addr: *addr,
                            source,
                        })
                    }
                }
            }
            let mut bound = *addr;
            for worker_listeners in listeners.iter_mut() {
                let fd = socket::reuseport_listener(&bound).map_err(|source| StartError::Bind {
                    addr: bound,
                    source,
                })?;
                if bound.port() == 0 {
                    bound =
                        socket::local_addr(fd.as_raw_fd()).map_err(|source| StartError::Bind {
                            addr: *addr,
                            source,
                        })?;
                }
                worker_listeners.push(Listener {
                    fd,
                    inherited: false,
                });
            }
            local_addrs.push(bound);
        }
        Ok(local_addrs)
    }

    /// Checks each inherited socket and gives every worker its own dup;
    /// returns their addresses.
    fn share_inherited(
        &self,
        listeners: &mut [Vec<Listener>],
    ) -> Result<Vec<SocketAddr>, StartError> {
        let mut local_addrs = Vec::new();
        for inherited in &self.inherited {
            let fd = inherited.as_raw_fd();
            let checked = socket::check_listener(fd).and_then(|()| {
                socket::local_addr(fd).map_err(crate::sys::socket::NotAListener::NotASocket)
            });
            match checked {
                Ok(addr) => local_addrs.push(addr),
                Err(problem) => {
                    return Err(StartError::Inherited { fd, problem });
                }
            }
            for worker_listeners in listeners.iter_mut() {
                let dup = socket::dup_cloexec(fd).map_err(StartError::Worker)?;
                worker_listeners.push(Listener {
                    fd: dup,
                    inherited: true,
                });
            }
        }
        Ok(local_addrs)
    }

    /// The handle's own copy of every distinct socket, for `listeners`: a
    /// worker closes its fds when it exits, and a borrowed fd must not
    /// outlive the number it names.
    fn handle_copies(&self, listeners: &[Vec<Listener>]) -> Result<Vec<OwnedFd>, StartError> {
        let mut listening = Vec::new();
        for listener in listeners.iter().flatten().filter(|l| !l.inherited) {
            listening
                .push(socket::dup_cloexec(listener.fd.as_raw_fd()).map_err(StartError::Worker)?);
        }
        for inherited in &self.inherited {
            listening.push(inherited.try_clone().map_err(StartError::Worker)?);
        }
        Ok(listening)
    }

    /// Starts one worker thread per listener set and waits until each
    /// accepts or has failed; returns the threads, their counters and the
    /// first failure.
    #[allow(clippy::type_complexity)]
    fn spawn_workers<H: Handler>(
        &self,
        backend: Backend,
        listeners: Vec<Vec<Listener>>,
        handler: Arc<H>,
        shared: impl Fn(Arc<CachePadded<WorkerCounters>>) -> WorkerShared,
        stop: &Arc<Stop>,
    ) -> (
        Vec<JoinHandle<()>>,
        Vec<Arc<CachePadded<WorkerCounters>>>,
        Option<StartError>,
    ) {
        let workers = listeners.len();
        let mut counters = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Arc<OwnedFd>, StartError>>();
        for (index, worker_listeners) in listeners.into_iter().enumerate() {
            let worker_counters = Arc::new(CachePadded::new(WorkerCounters::default()));
            counters.push(Arc::clone(&worker_counters));
            let shared = shared(worker_counters);
            let stop = Arc::clone(stop);
            let config = self.config.clone();
            let handler = Arc::clone(&handler);
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringwall-worker-{index}"))
                .spawn(move || {
                    let setup = WorkerSetup {
                        index,
                        config,
                        listeners: worker_listeners,
                        handler,
                        shared,
                    };
                    // On failure `new` has dropped, and so closed, the listeners.
                    match backend {
                        Backend::Epoll => launch(EpollWorker::new(setup), index, &ready, &stop),
                        _ => launch(Worker::new(setup), index, &ready, &stop),
                    }
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    let _ = ready_tx.send(Err(StartError::Worker(e)));
                }
            }
        }
        drop(ready_tx);
        let mut first_error = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(fd)) => stop.add_wake_fd(fd),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => break,
            }
        }
        (threads, counters, first_error)
    }
}

/// The start event: where the server listens and its key limits, as
/// `name=value` fields after the addresses.
fn log_start(
    c: &Config,
    title: &Title,
    local_addrs: &[SocketAddr],
    backend: Backend,
    fallback: Option<&UringUnavailable>,
) {
    // Joined without spaces: scripts take the first word.
    let addrs = local_addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    crate::ops::log::info!(
        backend = %BackendField(backend, fallback),
        workers = c.workers,
        header_timeout = ?c.header_timeout,
        body_timeout = ?c.body_timeout,
        idle_timeout = ?c.idle_timeout,
        write_timeout = ?c.write_timeout,
        handler_timeout = ?c.handler_timeout,
        min_request_body_rate = %RateField(c.min_request_body_rate),
        min_response_rate = %RateField(c.min_response_rate),
        shutdown_timeout = ?c.shutdown_timeout,
        max_connections = c.max_connections,
        max_connections_per_ip = c.max_connections_per_ip,
        max_buffered_body_bytes = c.max_buffered_body_bytes,
        max_buffered_head_bytes = c.max_buffered_head_bytes,
        max_queued_output_bytes = c.max_queued_output_bytes,
        ring_entries = c.ring_entries,
        recv_buffers = %format_args!("{}x{}", c.recv_buffers, c.recv_buffer_size),
        recv_multishot = c.recv_multishot,
        max_head_bytes = c.limits.max_head_bytes,
        max_body_bytes = c.limits.max_body_bytes,
        proxy_protocol = c.proxy_protocol,
        "{title} listening on {addrs}"
    );
}

/// How the start and stop events name the server: `ringwall`, or
/// `ringwall NAME` for a named one (`ServerBuilder::name`).
#[derive(Debug)]
struct Title(Option<String>);

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => write!(f, "ringwall {name}"),
            None => f.write_str("ringwall"),
        }
    }
}

/// The backend that runs and, when `auto` fell back to epoll, why:
/// `epoll io_uring_refused="<cause>"` (quoted: the cause has spaces).
struct BackendField<'a>(Backend, Option<&'a UringUnavailable>);

impl fmt::Display for BackendField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(cause) => write!(f, "{} io_uring_refused=\"{cause}\"", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A minimum rate as one word: `240B/s+5s` (after the grace) or `off`.
struct RateField(Option<MinRate>);

impl fmt::Display for RateField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(rate) => write!(f, "{}B/s+{:?}", rate.bytes_per_sec, rate.grace),
            None => f.write_str("off"),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_owned(),
        (_, Some(message)) => message.clone(),
        _ => "a panic without a message".to_owned(),
    }
}

/// How the workers are told to stop: by the handle, or by a worker that
/// failed, so that one failure stops the whole server.
#[derive(Debug, Default)]
struct Stop {
    /// The flag each worker checks when it starts (`WorkerShared::shutdown`).
    requested: Arc<AtomicBool>,
    /// Each running worker's eventfd, shared with it; a write wakes it into
    /// its shutdown. Held until every worker has exited: the last of the
    /// two owners closes it, so a signal never reaches a reused number.
    wake_fds: Mutex<Vec<Arc<OwnedFd>>>,
    /// The first worker to fail, in time.
    failure: Mutex<Option<(usize, WorkerFailure)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can panic midway; a poisoned one is whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stop {
    fn request(&self) {
        self.requested.store(true, Ordering::Release);
        for fd in lock(&self.wake_fds).iter() {
            socket::eventfd_signal(fd.as_raw_fd());
        }
    }

    /// Registers a worker that is ready. A stop requested before (a worker
    /// that failed while the others were starting) reaches it too: the flag
    /// is read under the lock `request` takes after setting it.
    fn add_wake_fd(&self, fd: Arc<OwnedFd>) {
        let mut fds = lock(&self.wake_fds);
        if self.requested.load(Ordering::Acquire) {
            socket::eventfd_signal(fd.as_raw_fd());
        }
        fds.push(fd);
    }

    fn fail(&self, worker: usize, failure: WorkerFailure) {
        lock(&self.failure).get_or_insert((worker, failure));
        self.request();
    }
}

/// A running server. Dropping it shuts the server down gracefully.
#[derive(Debug)]
pub struct ServerHandle {
    backend: Backend,
    fallback: Option<UringUnavailable>,
    local_addrs: Vec<SocketAddr>,
    stats: StatsReader,
    cap: Arc<ConnCap>,
    stop: Arc<Stop>,
    /// Set before the stop when a successor process accepts on the same
    /// sockets ([`ServerHandle::hand_over`]).
    hand_over: Arc<AtomicBool>,
    /// Every distinct listening socket, in [`ServerHandle::listeners`] order.
    listening: Vec<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    /// Log the shutdown event when the workers have exited: false for a
    /// server whose start failed.
    announce_stop: bool,
    title: Title,
}

/// A worker of either backend, as the spawning code sees it.
trait BackendWorker {
    /// The eventfd that wakes it for shutdown, shared with it.
    fn wake_fd(&self) -> Arc<OwnedFd>;
    /// Serves until shutdown has closed every connection, or returns the
    /// error that stopped it.
    fn run(self) -> std::io::Result<()>;
}

impl<H: Handler> BackendWorker for Worker<H> {
    fn wake_fd(&self) -> Arc<OwnedFd> {
        Worker::wake_fd(self)
    }
    fn run(self) -> std::io::Result<()> {
        Worker::run(self)
    }
}

impl<H: Handler> BackendWorker for EpollWorker<H> {
    fn wake_fd(&self) -> Arc<OwnedFd> {
        EpollWorker::wake_fd(self)
    }
    fn run(self) -> std::io::Result<()> {
        EpollWorker::run(self)
    }
}

/// On the worker's thread: reports the start (its wake fd, or the error;
/// a worker that failed to start has dropped its listeners) and runs it.
/// A failure, a panic included (caught so that it, too, stops the other
/// workers and reaches `wait`), stops the server.
fn launch<W: BackendWorker>(
    started: Result<W, StartError>,
    index: usize,
    ready: &mpsc::Sender<Result<Arc<OwnedFd>, StartError>>,
    stop: &Stop,
) {
    let worker = match started {
        Ok(worker) => worker,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(worker.wake_fd()));
    let failure = match catch_unwind(AssertUnwindSafe(|| worker.run())) {
        Ok(Ok(())) => return,
        Ok(Err(e)) => WorkerFailure::Ring(e),
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            crate::ops::log::error!(
                worker = index,
                panic = %message,
                "worker panicked; the server shuts down"
            );
            WorkerFailure::Panicked(message)
        }
    };
    stop.fail(index, failure);
}

/// The backend to run, and for an `auto` that fell back to epoll, why
/// io_uring was refused. Resource exhaustion is an error, never a reason
/// to fall back: the other backend would need the same resources.
fn choose_backend(wanted: Backend) -> Result<(Backend, Option<UringUnavailable>), StartError> {
    match wanted {
        Backend::Epoll => Ok((Backend::Epoll, None)),
        Backend::IoUring => Ok((Backend::IoUring, None)),
        _ => match crate::backend::uring::probe() {
            Ok(()) => Ok((Backend::IoUring, None)),
            Err(cause) if cause.is_refusal() => {
                crate::ops::log::warn!(
                    backend = "epoll",
                    io_uring_refused = %cause,
                    "io_uring is refused here; serving on epoll"
                );
                Ok((Backend::Epoll, Some(cause)))
            }
            Err(cause) => Err(StartError::IoUring(cause)),
        },
    }
}

impl ServerHandle {
    /// The backend the workers run on: [`Backend::IoUring`] or
    /// [`Backend::Epoll`], never `Auto`.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why io_uring was refused, when [`Backend::Auto`] fell back to epoll.
    pub fn fallback_reason(&self) -> Option<&UringUnavailable> {
        self.fallback.as_ref()
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The first bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Counters summed over workers.
    pub fn stats(&self) -> Stats {
        self.stats.stats()
    }

    /// A reader of the counters for another thread (a metrics endpoint, a
    /// handler that reports them), while this handle stays with whoever
    /// shuts the server down.
    pub fn stats_reader(&self) -> StatsReader {
        self.stats.clone()
    }

    /// Connections holding a slot right now (the cap's count).
    pub fn open_connections(&self) -> usize {
        self.cap.open()
    }

    /// Graceful shutdown: stop accepting, close idle connections, let
    /// in-flight requests finish within `shutdown_timeout`, then close the
    /// rest. Returns the final counters, or the error of a worker that
    /// failed while the server ran (which had stopped it already).
    pub fn shutdown(mut self) -> Result<Stats, ServeError> {
        self.stop_workers();
        self.outcome()
    }

    /// Every listening socket the workers accept on, to pass to a successor
    /// process ([`crate::activation::spawn_with_listeners`]): first one per worker for
    /// each bound address (each worker has its own `SO_REUSEPORT` socket,
    /// with its own accept queue), then each socket passed with
    /// [`crate::ServerBuilder::listen_fd`]. A successor needs all of them:
    /// the kernel keeps spreading new connections over every socket of a
    /// reuseport group, and resets those queued in one that closes.
    pub fn listeners(&self) -> Vec<BorrowedFd<'_>> {
        self.listening.iter().map(AsFd::as_fd).collect()
    }

    /// Graceful shutdown for a successor that already accepts on every
    /// socket of [`ServerHandle::listeners`]: stop accepting, but leave the
    /// sockets listening, so the connections queued in them are the
    /// successor's to accept; serve any connection accepted meanwhile; let
    /// each idle keep-alive connection send one more request, answered with
    /// `Connection: close`, instead of closing it under a client that may be
    /// sending (it would lose that request). Whatever is still open after
    /// `shutdown_timeout` is closed. Returns the final counters.
    pub fn hand_over(self) -> Result<Stats, ServeError> {
        self.hand_over.store(true, Ordering::Release);
        self.shutdown()
    }

    /// Blocks until the workers exit, which they do only when one fails:
    /// a failed worker stops the others (see [`ServeError`]). Returns its
    /// error; `Ok` only if the server was stopped some other way.
    pub fn wait(mut self) -> Result<Stats, ServeError> {
        self.join_workers();
        self.outcome()
    }

    /// Whether every worker has exited: a failure stopped the server, and
    /// [`ServerHandle::wait`] returns at once. For a caller that waits on
    /// something else (signals) and polls this.
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// The final counters, or the first worker failure with them.
    fn outcome(&mut self) -> Result<Stats, ServeError> {
        let stats = self.stats();
        match lock(&self.stop.failure).take() {
            None => Ok(stats),
            Some((worker, failure)) => Err(ServeError {
                worker,
                failure,
                stats: Box::new(stats),
            }),
        }
    }

    fn stop_workers(&mut self) {
        self.stop.request();
        self.join_workers();
    }

    /// Joins the workers; the first call after they all exited closes their
    /// eventfds and logs the shutdown event.
    fn join_workers(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        for thread in self.threads.drain(..) {
            // The worker catches its own panics (see `serve`).
            let _ = thread.join();
        }
        // The workers' shares are gone with them: this closes the eventfds.
        lock(&self.stop.wake_fds).clear();
        if self.announce_stop {
            crate::ops::log::info!("{} stopped: {}", self.title, self.stats());
        }
    }
}

/// The server's counters, readable from any thread: cloning is cheap, and a
/// reader keeps the counters alive, not the server (after shutdown it reads
/// the final counts).
#[derive(Clone, Debug)]
pub struct StatsReader {
    workers: Arc<[Arc<CachePadded<WorkerCounters>>]>,
}

impl StatsReader {
    /// Counters summed over workers. Each is read on its own, so a sum taken
    /// while the server runs is not one instant's snapshot (a request may be
    /// counted before its bytes are).
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for worker in self.workers.iter() {
            worker.add_to(&mut stats);
        }
        stats
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_reader_and_its_clones_sum_every_worker() {
        let workers: Vec<_> = (0..2)
            .map(|_| Arc::new(CachePadded::new(WorkerCounters::default())))
            .collect();
        let reader = StatsReader {
            workers: workers.iter().cloned().collect(),
        };
        let clone = reader.clone();
        workers[0].requests.add(2);
        workers[1].requests.add(3);
        workers[1].count_close(crate::CloseReason::PeerEof, false);
        let stats = clone.stats();
        assert_eq!(stats.requests, 5, "{stats}");
        assert_eq!(stats.closes.peer_eof, 1, "{stats}");
        assert_eq!(reader.stats(), stats);
    }
}
