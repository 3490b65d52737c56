//! `ringwall-bench scale`: one server holding every connection this machine
//! allows at once: slowloris, idle keep-alive and legit keep-alive together.
//!
//! ```text
//!   t=0 ─────────── open_over ──── sample ──── header ───────── hold end
//!   slowloris  ──── connects ────── drip ───── closed by the server, each timed
//!   idle       ──── connects + one GET ─── silent, must stay open ───┤ we close
//!   legit      ──── keep-alive GET /, every answer checked ──────────┤
//!                                    │
//!   server /proc/PID: RSS and fd count before the run and at `sample`,
//!   when every connection is open and none is due yet
//! ```
//!
//! `sample` lies halfway between the last connect and the first header
//! deadline, so the growth in RSS is divided by the descriptors the server
//! really holds then (its `/proc/PID/fd` count), not by what was asked for.
//! The idle hold reaches past the last slowloris deadline plus slack, so the
//! idle connections are held through the whole burst of expiries: a close of
//! one of them is a false kill.
//!
//! The server is started here (`--server`) with the deadlines given, or named
//! with `--target` and `--pid`; then the flags say what it enforces.

use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::attack::{run_attack, AttackConfig, AttackMode, AttackReport};
use crate::commands::{probe, resolve};
use crate::json_report;
use crate::load::{run_load, LoadConfig, LoadMode, LoadReport, RequestSpec};
use crate::peers::{parse_duration, procfs, Deadlines, Peer, PeerConfig, ServerKind};
use crate::report::{self, ModeRow};
use crate::stats::OvershootSummary;
use crate::sys;
use crate::verdict::{judge, ModeResult, Policy};

#[derive(clap::Args, Clone, Debug)]
pub struct ScaleArgs {
    /// The server to start: ringwall or ringwall-epoll.
    #[arg(long, default_value = "ringwall", conflicts_with = "target")]
    pub server: ServerKind,
    /// A server already running, HOST:PORT, instead of starting one; needs --pid.
    #[arg(long, requires = "pid")]
    pub target: Option<String>,
    /// The PID of the --target server, whose /proc/PID RSS and fds are read.
    #[arg(long, requires = "target")]
    pub pid: Option<i32>,
    /// Slowloris connections: a partial head, one byte per --interval.
    #[arg(long, default_value_t = 10_000)]
    pub slowloris: usize,
    /// Idle keep-alive connections: one checked GET, then silence.
    #[arg(long, default_value_t = 9_000)]
    pub idle: usize,
    /// Legit keep-alive connections, every response checked.
    #[arg(long, default_value_t = 8)]
    pub legit: usize,
    /// Workers of the server started here.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The server's header deadline (set on the server started here).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub header_timeout: Duration,
    /// The server's keep-alive idle timeout: must outlast the idle hold.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Both attacks' connects are spread over this window; shorter than the
    /// header deadline, so that every connection is open at once.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub open_over: Duration,
    /// A slowloris close later than deadline + slack is a hang.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub slack: Duration,
    /// One slowloris byte per this interval. At 10,000 connections a drip
    /// every second is already 10,000 reads a second for the server.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The run's schedule, derived from the arguments and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// When RSS and fds are read: every connection open, none due.
    pub sample_at: Duration,
    /// How long each idle connection stays silent after its answer.
    pub idle_hold: Duration,
    /// How long legit load runs: through the last slowloris deadline.
    pub legit_for: Duration,
}

impl Schedule {
    pub fn new(
        header: Duration,
        idle_timeout: Duration,
        open_over: Duration,
        slack: Duration,
    ) -> Result<Schedule, String> {
        if open_over >= header {
            return Err(format!(
                "--open-over ({open_over:?}) must be shorter than --header-timeout ({header:?}): \
                 the first slowloris connections would be closed before the last are open"
            ));
        }
        // Even the first idle connection (opened at 0) is held past the last
        // slowloris deadline (open_over + header) plus slack, with slack to
        // spare: every idle connection sees the whole burst of expiries.
        let idle_hold = open_over + header + slack * 2;
        if idle_hold + slack >= idle_timeout {
            return Err(format!(
                "--idle-timeout ({idle_timeout:?}) must exceed the idle hold ({idle_hold:?} = \
                 header + 2 x slack) plus slack: a close at the idle deadline is no false kill"
            ));
        }
        Ok(Schedule {
            sample_at: open_over + (header - open_over) / 2,
            idle_hold,
            legit_for: open_over + header + slack,
        })
    }
}

/// The server's memory and descriptors, before and with every connection held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldMemory {
    pub rss_before: u64,
    pub rss_held: u64,
    pub fds_before: usize,
    pub fds_held: usize,
}

impl HeldMemory {
    /// Connections the server held at the sample: its new descriptors.
    pub fn held(&self) -> usize {
        self.fds_held.saturating_sub(self.fds_before)
    }

    /// RSS growth per held connection, in bytes.
    pub fn bytes_per_connection(&self) -> Option<f64> {
        let held = self.held();
        (held > 0).then(|| (self.rss_held as f64 - self.rss_before as f64) / held as f64)
    }
}

/// Everything one scale run saw.
#[derive(Clone, Debug)]
pub struct ScaleReport {
    pub slowloris: ModeResult,
    pub idle: ModeResult,
    pub legit: LoadReport,
    pub memory: HeldMemory,
    /// A slowloris close later than deadline + slack was a hang.
    pub slack: Duration,
}

impl ScaleReport {
    /// Why the run fails: hangs, early closes, false kills, failed connects,
    /// unusable idle connections, legit errors, or no legit answer at all.
    pub fn failures(&self) -> Vec<String> {
        let policy = Policy {
            slack: self.slack,
            ..Policy::default()
        };
        let mut failures = Vec::new();
        for m in [&self.slowloris, &self.idle] {
            for f in judge(m, &policy).failures {
                failures.push(format!("{}: {f}", m.name()));
            }
        }
        let errors = self.legit.errors.total();
        if errors > 0 {
            failures.push(format!("legit: {errors} errors ({})", self.legit.errors));
        }
        if self.legit.requests == 0 {
            failures.push("legit: no checked response at all".into());
        }
        failures
    }
}

/// Starts the server unless one was named, runs the scale run and prints it;
/// passes when [`ScaleReport::failures`] is empty.
pub fn run(args: &ScaleArgs) -> io::Result<bool> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let schedule = Schedule::new(
        args.header_timeout,
        args.idle_timeout,
        args.open_over,
        args.slack,
    )
    .map_err(invalid)?;
    if args.slowloris == 0 || args.idle == 0 {
        return Err(invalid(
            "--slowloris and --idle need one connection each at least".into(),
        ));
    }
    let total = args.slowloris + args.idle + args.legit;
    // Raised here, before the server starts, so that it inherits it too.
    sys::ensure_fd_capacity(total)?;
    let mut peer = None;
    let (target, pid) = match (&args.target, args.pid) {
        (Some(target), Some(pid)) => (resolve(target)?, pid),
        _ => {
            if !matches!(
                args.server,
                ServerKind::Ringwall | ServerKind::RingwallEpoll
            ) {
                return Err(invalid(format!(
                    "--server {}: scale starts ringwall or ringwall-epoll; name any other \
                     server with --target and --pid",
                    args.server
                )));
            }
            let config = PeerConfig {
                workers: args.workers,
                deadlines: Deadlines {
                    header: args.header_timeout,
                    idle: args.idle_timeout,
                    ..Deadlines::default()
                },
                max_connections: total + 1024,
                ..PeerConfig::default()
            };
            let started = Peer::start(args.server, &config).map_err(io::Error::other)?;
            let at = (started.addr(), started.pid());
            peer = Some(started);
            at
        }
    };
    probe(target)?;
    println!(
        "scale against {target} (pid {pid}): {} slowloris + {} idle keep-alive + {} legit, \
         opened over {:?}; header {:?}, idle {:?}, idle hold {:?}, slack {:?}; \
         RLIMIT_NOFILE {}",
        args.slowloris,
        args.idle,
        args.legit,
        args.open_over,
        args.header_timeout,
        args.idle_timeout,
        schedule.idle_hold,
        args.slack,
        sys::raise_nofile_limit(u64::MAX)?
    );
    let report = run_scale(args, &schedule, target, pid);
    if let Some(peer) = peer {
        if report.is_err() {
            eprintln!("server log:\n{}", peer.log_tail());
        }
        peer.stop();
    }
    let report = report?;
    print_report(&report);
    if let Some(path) = &args.json {
        json_report::write(path, &to_json(args, &report))?;
        println!("report written to {}", path.display());
    }
    let failures = report.failures();
    for f in &failures {
        println!("FAIL {f}");
    }
    if failures.is_empty() {
        println!("PASS: no hang, early close, false kill or legit error");
    }
    Ok(failures.is_empty())
}

fn run_scale(
    args: &ScaleArgs,
    schedule: &Schedule,
    target: std::net::SocketAddr,
    pid: i32,
) -> io::Result<ScaleReport> {
    let rss_before = procfs::tree_rss(pid)?;
    let fds_before = procfs::fd_count(pid)?;
    let slowloris = AttackConfig {
        target,
        mode: AttackMode::Slowloris {
            interval: args.interval,
        },
        connections: args.slowloris,
        open_over: args.open_over,
        expected_timeout: args.header_timeout,
        slack: args.slack,
    };
    let idle = AttackConfig {
        target,
        mode: AttackMode::Idle {
            hold: schedule.idle_hold,
        },
        connections: args.idle,
        open_over: args.open_over,
        expected_timeout: args.idle_timeout,
        slack: args.slack,
    };
    let legit = LoadConfig {
        target,
        mode: LoadMode::KeepAlive,
        connections: args.legit,
        threads: 1,
        duration: schedule.legit_for,
        max_requests: None,
        pace: None,
        request: RequestSpec::Hello,
    };
    let spawn = |name: &str, cfg: AttackConfig| {
        thread::Builder::new()
            .name(name.into())
            .spawn(move || run_attack(&cfg))
    };
    let slowloris_run = spawn("scale-slowloris", slowloris.clone())?;
    let idle_run = spawn("scale-idle", idle.clone())?;
    let legit_run = thread::Builder::new()
        .name("scale-legit".into())
        .spawn(move || {
            if legit.connections == 0 {
                Ok(LoadReport::default())
            } else {
                run_load(&legit)
            }
        })?;
    thread::sleep(schedule.sample_at);
    let memory = HeldMemory {
        rss_before,
        rss_held: procfs::tree_rss(pid)?,
        fds_before,
        fds_held: procfs::fd_count(pid)?,
    };
    let joined = |name: &str| io::Error::other(format!("the {name} thread panicked"));
    let slowloris_report = slowloris_run.join().map_err(|_| joined("slowloris"))??;
    let idle_report = idle_run.join().map_err(|_| joined("idle"))??;
    let legit_report = legit_run.join().map_err(|_| joined("legit"))??;
    Ok(ScaleReport {
        slowloris: ModeResult {
            mode: slowloris.mode,
            deadline: args.header_timeout,
            window: args.header_timeout,
            attack: slowloris_report,
            legit: None,
        },
        idle: ModeResult {
            mode: idle.mode,
            deadline: args.idle_timeout,
            window: schedule.idle_hold,
            attack: idle_report,
            legit: None,
        },
        legit: legit_report,
        memory,
        slack: args.slack,
    })
}

fn print_report(r: &ScaleReport) {
    let rows: Vec<ModeRow<'_>> = [&r.slowloris, &r.idle]
        .iter()
        .map(|m| ModeRow {
            mode: m.name(),
            attack: &m.attack,
            legit: None,
        })
        .collect();
    println!();
    print!("{}", report::attack_table(&rows));
    let o = &r.slowloris.attack.overshoot;
    println!(
        "slowloris close overshoot: p50 {} p99 {} max {} ({} timed closes); client lag p99 {}",
        report::us(o.p50_us),
        report::us(o.p99_us),
        report::us(o.max_us),
        o.count,
        report::us(r.slowloris.attack.client_lag.p99_us as f64)
    );
    println!(
        "legit keep-alive: {} checked responses, {:.0} req/s, {} errors",
        r.legit.requests,
        r.legit.requests_per_sec(),
        r.legit.errors.total()
    );
    let m = &r.memory;
    println!(
        "server: {} connections held at the sample; RSS {} -> {} = {} per connection",
        m.held(),
        report::bytes(m.rss_before),
        report::bytes(m.rss_held),
        m.bytes_per_connection()
            .map_or("-".into(), |b| format!("{b:.0} B"))
    );
}

fn overshoot_json(o: &OvershootSummary) -> serde_json::Value {
    json!({ "count": o.count, "p50_us": o.p50_us, "p99_us": o.p99_us, "max_us": o.max_us })
}

fn attack_json(a: &AttackReport) -> serde_json::Value {
    json!({
        "connections": a.connections,
        "opened": a.opened,
        "connect_failed": a.connect_failed,
        "closed": a.closed,
        "hangs": a.hangs,
        "early_closes": a.early_closes,
        "false_kills": a.false_kills,
        "idle_unusable": a.idle_unusable,
        "overshoot": overshoot_json(&a.overshoot),
    })
}

fn to_json(args: &ScaleArgs, r: &ScaleReport) -> serde_json::Value {
    let failures = r.failures();
    json!({
        "setup": {
            "server": args.target.as_ref().map_or(args.server.name().to_string(), Clone::clone),
            "slowloris": args.slowloris,
            "idle": args.idle,
            "legit": args.legit,
            "header_timeout_ms": args.header_timeout.as_millis() as u64,
            "idle_timeout_ms": args.idle_timeout.as_millis() as u64,
            "idle_hold_ms": r.idle.window.as_millis() as u64,
        },
        "slowloris": attack_json(&r.slowloris.attack),
        "idle": attack_json(&r.idle.attack),
        "legit": {
            "requests": r.legit.requests,
            "requests_per_sec": r.legit.requests_per_sec(),
            "errors": r.legit.errors.total(),
        },
        "memory": {
            "rss_before": r.memory.rss_before,
            "rss_held": r.memory.rss_held,
            "held": r.memory.held(),
            "bytes_per_connection": r.memory.bytes_per_connection(),
        },
        "passed": failures.is_empty(),
        "failures": failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_sample_falls_between_the_last_connect_and_the_first_deadline() {
        let s = Schedule::new(S(5), S(60), S(2), S(1)).unwrap();
        assert_eq!(s.sample_at, Duration::from_millis(3500));
        assert_eq!(s.idle_hold, S(9));
        assert_eq!(s.legit_for, S(8));
    }

    #[test]
    fn a_schedule_that_cannot_hold_everything_at_once_is_refused() {
        assert!(Schedule::new(S(5), S(60), S(5), S(1)).is_err());
        // The idle timeout would fall inside the idle hold.
        assert!(Schedule::new(S(5), S(10), S(2), S(1)).is_err());
        assert!(Schedule::new(S(5), S(11), S(2), S(1)).is_ok());
    }

    #[test]
    fn memory_is_divided_by_the_descriptors_the_server_gained() {
        let m = HeldMemory {
            rss_before: 1_000_000,
            rss_held: 3_000_000,
            fds_before: 10,
            fds_held: 4_010,
        };
        assert_eq!(m.held(), 4_000);
        assert_eq!(m.bytes_per_connection(), Some(500.0));
        let none = HeldMemory { fds_held: 10, ..m };
        assert_eq!(none.bytes_per_connection(), None);
    }
}
