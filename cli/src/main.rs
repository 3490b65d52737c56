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
//! On SIGUSR2 restarts without downtime: starts itself again with every
//! listening socket passed down and hands over once the new process serves
//! (`upgrade`). With `--metrics-addr`, serves the counters in Prometheus'
//! text format while it runs, on a small ringwall server of its own
//! (`metrics_endpoint`), stopped and handed over with the main one.
//!
//! Its output is the engine's events and its own, through a `tracing` fmt
//! subscriber on stdout: `info` and up by default, `RUST_LOG` respected
//! (`RUST_LOG=info,ringwall::closes=debug` adds rate-limited events for
//! protocol errors and deadline closes). It exits with status 1 when a
//! worker fails.

// Every unsafe block says why its contract holds.
#![deny(clippy::undocumented_unsafe_blocks)]

mod metrics_endpoint;
mod sd_notify;
mod signals;
mod upgrade;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
// `500ms`, `2s`, `1.5s`, `1m`, `250us`: the spelling ringwall-bench writes too.
use humantime::parse_duration;
use metrics_endpoint::Listen;
use ringwall::activation::{activation_from_env, ListenerOrigin};
use ringwall::{benchmark_app, MinRate, Server, ServerHandle, StartError, Stats};
use signals::Signals;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use upgrade::Ending;

/// Where `ringwall serve` listens without `--addr` or systemd's sockets.
const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);

#[derive(Parser)]
#[command(
    name = "ringwall",
    version,
    about = "io_uring HTTP/1.1 server with kernel-precise deadlines",
    args_conflicts_with_subcommands = true,
    after_help = SIGNALS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `ringwall [options]` is `ringwall serve [options]`.
    #[command(flatten)]
    serve: ServeArgs,
}

/// Signals, in `--help`.
const SIGNALS_HELP: &str = "\
Signals:
  SIGINT, SIGTERM  stop accepting, finish in-flight requests within
                   --shutdown-timeout, print the counters, exit.
  SIGUSR2          restart without downtime: start this executable again
                   with the same arguments and every listening socket passed
                   down (LISTEN_FDS); once it serves, stop accepting, drain
                   and exit. If it does not serve within 10 s, keep serving.";

#[derive(Subcommand)]
enum Command {
    /// Serve the benchmark app (the default when no command is given).
    #[command(after_help = SIGNALS_HELP)]
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]. Not allowed under
    /// systemd socket activation, which passes the sockets to serve; after
    /// a SIGUSR2 restart, the sockets passed down are served instead.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Also serve the counters in Prometheus' text format at `GET /metrics`
    /// on this address (e.g. 127.0.0.1:9100; port 0 picks one), from a
    /// small server of its own (one worker, 256 connections, 5 s header
    /// and 10 s idle timeouts).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Share --addr with another process already listening on it with
    /// SO_REUSEPORT (another ringwall, say), the kernel spreading new
    /// connections over both. Without it, a port already served is refused
    /// at start.
    #[arg(long)]
    reuse_port: bool,
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
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_MIN_RATE.bytes_per_sec)]
    min_request_body_rate: u32,
    /// Minimum response rate in bytes/s after the grace period (0: off).
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_MIN_RATE.bytes_per_sec)]
    min_response_rate: u32,
    /// Grace period of both minimum rates.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    min_rate_grace: Duration,
    /// Connections one client address may hold at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_connections_per_ip: usize,
    /// Server-wide budget for buffered request bodies, in bytes.
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_MAX_BUFFERED_BODY_BYTES)]
    max_buffered_body_bytes: usize,
    /// Server-wide budget for request heads arriving in pieces, in bytes.
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_MAX_BUFFERED_HEAD_BYTES)]
    max_buffered_head_bytes: usize,
    /// Server-wide budget for queued response bytes, in bytes.
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_MAX_QUEUED_OUTPUT_BYTES)]
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
    /// Grace for in-flight requests on SIGINT/SIGTERM, and for the old
    /// process's connections after a SIGUSR2 restart.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    shutdown_timeout: Duration,
    /// Connections served at once, server-wide.
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Submission queue entries per worker (power of two).
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_RING_ENTRIES)]
    ring_entries: u32,
    /// Provided receive buffers per worker (power of two).
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_RECV_BUFFERS)]
    recv_buffers: u16,
    /// Size of each provided receive buffer, in bytes.
    #[arg(long, default_value_t = ringwall::defaults::DEFAULT_RECV_BUFFER_SIZE)]
    recv_buffer_size: u32,
}

/// A rate of 0 turns the minimum off.
fn min_rate(bytes_per_sec: u32, grace: Duration) -> Option<MinRate> {
    (bytes_per_sec > 0).then_some(MinRate::new(bytes_per_sec, grace))
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
    let activation = match activation_from_env() {
        Ok(activation) => activation,
        Err(e) => {
            eprintln!("ringwall: socket activation: {e}");
            return ExitCode::from(2);
        }
    };
    let from_parent = match activation.origin {
        Some(ListenerOrigin::Parent { pid }) => Some(pid),
        _ => None,
    };
    // A parent passes its metrics socket along with the served ones.
    let (metrics_passed, inherited): (Vec<_>, Vec<_>) = activation
        .listeners
        .into_iter()
        .partition(|l| from_parent.is_some() && l.name == upgrade::METRICS_FD_NAME);
    let cli = Cli::parse();
    install_log_subscriber();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let inherited_names: Vec<String> = inherited.iter().map(|l| l.name.clone()).collect();
    let server = match configure(&args, inherited, from_parent) {
        Ok(server) => server,
        Err(code) => return code,
    };
    // After a restart the parent's socket, which it bound: the address is
    // still served (by the parent, until it hands over), so not bound again.
    let metrics_listen = match metrics_passed.into_iter().next() {
        Some(passed) => Some(Listen::Passed(passed.fd)),
        None => args.metrics_addr.map(Listen::Bind),
    };
    let signals = Signals::block();
    match (from_parent, inherited_names.is_empty()) {
        (_, true) => {}
        (Some(pid), false) => tracing::info!(
            from = %format_args!("parent-pid-{pid}"),
            "serving the sockets the parent passed (restart)"
        ),
        (None, false) => tracing::info!(
            fd_names = %inherited_names.join(":"),
            "serving the sockets systemd passed (socket activation)"
        ),
    }
    // The engine logs its start line (`ringwall listening on ADDRS
    // backend=... workers=...`) once every worker accepts.
    let handle = match server.serve(benchmark_app) {
        Ok(handle) => handle,
        // The engine's words name its builder; these name the flag.
        Err(StartError::AddrInUse { addr }) => {
            tracing::error!(
                "cannot start: cannot listen on {addr}: another process already listens on it, \
                 and serving it too would split its connections; stop it or pick another \
                 --addr, or pass --reuse-port to share the port with it on purpose"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // After `Signals::block`: its worker inherits the mask.
    let metrics = match metrics_listen
        .map(|listen| metrics_endpoint::start(listen, handle.backend(), handle.stats_reader()))
        .transpose()
    {
        Ok(metrics) => metrics,
        Err(e) => {
            tracing::error!("cannot start the metrics endpoint (--metrics-addr): {e}");
            // A worker failure, if any, was logged when it happened.
            let _ = handle.shutdown();
            return ExitCode::FAILURE;
        }
    };
    if let Some(metrics) = &metrics {
        tracing::info!(
            "ringwall metrics on http://{}/metrics",
            metrics.local_addr()
        );
    }
    if let Some(ready) = activation.ready {
        // The parent hands over on this; if it is gone, we serve anyway.
        if let Err(e) = ready.notify() {
            tracing::warn!("cannot tell parent pid {from_parent:?} we serve: {e}");
        }
    }
    sd_notify::notify("READY=1");
    if serve_until_ended(handle, metrics, &signals, &inherited_names) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The server `args` describe, serving `inherited` sockets instead of
/// binding when a parent or systemd passed some; the exit code when the
/// settings cannot make one (the error already printed).
fn configure(
    args: &ServeArgs,
    inherited: Vec<ringwall::activation::InheritedListener>,
    from_parent: Option<u32>,
) -> Result<ringwall::Server, ExitCode> {
    let mut builder = Server::builder();
    match (args.addr, inherited.is_empty(), from_parent) {
        (Some(addr), true, _) => builder = builder.bind(addr),
        (None, true, _) => builder = builder.bind(DEFAULT_ADDR.into()),
        // After a restart `--addr` is the address the parent bound: its
        // sockets, passed down, are what to serve.
        (None, false, _) | (Some(_), false, Some(_)) => {
            for listener in inherited {
                builder = builder.listen_fd(listener.fd);
            }
        }
        (Some(addr), false, None) => {
            eprintln!(
                "ringwall: --addr {addr} given, but systemd passed {} socket(s) (LISTEN_FDS); \
                 drop --addr to serve the passed sockets",
                inherited.len()
            );
            return Err(ExitCode::from(2));
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
        .max_buffered_head_bytes(args.max_buffered_head_bytes)
        .max_queued_output_bytes(args.max_queued_output_bytes)
        .return_memory_to_os(!args.keep_freed_memory)
        .proxy_protocol(args.proxy_protocol)
        .reuse_port(args.reuse_port)
        .backend(args.backend);
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    builder.build().map_err(|e| {
        eprintln!("ringwall: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

/// Serves until a signal stops the server, a successor takes over
/// (SIGUSR2), or a worker fails, then stops both servers; true if neither
/// failed.
fn serve_until_ended(
    handle: ServerHandle,
    metrics: Option<ServerHandle>,
    signals: &Signals,
    inherited_names: &[String],
) -> bool {
    // Bound sockets get a name; passed ones keep theirs (their order in
    // `listeners` follows the bound ones).
    let served = handle.listeners();
    let bound = served.len() - inherited_names.len();
    let mut pass_down: Vec<(std::os::fd::BorrowedFd<'_>, &str)> = served
        .iter()
        .zip(std::iter::repeat_n("http", bound).chain(inherited_names.iter().map(String::as_str)))
        .map(|(fd, name)| (*fd, name))
        .collect();
    // The metrics server's one socket is passed too: the successor serves
    // the same address from the same socket, so a scrape queued in it
    // during the hand-over is answered by the successor.
    let metrics_served = metrics.as_ref().map(ServerHandle::listeners);
    for fd in metrics_served.iter().flatten() {
        pass_down.push((*fd, upgrade::METRICS_FD_NAME));
    }
    let finished =
        || handle.is_finished() || metrics.as_ref().is_some_and(ServerHandle::is_finished);
    let ending = upgrade::serve_until_ended(signals, &pass_down, finished);
    drop(pass_down);
    drop(served);
    drop(metrics_served);
    // The engine logs `ringwall stopped: <counters>` (and `ringwall metrics
    // stopped: ...`) in every case.
    match ending {
        Ending::Stop(signal) => {
            tracing::info!(signal = signals::name(signal), "shutting down");
            sd_notify::notify("STOPPING=1");
            stop_both(handle, metrics, ServerHandle::shutdown)
        }
        Ending::HandedOver { successor } => {
            tracing::info!("ringwall handing over to pid {successor}");
            sd_notify::notify(&format!("MAINPID={successor}"));
            stop_both(handle, metrics, ServerHandle::hand_over)
        }
        // A worker of one failed and stopped it.
        Ending::Finished => stop_both(handle, metrics, ServerHandle::shutdown),
    }
}

/// Stops the main server and the metrics server, if any, the same way
/// (shut down, or hand over), at the same time: the metrics server's own
/// grace is short, and waiting for it would hold the main one's stop back.
/// Logs a failure of either; true if neither failed.
fn stop_both(
    main: ServerHandle,
    metrics: Option<ServerHandle>,
    stop: fn(ServerHandle) -> Result<Stats, ringwall::ServeError>,
) -> bool {
    let report = |stopped: Result<Stats, ringwall::ServeError>, what: &str| match stopped {
        Ok(_) => true,
        Err(e) => {
            tracing::error!("{what}{e}");
            false
        }
    };
    std::thread::scope(|scope| {
        let metrics = metrics.map(|metrics| scope.spawn(move || stop(metrics)));
        let main_ok = report(stop(main), "");
        let metrics_ok = match metrics.map(|thread| thread.join()) {
            None => true,
            Some(Ok(stopped)) => report(stopped, "metrics server: "),
            // `shutdown` and `hand_over` catch the workers' panics.
            Some(Err(_)) => {
                tracing::error!("metrics server: its shutdown panicked");
                false
            }
        };
        main_ok && metrics_ok
    })
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
