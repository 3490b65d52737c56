//! `ringwall-bench deadline`: how precisely each server enforces its header
//! deadline against slowloris, with legit keep-alive load running beside the
//! attack, servers side by side.
//!
//! For each N and each server, a fresh server gets the same deadlines; N
//! slowloris connections are opened over one second, each dripping a header
//! byte per interval and never finishing its head. The client times every
//! close on `CLOCK_MONOTONIC` against connect + header deadline: overshoot
//! p50/p99/max, hangs (still open at deadline + slack), early closes, FIN or
//! RST. Legit load runs first alone (baseline), then beside the attack: the
//! share it keeps is the last column.
//!
//! The floor, `closer` (see [`crate::peers::floor`]), closes every
//! connection the header deadline after accept and does nothing else: its
//! overshoot is what the machine and the client cost, and `p99 vs closer`
//! reads each server's p99 against it in the same N. It answers nothing, so
//! no legit load runs beside its attack.
//!
//! Writes `deadline.md` (the table) and one `deadline-overshoot-N.svg` per N
//! (the overshoot CDF, one line per server) into `--out`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::attack::{run_attack, run_attack_with_load, AttackConfig, AttackMode, AttackWithLoad};
use crate::load::{LoadConfig, LoadMode, LoadReport, RequestSpec};
use crate::peers::{
    format_duration, parse_duration, raise_nofile_limit, Deadlines, Floor, PeerConfig, ServerKind,
};

use super::external::ExternalTarget;
use super::lineup::{self, DEADLINE_SERVERS};
use super::output::{self, DEFAULT_OUT};
use super::summary::ratio;
use super::svg::{cdf_plot, PlotLabels, Series};
use super::table::Table;

#[derive(clap::Args, Clone, Debug)]
pub struct DeadlineArgs {
    /// Slowloris connections per cell, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    pub connections: Vec<usize>,
    /// The header deadline every server gets.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub header_timeout: Duration,
    /// Servers to compare, in order.
    #[arg(long, value_delimiter = ',', default_value = DEADLINE_SERVERS)]
    pub servers: Vec<ServerKind>,
    /// A server already running, attacked beside the started ones under
    /// NAME: `NAME=HOST:PORT[,PID]`. Repeatable. It is never started,
    /// stopped or restarted, so it is one server shared across every N.
    #[arg(long = "target", value_name = "NAME=HOST:PORT[,PID]")]
    pub targets: Vec<ExternalTarget>,
    /// One header byte per this interval on each attack connection.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub interval: Duration,
    /// The attack connections are opened over this window.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub open_over: Duration,
    /// Still open at deadline + slack is a hang.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub slack: Duration,
    /// Legit keep-alive connections beside the attack.
    #[arg(long, default_value_t = 16)]
    pub load_connections: usize,
    /// Legit load threads.
    #[arg(long, default_value_t = 1)]
    pub load_threads: usize,
    /// Server workers (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Directory for deadline.md and the SVG plots.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
}

/// One server against one N.
struct Cell {
    connections: usize,
    server: String,
    result: AttackWithLoad,
    /// False for the floor: no legit load ran, its reports are empty.
    legit_ran: bool,
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

fn table(cells: &[Cell]) -> Table {
    let mut t = Table::new(
        &[
            "N",
            "server",
            "closed",
            "hangs",
            "early",
            "overshoot p50 ms",
            "p99 ms",
            "p99 vs closer",
            "max ms",
            "FIN/RST",
            "legit req/s alone",
            "under attack",
            "kept",
        ],
        2,
    );
    let p99 = |c: &Cell| {
        (c.result.attack.overshoot.count > 0).then_some(c.result.attack.overshoot.p99_us)
    };
    for c in cells {
        let a = &c.result.attack;
        let timed = a.overshoot.count > 0;
        let floor = cells
            .iter()
            .find(|f| f.connections == c.connections && f.server == ServerKind::Closer.name());
        let legit = |figure: String| if c.legit_ran { figure } else { "-".into() };
        let mut fin_rst = format!("{}/{}", a.fin_seen, a.reset_seen);
        if a.write_failed_seen > 0 {
            fin_rst.push_str(&format!(" (+{} EPIPE)", a.write_failed_seen));
        }
        let mut closed = format!("{}/{}", a.closed, c.connections);
        if a.connect_failed > 0 {
            closed.push_str(&format!(" ({} connect failed)", a.connect_failed));
        }
        t.row(vec![
            c.connections.to_string(),
            c.server.clone(),
            closed,
            a.hangs.to_string(),
            a.early_closes.to_string(),
            if timed {
                ms(a.overshoot.p50_us)
            } else {
                "-".into()
            },
            if timed {
                ms(a.overshoot.p99_us)
            } else {
                "-".into()
            },
            ratio(p99(c), floor.and_then(p99)),
            if timed {
                ms(a.overshoot.max_us)
            } else {
                "-".into()
            },
            fin_rst,
            legit(format!("{:.0}", c.result.legit_baseline.requests_per_sec())),
            legit(format!(
                "{:.0}",
                c.result.legit_under_attack.requests_per_sec()
            )),
            legit(format!("{:.1}%", c.result.legit_kept_percent())),
        ]);
    }
    t
}

fn plot(connections: usize, header_timeout: Duration, cells: &[Cell]) -> String {
    let series: Vec<Series> = cells
        .iter()
        .filter(|c| c.connections == connections)
        .map(|c| Series {
            name: c.server.clone(),
            values: c
                .result
                .attack
                .overshoots_ns
                .iter()
                .map(|&ns| ns as f64 / 1e6)
                .collect(),
        })
        .collect();
    let title = format!(
        "Slowloris close overshoot, N={connections}, header deadline {}",
        format_duration(header_timeout)
    );
    cdf_plot(
        &PlotLabels {
            title: &title,
            x: "close seen minus deadline (ms; symmetric log, linear within ±0.01)",
            y: "fraction of timed closes at or below",
        },
        &series,
    )
}

/// What the run says about a `--target`: attacked, never restarted.
fn external_line(target: &ExternalTarget, header_timeout: Duration) -> String {
    format!(
        "{}: external server at {}, not started or stopped by this run: \
         unlike the others it is not restarted for each N, one server is shared across them; \
         its overshoot is read against {}, so give it that header deadline",
        target.name,
        target.addr,
        format_duration(header_timeout)
    )
}

/// Slowloris at `n` against the server at `addr`, with legit load beside it
/// when `legit_ran` (the floor answers nothing, so none runs against it).
fn attack_one(
    args: &DeadlineArgs,
    n: usize,
    addr: SocketAddr,
    name: &str,
    legit_ran: bool,
) -> Option<Cell> {
    let attack = AttackConfig {
        target: addr,
        mode: AttackMode::Slowloris {
            interval: args.interval,
        },
        connections: n,
        open_over: args.open_over,
        expected_timeout: args.header_timeout,
        slack: args.slack,
    };
    let load = LoadConfig {
        target: addr,
        mode: LoadMode::KeepAlive,
        connections: args.load_connections,
        threads: args.load_threads,
        duration: args.open_over + args.header_timeout + args.slack,
        max_requests: None,
        pace: None,
        request: RequestSpec::Hello,
    };
    let run = if legit_ran {
        run_attack_with_load(&attack, &load)
    } else {
        run_attack(&attack).map(|attack| AttackWithLoad {
            attack,
            legit_baseline: LoadReport::default(),
            legit_under_attack: LoadReport::default(),
        })
    };
    match run {
        Ok(result) => {
            let a = &result.attack;
            println!(
                "  N={n} {name}: closed {}/{n} hangs {} early {} p50 {} ms p99 {} ms max {} ms; {}",
                a.closed,
                a.hangs,
                a.early_closes,
                ms(a.overshoot.p50_us),
                ms(a.overshoot.p99_us),
                ms(a.overshoot.max_us),
                if legit_ran {
                    format!("legit kept {:.1}%", result.legit_kept_percent())
                } else {
                    "no legit load (the floor answers nothing)".into()
                }
            );
            Some(Cell {
                connections: n,
                server: name.to_string(),
                result,
                legit_ran,
            })
        }
        Err(e) => {
            println!("  N={n} {name}: attack failed: {e}");
            None
        }
    }
}

pub fn run(args: &DeadlineArgs) -> io::Result<()> {
    // Read before the run: the commit and date of what is measured.
    let stamp = output::stamp();
    let most = args.connections.iter().copied().max().unwrap_or(0);
    raise_nofile_limit((most as u64) * 2 + 4096)?;
    let config = PeerConfig {
        workers: lineup::workers(args.workers),
        deadlines: Deadlines {
            header: args.header_timeout,
            ..Deadlines::default()
        },
        ..PeerConfig::default()
    };
    println!(
        "deadline: slowloris N={:?} opened over {}, one byte per {}, {}; legit keep-alive c={}; {} server workers",
        args.connections,
        format_duration(args.open_over),
        format_duration(args.interval),
        config.deadlines,
        args.load_connections,
        config.workers
    );
    let servers = lineup::lineup(&args.servers, Some(Floor::Deadline));
    for target in &args.targets {
        println!("{}", external_line(target, args.header_timeout));
    }
    let mut cells = Vec::new();
    for &n in &args.connections {
        for &kind in &servers {
            let Some(peer) = lineup::start_or_skip(kind, &config) else {
                continue;
            };
            if let Some(cell) = attack_one(
                args,
                n,
                peer.addr(),
                kind.name(),
                kind != ServerKind::Closer,
            ) {
                cells.push(cell);
            }
            peer.stop();
        }
        for target in &args.targets {
            if let Some(cell) = attack_one(args, n, target.addr, &target.name, true) {
                cells.push(cell);
            }
        }
    }

    let t = table(&cells);
    println!("\n{}", t.text());
    let mut md =
        format!(
        "## Deadline precision under slowloris\n\n{}\n\n`ringwall-bench deadline --connections {} \
         --header-timeout {}` (opened over {}, one byte per {}, hang = open at deadline + {}; \
         legit keep-alive c={} beside the attack; {} server workers; {})\n\n{}",
        stamp,
        args.connections.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        format_duration(args.header_timeout),
        format_duration(args.open_over),
        format_duration(args.interval),
        format_duration(args.slack),
        args.load_connections,
        config.workers,
        config.deadlines,
        t.markdown()
    );
    for target in &args.targets {
        md.push_str(&format!(
            "\n{}.\n",
            external_line(target, args.header_timeout)
        ));
    }
    for &n in &args.connections {
        if !cells.iter().any(|c| c.connections == n) {
            continue;
        }
        let name = format!("deadline-overshoot-{n}.svg");
        let path = output::write(&args.out, &name, &plot(n, args.header_timeout, &cells))?;
        println!("wrote {}", path.display());
        md.push_str(&format!("\n![close overshoot CDF, N={n}]({name})\n"));
    }
    let path = output::write(&args.out, "deadline.md", &md)?;
    println!("wrote {}", path.display());
    Ok(())
}
