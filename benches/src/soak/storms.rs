//! Waves of many connections at once, each sending a fixed opening and then
//! stalling, each timed against the deadline that must close it:
//!
//! ```text
//!   head storm      ~15 KiB of header fields (under the 16 KiB head limit), no
//!                   blank line: closed by the header deadline, or refused with
//!                   431 or 503 by a head budget
//!   metrics silent  connect to the metrics port, send nothing: closed by the
//!                   endpoint's own header deadline
//! ```
//!
//! One connection, one [`Ended`]: a close without an answer inside
//! `[deadline - EARLY_SLACK, deadline + slack]` from just before its
//! connect is `ok`; a refusal (408, 431, 503) closed by `deadline + slack`
//! is `ok` and counted apart; any other answer is wrong; open past
//! `deadline + slack` is a hang. An earlier close with no answer is a server
//! shedding attackers: untested, as for the slow attackers.
//!
//! A serial endpoint that holds each silent connection for its deadline
//! closes the k-th one of a wave after k deadlines, so every one after the
//! first hangs; one that serves them at once closes them all at one deadline.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::close::{self, EARLY_SLACK};
use crate::sys;

use super::classes::ClassReport;

/// The head a head-storm connection sends: a request line, Host and
/// 15 KiB of fields in all, with no blank line.
pub fn storm_head() -> Vec<u8> {
    const TOTAL: usize = 15 * 1024;
    let mut head = b"GET / HTTP/1.1\r\nHost: soak\r\n".to_vec();
    // Four fields of ~3.8 KiB: far under any count limit, each well-formed.
    for i in 0..4 {
        let name = format!("X-Storm-{i}: ");
        let value = (TOTAL - head.len()) / (4 - i) - name.len() - 2;
        head.extend_from_slice(name.as_bytes());
        head.resize(head.len() + value, b'a');
        head.extend_from_slice(b"\r\n");
    }
    head
}

/// One wave.
#[derive(Clone, Debug)]
pub struct Storm {
    pub target: SocketAddr,
    pub connections: usize,
    /// Sent once on each connection right after its connect.
    pub opening: Vec<u8>,
    /// The server's deadline for it, counted from the connect.
    pub deadline: Duration,
    /// A close later than the deadline plus this is a hang.
    pub slack: Duration,
    /// The connects are spread over this (at most half the deadline, so no
    /// close is due before the last connect).
    pub open_over: Duration,
}

impl Storm {
    /// How long a wave lasts at most when the server keeps its deadline.
    pub fn wave_len(&self) -> Duration {
        self.open_over + self.deadline + self.slack
    }
}

/// How one connection of a wave ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Closed with no answer (or a 408), this long after its deadline
    /// (zero if a little before it).
    AtDeadline(Duration),
    /// Refused with this status (431 or 503), then closed in time.
    Refused(u16),
    /// Closed, no answer, well before its deadline.
    Early,
    /// Closed, but later than the deadline plus the slack.
    ClosedLate,
    /// Still open at the deadline plus the slack.
    OpenPastDeadline,
    /// An answer other than a refusal.
    UnexpectedAnswer,
    ConnectFailed,
}

/// Runs one wave: every connection opened, its opening sent, and watched
/// until it is closed or its deadline plus the slack has passed. Those left
/// open are reset, so a stuck server is not left holding them.
pub fn run_storm(storm: &Storm) -> io::Result<Vec<Ended>> {
    let n = storm.connections.max(1);
    sys::ensure_fd_capacity(n)?;
    let gap = storm.open_over / n as u32;
    let mut ended = vec![Ended::ConnectFailed; n];
    let mut open = Vec::with_capacity(n);
    let mut opened_at = Vec::with_capacity(n);
    let mut which = Vec::with_capacity(n);
    for (i, slot) in ended.iter_mut().enumerate() {
        if i > 0 {
            thread::sleep(gap);
        }
        // Before the connect: the server cannot start its clock earlier.
        let before = Instant::now();
        let Ok(mut s) = TcpStream::connect_timeout(&storm.target, Duration::from_secs(2)) else {
            continue;
        };
        let _ = s.set_nodelay(true);
        if !storm.opening.is_empty() && s.write_all(&storm.opening).is_err() {
            // Refused while the opening was on its way: shed early.
            *slot = Ended::Early;
            continue;
        }
        open.push(s);
        opened_at.push(before);
        which.push(i);
    }
    let Some(&last) = opened_at.last() else {
        return Ok(ended);
    };
    let window = (last + storm.deadline + storm.slack).saturating_duration_since(Instant::now());
    let watched = close::watch_for_closes(&open, window)?;
    for (k, w) in watched.iter().enumerate() {
        let due = opened_at[k] + storm.deadline;
        let status = status_of(&w.first);
        ended[which[k]] = match (w.closed, status) {
            (None, _) => {
                let _ = sys::set_linger_zero(&open[k]);
                Ended::OpenPastDeadline
            }
            (Some((at, _)), _) if at > due + storm.slack => Ended::ClosedLate,
            (Some(_), Some(status @ (431 | 503))) => Ended::Refused(status),
            (Some(_), Some(s)) if s != 408 => Ended::UnexpectedAnswer,
            (Some(_), None) if w.bytes > 0 => Ended::UnexpectedAnswer,
            (Some((at, _)), _) if at + EARLY_SLACK < due => Ended::Early,
            (Some((at, _)), _) => Ended::AtDeadline(at.saturating_duration_since(due)),
        };
    }
    Ok(ended)
}

/// The status of an answer that starts `HTTP/1.x NNN`.
fn status_of(first: &[u8]) -> Option<u16> {
    let rest = first.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Adds one wave's connections to `report`.
pub fn judge(ended: &[Ended], report: &mut ClassReport) {
    for e in ended {
        report.started += 1;
        match *e {
            Ended::AtDeadline(late) => {
                report.ok += 1;
                report.ok_by.add("closed_at_deadline", 1);
                report.latest_close = report.latest_close.max(Some(late));
            }
            Ended::Refused(431) => {
                report.ok += 1;
                report.ok_by.add("refused_431", 1);
            }
            Ended::Refused(_) => {
                report.ok += 1;
                report.ok_by.add("refused_503", 1);
            }
            Ended::Early => report.untested.add("closed_early", 1),
            Ended::ConnectFailed => report.untested.add("connect_failed", 1),
            Ended::ClosedLate => report.hangs.add("closed_past_deadline", 1),
            Ended::OpenPastDeadline => report.hangs.add("open_past_deadline", 1),
            Ended::UnexpectedAnswer => report.wrong.add("unexpected_answer", 1),
        }
    }
}

/// Waves of `storm`, one after another, while a wave still fits before
/// `end` (the first always runs).
pub fn storm_waves(name: &'static str, storm: &Storm, end: Instant) -> io::Result<ClassReport> {
    let mut report = ClassReport::new(name);
    let wave_len = storm.wave_len();
    let left = end.saturating_duration_since(Instant::now());
    // Each wave lasts at least its deadline: this bounds the count.
    let max_waves = left.as_millis() / storm.deadline.as_millis().max(1) + 1;
    for wave in 0..max_waves {
        if wave > 0 && Instant::now() + wave_len > end {
            break;
        }
        judge(&run_storm(storm)?, &mut report);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_head_is_fifteen_kib_of_fields_and_unfinished() {
        let head = storm_head();
        assert_eq!(head.len(), 15 * 1024);
        assert!(head.ends_with(b"\r\n") && !head.ends_with(b"\r\n\r\n"));
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut finished = head.clone();
        finished.extend_from_slice(b"\r\n");
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(&finished).unwrap().is_complete());
        assert_eq!(req.headers.len(), 5);
    }

    #[test]
    fn status_is_read_from_the_status_line() {
        assert_eq!(status_of(b"HTTP/1.1 503 Service"), Some(503));
        assert_eq!(status_of(b"HTTP/1.0 431 "), Some(431));
        assert_eq!(status_of(b"garbage"), None);
    }

    #[test]
    fn refusals_and_deadline_closes_are_ok_and_counted_apart() {
        let mut r = ClassReport::new("head storm");
        judge(
            &[
                Ended::AtDeadline(Duration::from_millis(30)),
                Ended::Refused(431),
                Ended::Refused(503),
                Ended::Early,
                Ended::OpenPastDeadline,
                Ended::ClosedLate,
                Ended::UnexpectedAnswer,
            ],
            &mut r,
        );
        assert_eq!((r.started, r.ok), (7, 3));
        assert_eq!(
            r.ok_by.to_string(),
            "closed_at_deadline=1 refused_431=1 refused_503=1"
        );
        assert_eq!(
            r.hangs.to_string(),
            "closed_past_deadline=1 open_past_deadline=1"
        );
        assert_eq!(r.wrong.to_string(), "unexpected_answer=1");
        assert_eq!(r.untested.to_string(), "closed_early=1");
        assert_eq!(r.latest_close, Some(Duration::from_millis(30)));
    }
}
