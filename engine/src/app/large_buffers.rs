//! Large response buffers, reused while large responses keep coming and
//! given back to the OS once they stop.
//!
//! With the malloc mmap threshold fixed (see `malloc.rs`) every buffer over
//! 128 KiB is its own mapping: freeing it returns the memory at once, but
//! the next large response faults every page in afresh. Measured on 16 MiB
//! responses: 16-17 ms of server CPU each, against 5.3-6.4 ms reusing heap
//! memory (which kept RSS at 400 MB after the storm). This pool keeps a
//! bounded number of those buffers for reuse, and drops them all after a
//! second in which none was taken: the CPU of reuse during a storm, the RSS
//! of an idle server after it.

/// Buffers smaller than this are ordinary heap memory: not pooled here.
pub(crate) const LARGE_BUFFER_MIN: usize = 128 * 1024;
/// Most bytes a worker keeps for reuse.
const POOL_MAX_BYTES: usize = 64 << 20;

#[derive(Debug, Default)]
pub(crate) struct LargeBufferPool {
    buffers: Vec<Vec<u8>>,
    /// Capacity held in `buffers`.
    bytes: usize,
    /// Whether `take` handed out a buffer since the last `tick`.
    used: bool,
}

impl LargeBufferPool {
    /// The smallest pooled buffer of at least `capacity` bytes, emptied.
    pub fn take(&mut self, capacity: usize) -> Option<Vec<u8>> {
        let (index, _) = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())?;
        let buffer = self.buffers.swap_remove(index);
        self.bytes -= buffer.capacity();
        self.used = true;
        Some(buffer)
    }

    /// Keeps `buffer` for reuse if it is large and fits the bound; frees it
    /// otherwise.
    pub fn give(&mut self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity < LARGE_BUFFER_MIN || self.bytes + capacity > POOL_MAX_BYTES {
            return;
        }
        buffer.clear();
        self.bytes += capacity;
        self.buffers.push(buffer);
    }

    /// Called about once a second: a pool nobody drew from since the last
    /// tick is freed.
    pub fn tick(&mut self) {
        if !self.used {
            self.buffers = Vec::new();
            self.bytes = 0;
        }
        self.used = false;
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_not_kept() {
        let mut pool = LargeBufferPool::default();
        pool.give(Vec::with_capacity(4096));
        assert_eq!(pool.bytes(), 0);
        assert!(pool.take(1).is_none());
    }

    #[test]
    fn take_returns_the_smallest_buffer_that_fits() {
        let mut pool = LargeBufferPool::default();
        pool.give(Vec::with_capacity(4 << 20));
        pool.give(Vec::with_capacity(1 << 20));
        let b = pool.take(512 * 1024).unwrap();
        assert!(b.capacity() >= 1 << 20 && b.capacity() < 4 << 20);
        assert!(pool.take(8 << 20).is_none());
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut pool = LargeBufferPool::default();
        for _ in 0..10 {
            pool.give(Vec::with_capacity(16 << 20));
        }
        assert!(pool.bytes() <= POOL_MAX_BYTES, "{}", pool.bytes());
    }

    #[test]
    fn an_unused_pool_is_freed_at_the_second_tick() {
        let mut pool = LargeBufferPool::default();
        pool.give(Vec::with_capacity(1 << 20));
        assert!(pool.take(1 << 20).is_some());
        pool.give(Vec::with_capacity(1 << 20));
        pool.tick(); // used since the last tick: kept
        assert_eq!(pool.bytes(), 1 << 20);
        pool.tick(); // not used since: freed
        assert_eq!(pool.bytes(), 0);
    }
}
