//! The two floors: calibration peers built by this crate that do the least a
//! server can do, so a table can say how far each real server is from what
//! the machine allows, measured in the same run.
//!
//! - `closer` (`src/bin/closer.rs`), the floor of `deadline`: closes each
//!   connection exactly the header deadline after accept; never reads.
//! - `canned` (`src/bin/canned.rs`), the floor of `throughput`: answers
//!   every `\r\n\r\n` with [`CANNED_RESPONSE`]; no parser, no deadlines.
//!
//! Neither serves the benchmark app, so neither is probed with the usual
//! `GET /` + `Connection: close` (closer never answers; canned never closes).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::built::spawn_in_scratch;
use super::deadlines::format_duration;
use super::process::{sibling_binary, ServerProcess};
use super::scratch::Scratch;
use super::{PeerConfig, StartError};
use crate::sys::reuseport_listener;

/// ringwall's answer to `GET /` on a keep-alive HTTP/1.1 connection, byte
/// for byte, with the `Date` fixed (the RFC 9110 example date: same length
/// as any other).
pub const CANNED_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain\r\n\
Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, World!";

/// Counts request-head terminators (`\r\n\r\n`) in a byte stream fed in
/// pieces: canned's whole understanding of HTTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadCounter {
    /// How much of the terminator the last bytes matched (0 to 3): a
    /// terminator may be split between two receives.
    matched: u8,
}

impl HeadCounter {
    /// The terminators that end in `bytes`.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut heads = 0;
        for &b in bytes {
            // On a mismatch only a `\r` can start the terminator again.
            self.matched = if b == b"\r\n\r\n"[self.matched as usize] {
                self.matched + 1
            } else {
                u8::from(b == b'\r')
            };
            if self.matched == 4 {
                heads += 1;
                self.matched = 0;
            }
        }
        heads
    }
}

fn floor_binary(env_var: &str, name: &str) -> Result<std::path::PathBuf, StartError> {
    sibling_binary(env_var, name).map_err(|e| StartError::Missing {
        reason: format!("{e}: build it: cargo build --release -p ringwall-bench --bin {name}"),
    })
}

/// `closer` with the header deadline (the only one it knows).
pub(super) fn start_closer(
    config: &PeerConfig,
    addr: SocketAddr,
) -> Result<(ServerProcess, Scratch), StartError> {
    let mut command = Command::new(floor_binary("CLOSER_BIN", "closer")?);
    command
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--workers")
        .arg(config.workers.to_string())
        .arg("--header-timeout")
        .arg(format_duration(config.deadlines.header));
    spawn_in_scratch("closer", command)
}

/// `canned`: no deadlines to pass.
pub(super) fn start_canned(
    config: &PeerConfig,
    addr: SocketAddr,
) -> Result<(ServerProcess, Scratch), StartError> {
    let mut command = Command::new(floor_binary("CANNED_BIN", "canned")?);
    command
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--workers")
        .arg(config.workers.to_string());
    spawn_in_scratch("canned", command)
}

/// closer is ready when it accepts: it answers nothing.
pub fn probe_accepts(addr: SocketAddr) -> io::Result<()> {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map(drop)
}

/// canned is ready when one keep-alive `GET /` gets [`CANNED_RESPONSE`].
pub fn probe_canned(addr: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n")?;
    let mut answer = vec![0; CANNED_RESPONSE.len()];
    s.read_exact(&mut answer)?;
    if answer == CANNED_RESPONSE {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer: {:?}", String::from_utf8_lossy(&answer)),
        ))
    }
}

/// The main loop of both floor binaries: `workers` threads, each running
/// `worker` on its own `SO_REUSEPORT` listener on `addr`, as ringwall's
/// workers do. Returns when one of them fails.
pub fn run_workers<W>(addr: SocketAddr, workers: usize, worker: W) -> io::Result<()>
where
    W: Fn(TcpListener) -> io::Result<()> + Clone + Send + 'static,
{
    // A floor must not stall where a careful server would not: grow the
    // descriptor table before the first burst (see `presize_fd_table`).
    if let Ok(limit) = crate::sys::raise_nofile_limit(u64::MAX) {
        crate::sys::presize_fd_table(usize::try_from(limit).unwrap_or(usize::MAX).min(1 << 16));
    }
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let listener = reuseport_listener(addr)?;
            let worker = worker.clone();
            Ok(std::thread::spawn(move || worker(listener)))
        })
        .collect::<io::Result<_>>()?;
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("a worker panicked"))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one after another; the heads counted after each.
    fn counts(pieces: &[&[u8]]) -> Vec<usize> {
        let mut counter = HeadCounter::default();
        pieces.iter().map(|p| counter.feed(p)).collect()
    }

    #[test]
    fn one_head_counts_once() {
        assert_eq!(counts(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]), [1]);
    }

    #[test]
    fn pipelined_heads_count_each() {
        assert_eq!(counts(&[&b"GET / HTTP/1.1\r\n\r\n".repeat(16)]), [16]);
    }

    #[test]
    fn a_terminator_split_at_every_point_counts_once_at_its_end() {
        assert_eq!(counts(&[b"GET\r", b"\n\r\n"]), [0, 1]);
        assert_eq!(counts(&[b"GET\r\n", b"\r\n"]), [0, 1]);
        assert_eq!(counts(&[b"GET\r\n\r", b"\n"]), [0, 1]);
    }

    #[test]
    fn a_repeated_cr_restarts_the_match() {
        assert_eq!(counts(&[b"a\r\r\n\r\n"]), [1]);
        assert_eq!(counts(&[b"a\r\n\r\r\n\r\n"]), [1]);
    }

    #[test]
    fn bare_line_feeds_and_single_crlfs_are_not_terminators() {
        assert_eq!(counts(&[b"a\n\n", b"b\r\nc\r\n", b"\n\r\n"]), [0, 0, 0]);
    }
}
