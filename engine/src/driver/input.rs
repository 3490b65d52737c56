//! Input: bytes and EOF from the backend, decoded into requests that go
//! to the handler in order, each transition moving the deadlines.

use super::*;

impl<H: Handler> Driver<H> {
    /// Bytes arrived on `key`'s socket. They are copied (or discarded while
    /// lingering): the backend may reuse `input` when this returns.
    pub fn on_bytes(&mut self, key: usize, input: &[u8]) {
        self.counters().bytes_in.add(input.len() as u64);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase != Phase::Open || conn.close_after_flush {
            return;
        }
        let mut input = input;
        if conn.awaiting_proxy_header {
            match proxy::take_proxy_header(conn, &mut self.proxy_headers, key, input) {
                Ok((rest, source)) => {
                    input = rest;
                    if let Some(source) = source {
                        conn.has_proxied_peer = true;
                        self.proxied_peers.insert(key, source);
                    }
                }
                Err(_) => {
                    // No response: the peer is a load balancer that broke
                    // the protocol, or a client that bypassed it.
                    self.close_now(key, CloseReason::ProxyProtocolError);
                    return;
                }
            }
        }
        if !input.is_empty() {
            let limits = self.limits;
            conn.timers.on_request_bytes(self.now);
            conn.decoder
                .get_or_insert_with(|| self.pools.decoder(limits))
                .feed(input);
        }
        if !conn.may_process() {
            // Its turn comes later (or after the pending answer); bound
            // what it may pile up meanwhile.
            if conn.buffered() > INPUT_HIGH_WATER && conn.holds.add(Hold::InputFull) {
                self.actions.push_back(Action::StopReading(key));
            }
            self.account_head(key);
            self.flush_send(key);
        } else {
            self.process_input(key);
        }
    }

    /// The peer sent EOF (it may have half-closed after pipelining).
    pub fn on_eof(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.peer_eof = true;
        match conn.phase {
            Phase::Open => self.finish_after_peer_eof(key),
            Phase::Lingering => self.close_now(key, CloseReason::PeerEof),
            Phase::Closed => {}
        }
    }

    /// Reading or sending failed: the peer reset the connection, or it
    /// broke otherwise.
    pub fn on_error(&mut self, key: usize) {
        if !self.is_closed(key) {
            self.close_now(key, CloseReason::PeerReset);
        }
    }

    /// Drains the decoder's events: deadlines follow the transitions, complete
    /// requests go to the handler, errors are answered and close. Stops
    /// after [`TURN_BUDGET_REQUESTS`] requests or [`TURN_BUDGET_OUTPUT_BYTES`]
    /// of output, and yields the rest of the connection's pipeline to the
    /// next loop turn.
    pub(super) fn process_input(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let mut go = Go {
            output_at_start: conn.send.queued(),
            answered: 0,
        };
        while self.process_step(key, &mut go) {}
        if self.conns.get(key).is_some_and(|c| c.peer_eof) {
            self.finish_after_peer_eof(key);
        }
        self.account_head(key);
        self.account_output(key);
        self.flush_send(key);
        self.sync_timer(key);
    }

    /// One step of a connection's go: its pending request answered, or one
    /// decoder event acted on. False when the go ends: held, out of
    /// budget, or out of input.
    fn process_step(&mut self, key: usize, go: &mut Go) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if !conn.may_process() {
            return false;
        }
        let queued = conn.send.queued();
        if queued > OUTPUT_HIGH_WATER {
            self.pause(key);
            return false;
        }
        if (conn.answer_pending || conn.buffered() > 0) && go.is_spent(conn, queued) {
            self.yield_turn(key);
            return false;
        }
        if conn.answer_pending {
            return self.answer_pending(key, queued, go);
        }
        match self.decode_next(key) {
            Ok(None) => false,
            Ok(Some(event)) => {
                self.on_event(key, event, go);
                true
            }
            Err(err) => {
                let conn = &mut self.conns[key];
                encode_error(&mut conn.send.pending, &err, &self.date);
                self.close_after_flush(key, CloseReason::ProtocolError(err.status()));
                true
            }
        }
    }

    /// Answers the complete request the decoder holds, unless the worker's
    /// output is over budget: then it waits, and the go ends. Parsing went
    /// on to here, so its deadlines ended normally; only the handler waits.
    fn answer_pending(&mut self, key: usize, queued: usize, go: &mut Go) -> bool {
        let conn = &mut self.conns[key];
        // The worker's output total as it will be once this connection's
        // new output is counted.
        let worker_output = (self.output_queued + queued).saturating_sub(conn.output_accounted);
        if worker_output > self.output_budget {
            self.wait_for_output_budget(key);
            return false;
        }
        conn.answer_pending = false;
        go.answered += 1;
        let keep_alive = self.answer(key, None);
        self.release_body(key);
        if !keep_alive {
            self.close_after_flush(key, CloseReason::Completed);
        }
        true
    }

    /// The decoder's next event, with the input it parsed for it counted
    /// against the connection's budget. Heads and chunk framing are parsed
    /// a byte at a time; body data is only copied, its cost the
    /// bandwidth's, which the body budget bounds.
    fn decode_next(&mut self, key: usize) -> Result<Option<Event>, ringwall_h1::DecodeError> {
        let conn = &mut self.conns[key];
        let Some(decoder) = conn.decoder.as_mut() else {
            return Ok(None);
        };
        let buffered = decoder.buffered();
        let event = decoder.poll();
        let copied = match event {
            Ok(Some(Event::BodyData(n))) => n,
            _ => 0,
        };
        let parsed = buffered
            .saturating_sub(decoder.buffered())
            .saturating_sub(copied);
        conn.decoded_since_rest = conn
            .decoded_since_rest
            .saturating_add(u16::try_from(parsed).unwrap_or(u16::MAX));
        event
    }

    /// What a decoder event means for the deadlines, the budgets and the
    /// handler.
    fn on_event(&mut self, key: usize, event: Event, go: &mut Go) {
        let conn = &mut self.conns[key];
        match event {
            Event::HeadStarted => conn.timers.on_head_started(self.now),
            Event::HeadComplete => {
                let head = conn.decoder().head().expect("head is set at HeadComplete");
                let body_pending = match head.body_kind() {
                    BodyKind::None => false,
                    BodyKind::Length(n) => n > 0,
                    BodyKind::Chunked => true,
                };
                // RFC 9110 10.1.1: send 100 before reading the body.
                if body_pending && head.expect_continue() {
                    encode_continue(&mut conn.send.pending);
                }
                conn.timers.on_head_complete(self.now, body_pending);
                if body_pending && self.stream_bodies {
                    // Handed over now; the body follows as it arrives.
                    go.answered += 1;
                    self.dispatch_streaming(key);
                }
            }
            Event::BodyData(n) if conn.body_to_handler => {
                conn.timers.on_body_progress(self.now, n as u64);
                self.stream_body(key);
            }
            Event::BodyData(n) => {
                conn.timers.on_body_progress(self.now, n as u64);
                // Bytes as they arrive, not the announced length: an
                // attacker announcing megabytes and sending one byte must
                // not lock everyone else's uploads out.
                self.reserve_body(key, n);
            }
            Event::RequestComplete if conn.body_to_handler => {
                conn.timers.on_body_complete();
                self.end_streamed_body(key);
            }
            Event::RequestComplete => {
                conn.timers.on_body_complete();
                // Answered at the next step, once the output budget allows.
                conn.answer_pending = true;
            }
        }
    }

    /// The peer sent EOF: answer every complete request already buffered,
    /// then close. While paused, the buffered requests wait for the drain,
    /// which calls back here through `process_input`.
    pub(super) fn finish_after_peer_eof(&mut self, key: usize) {
        let conn = &self.conns[key];
        if !conn.may_process() || conn.answer_pending || conn.in_exchange {
            return;
        }
        self.close_after_flush(key, CloseReason::PeerEof);
    }

    /// Runs the handler on the complete request; returns keep-alive.
    pub(super) fn answer(&mut self, key: usize, body_stream: Option<RequestBody>) -> bool {
        let conn = &mut self.conns[key];
        if conn.send.is_empty() && conn.send.pending.capacity() == 0 {
            if let Some((sending, pending)) = self.pools.send_buffers() {
                conn.send.give_buffers(sending, pending);
            }
        }
        let decoder = conn
            .decoder
            .as_ref()
            .expect("a complete request has its decoder");
        let head = decoder.head().expect("head is set at RequestComplete");
        let keep_alive = head.keep_alive() && !self.shutting_down;
        let version = head.version();
        let head_request = head.is_head();
        let request = Request {
            head,
            body: decoder.body(),
            fd: conn.fd,
            proxied_peer: if conn.has_proxied_peer {
                self.proxied_peers.get(&key).copied()
            } else {
                None
            },
            body_stream: Cell::new(body_stream),
        };
        let mark = conn.send.pending.len();
        let mut response = Response {
            out: &mut conn.send.pending,
            large: &mut self.pools.large,
            ctx: EncodeContext {
                date: &self.date,
                version,
                keep_alive,
                head_request,
            },
            head_cache: &mut self.head_cache,
            sent: false,
            mailbox: &self.shared.mailbox,
            slot: (key as u32, conn.generation),
            deferred: None,
        };
        let handler = &self.handler;
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&request, &mut response)));
        let sent = response.sent && outcome.is_ok();
        let deferred = response.deferred.take().filter(|_| outcome.is_ok());
        if let Some(state) = deferred {
            self.counters().requests.incr();
            self.start_exchange(key, state, version, keep_alive, head_request);
            return true;
        }
        if !sent {
            // A handler that panicked or wrote nothing: answer 500 and close,
            // discarding anything half-written.
            conn.send.pending.truncate(mark);
            encode_canned(
                &mut conn.send.pending,
                Canned::InternalError,
                &self.date,
                version,
                head_request,
            );
        }
        self.counters().requests.incr();
        keep_alive && sent
    }

    pub(super) fn pause(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.holds.add(Hold::OutputBackedUp);
        // The server is behind, not the client: no body rate meanwhile.
        conn.timers.on_reading_paused();
        self.actions.push_back(Action::StopReading(key));
    }
}

/// What one go of a connection has used of its turn's budget.
struct Go {
    /// The connection's queued output when the go began.
    output_at_start: usize,
    /// Requests handed to the handler in this go.
    answered: usize,
}

impl Go {
    /// The go used its turn: the connection yields its worker.
    fn is_spent(&self, conn: &Connection, queued: usize) -> bool {
        self.answered >= TURN_BUDGET_REQUESTS
            || conn.decoded_since_rest >= TURN_BUDGET_INPUT_BYTES
            || queued.saturating_sub(self.output_at_start) >= TURN_BUDGET_OUTPUT_BYTES
    }
}
