//! The worker's memory budgets: request bodies and partial heads as they
//! arrive, queued output as it is written; who waits and who is refused.

use super::*;

impl<H: Handler> Driver<H> {
    /// Brings the worker's partial-head total up to date with `key`'s
    /// decoder, or answers 503 and closes when its head does not fit: the
    /// worker never holds more partial-head bytes than its budget (plus one
    /// read). Only a head still incomplete after the bytes at hand were
    /// parsed counts, so a head that arrives whole never does, and the
    /// connections refused when slowloris heads fill the budget are the
    /// ones adding to it.
    pub(super) fn account_head(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let held = if conn.phase == Phase::Open && !conn.close_after_flush {
            conn.decoder.as_ref().map_or(0, |d| d.partial_head_bytes())
        } else {
            0
        };
        let held = u32::try_from(held).unwrap_or(u32::MAX);
        let before = conn.head_reserved as usize;
        let after = held as usize;
        if after > before && self.head_held + (after - before) > self.head_budget {
            self.head_held -= before;
            conn.head_reserved = 0;
            self.refuse_head(key);
            return;
        }
        self.head_held = self.head_held - before + after;
        conn.head_reserved = held;
        self.head_held_peak = self.head_held_peak.max(self.head_held);
    }

    /// The worker's partial-head budget is full: 503, and the connection
    /// closes without reading more. A 503, not a 431: the head is within
    /// the limits, the server is the one out of room (the body budget
    /// answers the same way).
    pub(super) fn refuse_head(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        // Nothing more of this request is read: its header deadline ends
        // here; the close that follows has its own.
        conn.timers.on_head_complete(self.now, false);
        encode_canned(
            &mut conn.send.pending,
            Canned::HeadBudget,
            &self.date,
            ringwall_h1::Version::Http11,
            false,
        );
        // Nothing of it will be parsed: its buffers go now, not when the
        // lingering close ends (a storm's refused connections would hold
        // them for up to the write timeout).
        drop(conn.decoder.take());
        self.close_after_flush(key, CloseReason::HeadBudget);
    }

    /// Reserves `bytes` of the worker's request-body budget for `key` as
    /// they arrive, or answers 503 and closes when they do not fit: the
    /// worker never holds more body bytes than its budget (plus one read).
    pub(super) fn reserve_body(&mut self, key: usize, bytes: usize) -> bool {
        let conn_reserved = u32::try_from(bytes)
            .ok()
            .and_then(|b| self.conns[key].body_reserved.checked_add(b));
        if let (Some(conn_reserved), true) = (
            conn_reserved,
            self.body_reserved + bytes <= self.body_budget,
        ) {
            self.body_reserved += bytes;
            self.conns[key].body_reserved = conn_reserved;
            return true;
        }
        let conn = &mut self.conns[key];
        // Nothing more of this request is read: its head and body deadlines
        // end here; the close that follows has its own.
        conn.timers.on_head_complete(self.now, false);
        conn.timers.on_body_complete();
        let head = conn.decoder.as_ref().and_then(|d| d.head());
        encode_canned(
            &mut conn.send.pending,
            Canned::BodyBudget,
            &self.date,
            head.map_or(ringwall_h1::Version::Http11, |h| h.version()),
            head.is_some_and(|h| h.is_head()),
        );
        // The body so far is never answered: its memory goes now.
        drop(conn.decoder.take());
        self.close_after_flush(key, CloseReason::BodyBudget);
        false
    }

    pub(super) fn release_body(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            self.body_reserved -= conn.body_reserved as usize;
            conn.body_reserved = 0;
        }
    }

    /// Brings the worker's output total up to date with `key`'s queue, and
    /// lets waiting connections go once it is back under budget.
    pub(super) fn account_output(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let queued = if conn.phase == Phase::Closed {
            0
        } else {
            conn.send.queued()
        };
        self.output_queued = self.output_queued + queued - conn.output_accounted;
        conn.output_accounted = queued;
        self.wake_budget_waiters();
    }

    /// Lets connections waiting for the output budget go, oldest first,
    /// while the worker is under it. Called wherever output shrinks: a
    /// send, or a close that drops a queue.
    pub(super) fn wake_budget_waiters(&mut self) {
        // Called on every send; nearly always nobody waits.
        if self.budget_waiters.is_empty() {
            return;
        }
        while self.output_queued <= self.output_budget {
            let Some((waiter, generation)) = self.budget_waiters.pop_front() else {
                break;
            };
            if let Some(conn) = self.conns.get_mut(waiter) {
                if conn.generation == generation && conn.holds.remove(Hold::OutputBudget) {
                    self.requeue(waiter);
                }
            }
        }
    }

    /// The worker's output is over budget: this connection dispatches
    /// nothing more, and stops reading, until sends drain it.
    pub(super) fn wait_for_output_budget(&mut self, key: usize) {
        self.counters().output_budget_waits.incr();
        let conn = &mut self.conns[key];
        conn.holds.add(Hold::OutputBudget);
        conn.timers.on_reading_paused();
        self.budget_waiters.push_back((key, conn.generation));
        self.actions.push_back(Action::StopReading(key));
    }
}
