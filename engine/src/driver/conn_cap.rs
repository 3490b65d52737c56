//! The server-wide connection cap.
//!
//! Seed 003: a cap checked and then incremented is overrun under an accept
//! storm, because every worker passes the check before any increments. The
//! claim here is a single compare-and-swap, and the release happens exactly
//! once, when the connection's slot is freed.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub(crate) struct ConnCap {
    limit: usize,
    open: AtomicUsize,
}

impl ConnCap {
    pub fn new(limit: usize) -> ConnCap {
        ConnCap {
            limit,
            open: AtomicUsize::new(0),
        }
    }

    /// Claims one connection; `false` when the server is at its cap.
    pub fn try_claim(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .is_ok()
    }

    /// Releases a claim taken by `try_claim`. Called once per freed slot.
    pub fn release(&self) {
        let previous = self.open.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "connection cap released more than claimed");
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn claims_stop_at_the_limit() {
        let cap = ConnCap::new(2);
        assert!(cap.try_claim());
        assert!(cap.try_claim());
        assert!(!cap.try_claim());
        cap.release();
        assert!(cap.try_claim());
        assert_eq!(cap.open(), 2);
    }

    #[test]
    fn concurrent_claims_never_exceed_the_limit() {
        let cap = Arc::new(ConnCap::new(1000));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cap = Arc::clone(&cap);
                std::thread::spawn(move || (0..1000).filter(|_| cap.try_claim()).count())
            })
            .collect();
        let claimed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(claimed, 1000);
        assert_eq!(cap.open(), 1000);
    }
}
