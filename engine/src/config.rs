//! Server configuration: the builder, its defaults, and their validation.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use ringwall_h1::{Limits, LimitsError};
use ringwall_timers::MinRate;

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
/// Default write timeout: 30 s without any send progress (nginx's
/// `send_timeout` is 60 s between writes). Bounds a client that stops
/// reading; a client that keeps reading, however large the response, is
/// judged by the minimum response rate instead.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default handler timeout: 60 s from handing a request to a handler that
/// defers its answer until its response head (nginx's
/// `proxy_read_timeout` for an upstream's response is 60 s too). It bounds
/// a handler that never answers; a response body streamed after the head
/// is judged by the write timeout and the minimum response rate instead.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default minimum rates, request body and response: 240 bytes/s after a
/// 5 s grace period, Kestrel's defaults. A client that stays below it (a
/// slow-read or slow-body attacker) is cut off about `grace` after it falls
/// behind; an honest client on the slowest mobile link is far above it.
pub const DEFAULT_MIN_RATE: MinRate = MinRate::new(240, Duration::from_secs(5));
/// Default server-wide budget for buffered request bodies: 256 MiB. Body
/// bytes are counted as they arrive; the connection whose bytes do not fit
/// is answered 503 and closed. Counting arrivals rather than announced
/// lengths means a client that announces a large body and sends nothing
/// takes nothing from anyone. Without it, 1,000 connections each sending
/// 1 MiB less one byte held 1 GB.
pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 256 << 20;
/// Default server-wide budget for request heads held while they arrive in
/// pieces: 64 MiB, room for 4,000 partial heads at the 16 KiB limit, or
/// 65,000 at 1 KiB. A head that arrives whole in one read never counts;
/// the connection whose partial head does not fit is answered 503 and
/// closed. Without it, 10,000 connections each sending 15 KiB of header
/// fields and stalling held 163 MB, and the worst case at the default
/// limits is `max_head_bytes` x `max_connections`, 1.6 GB.
pub const DEFAULT_MAX_BUFFERED_HEAD_BYTES: usize = 64 << 20;
/// Default server-wide budget for queued response bytes: 512 MiB. While a
/// worker's share is used up it dispatches no new request (reading pauses)
/// until sends drain it; without it, 30 clients asking for 64 MiB and never
/// reading held 2 GB.
pub const DEFAULT_MAX_QUEUED_OUTPUT_BYTES: usize = 512 << 20;
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
/// so every buffer's first page ends up resident: 256 x 16 KiB keep about
/// 1 MiB per worker resident whatever the connection count, and each extra
/// buffer costs a page. Spread over 10,000 idle keep-alive connections on 2
/// workers that is about 210 of the 453 bytes of RSS per connection that
/// `ringwall-bench memory` measured on 2026-12-01 (BENCHMARKS.md, "Memory
/// per connection").
pub const DEFAULT_RECV_BUFFERS: u16 = 256;
/// Default size of each provided receive buffer, in bytes (16 KiB); see
/// [`DEFAULT_RECV_BUFFERS`].
pub const DEFAULT_RECV_BUFFER_SIZE: u32 = 16 * 1024;

/// Timeouts longer than this are rejected as a configuration mistake.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const MAX_WORKERS: usize = 1024;

/// A validated configuration. Build one with [`crate::Server::builder`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Addresses to bind (`ServerBuilder::bind`); `127.0.0.1:8080` when none is
    /// given and no socket is passed with `listen_fd`.
    pub addrs: Vec<SocketAddr>,
    /// Worker threads, each with its own ring (`ServerBuilder::workers`);
    /// default one per available core, 1..=1024.
    pub workers: usize,
    /// Time for a whole request head to arrive, fixed when armed
    /// (`ServerBuilder::header_timeout`); default 10 s.
    pub header_timeout: Duration,
    /// Time for a whole announced body to arrive after its head
    /// (`ServerBuilder::body_timeout`); default 30 s.
    pub body_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request
    /// (`ServerBuilder::idle_timeout`); default 60 s.
    pub idle_timeout: Duration,
    /// Longest a response may go without a send making progress
    /// (`ServerBuilder::write_timeout`); default 30 s.
    pub write_timeout: Duration,
    /// Time a deferred handler has to produce the response head, then 503
    /// (`ServerBuilder::handler_timeout`); default 60 s.
    pub handler_timeout: Duration,
    /// Time graceful shutdown waits for in-flight requests
    /// (`ServerBuilder::shutdown_timeout`); default 10 s.
    pub shutdown_timeout: Duration,
    /// Connections held at once by all workers together; the one over it gets
    /// 503 (`ServerBuilder::max_connections`); default 100,000.
    pub max_connections: usize,
    /// HTTP/1.1 request limits: head, header count, method, target and body
    /// size (`ServerBuilder::limits`); default [`Limits::new`].
    pub limits: Limits,
    /// Submission queue entries per worker, a power of two in 2..=32768
    /// (`ServerBuilder::ring_entries`); default 4096.
    pub ring_entries: u32,
    /// Provided receive buffers per worker, a power of two up to 32768
    /// (`ServerBuilder::recv_buffers`); default 256.
    pub recv_buffers: u16,
    /// Size of each provided receive buffer in bytes, 1 KiB..=1 MiB
    /// (`ServerBuilder::recv_buffers`); default 16 KiB.
    pub recv_buffer_size: u32,
    /// Multishot recv where the kernel accepts it, else single-shot
    /// (`ServerBuilder::recv_multishot`); default true.
    pub recv_multishot: bool,
    /// Minimum request body rate after a grace period, `None` for none
    /// (`ServerBuilder::min_request_body_rate`); default 240 B/s after 5 s.
    pub min_request_body_rate: Option<MinRate>,
    /// Minimum response rate after a grace period, `None` for none
    /// (`ServerBuilder::min_response_rate`); default 240 B/s after 5 s.
    pub min_response_rate: Option<MinRate>,
    /// Server-wide budget for buffered request bodies in bytes, split between
    /// workers; over it: 503 (`ServerBuilder::max_buffered_body_bytes`);
    /// default 256 MiB.
    pub max_buffered_body_bytes: usize,
    /// Server-wide budget for partial request heads in bytes, split between
    /// workers; over it: 503 (`ServerBuilder::max_buffered_head_bytes`);
    /// default 64 MiB.
    pub max_buffered_head_bytes: usize,
    /// Server-wide budget for queued response bytes, split between workers
    /// (`ServerBuilder::max_queued_output_bytes`); default 512 MiB.
    pub max_queued_output_bytes: usize,
    /// Connections one client address may hold at once; 0: no per-address
    /// limit (`ServerBuilder::max_connections_per_ip`); default 0.
    pub max_connections_per_ip: usize,
    /// Large buffers go back to the OS when freed
    /// (`ServerBuilder::return_memory_to_os`); default true.
    pub return_memory_to_os: bool,
    /// Each connection starts with a PROXY protocol header (v1 or v2)
    /// (`ServerBuilder::proxy_protocol`); default false.
    pub proxy_protocol: bool,
    /// The I/O backend (`ServerBuilder::backend`); default [`Backend::Auto`].
    pub backend: Backend,
    /// The cap of a request body streamed to the handler (413 above it);
    /// `u64::MAX`: none.
    pub max_streamed_body_bytes: u64,
    /// Bound addresses may be shared with sockets of other processes
    /// (`ServerBuilder::reuse_port`).
    pub reuse_port: bool,
    /// The name in the start and stop events, for a process that runs more
    /// than one server (`ServerBuilder::name`).
    pub name: Option<String>,
}

/// Which I/O backend the workers run on. Both serve through the same
/// connection driver: the same HTTP handling, deadlines, limits, counters
/// and shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring, or epoll when io_uring is refused (seccomp,
    /// `kernel.io_uring_disabled`, no kernel support, a missing feature);
    /// never on resource exhaustion, which is an error.
    #[default]
    Auto,
    /// io_uring only: starting fails, with the cause, where it is refused.
    IoUring,
    /// epoll, with one timerfd per worker for the deadlines.
    Epoll,
}

impl Backend {
    /// The name `--backend` takes and the start line prints.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io-uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Backend::Auto),
            "io-uring" | "io_uring" | "uring" => Ok(Backend::IoUring),
            "epoll" => Ok(Backend::Epoll),
            other => Err(format!(
                "unknown backend {other:?}: expected auto, io-uring or epoll"
            )),
        }
    }
}

/// Builds a [`crate::Server`]; every setting has a documented default.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    config: Config,
    /// Sockets passed in with [`ServerBuilder::listen_fd`]. Shared, not
    /// duplicated, when the builder is cloned: the server dups them per
    /// worker, and the last holder closes the original.
    inherited: Vec<Arc<OwnedFd>>,
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
                handler_timeout: DEFAULT_HANDLER_TIMEOUT,
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                limits: Limits::default(),
                ring_entries: DEFAULT_RING_ENTRIES,
                recv_buffers: DEFAULT_RECV_BUFFERS,
                recv_buffer_size: DEFAULT_RECV_BUFFER_SIZE,
                recv_multishot: true,
                backend: Backend::Auto,
                max_streamed_body_bytes: u64::MAX,
                min_request_body_rate: Some(DEFAULT_MIN_RATE),
                min_response_rate: Some(DEFAULT_MIN_RATE),
                max_buffered_body_bytes: DEFAULT_MAX_BUFFERED_BODY_BYTES,
                max_buffered_head_bytes: DEFAULT_MAX_BUFFERED_HEAD_BYTES,
                max_queued_output_bytes: DEFAULT_MAX_QUEUED_OUTPUT_BYTES,
                max_connections_per_ip: 0,
                return_memory_to_os: true,
                proxy_protocol: false,
                reuse_port: false,
                name: None,
            },
            inherited: Vec::new(),
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
    /// Serves a listening socket someone else bound: systemd's (see
    /// [`crate::activation::listen_fds_from_env`]), or a parent's. May be called more
    /// than once, and combined with [`ServerBuilder::bind`]; with at least
    /// one, the default address is not bound.
    ///
    /// One socket cannot be given `SO_REUSEPORT` siblings after the fact, so
    /// every worker gets its own `dup` of it and arms a multishot accept on
    /// it; the kernel lets several accepts wait on one listener and hands
    /// each connection to one of them. At shutdown each worker cancels its
    /// accept and closes its own dup, and the server closes this fd; the
    /// socket is never `shutdown()`, because whoever passed it (systemd, for
    /// the next instance) still listens on it. Connections that arrive after
    /// the accepts are cancelled wait in its backlog for the next owner.
    ///
    /// `serve` fails with [`crate::StartError::Inherited`] if the fd is not
    /// a listening IPv4 or IPv6 TCP socket.
    pub fn listen_fd(mut self, fd: OwnedFd) -> Self {
        self.inherited.push(Arc::new(fd));
        self
    }
    /// Worker threads, each with its own ring and listener. Default: one per
    /// available core.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self
    }
    /// The whole request head must arrive within this (default
    /// [`DEFAULT_HEADER_TIMEOUT`], 10 s; why that figure is on the
    /// constant). It starts at accept, at the first byte of the next request
    /// after a keep-alive wait, and for a partial pipelined head left in the
    /// buffer; with [`ServerBuilder::proxy_protocol`] the PROXY header
    /// shares it. It is armed once and never moved: bytes that arrive while
    /// it runs do not extend it, so a slowloris client dripping one byte at a
    /// time is closed at it, however busy it keeps the connection. It does
    /// not run while a keep-alive connection waits for its next request;
    /// [`ServerBuilder::idle_timeout`] judges that wait.
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.config.header_timeout = d;
        self
    }
    /// The whole announced body must arrive within this of its head
    /// (default 30 s). Absolute, unlike the write timeout: a body is held
    /// in memory (at most `max_body_bytes`), and this bounds how long. The
    /// minimum body rate cuts a dripping body off sooner.
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.config.body_timeout = d;
        self
    }
    /// How long a keep-alive connection may wait for its next request
    /// (default [`DEFAULT_IDLE_TIMEOUT`], 60 s): from the moment its last
    /// response has been sent whole to the next request's first byte; then
    /// it is closed, counted as `idle_timeout` and not logged (it is how most
    /// keep-alive connections end). The header deadline is not armed
    /// meanwhile: one armed on an idle connection would close well-behaved
    /// keep-alive clients at the header timeout.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.idle_timeout = d;
        self
    }
    /// The longest a response may go without any send making progress
    /// (default 30 s). Progress restarts it, so an honest slow reader of a
    /// large response is not cut off; the minimum response rate catches the
    /// reader that trickles just enough to avoid it. After the last
    /// response of a closing connection it also bounds the lingering close.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.config.write_timeout = d;
        self
    }
    /// How long a handler that defers its answer may take to produce the
    /// response head (default 60 s); then the server answers 503 and
    /// closes. Meanwhile the client is only waiting, so the header, idle
    /// and body timeouts do not run. A response body streamed after the
    /// head (server-sent events) is not limited by it.
    pub fn handler_timeout(mut self, d: Duration) -> Self {
        self.config.handler_timeout = d;
        self
    }
    /// How long graceful shutdown waits for in-flight requests.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.config.shutdown_timeout = d;
        self
    }
    /// Connections the whole server holds at once, all workers together
    /// (default [`DEFAULT_MAX_CONNECTIONS`], 100,000). A connection is
    /// admitted by one compare-and-swap on a shared count, so an accept
    /// storm cannot overrun it; the one over it gets a best-effort 503 and
    /// a close (counted in `cap_responses`). Each worker's connection table
    /// is reserved for this many up front (untouched pages cost nothing),
    /// and `serve` raises the soft `RLIMIT_NOFILE` to the hard limit and
    /// grows the descriptor table for this many, within that limit, before
    /// the first accept. See also [`ServerBuilder::max_connections_per_ip`].
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

    /// Minimum rate of an announced request body after a grace period
    /// (default [`DEFAULT_MIN_RATE`]: 240 B/s after 5 s), beside the
    /// absolute `body_timeout`. Its clock runs only while the server reads
    /// the body, never while the server itself is behind (output backed up,
    /// or the connection waiting for its turn). `None` disables it.
    pub fn min_request_body_rate(mut self, rate: Option<MinRate>) -> Self {
        self.config.min_request_body_rate = rate;
        self
    }

    /// Minimum rate at which a response must leave after a grace period
    /// (default [`DEFAULT_MIN_RATE`]: 240 B/s after 5 s), beside the
    /// `write_timeout` stall bound. Progress banks at most `grace` ahead, so
    /// a reader that stops is cut off within `grace` of its last progress,
    /// and one below the rate soon after it falls behind; such a
    /// connection is reset (RST), which frees the response still queued in
    /// the kernel. Its clock runs only while a send waits on the client.
    /// `None` disables it.
    pub fn min_response_rate(mut self, rate: Option<MinRate>) -> Self {
        self.config.min_response_rate = rate;
        self
    }

    /// Server-wide budget for buffered request bodies (default
    /// [`DEFAULT_MAX_BUFFERED_BODY_BYTES`]), split evenly between workers.
    pub fn max_buffered_body_bytes(mut self, n: usize) -> Self {
        self.config.max_buffered_body_bytes = n;
        self
    }

    /// Server-wide budget for request heads held while they arrive in
    /// pieces (default [`DEFAULT_MAX_BUFFERED_HEAD_BYTES`]), split evenly
    /// between workers. A head that arrives whole never counts; the
    /// connection whose partial head does not fit gets 503 and a close.
    pub fn max_buffered_head_bytes(mut self, n: usize) -> Self {
        self.config.max_buffered_head_bytes = n;
        self
    }

    /// Server-wide budget for queued response bytes (default
    /// [`DEFAULT_MAX_QUEUED_OUTPUT_BYTES`]), split evenly between workers.
    /// One response may overshoot it (it is checked before a request is
    /// dispatched, not in the middle of a response).
    pub fn max_queued_output_bytes(mut self, n: usize) -> Self {
        self.config.max_queued_output_bytes = n;
        self
    }

    /// Connections one client address may hold at once (default 0: no
    /// limit). Counted in a fixed table of 4,096 atomic counters indexed by
    /// a hash of the address (IPv6 by its /64), so it costs one
    /// `getpeername` per accept and no allocation; two addresses that share
    /// a counter share the limit, so a client may be refused early, never
    /// late. Refused connections get a best-effort 503.
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.config.max_connections_per_ip = n;
        self
    }

    /// Whether every connection, on every listener of this server, starts
    /// with a PROXY protocol header, v1 or v2 (default false). Turn it on
    /// only behind a load balancer that sends one: then
    /// [`crate::Request::peer_addr`] is the client's address the header
    /// carries (the socket's peer for a v2 LOCAL or v1 UNKNOWN header), and
    /// a connection whose first bytes are not a valid header is closed
    /// without a response, counted as `proxy_protocol_error`. The header
    /// must arrive within `header_timeout` of accept, like the first
    /// request head, whose deadline it shares. The per-address cap still
    /// counts the socket's peer (the load balancer). Off, a request line
    /// starting `PROXY ` is just an unknown method.
    pub fn proxy_protocol(mut self, enabled: bool) -> Self {
        self.config.proxy_protocol = enabled;
        self
    }

    /// Whether large buffers are given back to the OS when freed (default
    /// true). With glibc, `serve` then fixes the malloc mmap threshold at
    /// 128 KiB (`mallopt(M_MMAP_THRESHOLD)`), so a large response's buffer
    /// is unmapped on free; glibc's dynamic threshold otherwise rises after
    /// the first large free and RSS stays at its peak. The setting is
    /// process-wide; turn this off if the application tunes malloc itself.
    pub fn return_memory_to_os(mut self, enabled: bool) -> Self {
        self.config.return_memory_to_os = enabled;
        self
    }

    /// The I/O backend (default [`Backend::Auto`]: io_uring, falling back
    /// to epoll only where io_uring is refused).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.config.backend = backend;
        self
    }

    /// The largest request body a handler that streams bodies
    /// ([`Handler::streams_request_bodies`](crate::Handler::streams_request_bodies))
    /// may be sent: a larger `Content-Length`, or a chunked body growing
    /// past it, is answered 413. Default: no cap (`u64::MAX`), since a
    /// streamed body is never held whole: the worker holds at most
    /// [`BODY_HIGH_WATER`](crate::backpressure::BODY_HIGH_WATER) of it unread per
    /// connection, and the body deadlines still apply.
    pub fn max_streamed_body_bytes(mut self, bytes: u64) -> Self {
        self.config.max_streamed_body_bytes = bytes;
        self
    }

    /// Whether a bound address may be served together with another
    /// process (default false). This server's own workers always share each
    /// address through `SO_REUSEPORT`; off, `serve` first checks that no
    /// other socket listens on each address with a non-zero port, and fails
    /// with [`crate::StartError::AddrInUse`] if one does, because the kernel
    /// would otherwise let a second instance (of the same user) join the
    /// first one's reuseport group and take a share of its connections
    /// without a word. On, such an instance is joined, and the kernel
    /// spreads new connections over both. It is the joiner's choice: off
    /// does not stop a later server that turns it on from joining this one.
    /// Sockets passed with [`ServerBuilder::listen_fd`] are not bound, so
    /// not checked.
    pub fn reuse_port(mut self, enabled: bool) -> Self {
        self.config.reuse_port = enabled;
        self
    }

    /// A name for this server in its start and stop events (`ringwall NAME
    /// listening on ...`, `ringwall NAME stopped: ...`), for a process that
    /// runs more than one. Default: none (`ringwall listening on ...`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// Checks every setting; a zero or absurd value is an error naming it.
    pub fn build(mut self) -> Result<crate::Server, ConfigError> {
        if self.config.addrs.is_empty() && self.inherited.is_empty() {
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
            ("handler_timeout", c.handler_timeout),
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
        for (name, rate) in [
            ("min_request_body_rate", c.min_request_body_rate),
            ("min_response_rate", c.min_response_rate),
        ] {
            if let Some(rate) = rate {
                if rate.bytes_per_sec == 0 || rate.grace.is_zero() || rate.grace > MAX_TIMEOUT {
                    return Err(ConfigError::MinRate { name, rate });
                }
            }
        }
        for (name, value) in [
            ("max_buffered_body_bytes", c.max_buffered_body_bytes),
            ("max_buffered_head_bytes", c.max_buffered_head_bytes),
            ("max_queued_output_bytes", c.max_queued_output_bytes),
        ] {
            if value < c.workers {
                return Err(ConfigError::Budget { name, value });
            }
        }
        c.limits.validate().map_err(ConfigError::Limits)?;
        Ok(crate::Server {
            config: self.config,
            inherited: self.inherited,
        })
    }
}

/// A setting that cannot work.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The worker count is 0 or over 1024.
    Workers(usize),
    /// A timeout is zero or over 24 hours.
    Timeout {
        /// The setting's name, such as `"header_timeout"`.
        name: &'static str,
        /// The duration given.
        value: Duration,
    },
    /// The connection cap is 0 or over `u32::MAX`.
    MaxConnections(usize),
    /// The ring size is not a power of two in 2..=32768.
    RingEntries(u32),
    /// The receive buffer count is not a power of two in 1..=32768.
    RecvBuffers(u16),
    /// The receive buffer size is outside 1 KiB..=1 MiB.
    RecvBufferSize(u32),
    /// A minimum rate has 0 bytes/s, or a grace that is zero or over 24 hours.
    MinRate {
        /// The setting's name, such as `"min_response_rate"`.
        name: &'static str,
        /// The rate given.
        rate: MinRate,
    },
    /// A server-wide byte budget is below one byte per worker.
    Budget {
        /// The setting's name, such as `"max_queued_output_bytes"`.
        name: &'static str,
        /// The budget given, in bytes.
        value: usize,
    },
    /// The HTTP limits are invalid ([`Limits::validate`]).
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
            ConfigError::MinRate { name, rate } => write!(
                f,
                "{name} needs a rate above 0 bytes/s and a grace between 0 and 24h, got {} bytes/s after {:?}",
                rate.bytes_per_sec, rate.grace
            ),
            ConfigError::Budget { name, value } => write!(
                f,
                "{name} must be at least one byte per worker, got {value}"
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
        assert_eq!(server.config.handler_timeout, DEFAULT_HANDLER_TIMEOUT);
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
    fn handler_timeout_is_set_and_validated_like_the_others() {
        let server = Server::builder()
            .handler_timeout(Duration::from_secs(5))
            .build()
            .expect("5 s is valid");
        assert_eq!(server.config.handler_timeout, Duration::from_secs(5));
        for bad in [Duration::ZERO, Duration::from_secs(90_000)] {
            let err = Server::builder().handler_timeout(bad).build().unwrap_err();
            assert!(err.to_string().contains("handler_timeout"), "{err}");
        }
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
        let no_grace = MinRate::new(240, Duration::ZERO);
        let err = Server::builder()
            .min_response_rate(Some(no_grace))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("min_response_rate"), "{err}");
        assert!(Server::builder()
            .workers(2)
            .max_queued_output_bytes(1)
            .build()
            .is_err());
    }
}
