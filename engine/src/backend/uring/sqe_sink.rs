//! The SQE sink: submission never drops an entry. A full submission queue
//! is submitted and retried, and what still does not fit waits in a
//! first-in-first-out backlog: a dropped timer SQE is a deadline that
//! never fires.

use super::*;

/// The ring plus the backlog that guarantees no SQE is ever dropped.
pub(super) struct SqeSink {
    pub(super) ring: IoUring,
    /// SQEs that did not fit even after submitting: pushed, in order, before
    /// anything new. A timer SQE is never lost: a dropped one is a
    /// deadline that never fires.
    pub(super) backlog: VecDeque<squeue::Entry>,
}

impl SqeSink {
    /// Queues `entry`.
    ///
    /// # Safety
    /// Memory the entry points to must stay valid until the kernel is done
    /// with it (see each call site).
    pub(super) unsafe fn push(&mut self, entry: squeue::Entry, counters: &WorkerCounters) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: forwarded from the caller's contract.
        if unsafe { self.ring.submission().push(&entry) }.is_ok() {
            return;
        }
        // Full: hand what is queued to the kernel to make room and retry.
        counters.sq_full_retries.incr();
        counters.ring_enters.incr();
        let _ = self.ring.submit();
        // SAFETY: as above.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(entry);
        }
    }

    /// Moves backlogged SQEs into the ring, in order, as space allows.
    pub(super) fn flush_backlog(&mut self, counters: &WorkerCounters) {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: every backlogged entry was pushed under `push`'s
            // contract, whose memory outlives its submission.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.backlog.pop_front();
                continue;
            }
            counters.sq_full_retries.incr();
            counters.ring_enters.incr();
            if self.ring.submit().is_err() {
                // EBUSY: completions must be reaped first; the main loop does.
                return;
            }
            if self.ring.submission().is_full() {
                return;
            }
        }
    }
}
