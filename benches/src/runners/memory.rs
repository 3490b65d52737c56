//! `ringwall-bench memory`: resident memory per held connection.
//!
//! For each server and each kind of connection, a fresh server is started,
//! its RSS read, N connections opened and held, RSS read again after a
//! settle, and the growth divided by the connections that were still open
//! at the end. Two kinds:
//!
//! - idle: each connection completes one keep-alive `GET /` (the answer is
//!   checked), then sits idle;
//! - slowloris: each sends a partial head and nothing more.
//!
//! RSS is user-space memory of the server's process tree (`VmRSS`); kernel
//! socket buffers are not in it. The header and idle deadlines are long
//! (default 60 s) so that no connection is closed while being measured.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::peers::{
    parse_duration, raise_nofile_limit, read_hello, Deadlines, PeerConfig, ServerKind,
};

use super::external::{ExternalTarget, Server};

use super::lineup::{self, DEFAULT_SERVERS};
use super::output::{self, DEFAULT_OUT};
use super::summary::ratio;
use super::table::Table;

#[derive(clap::Args, Clone, Debug)]
pub struct MemoryArgs {
    /// Connections held per server and kind.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Servers to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_SERVERS)]
    pub servers: Vec<ServerKind>,
    /// A server already running, measured beside the started ones under
    /// NAME: `NAME=HOST:PORT,PID` (the PID is required: RSS is read from
    /// /proc). Repeatable. It is never started, stopped or restarted.
    #[arg(long = "target", value_name = "NAME=HOST:PORT,PID")]
    pub targets: Vec<ExternalTarget>,
    /// Header (and idle) deadline: long, so held connections survive.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub header_timeout: Duration,
    /// Wait after the last connection opens before reading RSS.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub settle: Duration,
    /// Server workers (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Directory for memory.md.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
}

/// What a held connection has sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// One complete keep-alive request and its answer, then nothing.
    Idle,
    /// A partial head, then nothing.
    Slowloris,
}

impl Hold {
    fn name(self) -> &'static str {
        match self {
            Hold::Idle => "idle keep-alive",
            Hold::Slowloris => "slowloris",
        }
    }
}

const IDLE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: memory\r\n\r\n";
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: memory\r\nX-Slow: 1\r\n";
/// Consecutive connect failures after which opening stops.
const GIVE_UP_AFTER: usize = 200;

/// One server, one kind: the measurement.
#[derive(Clone, Debug)]
pub struct MemoryCell {
    pub server: String,
    pub hold: Hold,
    pub opened: usize,
    pub failed: usize,
    /// Still open when RSS was read the second time.
    pub held: usize,
    pub rss_before: u64,
    pub rss_after: u64,
}

impl MemoryCell {
    /// RSS growth per held connection, in bytes.
    pub fn bytes_per_connection(&self) -> Option<f64> {
        (self.held > 0).then(|| (self.rss_after as f64 - self.rss_before as f64) / self.held as f64)
    }
}

fn open_one(addr: SocketAddr, hold: Hold) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    match hold {
        Hold::Idle => {
            s.write_all(IDLE_REQUEST)?;
            read_hello(&mut s)?;
        }
        Hold::Slowloris => s.write_all(PARTIAL_HEAD)?,
    }
    Ok(s)
}

/// Whether the server still holds the connection: a nonblocking read that
/// would block means open; EOF or an error means closed.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn measure(
    peer: &Server,
    hold: Hold,
    connections: usize,
    settle: Duration,
) -> io::Result<MemoryCell> {
    // Let the server finish starting (thread stacks, lazy allocations).
    thread::sleep(Duration::from_millis(500));
    let rss_before = rss(peer)?;
    let mut streams = Vec::with_capacity(connections);
    let mut failed = 0;
    let mut failed_in_a_row = 0;
    let start = Instant::now();
    while streams.len() + failed < connections && failed_in_a_row < GIVE_UP_AFTER {
        match open_one(peer.addr(), hold) {
            Ok(s) => {
                streams.push(s);
                failed_in_a_row = 0;
            }
            Err(_) => {
                failed += 1;
                failed_in_a_row += 1;
            }
        }
    }
    let opening = start.elapsed();
    thread::sleep(settle);
    let rss_after = rss(peer)?;
    let held = streams.iter().filter(|s| still_open(s)).count();
    println!(
        "  {} {}: opened {} in {:.1}s, {} failed, {} held; RSS {:.1} -> {:.1} MiB",
        peer.name(),
        hold.name(),
        streams.len(),
        opening.as_secs_f64(),
        failed,
        held,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    Ok(MemoryCell {
        server: peer.name(),
        hold,
        opened: streams.len(),
        failed,
        held,
        rss_before,
        rss_after,
    })
}

/// RSS of the server's process tree; `run` refuses a target without a PID.
fn rss(server: &Server) -> io::Result<u64> {
    let usage = server
        .usage()?
        .ok_or_else(|| io::Error::other(format!("{}: no PID, so no RSS to read", server.name())))?;
    Ok(usage.rss_bytes)
}

/// Refuses a `--target` without a PID before anything runs: without one
/// there is no RSS, and RSS is all this runner measures.
pub fn check_targets(targets: &[ExternalTarget]) -> io::Result<()> {
    match targets.iter().find(|t| t.pid.is_none()) {
        Some(t) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--target `{t}`: memory needs the server's PID to read its RSS \
                 (want NAME=HOST:PORT,PID)"
            ),
        )),
        None => Ok(()),
    }
}

fn table(cells: &[MemoryCell]) -> Table {
    let mut t = Table::new(
        &[
            "connections",
            "server",
            "held",
            "failed",
            "RSS before MiB",
            "RSS after MiB",
            "bytes/conn",
            "KiB/conn",
            "vs ringwall",
        ],
        2,
    );
    for c in cells {
        let reference = cells
            .iter()
            .find(|r| r.server == ServerKind::Ringwall.name() && r.hold == c.hold)
            .and_then(MemoryCell::bytes_per_connection);
        let per = c.bytes_per_connection();
        t.row(vec![
            c.hold.name().to_string(),
            c.server.clone(),
            format!("{}/{}", c.held, c.opened + c.failed),
            c.failed.to_string(),
            format!("{:.1}", c.rss_before as f64 / 1048576.0),
            format!("{:.1}", c.rss_after as f64 / 1048576.0),
            per.map_or("-".into(), |b| format!("{b:.0}")),
            per.map_or("-".into(), |b| format!("{:.2}", b / 1024.0)),
            ratio(per, reference),
        ]);
    }
    t
}

/// What the run says about a `--target`: measured, never restarted.
fn external_line(target: &ExternalTarget) -> String {
    format!(
        "{}: external server at {}, not started or stopped by this run: unlike the others \
         it is not fresh per row, its slowloris row follows its idle row in the same process",
        target.name, target.addr
    )
}

pub fn run(args: &MemoryArgs) -> io::Result<()> {
    // Read before the run: the commit and date of what is measured.
    let stamp = output::stamp();
    check_targets(&args.targets)?;
    let want = (args.connections as u64) * 2 + 4096;
    let limit = raise_nofile_limit(want)?;
    if limit < args.connections as u64 + 64 {
        return Err(io::Error::other(format!(
            "{} connections need RLIMIT_NOFILE >= {}, have {limit}",
            args.connections,
            args.connections + 64
        )));
    }
    let config = PeerConfig {
        workers: lineup::workers(args.workers),
        deadlines: Deadlines {
            header: args.header_timeout,
            idle: args.header_timeout * 2,
            ..Deadlines::default()
        },
        max_connections: args.connections * 2 + 1024,
        ..PeerConfig::default()
    };
    println!(
        "memory: {} connections per server and kind, {} workers, {}, RLIMIT_NOFILE {limit}",
        args.connections, config.workers, config.deadlines
    );
    for target in &args.targets {
        println!("{}", external_line(target));
    }
    let mut cells = Vec::new();
    for hold in [Hold::Idle, Hold::Slowloris] {
        for &kind in &lineup::lineup(&args.servers, None) {
            // A fresh server per kind: memory freed by the first kind but
            // kept by the allocator must not hide the second kind's cost.
            let Some(peer) = lineup::start_or_skip(kind, &config) else {
                continue;
            };
            let peer = Server::Started(peer);
            match measure(&peer, hold, args.connections, args.settle) {
                Ok(cell) => cells.push(cell),
                Err(e) => println!("{kind}: {}: measurement failed: {e}", hold.name()),
            }
        }
        for target in &args.targets {
            let server = Server::External(target.clone());
            match measure(&server, hold, args.connections, args.settle) {
                Ok(cell) => cells.push(cell),
                Err(e) => println!("{}: {}: measurement failed: {e}", target.name, hold.name()),
            }
        }
    }
    let t = table(&cells);
    println!("\n{}", t.text());
    println!(
        "RSS is the server's user-space resident memory (nginx: master + workers); \
         kernel socket buffers are not included."
    );
    let mut md = format!(
        "## Memory per connection\n\n{}\n\n`ringwall-bench memory --connections {}` \
         ({}, {} workers, {})\n\n{}",
        stamp,
        args.connections,
        "fresh server per row",
        config.workers,
        config.deadlines,
        t.markdown()
    );
    for target in &args.targets {
        md.push_str(&format!("\n{}.\n", external_line(target)));
    }
    let path = output::write(&args.out, "memory.md", &md)?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_divided_by_held_connections_only() {
        let cell = MemoryCell {
            server: "ringwall".into(),
            hold: Hold::Idle,
            opened: 100,
            failed: 0,
            held: 50,
            rss_before: 1_000_000,
            rss_after: 1_100_000,
        };
        assert_eq!(cell.bytes_per_connection(), Some(2000.0));
        let none_held = MemoryCell { held: 0, ..cell };
        assert_eq!(none_held.bytes_per_connection(), None);
    }
}
