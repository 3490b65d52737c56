//! The engine's events: `tracing` macros with the `tracing` feature, nothing
//! without it.
//!
//! ```text
//!   engine ──► error!/warn!/info!/debug! ──► tracing subscriber, if installed
//!                                        └─► else the `log` facade (tracing's `log` feature)
//! ```
//!
//! Without the feature each macro expands to an `if false` block that still
//! type-checks its arguments, so a value computed only for an event does not
//! turn into an unused-variable warning in that build, and the event cannot
//! rot there. Call sites use tracing's syntax restricted to `name = value`,
//! `name = %value`, `name = ?value` and `name` fields followed by a format string.
//!
//! Per-connection closes have their own target, `ringwall::closes`, at
//! `debug`, rate limited per worker by [`CloseLogBudget`].

use std::net::SocketAddr;

use ringwall_timers::MonoTime;

use crate::ops::stats::CloseReason;

/// The target of the per-connection close events (protocol errors and
/// deadline closes, with the peer's address). Enable it with a filter such as
/// `RUST_LOG=ringwall::closes=debug`.
#[cfg(feature = "tracing")]
pub(crate) const CLOSES_TARGET: &str = "ringwall::closes";

/// Close events one worker may emit per second; the rest are counted and
/// reported with the next event that passes. Bounds what an attacker who
/// sends garbage on a thousand connections can make the server write.
pub(crate) const CLOSE_EVENTS_PER_SEC: u32 = 10;

#[cfg(feature = "tracing")]
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        ::tracing::$level!($($arg)+)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        if false {
            $crate::ops::log::discard!($($arg)+);
        }
    };
}

/// Type-checks an event's fields and message, and uses them, without
/// emitting anything.
#[cfg(not(feature = "tracing"))]
macro_rules! discard {
    ($name:ident = % $value:expr, $($rest:tt)+) => {
        let _ = &$value;
        $crate::ops::log::discard!($($rest)+)
    };
    ($name:ident = ? $value:expr, $($rest:tt)+) => {
        let _ = &$value;
        $crate::ops::log::discard!($($rest)+)
    };
    ($name:ident = $value:expr, $($rest:tt)+) => {
        let _ = &$value;
        $crate::ops::log::discard!($($rest)+)
    };
    ($name:ident, $($rest:tt)+) => {
        let _ = &$name;
        $crate::ops::log::discard!($($rest)+)
    };
    ($message:literal $(, $arg:expr)* $(,)?) => {
        let _ = ::std::format_args!($message $(, $arg)*);
    };
}

macro_rules! error {
    ($($arg:tt)+) => { $crate::ops::log::event!(error, $($arg)+) };
}
macro_rules! warn_event {
    ($($arg:tt)+) => { $crate::ops::log::event!(warn, $($arg)+) };
}
macro_rules! info {
    ($($arg:tt)+) => { $crate::ops::log::event!(info, $($arg)+) };
}

#[cfg(not(feature = "tracing"))]
pub(crate) use discard;
// Renamed on export: a bare `warn` collides with the built-in attribute.
pub(crate) use {error, event, info, warn_event as warn};

/// Whether a close event would be written: checked before anything about
/// the connection is looked up, so a server with the target off pays two
/// relaxed atomic loads per protocol error or deadline close, nothing per
/// request.
#[cfg(feature = "tracing")]
pub(crate) fn closes_enabled() -> bool {
    if tracing::enabled!(target: CLOSES_TARGET, tracing::Level::DEBUG) {
        return true;
    }
    // tracing's `enabled!` asks only a tracing subscriber; with none
    // installed the event would go to `log`, so ask the logger.
    !tracing::dispatcher::has_been_set()
        && ::log::log_enabled!(target: CLOSES_TARGET, ::log::Level::Debug)
}

#[cfg(not(feature = "tracing"))]
pub(crate) fn closes_enabled() -> bool {
    false
}

/// Whether closes for `reason` are worth an event: the ones a client's
/// misbehaviour causes. Idle timeouts are left out: an idle keep-alive
/// connection timing out is the normal end of most connections.
pub(crate) fn close_is_logged(reason: CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::ProtocolError(_)
            | CloseReason::ProxyProtocolError
            | CloseReason::HeaderTimeout
            | CloseReason::BodyTimeout
            | CloseReason::WriteTimeout
            | CloseReason::MinBodyRate
            | CloseReason::MinResponseRate
    )
}

/// The close event, once [`closes_enabled`] and the worker's
/// [`CloseLogBudget`] have let it through.
#[cfg(feature = "tracing")]
pub(crate) fn close_event(
    worker: usize,
    reason: CloseReason,
    peer: Option<SocketAddr>,
    suppressed: u64,
) {
    // `peer` is the PROXY header's client when there was one; `None` when
    // the peer is already gone.
    match peer {
        Some(peer) => tracing::debug!(
            target: CLOSES_TARGET,
            worker,
            reason = ?reason,
            peer = %peer,
            suppressed,
            "connection closed"
        ),
        None => tracing::debug!(
            target: CLOSES_TARGET,
            worker,
            reason = ?reason,
            suppressed,
            "connection closed"
        ),
    }
}

#[cfg(not(feature = "tracing"))]
pub(crate) fn close_event(
    _worker: usize,
    _reason: CloseReason,
    _peer: Option<SocketAddr>,
    _suppressed: u64,
) {
}

/// One worker's allowance of close events: [`CLOSE_EVENTS_PER_SEC`] per
/// one-second window, counted on the worker's cached clock.
#[derive(Debug)]
pub(crate) struct CloseLogBudget {
    window_start: MonoTime,
    emitted: u32,
    /// Events refused since the last one that passed.
    suppressed: u64,
}

impl CloseLogBudget {
    pub(crate) fn new(now: MonoTime) -> Self {
        CloseLogBudget {
            window_start: now,
            emitted: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` if an event may be written now, `n` being how many were
    /// refused since the last one; `None` if this window's allowance is spent.
    pub(crate) fn admit(&mut self, now: MonoTime) -> Option<u64> {
        if now.saturating_duration_since(self.window_start).as_secs() >= 1 {
            self.window_start = now;
            self.emitted = 0;
        }
        if self.emitted >= CLOSE_EVENTS_PER_SEC {
            self.suppressed += 1;
            return None;
        }
        self.emitted += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_window_admits_its_allowance_then_counts_what_it_refuses() {
        let start = MonoTime::from_nanos(5_000 * MS);
        let mut budget = CloseLogBudget::new(start);
        for i in 0..CLOSE_EVENTS_PER_SEC {
            let at = MonoTime::from_nanos(start.as_nanos() + u64::from(i) * MS);
            assert_eq!(budget.admit(at), Some(0), "event {i}");
        }
        let late_in_window = MonoTime::from_nanos(start.as_nanos() + 999 * MS);
        for _ in 0..1_000 {
            assert_eq!(budget.admit(late_in_window), None);
        }
        let next_window = MonoTime::from_nanos(start.as_nanos() + 1_000 * MS);
        assert_eq!(budget.admit(next_window), Some(1_000));
        assert_eq!(budget.admit(next_window), Some(0));
    }

    #[test]
    fn a_flood_writes_at_most_the_allowance_per_second() {
        let mut budget = CloseLogBudget::new(MonoTime::from_nanos(0));
        // 100,000 closes spread over 10 s: one every 100 us.
        let written = (0..100_000u64)
            .filter(|i| budget.admit(MonoTime::from_nanos(i * 100_000)).is_some())
            .count();
        assert_eq!(written, 10 * CLOSE_EVENTS_PER_SEC as usize);
    }
}
