//! A connection's outgoing bytes: responses appended in request order, one
//! send in flight.
//!
//! Two buffers, because the kernel reads the in-flight one until its CQE
//! arrives: appending to it could reallocate memory the kernel is reading.
//! Handlers append to `pending`; when no send is in flight, `pending` becomes
//! the in-flight buffer. Appending, never prepending, keeps the wire order
//! (prepending once reversed the wire order: ARCHITECTURE.md, Engine
//! invariants).

#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Bytes the kernel may be reading: never touched while `in_flight`.
    sending: Vec<u8>,
    /// How much of `sending` has left.
    sent: usize,
    /// Responses written since the current send started.
    pub pending: Vec<u8>,
    in_flight: bool,
    /// While the send-rate clock runs: the bytes the kernel held for this
    /// connection unacknowledged at the last look (SIOCOUTQ), plus what
    /// sends moved into it since; what the peer took is the difference
    /// from the next look (`bytes_taken` in the driver). Here, not in the
    /// connection, because it fits this struct's padding.
    pub kernel_owed: u32,
}

impl SendQueue {
    pub fn is_empty(&self) -> bool {
        !self.in_flight && self.pending.is_empty() && self.sent == self.sending.len()
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.sending.len() - self.sent + self.pending.len()
    }

    /// The bytes to hand to the next send, or `None` if a send is in flight
    /// or nothing is queued. Marks the send in flight.
    pub fn start_send(&mut self) -> Option<&[u8]> {
        if self.in_flight {
            return None;
        }
        if self.sent == self.sending.len() {
            if self.pending.is_empty() {
                return None;
            }
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.sending, &mut self.pending);
        }
        self.in_flight = true;
        Some(&self.sending[self.sent..])
    }

    /// A send completed with `n` bytes: a short send leaves the rest for the
    /// next `start_send`, which resumes at the right offset. Returns whether
    /// it was short (the kernel took less than it was offered).
    pub fn complete_send(&mut self, n: usize) -> bool {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        self.sent = (self.sent + n).min(self.sending.len());
        self.sent < self.sending.len()
    }

    /// The send failed or was cancelled.
    pub fn abort_send(&mut self) {
        self.in_flight = false;
    }

    /// Hands back both buffers (cleared, capacity kept) for pooling, when the
    /// queue is empty.
    pub fn take_buffers(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        if !self.is_empty() || (self.sending.capacity() == 0 && self.pending.capacity() == 0) {
            return None;
        }
        self.sending.clear();
        self.sent = 0;
        Some((
            std::mem::take(&mut self.sending),
            std::mem::take(&mut self.pending),
        ))
    }

    pub fn give_buffers(&mut self, sending: Vec<u8>, pending: Vec<u8>) {
        debug_assert!(self.is_empty());
        self.sending = sending;
        self.pending = pending;
        self.sending.clear();
        self.pending.clear();
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_leave_in_append_order() {
        let mut q = SendQueue::default();
        q.pending.extend_from_slice(b"first ");
        assert_eq!(q.start_send().unwrap(), b"first ");
        q.pending.extend_from_slice(b"second ");
        q.pending.extend_from_slice(b"third");
        assert!(q.start_send().is_none(), "one send in flight");
        q.complete_send(6);
        assert_eq!(q.start_send().unwrap(), b"second third");
        q.complete_send(12);
        assert!(q.is_empty());
    }

    #[test]
    fn short_send_resumes_at_the_offset() {
        let mut q = SendQueue::default();
        q.pending.extend_from_slice(b"0123456789");
        assert_eq!(q.start_send().unwrap(), b"0123456789");
        assert!(q.complete_send(4), "4 of 10 is short");
        q.pending.extend_from_slice(b"AB");
        assert_eq!(q.start_send().unwrap(), b"456789");
        assert!(!q.complete_send(6));
        assert_eq!(q.start_send().unwrap(), b"AB");
        q.complete_send(2);
        assert!(q.is_empty());
        assert_eq!(q.queued(), 0);
    }

    #[test]
    fn buffers_are_pooled_only_when_empty() {
        let mut q = SendQueue::default();
        q.pending.extend_from_slice(b"x");
        assert!(q.take_buffers().is_none());
        q.start_send();
        q.complete_send(1);
        let (a, b) = q
            .take_buffers()
            .expect("empty queue gives its buffers back");
        assert!(a.is_empty() && b.is_empty());
        assert!(a.capacity() + b.capacity() > 0);
    }
}
