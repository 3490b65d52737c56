//! Starting workers, and the handle that stops them.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crossbeam_utils::CachePadded;

use crate::config::{Config, ServerBuilder};
use crate::conn_cap::ConnCap;
use crate::error::StartError;
use crate::handler::Handler;
use crate::per_ip::PerIpCap;
use crate::socket::{self, Listener};
use crate::stats::{Stats, WorkerCounters};
use crate::worker::{Worker, WorkerShared};

/// A configured server, ready to [`serve`](Server::serve).
#[derive(Debug)]
pub struct Server {
    pub(crate) config: Config,
    /// Sockets from `ServerBuilder::listen_fd`; closed when `serve` returns,
    /// after each worker has its own dup.
    pub(crate) inherited: Vec<Arc<OwnedFd>>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Binds every address, starts the workers and returns once all are
    /// accepting. Each worker gets its own `SO_REUSEPORT` listener per
    /// address; with port 0 the first bind picks the port and the rest share it.
    /// Each socket passed with `listen_fd` is checked and dup'd once per
    /// worker (ARCHITECTURE.md, Engine invariants); its addresses follow the
    /// bound ones in [`ServerHandle::local_addrs`].
    pub fn serve<H: Handler>(self, handler: H) -> Result<ServerHandle, StartError> {
        socket::raise_nofile_limit();
        if self.config.return_memory_to_os {
            crate::malloc::return_large_buffers_to_os();
        }
        let workers = self.config.workers;
        let mut listeners: Vec<Vec<Listener>> = vec![Vec::new(); workers];
        let mut local_addrs = Vec::new();
        // Close only: nothing accepts yet, and an inherited socket's dup must
        // never be shut down.
        let close_all = |listeners: &Vec<Vec<Listener>>| {
            for listener in listeners.iter().flatten() {
                socket::close(listener.fd);
            }
        };
        for addr in &self.config.addrs {
            let mut bound = *addr;
            for worker_listeners in listeners.iter_mut() {
                match socket::reuseport_listener(&bound) {
                    Ok(fd) => {
                        if bound.port() == 0 {
                            match socket::local_addr(fd) {
                                Ok(actual) => bound = actual,
                                Err(source) => {
                                    socket::close(fd);
                                    close_all(&listeners);
                                    return Err(StartError::Bind {
                                        addr: *addr,
                                        source,
                                    });
                                }
                            }
                        }
                        worker_listeners.push(Listener {
                            fd,
                            inherited: false,
                        });
                    }
                    Err(source) => {
                        close_all(&listeners);
                        return Err(StartError::Bind {
                            addr: bound,
                            source,
                        });
                    }
                }
            }
            local_addrs.push(bound);
        }
        for inherited in &self.inherited {
            let fd = inherited.as_raw_fd();
            let checked = socket::check_listener(fd).and_then(|()| {
                socket::local_addr(fd).map_err(crate::activation::NotAListener::NotASocket)
            });
            match checked {
                Ok(addr) => local_addrs.push(addr),
                Err(problem) => {
                    close_all(&listeners);
                    return Err(StartError::Inherited { fd, problem });
                }
            }
            for worker_listeners in listeners.iter_mut() {
                match socket::dup_cloexec(fd) {
                    Ok(dup) => worker_listeners.push(Listener {
                        fd: dup,
                        inherited: true,
                    }),
                    Err(e) => {
                        close_all(&listeners);
                        return Err(StartError::Worker(e));
                    }
                }
            }
        }

        // The handle's own copy of every distinct socket, for `listeners`:
        // a worker closes its fds when it exits, and a borrowed fd must not
        // outlive the number it names.
        let mut listening = Vec::new();
        for listener in listeners.iter().flatten().filter(|l| !l.inherited) {
            match socket::dup_cloexec(listener.fd) {
                // SAFETY: dup_cloexec returned a new fd that nothing else owns.
                Ok(dup) => listening.push(unsafe { OwnedFd::from_raw_fd(dup) }),
                Err(e) => {
                    close_all(&listeners);
                    return Err(StartError::Worker(e));
                }
            }
        }
        for inherited in &self.inherited {
            match inherited.try_clone() {
                Ok(dup) => listening.push(dup),
                Err(e) => {
                    close_all(&listeners);
                    return Err(StartError::Worker(e));
                }
            }
        }

        let cap = Arc::new(ConnCap::new(self.config.max_connections));
        let per_ip = (self.config.max_connections_per_ip > 0).then(|| {
            Arc::new(PerIpCap::new(
                self.config.max_connections_per_ip,
                socket::random_u64(),
            ))
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let hand_over = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let mut counters = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let mut wake_fds = Vec::with_capacity(workers);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<RawFd, StartError>>();
        for (index, worker_listeners) in listeners.into_iter().enumerate() {
            let worker_counters = Arc::new(CachePadded::new(WorkerCounters::default()));
            counters.push(Arc::clone(&worker_counters));
            let shared = WorkerShared {
                counters: worker_counters,
                cap: Arc::clone(&cap),
                per_ip: per_ip.clone(),
                shutdown: Arc::clone(&shutdown),
                hand_over: Arc::clone(&hand_over),
            };
            let config = self.config.clone();
            let handler = Arc::clone(&handler);
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringwall-worker-{index}"))
                .spawn(move || {
                    let fds: Vec<RawFd> = worker_listeners.iter().map(|l| l.fd).collect();
                    match Worker::new(index, config, worker_listeners, handler, shared) {
                        Ok(worker) => {
                            let _ = ready.send(Ok(worker.wake_fd()));
                            worker.run();
                        }
                        Err(e) => {
                            for fd in fds {
                                socket::close(fd);
                            }
                            let _ = ready.send(Err(e));
                        }
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
                Ok(Ok(fd)) => wake_fds.push(fd),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => break,
            }
        }
        let handle = ServerHandle {
            local_addrs,
            stats: StatsReader {
                workers: counters.into(),
            },
            cap,
            shutdown,
            hand_over,
            listening,
            wake_fds,
            threads,
        };
        match first_error {
            Some(e) => {
                handle.stop();
                Err(e)
            }
            None => Ok(handle),
        }
    }
}

/// A running server. Dropping it shuts the server down gracefully.
#[derive(Debug)]
pub struct ServerHandle {
    local_addrs: Vec<SocketAddr>,
    stats: StatsReader,
    cap: Arc<ConnCap>,
    shutdown: Arc<AtomicBool>,
    hand_over: Arc<AtomicBool>,
    /// Every distinct listening socket, in [`ServerHandle::listeners`] order.
    listening: Vec<OwnedFd>,
    wake_fds: Vec<RawFd>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
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
    /// rest. Returns the final counters.
    pub fn shutdown(mut self) -> Stats {
        self.stop_workers();
        self.stats()
    }

    /// Every listening socket the workers accept on, to pass to a successor
    /// process ([`crate::spawn_with_listeners`]): first one per worker for
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
    pub fn hand_over(self) -> Stats {
        self.hand_over.store(true, Ordering::Release);
        self.shutdown()
    }

    /// Blocks until the workers exit (after a shutdown from elsewhere, or a
    /// fatal ring error).
    pub fn wait(mut self) -> Stats {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.stats()
    }

    fn stop(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        for &fd in &self.wake_fds {
            socket::eventfd_signal(fd);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        for fd in self.wake_fds.drain(..) {
            socket::close(fd);
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
