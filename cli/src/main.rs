//! `ringwall serve`: the engine with the usual benchmark app.
//!
//! - POST, PUT, PATCH: the request body is echoed back;
//! - `GET /bytes/N`: N bytes (for slow-read tests), N up to 64 MiB;
//! - anything else: 200 `Hello, World!` (text/plain).
//!
//! Under systemd socket activation (`LISTEN_PID` naming this process,
//! `LISTEN_FDS`), serves the passed sockets instead of binding `--addr`;
//! giving `--addr` as well is an error, since one of the two would be
//! silently ignored.
//!
//! Shuts down gracefully on SIGINT or SIGTERM and prints the counters.
//! With `--metrics-addr`, serves them in Prometheus' text format while it
//! runs.
//!
//! Its output is the engine's events and its own, through a `tracing` fmt
//! subscriber on stdout: `info` and up by default, `RUST_LOG` respected
//! (`RUST_LOG=info,ringwall::closes=debug` adds rate-limited events for
//! protocol errors and deadline closes). It exits with status 1 when a
//! worker fails.

// Every unsafe block says why its contract holds.
#![deny(clippy::undocumented_unsafe_blocks)]

mod metrics_endpoint;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
// `500ms`, `2s`, `1.5s`, `1m`, `250us`: the spelling ringwall-bench writes too.
use humantime::parse_duration;
use metrics_endpoint::MetricsEndpoint;
use ringwall::{benchmark_app, listen_fds_from_env, MinRate, Server, ServerHandle};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Where `ringwall serve` listens without `--addr` or systemd's sockets.
const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);

#[derive(Parser)]
#[command(
    name = "ringwall",
    version,
    about = "io_uring HTTP/1.1 server with kernel-precise deadlines",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `ringwall [options]` is `ringwall serve [options]`.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the benchmark app (the default when no command is given).
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]. Not allowed under
    /// systemd socket activation, which passes the sockets to serve.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Also serve the counters in Prometheus' text format at `GET /metrics`
    /// on this address (e.g. 127.0.0.1:9100; port 0 picks one).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Time for a request head to arrive (e.g. 2s, 500ms).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    header_timeout: Duration,
    /// Time for an announced body to arrive.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    body_timeout: Duration,
    /// Time a keep-alive connection may sit idle.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    idle_timeout: Duration,
    /// Longest a response may go without any send making progress.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    write_timeout: Duration,
    /// Longest a handler that defers its answer may take to produce the
    /// response head; then 503 and close.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    handler_timeout: Duration,
    /// Minimum request-body rate in bytes/s after the grace period (0: off).
    #[arg(long, default_value_t = ringwall::DEFAULT_MIN_RATE.bytes_per_sec)]
    min_request_body_rate: u32,
    /// Minimum response rate in bytes/s after the grace period (0: off).
    #[arg(long, default_value_t = ringwall::DEFAULT_MIN_RATE.bytes_per_sec)]
    min_response_rate: u32,
    /// Grace period of both minimum rates.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    min_rate_grace: Duration,
    /// Connections one client address may hold at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_connections_per_ip: usize,
    /// Server-wide budget for buffered request bodies, in bytes.
    #[arg(long, default_value_t = ringwall::DEFAULT_MAX_BUFFERED_BODY_BYTES)]
    max_buffered_body_bytes: usize,
    /// Server-wide budget for queued response bytes, in bytes.
    #[arg(long, default_value_t = ringwall::DEFAULT_MAX_QUEUED_OUTPUT_BYTES)]
    max_queued_output_bytes: usize,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from
    /// a load balancer; request peer addresses come from it, and a
    /// connection without a valid one is closed without a response.
    #[arg(long)]
    proxy_protocol: bool,
    /// The I/O backend: `auto` (io_uring, or epoll where io_uring is
    /// refused: seccomp, kernel.io_uring_disabled, an old kernel),
    /// `io-uring` (fail where it is refused) or `epoll`.
    #[arg(long, default_value = "auto")]
    backend: ringwall::Backend,
    /// Leave glibc's malloc thresholds alone: large responses reuse heap
    /// memory (less CPU per large response) but RSS stays at its peak.
    #[arg(long)]
    keep_freed_memory: bool,
    /// Grace for in-flight requests on SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    shutdown_timeout: Duration,
    /// Connections served at once, server-wide.
    #[arg(long, default_value_t = ringwall::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Submission queue entries per worker (power of two).
    #[arg(long, default_value_t = ringwall::DEFAULT_RING_ENTRIES)]
    ring_entries: u32,
    /// Provided receive buffers per worker (power of two).
    #[arg(long, default_value_t = ringwall::DEFAULT_RECV_BUFFERS)]
    recv_buffers: u16,
    /// Size of each provided receive buffer, in bytes.
    #[arg(long, default_value_t = ringwall::DEFAULT_RECV_BUFFER_SIZE)]
    recv_buffer_size: u32,
}

/// A rate of 0 turns the minimum off.
fn min_rate(bytes_per_sec: u32, grace: Duration) -> Option<MinRate> {
    (bytes_per_sec > 0).then_some(MinRate::new(bytes_per_sec, grace))
}

/// Blocks SIGINT and SIGTERM in this thread (and the workers it spawns), so
/// they are taken only by `wait_for_signal`.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset is initialised by sigemptyset before use; the calls only
    // read and write this local set and the thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// How often the wait for a signal looks whether a worker failure stopped
/// the server.
const FAILURE_POLL: Duration = Duration::from_millis(200);

/// Waits for one of `set`'s signals; `None` if the server stopped on its
/// own first (a worker failed and stopped the others).
fn wait_for_signal(set: &libc::sigset_t, handle: &ServerHandle) -> Option<i32> {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: FAILURE_POLL.as_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: `set` is an initialised sigset, `timeout` a valid
        // timespec; no siginfo is asked for.
        let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
        if signal > 0 {
            return Some(signal);
        }
        // EAGAIN (the timeout) or EINTR: look, then wait again.
        if handle.is_finished() {
            return None;
        }
    }
}

/// Events go to stdout through a fmt subscriber: `info` unless `RUST_LOG`
/// says otherwise. No colours when stdout is not a terminal, so scripts
/// reading the lines see plain `name=value` fields.
fn install_log_subscriber() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

fn main() -> ExitCode {
    // First, while this is the only thread: it edits the environment.
    let inherited = match listen_fds_from_env() {
        Ok(inherited) => inherited,
        Err(e) => {
            eprintln!("ringwall: systemd socket activation: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse();
    install_log_subscriber();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let mut builder = Server::builder();
    let inherited_names: Vec<String> = inherited.iter().map(|l| l.name.clone()).collect();
    match (args.addr, inherited.is_empty()) {
        (Some(addr), true) => builder = builder.bind(addr),
        (None, true) => builder = builder.bind(DEFAULT_ADDR.into()),
        (None, false) => {
            for listener in inherited {
                builder = builder.listen_fd(listener.fd);
            }
        }
        (Some(addr), false) => {
            eprintln!(
                "ringwall: --addr {addr} given, but systemd passed {} socket(s) (LISTEN_FDS); \
                 drop --addr to serve the passed sockets",
                inherited.len()
            );
            return ExitCode::from(2);
        }
    }
    let mut builder = builder
        .header_timeout(args.header_timeout)
        .body_timeout(args.body_timeout)
        .idle_timeout(args.idle_timeout)
        .write_timeout(args.write_timeout)
        .handler_timeout(args.handler_timeout)
        .shutdown_timeout(args.shutdown_timeout)
        .max_connections(args.max_connections)
        .ring_entries(args.ring_entries)
        .recv_buffers(args.recv_buffers, args.recv_buffer_size)
        .min_request_body_rate(min_rate(args.min_request_body_rate, args.min_rate_grace))
        .min_response_rate(min_rate(args.min_response_rate, args.min_rate_grace))
        .max_connections_per_ip(args.max_connections_per_ip)
        .max_buffered_body_bytes(args.max_buffered_body_bytes)
        .max_queued_output_bytes(args.max_queued_output_bytes)
        .return_memory_to_os(!args.keep_freed_memory)
        .proxy_protocol(args.proxy_protocol)
        .backend(args.backend);
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ringwall: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let metrics = match args.metrics_addr.map(MetricsEndpoint::bind).transpose() {
        Ok(metrics) => metrics,
        Err(e) => {
            eprintln!("ringwall: cannot listen on --metrics-addr: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signals = block_signals();
    if !inherited_names.is_empty() {
        tracing::info!(
            fd_names = %inherited_names.join(":"),
            "serving the sockets systemd passed (socket activation)"
        );
    }
    // The engine logs its start line (`ringwall listening on ADDRS
    // workers=...`) once every worker accepts.
    let handle = match server.serve(benchmark_app) {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(metrics) = metrics {
        // After `block_signals`: the endpoint's thread inherits the mask.
        let started = metrics
            .local_addr()
            .and_then(|addr| metrics.spawn(handle.stats_reader()).map(|()| addr));
        match started {
            Ok(addr) => tracing::info!("ringwall metrics on http://{addr}/metrics"),
            Err(e) => {
                tracing::error!("cannot start the metrics endpoint: {e}");
                // A worker failure, if any, was logged when it happened.
                let _ = handle.shutdown();
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(signal) = wait_for_signal(&signals, &handle) {
        tracing::info!(signal, "shutting down");
    }
    // The engine logs `ringwall stopped: <counters>` either way.
    match handle.shutdown() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("2parsecs").is_err());
    }
}
