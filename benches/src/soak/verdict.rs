//! Whether a soak passed: six checks, each named, each failure carrying the
//! figures that failed it.
//!
//! - `wrong-responses`: any wrong or missing answer in any class (legit load,
//!   half-close, malformed, pipeline, reset, the idle clients' first request);
//! - `hangs`: any connection still open, as its client sees it, past the
//!   deadline it had to meet plus the slack; a server that closed behind
//!   data the client had not read counts (FIN-WAIT-1: the FIN cannot leave,
//!   and the server's kernel keeps the unsent bytes pinned);
//! - `false-kills`: any client that kept to the rules closed anyway: an idle
//!   keep-alive client before its hold ended (the hold ends before the idle
//!   timeout), a stream reader reset or cut before the whole answer;
//! - `counters`: the server's own counters do not add up (accepted is not
//!   the sum of closes, or connections are still open at exit);
//! - `fds`: descriptors not back to the baseline, within a tolerance, once
//!   the clients are gone and the settle period is over;
//! - `rss`: resident memory not back within a factor of the baseline taken
//!   after the warm-up.

use std::fmt;

use super::classes::ClassReport;
use super::counters::ServerCounters;
use super::sampler::mib;

pub const CHECKS: [&str; 6] = [
    "wrong-responses",
    "hangs",
    "false-kills",
    "counters",
    "fds",
    "rss",
];

/// How far resources may stay above the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub fd_tolerance: usize,
    pub rss_factor: f64,
}

impl Limits {
    pub fn fds_back(&self, base: Resources, now: Resources) -> bool {
        now.fds <= base.fds + self.fd_tolerance
    }

    pub fn rss_back(&self, base: Resources, now: Resources) -> bool {
        now.rss as f64 <= base.rss as f64 * self.rss_factor
    }
}

/// The server's descriptors and resident memory at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub fds: usize,
    pub rss: u64,
}

/// What became of the server's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterCheck {
    /// The soak did not start the server, so it cannot read them.
    NotChecked,
    /// It started the server but got no counters (why).
    Missing(String),
    Read(ServerCounters),
}

/// Everything the verdict looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub classes: &'a [ClassReport],
    /// After the warm-up.
    pub baseline: Resources,
    /// After the settle; `None`: the server was gone.
    pub settled: Option<Resources>,
    pub counters: &'a CounterCheck,
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub check: &'static str,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.check, self.detail)
    }
}

/// Every failed check; empty when the soak passed.
pub fn judge(o: &Observed<'_>, limits: &Limits) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut fail = |check: &'static str, detail: String| failures.push(Failure { check, detail });
    for c in o.classes {
        if c.wrong.total() > 0 {
            fail(
                "wrong-responses",
                format!(
                    "{}: {} of {} wrong ({})",
                    c.name,
                    c.wrong.total(),
                    c.started,
                    c.wrong
                ),
            );
        }
        if c.hangs.total() > 0 {
            fail(
                "hangs",
                format!(
                    "{}: {} of {} still open past deadline + slack ({})",
                    c.name,
                    c.hangs.total(),
                    c.started,
                    c.hangs
                ),
            );
        }
        if c.false_kills.total() > 0 {
            fail(
                "false-kills",
                format!(
                    "{}: {} of {} closed by the server while keeping to the rules ({})",
                    c.name,
                    c.false_kills.total(),
                    c.started,
                    c.false_kills
                ),
            );
        }
    }
    match o.counters {
        CounterCheck::NotChecked => {}
        CounterCheck::Missing(why) => fail("counters", format!("no server counters: {why}")),
        CounterCheck::Read(c) if !c.add_up() => fail(
            "counters",
            format!(
                "accepted={} but closes add up to {} ({} apart), open={} at exit: {c}",
                c.accepted,
                c.closes_total(),
                c.accepted.abs_diff(c.closes_total()),
                c.open
            ),
        ),
        CounterCheck::Read(_) => {}
    }
    let base = o.baseline;
    match o.settled {
        None => {
            fail("fds", "the server was gone before the settle ended".into());
            fail("rss", "the server was gone before the settle ended".into());
        }
        Some(after) => {
            if !limits.fds_back(base, after) {
                fail(
                    "fds",
                    format!(
                        "{} open after the settle, baseline {} (+{} allowed): {} not given back",
                        after.fds,
                        base.fds,
                        limits.fd_tolerance,
                        after.fds - base.fds
                    ),
                );
            }
            if !limits.rss_back(base, after) {
                fail(
                    "rss",
                    format!(
                        "{} MiB after the settle, baseline {} MiB: {:.1}x, above the {}x allowed",
                        mib(after.rss),
                        mib(base.rss),
                        after.rss as f64 / base.rss.max(1) as f64,
                        limits.rss_factor
                    ),
                );
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::counters::parse_counters;
    use crate::soak::exchanges::Outcome;
    use std::time::Duration;

    const LIMITS: Limits = Limits {
        fd_tolerance: 4,
        rss_factor: 2.0,
    };
    const BASE: Resources = Resources {
        fds: 20,
        rss: 10 << 20,
    };
    const ADDS_UP: &str = "accepted=5 requests=9 open=0 closes[peer_eof=3 protocol_error=2 \
                           (400=2 413=0) completed=0]";

    fn clean_class(name: &'static str) -> ClassReport {
        let mut c = ClassReport::new(name);
        c.record(Outcome::Ok(Duration::from_millis(3)));
        c
    }

    fn checks(
        classes: &[ClassReport],
        settled: Option<Resources>,
        counters: &CounterCheck,
    ) -> Vec<&'static str> {
        let o = Observed {
            classes,
            baseline: BASE,
            settled,
            counters,
        };
        judge(&o, &LIMITS).iter().map(|f| f.check).collect()
    }

    fn read(line: &str) -> CounterCheck {
        CounterCheck::Read(parse_counters(line).unwrap())
    }

    #[test]
    fn clean_soak_passes() {
        let classes = [clean_class("legit keep-alive"), clean_class("malformed")];
        let settled = Some(Resources {
            fds: 24,
            rss: 20 << 20,
        });
        assert!(checks(&classes, settled, &read(ADDS_UP)).is_empty());
    }

    #[test]
    fn one_wrong_legit_response_fails_with_its_class_and_kind() {
        let mut legit = clean_class("legit keep-alive");
        legit.record(Outcome::Wrong("timeout"));
        let o = Observed {
            classes: &[legit],
            baseline: BASE,
            settled: Some(BASE),
            counters: &CounterCheck::NotChecked,
        };
        let f = judge(&o, &LIMITS);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "[wrong-responses] legit keep-alive: 1 of 2 wrong (timeout=1)"
        );
    }

    #[test]
    fn hangs_and_false_kills_fail_their_own_checks() {
        let mut non_reader = clean_class("non-reader");
        non_reader.record(Outcome::Hang("closed_behind_unsent_data"));
        let mut idle = clean_class("idle");
        idle.false_kills.add("closed_before_hold_ended", 1);
        assert_eq!(
            checks(&[non_reader, idle], Some(BASE), &CounterCheck::NotChecked),
            ["hangs", "false-kills"]
        );
    }

    #[test]
    fn a_stream_reader_cut_short_is_a_false_kill_with_its_why() {
        let mut slow = clean_class("slow-stream");
        slow.record(Outcome::FalseKill("reset_mid_response"));
        let o = Observed {
            classes: &[slow],
            baseline: BASE,
            settled: Some(BASE),
            counters: &CounterCheck::NotChecked,
        };
        let f = judge(&o, &LIMITS);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "[false-kills] slow-stream: 1 of 2 closed by the server while keeping to the rules \
             (reset_mid_response=1)"
        );
    }

    #[test]
    fn untested_exchanges_do_not_fail() {
        let mut pipeline = clean_class("pipeline");
        pipeline.record(Outcome::Untested("cut_at_soak_end"));
        assert!(checks(&[pipeline], Some(BASE), &CounterCheck::NotChecked).is_empty());
    }

    #[test]
    fn counters_that_do_not_add_up_fail_with_both_figures() {
        let lost = read(&ADDS_UP.replace("accepted=5", "accepted=7"));
        let o = Observed {
            classes: &[],
            baseline: BASE,
            settled: Some(BASE),
            counters: &lost,
        };
        let f = judge(&o, &LIMITS);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail
                .starts_with("accepted=7 but closes add up to 5 (2 apart), open=0"),
            "{}",
            f[0]
        );
        let open = read(&ADDS_UP.replace("open=0", "open=2"));
        assert_eq!(checks(&[], Some(BASE), &open), ["counters"]);
    }

    #[test]
    fn missing_counters_fail_unless_the_server_is_not_ours() {
        let missing = CounterCheck::Missing("killed after the grace period".into());
        assert_eq!(checks(&[], Some(BASE), &missing), ["counters"]);
        assert!(checks(&[], Some(BASE), &CounterCheck::NotChecked).is_empty());
    }

    #[test]
    fn descriptors_beyond_the_tolerance_fail() {
        let at = |fds| Some(Resources { fds, rss: BASE.rss });
        assert!(checks(&[], at(24), &CounterCheck::NotChecked).is_empty());
        assert_eq!(checks(&[], at(25), &CounterCheck::NotChecked), ["fds"]);
    }

    #[test]
    fn memory_beyond_the_factor_fails() {
        let at = |rss| Some(Resources { fds: BASE.fds, rss });
        assert!(checks(&[], at(20 << 20), &CounterCheck::NotChecked).is_empty());
        assert_eq!(
            checks(&[], at((20 << 20) + 1), &CounterCheck::NotChecked),
            ["rss"]
        );
    }

    #[test]
    fn a_server_gone_before_the_settle_fails_fds_and_rss() {
        assert_eq!(checks(&[], None, &CounterCheck::NotChecked), ["fds", "rss"]);
    }
}
