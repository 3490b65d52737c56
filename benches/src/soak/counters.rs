//! The counters `ringwall serve` prints when it stops, read back from its
//! output:
//!
//! ```text
//! ringwall stopped: accepted=8 requests=401 ... open=0 closes[header_timeout=0 ...
//!   protocol_error=6 (400=2 413=1 ...) connection_cap=0 shutdown=0 completed=0] timer[...] ...
//! ```
//!
//! Read generically, so that a close reason added to the engine later is
//! counted without a change here: every `name=N` directly inside
//! `closes[...]` is a reason, and a parenthesised breakdown (`(400=2 ...)`)
//! splits the reason before it, so it is not summed again.

use std::fmt;

/// What the server counted over its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCounters {
    pub accepted: u64,
    pub requests: u64,
    /// Connections still holding a slot when it stopped.
    pub open: u64,
    /// Closes by reason, in the order printed.
    pub closes: Vec<(String, u64)>,
}

impl ServerCounters {
    pub fn closes_total(&self) -> u64 {
        self.closes.iter().map(|(_, n)| n).sum()
    }

    /// Every accepted connection was closed for exactly one reason and none
    /// is left open: a connection the server lost track of (or closed
    /// twice) shows here.
    pub fn add_up(&self) -> bool {
        self.accepted == self.closes_total() && self.open == 0
    }
}

impl fmt::Display for ServerCounters {
    /// `accepted=N requests=N open=N closes: reason=N ...` (non-zero reasons).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} requests={} open={} closes={}:",
            self.accepted,
            self.requests,
            self.open,
            self.closes_total()
        )?;
        for (name, n) in self.closes.iter().filter(|(_, n)| *n > 0) {
            write!(f, " {name}={n}")?;
        }
        Ok(())
    }
}

/// The counters from a server's whole output: its last line that has them.
pub fn find_counters(log: &str) -> Result<ServerCounters, String> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("accepted=") && l.contains("closes["))
        .ok_or("the server printed no counter line (accepted=... closes[...])")?;
    parse_counters(line)
}

/// Parses one counter line.
pub fn parse_counters(line: &str) -> Result<ServerCounters, String> {
    let fields = fields(line);
    let top = |name: &str| {
        fields
            .iter()
            .find(|f| f.section.is_none() && !f.in_parens && f.name == name)
            .map(|f| f.value)
            .ok_or_else(|| format!("no top-level `{name}=N` in `{line}`"))
    };
    let closes: Vec<(String, u64)> = fields
        .iter()
        .filter(|f| f.section == Some("closes") && !f.in_parens)
        .map(|f| (f.name.to_string(), f.value))
        .collect();
    if closes.is_empty() {
        return Err(format!("no `closes[name=N ...]` in `{line}`"));
    }
    Ok(ServerCounters {
        accepted: top("accepted")?,
        requests: top("requests")?,
        open: top("open")?,
        closes,
    })
}

/// One `name=N` and where it sits.
#[derive(Debug)]
struct Field<'a> {
    /// The `section[...]` it is inside, if any.
    section: Option<&'a str>,
    in_parens: bool,
    name: &'a str,
    value: u64,
}

/// Every `name=N` of the line. Words that are not (`stopped:`, `1s`) are
/// skipped; brackets and parentheses may open at a word's start and close
/// at its end, as `Display for Stats` writes them.
fn fields(line: &str) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut section = None;
    let mut depth = 0usize;
    for word in line.split_whitespace() {
        let mut w = word;
        while let Some(rest) = w.strip_prefix('(') {
            depth += 1;
            w = rest;
        }
        if let Some((name, rest)) = w.split_once('[') {
            section = Some(name);
            w = rest;
        }
        let body = w.trim_end_matches([')', ']']);
        if let Some((name, value)) = body.split_once('=') {
            if let Ok(value) = value.parse() {
                out.push(Field {
                    section,
                    in_parens: depth > 0,
                    name,
                    value,
                });
            }
        }
        for closer in w[body.len()..].chars() {
            match closer {
                ')' => depth = depth.saturating_sub(1),
                _ => section = None,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ringwall serve` printed at the end of a probe run (8 connections).
    const STOPPED: &str = "ringwall stopped: accepted=8 requests=401 bytes_in=46045 \
        bytes_out=115430 open=0 closes[header_timeout=0 body_timeout=0 idle_timeout=0 \
        write_timeout=1 peer_eof=1 peer_reset=0 protocol_error=6 (400=2 413=1 414=1 431=1 \
        501=0 505=1) connection_cap=0 shutdown=0 completed=0] timer[submits=8 updates=0 \
        fires=1 early_fires=0] sq_full_retries=0 stale_completions=0 accept_errors=0 ring_enters=40";

    #[test]
    fn real_stop_line_adds_up() {
        let c = parse_counters(STOPPED).unwrap();
        assert_eq!(c.accepted, 8);
        assert_eq!(c.requests, 401);
        assert_eq!(c.open, 0);
        assert_eq!(c.closes.len(), 10, "{:?}", c.closes);
        assert_eq!(c.closes_total(), 8);
        assert!(c.add_up());
    }

    #[test]
    fn status_breakdown_in_parentheses_is_not_summed_again() {
        let c = parse_counters(STOPPED).unwrap();
        assert!(c.closes.iter().all(|(name, _)| !name.starts_with('4')));
        assert!(c.closes.contains(&("protocol_error".to_string(), 6)));
    }

    #[test]
    fn a_close_reason_added_later_is_counted() {
        let line = STOPPED.replace("shutdown=0", "shutdown=0 linger_timeout=3");
        let c = parse_counters(&line).unwrap();
        assert_eq!(c.closes_total(), 11);
        assert!(!c.add_up(), "3 closes more than accepted");
    }

    #[test]
    fn timer_fields_are_not_closes() {
        let c = parse_counters(STOPPED).unwrap();
        assert!(!c.closes.iter().any(|(name, _)| name == "fires"));
    }

    #[test]
    fn lost_connection_or_open_one_does_not_add_up() {
        let lost = STOPPED.replace("accepted=8", "accepted=9");
        assert!(!parse_counters(&lost).unwrap().add_up());
        let open = STOPPED.replace("open=0", "open=1");
        assert!(!parse_counters(&open).unwrap().add_up());
    }

    #[test]
    fn counter_line_is_found_after_the_listening_line() {
        let log = format!(
            "ringwall listening on 127.0.0.1:1 workers=2 header_timeout=2s\n\
             ringwall: signal 15, shutting down\n{STOPPED}\n"
        );
        assert_eq!(find_counters(&log).unwrap().accepted, 8);
        assert!(find_counters("ringwall listening on 127.0.0.1:1 workers=2\n").is_err());
    }

    #[test]
    fn missing_fields_are_errors_naming_them() {
        let err = parse_counters("accepted=1 requests=1 open=0 timer[fires=1]").unwrap_err();
        assert!(err.contains("closes["), "{err}");
        let err = parse_counters("requests=1 open=0 closes[peer_eof=1]").unwrap_err();
        assert!(err.contains("accepted"), "{err}");
    }

    #[test]
    fn display_shows_the_nonzero_reasons() {
        let c = parse_counters(STOPPED).unwrap();
        assert_eq!(
            c.to_string(),
            "accepted=8 requests=401 open=0 closes=8: write_timeout=1 peer_eof=1 protocol_error=6"
        );
    }
}
