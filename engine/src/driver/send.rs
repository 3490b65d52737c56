//! Sending: the send queue handed to the backend one send at a time, its
//! progress judged by the write deadline and the send rate.

use super::*;

impl<H: Handler> Driver<H> {
    pub(super) fn flush_send(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.phase != Phase::Closed && !conn.send.is_empty() && !conn.send.in_flight() {
            self.actions.push_back(Action::Send(key));
        }
    }

    /// The bytes of `key`'s next send, or `None` when a send is in flight,
    /// nothing is queued or the connection is closed. The bytes stay put
    /// until [`Driver::on_sent`] or [`Driver::on_send_failed`]: the kernel
    /// may read them until then. May queue a timer action: carry it out.
    pub fn start_send(&mut self, key: usize) -> Option<&[u8]> {
        let conn = self.conns.get_mut(key)?;
        if conn.phase == Phase::Closed || conn.send.in_flight() || conn.send.is_empty() {
            return None;
        }
        let write_armed = conn.timers.deadline(DeadlineKind::Write).is_some();
        conn.timers.on_send_started(self.now);
        // A write deadline armed just now may be the earliest: the backend
        // arms it right after this send. One already armed was planned.
        if !write_armed {
            if let action @ (TimerAction::Submit(_) | TimerAction::Update(_)) = conn.timers.plan() {
                self.actions.push_back(Action::Timer(key, action));
            }
        }
        self.conns[key].send.start_send()
    }

    /// The send failed, or was cancelled.
    pub fn on_send_failed(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.send.abort_send();
        if conn.phase != Phase::Closed {
            self.close_now(key, CloseReason::PeerReset);
        }
    }

    /// A send could not go now (the socket's buffer is full): the same
    /// bytes are offered again by the next [`Driver::start_send`]. No
    /// deadline moves: no byte left, and the short send before it (the
    /// one that filled the buffer) started the response-rate clock.
    pub fn on_send_blocked(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.send.abort_send();
        }
    }

    /// `n` bytes of the send in flight left.
    pub fn on_sent(&mut self, key: usize, n: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let short = conn.send.complete_send(n);
        if n > 0 {
            conn.sent_any = true;
            let taken = bytes_taken(conn, self.unacked_bytes, n, short);
            conn.timers.on_send_progress(self.now, taken, short);
        }
        self.counters().bytes_out.add(n as u64);
        self.account_output(key);
        if self.conns[key].in_exchange {
            self.exchange_drained(key);
        }
        let conn = &mut self.conns[key];
        if conn.phase == Phase::Closed {
            return;
        }
        if !conn.send.is_empty() {
            self.flush_send(key);
            self.sync_timer(key);
            return;
        }
        // Everything queued has left.
        if conn.close_after_flush {
            if conn.peer_eof {
                self.close_now(key, CloseReason::Completed);
            } else {
                self.start_linger(key);
            }
            return;
        }
        // Not while a deferred answer streams: the queue drains between
        // its chunks, and the idle deadline runs only between requests (a
        // reader at full speed was reset at the idle timeout mid-stream).
        let idle = conn.decoder_is_idle() && !conn.answer_pending && !conn.in_exchange;
        conn.timers.on_send_drained(self.now, idle);
        if conn.holds.remove(Hold::OutputBackedUp) {
            conn.timers.on_reading_resumed(self.now);
            if conn.may_process() {
                self.process_input(key);
            }
            // process_input may have paused again (one more large answer):
            // reading then would pull input nobody parses.
            if self.wants_input(key) {
                self.actions.push_back(Action::Read(key));
            }
        }
        self.settle_if_idle(key);
    }

    /// `key` waits for its next request: it gives its buffers to the
    /// worker's pool, so it holds no buffer memory while it waits, or it
    /// closes if the server is stopping. Re-plans its timer.
    pub(super) fn settle_if_idle(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_idle() {
            if self.shutting_down && !self.handing_over {
                self.close_now(key, CloseReason::Shutdown);
                return;
            }
            conn.decoded_since_rest = 0;
            self.pools.take_from(conn);
        }
        self.sync_timer(key);
    }
}
