//! The soak's classes of client and what each saw, in one shape: how many
//! exchanges it started, how many ended as they should, and why the others
//! did not.
//!
//! Four kinds of run feed a [`ClassReport`]:
//!
//! - paced legit load ([`run_load`]), over the whole soak;
//! - waves of slow attackers ([`run_attack`]), one wave after another;
//! - waves of connections that send one opening and stall
//!   ([`super::storms`]: head storms, silent metrics connections);
//! - one-connection exchanges ([`super::exchanges`]), a few workers each
//!   running one exchange after another.
//!
//! Each stops starting work at the soak's end; what it started finishes by
//! its own deadline, so every run ends by itself.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::attack::{run_attack, AttackConfig, AttackReport};
use crate::check::ErrorKind;
use crate::load::{run_load, LoadConfig};
use crate::runners::table::Table;

use super::exchanges::Outcome;

/// Counts by reason, shown as `timeout=3 bad_status=1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    pub fn add(&mut self, why: &'static str, n: u64) {
        if n > 0 {
            *self.0.entry(why).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Each reason seen and its count, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(why, n)| (*why, *n))
    }

    pub fn merge(&mut self, other: &Tally) {
        for (why, n) in &other.0 {
            self.add(why, *n);
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (why, n) in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{why}={n}")?;
            first = false;
        }
        Ok(())
    }
}

/// What one class of client saw over the soak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassReport {
    pub name: &'static str,
    /// Exchanges started (requests, attack connections, one-connection
    /// exchanges).
    pub started: u64,
    /// Ended as they should.
    pub ok: u64,
    /// Wrong answers: a bad status, a short body, no answer in time, a close
    /// before the answer. Each is a failure.
    pub wrong: Tally,
    /// Connections still open past the deadline they had to meet plus the
    /// slack. Each is a failure.
    pub hangs: Tally,
    /// Clients that kept to the rules and were closed anyway: idle
    /// keep-alive connections closed before their hold ended, stream readers
    /// reset or cut before the whole answer. Each is a failure.
    pub false_kills: Tally,
    /// How the `ok` ones ended, where a class tells its kinds apart (a head
    /// storm's deadline closes and refusals). Reported only.
    pub ok_by: Tally,
    /// Ended without a verdict either way: a failed connect, a pipeline cut
    /// by the end of the soak, an attacker closed early. Reported only.
    pub untested: Tally,
    /// The longest exchange that ended well (legit: the slowest response).
    pub slowest: Option<Duration>,
    /// Attackers: the latest timed close, past its deadline.
    pub latest_close: Option<Duration>,
}

impl ClassReport {
    pub fn new(name: &'static str) -> ClassReport {
        ClassReport {
            name,
            started: 0,
            ok: 0,
            wrong: Tally::default(),
            hangs: Tally::default(),
            false_kills: Tally::default(),
            ok_by: Tally::default(),
            untested: Tally::default(),
            slowest: None,
            latest_close: None,
        }
    }

    pub fn record(&mut self, outcome: Outcome) {
        self.started += 1;
        match outcome {
            Outcome::Ok(took) => {
                self.ok += 1;
                self.slowest = self.slowest.max(Some(took));
            }
            Outcome::Wrong(why) => self.wrong.add(why, 1),
            Outcome::Hang(why) => self.hangs.add(why, 1),
            Outcome::Untested(why) => self.untested.add(why, 1),
            Outcome::FalseKill(why) => self.false_kills.add(why, 1),
        }
    }

    pub fn merge(&mut self, other: &ClassReport) {
        self.started += other.started;
        self.ok += other.ok;
        self.wrong.merge(&other.wrong);
        self.hangs.merge(&other.hangs);
        self.false_kills.merge(&other.false_kills);
        self.ok_by.merge(&other.ok_by);
        self.untested.merge(&other.untested);
        self.slowest = self.slowest.max(other.slowest);
        self.latest_close = self.latest_close.max(other.latest_close);
    }

    /// Checked responses are `ok`; every load error is a wrong answer,
    /// failed connects included: legit clients must be served.
    pub fn from_load(name: &'static str, r: &crate::load::LoadReport) -> ClassReport {
        let mut c = ClassReport::new(name);
        c.ok = r.requests;
        for kind in ErrorKind::ALL {
            c.wrong.add(kind.name(), r.errors.get(kind));
        }
        c.started = c.ok + c.wrong.total();
        c.slowest = (r.latency.count > 0).then(|| Duration::from_micros(r.latency.max_us));
        c
    }

    /// A timed close by the server is `ok`. Early closes and failed connects
    /// are reported, not failed: a server may shed attackers early.
    ///
    /// Slow readers past deadline + slack are drained to tell why. A FIN
    /// found behind the data is a hang: the server closed, but behind data
    /// the reader had not taken, so to the reader the connection was still
    /// open and the server's kernel still held the unsent bytes. The whole
    /// response read and no FIN is a hang too: the soak asks for twice what
    /// the kernel lets a send buffer hold, so the server was not timing its
    /// write (or answered late, from a stuck worker).
    pub fn from_attack(name: &'static str, a: &AttackReport) -> ClassReport {
        let mut c = ClassReport::new(name);
        c.started = (a.opened + a.connect_failed) as u64;
        let idle = a.mode == "idle";
        if idle {
            // Held to the end of the hold and closed by us.
            c.ok = a
                .opened
                .saturating_sub(a.closed + a.idle_unusable + a.hangs) as u64;
            c.false_kills
                .add("closed_before_hold_ended", a.false_kills as u64);
            c.wrong.add("no_keep_alive_answer", a.idle_unusable as u64);
        } else {
            c.ok = (a.closed - a.early_closes) as u64;
            c.untested.add("closed_early", a.early_closes as u64);
            c.hangs
                .add("closed_behind_unsent_data", a.closed_behind_data as u64);
        }
        c.hangs.add(
            "open_past_deadline",
            (a.hangs - a.whole_response_read) as u64,
        );
        c.hangs
            .add("whole_response_read_no_fin", a.whole_response_read as u64);
        c.untested.add("connect_failed", a.connect_failed as u64);
        if a.overshoot.count > 0 {
            c.latest_close = Some(Duration::from_secs_f64(a.overshoot.max_us.max(0.0) / 1e6));
        }
        c
    }
}

/// Paced legit load over the whole soak.
pub fn legit(name: &'static str, cfg: &LoadConfig) -> io::Result<ClassReport> {
    Ok(ClassReport::from_load(name, &run_load(cfg)?))
}

/// Waves of `cfg`, one after another, while a wave still fits before `end`
/// (the first always runs). `wave_len` is how long a wave lasts at most when
/// the server keeps its deadlines.
pub fn attack_waves(
    name: &'static str,
    cfg: &AttackConfig,
    wave_len: Duration,
    end: Instant,
) -> io::Result<ClassReport> {
    let mut total: Option<AttackReport> = None;
    let mut waves = 0;
    let max_waves = waves_that_fit(end, wave_len);
    while waves < max_waves {
        if waves > 0 && Instant::now() + wave_len > end {
            break;
        }
        let wave = run_attack(cfg)?;
        match total.as_mut() {
            Some(t) => t.merge(wave),
            None => total = Some(wave),
        }
        waves += 1;
    }
    Ok(total.map_or(ClassReport::new(name), |t| {
        ClassReport::from_attack(name, &t)
    }))
}

/// A bound on the loop, besides its clock: one wave more than fits.
fn waves_that_fit(end: Instant, wave_len: Duration) -> usize {
    let left = end.saturating_duration_since(Instant::now());
    (left.as_millis() / wave_len.as_millis().max(1)) as usize + 1
}

/// What a worker does once one of its exchanges hung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterHang {
    Continue,
    /// Start no more: the fault is shown, and more of the same would only
    /// pile work onto a server that is stuck on it, hiding what the other
    /// classes would show.
    Stop,
}

/// `workers` threads, each running `exchange` one after another with
/// `pause` between, while the soak lasts (each runs at least once).
pub fn exchanges<F>(
    name: &'static str,
    workers: usize,
    pause: Duration,
    after_hang: AfterHang,
    end: Instant,
    exchange: F,
) -> ClassReport
where
    F: Fn(u64) -> Outcome + Sync,
{
    run_exchanges(
        name,
        workers,
        pause,
        after_hang,
        Duration::ZERO,
        end,
        exchange,
    )
}

/// Like [`exchanges`] for exchanges that last about `takes` each (a paced
/// reader): after its first, a worker starts another only if it would end
/// by `end`, so the soak's tail does not grow by one.
pub fn exchanges_that_fit<F>(
    name: &'static str,
    workers: usize,
    pause: Duration,
    takes: Duration,
    end: Instant,
    exchange: F,
) -> ClassReport
where
    F: Fn(u64) -> Outcome + Sync,
{
    run_exchanges(
        name,
        workers,
        pause,
        AfterHang::Continue,
        takes,
        end,
        exchange,
    )
}

fn run_exchanges<F>(
    name: &'static str,
    workers: usize,
    pause: Duration,
    after_hang: AfterHang,
    takes: Duration,
    end: Instant,
    exchange: F,
) -> ClassReport
where
    F: Fn(u64) -> Outcome + Sync,
{
    let exchange = &exchange;
    let left = end.saturating_duration_since(Instant::now());
    // Each exchange takes at least `pause`: this bounds the loop's count.
    let max_each = (left.as_millis() / pause.as_millis().max(1)) as u64 + 1;
    let mut total = ClassReport::new(name);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    let mut r = ClassReport::new(name);
                    for k in 0..max_each {
                        if k > 0 && Instant::now() + takes >= end {
                            break;
                        }
                        let outcome = exchange(k * workers as u64 + w as u64);
                        r.record(outcome);
                        if after_hang == AfterHang::Stop && matches!(outcome, Outcome::Hang(_)) {
                            break;
                        }
                        let rest = end.saturating_duration_since(Instant::now());
                        std::thread::sleep(pause.min(rest));
                    }
                    r
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => total.merge(&r),
                Err(_) => total.wrong.add("client_thread_panicked", 1),
            }
        }
    });
    total
}

/// One row per class.
pub fn table(classes: &[ClassReport]) -> String {
    let mut t = Table::new(
        &[
            "class",
            "started",
            "ok",
            "wrong",
            "hangs",
            "false kills",
            "untested",
            "slowest ok",
            "latest close",
            "why",
        ],
        1,
    );
    for c in classes {
        let mut why = Vec::new();
        for (label, tally) in [
            ("wrong", &c.wrong),
            ("hang", &c.hangs),
            ("false kill", &c.false_kills),
            ("untested", &c.untested),
            ("ok", &c.ok_by),
        ] {
            if tally.total() > 0 {
                why.push(format!("{label}: {tally}"));
            }
        }
        t.row(vec![
            c.name.to_string(),
            c.started.to_string(),
            c.ok.to_string(),
            c.wrong.total().to_string(),
            c.hangs.total().to_string(),
            c.false_kills.total().to_string(),
            c.untested.total().to_string(),
            seconds(c.slowest),
            c.latest_close
                .map_or("-".to_string(), |d| format!("+{}", seconds(Some(d)))),
            why.join("; "),
        ]);
    }
    t.text()
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), |d| format!("{:.3}s", d.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ErrorCounts;
    use crate::load::LoadReport;

    #[test]
    fn load_errors_are_wrong_answers_by_kind() {
        let mut errors = ErrorCounts::default();
        errors.add(ErrorKind::Timeout, 2);
        errors.add(ErrorKind::Connect, 1);
        let r = LoadReport {
            requests: 100,
            errors,
            ..LoadReport::default()
        };
        let c = ClassReport::from_load("legit", &r);
        assert_eq!(c.started, 103);
        assert_eq!(c.ok, 100);
        assert_eq!(c.wrong.to_string(), "connect=1 timeout=2");
    }

    #[test]
    fn attack_hangs_fail_but_early_closes_do_not() {
        let a = AttackReport {
            mode: "slow-read",
            opened: 10,
            closed: 6,
            early_closes: 1,
            hangs: 4,
            whole_response_read: 1,
            ..AttackReport::default()
        };
        let c = ClassReport::from_attack("slow-read", &a);
        assert_eq!(c.ok, 5);
        assert_eq!(
            c.hangs.to_string(),
            "open_past_deadline=3 whole_response_read_no_fin=1"
        );
        assert_eq!(c.untested.to_string(), "closed_early=1");
    }

    #[test]
    fn slow_reader_closed_behind_its_unread_data_is_a_hang() {
        let a = AttackReport {
            mode: "slow-read",
            opened: 4,
            closed: 1,
            hangs: 0,
            closed_behind_data: 3,
            ..AttackReport::default()
        };
        let c = ClassReport::from_attack("slow-read", &a);
        assert_eq!(c.ok, 1);
        assert_eq!(c.hangs.to_string(), "closed_behind_unsent_data=3");
    }

    #[test]
    fn idle_closes_are_false_kills() {
        let a = AttackReport {
            mode: "idle",
            opened: 10,
            closed: 2,
            false_kills: 2,
            ..AttackReport::default()
        };
        let c = ClassReport::from_attack("idle", &a);
        assert_eq!(c.ok, 8);
        assert_eq!(c.false_kills.to_string(), "closed_before_hold_ended=2");
        assert_eq!(c.hangs.total(), 0);
    }

    #[test]
    fn a_worker_told_to_stop_after_a_hang_starts_no_more() {
        let end = Instant::now() + Duration::from_millis(200);
        let hang = |_| Outcome::Hang("stalled");
        let stopped = exchanges(
            "x",
            2,
            Duration::from_millis(10),
            AfterHang::Stop,
            end,
            hang,
        );
        assert_eq!(stopped.started, 2, "one per worker");
        let went_on = exchanges(
            "x",
            2,
            Duration::from_millis(10),
            AfterHang::Continue,
            end,
            hang,
        );
        assert!(went_on.started > 4, "{went_on:?}");
        assert!(
            Instant::now() < end + Duration::from_millis(100),
            "ends with the soak"
        );
    }

    #[test]
    fn outcomes_land_in_their_column() {
        let mut c = ClassReport::new("x");
        c.record(Outcome::Ok(Duration::from_millis(5)));
        c.record(Outcome::Ok(Duration::from_millis(9)));
        c.record(Outcome::Wrong("timeout"));
        c.record(Outcome::Hang("never_closed"));
        c.record(Outcome::Untested("connect_failed"));
        c.record(Outcome::FalseKill("reset_mid_response"));
        assert_eq!((c.started, c.ok), (6, 2));
        assert_eq!(c.false_kills.to_string(), "reset_mid_response=1");
        assert_eq!(c.slowest, Some(Duration::from_millis(9)));
        assert_eq!(c.wrong.to_string(), "timeout=1");
        assert_eq!(c.hangs.to_string(), "never_closed=1");
        assert_eq!(c.untested.to_string(), "connect_failed=1");
    }
}
