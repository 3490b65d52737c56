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
//! With `--rounds R` the whole run (every N, every server, a fresh server
//! per cell) is repeated R times, the server order reversed on every other
//! round, and the table gives per (N, server) the median over the rounds,
//! each round's p99, and `p99 vs closer` as the median of the per-round
//! ratios against the closer of the same round and N: a noisy round moves
//! both sides of its ratio, not just one.
//!
//! Writes `deadline.md` (the table) and one `deadline-overshoot-N.svg` per N
//! (the overshoot CDF of the last round, one line per server) into `--out`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::attack::{run_attack, run_attack_with_load, AttackConfig, AttackMode, AttackWithLoad};
use crate::load::{LoadConfig, LoadMode, LoadReport, RequestSpec};
use crate::peers::{
    format_duration, parse_duration, raise_nofile_limit, Deadlines, Floor, PeerConfig, ServerKind,
};
use crate::stats::OvershootSummary;

use super::external::ExternalTarget;
use super::lineup::{self, DEADLINE_SERVERS};
use super::output::{self, DEFAULT_OUT};
use super::summary::median;
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
    /// Rounds of the whole run, the server order reversed on every other
    /// round; above 1 the table shows medians over the rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub rounds: usize,
    /// One header byte per this interval on each attack connection.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub interval: Duration,
    /// The attack connections are opened over this window.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub open_over: Duration,
    /// Still open at deadline + slack is a hang.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub slack: Duration,
    /// Legit keep-alive connections beside the attack; 0 runs the attack
    /// alone, as the floor always does.
    #[arg(long, default_value_t = 16)]
    pub load_connections: usize,
    /// The server every row's p99 is divided by, round by round and N by
    /// N (the `p99 vs NAME` column): the floor (`closer`) by default, or a
    /// peer. A NAME that is not in the run is refused.
    #[arg(long)]
    pub paired_with: Option<String>,
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

/// One server against one N in one round.
struct Cell {
    /// From 1.
    round: usize,
    connections: usize,
    server: String,
    result: AttackWithLoad,
    /// False for the floor: no legit load ran, its reports are empty.
    legit_ran: bool,
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

/// [`ms`], or `-` when nothing was measured.
fn ms_or_dash(us: Option<f64>) -> String {
    us.map_or("-".into(), ms)
}

/// One overshoot figure of the cell in microseconds, if any close was timed.
fn overshoot_us(c: &Cell, figure: fn(&OvershootSummary) -> f64) -> Option<f64> {
    let overshoot = &c.result.attack.overshoot;
    (overshoot.count > 0).then(|| figure(overshoot))
}

fn p99_us(c: &Cell) -> Option<f64> {
    overshoot_us(c, |o| o.p99_us)
}

/// The `closed` column: `closed/of`, and the connects that failed.
fn closed_column(closed: usize, of: usize, connect_failed: usize) -> String {
    let mut column = format!("{closed}/{of}");
    if connect_failed > 0 {
        column.push_str(&format!(" ({connect_failed} connect failed)"));
    }
    column
}

/// The `FIN/RST` column, with the closes seen as a failed write.
fn fin_rst_column(fin: usize, rst: usize, write_failed: usize) -> String {
    let mut column = format!("{fin}/{rst}");
    if write_failed > 0 {
        column.push_str(&format!(" (+{write_failed} EPIPE)"));
    }
    column
}

/// Whether `c` is `reference`'s cell of `round` at `connections`.
fn is_reference_of(c: &Cell, reference: &str, round: usize, connections: usize) -> bool {
    c.round == round && c.connections == connections && c.server == reference
}

/// The table's columns; a run of several rounds adds each round's p99
/// before the ratio read from them.
fn columns(rounds: usize, reference: &str) -> Vec<String> {
    let ratio_column = format!("p99 vs {reference}");
    let mut columns: Vec<String> = [
        "N",
        "server",
        "closed",
        "hangs",
        "early",
        "overshoot p50 ms",
        "p99 ms",
        &ratio_column,
        "max ms",
        "FIN/RST",
        "legit req/s alone",
        "under attack",
        "kept",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    if rounds > 1 {
        let ratio = columns.len() - 6;
        debug_assert_eq!(columns[ratio], ratio_column);
        columns.insert(ratio, "p99 per round ms".into());
    }
    columns
}

/// The table: one row per (N, server), in the order of their first cell.
/// Overshoot and legit figures are medians over the rounds the server ran;
/// counts (closed, hangs, early, FIN/RST) are summed, so a single hang or
/// early close in any round stays visible. With one round these are the
/// round's own figures, and the per-round column is left out.
fn table(cells: &[Cell], rounds: usize, reference: &str) -> Table {
    let header = columns(rounds, reference);
    let mut t = Table::new(&header.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    let mut rows: Vec<(usize, &str)> = Vec::new();
    for c in cells {
        if !rows.contains(&(c.connections, c.server.as_str())) {
            rows.push((c.connections, c.server.as_str()));
        }
    }
    for (n, server) in rows {
        let runs: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.connections == n && c.server == server)
            .collect();
        let sum = |count: fn(&Cell) -> usize| runs.iter().map(|&c| count(c)).sum::<usize>();
        let median_of = |figure: fn(&Cell) -> Option<f64>| {
            median(&runs.iter().filter_map(|&c| figure(c)).collect::<Vec<_>>())
        };
        let per_round: Vec<String> = (1..=rounds)
            .map(|r| ms_or_dash(runs.iter().find(|c| c.round == r).and_then(|&c| p99_us(c))))
            .collect();
        // Paired: each round's p99 over the reference's of that round and N.
        let ratios: Vec<f64> = runs
            .iter()
            .filter_map(|&c| {
                let paired = cells
                    .iter()
                    .find(|f| is_reference_of(f, reference, c.round, n))?;
                let (value, by) = (p99_us(c)?, p99_us(paired)?);
                (by > 0.0).then_some(value / by)
            })
            .collect();
        let vs_reference = match median(&ratios) {
            Some(m) if ratios.len() < rounds => {
                format!("{m:.2}x ({} of {rounds} rounds)", ratios.len())
            }
            Some(m) => format!("{m:.2}x"),
            None => "-".into(),
        };
        let legit = |figure: Option<f64>, unit: &str, decimals: usize| {
            figure.map_or("-".into(), |v| format!("{v:.decimals$}{unit}"))
        };
        let mut row = vec![
            n.to_string(),
            server.to_string(),
            closed_column(
                sum(|c| c.result.attack.closed),
                n * runs.len(),
                sum(|c| c.result.attack.connect_failed),
            ),
            sum(|c| c.result.attack.hangs).to_string(),
            sum(|c| c.result.attack.early_closes).to_string(),
            ms_or_dash(median_of(|c| overshoot_us(c, |o| o.p50_us))),
            ms_or_dash(median_of(p99_us)),
        ];
        if rounds > 1 {
            row.push(per_round.join(" / "));
        }
        row.extend([
            vs_reference,
            ms_or_dash(median_of(|c| overshoot_us(c, |o| o.max_us))),
            fin_rst_column(
                sum(|c| c.result.attack.fin_seen),
                sum(|c| c.result.attack.reset_seen),
                sum(|c| c.result.attack.write_failed_seen),
            ),
            legit(
                median_of(|c| {
                    c.legit_ran
                        .then(|| c.result.legit_baseline.requests_per_sec())
                }),
                "",
                0,
            ),
            legit(
                median_of(|c| {
                    c.legit_ran
                        .then(|| c.result.legit_under_attack.requests_per_sec())
                }),
                "",
                0,
            ),
            legit(
                median_of(|c| c.legit_ran.then(|| c.result.legit_kept_percent())),
                "%",
                1,
            ),
        ]);
        t.row(row);
    }
    t
}

/// The overshoot CDF at `connections` of the last round, one line per
/// server in the order of the first round (so a server keeps its colour
/// whichever way the last round ran).
fn plot(connections: usize, header_timeout: Duration, rounds: usize, cells: &[Cell]) -> String {
    let mut servers: Vec<&str> = Vec::new();
    for c in cells.iter().filter(|c| c.connections == connections) {
        if !servers.contains(&c.server.as_str()) {
            servers.push(&c.server);
        }
    }
    let series: Vec<Series> = servers
        .iter()
        .filter_map(|&server| {
            cells
                .iter()
                .find(|c| c.round == rounds && c.connections == connections && c.server == server)
        })
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
    let mut title = format!(
        "Slowloris close overshoot, N={connections}, header deadline {}",
        format_duration(header_timeout)
    );
    if rounds > 1 {
        title.push_str(&format!(", round {rounds} of {rounds}"));
    }
    cdf_plot(
        &PlotLabels {
            title: &title,
            x: "close seen minus deadline (ms; symmetric log, linear within ±0.01)",
            y: "fraction of timed closes at or below",
        },
        &series,
    )
}

/// One server in a round's order: started fresh per N, or a `--target`.
#[derive(Clone, Copy)]
enum Entry<'a> {
    Started(ServerKind),
    Target(&'a ExternalTarget),
}

impl Entry<'_> {
    fn name(&self) -> &str {
        match self {
            Entry::Started(kind) => kind.name(),
            Entry::Target(target) => &target.name,
        }
    }
}

/// How the attack connections were opened: `at once` for a zero window.
fn opened(open_over: Duration) -> String {
    if open_over.is_zero() {
        "opened at once".into()
    } else {
        format!("opened over {}", format_duration(open_over))
    }
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
    round: usize,
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
    let cell = if args.rounds > 1 {
        format!("round {round} N={n} {name}")
    } else {
        format!("N={n} {name}")
    };
    match run {
        Ok(result) => {
            let a = &result.attack;
            println!(
                "  {cell}: closed {}/{n} hangs {} early {} p50 {} ms p99 {} ms max {} ms; {}",
                a.closed,
                a.hangs,
                a.early_closes,
                ms(a.overshoot.p50_us),
                ms(a.overshoot.p99_us),
                ms(a.overshoot.max_us),
                if legit_ran {
                    format!("legit kept {:.1}%", result.legit_kept_percent())
                } else if args.load_connections == 0 {
                    "no legit load (--load-connections 0)".into()
                } else {
                    "no legit load (the floor answers nothing)".into()
                }
            );
            Some(Cell {
                round,
                connections: n,
                server: name.to_string(),
                result,
                legit_ran,
            })
        }
        Err(e) => {
            println!("  {cell}: attack failed: {e}");
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
        "deadline: slowloris N={:?} {}, one byte per {}, {}; legit keep-alive c={}; {} server workers",
        args.connections,
        opened(args.open_over),
        format_duration(args.interval),
        config.deadlines,
        args.load_connections,
        config.workers
    );
    let servers = lineup::lineup(&args.servers, Some(Floor::Deadline));
    for target in &args.targets {
        println!("{}", external_line(target, args.header_timeout));
    }
    let entries: Vec<Entry> = servers
        .iter()
        .map(|&kind| Entry::Started(kind))
        .chain(args.targets.iter().map(Entry::Target))
        .collect();
    let names: Vec<&str> = servers
        .iter()
        .map(|kind| kind.name())
        .chain(args.targets.iter().map(|t| t.name.as_str()))
        .collect();
    // Without the floor in the run, the default column reads `-`.
    let reference = args
        .paired_with
        .as_deref()
        .unwrap_or(ServerKind::Closer.name());
    if let Some(asked) = args.paired_with.as_deref().filter(|n| !names.contains(n)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--paired-with {asked}: not a server of this run ({})",
                names.join(", ")
            ),
        ));
    }
    let mut cells = Vec::new();
    let mut orders = Vec::new();
    for round in 1..=args.rounds {
        let order = lineup::round_order(&entries, round);
        let names: Vec<&str> = order.iter().map(Entry::name).collect();
        if args.rounds > 1 {
            println!("round {round} of {}: {}", args.rounds, names.join(", "));
        }
        orders.push(format!("{round}: {}", names.join(", ")));
        for &n in &args.connections {
            for entry in &order {
                let cell = match *entry {
                    Entry::Started(kind) => {
                        let Some(peer) = lineup::start_or_skip(kind, &config) else {
                            continue;
                        };
                        let cell = attack_one(
                            args,
                            round,
                            n,
                            peer.addr(),
                            kind.name(),
                            kind != ServerKind::Closer && args.load_connections > 0,
                        );
                        peer.stop();
                        cell
                    }
                    Entry::Target(target) => attack_one(
                        args,
                        round,
                        n,
                        target.addr,
                        &target.name,
                        args.load_connections > 0,
                    ),
                };
                cells.extend(cell);
            }
        }
    }

    let t = table(&cells, args.rounds, reference);
    println!("\n{}", t.text());
    let (mut rounds_flag, rounds_note) = if args.rounds > 1 {
        (
            format!(" --rounds {}", args.rounds),
            format!(
                "median of {} rounds, server order reversed every other round; \
                 hangs, early, closed and FIN/RST summed over them; p99 vs {reference} is \
                 the median of each round's ratio to {reference}'s of that round; ",
                args.rounds,
            ),
        )
    } else {
        (String::new(), String::new())
    };
    if let Some(asked) = &args.paired_with {
        rounds_flag.push_str(&format!(" --paired-with {asked}"));
    }
    let legit_note = if args.load_connections > 0 {
        format!(
            "legit keep-alive c={} beside the attack",
            args.load_connections
        )
    } else {
        "no legit load (--load-connections 0)".to_string()
    };
    let mut md =
        format!(
        "## Deadline precision under slowloris\n\n{}\n\n`ringwall-bench deadline --connections {} \
         --header-timeout {}{}` ({}{}, one byte per {}, hang = open at deadline + {}; \
         {}; {} server workers; {})\n\n{}",
        stamp,
        args.connections.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        format_duration(args.header_timeout),
        rounds_flag,
        rounds_note,
        opened(args.open_over),
        format_duration(args.interval),
        format_duration(args.slack),
        legit_note,
        config.workers,
        config.deadlines,
        t.markdown()
    );
    if args.rounds > 1 {
        md.push_str(&format!(
            "\nServer order by round: {}. The plots show round {} of {}.\n",
            orders.join("; "),
            args.rounds,
            args.rounds
        ));
    }
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
        let svg = plot(n, args.header_timeout, args.rounds, &cells);
        let path = output::write(&args.out, &name, &svg)?;
        println!("wrote {}", path.display());
        md.push_str(&format!("\n![close overshoot CDF, N={n}]({name})\n"));
    }
    let path = output::write(&args.out, "deadline.md", &md)?;
    println!("wrote {}", path.display());
    Ok(())
}
