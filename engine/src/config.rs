//! Server configuration: the builder, its defaults, and their validation.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use ringwall_h1::{Limits, LimitsError};

/// Default header timeout: 10 s. Go's `ReadHeaderTimeout` is commonly set to
/// 5-10 s (net/http has none by default, which is the slowloris hole), nginx's
/// `client_header_timeout` defaults to 60 s, hyper's `header_read_timeout` to
/// 30 s. A head is a few hundred bytes: 10 s is generous for any real client
/// and short enough to bound a slowloris attack.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default body timeout: 30 s for the whole body (nginx's
/// `client_body_timeout` is 60 s between reads; ringwall's deadline is for the
/// whole body, which `max_body_bytes` keeps small).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default keep-alive idle timeout: 60 s (nginx `keepalive_timeout` 75 s, Go
/// falls back to its read timeout, most load balancers idle out at 60 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default write timeout: 30 s for a response to leave (nginx `send_timeout`
/// 60 s between writes). Bounds a client that never reads.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default grace for in-flight requests at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connection cap, server-wide. nginx's default is 512 per worker,
/// which is too low for a benchmark target; 100k fits in the memory budget
/// (< 1 KiB per idle connection) and the process's file limit is raised to
/// match where the hard limit allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Default submission queue size per worker (the completion queue is 4x).
pub const DEFAULT_RING_ENTRIES: u32 = 4096;
/// Default provided receive buffers per worker, and their size. Buffers go
/// back to the kernel right after each completion is copied out, so a few
/// hundred serve any number of connections; the kernel walks the whole ring,
/// so every buffer's first page ends up resident. 256 x 16 KiB measured
/// 0.86 KiB of RSS per idle keep-alive connection at 10,000 connections,
/// 1024 x 16 KiB measured 1.47 KiB (`ringwall-bench memory`).
pub const DEFAULT_RECV_BUFFERS: u16 = 256;
pub const DEFAULT_RECV_BUFFER_SIZE: u32 = 16 * 1024;

/// Timeouts longer than this are rejected as a configuration mistake.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const MAX_WORKERS: usize = 1024;

/// A validated configuration. Build one with [`crate::Server::builder`].
#[derive(Clone, Debug)]
pub struct Config {
    pub addrs: Vec<SocketAddr>,
    pub workers: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
    pub limits: Limits,
    pub ring_entries: u32,
    pub recv_buffers: u16,
    pub recv_buffer_size: u32,
    pub recv_multishot: bool,
}

/// Builds a [`crate::Server`]; every setting has a documented default.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    config: Config,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            config: Config {
                addrs: Vec::new(),
                workers: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                write_timeout: DEFAULT_WRITE_TIMEOUT,
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                limits: Limits::default(),
                ring_entries: DEFAULT_RING_ENTRIES,
                recv_buffers: DEFAULT_RECV_BUFFERS,
                recv_buffer_size: DEFAULT_RECV_BUFFER_SIZE,
                recv_multishot: true,
            },
        }
    }
}

impl ServerBuilder {
    /// Adds an address to listen on (may be called more than once). Port 0
    /// picks a free port, shared by all workers; read it back with
    /// [`crate::ServerHandle::local_addrs`]. Default: `127.0.0.1:8080`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.addrs.push(addr);
        self
    }
    /// Worker threads, each with its own ring and listener. Default: one per
    /// available core.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self
    }
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.config.header_timeout = d;
        self
    }
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.config.body_timeout = d;
        self
    }
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.idle_timeout = d;
        self
    }
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.config.write_timeout = d;
        self
    }
    /// How long graceful shutdown waits for in-flight requests.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.config.shutdown_timeout = d;
        self
    }
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }
    /// HTTP/1.1 limits (head size, header count, target length, body size).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }
    /// Submission queue entries per worker: a power of two, 2..=32768.
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.config.ring_entries = n;
        self
    }
    /// Provided receive buffers per worker (a power of two, 1..=32768) and
    /// the size of each (1 KiB..=1 MiB).
    pub fn recv_buffers(mut self, count: u16, size: u32) -> Self {
        self.config.recv_buffers = count;
        self.config.recv_buffer_size = size;
        self
    }

    /// Multishot recv (default, Linux 6.0+) or single-shot recv re-armed
    /// after each completion. A worker whose kernel rejects multishot recv
    /// switches to single-shot by itself; this forces it (for tests, or a
    /// kernel that misbehaves).
    pub fn recv_multishot(mut self, enabled: bool) -> Self {
        self.config.recv_multishot = enabled;
        self
    }

    /// Checks every setting; a zero or absurd value is an error naming it.
    pub fn build(mut self) -> Result<crate::Server, ConfigError> {
        if self.config.addrs.is_empty() {
            self.config
                .addrs
                .push(SocketAddr::from(([127, 0, 0, 1], 8080)));
        }
        let c = &self.config;
        if c.workers == 0 || c.workers > MAX_WORKERS {
            return Err(ConfigError::Workers(c.workers));
        }
        for (name, value) in [
            ("header_timeout", c.header_timeout),
            ("body_timeout", c.body_timeout),
            ("idle_timeout", c.idle_timeout),
            ("write_timeout", c.write_timeout),
            ("shutdown_timeout", c.shutdown_timeout),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(ConfigError::Timeout { name, value });
            }
        }
        if c.max_connections == 0 || c.max_connections > (u32::MAX as usize) {
            return Err(ConfigError::MaxConnections(c.max_connections));
        }
        if !c.ring_entries.is_power_of_two() || !(2..=32768).contains(&c.ring_entries) {
            return Err(ConfigError::RingEntries(c.ring_entries));
        }
        if !c.recv_buffers.is_power_of_two() || c.recv_buffers > 32768 {
            return Err(ConfigError::RecvBuffers(c.recv_buffers));
        }
        if !(1024..=1024 * 1024).contains(&c.recv_buffer_size) {
            return Err(ConfigError::RecvBufferSize(c.recv_buffer_size));
        }
        c.limits.validate().map_err(ConfigError::Limits)?;
        Ok(crate::Server {
            config: self.config,
        })
    }
}

/// A setting that cannot work.
#[derive(Debug)]
pub enum ConfigError {
    Workers(usize),
    Timeout { name: &'static str, value: Duration },
    MaxConnections(usize),
    RingEntries(u32),
    RecvBuffers(u16),
    RecvBufferSize(u32),
    Limits(LimitsError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Workers(n) => {
                write!(f, "workers must be between 1 and {MAX_WORKERS}, got {n}")
            }
            ConfigError::Timeout { name, value } => write!(
                f,
                "{name} must be more than zero and at most 24h, got {value:?}"
            ),
            ConfigError::MaxConnections(n) => write!(
                f,
                "max_connections must be between 1 and {}, got {n}",
                u32::MAX
            ),
            ConfigError::RingEntries(n) => write!(
                f,
                "ring_entries must be a power of two between 2 and 32768, got {n}"
            ),
            ConfigError::RecvBuffers(n) => write!(
                f,
                "recv buffer count must be a power of two between 1 and 32768, got {n}"
            ),
            ConfigError::RecvBufferSize(n) => write!(
                f,
                "recv buffer size must be between 1024 and 1048576 bytes, got {n}"
            ),
            ConfigError::Limits(e) => write!(f, "invalid HTTP limits: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Server;

    #[test]
    fn defaults_build() {
        let server = Server::builder().build().expect("defaults are valid");
        assert_eq!(server.config.header_timeout, DEFAULT_HEADER_TIMEOUT);
        assert_eq!(server.config.addrs.len(), 1);
    }

    #[test]
    fn zero_timeout_is_rejected_by_name() {
        let err = Server::builder()
            .idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("idle_timeout"), "{err}");
    }

    #[test]
    fn absurd_values_are_rejected() {
        assert!(Server::builder().workers(0).build().is_err());
        assert!(Server::builder().ring_entries(1000).build().is_err());
        assert!(Server::builder().max_connections(0).build().is_err());
        assert!(Server::builder()
            .header_timeout(Duration::from_secs(90_000))
            .build()
            .is_err());
        assert!(Server::builder().recv_buffers(1000, 4096).build().is_err());
    }
}
