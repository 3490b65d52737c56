//! Closing: the reason recorded once, FIN or reset, the lingering close,
//! release of the slot, and the graceful shutdown.

use super::*;

impl<H: Handler> Driver<H> {
    /// Records the first decision to close; counted at once when `reset`
    /// is known, else by [`Driver::count_forced_close`].
    pub(super) fn record_reason(&mut self, key: usize, reason: CloseReason, reset: Option<bool>) {
        let conn = &mut self.conns[key];
        if conn.close_reason.is_none() {
            conn.close_reason = Some(reason);
            if crate::ops::log::close_is_logged(reason) && crate::ops::log::closes_enabled() {
                self.log_close(key, reason);
            }
        }
        let conn = &mut self.conns[key];
        if let (false, Some(reset)) = (conn.close_counted, reset) {
            conn.close_counted = true;
            let reason = conn.close_reason.unwrap_or(reason);
            self.shared.counters.count_close(reason, reset);
        }
    }

    /// The rate-limited close event, with the client's address (the PROXY
    /// header's when there was one). The one place the driver asks the
    /// kernel anything (getpeername), and only for an event that passed
    /// the rate limit.
    #[cold]
    pub(super) fn log_close(&mut self, key: usize, reason: CloseReason) {
        let Some(suppressed) = self.close_log.admit(self.now) else {
            return;
        };
        let conn = &self.conns[key];
        let peer = if conn.has_proxied_peer {
            self.proxied_peers.get(&key).copied()
        } else {
            crate::sys::socket::peer_addr(conn.fd)
        };
        crate::ops::log::close_event(self.shared.worker, reason, peer, suppressed);
    }

    /// The backend resolved a [`CloseMode::ResetIfUnacked`]: count the
    /// close as a reset or a FIN.
    pub fn count_forced_close(&mut self, key: usize, reset: bool) {
        if let Some(reason) = self.conns.get(key).and_then(|c| c.close_reason) {
            self.record_reason(key, reason, Some(reset));
        }
    }

    /// Stop reading requests; close when the queued responses have left.
    pub(super) fn close_after_flush(&mut self, key: usize, reason: CloseReason) {
        self.record_reason(key, reason, Some(false));
        let conn = &mut self.conns[key];
        conn.close_after_flush = true;
        if conn.send.is_empty() {
            if conn.peer_eof {
                self.close_now(key, reason);
            } else {
                self.start_linger(key);
            }
        }
    }

    /// FIN now, then wait (bounded) for the peer's EOF before closing, so
    /// unread request bytes do not turn the close into a reset.
    pub(super) fn start_linger(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        self.actions.push_back(Action::ShutdownWrite(key));
        conn.phase = Phase::Lingering;
        // The linger is bounded by the write deadline, armed afresh: the
        // response has left, only the peer's EOF is awaited.
        conn.timers.clear_all();
        conn.timers.arm(DeadlineKind::Write, self.now);
        if !conn.peer_eof {
            conn.holds.remove(Hold::OutputBackedUp);
            self.actions.push_back(Action::Read(key));
        }
        self.sync_timer(key);
    }

    /// Decides the close of `key` and hands it to the backend. A close
    /// forced by a deadline or the shutdown timeout while response bytes
    /// are still unsent is a reset (see [`CloseMode::Reset`]); a close with
    /// nothing left unsent stays a FIN.
    pub(super) fn close_now(&mut self, key: usize, reason: CloseReason) {
        let conn = &self.conns[key];
        if conn.phase == Phase::Closed {
            self.record_reason(key, reason, Some(false));
            return;
        }
        let forced = matches!(
            reason,
            CloseReason::HeaderTimeout
                | CloseReason::BodyTimeout
                | CloseReason::IdleTimeout
                | CloseReason::WriteTimeout
                | CloseReason::MinBodyRate
                | CloseReason::MinResponseRate
                | CloseReason::HandlerTimeout
                | CloseReason::Shutdown
        );
        let mode = if reason == CloseReason::HandlerAborted {
            // A truncated body must never look complete.
            CloseMode::Reset
        } else if !forced {
            CloseMode::Fin
        } else if !conn.send.is_empty() {
            CloseMode::Reset
        } else if conn.sent_any {
            CloseMode::ResetIfUnacked
        } else {
            CloseMode::Fin
        };
        let reset = match mode {
            CloseMode::Fin => Some(false),
            CloseMode::Reset => Some(true),
            CloseMode::ResetIfUnacked => None,
        };
        self.record_reason(key, reason, reset);
        if self.conns[key].in_exchange {
            self.exchange_gone(key);
        }
        if self.conns[key].body_to_handler {
            self.streamed_body_gone(key);
        }
        let conn = &mut self.conns[key];
        let lingering = conn.phase == Phase::Lingering;
        conn.phase = Phase::Closed;
        // Its partial head and queued output no longer count against the
        // worker's budgets.
        self.account_head(key);
        self.account_output(key);
        self.actions.push_back(Action::Close {
            key,
            mode,
            lingering,
        });
    }

    /// Frees `key`'s slot: the backend has closed the socket and nothing
    /// it has in flight names the slot any more.
    pub fn release(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.in_exchange) {
            self.exchange_gone(key);
        }
        if self.conns.get(key).is_some_and(|c| c.body_to_handler) {
            self.streamed_body_gone(key);
        }
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if conn.awaiting_proxy_header {
            self.proxy_headers.remove(&key);
        }
        if conn.has_proxied_peer {
            self.proxied_peers.remove(&key);
        }
        self.output_queued -= conn.output_accounted;
        self.body_reserved -= conn.body_reserved as usize;
        self.head_held -= conn.head_reserved as usize;
        if conn.output_accounted > 0 {
            self.wake_budget_waiters();
        }
        if let (Some(per_ip), true) = (&self.shared.per_ip, conn.ip_bucket != NO_IP_BUCKET) {
            per_ip.release(conn.ip_bucket);
        }
        self.shared.cap.release();
        self.counters().open_connections.sub(1);
        conn.send.abort_send();
        self.pools.take_from(&mut conn);
    }

    /// Releases every connection at once, for a backend that stops after a
    /// fatal error with operations still in flight; returns their keys,
    /// whose sockets the backend (their owner) shuts down and closes.
    pub fn release_all(&mut self) -> Vec<usize> {
        let keys = self.keys();
        for &key in &keys {
            self.release(key);
        }
        keys
    }

    /// Stop taking connections; close the idle ones now and the others
    /// once their last response has left (`keep-alive` ends).
    ///
    /// `handing_over`: a successor process accepts on the same sockets
    /// ([`crate::ServerHandle::hand_over`]): a connection accepted late is
    /// served rather than dropped, and an idle keep-alive connection is
    /// closed only after answering one more request with `Connection:
    /// close` (HAProxy's `idle-close-on-response`): closing it at once
    /// races the client's next request, which would be lost.
    pub fn begin_shutdown(&mut self, handing_over: bool) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.handing_over = handing_over;
        if handing_over {
            return;
        }
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle())
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close_now(key, CloseReason::Shutdown);
        }
    }

    /// Closes every connection not closed yet, for `reason`.
    pub fn close_all(&mut self, reason: CloseReason) {
        for key in self.keys() {
            if !self.is_closed(key) {
                self.close_now(key, reason);
            }
        }
    }
}
