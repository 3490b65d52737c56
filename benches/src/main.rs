//! `ringwall-bench`: load and attack clients that check what they receive,
//! and the benchmark runners built on them. `ringwall-bench <command> --help`
//! for each command's options.
//!
//! Exit status: 0 passed, 1 ran and found a regression, 2 could not run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringwall_bench::commands::{self, LoadArgs, SlowlorisArgs};
use ringwall_bench::{runners, soak};

#[derive(Parser, Debug)]
#[command(
    name = "ringwall-bench",
    version,
    about,
    after_help = "Exit status: 0 passed, 1 ran and found a regression, 2 could not run \
                  (bad arguments, no server at --target, a report that could not be written)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Each command returns `io::Result<bool>`: whether it passed.
#[derive(Subcommand, Debug)]
enum Command {
    /// Slowloris regression harness against an HTTP/1.1 server: slowloris,
    /// slow body, slow read and idle keep-alive, with legit load beside them.
    /// Fails on any hang, early close, false kill or legit error; on an
    /// overshoot p99 above --max-p99; with --require-reset-slow-read, on a
    /// slow reader FINed while its response kept flowing. --json FILE writes
    /// the report for CI.
    Slowloris(SlowlorisArgs),
    /// Checked HTTP/1.1 load: keep-alive, pipelined or churn.
    Load(LoadArgs),
    /// Header-deadline precision under slowloris, ringwall beside hyper, nginx
    /// and Go: overshoot p50/p99/max, hangs, legit load kept; table + SVG.
    Deadline(runners::deadline::DeadlineArgs),
    /// Requests/s and server CPU per request (keep-alive, pipelined, churn),
    /// ringwall against its peers in alternation, median of rounds.
    Throughput(runners::throughput::ThroughputArgs),
    /// RSS per idle keep-alive and per slowloris connection, per server.
    Memory(runners::memory::MemoryArgs),
    /// Every client at once against one server for --duration: checked legit
    /// load, slow attackers, resets, half-closes, malformed requests, deep
    /// HEAD pipelines, non-readers, idle keep-alive, tiny chunks, fast and
    /// slow stream readers, head storms, silent metrics connections and
    /// scrapes. Fails on a wrong answer,
    /// a hang, a false kill, counters that do not add up, or descriptors or
    /// RSS not given back.
    Soak(soak::SoakArgs),
    /// One server holding every connection at once (default 10,000
    /// slowloris + 9,000 idle keep-alive + 8 legit): slowloris close
    /// overshoot, hangs, early closes, idle false kills, legit req/s and
    /// errors, server RSS per held connection. Fails on any hang, early
    /// close, false kill, failed connect or legit error.
    Scale(runners::scale::ScaleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Slowloris(args) => commands::slowloris(args),
        Command::Load(args) => commands::load(args),
        Command::Deadline(args) => runners::deadline::run(args).map(|()| true),
        Command::Throughput(args) => runners::throughput::run(args).map(|()| true),
        Command::Memory(args) => runners::memory::run(args).map(|()| true),
        Command::Soak(args) => soak::run(args),
        Command::Scale(args) => runners::scale::run(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
