//! The protocol transitions the engine calls. Together they encode the
//! deadline table of ARCHITECTURE.md ("Deadline rules"); each says which failure its
//! rule prevents.

use crate::{ConnTimers, DeadlineKind, MonoTime};

impl ConnTimers {
    /// A connection was accepted: arm the header deadline. The first head
    /// must arrive within `header` of accept, whether or not a byte ever
    /// comes; a peer that connects and sends nothing is the cheapest
    /// slowloris.
    pub fn on_accept(&mut self, now: MonoTime) {
        self.arm(DeadlineKind::Header, now);
    }

    /// Request bytes arrived. On an idle keep-alive connection they are the
    /// first bytes of the next request: the idle deadline ends and that
    /// request's header deadline starts (ARCHITECTURE.md's table), whatever the
    /// decoder makes of them. Otherwise nothing changes: an armed header
    /// deadline is never extended by drip bytes, and body bytes start nothing.
    ///
    /// Starting the header deadline here, not only in
    /// [`on_head_started`](Self::on_head_started), leaves no gap for bytes
    /// that do not start a head as the decoder sees it (RFC 9112 2.2 lets a
    /// server skip empty lines before a request-line): an idle connection fed
    /// one CRLF at a time still meets a deadline. A head that arrives whole
    /// still never reaches the kernel timer: it arms and clears the header
    /// deadline within one recv, before the engine calls `plan()`.
    pub fn on_request_bytes(&mut self, now: MonoTime) {
        if self.deadline(DeadlineKind::Idle).is_some() {
            self.clear(DeadlineKind::Idle);
            self.arm(DeadlineKind::Header, now);
        }
    }

    /// A head is still incomplete after the bytes at hand were parsed,
    /// including the partial head of a pipelined request left behind a
    /// complete one: arm the header deadline if it is unarmed. Calling it on
    /// every drip is fine (arm-if-unarmed), and it never moves the deadline.
    ///
    /// The engine calls this only for an incomplete head, so a head that
    /// arrives whole in one recv never touches the timer.
    pub fn on_head_started(&mut self, now: MonoTime) {
        // A started head means request bytes: not idle, whatever the caller
        // did before.
        self.clear(DeadlineKind::Idle);
        self.arm(DeadlineKind::Header, now);
    }

    /// A head parsed: the header deadline ends. If the head announces a body
    /// (a non-zero Content-Length, or chunked), arm the body deadline.
    ///
    /// With a minimum body rate, its clock starts too: the body must then
    /// keep arriving at that rate after the grace period.
    pub fn on_head_complete(&mut self, now: MonoTime, body_pending: bool) {
        self.clear(DeadlineKind::Header);
        self.clear(DeadlineKind::Idle);
        if body_pending {
            self.arm(DeadlineKind::Body, now);
            self.arm(DeadlineKind::BodyRate, now);
        }
    }

    /// `bytes` of the announced body arrived: the body rate deadline moves
    /// later by their credit (never the absolute body deadline: a body that
    /// drips in at the rate still ends by `body`, which bounds the memory it
    /// holds).
    pub fn on_body_progress(&mut self, now: MonoTime, bytes: u64) {
        self.credit_rate(DeadlineKind::BodyRate, now, bytes);
    }

    /// The server stopped reading (its own output is backed up, or the
    /// connection yielded its turn): the body rate clock stops, because
    /// the client is not the one behind.
    pub fn on_reading_paused(&mut self) {
        self.clear(DeadlineKind::BodyRate);
    }

    /// The server reads again: if a body is still announced and incomplete,
    /// its rate clock restarts with a fresh grace period.
    pub fn on_reading_resumed(&mut self, now: MonoTime) {
        if self.deadline(DeadlineKind::Body).is_some() {
            self.arm(DeadlineKind::BodyRate, now);
        }
    }

    /// The announced body is complete: the body deadline ends.
    pub fn on_body_complete(&mut self) {
        self.clear(DeadlineKind::Body);
        self.clear(DeadlineKind::BodyRate);
    }

    /// A complete request was handed to a handler that deferred its answer:
    /// arm the handler deadline, so a handler that never answers (a lost
    /// wake-up, a backend that hangs) cannot hold the connection and its
    /// slot forever.
    ///
    /// The header, idle, body and body-rate deadlines end here: the request
    /// is no longer the client's to finish (its body is complete by then),
    /// and a client that waits quietly for a slow handler must not be closed
    /// as a slowloris, nor charged with the handler's time on its body
    /// rate. The write and send-rate deadlines of an earlier response still
    /// leaving keep running: that stall is the client's.
    pub fn on_handler_started(&mut self, now: MonoTime) {
        self.clear(DeadlineKind::Header);
        self.clear(DeadlineKind::Idle);
        self.clear(DeadlineKind::Body);
        self.clear(DeadlineKind::BodyRate);
        self.arm(DeadlineKind::Handler, now);
    }

    /// The deferred handler's response head arrived: the handler deadline
    /// ends. The response body that follows, however long it streams
    /// (server-sent events), is bounded by the write and send-rate
    /// deadlines only, which judge the bytes' progress rather than the
    /// response's age.
    pub fn on_handler_answered(&mut self) {
        self.clear(DeadlineKind::Handler);
    }

    /// A send was handed to the kernel: arm the write deadline if it is
    /// unarmed. More responses queued behind the first do not extend it.
    pub fn on_send_started(&mut self, now: MonoTime) {
        self.arm(DeadlineKind::Write, now);
    }

    /// A send made progress: the write deadline restarts from `now` (it
    /// bounds a stall, not a whole response, so an honest slow reader of a
    /// large response is not cut off), and the send rate deadline, if
    /// running, moves later by the credit of `bytes`, which are the bytes
    /// the client took (acknowledged) since the last progress, not the
    /// bytes the kernel accepted: a socket buffer's swallow is not the
    /// client's work (see [`MinRate`](crate::MinRate)).
    ///
    /// `short`: the kernel took less than was offered, so the server now
    /// waits on the client: the send rate clock starts (`now + grace`) if
    /// it is not running, and `bytes` the client took already (its receive
    /// buffer's fill) are credited on top. A response that leaves whole in one send never
    /// starts it, so the common small response costs no timer update. A
    /// reader that trickles just enough to avoid the stall bound is caught
    /// by the rate; with no rate configured only the stall bound applies.
    pub fn on_send_progress(&mut self, now: MonoTime, bytes: u64, short: bool) {
        if self.deadline(DeadlineKind::Write).is_some() {
            self.clear(DeadlineKind::Write);
            self.arm(DeadlineKind::Write, now);
        }
        if short {
            self.arm(DeadlineKind::SendRate, now);
        }
        self.credit_rate(DeadlineKind::SendRate, now, bytes);
    }

    /// The client took `bytes` (acknowledged them) with no send completing:
    /// the send rate deadline, if running, moves later by their credit.
    /// The write deadline does not move: it bounds a stall of the sends,
    /// and an acknowledgement seen only when a timer fires would restart
    /// it up to a whole timeout late.
    pub fn on_send_taken(&mut self, now: MonoTime, bytes: u64) {
        self.credit_rate(DeadlineKind::SendRate, now, bytes);
    }

    /// The send queue is empty: the write deadline and the send rate clock
    /// end. If
    /// `keep_alive_idle` (the connection is keep-alive and no request is in
    /// progress), arm the idle deadline.
    ///
    /// Never the header deadline: an idle keep-alive connection is judged by
    /// `idle` only, and a header timeout there kills well-behaved idle clients
    /// (ARCHITECTURE.md, Deadline rules). As a second guard, idle is not
    /// armed while a header, body or handler deadline is live, whatever
    /// `keep_alive_idle` says: a request is in progress, and its own
    /// deadline must keep governing it. (An earlier pipelined response
    /// draining while the next request is with its handler must not start
    /// an idle clock that would close the connection under the handler.)
    pub fn on_send_drained(&mut self, now: MonoTime, keep_alive_idle: bool) {
        self.clear(DeadlineKind::Write);
        self.clear(DeadlineKind::SendRate);
        let request_in_progress = [
            DeadlineKind::Header,
            DeadlineKind::Body,
            DeadlineKind::Handler,
        ]
        .into_iter()
        .any(|kind| self.deadline(kind).is_some());
        if keep_alive_idle && !request_in_progress {
            self.arm(DeadlineKind::Idle, now);
        }
    }
}
