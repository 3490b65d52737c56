//! `ConnTimers`: one connection's deadline table and the kernel timer the
//! model believes is in flight. This file holds the table and its low-level
//! rules; `kernel_timer.rs` turns it into timer actions and `transitions.rs`
//! maps protocol events onto it.

use std::time::Duration;

use crate::{DeadlineKind, MinRate, MinRates, MonoTime, Timeouts};

/// One connection's deadlines and its one kernel timer.
///
/// Plain data (`Copy`, no allocation): the engine keeps one per
/// connection slot and drives it from a single thread.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTimers {
    /// How long each kind runs once armed, in nanoseconds (saturated),
    /// indexed by [`DeadlineKind::index`]: the four timeouts, then each
    /// rate's grace. Nanoseconds rather than `Duration`s, and the rates
    /// below rather than `MinRates`, because there is one of these in every
    /// connection slot: 56 bytes less per connection.
    runs_ns: [u64; 6],
    /// Bytes per second of the body and send rates; 0: no such rate.
    rates_bps: [u32; 2],
    /// Indexed by [`DeadlineKind::index`]; `None` is unarmed.
    pub(crate) deadlines: [Option<MonoTime>; 6],
    /// Expiry of the kernel timer believed in flight; `None` if there is none.
    pub(crate) pending: Option<MonoTime>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl ConnTimers {
    /// A connection with no deadline armed and no kernel timer.
    pub fn new(timeouts: Timeouts) -> Self {
        Self::with_min_rates(timeouts, MinRates::default())
    }

    /// As [`new`](Self::new), holding the connection to minimum data rates
    /// as well (the `BodyRate` and `SendRate` deadlines). A rate of 0 bytes/s
    /// counts as none.
    pub fn with_min_rates(timeouts: Timeouts, rates: MinRates) -> Self {
        let grace = |r: Option<MinRate>| r.map_or(0, |r| nanos(r.grace));
        let bps = |r: Option<MinRate>| r.map_or(0, |r| r.bytes_per_sec);
        ConnTimers {
            runs_ns: [
                nanos(timeouts.header),
                nanos(timeouts.body),
                nanos(timeouts.idle),
                nanos(timeouts.write),
                grace(rates.body),
                grace(rates.send),
            ],
            rates_bps: [bps(rates.body), bps(rates.send)],
            deadlines: [None; 6],
            pending: None,
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
            DeadlineKind::BodyRate => self.rates_bps[0],
            DeadlineKind::SendRate => self.rates_bps[1],
            _ => 0,
        };
        (bytes_per_sec > 0).then(|| MinRate {
            bytes_per_sec,
            grace: Duration::from_nanos(self.runs_ns[kind.index()]),
        })
    }

    /// `bytes` of progress seen at `now` move the armed rate deadline `kind`
    /// later by their credit, capped at `now + grace` (see [`MinRate`]). It
    /// never moves earlier.
    pub(crate) fn credit_rate(&mut self, kind: DeadlineKind, now: MonoTime, bytes: u64) {
        let Some(rate) = self.rate_for(kind) else {
            return;
        };
        if let Some(at) = self.deadlines[kind.index()] {
            let credited = at
                .saturating_add(rate.credit(bytes))
                .min(now.saturating_add(rate.grace));
            self.deadlines[kind.index()] = Some(at.max(credited));
        }
    }

    /// The timeouts this connection was created with (saturated at
    /// `u64::MAX` nanoseconds, about 584 years).
    pub fn timeouts(&self) -> Timeouts {
        let run = |kind: DeadlineKind| Duration::from_nanos(self.runs_ns[kind.index()]);
        Timeouts {
            header: run(DeadlineKind::Header),
            body: run(DeadlineKind::Body),
            idle: run(DeadlineKind::Idle),
            write: run(DeadlineKind::Write),
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
        let slot = &mut self.deadlines[kind.index()];
        if slot.is_some() {
            return false;
        }
        *slot = Some(now.saturating_add(Duration::from_nanos(self.runs_ns[kind.index()])));
        true
    }

    /// Disarms `kind`. The kernel timer is left alone: if it was due for this
    /// deadline it fires early and [`on_fire`](Self::on_fire) sorts it out,
    /// which costs one wake-up instead of a remove SQE on every clear.
    pub fn clear(&mut self, kind: DeadlineKind) {
        self.deadlines[kind.index()] = None;
    }

    /// Disarms every deadline (the kernel timer, as for [`clear`](Self::clear),
    /// is left to fire early).
    pub fn clear_all(&mut self) {
        self.deadlines = [None; 6];
    }

    /// The instant `kind` expires, if it is armed.
    pub fn deadline(&self, kind: DeadlineKind) -> Option<MonoTime> {
        self.deadlines[kind.index()]
    }

    /// The earliest armed deadline. On a tie, the kind listed first in
    /// [`DeadlineKind::ALL`] (header, body, idle, write) wins.
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
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_timers_stay_small() {
        // One per connection slot: keep it a handful of cache lines.
        assert!(std::mem::size_of::<ConnTimers>() <= 168);
    }

    #[test]
    fn arm_saturates_near_the_end_of_time() {
        let t = Duration::from_secs(10);
        let mut timers = ConnTimers::new(Timeouts {
            header: t,
            body: t,
            idle: t,
            write: t,
        });
        let late = MonoTime::from_nanos(u64::MAX - 5);
        assert!(timers.arm(DeadlineKind::Header, late));
        assert_eq!(
            timers.deadline(DeadlineKind::Header),
            Some(MonoTime::from_nanos(u64::MAX))
        );
    }
}
