//! The one kernel timer per connection: planned after each transition,
//! judged against a fresh clock when it fires.

use super::*;

impl<H: Handler> Driver<H> {
    /// Asks for the timer the plan needs: one kernel timer per connection,
    /// always due at or before the earliest live deadline.
    pub(super) fn sync_timer(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        match conn.timers.plan() {
            TimerAction::Nothing => {}
            action => self.actions.push_back(Action::Timer(key, action)),
        }
    }

    /// `key`'s kernel timer fired; `now` is read after the fire, never a
    /// cached one: the batch may be old, and a stale clock makes a due
    /// deadline look early.
    pub fn on_timer_fired(&mut self, key: usize, now: MonoTime) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        self.shared.counters.timer_fires.incr();
        if conn.timers.due(now) == Some(DeadlineKind::SendRate) && conn.phase == Phase::Open {
            // Before judging the rate: what the peer took that no send
            // completion showed (a receive window reopening in steps
            // smaller than what wakes a blocked send) counts too.
            let taken = bytes_taken(conn, self.unacked_bytes, 0, false);
            conn.timers.on_send_taken(now, taken);
        }
        match conn.timers.on_fire(now) {
            FireOutcome::Expired(kind) => {
                let reason = match kind {
                    DeadlineKind::Header => CloseReason::HeaderTimeout,
                    DeadlineKind::Body => CloseReason::BodyTimeout,
                    DeadlineKind::Idle => CloseReason::IdleTimeout,
                    DeadlineKind::Write => CloseReason::WriteTimeout,
                    DeadlineKind::BodyRate => CloseReason::MinBodyRate,
                    DeadlineKind::SendRate => CloseReason::MinResponseRate,
                    DeadlineKind::Handler => {
                        // 503 if no head left yet; the responder learns.
                        self.handler_timed_out(key);
                        return;
                    }
                };
                self.close_now(key, reason);
            }
            FireOutcome::Rearm(at) => {
                self.shared.counters.timer_early_fires.incr();
                self.actions
                    .push_back(Action::Timer(key, TimerAction::Submit(at)));
            }
            FireOutcome::Nothing => self.shared.counters.timer_early_fires.incr(),
        }
    }

    /// `key`'s kernel timer was removed or failed without firing: none is
    /// pending any more.
    pub fn on_timer_gone(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        conn.timers.on_timer_gone();
        self.sync_timer(key);
    }
}
