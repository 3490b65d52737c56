//! The kernel timer: what to submit after a transition (`plan`), what a fire
//! means (`on_fire`), and what a lost timer means (`on_timer_gone`).
//!
//! # The races, and why the model stays right
//!
//! The engine holds at most one `IORING_OP_TIMEOUT` per connection (count 0,
//! `IORING_TIMEOUT_ABS`, CLOCK_MONOTONIC). It moves it earlier with
//! `IORING_OP_TIMEOUT_REMOVE` + `IORING_TIMEOUT_UPDATE`, a separate operation
//! with its own CQE. The update races the fire:
//!
//! | the engine sees | it does | why the model stays right |
//! |---|---|---|
//! | update CQE `0`, later the timer's `-ETIME` | nothing, then `on_fire(now)` | the kernel timer now expires at the `Update` target, which `pending_timer()` already holds |
//! | the timer's `-ETIME`, then update CQE `-ENOENT` | `on_fire(now)`, then ignores the update CQE | the timer fired before the update reached it; `on_fire` re-plans from the deadlines live *now*, which include the earlier one the update was for |
//! | update CQE `-ENOENT`/`-EALREADY`, then the timer's `-ETIME` | ignores the update CQE, then `on_fire(now)` | as above; the fire CQE is on its way |
//! | the timer's `-ETIME`, `Rearm(t)` submitted, then the old update's `-ENOENT` | ignores it | the update named the old timer; the new one is untouched |
//! | the timer's `-ECANCELED` (or any error but `-ETIME`) | `on_timer_gone()`, then `plan()` | no timer is in flight; `plan` submits a fresh one |
//!
//! One ordering is relied on: the kernel consumes SQEs in ring order, so an
//! update pushed before a re-armed timer's `IORING_OP_TIMEOUT` reaches the
//! old timer (or finds none) and never the new one, although both timers
//! carry the same `user_data`. Push timer SQEs in the order `plan` and
//! `on_fire` hand them out (a backlog for a full SQ must stay first in,
//! first out), and never with `IOSQE_ASYNC`.
//!
//! So the update operation's own CQE never changes the model: the engine
//! ignores it whatever its result. In particular it must **not** call
//! `on_timer_gone` for it: by then a re-armed timer may be in flight, and
//! forgetting it would make the next `plan` submit a second one.
//!
//! An update failing with anything other than `-ENOENT`/`-EALREADY` (say
//! `-EINVAL` on a kernel without `IORING_TIMEOUT_UPDATE`, before 5.11) leaves
//! the old timer in flight at its old, later expiry while the model believes
//! the earlier one: the engine must find that out at start-up (probe the
//! kernel), not per connection.
//!
//! # Why `on_fire` takes `now`
//!
//! A timer CQE may be reaped long after it fired (a batch of CQEs, a slow
//! handler before it). Given a `now` older than the deadline the timer fired
//! for, `on_fire` concludes the fire was early and re-arms instead of
//! closing. Because the re-arm is for the absolute deadline (already past,
//! so the kernel fires again at once) and not `now + timeout`, a stale `now`
//! costs one extra round trip rather than a whole extra timeout (as it did
//! in an engine that re-armed relative to a cached clock); but the engine
//! should still read the clock afresh for every
//! timer CQE. (A stale `now` in a *transition* is harmless by contrast: it
//! arms a deadline slightly early, never late.)

use crate::{ConnTimers, DeadlineKind, MonoTime};

/// What the engine must do with the connection's kernel timer after a
/// transition. Returned by [`ConnTimers::plan`], which has already recorded
/// it as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// The timer is right as it is (or no deadline is live).
    Nothing,
    /// No timer is in flight: submit `IORING_OP_TIMEOUT` (count 0,
    /// `IORING_TIMEOUT_ABS`, CLOCK_MONOTONIC) expiring at this instant.
    Submit(MonoTime),
    /// The timer in flight is due later than a live deadline: move it to this
    /// instant with `IORING_OP_TIMEOUT_REMOVE` + `IORING_TIMEOUT_UPDATE` (+
    /// `IORING_TIMEOUT_ABS`). Its CQE is ignored whatever its result (see the
    /// module docs for the race with the fire).
    Update(MonoTime),
}

/// What a kernel timer fire means. Returned by [`ConnTimers::on_fire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireOutcome {
    /// This deadline has passed: close the connection. It is the earliest
    /// live deadline (ties in [`DeadlineKind::ALL`] order). Every deadline
    /// has been cleared, so a later `plan()` submits nothing unless the
    /// engine arms a new one (say, a write deadline to bound a last 408).
    Expired(DeadlineKind),
    /// The timer fired before any live deadline (the one it was set for was
    /// cleared, or replaced by a later one): submit a new timer expiring at
    /// this instant. [`ConnTimers::pending_timer`] already holds it.
    Rearm(MonoTime),
    /// No deadline is live: nothing to do, no timer is in flight.
    Nothing,
}

impl ConnTimers {
    /// Decides the kernel-timer action for the live deadlines and records it
    /// as done. Call it after every transition (or batch of transitions) and
    /// carry out what it returns:
    ///
    /// - no timer pending and a live deadline: `Submit(earliest)`;
    /// - a timer pending and the earliest live deadline is *earlier* than it:
    ///   `Update(earliest)`;
    /// - otherwise (a later deadline, the same one, or nothing live):
    ///   `Nothing`. A timer due before every live deadline is left to fire
    ///   early; [`on_fire`](Self::on_fire) re-arms it then. That trades a rare
    ///   early wake-up for a remove SQE on every clear.
    pub fn plan(&mut self) -> TimerAction {
        let Some((_, at)) = self.earliest() else {
            return TimerAction::Nothing;
        };
        match self.pending_timer() {
            None => {
                self.set_pending_timer(Some(at));
                TimerAction::Submit(at)
            }
            Some(pending) if at < pending => {
                self.set_pending_timer(Some(at));
                TimerAction::Update(at)
            }
            Some(_) => TimerAction::Nothing,
        }
    }

    /// The kernel timer fired (its CQE says `-ETIME`). `now` must be read
    /// afresh for this CQE, not taken from the top of the batch (see the
    /// module docs). No timer is pending any more; then:
    ///
    /// - the earliest live deadline is at or before `now`: `Expired(kind)`,
    ///   and every deadline is cleared (the engine closes the connection);
    /// - a live deadline is still ahead (the fire was early): `Rearm(t)` for
    ///   the earliest, recorded as pending;
    /// - nothing is live: `Nothing`.
    pub fn on_fire(&mut self, now: MonoTime) -> FireOutcome {
        self.set_pending_timer(None);
        match self.earliest() {
            Some((kind, at)) if at <= now => {
                // The connection is closing: leave nothing for a later plan()
                // to submit a timer for.
                self.clear_all();
                FireOutcome::Expired(kind)
            }
            Some((_, at)) => {
                self.set_pending_timer(Some(at));
                FireOutcome::Rearm(at)
            }
            None => FireOutcome::Nothing,
        }
    }

    /// The timer's own CQE reports it was removed or cancelled (`-ECANCELED`)
    /// or failed (any result but `-ETIME`): no timer is pending any more. Call
    /// [`plan`](Self::plan) next. Never call this for the CQE of an
    /// `Update`; see the module docs.
    pub fn on_timer_gone(&mut self) {
        self.set_pending_timer(None);
    }
}
