//! `ringwall-bench soak`: every kind of client at once against one server,
//! for a while, watching what the server holds and whether it gives it back.
//!
//! ```text
//!                              ┌ legit keep-alive and churn, paced, every answer checked
//!   start ringwall ─► warm-up, ├ slowloris, slow-body, slow-read, idle keep-alive, head storm: waves
//!   (or --target      baseline ┤ resets mid-response, half-closes, malformed requests,     ─► settle ─► SIGTERM
//!    --pid)           fds, RSS │ deep HEAD pipelines, large-response non-readers,  for D      fds, RSS   counters
//!                              │ tiny chunks, fast and slow stream readers                 back?      add up?
//!                              └ metrics port: silent connections in waves, scrapes
//!   sampler, every second: fds, RSS, and on the server's port open and closing sockets and Send-Q
//! ```
//!
//! What fails a soak is in [`verdict`]: a wrong answer, a hang, a false kill,
//! counters that do not add up, descriptors or memory not given back. It
//! measures no throughput and no deadline precision (`throughput` and
//! `deadline` do), and talks to loopback only.

pub mod classes;
pub mod counters;
pub mod exchanges;
pub mod json;
pub mod sampler;
pub mod storms;
pub mod verdict;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use clap::ValueEnum as _;

use crate::attack::{AttackConfig, AttackMode};
use crate::commands::{default_interval, probe, resolve};
use crate::load::{LoadConfig, LoadMode, RequestSpec};
use crate::peers::{
    self, parse_duration, procfs, ringwall_command, sibling_binary, tcp_table, Deadlines,
    PeerConfig, Scratch, ServerProcess, Stopped, START_TIMEOUT,
};
use crate::sys;

use classes::{AfterHang, ClassReport};
use counters::find_counters;
use exchanges::{Ctx, ReadPace};
use sampler::{mib, Phase, Sampler};
use storms::Storm;
use verdict::{CounterCheck, Limits, Observed, Resources};

/// Arguments of `ringwall-bench soak`.
#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// How long every class of client runs at once.
    #[arg(short = 'd', long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// The ringwall binary to start (default: `ringwall` next to this
    /// binary, or $RINGWALL_BIN).
    #[arg(long, conflicts_with = "target")]
    pub server_bin: Option<PathBuf>,
    /// Worker threads of the started server.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// One more argument for the started server (repeatable), e.g.
    /// `--server-arg=--max-queued-output-bytes=1073741824`.
    #[arg(long, conflicts_with = "target", allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Soak a server the soak did not start, HOST:PORT (with --pid). Its
    /// counters cannot be read, so they are not checked.
    #[arg(long, requires = "pid")]
    pub target: Option<String>,
    /// The PID of the --target server, for /proc.
    #[arg(long, requires = "target")]
    pub pid: Option<i32>,
    /// The --target server's metrics port, HOST:PORT, for the metrics
    /// classes (a started server gets a `--metrics-addr` of its own).
    #[arg(long, requires = "target")]
    pub metrics_target: Option<String>,
    /// The metrics endpoint's header deadline: a silent connection to the
    /// metrics port must be closed by this plus the slack. The default is
    /// that of the endpoint served by a ringwall server of its own (5 s);
    /// the blocking endpoint before it had 2 s and served one connection at
    /// a time, which fails the metrics classes at either setting.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub metrics_header_timeout: Duration,
    /// Header deadline: given to the started server, or what --target enforces.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub header_timeout: Duration,
    /// Body deadline (as --header-timeout).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub body_timeout: Duration,
    /// Keep-alive idle timeout (as --header-timeout); idle clients hold
    /// for this minus twice the slack.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub idle_timeout: Duration,
    /// Write deadline (as --header-timeout).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub write_timeout: Duration,
    /// A close later than its deadline plus this is a hang. Generous:
    /// clients and server share the cores.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub slack: Duration,
    /// Connections per slowloris, slow-body and idle wave (slow-read: half).
    #[arg(long, default_value_t = 40)]
    pub wave: usize,
    /// Legit keep-alive requests per second, over 4 connections.
    #[arg(long, default_value_t = 1000)]
    pub legit_rate: u32,
    /// Legit churn connections per second (one request each), over 2 clients.
    #[arg(long, default_value_t = 50)]
    pub churn_rate: u32,
    /// A pipeline with no new response for this long is a hang.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub pipeline_stall: Duration,
    /// Longest wait, once every client is gone, for descriptors and memory
    /// to come back.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub settle: Duration,
    /// Descriptors allowed above the baseline after the settle.
    #[arg(long, default_value_t = 4)]
    pub fd_tolerance: usize,
    /// RSS allowed after the settle, as a multiple of the baseline.
    #[arg(long, default_value_t = 2.0)]
    pub rss_factor: f64,
    /// Print every Nth sample (0: about 60 rows whatever the duration).
    #[arg(long, default_value_t = 0)]
    pub print_every: usize,
    /// Bytes a second a slow stream reader takes: far above any minimum
    /// response rate (ringwall's is 240 B/s), far below what loopback
    /// delivers, so the server's sends stall and resume as the reader's
    /// window opens in bursts. The default is high enough that an answer
    /// larger than the kernel's buffers is read whole within a 60 s soak;
    /// a slower reader needs a longer soak for the same answer.
    #[arg(long, default_value_t = 256 * 1024)]
    pub slow_stream_rate: usize,
    /// Also write the classes, resources and verdict as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Leave these classes out (legit load always runs), e.g. to see what
    /// fails once a known failure is taken away.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub skip: Vec<Skippable>,
}

/// The classes `--skip` can leave out.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skippable {
    Slowloris,
    SlowBody,
    SlowRead,
    Idle,
    Reset,
    HalfClose,
    Malformed,
    Pipeline,
    NonReader,
    TinyChunks,
    FastStream,
    SlowStream,
    HeadStorm,
    /// Silent metrics connections and the scrapes beside them.
    Metrics,
}

/// Legit load alone before the baseline: the allocator's arenas and the
/// server's buffers exist by then, so the baseline is a warm server. Besides
/// `Hello`, the warm-up asks for the 1 MiB answers resets ask for all soak
/// long, so that a heap grown once for them is in the baseline, not
/// counted as memory kept.
const WARMUP: Duration = Duration::from_secs(2);
/// Warm-up answers of [`exchanges::RESET_RESPONSE_BYTES`] per second.
const WARMUP_LARGE_RATE: u32 = 20;
const KEEPALIVE_CONNECTIONS: usize = 4;
const CHURN_CONNECTIONS: usize = 2;
/// Each wave's connects are spread over this.
const WAVE_OPEN_OVER: Duration = Duration::from_secs(1);
/// Given to the started server, so SIGTERM ends it well within the stop grace.
const SHUTDOWN_TIMEOUT: &str = "2s";
/// Silent connections per metrics wave: enough that a serial endpoint
/// closes the later ones whole deadlines late, few enough to stay under any
/// sane connection cap beside a scraper.
pub const METRICS_SILENT_WAVE: usize = 8;
/// A scrape this often, all soak long.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

/// `soak`: runs everything, prints the samples, the classes, the server's
/// figures and the verdict; passes only if every check does.
pub fn run(args: &SoakArgs) -> io::Result<bool> {
    validate(args)?;
    // Before the server starts, so that it inherits the raised limit too.
    let nofile = sys::raise_nofile_limit(u64::MAX)?;
    let deadlines = Deadlines {
        header: args.header_timeout,
        body: args.body_timeout,
        idle: args.idle_timeout,
        write: args.write_timeout,
    };
    let limits = Limits {
        fd_tolerance: args.fd_tolerance,
        rss_factor: args.rss_factor,
    };
    let server = Server::start(args, deadlines)?;
    let (addr, pid, metrics) = (server.addr(), server.pid(), server.metrics());
    println!(
        "soak: {} against {addr} (pid {pid}, {}); deadlines {deadlines}; slack {:?}; RLIMIT_NOFILE {nofile}",
        peers::format_duration(args.duration),
        server.describe(),
        args.slack,
    );
    println!("{}", describe_classes(args, metrics));
    let expected = WARMUP + args.duration + args.idle_timeout + args.settle;
    let print_every = match args.print_every {
        0 => (expected.as_secs() / 60).max(1) as usize,
        n => n,
    };
    let max_samples = (expected + Duration::from_secs(120)).as_secs() as usize;
    let sampler = Sampler::start(pid, addr.port(), print_every, max_samples)?;

    let mut classes = warm_up(args, addr)?;
    let baseline = baseline(pid)?;
    println!(
        "baseline after the warm-up: fds {} rss {} MiB",
        baseline.fds,
        mib(baseline.rss)
    );

    let end = Instant::now() + args.duration;
    sampler.set_phase(Phase::Soak, Some(end));
    classes.extend(run_classes(args, addr, metrics, deadlines, end)?);
    let tail = Instant::now().saturating_duration_since(end);

    sampler.set_phase(Phase::Settle, None);
    let settle_start = Instant::now();
    let settled = settle(pid, baseline, &limits, args.settle);
    let settle_took = settle_start.elapsed();
    let send_q_after = tcp_table::read()
        .ok()
        .map(|t| tcp_table::port_use(&t, addr.port()));
    let samples = sampler.finish();
    let counters = server.stop();

    println!();
    println!("{}", classes::table(&classes));
    let peaks = sampler::peaks(&samples);
    println!(
        "baseline  fds {:>5}  rss {:>7} MiB  (after a {}s warm-up)",
        baseline.fds,
        mib(baseline.rss),
        WARMUP.as_secs()
    );
    println!(
        "peak      fds {:>5}  rss {:>7} MiB  Send-Q {} KiB  open {}  closing {}",
        peaks.fds,
        mib(peaks.rss),
        peaks.send_q / 1024,
        peaks.open,
        peaks.closing
    );
    match settled {
        Some(r) => println!(
            "settled   fds {:>5}  rss {:>7} MiB  Send-Q {} KiB  closing {}  (clients gone {:.1}s after the end, settled in {:.1}s of {:?})",
            r.fds,
            mib(r.rss),
            send_q_after.map_or(0, |p| p.send_q / 1024),
            send_q_after.map_or(0, |p| p.closing),
            tail.as_secs_f64(),
            settle_took.as_secs_f64(),
            args.settle
        ),
        None => println!("settled   the server was gone"),
    }
    match &counters {
        CounterCheck::NotChecked => {
            println!("counters  not checked: the soak did not start the server")
        }
        CounterCheck::Missing(why) => println!("counters  missing: {why}"),
        CounterCheck::Read(c) => println!("counters  {c}"),
    }
    let failures = verdict::judge(
        &Observed {
            classes: &classes,
            baseline,
            settled,
            counters: &counters,
        },
        &limits,
    );
    print_verdict(&failures);
    if let Some(path) = &args.json {
        let run = json::Run {
            target: addr,
            metrics,
            duration: args.duration,
        };
        let report = json::soak_report(
            &run, &classes, baseline, &peaks, settled, &counters, &failures,
        );
        crate::json_report::write(path, &report)?;
    }
    Ok(failures.is_empty())
}

/// One line per check, `ok` or each failure with its figures, then the sum.
fn print_verdict(failures: &[verdict::Failure]) {
    println!();
    for check in verdict::CHECKS {
        let failed: Vec<_> = failures.iter().filter(|f| f.check == check).collect();
        if failed.is_empty() {
            println!("ok   {check}");
        }
        for f in failed {
            println!("FAIL {f}");
        }
    }
    if failures.is_empty() {
        println!("PASS");
    } else {
        let names: Vec<&str> = verdict::CHECKS
            .into_iter()
            .filter(|check| failures.iter().any(|f| f.check == *check))
            .collect();
        println!("FAIL: {}", names.join(", "));
    }
}

fn validate(args: &SoakArgs) -> io::Result<()> {
    let bad = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    if args.duration.is_zero() {
        return bad("--duration must be positive".into());
    }
    if args.idle_timeout <= args.slack * 2 {
        return bad(format!(
            "--idle-timeout ({:?}) must exceed twice the slack ({:?}): idle clients hold for the difference",
            args.idle_timeout, args.slack
        ));
    }
    if args.wave < 2 || args.legit_rate == 0 || args.churn_rate == 0 || args.workers == 0 {
        return bad(
            "--wave needs 2 or more; --legit-rate, --churn-rate and --workers 1 or more".into(),
        );
    }
    if args.slow_stream_rate < 1024 {
        return bad(format!(
            "--slow-stream-rate {} B/s: a reader below 1 KiB/s is a slow-read attacker, not a slow reader",
            args.slow_stream_rate
        ));
    }
    if args.rss_factor < 1.0 {
        return bad(
            "--rss-factor below 1 would fail a server for using what it used at rest".into(),
        );
    }
    Ok(())
}

/// How long idle clients hold their connection: below the idle timeout by
/// twice the slack, so the server's own timer never races the hold.
fn idle_hold(args: &SoakArgs) -> Duration {
    args.idle_timeout - args.slack * 2
}

/// What a slow reader asks for: twice the largest send buffer the kernel
/// lets a socket grow to (`tcp_wmem`'s maximum), so the server can never
/// hand the whole answer to its kernel and be done; within 1..64 MiB.
fn slow_read_bytes() -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    (2 * wmem_max).clamp(1 << 20, exchanges::LARGE_BYTES)
}

/// What a slow stream reader asks for: the slow reader's size (more than the
/// kernel can buffer), or less if the soak is too short to read that much
/// at `--slow-stream-rate` in 60 % of it; 1 MiB at least.
fn slow_stream_bytes(args: &SoakArgs) -> usize {
    let fits = (args.slow_stream_rate as f64 * args.duration.as_secs_f64() * 0.6) as usize;
    fits.clamp(1 << 20, slow_read_bytes().max(1 << 20))
}

/// Connections per head-storm wave.
fn head_storm_wave(args: &SoakArgs) -> usize {
    args.wave * 2
}

fn describe_classes(args: &SoakArgs, metrics: Option<SocketAddr>) -> String {
    format!(
        "classes: legit keep-alive {KEEPALIVE_CONNECTIONS} conns at {} req/s and churn at {} conn/s \
         (answers checked); waves of {w} slowloris, {w} slow-body, {} slow-read ({} MiB), {w} idle \
         (hold {:?}), {} head-storm (15 KiB heads); reset x2, half-close x2, malformed x2, \
         pipeline x1 ({} HEAD /bytes/{}; none after a stall), non-reader x4 (GET /bytes/{}), \
         tiny-chunks x2 ({}-{} one-byte chunks), fast-stream x1 ({} MiB), slow-stream x2 \
         ({:.1} MiB at {} KiB/s); {}{}",
        args.legit_rate,
        args.churn_rate,
        args.wave / 2,
        slow_read_bytes() >> 20,
        idle_hold(args),
        head_storm_wave(args),
        exchanges::PIPELINE_DEPTH,
        exchanges::LARGE_BYTES,
        exchanges::LARGE_BYTES,
        exchanges::TINY_CHUNKS_MIN,
        exchanges::TINY_CHUNKS_MAX,
        exchanges::FAST_STREAM_BYTES >> 20,
        slow_stream_bytes(args) as f64 / f64::from(1 << 20),
        args.slow_stream_rate / 1024,
        match metrics {
            Some(m) => format!(
                "metrics {m}: waves of {METRICS_SILENT_WAVE} silent (deadline {:?}), a scrape every {:?} \
                 (answered within {:?})",
                args.metrics_header_timeout, SCRAPE_EVERY, args.slack
            ),
            None => "no metrics port: metrics classes not run".to_string(),
        },
        if args.skip.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = args
                .skip
                .iter()
                .filter_map(|c| Some(c.to_possible_value()?.get_name().to_string()))
                .collect();
            format!("; skipped: {}", names.join(", "))
        },
        w = args.wave,
    )
}

fn legit_load(
    target: SocketAddr,
    mode: LoadMode,
    request: RequestSpec,
    connections: usize,
    per_second: u32,
    duration: Duration,
) -> LoadConfig {
    LoadConfig {
        target,
        mode,
        connections,
        threads: 1,
        duration,
        max_requests: None,
        request,
        pace: Some(Duration::from_secs_f64(
            connections as f64 / f64::from(per_second),
        )),
    }
}

/// Legit keep-alive, churn and 1 MiB answers alone, for [`WARMUP`].
fn warm_up(args: &SoakArgs, addr: SocketAddr) -> io::Result<Vec<ClassReport>> {
    let keepalive = legit_load(
        addr,
        LoadMode::KeepAlive,
        RequestSpec::Hello,
        KEEPALIVE_CONNECTIONS,
        args.legit_rate,
        WARMUP,
    );
    let churn = legit_load(
        addr,
        LoadMode::Churn,
        RequestSpec::Hello,
        CHURN_CONNECTIONS,
        args.churn_rate,
        WARMUP,
    );
    let large = legit_load(
        addr,
        LoadMode::KeepAlive,
        RequestSpec::Bytes(exchanges::RESET_RESPONSE_BYTES),
        2,
        WARMUP_LARGE_RATE,
        WARMUP,
    );
    thread::scope(|s| {
        let k = s.spawn(|| classes::legit("warm-up keep-alive", &keepalive));
        let c = s.spawn(|| classes::legit("warm-up churn", &churn));
        let l = s.spawn(|| classes::legit("warm-up 1 MiB", &large));
        Ok(vec![joined(k)??, joined(c)??, joined(l)??])
    })
}

fn joined<T>(h: thread::ScopedJoinHandle<'_, T>) -> io::Result<T> {
    h.join()
        .map_err(|_| io::Error::other("a soak client thread panicked"))
}

/// Every class at once until `end`; returns when each has finished what it
/// started.
fn run_classes(
    args: &SoakArgs,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    deadlines: Deadlines,
    end: Instant,
) -> io::Result<Vec<ClassReport>> {
    let duration = end.saturating_duration_since(Instant::now());
    let keepalive = legit_load(
        addr,
        LoadMode::KeepAlive,
        RequestSpec::Hello,
        KEEPALIVE_CONNECTIONS,
        args.legit_rate,
        duration,
    );
    let churn = legit_load(
        addr,
        LoadMode::Churn,
        RequestSpec::Hello,
        CHURN_CONNECTIONS,
        args.churn_rate,
        duration,
    );
    let attack = |mode: AttackMode, connections: usize, expected: Duration| AttackConfig {
        target: addr,
        mode,
        connections,
        open_over: WAVE_OPEN_OVER,
        expected_timeout: expected,
        slack: args.slack,
    };
    // A wave lasts its connects' spread, the deadline (or the hold) and the slack.
    let wave_len = |t: Duration| WAVE_OPEN_OVER + t + args.slack;
    let waves = [
        (
            Skippable::Slowloris,
            "slowloris",
            attack(
                AttackMode::Slowloris {
                    interval: default_interval(deadlines.header),
                },
                args.wave,
                deadlines.header,
            ),
            wave_len(deadlines.header),
        ),
        (
            Skippable::SlowBody,
            "slow-body",
            attack(
                AttackMode::SlowBody {
                    interval: default_interval(deadlines.body),
                },
                args.wave,
                deadlines.body,
            ),
            wave_len(deadlines.body),
        ),
        (
            Skippable::SlowRead,
            "slow-read",
            attack(
                AttackMode::SlowRead {
                    response_bytes: slow_read_bytes(),
                    interval: default_interval(deadlines.write),
                },
                args.wave / 2,
                deadlines.write,
            ),
            wave_len(deadlines.write),
        ),
        (
            Skippable::Idle,
            "idle",
            attack(
                AttackMode::Idle {
                    hold: idle_hold(args),
                },
                args.wave,
                deadlines.idle,
            ),
            wave_len(idle_hold(args)),
        ),
    ];
    let ctx = Ctx {
        target: addr,
        deadlines,
        slack: args.slack,
        end,
        pipeline_stall: args.pipeline_stall,
    };
    let ctx = &ctx;
    let bad_requests = exchanges::malformed_requests();
    let bad_requests = &bad_requests;
    let head_storm = Storm {
        target: addr,
        connections: head_storm_wave(args),
        opening: storms::storm_head(),
        deadline: deadlines.header,
        slack: args.slack,
        open_over: WAVE_OPEN_OVER.min(deadlines.header / 2),
    };
    let head_storm = &head_storm;
    let metrics_silent = metrics.map(|m| Storm {
        target: m,
        connections: METRICS_SILENT_WAVE,
        opening: Vec::new(),
        deadline: args.metrics_header_timeout,
        slack: args.slack,
        open_over: Duration::from_millis(200).min(args.metrics_header_timeout / 2),
    });
    let metrics_silent = metrics_silent.as_ref();
    let slow_stream_bytes = slow_stream_bytes(args);
    let slow_stream_takes =
        Duration::from_secs_f64(slow_stream_bytes as f64 / args.slow_stream_rate as f64);
    let ms = Duration::from_millis;
    thread::scope(|s| {
        let legit = [
            s.spawn(|| classes::legit("legit keep-alive", &keepalive)),
            s.spawn(|| classes::legit("legit churn", &churn)),
        ];
        let wanted = |class| !args.skip.contains(&class);
        let mut attackers: Vec<_> = waves
            .iter()
            .filter(|(class, ..)| wanted(*class))
            .map(|(_, name, cfg, len)| s.spawn(move || classes::attack_waves(name, cfg, *len, end)))
            .collect();
        if wanted(Skippable::HeadStorm) {
            attackers.push(s.spawn(move || storms::storm_waves("head-storm", head_storm, end)));
        }
        if let Some(silent) = metrics_silent.filter(|_| wanted(Skippable::Metrics)) {
            attackers.push(s.spawn(move || storms::storm_waves("metrics-silent", silent, end)));
        }
        let mut one_connection = Vec::new();
        if wanted(Skippable::Reset) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("reset", 2, ms(50), AfterHang::Continue, end, |_| {
                    exchanges::reset_mid_response(ctx)
                })
            }));
        }
        if wanted(Skippable::HalfClose) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("half-close", 2, ms(50), AfterHang::Continue, end, |_| {
                    exchanges::half_close(ctx)
                })
            }));
        }
        if wanted(Skippable::Malformed) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("malformed", 2, ms(20), AfterHang::Continue, end, |n| {
                    exchanges::malformed(ctx, &bad_requests[n as usize % bad_requests.len()])
                })
            }));
        }
        if wanted(Skippable::Pipeline) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("pipeline", 1, ms(1000), AfterHang::Stop, end, |_| {
                    exchanges::pipeline(ctx)
                })
            }));
        }
        if wanted(Skippable::NonReader) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("non-reader", 4, ms(100), AfterHang::Continue, end, |_| {
                    exchanges::non_reader(ctx)
                })
            }));
        }
        if wanted(Skippable::TinyChunks) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("tiny-chunks", 2, ms(50), AfterHang::Continue, end, |n| {
                    exchanges::tiny_chunks(ctx, exchanges::tiny_chunk_count(n))
                })
            }));
        }
        if wanted(Skippable::FastStream) {
            one_connection.push(s.spawn(move || {
                classes::exchanges("fast-stream", 1, ms(500), AfterHang::Continue, end, |_| {
                    exchanges::stream_reader(ctx, exchanges::FAST_STREAM_BYTES, ReadPace::Full)
                })
            }));
        }
        if wanted(Skippable::SlowStream) {
            one_connection.push(s.spawn(move || {
                classes::exchanges_that_fit(
                    "slow-stream",
                    2,
                    ms(100),
                    slow_stream_takes,
                    end,
                    |_| {
                        exchanges::stream_reader(
                            ctx,
                            slow_stream_bytes,
                            ReadPace::BytesPerSecond(args.slow_stream_rate),
                        )
                    },
                )
            }));
        }
        if let Some(m) = metrics.filter(|_| wanted(Skippable::Metrics)) {
            one_connection.push(s.spawn(move || {
                classes::exchanges(
                    "metrics-scrape",
                    1,
                    SCRAPE_EVERY,
                    AfterHang::Continue,
                    end,
                    |_| exchanges::scrape(m, args.slack),
                )
            }));
        }
        let mut out = Vec::new();
        let mut first_err = None;
        for h in legit.into_iter().chain(attackers) {
            match joined(h).and_then(|r| r) {
                Ok(report) => out.push(report),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        for h in one_connection {
            match joined(h) {
                Ok(report) => out.push(report),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

fn resources(pid: i32) -> Option<Resources> {
    Some(Resources {
        fds: procfs::fd_count(pid).ok()?,
        rss: procfs::process_rss(pid).ok()?,
    })
}

/// Waits for the descriptor count to hold still (the warm-up's connections
/// closing), then reads descriptors and memory.
fn baseline(pid: i32) -> io::Result<Resources> {
    let gone = || io::Error::other(format!("the server (pid {pid}) is gone after the warm-up"));
    let mut last = None;
    let mut still = 0;
    // Three equal readings 100 ms apart, 3 s at most.
    for _ in 0..30 {
        let fds = procfs::fd_count(pid).map_err(|_| gone())?;
        still = if last == Some(fds) { still + 1 } else { 0 };
        if still >= 3 {
            break;
        }
        last = Some(fds);
        thread::sleep(Duration::from_millis(100));
    }
    resources(pid).ok_or_else(gone)
}

/// Polls until descriptors and memory are back within the limits, or `max`
/// has passed; returns the last reading (`None`: the server is gone).
fn settle(pid: i32, base: Resources, limits: &Limits, max: Duration) -> Option<Resources> {
    let step = Duration::from_millis(250);
    let start = Instant::now();
    let mut now = resources(pid)?;
    for _ in 0..=(max.as_millis() / step.as_millis()) {
        if limits.fds_back(base, now) && limits.rss_back(base, now) || start.elapsed() >= max {
            break;
        }
        thread::sleep(step);
        now = resources(pid)?;
    }
    Some(now)
}

/// The server under soak: started here, or found at `--target`.
enum Server {
    Started {
        // Declared before `scratch`: the process stops before its log goes.
        process: ServerProcess,
        scratch: Scratch,
        addr: SocketAddr,
        metrics: SocketAddr,
        binary: PathBuf,
    },
    External {
        addr: SocketAddr,
        pid: i32,
        metrics: Option<SocketAddr>,
    },
}

impl Server {
    fn start(args: &SoakArgs, deadlines: Deadlines) -> io::Result<Server> {
        if let (Some(target), Some(pid)) = (&args.target, args.pid) {
            let addr = resolve(target)?;
            probe(addr)?;
            procfs::fd_count(pid).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot read /proc/{pid}/fd (--pid): {e}"))
            })?;
            let metrics = args.metrics_target.as_deref().map(resolve).transpose()?;
            return Ok(Server::External { addr, pid, metrics });
        }
        let binary = match &args.server_bin {
            Some(path) if peers::is_executable(path) => path.clone(),
            Some(path) => {
                return Err(io::Error::other(format!(
                    "--server-bin {} is not an executable",
                    path.display()
                )))
            }
            None => sibling_binary("RINGWALL_BIN", "ringwall").map_err(|e| {
                io::Error::other(format!(
                    "{e}: build it (cargo build --release -p ringwall-cli) or pass --server-bin"
                ))
            })?,
        };
        let addr = peers::free_loopback_addr()?;
        let metrics = peers::free_loopback_addr()?;
        let config = PeerConfig {
            workers: args.workers,
            deadlines,
            ..PeerConfig::default()
        };
        let mut command = ringwall_command(&binary, &config, addr);
        command.arg("--shutdown-timeout").arg(SHUTDOWN_TIMEOUT);
        // ringwall's minimum response rate (default grace 5 s) would close a
        // slow reader later than the 3 s write deadline the slow-read class
        // times it against: with the grace equal to the write timeout, a
        // reader that stalls is closed at the write deadline either way.
        command
            .arg("--min-rate-grace")
            .arg(peers::format_duration(args.write_timeout));
        // Four 64 MiB non-readers fill a worker's share of ringwall's default
        // output budget (512 MiB), and then new requests on that worker wait
        // until the hoarders are reset: by design (tests/tests/hostile.rs
        // pins it), but the slow-read class, timed from its request, would
        // read the late start as a hang. The soak is after hangs and leaks,
        // so it lifts the budget unless told otherwise.
        if !args
            .server_arg
            .iter()
            .any(|a| a.starts_with("--max-queued-output-bytes"))
        {
            command
                .arg("--max-queued-output-bytes")
                .arg((4u64 << 30).to_string());
        }
        command.arg("--metrics-addr").arg(metrics.to_string());
        command.args(&args.server_arg);
        let scratch = Scratch::new("soak")?;
        let mut process = ServerProcess::spawn(command, &scratch.path().join("server.log"))?;
        process
            .wait_ready(addr, START_TIMEOUT)
            .map_err(|e| io::Error::other(format!("{} {e}", binary.display())))?;
        metrics_ready(metrics)?;
        Ok(Server::Started {
            process,
            scratch,
            addr,
            metrics,
            binary,
        })
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Server::Started { addr, .. } | Server::External { addr, .. } => *addr,
        }
    }

    fn pid(&self) -> i32 {
        match self {
            Server::Started { process, .. } => process.pid(),
            Server::External { pid, .. } => *pid,
        }
    }

    fn metrics(&self) -> Option<SocketAddr> {
        match self {
            Server::Started { metrics, .. } => Some(*metrics),
            Server::External { metrics, .. } => *metrics,
        }
    }

    fn describe(&self) -> String {
        match self {
            Server::Started { binary, .. } => format!("started: {}", binary.display()),
            Server::External { .. } => "not started by the soak".to_string(),
        }
    }

    /// SIGTERM to a server started here, and its counters from its output.
    fn stop(self) -> CounterCheck {
        let Server::Started {
            mut process,
            scratch,
            ..
        } = self
        else {
            return CounterCheck::NotChecked;
        };
        let stopped = process.stop();
        let log = process.log_text();
        drop(scratch);
        match (stopped, find_counters(&log)) {
            (Stopped::AlreadyExited(status), _) => CounterCheck::Missing(format!(
                "the server had exited ({status}) before the soak stopped it: {}",
                tail(&log)
            )),
            (_, Ok(c)) => CounterCheck::Read(c),
            (Stopped::Killed, Err(_)) => CounterCheck::Missing(
                "the server did not exit within the grace period after SIGTERM and was killed"
                    .to_string(),
            ),
            (Stopped::OnSigterm(status), Err(why)) => {
                CounterCheck::Missing(format!("{why} (it exited: {status}): {}", tail(&log)))
            }
        }
    }
}

/// Waits for the metrics endpoint's first 200, 5 s at most: it may start a
/// little after the server.
fn metrics_ready(metrics: SocketAddr) -> io::Result<()> {
    let mut last = exchanges::Outcome::Untested("not tried");
    for _ in 0..50 {
        last = exchanges::scrape(metrics, exchanges::RESPONSE_WAIT);
        if matches!(last, exchanges::Outcome::Ok(_)) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(io::Error::other(format!(
        "the metrics endpoint on {metrics} did not answer GET /metrics with 200 ({last:?})"
    )))
}

/// The last lines of a server's output, on one line.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        soak: SoakArgs,
    }

    fn parse(args: &[&str]) -> Result<SoakArgs, clap::Error> {
        Cli::try_parse_from(["soak"].iter().chain(args)).map(|c| c.soak)
    }

    #[test]
    fn defaults_are_a_valid_sixty_second_soak() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.duration, Duration::from_secs(60));
        assert!(validate(&a).is_ok());
        assert_eq!(idle_hold(&a), Duration::from_secs(8));
    }

    #[test]
    fn slow_stream_reader_ends_well_within_the_soak() {
        for d in ["10s", "60s", "600s"] {
            let a = parse(&["--duration", d]).unwrap();
            let takes = slow_stream_bytes(&a) as f64 / a.slow_stream_rate as f64;
            let limit = (a.duration.as_secs_f64() * 0.6).max(4.0);
            assert!(takes <= limit, "{d}: {takes} s");
        }
    }

    #[test]
    fn metrics_target_needs_target() {
        assert!(parse(&["--metrics-target", "127.0.0.1:1"]).is_err());
        assert!(parse(&[
            "--target",
            "127.0.0.1:1",
            "--pid",
            "1",
            "--metrics-target",
            "127.0.0.1:2"
        ])
        .is_ok());
    }

    #[test]
    fn target_needs_pid_and_excludes_server_bin() {
        assert!(parse(&["--target", "127.0.0.1:1"]).is_err());
        assert!(parse(&["--target", "127.0.0.1:1", "--pid", "1"]).is_ok());
        assert!(parse(&["--target", "127.0.0.1:1", "--pid", "1", "--server-bin", "x"]).is_err());
    }

    #[test]
    fn idle_timeout_must_leave_room_for_the_hold() {
        let a = parse(&["--idle-timeout", "2s", "--slack", "1s"]).unwrap();
        assert!(validate(&a).is_err());
    }
}
