//! Buffers of idle and closed connections, kept for the next connection so
//! steady traffic allocates nothing. Bounded in count and in the size of
//! what is kept.

use ringwall_h1::DecodeBuffers;

use super::connection::Connection;
use crate::large_buffers::LargeBufferPool;

/// Idle buffers kept per worker for reuse, so steady traffic allocates nothing.
const POOLED_BUFFERS: usize = 256;
/// Buffers that grew past this (one huge request or response) are freed
/// instead of pooled, so a pool never pins large memory.
const POOLED_BUFFER_MAX_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct BufferPools {
    pub decode: Vec<DecodeBuffers>,
    pub send: Vec<(Vec<u8>, Vec<u8>)>,
    /// Send buffers of large responses, for the next large response.
    pub large: LargeBufferPool,
}

impl BufferPools {
    /// Takes what `conn` can give back: decoder buffers when it is between
    /// requests, send buffers when its queue is empty.
    pub fn take_from(&mut self, conn: &mut Connection) {
        // A request waiting for its answer lives in the decoder's buffers.
        if conn.has_decode_buffers && !conn.answer_pending {
            if let Some(bufs) = conn.decoder.reclaim() {
                conn.has_decode_buffers = false;
                if self.decode.len() < POOLED_BUFFERS
                    && bufs.retained_bytes() <= POOLED_BUFFER_MAX_BYTES
                {
                    self.decode.push(bufs);
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
