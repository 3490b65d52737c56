//! The servers a benchmark compares: ringwall and its peers.
//!
//! ```text
//!   Peer::start(kind, &PeerConfig) ──► free loopback port ──► spawn ──► GET / answers 200
//!        │                                                                   │
//!        │        runner: load / attack against peer.addr()                  │
//!        │        peer.usage() = CPU time + RSS of the process tree (/proc)  │
//!        ▼                                                                   ▼
//!   drop(peer): SIGTERM by PID, waitpid, SIGKILL after a grace; temp dir removed
//! ```
//!
//! Every peer serves the same app (POST/PUT/PATCH echo the body, `GET /bytes/N`
//! answers N bytes, anything else `200 Hello, World!` as text/plain) under the
//! same four [`Deadlines`]. A peer that is not installed is a
//! [`StartError::Missing`]: the runners skip it with a line saying so and
//! carry on.
//!
//! Two more are not peers but floors ([`floor`]): `closer` and `canned` do
//! the least a server can do for one runner each, so its table shows how
//! far every server is from what the machine allows.

mod built;
mod deadlines;
pub mod floor;
mod go;
pub mod nginx;
mod process;
pub mod procfs;
mod scratch;
pub mod syscalls;
pub mod tcp_table;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

pub use built::ringwall_command;
pub use deadlines::{format_duration, parse_duration, Deadlines};
pub use floor::CANNED_RESPONSE;
pub use process::{
    find_executable, free_loopback_addr, is_executable, probe_hello, raise_nofile_limit,
    read_hello, sibling_binary, ServerProcess, Stopped, START_TIMEOUT,
};
pub use scratch::Scratch;

/// One of the servers a run can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    /// `ringwall serve` with its default backend (io_uring where the kernel
    /// allows it), so a `$RINGWALL_BIN` older than `--backend` still runs.
    Ringwall,
    /// `ringwall serve --backend epoll`: the other backend, in the same run.
    RingwallEpoll,
    Hyper,
    Nginx,
    Go,
    /// The `deadline` floor: closes at the header deadline, nothing else.
    Closer,
    /// The `throughput` floor: one fixed answer per request head.
    Canned,
    /// `engine/examples/axum.rs`: an axum `Router` through `ringwall::tower`.
    AxumRingwall,
    /// The same router on `axum::serve` (`src/bin/axum_serve/main.rs`).
    AxumServe,
}

/// The runner a floor calibrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    Deadline,
    Throughput,
}

impl ServerKind {
    pub const ALL: [ServerKind; 9] = [
        ServerKind::Ringwall,
        ServerKind::RingwallEpoll,
        ServerKind::Hyper,
        ServerKind::Nginx,
        ServerKind::Go,
        ServerKind::Closer,
        ServerKind::Canned,
        ServerKind::AxumRingwall,
        ServerKind::AxumServe,
    ];

    /// Which runner's floor this is; `None` for the servers compared.
    pub fn floor_of(self) -> Option<Floor> {
        match self {
            ServerKind::Closer => Some(Floor::Deadline),
            ServerKind::Canned => Some(Floor::Throughput),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Ringwall => "ringwall",
            ServerKind::RingwallEpoll => "ringwall-epoll",
            ServerKind::Hyper => "hyper",
            ServerKind::Nginx => "nginx",
            ServerKind::Go => "go",
            ServerKind::Closer => "closer",
            ServerKind::Canned => "canned",
            ServerKind::AxumRingwall => "axum-ringwall",
            ServerKind::AxumServe => "axum-serve",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServerKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown server `{s}`: use ringwall, ringwall-epoll, hyper, nginx, go, \
                     closer, canned, axum-ringwall or axum-serve"
                )
            })
    }
}

/// How every peer in a run is configured.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Worker threads or processes (ringwall workers, tokio worker threads,
    /// nginx worker processes, GOMAXPROCS).
    pub workers: usize,
    pub deadlines: Deadlines,
    /// The server-wide connection cap, where the server has one (ringwall's
    /// `--max-connections`; nginx's `worker_connections` is sized from it).
    pub max_connections: usize,
    /// The `/bytes/N` sizes nginx must serve (it serves them from files).
    pub byte_sizes: Vec<usize>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            deadlines: Deadlines::default(),
            max_connections: 100_000,
            byte_sizes: vec![10, 1024, 64 * 1024, 1 << 20],
        }
    }
}

/// Why a peer did not start.
#[derive(Debug)]
pub enum StartError {
    /// Not installed or not built: skip it and say so.
    Missing { reason: String },
    /// Installed, but it did not come up.
    Failed { reason: String },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Missing { reason } => write!(f, "not available: {reason}"),
            StartError::Failed { reason } => write!(f, "failed to start: {reason}"),
        }
    }
}

impl std::error::Error for StartError {}

/// CPU time and resident memory of a server's whole process tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// `user + system`.
    pub cpu: Duration,
    pub user: Duration,
    pub system: Duration,
    pub rss_bytes: u64,
}

/// A running server, stopped (by PID) when dropped.
#[derive(Debug)]
pub struct Peer {
    kind: ServerKind,
    addr: SocketAddr,
    echo: bool,
    // Declared before `scratch`: the process stops before its directory goes.
    process: ServerProcess,
    scratch: Scratch,
}

impl Peer {
    /// Starts `kind` on a free loopback port and waits until it answers.
    pub fn start(kind: ServerKind, config: &PeerConfig) -> Result<Peer, StartError> {
        let addr = free_loopback_addr().map_err(|e| StartError::Failed {
            reason: format!("no free port: {e}"),
        })?;
        let (process, scratch, echo) = match kind {
            ServerKind::Ringwall => {
                let (p, s) = built::start_ringwall(config, addr, None)?;
                (p, s, true)
            }
            ServerKind::RingwallEpoll => {
                let (p, s) = built::start_ringwall(config, addr, Some("epoll"))?;
                (p, s, true)
            }
            ServerKind::Hyper => {
                let (p, s) = built::start_hyper(config, addr)?;
                (p, s, true)
            }
            ServerKind::Nginx => {
                let started = nginx::start(config, addr)?;
                (started.process, started.scratch, started.echo)
            }
            ServerKind::Go => {
                let (p, s) = go::start(config, addr)?;
                (p, s, true)
            }
            ServerKind::Closer => {
                let (p, s) = floor::start_closer(config, addr)?;
                (p, s, false)
            }
            ServerKind::Canned => {
                let (p, s) = floor::start_canned(config, addr)?;
                (p, s, false)
            }
            // The axum router echoes on POST /echo only, not on every POST.
            ServerKind::AxumRingwall => {
                let (p, s) = built::start_axum_ringwall(config, addr)?;
                (p, s, false)
            }
            ServerKind::AxumServe => {
                let (p, s) = built::start_axum_serve(config, addr)?;
                (p, s, false)
            }
        };
        let mut peer = Peer {
            kind,
            addr,
            echo,
            process,
            scratch,
        };
        let probe = match kind {
            ServerKind::Closer => floor::probe_accepts,
            ServerKind::Canned => floor::probe_canned,
            _ => probe_hello,
        };
        peer.process
            .wait_until(addr, START_TIMEOUT, probe)
            .map_err(|reason| StartError::Failed { reason })?;
        Ok(peer)
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PID of the server (nginx: the master).
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// Whether POST/PUT/PATCH echo the body (nginx needs the echo module;
    /// the floors serve no app).
    pub fn echoes(&self) -> bool {
        self.echo
    }

    /// The private directory holding the peer's config and log.
    pub fn dir(&self) -> &std::path::Path {
        self.scratch.path()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// CPU time used so far and memory resident now, over the process tree.
    pub fn usage(&self) -> io::Result<Usage> {
        let cpu = procfs::tree_cpu_split(self.pid())?;
        Ok(Usage {
            cpu: cpu.user + cpu.system,
            user: cpu.user,
            system: cpu.system,
            rss_bytes: procfs::tree_rss(self.pid())?,
        })
    }

    /// Stops the server now (dropping the peer does the same).
    pub fn stop(mut self) {
        let _ = self.process.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_parse_back() {
        for kind in ServerKind::ALL {
            assert_eq!(kind.name().parse::<ServerKind>(), Ok(kind));
        }
        assert_eq!("NGINX".parse::<ServerKind>(), Ok(ServerKind::Nginx));
        assert_eq!("canned".parse::<ServerKind>(), Ok(ServerKind::Canned));
        assert_eq!(
            "ringwall-epoll".parse::<ServerKind>(),
            Ok(ServerKind::RingwallEpoll)
        );
        assert!("apache".parse::<ServerKind>().is_err());
    }
}
