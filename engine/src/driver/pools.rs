//! Buffers of idle and closed connections, kept for the next connection so
//! steady traffic allocates nothing. Bounded in count and in the size of
//! what is kept.

use ringwall_h1::{Decoder, Limits};

use super::connection::Connection;
use crate::large_buffers::LargeBufferPool;

/// Idle buffers kept per worker for reuse, so steady traffic allocates nothing.
const POOLED_BUFFERS: usize = 256;
/// Buffers that grew past this (one huge request or response) are freed
/// instead of pooled, so a pool never pins large memory.
const POOLED_BUFFER_MAX_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct BufferPools {
    /// Idle decoders, their buffers' capacity kept. Boxed on purpose: a
    /// decoder moves between a connection and this pool on every
    /// keep-alive request, and a box moves as a pointer, not 400-odd bytes.
    #[allow(clippy::vec_box)]
    pub decoders: Vec<Box<Decoder>>,
    pub send: Vec<(Vec<u8>, Vec<u8>)>,
    /// Send buffers of large responses, for the next large response.
    pub large: LargeBufferPool,
}

impl BufferPools {
    /// A decoder for a connection whose request starts: a pooled one, or a
    /// new one (which allocates nothing but itself until fed).
    pub fn decoder(&mut self, limits: Limits) -> Box<Decoder> {
        self.decoders
            .pop()
            .unwrap_or_else(|| Box::new(Decoder::new(limits)))
    }

    /// Takes what `conn` can give back: its decoder when it is between
    /// requests, send buffers when its queue is empty.
    pub fn take_from(&mut self, conn: &mut Connection) {
        // A request waiting for its answer lives in the decoder's buffers.
        if !conn.answer_pending && !conn.in_exchange && !conn.body_to_handler {
            if let Some(mut decoder) = conn.decoder.take() {
                if !decoder.reset_if_idle() {
                    conn.decoder = Some(decoder);
                } else if self.decoders.len() < POOLED_BUFFERS
                    && decoder.retained_bytes() <= POOLED_BUFFER_MAX_BYTES
                {
                    self.decoders.push(decoder);
                }
            }
        }
        if let Some((sending, pending)) = conn.send.take_buffers() {
            if self.send.len() < POOLED_BUFFERS
                && sending.capacity() + pending.capacity() <= POOLED_BUFFER_MAX_BYTES
            {
                self.send.push((sending, pending));
            } else {
                self.large.give(sending);
                self.large.give(pending);
            }
        }
    }
}
