//! The slowloris regression harness as a library: the `ringwall-bench
//! slowloris` command without the command line, for a test of your own
//! server.
//!
//! ```text
//!   Expectations (the deadlines the server claims, how hard to push) ─┐
//!   target ─► probe ─► per mode: legit load alone, then beside the attack ─► Report
//!                                                       judged by verdict::judge ┘
//!   report.assert_defended()  panics naming every failure, `MODE: why`
//! ```
//!
//! ```no_run
//! use std::time::Duration;
//! use ringwall_bench::slowloris::{self, Expectations};
//!
//! let target = "127.0.0.1:8080".parse().unwrap();
//! let expect = Expectations::new(Duration::from_secs(1))
//!     .idle_timeout(Duration::from_secs(5))
//!     .connections(50);
//! slowloris::run(target, &expect)?.assert_defended();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! It runs what the command runs (the same attack clients, the same
//! verdict), prints nothing, and never starts a server. An `Err` means it
//! could not run (no server at the target, a path that is not a request
//! target, a mode without its deadline): the command's exit status 2.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::attack::{
    run_attack_on, run_attack_on_with_load, AttackConfig, AttackMode, AttackPaths, AttackReport,
};
use crate::commands::probe;
use crate::json_report::{self, Setup};
use crate::load::{LoadConfig, LoadMode, RequestSpec};
use crate::report::{self, ModeRow};
use crate::sys;
use crate::verdict::{judge, ModeResult, Policy, Verdict};

/// One kind of slow client (`--modes`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A head that never ends: held to the header deadline.
    Slowloris,
    /// A body that drips: held to the body deadline.
    SlowBody,
    /// A response read one byte at a time: held to the write deadline.
    SlowRead,
    /// A keep-alive connection left silent: must not be closed early.
    Idle,
}

/// What the server claims and how hard to test it. [`Expectations::new`]
/// takes the header deadline and gives every other field the command's
/// default; set the others by field or with the methods of the same name.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Expectations {
    /// The server's header deadline, from accept to a complete head.
    pub header_timeout: Duration,
    /// The server's body deadline; with it, slow body runs by default.
    pub body_timeout: Option<Duration>,
    /// The server's write (send stall) deadline; with it, slow read runs by
    /// default.
    pub write_timeout: Option<Duration>,
    /// The server's keep-alive idle timeout; bounds the idle hold.
    pub idle_timeout: Option<Duration>,
    /// The modes to run; `None`: slowloris and idle, plus slow body and slow
    /// read when their deadlines are given.
    pub modes: Option<Vec<Mode>>,
    /// Attack connections per mode (200).
    pub connections: usize,
    /// A close later than deadline + slack is a hang (500 ms).
    pub slack: Duration,
    /// One byte per this interval; `None`: the mode's deadline / 10, within
    /// 10 ms..1 s.
    pub interval: Option<Duration>,
    /// The attack's connects are spread over this window (200 ms).
    pub open_over: Duration,
    /// How long idle connections sit; `None`: header deadline + 2 x slack,
    /// kept below the idle timeout minus slack.
    pub idle_hold: Option<Duration>,
    /// The response size slow read asks for (1 MiB): `{bytes}` in its path.
    pub slow_read_bytes: usize,
    /// The request target of each mode (the benchmark app's routes).
    pub paths: AttackPaths,
    /// Legit keep-alive connections beside each attack (8; 0: none).
    pub legit_connections: usize,
    /// Client threads of the legit load (1).
    pub legit_threads: usize,
    /// What legit load asks for and accepts: [`RequestSpec::Get`] (any
    /// framed 200, the default `GET /`) or [`RequestSpec::Hello`].
    pub legit_request: RequestSpec,
    /// Legit throughput under attack must keep this share (percent) of its
    /// baseline (0: not checked).
    pub min_legit_kept: f64,
    /// Timed modes fail when their overshoot p99 exceeds this.
    pub max_p99: Option<Duration>,
    /// Slow read fails, rather than warns, when the server FINs a timed-out
    /// reader while its response keeps arriving.
    pub require_reset_slow_read: bool,
}

impl Expectations {
    /// A server with this header deadline, tested at the command's defaults.
    pub fn new(header_timeout: Duration) -> Expectations {
        Expectations {
            header_timeout,
            body_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            modes: None,
            connections: 200,
            slack: Duration::from_millis(500),
            interval: None,
            open_over: Duration::from_millis(200),
            idle_hold: None,
            slow_read_bytes: 1 << 20,
            paths: AttackPaths::default(),
            legit_connections: 8,
            legit_threads: 1,
            legit_request: RequestSpec::Get("/".into()),
            min_legit_kept: 0.0,
            max_p99: None,
            require_reset_slow_read: false,
        }
    }

    pub fn body_timeout(mut self, d: Duration) -> Expectations {
        self.body_timeout = Some(d);
        self
    }

    pub fn write_timeout(mut self, d: Duration) -> Expectations {
        self.write_timeout = Some(d);
        self
    }

    pub fn idle_timeout(mut self, d: Duration) -> Expectations {
        self.idle_timeout = Some(d);
        self
    }

    pub fn modes(mut self, modes: &[Mode]) -> Expectations {
        self.modes = Some(modes.to_vec());
        self
    }

    pub fn connections(mut self, n: usize) -> Expectations {
        self.connections = n;
        self
    }

    pub fn legit_connections(mut self, n: usize) -> Expectations {
        self.legit_connections = n;
        self
    }

    pub fn max_p99(mut self, d: Duration) -> Expectations {
        self.max_p99 = Some(d);
        self
    }

    /// The thresholds the verdict holds each mode to.
    pub fn policy(&self) -> Policy {
        Policy {
            slack: self.slack,
            min_legit_kept: self.min_legit_kept,
            max_p99: self.max_p99,
            require_reset_slow_read: self.require_reset_slow_read,
        }
    }
}

/// Ten drips per deadline: enough to catch a server whose deadline moves
/// with each byte, few enough that thousands of connections stay cheap.
pub fn default_interval(deadline: Duration) -> Duration {
    (deadline / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// One mode about to run, as [`run_with_progress`] reports it.
#[derive(Clone, Copy, Debug)]
pub struct PlannedMode {
    pub mode: AttackMode,
    /// The deadline its closes are timed against.
    pub deadline: Duration,
}

/// What [`run_with_progress`] says as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// The target answered a connect; the descriptor limit is now this.
    Ready {
        nofile_limit: u64,
    },
    Starting(PlannedMode),
    Finished(&'a AttackReport),
}

struct ModeRun {
    planned: PlannedMode,
    window: Duration,
}

/// Runs every mode against `target` and judges it. Takes about twice each
/// mode's deadline plus slack and connect window per mode with legit load
/// (its baseline runs alone first), once without.
pub fn run(target: SocketAddr, expectations: &Expectations) -> io::Result<Report> {
    run_with_progress(target, expectations, |_| {})
}

/// [`run`], calling `progress` before and after each mode.
pub fn run_with_progress(
    target: SocketAddr,
    expectations: &Expectations,
    mut progress: impl FnMut(Progress<'_>),
) -> io::Result<Report> {
    let e = expectations;
    e.paths.validate()?;
    let runs = plan_modes(e)?;
    probe(target)?;
    let nofile_limit = sys::raise_nofile_limit(u64::MAX)?;
    progress(Progress::Ready { nofile_limit });
    let mut modes = Vec::with_capacity(runs.len());
    for run in &runs {
        let PlannedMode { mode, deadline } = run.planned;
        let attack = AttackConfig {
            target,
            mode,
            connections: e.connections,
            open_over: e.open_over,
            expected_timeout: deadline,
            slack: e.slack,
        };
        progress(Progress::Starting(run.planned));
        let (report, legit) = if e.legit_connections > 0 {
            let load = LoadConfig {
                target,
                mode: LoadMode::KeepAlive,
                connections: e.legit_connections,
                threads: e.legit_threads,
                duration: e.open_over + run.window + e.slack,
                max_requests: None,
                pace: None,
                request: e.legit_request.clone(),
            };
            let both = run_attack_on_with_load(&attack, &e.paths, &load)?;
            (both.attack.clone(), Some(both))
        } else {
            (run_attack_on(&attack, &e.paths)?, None)
        };
        progress(Progress::Finished(&report));
        modes.push(ModeResult {
            mode,
            deadline,
            window: run.window,
            attack: report,
            legit,
        });
    }
    let policy = e.policy();
    let verdicts = modes.iter().map(|m| judge(m, &policy)).collect();
    Ok(Report {
        target,
        expectations: e.clone(),
        modes,
        verdicts,
    })
}

fn plan_modes(e: &Expectations) -> io::Result<Vec<ModeRun>> {
    let chosen = e.modes.clone().unwrap_or_else(|| {
        let mut m = vec![Mode::Slowloris];
        if e.body_timeout.is_some() {
            m.push(Mode::SlowBody);
        }
        if e.write_timeout.is_some() {
            m.push(Mode::SlowRead);
        }
        m.push(Mode::Idle);
        m
    });
    let missing = |mode: &str, flag: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mode {mode} needs {flag}: the server's deadline to measure against"),
        )
    };
    let interval = |deadline| e.interval.unwrap_or(default_interval(deadline));
    let timed = |mode, deadline| ModeRun {
        planned: PlannedMode { mode, deadline },
        window: deadline,
    };
    let mut runs = Vec::new();
    for m in chosen {
        let run = match m {
            Mode::Slowloris => timed(
                AttackMode::Slowloris {
                    interval: interval(e.header_timeout),
                },
                e.header_timeout,
            ),
            Mode::SlowBody => {
                let t = e
                    .body_timeout
                    .ok_or_else(|| missing("slow-body", "--expect-body-timeout"))?;
                timed(
                    AttackMode::SlowBody {
                        interval: interval(t),
                    },
                    t,
                )
            }
            Mode::SlowRead => {
                let t = e
                    .write_timeout
                    .ok_or_else(|| missing("slow-read", "--expect-write-timeout"))?;
                timed(
                    AttackMode::SlowRead {
                        response_bytes: e.slow_read_bytes,
                        interval: interval(t),
                    },
                    t,
                )
            }
            Mode::Idle => {
                let hold = idle_hold(e)?;
                ModeRun {
                    planned: PlannedMode {
                        mode: AttackMode::Idle { hold },
                        deadline: e.idle_timeout.unwrap_or(hold),
                    },
                    window: hold,
                }
            }
        };
        runs.push(run);
    }
    Ok(runs)
}

/// Long enough to outlast the header deadline (a server that arms it on idle
/// keep-alive connections kills them), short enough to stay below
/// the idle timeout.
fn idle_hold(e: &Expectations) -> io::Result<Duration> {
    if let Some(hold) = e.idle_hold {
        return Ok(hold);
    }
    let mut hold = e.header_timeout + e.slack * 2;
    if let Some(idle) = e.idle_timeout {
        let ceiling = idle.saturating_sub(e.slack);
        if ceiling.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--expect-idle-timeout must exceed --slack",
            ));
        }
        if hold > ceiling {
            hold = ceiling;
            if hold <= e.header_timeout + e.slack {
                eprintln!(
                    "note: the idle hold ({:?}) cannot outlast the header deadline plus slack; \
                     idle mode then only checks that idle connections are not closed early",
                    hold
                );
            }
        }
    }
    Ok(hold)
}

/// A finished run: per mode what was seen and its verdict.
#[derive(Clone, Debug)]
pub struct Report {
    pub target: SocketAddr,
    pub expectations: Expectations,
    /// In the order they ran; `verdicts` is in step.
    pub modes: Vec<ModeResult>,
    pub verdicts: Vec<Verdict>,
}

impl Report {
    /// Every mode passed: no hang, early close, false kill or legit error,
    /// and none of the thresholds asked for was crossed.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(Verdict::passed)
    }

    /// Every failure as `MODE: why`, in the order the modes ran.
    pub fn failures(&self) -> Vec<String> {
        self.named(|v| &v.failures)
    }

    /// Every warning as `MODE: what`: worth knowing, fails nothing.
    pub fn warnings(&self) -> Vec<String> {
        self.named(|v| &v.warnings)
    }

    fn named(&self, pick: impl Fn(&Verdict) -> &Vec<String>) -> Vec<String> {
        self.modes
            .iter()
            .zip(&self.verdicts)
            .flat_map(|(m, v)| pick(v).iter().map(|s| format!("{}: {s}", m.name())))
            .collect()
    }

    /// Panics, naming the target and every failure, unless the run passed.
    #[track_caller]
    pub fn assert_defended(&self) {
        if !self.passed() {
            panic!(
                "{} is not defended against slow clients:\n  FAIL {}\n{}",
                self.target,
                self.failures().join("\n  FAIL "),
                self.table()
            );
        }
    }

    /// The table the command prints: per mode the counts, the overshoot and
    /// the legit load.
    pub fn table(&self) -> String {
        let rows: Vec<ModeRow<'_>> = self
            .modes
            .iter()
            .map(|m| ModeRow {
                mode: m.name(),
                attack: &m.attack,
                legit: m.legit.as_ref(),
            })
            .collect();
        report::attack_table(&rows)
    }

    /// The `--json` report, format [`json_report::FORMAT`].
    pub fn to_json(&self) -> serde_json::Value {
        let e = &self.expectations;
        let setup = Setup {
            target: self.target,
            connections: e.connections,
            open_over: e.open_over,
            legit_connections: e.legit_connections,
            header_timeout: e.header_timeout,
            body_timeout: e.body_timeout,
            write_timeout: e.write_timeout,
            idle_timeout: e.idle_timeout,
            paths: e.paths.clone(),
        };
        json_report::slowloris_report(&setup, &e.policy(), &self.modes, &self.verdicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_interval_is_a_tenth_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(default_interval(Duration::from_secs(2)), ms(200));
        assert_eq!(default_interval(ms(50)), ms(10));
        assert_eq!(
            default_interval(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn default_modes_follow_the_deadlines_given() {
        let names = |e: &Expectations| -> Vec<&str> {
            plan_modes(e)
                .unwrap()
                .iter()
                .map(|r| r.planned.mode.name())
                .collect()
        };
        let header = Expectations::new(Duration::from_secs(1));
        assert_eq!(names(&header), ["slowloris", "idle"]);
        let all = header
            .clone()
            .body_timeout(Duration::from_secs(2))
            .write_timeout(Duration::from_secs(3));
        assert_eq!(names(&all), ["slowloris", "slow-body", "slow-read", "idle"]);
    }

    #[test]
    fn a_mode_without_its_deadline_is_refused_before_any_connect() {
        let e = Expectations::new(Duration::from_secs(1)).modes(&[Mode::SlowBody]);
        // Nothing listens on port 1: the plan is refused before the probe.
        let err = run("127.0.0.1:1".parse().unwrap(), &e).unwrap_err();
        assert!(err.to_string().contains("--expect-body-timeout"), "{err}");
    }
}
