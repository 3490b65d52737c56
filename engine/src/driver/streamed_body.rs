//! Request bodies streamed to the handler as they arrive (a handler whose
//! `streams_request_bodies` is true): the request is dispatched at its
//! head, the body follows through a channel, and reading stops while the
//! consumer is behind.

use std::sync::Arc;

use ringwall_h1::BodyKind;

use super::connection::{Hold, Phase};
use super::Driver;
use crate::app::handler::Handler;
use crate::app::request_body::{BodyChannel, RequestBody};
use crate::ops::stats::CloseReason;

impl<H: Handler> Driver<H> {
    /// A head announcing a body parsed and the handler streams bodies:
    /// it gets the request now, and the body through a channel.
    pub(super) fn dispatch_streaming(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let head = conn.decoder().head().expect("head is set at HeadComplete");
        let length = match head.body_kind() {
            BodyKind::Length(n) => Some(n),
            BodyKind::None | BodyKind::Chunked => None,
        };
        let channel = Arc::new(BodyChannel::default());
        conn.body_to_handler = true;
        let body = RequestBody::new(
            Arc::clone(&channel),
            Arc::clone(&self.shared.mailbox),
            key as u32,
            conn.generation,
            length,
        );
        self.body_channels.insert(key, channel);
        if !self.answer(key, Some(body)) {
            self.close_after_flush(key, CloseReason::Completed);
        }
    }

    /// Body bytes arrived for the handler: into its channel (or dropped,
    /// if it let go of the stream); reading stops while it is behind.
    pub(super) fn stream_body(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let channel = &self.body_channels[&key];
        let decoder = conn
            .decoder
            .as_mut()
            .expect("a body in progress has its decoder");
        if !channel.is_abandoned()
            && channel.push(decoder.body())
            && conn.holds.add(Hold::BodyConsumer)
        {
            // The server's consumer is behind, not the client.
            conn.timers.on_reading_paused();
            self.actions.push_back(super::Action::StopReading(key));
        }
        decoder.discard_body();
    }

    /// The streamed body is complete: the consumer sees its end, and a
    /// pending answer is now the handler's to give, under its deadline.
    pub(super) fn end_streamed_body(&mut self, key: usize) {
        if let Some(channel) = self.body_channels.remove(&key) {
            channel.end();
        }
        let conn = &mut self.conns[key];
        conn.body_to_handler = false;
        conn.holds.remove(Hold::BodyConsumer);
        let waiting = self.exchanges.get(&key).is_some_and(|e| !e.head_sent);
        if waiting {
            self.conns[key].timers.on_handler_started(self.now);
        }
    }

    /// The connection closes with a body still streaming: its consumer
    /// sees an error.
    pub(super) fn streamed_body_gone(&mut self, key: usize) {
        if let Some(channel) = self.body_channels.remove(&key) {
            channel.fail();
        }
        let conn = &mut self.conns[key];
        conn.body_to_handler = false;
        conn.holds.remove(Hold::BodyConsumer);
    }

    /// The body's consumer caught up (or let go): read again.
    pub(super) fn resume_body(&mut self, key: usize, generation: u32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.generation != generation
            || !conn.holds.has(Hold::BodyConsumer)
            || conn.phase != Phase::Open
        {
            return;
        }
        let Some(channel) = self.body_channels.get(&key) else {
            return;
        };
        if !channel.may_resume() {
            return;
        }
        channel.resumed();
        conn.holds.remove(Hold::BodyConsumer);
        // Bytes that arrived while the body was paused may have stopped
        // reading as well (past the input high-water mark); they are parsed
        // just below, so that pause ends here too, or reading never resumes
        // and the body stalls until its rate deadline.
        if !conn.holds.has(Hold::Yielded) && !conn.holds.has(Hold::OutputBudget) {
            conn.holds.remove(Hold::InputFull);
        }
        conn.timers.on_reading_resumed(self.now);
        if self.wants_input(key) {
            self.actions.push_back(super::Action::Read(key));
        }
        self.process_input(key);
    }
}
