//! `ConnTimers`: one connection's deadline table and the kernel timer the
//! model believes is in flight. This file holds the table and its low-level
//! rules; `kernel_timer.rs` turns it into timer actions and `transitions.rs`
//! maps protocol events onto it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{DeadlineKind, MinRate, MinRates, MonoTime, Timeouts};

/// One connection's deadlines and its one kernel timer.
///
/// Small plain data: the engine keeps one per connection slot and drives
/// it from a single thread. The timeouts and rates, the same for every
/// connection of a server, are shared: make one with
/// [`with_min_rates`](Self::with_min_rates) and clone it per connection,
/// which allocates nothing.
///
/// Two rules hold the whole design together:
///
/// - **Arm-if-unarmed.** A deadline, once armed, does not move until it is
///   cleared. Bytes trickling in never push it out; that is what stops a
///   slowloris peer that sends one byte every few seconds.
/// - **One timer, never late.** INVARIANT: after [`plan`](Self::plan) (and
///   after [`on_fire`](Self::on_fire) answers `Rearm`), if any deadline is
///   live then [`pending_timer`](Self::pending_timer) is `Some(p)` with
///   `p <= earliest live deadline`. The timer may be *earlier* than every live
///   deadline (the deadline it was set for was cleared or replaced by a later
///   one); it then fires early and `on_fire` re-arms. It is never later, so no
///   deadline is enforced late, and there is never a second timer, because
///   `plan` submits only when none is pending.
///
/// A deadline can be no later than `u64::MAX - 1` nanoseconds (about 584
/// years of uptime): `u64::MAX` marks an unarmed one. A timeout of
/// `Duration::MAX` arms that last instant, which never comes.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnTimers {
    /// The timeouts and rates, shared by every connection cloned from the
    /// same one: 64 bytes per connection slot when each held its own copy.
    policy: Arc<Policy>,
    /// Expiry of each kind in nanoseconds on CLOCK_MONOTONIC, indexed by
    /// [`DeadlineKind::index`]; [`UNARMED`] if it is not armed. Plain
    /// `u64`s, not `Option<MonoTime>` (16 bytes each), for the same reason
    /// as `runs_ns`: 40 bytes less per connection slot.
    deadlines_ns: [u64; KINDS],
    /// Expiry of the kernel timer believed in flight, in nanoseconds;
    /// [`UNARMED`] if there is none.
    pending_ns: u64,
}

/// How long each deadline runs and the minimum rates.
#[derive(PartialEq, Eq)]
struct Policy {
    /// How long each kind runs once armed, in nanoseconds (saturated),
    /// indexed by [`DeadlineKind::index`]: the four timeouts, each rate's
    /// grace, then the handler timeout.
    runs_ns: [u64; KINDS],
    /// Bytes per second of the body and send rates; 0: no such rate.
    rates_bps: [u32; 2],
}

const KINDS: usize = DeadlineKind::ALL.len();

/// An unarmed deadline, or no kernel timer in flight.
const UNARMED: u64 = u64::MAX;

/// The latest instant a deadline can be armed for, one short of
/// [`UNARMED`] so that a timeout saturating at the end of time still arms.
const LAST_INSTANT: u64 = UNARMED - 1;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `at` as stored in the tables: saturated at [`LAST_INSTANT`] so it never
/// reads as unarmed.
fn stored(at: MonoTime) -> u64 {
    at.as_nanos().min(LAST_INSTANT)
}

fn loaded(ns: u64) -> Option<MonoTime> {
    (ns != UNARMED).then_some(MonoTime::from_nanos(ns))
}

impl ConnTimers {
    /// A connection with no deadline armed and no kernel timer.
    pub fn new(timeouts: Timeouts) -> Self {
        Self::with_min_rates(timeouts, MinRates::default())
    }

    /// As [`new`](Self::new), holding the connection to minimum data rates
    /// as well (the `BodyRate` and `SendRate` deadlines). A rate of 0 bytes/s
    /// counts as none. Allocates the shared policy: for many connections,
    /// clone one of these instead.
    pub fn with_min_rates(timeouts: Timeouts, rates: MinRates) -> Self {
        let grace = |r: Option<MinRate>| r.map_or(0, |r| nanos(r.grace));
        let bps = |r: Option<MinRate>| r.map_or(0, |r| r.bytes_per_sec);
        ConnTimers {
            policy: Arc::new(Policy {
                runs_ns: [
                    nanos(timeouts.header),
                    nanos(timeouts.body),
                    nanos(timeouts.idle),
                    nanos(timeouts.write),
                    grace(rates.body),
                    grace(rates.send),
                    nanos(timeouts.handler),
                ],
                rates_bps: [bps(rates.body), bps(rates.send)],
            }),
            deadlines_ns: [UNARMED; KINDS],
            pending_ns: UNARMED,
        }
    }

    /// The minimum rates this connection is held to.
    pub fn min_rates(&self) -> MinRates {
        MinRates {
            body: self.rate_for(DeadlineKind::BodyRate),
            send: self.rate_for(DeadlineKind::SendRate),
        }
    }

    fn rate_for(&self, kind: DeadlineKind) -> Option<MinRate> {
        let bytes_per_sec = match kind {
            DeadlineKind::BodyRate => self.policy.rates_bps[0],
            DeadlineKind::SendRate => self.policy.rates_bps[1],
            _ => 0,
        };
        (bytes_per_sec > 0).then(|| MinRate {
            bytes_per_sec,
            grace: Duration::from_nanos(self.policy.runs_ns[kind.index()]),
        })
    }

    /// `bytes` of progress seen at `now` move the armed rate deadline `kind`
    /// later by their credit, banking at most `grace` beyond it (see
    /// [`MinRate`]). It never moves earlier.
    pub(crate) fn credit_rate(&mut self, kind: DeadlineKind, now: MonoTime, bytes: u64) {
        let Some(rate) = self.rate_for(kind) else {
            return;
        };
        if let Some(at) = self.deadline(kind) {
            let credit = rate.credit(bytes);
            let credited = at
                .saturating_add(credit)
                .min(now.saturating_add(rate.grace).saturating_add(credit));
            self.deadlines_ns[kind.index()] = stored(at.max(credited));
        }
    }

    /// The deadline that has passed at `now`, if any: what
    /// [`on_fire`](Self::on_fire) would report as expired. The engine
    /// looks before it fires, to bring in progress the kernel saw and it
    /// did not (bytes the peer acknowledged without a send completing).
    pub fn due(&self, now: MonoTime) -> Option<DeadlineKind> {
        self.earliest()
            .and_then(|(kind, at)| (at <= now).then_some(kind))
    }

    /// The timeouts this connection was created with (saturated at
    /// `u64::MAX` nanoseconds, about 584 years).
    pub fn timeouts(&self) -> Timeouts {
        let run = |kind: DeadlineKind| Duration::from_nanos(self.policy.runs_ns[kind.index()]);
        Timeouts {
            header: run(DeadlineKind::Header),
            body: run(DeadlineKind::Body),
            idle: run(DeadlineKind::Idle),
            write: run(DeadlineKind::Write),
            handler: run(DeadlineKind::Handler),
        }
    }

    /// Arms `kind` at `now + timeout(kind)` (a rate kind: `now + grace`) if
    /// it is unarmed and returns `true`. If it is already armed, changes
    /// nothing and returns `false`: re-arming must not move a deadline, or
    /// drip bytes would extend it forever. A rate kind without a
    /// configured rate is never armed.
    pub fn arm(&mut self, kind: DeadlineKind, now: MonoTime) -> bool {
        let is_rate = matches!(kind, DeadlineKind::BodyRate | DeadlineKind::SendRate);
        if is_rate && self.rate_for(kind).is_none() {
            return false;
        }
        let slot = &mut self.deadlines_ns[kind.index()];
        if *slot != UNARMED {
            return false;
        }
        let run = Duration::from_nanos(self.policy.runs_ns[kind.index()]);
        *slot = stored(now.saturating_add(run));
        true
    }

    /// Disarms `kind`. The kernel timer is left alone: if it was due for this
    /// deadline it fires early and [`on_fire`](Self::on_fire) sorts it out,
    /// which costs one wake-up instead of a remove SQE on every clear.
    pub fn clear(&mut self, kind: DeadlineKind) {
        self.deadlines_ns[kind.index()] = UNARMED;
    }

    /// Disarms every deadline (the kernel timer, as for [`clear`](Self::clear),
    /// is left to fire early).
    pub fn clear_all(&mut self) {
        self.deadlines_ns = [UNARMED; KINDS];
    }

    /// The instant `kind` expires, if it is armed.
    pub fn deadline(&self, kind: DeadlineKind) -> Option<MonoTime> {
        loaded(self.deadlines_ns[kind.index()])
    }

    /// The earliest armed deadline. On a tie, the kind listed first in
    /// [`DeadlineKind::ALL`] (header, body, idle, write, ...) wins.
    pub fn earliest(&self) -> Option<(DeadlineKind, MonoTime)> {
        let mut best: Option<(DeadlineKind, MonoTime)> = None;
        for kind in DeadlineKind::ALL {
            if let Some(at) = self.deadline(kind) {
                // Strictly earlier only: a later kind never displaces an
                // earlier one at the same instant.
                if best.is_none_or(|(_, b)| at < b) {
                    best = Some((kind, at));
                }
            }
        }
        best
    }

    /// Expiry of the kernel timer believed in flight: set by
    /// [`plan`](Self::plan) (`Submit` / `Update`) and by
    /// [`on_fire`](Self::on_fire) (`Rearm`); `None` after a fire or
    /// [`on_timer_gone`](Self::on_timer_gone). The engine uses it to know
    /// whether a timer must be cancelled when the connection closes.
    pub fn pending_timer(&self) -> Option<MonoTime> {
        loaded(self.pending_ns)
    }

    /// Records the kernel timer believed in flight (`None`: there is none).
    /// Only ever a deadline's expiry, so it never reads as `None`.
    pub(crate) fn set_pending_timer(&mut self, at: Option<MonoTime>) {
        self.pending_ns = at.map_or(UNARMED, stored);
    }
}

/// Shows the armed deadlines by name, not the raw table with its sentinel.
impl fmt::Debug for ConnTimers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTimers")
            .field("timeouts", &self.timeouts())
            .field("min_rates", &self.min_rates())
            .field("deadlines", &ArmedDeadlines(self))
            .field("pending_timer", &self.pending_timer())
            .finish()
    }
}

struct ArmedDeadlines<'a>(&'a ConnTimers);

impl fmt::Debug for ArmedDeadlines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let armed = DeadlineKind::ALL
            .iter()
            .filter_map(|&kind| Some((kind.name(), self.0.deadline(kind)?)));
        f.debug_map().entries(armed).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_timers_stay_small() {
        // One per connection slot. It was 168 bytes with six kinds and
        // `Option<MonoTime>` deadlines, and 128 with its own copy of the
        // timeouts and rates.
        assert!(std::mem::size_of::<ConnTimers>() <= 72);
    }

    #[test]
    fn arm_saturates_near_the_end_of_time() {
        let mut timers = ConnTimers::new(Timeouts::uniform(Duration::from_secs(10)));
        let late = MonoTime::from_nanos(u64::MAX - 5);
        assert!(timers.arm(DeadlineKind::Header, late));
        assert_eq!(
            timers.deadline(DeadlineKind::Header),
            Some(MonoTime::from_nanos(LAST_INSTANT))
        );
        // Saturated, the deadline is still armed: it is not re-armed, and
        // it is the one the timer is planned for.
        assert!(!timers.arm(DeadlineKind::Header, late));
        assert_eq!(
            timers.plan(),
            crate::TimerAction::Submit(MonoTime::from_nanos(LAST_INSTANT))
        );
        assert_eq!(
            timers.pending_timer(),
            Some(MonoTime::from_nanos(LAST_INSTANT))
        );
    }

    #[test]
    fn a_never_timeout_arms_and_never_expires() {
        let mut timers = ConnTimers::new(Timeouts::uniform(Duration::MAX));
        timers.on_accept(MonoTime::from_nanos(1_000));
        assert_eq!(
            timers.deadline(DeadlineKind::Header),
            Some(MonoTime::from_nanos(LAST_INSTANT))
        );
        timers.plan();
        // Centuries of uptime later, the fire is early and re-arms.
        let centuries = MonoTime::from_nanos(LAST_INSTANT - 1);
        assert_eq!(
            timers.on_fire(centuries),
            crate::FireOutcome::Rearm(MonoTime::from_nanos(LAST_INSTANT))
        );
    }

    #[test]
    fn rate_credit_saturates_without_disarming() {
        let rate = MinRate::new(1, Duration::MAX);
        let mut timers = ConnTimers::with_min_rates(
            Timeouts::uniform(Duration::from_secs(10)),
            MinRates {
                body: Some(rate),
                send: None,
            },
        );
        let now = MonoTime::from_nanos(1_000);
        assert!(timers.arm(DeadlineKind::BodyRate, now));
        timers.on_body_progress(now, u64::MAX);
        assert_eq!(
            timers.deadline(DeadlineKind::BodyRate),
            Some(MonoTime::from_nanos(LAST_INSTANT))
        );
    }

    #[test]
    fn debug_names_the_armed_deadlines() {
        let mut timers = ConnTimers::new(Timeouts::uniform(Duration::from_secs(1)));
        timers.on_handler_started(MonoTime::from_nanos(0));
        let shown = format!("{timers:?}");
        assert!(
            shown.contains(r#"deadlines: {"handler": MonoTime(1000000000)}"#),
            "{shown}"
        );
        assert!(shown.contains("pending_timer: None"), "{shown}");
    }
}
