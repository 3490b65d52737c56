//! Deferred answers in the driver: a handler that called
//! [`Response::defer`](crate::Response::defer) leaves its connection in an
//! exchange until the responder's completions (whole, or head, data, end)
//! arrive through the worker's mailbox (see `crate::app::deferred`).

use std::sync::Arc;

use ringwall_h1::{
    encode_chunked_head, encode_response, encode_sized_head, encode_stream_data, encode_stream_end,
    sized_body_expected, EncodeContext, HttpDate, Version,
};

use super::canned::{encode_canned, Canned};
use super::connection::{Hold, Phase};
use super::Driver;
use crate::app::deferred::{Completion, ExchangeEvent, ExchangeState};
use crate::app::handler::Handler;
use crate::ops::stats::CloseReason;

/// A deferred answer in progress.
pub(crate) struct Exchange {
    state: Arc<ExchangeState>,
    version: Version,
    keep_alive: bool,
    head_request: bool,
    /// The head was written: a failure now can only reset.
    pub(super) head_sent: bool,
    /// A sized body's bytes still owed; `None`: chunked.
    remaining: Option<u64>,
    /// The body goes on the wire (not for HEAD, 1xx, 204, 304).
    body_expected: bool,
}

impl<H: Handler> Driver<H> {
    /// The handler deferred its answer to a responder: only the handler
    /// deadline runs until the answer's head arrives, and no further
    /// request is dispatched until the answer is complete.
    pub(super) fn start_exchange(
        &mut self,
        key: usize,
        state: Arc<ExchangeState>,
        version: Version,
        keep_alive: bool,
        head_request: bool,
    ) {
        let conn = &mut self.conns[key];
        conn.in_exchange = true;
        // A body still arriving is the client's to finish, under the body
        // deadlines: the handler deadline starts once it has.
        if !conn.body_to_handler {
            conn.timers.on_handler_started(self.now);
        }
        self.exchanges.insert(
            key,
            Exchange {
                state,
                version,
                keep_alive,
                head_request,
                head_sent: false,
                remaining: None,
                body_expected: true,
            },
        );
    }

    /// Applies what responders sent; `completions` is left empty.
    pub fn on_completions(&mut self, completions: &mut Vec<Completion>) {
        for completion in completions.drain(..) {
            self.on_completion(completion);
        }
    }

    fn on_completion(&mut self, completion: Completion) {
        let key = completion.key as usize;
        if let ExchangeEvent::ReadBody = completion.event {
            self.resume_body(key, completion.generation);
            return;
        }
        let current = self.conns.get(key).is_some_and(|c| {
            c.generation == completion.generation && c.in_exchange && c.phase == Phase::Open
        });
        if !current {
            // The connection closed (and its exchange was marked gone)
            // before this arrived.
            self.counters().stale_completions.incr();
            return;
        }
        match completion.event {
            ExchangeEvent::Whole {
                status,
                headers,
                body,
            } => self.answer_whole(key, status, &headers, &body),
            ExchangeEvent::Head {
                status,
                headers,
                length,
            } => self.answer_head(key, status, &headers, length),
            ExchangeEvent::Data(data) => self.answer_data(key, &data),
            ExchangeEvent::End => self.answer_end(key),
            ExchangeEvent::Abort => self.answer_failed(key),
            ExchangeEvent::ReadBody => unreachable!("handled above"),
        }
    }

    fn answer_whole(
        &mut self,
        key: usize,
        status: u16,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
    ) {
        let headers = borrowed(headers);
        let ctx = encode_context(&self.date, &self.exchanges[&key]);
        let keep_alive = ctx.keep_alive;
        let conn = &mut self.conns[key];
        if encode_response(&mut conn.send.pending, status, &headers, body, &ctx).is_err() {
            self.answer_failed(key);
            return;
        }
        conn.timers.on_handler_answered();
        self.end_exchange(key, keep_alive);
    }

    fn answer_head(
        &mut self,
        key: usize,
        status: u16,
        headers: &[(String, Vec<u8>)],
        length: Option<u64>,
    ) {
        let headers = borrowed(headers);
        let ctx = encode_context(&self.date, &self.exchanges[&key]);
        let conn = &mut self.conns[key];
        let (encoded, keep_alive, body_expected) = match length {
            Some(n) => (
                encode_sized_head(&mut conn.send.pending, status, &headers, n, &ctx),
                ctx.keep_alive,
                sized_body_expected(status, &ctx),
            ),
            None => (
                encode_chunked_head(&mut conn.send.pending, status, &headers, &ctx),
                ctx.stream_keeps_alive(),
                !ctx.head_request,
            ),
        };
        if encoded.is_err() {
            self.answer_failed(key);
            return;
        }
        conn.timers.on_handler_answered();
        let exchange = self.exchanges.get_mut(&key).expect("in an exchange");
        exchange.head_sent = true;
        exchange.keep_alive = keep_alive;
        exchange.remaining = length;
        exchange.body_expected = body_expected;
        self.after_exchange_output(key);
    }

    fn answer_data(&mut self, key: usize, data: &[u8]) {
        let exchange = self.exchanges.get_mut(&key).expect("in an exchange");
        if !exchange.head_sent {
            self.answer_failed(key);
            return;
        }
        if let Some(remaining) = exchange.remaining.as_mut() {
            if data.len() as u64 > *remaining {
                // More than the Content-Length it announced: the framing
                // would lie.
                self.answer_failed(key);
                return;
            }
            *remaining -= data.len() as u64;
        }
        let (sized, body_expected) = (exchange.remaining.is_some(), exchange.body_expected);
        let ctx = encode_context(&self.date, &self.exchanges[&key]);
        let conn = &mut self.conns[key];
        match (sized, body_expected) {
            (_, false) => {}
            (true, true) => conn.send.pending.extend_from_slice(data),
            (false, true) => encode_stream_data(&mut conn.send.pending, &ctx, data),
        }
        let queued = conn.send.queued();
        self.exchanges[&key].state.taken(data.len(), queued);
        self.after_exchange_output(key);
    }

    fn answer_end(&mut self, key: usize) {
        let exchange = &self.exchanges[&key];
        if !exchange.head_sent || exchange.remaining.is_some_and(|n| n > 0) {
            // Ended short of its Content-Length: the framing would lie.
            self.answer_failed(key);
            return;
        }
        let keep_alive = exchange.keep_alive;
        if exchange.remaining.is_none() {
            let ctx = encode_context(&self.date, exchange);
            encode_stream_end(&mut self.conns[key].send.pending, &ctx);
        }
        self.end_exchange(key, keep_alive);
    }

    /// The responder gave up, or answered what cannot be encoded: a 500
    /// before the head left, else a reset (a truncated body must not look
    /// complete).
    fn answer_failed(&mut self, key: usize) {
        let exchange = &self.exchanges[&key];
        if exchange.head_sent {
            exchange.state.set_gone();
            self.close_now(key, CloseReason::HandlerAborted);
            return;
        }
        let (version, head_request) = (exchange.version, exchange.head_request);
        let conn = &mut self.conns[key];
        conn.timers.on_handler_answered();
        encode_canned(
            &mut conn.send.pending,
            Canned::InternalError,
            &self.date,
            version,
            head_request,
        );
        self.end_exchange(key, false);
    }

    /// The handler deadline passed with no answer: 503, and the responder
    /// learns the connection is gone.
    pub(super) fn handler_timed_out(&mut self, key: usize) {
        let Some(exchange) = self.exchanges.get(&key) else {
            self.close_now(key, CloseReason::HandlerTimeout);
            return;
        };
        if exchange.head_sent {
            self.close_now(key, CloseReason::HandlerTimeout);
            return;
        }
        exchange.state.set_gone();
        let (version, head_request) = (exchange.version, exchange.head_request);
        let conn = &mut self.conns[key];
        conn.timers.on_handler_answered();
        encode_canned(
            &mut conn.send.pending,
            Canned::HandlerTimeout,
            &self.date,
            version,
            head_request,
        );
        self.record_reason(key, CloseReason::HandlerTimeout, Some(false));
        self.end_exchange(key, false);
    }

    /// The answer is complete: the connection goes on with its next
    /// request, or closes once the answer has left.
    fn end_exchange(&mut self, key: usize, keep_alive: bool) {
        self.exchanges.remove(&key);
        let conn = &mut self.conns[key];
        conn.in_exchange = false;
        conn.holds.remove(Hold::InputFull);
        self.release_body(key);
        if !keep_alive {
            self.close_after_flush(key, CloseReason::Completed);
            self.after_exchange_output(key);
            return;
        }
        if self.wants_input(key) {
            self.actions.push_back(super::Action::Read(key));
        }
        // Any pipelined request behind it is dispatched now; this flushes
        // and re-plans the timer too.
        self.process_input(key);
        // Every byte of the answer may have left before its end arrived:
        // no drain is coming to start the idle clock, so it starts here.
        let now = self.now;
        if let Some(conn) = self.conns.get_mut(key).filter(|c| c.is_idle()) {
            conn.timers.on_send_drained(now, true);
        }
        self.settle_if_idle(key);
    }

    fn after_exchange_output(&mut self, key: usize) {
        self.account_output(key);
        self.flush_send(key);
        self.sync_timer(key);
    }

    /// Sends left: tells a held-back producer.
    pub(super) fn exchange_drained(&mut self, key: usize) {
        if let Some(exchange) = self.exchanges.get(&key) {
            exchange.state.drained_to(self.conns[key].send.queued());
        }
    }

    /// The connection closes with an answer pending or streaming: its
    /// responder learns it is gone.
    pub(super) fn exchange_gone(&mut self, key: usize) {
        if let Some(exchange) = self.exchanges.remove(&key) {
            exchange.state.set_gone();
        }
        self.conns[key].in_exchange = false;
    }
}

fn borrowed(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect()
}

/// How the exchange's answer is framed: its request's version, HEAD, and
/// whether the connection stays open after it.
fn encode_context<'a>(date: &'a HttpDate, exchange: &Exchange) -> EncodeContext<'a> {
    EncodeContext {
        date,
        version: exchange.version,
        keep_alive: exchange.keep_alive,
        head_request: exchange.head_request,
    }
}
