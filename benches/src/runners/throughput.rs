//! `ringwall-bench throughput`: plaintext requests per second and server CPU
//! per request, ringwall against its peers in the same run.
//!
//! All servers run at once; each round drives every load mode against every
//! server in turn (A B C D, D C B A, ...: reversed every other round) with
//! the same client settings, so drift on a shared machine spreads over all
//! of them. The table shows the
//! median of the rounds. Every response is checked by the load client
//! (status, framing, body): errors must be zero and are shown loudly when not.
//!
//! CPU per request is the server's `utime + stime` delta over the run
//! (`/proc`, summed over the process tree) divided by the requests: on a
//! small machine the load generator competes with the server for the same
//! cores, and CPU per request does not depend on who won. It is shown split
//! into user and system time too: the floor spends nearly all of its in the
//! kernel, so a server's user time is roughly what it adds.
//!
//! Two counts say where the kernel time goes, per request: context switches
//! (voluntary: the server blocked with nothing to do; involuntary: the
//! scheduler took its core away), summed over every thread of the tree
//! from `/proc/PID/task/TID/status` around the same measured run; and
//! syscalls, every entry into the kernel, counted on the
//! `raw_syscalls:sys_enter` tracepoint ([`crate::peers::syscalls`]) in a
//! separate run right after it (`--syscall-duration`): tracing slows every
//! syscall on the machine, and a server making more of them would pay more
//! of its CPU figure for being counted.
//!
//! The floor, `canned` (see [`crate::peers::floor`]), answers every request
//! head with fixed bytes and nothing else; the `vs canned` columns say how
//! far each server is from it. It never closes a connection, so it sits out
//! the churn load, which waits for the server's close.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::load::{run_load, LoadConfig, LoadMode, LoadReport, RequestSpec};
use crate::peers::procfs::{self, CtxSwitches};
use crate::peers::syscalls::SyscallCounter;
use crate::peers::{parse_duration, raise_nofile_limit, Floor, PeerConfig, ServerKind};
use crate::ErrorCounts;

use super::external::{ExternalTarget, Server};
use super::lineup::{self, THROUGHPUT_SERVERS};
use super::output::{self, DEFAULT_OUT};
use super::summary::{median, ratio};
use super::table::Table;

#[derive(clap::Args, Clone, Debug)]
pub struct ThroughputArgs {
    /// Length of each measured load run.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Rounds; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Servers to compare, in order.
    #[arg(long, value_delimiter = ',', default_value = THROUGHPUT_SERVERS)]
    pub servers: Vec<ServerKind>,
    /// A server already running, measured beside the started ones under
    /// NAME: `NAME=HOST:PORT[,PID]`; with the PID, its CPU columns are
    /// filled. Repeatable. It is never started, stopped or restarted.
    #[arg(long = "target", value_name = "NAME=HOST:PORT[,PID]")]
    pub targets: Vec<ExternalTarget>,
    /// Client connections, for every mode.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Requests per pipelined batch.
    #[arg(long, default_value_t = 16)]
    pub depth: usize,
    /// Which loads to run, in order (an A/B that is about one of them need
    /// not wait for the others).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "keep-alive,pipelined,churn"
    )]
    pub loads: Vec<LoadKind>,
    /// Load generator threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Server workers (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also run wrk (keep-alive, same connections and threads) as a cross-check.
    #[arg(long)]
    pub wrk: bool,
    /// Length of the separate run, after each measured one, whose syscalls
    /// are counted (raw_syscalls:sys_enter on the server's threads; needs
    /// root or CAP_PERFMON). 0s: no syscall column.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub syscall_duration: Duration,
    /// Directory for throughput.md.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
}

/// A load `--loads` can name.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    KeepAlive,
    Pipelined,
    Churn,
}

/// The loads of a run, in the order they alternate.
fn modes(loads: &[LoadKind], depth: usize) -> Vec<LoadMode> {
    loads
        .iter()
        .map(|load| match load {
            LoadKind::KeepAlive => LoadMode::KeepAlive,
            LoadKind::Pipelined => LoadMode::Pipelined { depth },
            LoadKind::Churn => LoadMode::Churn,
        })
        .collect()
}

fn mode_name(mode: LoadMode) -> String {
    match mode {
        LoadMode::KeepAlive => "keep-alive".into(),
        LoadMode::Pipelined { depth } => format!("pipelined x{depth}"),
        LoadMode::Churn => "churn".into(),
    }
}

/// One measured run against one server.
#[derive(Clone, Debug)]
pub struct Sample {
    pub requests_per_sec: f64,
    pub p99_us: u64,
    pub requests: u64,
    pub errors: ErrorCounts,
    /// Server CPU time per checked response, in microseconds.
    pub cpu_us_per_request: Option<f64>,
    /// The user-mode part of it.
    pub user_us_per_request: Option<f64>,
    /// The kernel part of it.
    pub system_us_per_request: Option<f64>,
    /// Syscalls of the server's threads per checked response, from the
    /// counted run that followed this one.
    pub syscalls_per_request: Option<f64>,
    /// Voluntary context switches of the server's threads per response.
    pub voluntary_cs_per_request: Option<f64>,
    /// Involuntary context switches of the server's threads per response.
    pub involuntary_cs_per_request: Option<f64>,
}

impl Sample {
    fn new(requests_per_sec: f64, p99_us: u64, requests: u64, errors: ErrorCounts) -> Sample {
        Sample {
            requests_per_sec,
            p99_us,
            requests,
            errors,
            cpu_us_per_request: None,
            user_us_per_request: None,
            system_us_per_request: None,
            syscalls_per_request: None,
            voluntary_cs_per_request: None,
            involuntary_cs_per_request: None,
        }
    }
}

fn cpu_per_request(cpu: Duration, requests: u64) -> Option<f64> {
    (requests > 0).then(|| cpu.as_secs_f64() * 1e6 / requests as f64)
}

fn count_per_request(count: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| count as f64 / requests as f64)
}

/// Runs `run` and fills in what the server's CPU cost per request of the
/// sample it returns, and its context switches per request, read from
/// `/proc` around it. A target given without a PID has no such figures.
fn with_cpu(server: &Server, run: impl FnOnce() -> io::Result<Sample>) -> io::Result<Sample> {
    let switches = || server.pid().map(procfs::tree_ctxt_switches).transpose();
    let before = server.usage()?;
    let switches_before = switches()?;
    let mut sample = run()?;
    let n = sample.requests;
    if let (Some(before), Some(after)) = (switches_before, switches()?) {
        let CtxSwitches {
            voluntary,
            involuntary,
        } = after.since(before);
        sample.voluntary_cs_per_request = count_per_request(voluntary, n);
        sample.involuntary_cs_per_request = count_per_request(involuntary, n);
    }
    let (Some(before), Some(after)) = (before, server.usage()?) else {
        return Ok(sample);
    };
    sample.cpu_us_per_request = cpu_per_request(after.cpu.saturating_sub(before.cpu), n);
    sample.user_us_per_request = cpu_per_request(after.user.saturating_sub(before.user), n);
    sample.system_us_per_request = cpu_per_request(after.system.saturating_sub(before.system), n);
    Ok(sample)
}

/// Runs `run` with the server's syscalls counted and returns them per
/// response, with the errors the run saw (they count like any others).
fn counting_syscalls(
    server: &Server,
    run: impl FnOnce() -> io::Result<Sample>,
) -> io::Result<(Option<f64>, ErrorCounts)> {
    let Some(pid) = server.pid() else {
        return Ok((None, ErrorCounts::default()));
    };
    let counter = SyscallCounter::open(pid)?;
    let before = counter.read()?;
    let sample = run()?;
    let after = counter.read()?;
    Ok((
        count_per_request(after.saturating_sub(before), sample.requests),
        sample.errors,
    ))
}

/// Whether this machine lets the runner count a server's syscalls: tried
/// on the runner itself, so a refusal is said once, before the rounds.
fn syscall_counting_available(args: &ThroughputArgs) -> bool {
    if args.syscall_duration.is_zero() {
        return false;
    }
    match SyscallCounter::open(std::process::id() as i32) {
        Ok(_) => true,
        Err(e) => {
            println!("syscalls/req: skipped: {e}");
            false
        }
    }
}

/// A measured run of `run`, then, when `count` is set, a counted run of
/// `counted` whose syscalls per response fill that column.
fn measure_cell(
    server: &Server,
    run: impl FnOnce() -> io::Result<Sample>,
    counted: Option<impl FnOnce() -> io::Result<Sample>>,
) -> io::Result<Sample> {
    let mut sample = with_cpu(server, run)?;
    if let Some(counted) = counted {
        let (syscalls, errors) = counting_syscalls(server, counted)?;
        sample.syscalls_per_request = syscalls;
        sample.errors.merge(&errors);
    }
    Ok(sample)
}

fn run_ours(cfg: &LoadConfig) -> io::Result<Sample> {
    let report: LoadReport = run_load(cfg)?;
    Ok(Sample::new(
        report.requests_per_sec(),
        report.latency.p99_us,
        report.requests,
        report.errors,
    ))
}

/// `wrk` keep-alive against `server` for `duration`: requests/s as wrk
/// reports it.
fn run_wrk(server: &Server, args: &ThroughputArgs, duration: Duration) -> io::Result<Sample> {
    let out = Command::new("wrk")
        .arg(format!("-t{}", args.threads.min(args.connections).max(1)))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg(format!("http://{}/", server.addr()))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = parse_wrk(&text).ok_or_else(|| {
        io::Error::other(format!(
            "unreadable wrk output: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    let errors = ErrorCounts {
        bad_status: parsed.non_2xx,
        reset: parsed.socket_errors,
        ..ErrorCounts::default()
    };
    Ok(Sample::new(
        parsed.requests_per_sec,
        parsed.p99_us,
        parsed.requests,
        errors,
    ))
}

/// The figures read from wrk's report.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkReport {
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p99_us: u64,
    pub non_2xx: u64,
    pub socket_errors: u64,
}

/// Parses wrk's text report (`--latency`).
pub fn parse_wrk(text: &str) -> Option<WrkReport> {
    let mut report = WrkReport {
        requests: 0,
        requests_per_sec: 0.0,
        p99_us: 0,
        non_2xx: 0,
        socket_errors: 0,
    };
    let mut saw_rate = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            report.requests_per_sec = rate.trim().parse().ok()?;
            saw_rate = true;
        } else if line.contains("requests in") {
            report.requests = words.first()?.parse().ok()?;
        } else if words.first() == Some(&"99%") {
            report.p99_us = parse_wrk_latency(words.get(1)?)?;
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = n.trim().parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            report.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    saw_rate.then_some(report)
}

/// `812.00us`, `1.23ms`, `2.00s` in microseconds.
fn parse_wrk_latency(text: &str) -> Option<u64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let scale = match &text[split..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some((value * scale).round() as u64)
}

/// The samples of one (load, server) cell over the rounds.
#[derive(Clone, Debug)]
struct Cell {
    load: String,
    server: String,
    samples: Vec<Sample>,
}

impl Cell {
    fn median_rps(&self) -> Option<f64> {
        median(
            &self
                .samples
                .iter()
                .map(|s| s.requests_per_sec)
                .collect::<Vec<_>>(),
        )
    }

    fn median_p99_us(&self) -> Option<f64> {
        median(
            &self
                .samples
                .iter()
                .map(|s| s.p99_us as f64)
                .collect::<Vec<_>>(),
        )
    }

    fn median_cpu(&self) -> Option<f64> {
        self.median_of(|s| s.cpu_us_per_request)
    }

    fn median_of(&self, figure: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(&self.samples.iter().filter_map(figure).collect::<Vec<_>>())
    }

    fn errors(&self) -> ErrorCounts {
        let mut total = ErrorCounts::default();
        for s in &self.samples {
            total.merge(&s.errors);
        }
        total
    }
}

fn table(cells: &[Cell]) -> Table {
    let mut t = Table::new(
        &[
            "load",
            "server",
            "req/s (median)",
            "vs ringwall",
            "vs canned",
            "p99 ms",
            "errors",
            "CPU us/req",
            "user",
            "sys",
            "syscalls/req",
            "vol cs/req",
            "invol cs/req",
            "CPU vs ringwall",
            "CPU vs canned",
        ],
        2,
    );
    let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    for c in cells {
        let same_load = |kind: ServerKind| {
            cells
                .iter()
                .find(|r| r.load == c.load && r.server == kind.name())
        };
        let reference = same_load(ServerKind::Ringwall);
        let floor = same_load(ServerKind::Canned);
        let errors = c.errors().total();
        t.row(vec![
            c.load.clone(),
            c.server.clone(),
            c.median_rps().map_or("-".into(), |v| format!("{v:.0}")),
            ratio(c.median_rps(), reference.and_then(Cell::median_rps)),
            ratio(c.median_rps(), floor.and_then(Cell::median_rps)),
            c.median_p99_us()
                .map_or("-".into(), |v| format!("{:.2}", v / 1e3)),
            if errors == 0 {
                "0".into()
            } else {
                format!("{errors} !!")
            },
            us(c.median_cpu()),
            us(c.median_of(|s| s.user_us_per_request)),
            us(c.median_of(|s| s.system_us_per_request)),
            us(c.median_of(|s| s.syscalls_per_request)),
            us(c.median_of(|s| s.voluntary_cs_per_request)),
            us(c.median_of(|s| s.involuntary_cs_per_request)),
            ratio(c.median_cpu(), reference.and_then(Cell::median_cpu)),
            ratio(c.median_cpu(), floor.and_then(Cell::median_cpu)),
        ]);
    }
    t
}

/// The per-request figures of one sample, for the progress lines.
fn per_request_line(s: &Sample) -> String {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    format!(
        "CPU {} us/req (user {} sys {})  syscalls/req {}  cs/req vol {} invol {}",
        f(s.cpu_us_per_request),
        f(s.user_us_per_request),
        f(s.system_us_per_request),
        f(s.syscalls_per_request),
        f(s.voluntary_cs_per_request),
        f(s.involuntary_cs_per_request),
    )
}

fn record(cells: &mut Vec<Cell>, load: &str, server: String, sample: Sample) {
    match cells
        .iter_mut()
        .find(|c| c.load == load && c.server == server)
    {
        Some(cell) => cell.samples.push(sample),
        None => cells.push(Cell {
            load: load.to_string(),
            server,
            samples: vec![sample],
        }),
    }
}

const NOTE: &str = "2-core machine: the load generator shares the cores with the server; \
                    CPU per request is the fairer figure. canned is the floor (fixed bytes per \
                    request head, no parser); it never closes, so it has no churn row. \
                    cs/req: context switches of all the server's threads \
                    (/proc/PID/task/TID/status), voluntary (it blocked) and involuntary \
                    (preempted), in the measured run. syscalls/req: every syscall of the \
                    server's threads (raw_syscalls:sys_enter, perf_event_open), counted in a \
                    separate run after each measured one, because tracing slows every syscall; \
                    an io_uring_enter is one syscall however many operations it carries";

/// What the run says about a `--target`: it is measured, never managed.
fn external_line(target: &ExternalTarget) -> String {
    let cpu = match target.pid {
        Some(pid) => format!("CPU from /proc/{pid} and its children"),
        None => "no PID, so no CPU columns".into(),
    };
    format!(
        "{}: external server at {}, not started or stopped by this run; {cpu}",
        target.name, target.addr
    )
}

pub fn run(args: &ThroughputArgs) -> io::Result<()> {
    // Read before the run: the commit and date of what is measured.
    let stamp = output::stamp();
    raise_nofile_limit(65_536)?;
    let config = PeerConfig {
        workers: lineup::workers(args.workers),
        ..PeerConfig::default()
    };
    let mut peers: Vec<Server> = lineup::lineup(&args.servers, Some(Floor::Throughput))
        .into_iter()
        .filter_map(|kind| lineup::start_or_skip(kind, &config))
        .map(Server::Started)
        .collect();
    for target in &args.targets {
        println!("{}", external_line(target));
    }
    peers.extend(args.targets.iter().cloned().map(Server::External));
    if peers.is_empty() {
        return Err(io::Error::other("no server could be started"));
    }
    let count_syscalls = syscall_counting_available(args);
    let use_wrk = args.wrk && crate::peers::find_executable("wrk", &[]).is_some();
    if args.wrk && !use_wrk {
        println!("wrk: skipped: not installed (apt-get install -y wrk)");
    }
    println!(
        "throughput: {} rounds x {:?} per load and server, c={} on {} client threads, {} server workers",
        args.rounds, args.duration, args.connections, args.threads, config.workers
    );
    let load = |peer: &Server, mode: LoadMode, duration: Duration| LoadConfig {
        target: peer.addr(),
        mode,
        connections: args.connections,
        threads: args.threads,
        duration,
        max_requests: None,
        pace: None,
        request: RequestSpec::Hello,
    };
    if peers.iter().any(|p| p.kind() == Some(ServerKind::Canned)) {
        println!("canned: churn skipped: it never closes a connection, churn waits for the server's close");
    }
    // Warm-up: first connections, lazy allocations, page faults.
    for peer in &peers {
        run_load(&load(peer, LoadMode::KeepAlive, Duration::from_secs(1)))?;
    }
    let mut cells = Vec::new();
    let mut wrk_cells = Vec::new();
    let indices: Vec<usize> = (0..peers.len()).collect();
    for round in 1..=args.rounds {
        // Reversed every other round: no server always runs first or last.
        let order = lineup::round_order(&indices, round);
        for mode in modes(&args.loads, args.depth) {
            for peer in order.iter().map(|&i| &peers[i]) {
                if mode == LoadMode::Churn && peer.kind() == Some(ServerKind::Canned) {
                    continue;
                }
                let sample = measure_cell(
                    peer,
                    || run_ours(&load(peer, mode, args.duration)),
                    count_syscalls.then_some(|| run_ours(&load(peer, mode, args.syscall_duration))),
                )?;
                println!(
                    "  round {round} {:<14} {:<8} {:>10.0} req/s  p99 {:>7.2} ms  errors {}  {}",
                    mode_name(mode),
                    peer.name(),
                    sample.requests_per_sec,
                    sample.p99_us as f64 / 1e3,
                    sample.errors,
                    per_request_line(&sample),
                );
                record(&mut cells, &mode_name(mode), peer.name(), sample);
            }
        }
        if use_wrk {
            for peer in order.iter().map(|&i| &peers[i]) {
                let sample = measure_cell(
                    peer,
                    || run_wrk(peer, args, args.duration),
                    count_syscalls.then_some(|| run_wrk(peer, args, args.syscall_duration)),
                )?;
                println!(
                    "  round {round} {:<14} {:<8} {:>10.0} req/s  (wrk)  {}",
                    "wrk keep-alive",
                    peer.name(),
                    sample.requests_per_sec,
                    per_request_line(&sample),
                );
                record(&mut wrk_cells, "wrk keep-alive", peer.name(), sample);
            }
        }
    }
    drop(peers);

    let t = table(&cells);
    println!("\n{}", t.text());
    println!("{NOTE}.");
    let loud: Vec<String> = cells
        .iter()
        .chain(&wrk_cells)
        .filter(|c| c.errors().total() > 0)
        .map(|c| {
            format!(
                "!! {} {}: {} errors: {}",
                c.load,
                c.server,
                c.errors().total(),
                c.errors()
            )
        })
        .collect();
    for line in &loud {
        println!("{line}");
    }
    let mut md = format!(
        "## Throughput\n\n{}\n\n`ringwall-bench throughput --duration {} --rounds {} \
         --syscall-duration {}` \
         (c={}, pipelined x{}, {} client threads, {} server workers; median of {} rounds)\n\n{}\n{NOTE}.\n",
        stamp,
        crate::peers::format_duration(args.duration),
        args.rounds,
        crate::peers::format_duration(args.syscall_duration),
        args.connections,
        args.depth,
        args.threads,
        config.workers,
        args.rounds,
        t.markdown()
    );
    if !wrk_cells.is_empty() {
        let w = table(&wrk_cells);
        println!(
            "\nwrk cross-check (keep-alive, -t{} -c{}):\n{}",
            args.threads,
            args.connections,
            w.text()
        );
        md.push_str(&format!(
            "\nwrk cross-check (keep-alive, `wrk -t{} -c{}`; wrk counts non-2xx and socket errors \
             but does not check bodies):\n\n{}",
            args.threads,
            args.connections,
            w.markdown()
        ));
    }
    for target in &args.targets {
        md.push_str(&format!("\n{}.\n", external_line(target)));
    }
    for line in &loud {
        md.push_str(&format!("\n**{line}**\n"));
    }
    let path = output::write(&args.out, "throughput.md", &md)?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  300.00us   9.12ms   80.00%
    Req/Sec    40.00k     2.00k   45.00k    70.00%
  Latency Distribution
     50%  790.00us
     75%    0.90ms
     90%    1.10ms
     99%    1.53ms
  801234 requests in 10.00s, 100.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 5
Requests/sec:  80123.40
Transfer/sec:     10.00MB
";

    #[test]
    fn wrk_report_is_parsed() {
        let r = parse_wrk(WRK).expect("parses");
        assert_eq!(r.requests, 801_234);
        assert_eq!(r.requests_per_sec, 80_123.4);
        assert_eq!(r.p99_us, 1530);
        assert_eq!(r.non_2xx, 5);
        assert_eq!(r.socket_errors, 3);
    }

    #[test]
    fn wrk_output_without_a_rate_is_rejected() {
        assert_eq!(
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused"),
            None
        );
    }

    fn cell(server: ServerKind, requests_per_sec: f64, cpu_us: f64) -> Cell {
        Cell {
            load: "keep-alive".into(),
            server: server.to_string(),
            samples: vec![Sample {
                cpu_us_per_request: Some(cpu_us),
                user_us_per_request: Some(cpu_us / 4.0),
                system_us_per_request: Some(cpu_us * 3.0 / 4.0),
                syscalls_per_request: Some(cpu_us / 8.0),
                voluntary_cs_per_request: Some(cpu_us / 16.0),
                involuntary_cs_per_request: Some(cpu_us / 32.0),
                ..Sample::new(requests_per_sec, 1000, 1000, ErrorCounts::default())
            }],
        }
    }

    #[test]
    fn table_reads_each_server_against_the_floor_and_splits_cpu() {
        let cells = [
            cell(ServerKind::Canned, 100_000.0, 4.0),
            cell(ServerKind::Ringwall, 80_000.0, 8.0),
        ];
        let text = table(&cells).text();
        let ringwall: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|columns| columns[..2] == ["keep-alive", "ringwall"])
            .expect("a ringwall row");
        // req/s, vs ringwall, vs canned, p99, errors, CPU, user, sys,
        // syscalls, voluntary and involuntary switches, CPU vs ringwall,
        // CPU vs canned.
        assert_eq!(
            ringwall[2..],
            [
                "80000", "1.00x", "0.80x", "1.00", "0", "8.00", "2.00", "6.00", "1.00", "0.50",
                "0.25", "1.00x", "2.00x"
            ]
        );
    }

    #[test]
    fn a_sample_without_figures_shows_dashes() {
        let cells = [Cell {
            load: "keep-alive".into(),
            server: "mine".into(),
            samples: vec![Sample::new(5000.0, 2000, 25_000, ErrorCounts::default())],
        }];
        let text = table(&cells).text();
        let row: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("keep-alive"))
            .expect("a row")
            .split_whitespace()
            .collect();
        assert_eq!(row[7..13], ["-", "-", "-", "-", "-", "-"]);
    }

    #[test]
    fn loads_run_in_the_order_given() {
        assert_eq!(
            modes(&[LoadKind::Churn, LoadKind::KeepAlive], 8),
            [LoadMode::Churn, LoadMode::KeepAlive]
        );
        assert_eq!(
            modes(&[LoadKind::Pipelined], 8),
            [LoadMode::Pipelined { depth: 8 }]
        );
    }

    #[test]
    fn counts_per_request_need_requests() {
        assert_eq!(count_per_request(150, 100), Some(1.5));
        assert_eq!(count_per_request(150, 0), None);
    }

    #[test]
    fn cpu_per_request_is_in_microseconds() {
        assert_eq!(
            cpu_per_request(Duration::from_secs(2), 1_000_000),
            Some(2.0)
        );
        assert_eq!(cpu_per_request(Duration::from_secs(2), 0), None);
    }
}
