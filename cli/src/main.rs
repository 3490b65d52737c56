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

// Every unsafe block says why its contract holds.
#![deny(clippy::undocumented_unsafe_blocks)]

mod metrics_endpoint;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
// `500ms`, `2s`, `1.5s`, `1m`, `250us`: the spelling ringwall-bench writes too.
use humantime::parse_duration;
use metrics_endpoint::MetricsEndpoint;
use ringwall::{benchmark_app, listen_fds_from_env, MinRate, Server};

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

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: `set` is an initialised sigset and `signal` a valid out-pointer.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
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
    let c = server.config().clone();
    let handle = match server.serve(benchmark_app) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("ringwall: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs: Vec<String> = handle
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    // Addresses joined without spaces: scripts take the first word.
    let origin = if inherited_names.is_empty() {
        String::new()
    } else {
        format!(
            " from=systemd-socket-activation fd_names={}",
            inherited_names.join(":")
        )
    };
    // Which backend runs, and for an auto that fell back, why (quoted: the
    // cause has spaces).
    let backend = match handle.fallback_reason() {
        Some(cause) => format!("{} io_uring_refused=\"{cause}\"", handle.backend()),
        None => handle.backend().to_string(),
    };
    println!(
        "ringwall listening on {}{origin} backend={} workers={} header_timeout={:?} body_timeout={:?} idle_timeout={:?} \
         write_timeout={:?} min_request_body_rate={} min_response_rate={} min_rate_grace={:?} \
         max_connections={} max_connections_per_ip={} max_buffered_body_bytes={} \
         max_queued_output_bytes={} ring_entries={} recv_buffers={}x{} max_head_bytes={} \
         max_body_bytes={} proxy_protocol={}",
        addrs.join(","),
        backend,
        c.workers,
        c.header_timeout,
        c.body_timeout,
        c.idle_timeout,
        c.write_timeout,
        args.min_request_body_rate,
        args.min_response_rate,
        args.min_rate_grace,
        c.max_connections,
        c.max_connections_per_ip,
        c.max_buffered_body_bytes,
        c.max_queued_output_bytes,
        c.ring_entries,
        c.recv_buffers,
        c.recv_buffer_size,
        c.limits.max_head_bytes,
        c.limits.max_body_bytes,
        c.proxy_protocol,
    );
    if let Some(metrics) = metrics {
        // After `block_signals`: the endpoint's thread inherits the mask.
        let started = metrics
            .local_addr()
            .and_then(|addr| metrics.spawn(handle.stats_reader()).map(|()| addr));
        match started {
            Ok(addr) => println!("ringwall metrics on http://{addr}/metrics"),
            Err(e) => {
                eprintln!("ringwall: cannot start the metrics endpoint: {e}");
                handle.shutdown();
                return ExitCode::FAILURE;
            }
        }
    }
    let signal = wait_for_signal(&signals);
    eprintln!("ringwall: signal {signal}, shutting down");
    let stats = handle.shutdown();
    println!("ringwall stopped: {stats}");
    ExitCode::SUCCESS
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
