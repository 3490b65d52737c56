//! What a slowloris run's numbers mean: per mode, the failures that make
//! the run exit 1, and the warnings printed beside them.
//!
//! ```text
//!   ModeResult (what ran, what was seen) ─┐
//!                                         ├─► judge ─► Verdict { failures, warnings }
//!   Policy (slack, thresholds, flags) ────┘
//! ```
//!
//! Pure: no sockets, no clock. Reasons are sentences without the mode's
//! name; whoever prints them puts it in front.

use std::time::Duration;

use crate::attack::{AttackMode, AttackReport, AttackWithLoad, DRAIN_STALL};
use crate::client::EARLY_SLACK;
use crate::report::{bytes, us};

/// The thresholds a run is held to.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// A close later than deadline + slack is a hang.
    pub slack: Duration,
    /// Legit throughput under attack must keep this share (percent) of its
    /// baseline; 0 checks nothing.
    pub min_legit_kept: f64,
    /// Timed modes fail when their overshoot p99 exceeds this: a precision
    /// regression, not only a hang.
    pub max_p99: Option<Duration>,
    /// Slow read fails, rather than warns, when the server FINs a timed-out
    /// reader and response bytes keep arriving after the deadline.
    pub require_reset_slow_read: bool,
}

/// One mode as it ran.
#[derive(Clone, Debug)]
pub struct ModeResult {
    pub mode: AttackMode,
    /// The server's deadline for this mode (for idle, its idle timeout, or
    /// the hold when none was given).
    pub deadline: Duration,
    /// How long the server's deadline had to be kept: the deadline, or the
    /// idle hold.
    pub window: Duration,
    pub attack: AttackReport,
    pub legit: Option<AttackWithLoad>,
}

impl ModeResult {
    pub fn name(&self) -> &'static str {
        self.mode.name()
    }

    /// Whether closes are timed against a deadline (all modes but idle).
    pub fn timed(&self) -> bool {
        !matches!(self.mode, AttackMode::Idle { .. })
    }
}

/// A mode's verdict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Client lag above this makes the overshoot partly the client's.
const LAG_WARNING_US: u64 = 5_000;

pub fn judge(m: &ModeResult, policy: &Policy) -> Verdict {
    let mut v = Verdict::default();
    let a = &m.attack;
    if a.hangs > 0 {
        v.failures.push(format!(
            "{} of {} connections still open {:?} past the {:?} deadline",
            a.hangs, a.opened, policy.slack, m.deadline
        ));
    }
    if a.early_closes > 0 {
        v.failures.push(format!(
            "{} connections closed more than {:?} before the {:?} deadline",
            a.early_closes, EARLY_SLACK, m.deadline
        ));
    }
    if a.false_kills > 0 {
        v.failures.push(format!(
            "{} idle keep-alive connections closed within the {:?} hold",
            a.false_kills, m.window
        ));
    }
    if a.idle_unusable > 0 {
        v.failures.push(format!(
            "{} connections got no complete keep-alive response to their first request",
            a.idle_unusable
        ));
    }
    if a.connect_failed > 0 {
        v.failures.push(format!(
            "{} of {} attack connects failed (refused, or the listen backlog overflowed)",
            a.connect_failed, a.connections
        ));
    }
    if let (Some(max), true) = (policy.max_p99, m.timed()) {
        judge_p99(a, max, &mut v);
    }
    if let Some(s) = &a.slow_read {
        if s.fins_with_bytes_after_deadline > 0 {
            let what = format!(
                "{} connections FINed with data still flowing ({} after the deadline, at most {} \
                 on one): the server's kernel keeps the response pinned; reset timed-out slow \
                 readers (SO_LINGER 0)",
                s.fins_with_bytes_after_deadline,
                bytes(s.fin_bytes_after_deadline),
                bytes(s.bytes_after_deadline_max)
            );
            if policy.require_reset_slow_read {
                v.failures
                    .push(format!("{what} (--require-reset-slow-read)"));
            } else {
                v.warnings.push(what);
            }
        }
    }
    if let Some(l) = &m.legit {
        judge_legit(l, policy, &mut v);
    }
    warn(a, &mut v);
    v
}

fn judge_p99(a: &AttackReport, max: Duration, v: &mut Verdict) {
    let max_us = max.as_secs_f64() * 1e6;
    let o = &a.overshoot;
    if o.count == 0 {
        v.warnings
            .push(format!("--max-p99 {max:?} not checked: no close was timed"));
    } else if o.p99_us > max_us {
        v.failures.push(format!(
            "overshoot p99 {} exceeds --max-p99 {max:?} (p50 {}, max {}, {} timed closes)",
            us(o.p99_us),
            us(o.p50_us),
            us(o.max_us),
            o.count
        ));
    }
}

fn judge_legit(l: &AttackWithLoad, policy: &Policy, v: &mut Verdict) {
    if l.legit_baseline.errors.total() > 0 {
        v.failures.push(format!(
            "legit load fails even without the attack: {} (check --legit-path / --legit-expect)",
            l.legit_baseline.errors
        ));
    } else if l.legit_under_attack.errors.total() > 0 {
        v.failures.push(format!(
            "legit load under attack: {}",
            l.legit_under_attack.errors
        ));
    }
    if l.legit_under_attack.requests == 0 {
        v.failures
            .push("legit load got no response under attack".to_string());
    }
    if policy.min_legit_kept > 0.0 && l.legit_kept_percent() < policy.min_legit_kept {
        v.failures.push(format!(
            "legit load kept {:.1}% of its baseline, below --min-legit-kept {}",
            l.legit_kept_percent(),
            policy.min_legit_kept
        ));
    }
}

/// What is worth knowing but fails nothing.
fn warn(a: &AttackReport, v: &mut Verdict) {
    if a.client_lag.p99_us > LAG_WARNING_US {
        v.warnings.push(format!(
            "the attack client ran behind its own schedule (lag p99 {}, max {}): overshoots may \
             include client delay; use fewer connections or a longer --interval",
            us(a.client_lag.p99_us as f64),
            us(a.client_lag.max_us as f64)
        ));
    }
    if a.responses_seen > 0 {
        v.warnings.push(format!(
            "the server sent bytes (e.g. a 408) on {} connections before closing",
            a.responses_seen
        ));
    }
    if a.closed_behind_data > 0 {
        v.warnings.push(format!(
            "{} connections were closed behind unsent data: seen only after draining, so \
             untimed (the server gave up on them; not a hang)",
            a.closed_behind_data
        ));
    }
    if a.whole_response_read > 0 {
        v.warnings.push(format!(
            "{} hung connections had the whole response delivered while draining: the server's \
             socket buffers held it all, so no write deadline could start (try a larger --slow-read-bytes)",
            a.whole_response_read
        ));
    }
    if a.slow_read.is_some() && a.hangs > a.whole_response_read {
        v.warnings.push(format!(
            "hangs were drained after deadline + slack until no byte came for {DRAIN_STALL:?}, \
             without a FIN; a server that closed with its FIN queued behind a large unsent \
             buffer also looks like this"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slow_read::{SlowReadConn, SlowReadEnd, SlowReadSummary};
    use crate::stats::OvershootSummary;

    const MS: Duration = Duration::from_millis(1);

    fn slowloris(p99_us: f64) -> ModeResult {
        ModeResult {
            mode: AttackMode::Slowloris { interval: 100 * MS },
            deadline: 1000 * MS,
            window: 1000 * MS,
            attack: AttackReport {
                mode: "slowloris",
                connections: 300,
                opened: 300,
                closed: 300,
                fin_seen: 300,
                overshoot: OvershootSummary {
                    count: 300,
                    p50_us: 200.0,
                    p90_us: 900.0,
                    p99_us,
                    max_us: p99_us + 1000.0,
                    ..OvershootSummary::default()
                },
                ..AttackReport::default()
            },
            legit: None,
        }
    }

    fn max_p99(d: Duration) -> Policy {
        Policy {
            slack: 500 * MS,
            max_p99: Some(d),
            ..Policy::default()
        }
    }

    #[test]
    fn p99_above_max_p99_fails_and_names_the_figure() {
        let v = judge(&slowloris(12_500.0), &max_p99(10 * MS));
        assert!(!v.passed());
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(
            v.failures[0].starts_with("overshoot p99 12.50ms exceeds --max-p99 10ms"),
            "{v:?}"
        );
    }

    #[test]
    fn p99_at_or_below_max_p99_passes() {
        assert!(judge(&slowloris(9_999.0), &max_p99(10 * MS)).passed());
        assert!(judge(&slowloris(10_000.0), &max_p99(10 * MS)).passed());
    }

    #[test]
    fn without_max_p99_a_slow_p99_passes() {
        let policy = Policy {
            slack: 500 * MS,
            ..Policy::default()
        };
        assert!(judge(&slowloris(400_000.0), &policy).passed());
    }

    #[test]
    fn idle_mode_is_not_held_to_max_p99() {
        let mut m = slowloris(50_000.0);
        m.mode = AttackMode::Idle { hold: 2000 * MS };
        let v = judge(&m, &max_p99(10 * MS));
        assert!(v.passed(), "{v:?}");
        assert!(v.warnings.is_empty(), "{v:?}");
    }

    #[test]
    fn max_p99_with_no_timed_close_warns_rather_than_passes_silently() {
        let mut m = slowloris(0.0);
        m.attack.overshoot = OvershootSummary::default();
        let v = judge(&m, &max_p99(10 * MS));
        assert!(v.passed(), "{v:?}");
        assert!(v.warnings[0].contains("no close was timed"), "{v:?}");
    }

    fn slow_read(end: SlowReadEnd, after: u64) -> ModeResult {
        let conns = (0..4)
            .map(|index| SlowReadConn {
                index,
                end,
                overshoot_ns: None,
                bytes_received: 4096 + after,
                bytes_after_deadline: after,
            })
            .collect();
        ModeResult {
            mode: AttackMode::SlowRead {
                response_bytes: 8 << 20,
                interval: 200 * MS,
            },
            deadline: 2000 * MS,
            window: 2000 * MS,
            attack: AttackReport {
                mode: "slow-read",
                connections: 4,
                opened: 4,
                slow_read: Some(SlowReadSummary::from_conns(conns)),
                ..AttackReport::default()
            },
            legit: None,
        }
    }

    fn fin_warning(v: &[String]) -> Option<&String> {
        v.iter()
            .find(|w| w.contains("FINed with data still flowing"))
    }

    #[test]
    fn fin_with_bytes_after_the_deadline_warns_by_default() {
        let m = slow_read(SlowReadEnd::FinBehindData, 3 << 20);
        let v = judge(&m, &Policy::default());
        assert!(v.passed(), "{v:?}");
        let w = fin_warning(&v.warnings).expect("a warning");
        assert!(
            w.starts_with(
                "4 connections FINed with data still flowing (12.00MiB after the deadline"
            ),
            "{w}"
        );
        assert!(w.contains("SO_LINGER 0"), "{w}");
    }

    #[test]
    fn require_reset_slow_read_turns_the_fin_warning_into_a_failure() {
        let m = slow_read(SlowReadEnd::FinBehindData, 3 << 20);
        let policy = Policy {
            require_reset_slow_read: true,
            ..Policy::default()
        };
        let v = judge(&m, &policy);
        assert!(!v.passed());
        assert!(fin_warning(&v.failures).is_some(), "{v:?}");
        assert!(fin_warning(&v.warnings).is_none(), "{v:?}");
    }

    #[test]
    fn a_reset_or_a_fin_with_nothing_after_the_deadline_passes_the_reset_requirement() {
        let policy = Policy {
            require_reset_slow_read: true,
            ..Policy::default()
        };
        for m in [
            slow_read(SlowReadEnd::Reset, 0),
            slow_read(SlowReadEnd::Fin, 0),
        ] {
            let v = judge(&m, &policy);
            assert!(v.passed(), "{v:?}");
            assert!(fin_warning(&v.warnings).is_none(), "{v:?}");
        }
    }
}
