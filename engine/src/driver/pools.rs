//! Buffers of idle and closed connections, kept for the next connection so
//! steady traffic allocates nothing. Bounded in count and in the size of
//! what is kept.

use ringwall_h1::{Decoder, Limits};

use super::connection::Connection;
use crate::app::large_buffers::LargeBufferPool;

/// Idle buffers kept per worker for reuse, so steady traffic allocates nothing.
const POOLED_BUFFERS: usize = 256;
/// Pooled decoders and send buffers a worker keeps however long they sit
/// unused: a quiet server keeps a few warm, and a storm's (256 decoders of
/// up to 64 KiB) is given back once it is over.
const POOLED_BUFFERS_KEPT: usize = 16;
/// Buffers that grew past this (one huge request or response) are freed
/// instead of pooled, so a pool never pins large memory.
const POOLED_BUFFER_MAX_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct BufferPools {
    /// Idle decoders, their buffers' capacity kept. Boxed on purpose: a
    /// decoder moves between a connection and this pool on every
    /// keep-alive request, and a box moves as a pointer, not 400-odd bytes.
    pub decoders: IdlePool<Box<Decoder>>,
    send: IdlePool<(Vec<u8>, Vec<u8>)>,
    /// Send buffers of large responses, for the next large response.
    pub large: LargeBufferPool,
}

/// A bounded stack of idle things that also knows how many of them sat
/// unused for a whole tick: those are freed (all but
/// [`POOLED_BUFFERS_KEPT`]) at the tick.
pub(crate) struct IdlePool<T> {
    items: Vec<T>,
    /// The fewest items the pool held since the last tick: that many went
    /// unused all the while.
    low_water: usize,
}

impl<T> Default for IdlePool<T> {
    fn default() -> Self {
        IdlePool {
            items: Vec::new(),
            low_water: 0,
        }
    }
}

impl<T> IdlePool<T> {
    pub fn pop(&mut self) -> Option<T> {
        let item = self.items.pop();
        self.low_water = self.low_water.min(self.items.len());
        item
    }

    /// Keeps `item` unless the pool is full (it is dropped then).
    fn push(&mut self, item: T) {
        if self.items.len() < POOLED_BUFFERS {
            self.items.push(item);
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Frees what went unused since the last tick, keeping a few.
    fn tick(&mut self) {
        let unused = self.low_water.min(self.items.len());
        let keep = (self.items.len() - unused).max(POOLED_BUFFERS_KEPT);
        if keep < self.items.len() {
            self.items.truncate(keep);
            self.items.shrink_to_fit();
        }
        self.low_water = self.items.len();
    }
}

impl BufferPools {
    /// A decoder for a connection whose request starts: a pooled one, or a
    /// new one (which allocates nothing but itself until fed).
    pub fn decoder(&mut self, limits: Limits) -> Box<Decoder> {
        self.decoders
            .pop()
            .unwrap_or_else(|| Box::new(Decoder::new(limits)))
    }

    /// Send buffers for a connection about to answer, if any are pooled.
    pub fn send_buffers(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.send.pop()
    }

    /// The pools hold more than they keep for good: the worker should tick
    /// them about once a second until they do not.
    pub fn hold_memory(&self) -> bool {
        !self.large.is_empty()
            || self.decoders.len() > POOLED_BUFFERS_KEPT
            || self.send.len() > POOLED_BUFFERS_KEPT
    }

    /// About once a second: frees what nobody used since the last tick.
    pub fn tick(&mut self) {
        self.large.tick();
        self.decoders.tick();
        self.send.tick();
    }

    /// Takes what `conn` can give back: its decoder when it is between
    /// requests, send buffers when its queue is empty.
    pub fn take_from(&mut self, conn: &mut Connection) {
        // A request waiting for its answer lives in the decoder's buffers.
        if !conn.answer_pending && !conn.in_exchange && !conn.body_to_handler {
            if let Some(mut decoder) = conn.decoder.take() {
                if !decoder.reset_if_idle() {
                    conn.decoder = Some(decoder);
                } else if decoder.retained_bytes() <= POOLED_BUFFER_MAX_BYTES {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_items_unused_for_a_whole_tick_are_freed_but_a_few() {
        let mut pool = IdlePool::default();
        for i in 0..100 {
            pool.push(i);
        }
        // Given back during this tick: none has sat unused a whole tick.
        pool.tick();
        assert_eq!(pool.len(), 100);
        // Steady traffic draws ten at a time from the pool and gives them
        // back: the other ninety sat unused and go, the few kept stay.
        for _ in 0..3 {
            let drawn: Vec<_> = (0..10).filter_map(|_| pool.pop()).collect();
            drawn.into_iter().for_each(|i| pool.push(i));
        }
        pool.tick();
        assert_eq!(pool.len(), POOLED_BUFFERS_KEPT);
        pool.tick();
        assert_eq!(pool.len(), POOLED_BUFFERS_KEPT);
    }

    #[test]
    fn a_pool_never_holds_more_than_its_bound() {
        let mut pool = IdlePool::default();
        for i in 0..POOLED_BUFFERS + 10 {
            pool.push(i);
        }
        assert_eq!(pool.len(), POOLED_BUFFERS);
    }
}
