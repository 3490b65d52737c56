//! Counters: written by one worker each, summed on demand.
//!
//! Each worker owns one `WorkerCounters` on its own cache line
//! (`CachePadded`), so counting never bounces a line between cores. Only the
//! owning worker writes, so an increment is a relaxed load and store rather
//! than a locked read-modify-write.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The request head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// The announced body did not arrive within `body_timeout`.
    BodyTimeout,
    /// A keep-alive connection sat idle past `idle_timeout`.
    IdleTimeout,
    /// No send made progress within `write_timeout` (or a lingering close
    /// waited that long for the peer's EOF).
    WriteTimeout,
    /// An announced body arrived slower than `min_request_body_rate`.
    MinBodyRate,
    /// A response left slower than `min_response_rate`.
    MinResponseRate,
    /// The peer closed its side (read returned 0).
    PeerEof,
    /// The peer reset the connection, or a send failed.
    PeerReset,
    /// The request was malformed; the status was sent, then the close.
    ProtocolError(u16),
    /// The server was at `max_connections` (answered 503, best effort).
    ConnectionCap,
    /// The client's address was at `max_connections_per_ip` (503, best
    /// effort).
    PerIpCap,
    /// The worker's share of `max_buffered_body_bytes` could not hold the
    /// announced body (answered 503).
    BodyBudget,
    /// Graceful shutdown.
    Shutdown,
    /// The exchange ended normally without keep-alive (`Connection: close`,
    /// HTTP/1.0).
    Completed,
}

/// Closes counted by reason: each connection once. A deadline close that
/// found bytes still unsent (in the send queue or the kernel) is reset with
/// RST instead of FIN and counted under its `*_reset` name instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseCounts {
    pub header_timeout: u64,
    pub header_timeout_reset: u64,
    pub body_timeout: u64,
    pub body_timeout_reset: u64,
    pub idle_timeout: u64,
    pub idle_timeout_reset: u64,
    pub write_timeout: u64,
    pub write_timeout_reset: u64,
    pub min_body_rate: u64,
    pub min_body_rate_reset: u64,
    pub min_response_rate: u64,
    pub min_response_rate_reset: u64,
    pub peer_eof: u64,
    pub peer_reset: u64,
    /// Protocol errors, all statuses.
    pub protocol_error: u64,
    pub protocol_error_400: u64,
    pub protocol_error_413: u64,
    pub protocol_error_414: u64,
    pub protocol_error_431: u64,
    pub protocol_error_501: u64,
    pub protocol_error_505: u64,
    pub connection_cap: u64,
    pub per_ip_cap: u64,
    pub body_budget: u64,
    pub shutdown: u64,
    pub shutdown_reset: u64,
    pub completed: u64,
}

impl CloseCounts {
    pub fn total(&self) -> u64 {
        self.header_timeout
            + self.header_timeout_reset
            + self.body_timeout
            + self.body_timeout_reset
            + self.idle_timeout
            + self.idle_timeout_reset
            + self.write_timeout
            + self.write_timeout_reset
            + self.min_body_rate
            + self.min_body_rate_reset
            + self.min_response_rate
            + self.min_response_rate_reset
            + self.peer_eof
            + self.peer_reset
            + self.protocol_error
            + self.connection_cap
            + self.per_ip_cap
            + self.body_budget
            + self.shutdown
            + self.shutdown_reset
            + self.completed
    }
}

/// A snapshot of the server's counters, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Connections holding a slot right now.
    pub open_connections: u64,
    pub closes: CloseCounts,
    pub timer_submits: u64,
    pub timer_updates: u64,
    pub timer_fires: u64,
    /// Fires that found no expired deadline (cleared or moved later) and re-armed.
    pub timer_early_fires: u64,
    /// Times the submission queue was full and the worker submitted to make room.
    pub sq_full_retries: u64,
    /// Completions dropped because they named a slot's previous occupant.
    pub stale_completions: u64,
    /// Accept errors (EMFILE, ENFILE, ...), after which accept backs off.
    pub accept_errors: u64,
    /// `io_uring_enter` calls (one per loop turn, plus any made to free SQ
    /// space): with `requests`, syscalls per request, a count that does not
    /// depend on machine speed.
    pub ring_enters: u64,
    /// Closes sent as RST because bytes were still unsent: every `*_reset`
    /// close, plus lingering closes whose FIN had gone but whose data had
    /// not when the linger ended.
    pub resets: u64,
    /// Times a connection used up its per-turn budget and yielded to the
    /// rest of its worker.
    pub turn_yields: u64,
    /// Times a request waited because its worker's output budget was used up.
    pub output_budget_waits: u64,
    /// Best-effort 503s written to connections refused by a cap.
    pub cap_responses: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.closes;
        write!(
            f,
            "accepted={} requests={} bytes_in={} bytes_out={} open={} \
             closes[header_timeout={} header_timeout_reset={} body_timeout={} body_timeout_reset={} \
             idle_timeout={} idle_timeout_reset={} write_timeout={} write_timeout_reset={} \
             min_body_rate={} min_body_rate_reset={} min_response_rate={} min_response_rate_reset={} \
             peer_eof={} peer_reset={} protocol_error={} (400={} 413={} 414={} 431={} 501={} 505={}) \
             connection_cap={} per_ip_cap={} body_budget={} shutdown={} shutdown_reset={} completed={}] \
             timer[submits={} updates={} fires={} early_fires={}] sq_full_retries={} \
             stale_completions={} accept_errors={} ring_enters={} resets={} turn_yields={} \
             output_budget_waits={} cap_responses={}",
            self.accepted,
            self.requests,
            self.bytes_in,
            self.bytes_out,
            self.open_connections,
            c.header_timeout,
            c.header_timeout_reset,
            c.body_timeout,
            c.body_timeout_reset,
            c.idle_timeout,
            c.idle_timeout_reset,
            c.write_timeout,
            c.write_timeout_reset,
            c.min_body_rate,
            c.min_body_rate_reset,
            c.min_response_rate,
            c.min_response_rate_reset,
            c.peer_eof,
            c.peer_reset,
            c.protocol_error,
            c.protocol_error_400,
            c.protocol_error_413,
            c.protocol_error_414,
            c.protocol_error_431,
            c.protocol_error_501,
            c.protocol_error_505,
            c.connection_cap,
            c.per_ip_cap,
            c.body_budget,
            c.shutdown,
            c.shutdown_reset,
            c.completed,
            self.timer_submits,
            self.timer_updates,
            self.timer_fires,
            self.timer_early_fires,
            self.sq_full_retries,
            self.stale_completions,
            self.accept_errors,
            self.ring_enters,
            self.resets,
            self.turn_yields,
            self.output_budget_waits,
            self.cap_responses,
        )
    }
}

/// One counter with a single writer.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        // Single writer: a plain load + store is enough and avoids a locked op.
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(n), Ordering::Relaxed);
    }

    pub fn incr(&self) {
        self.add(1);
    }

    pub fn sub(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_sub(n), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub accepted: Counter,
    pub requests: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub open_connections: Counter,
    pub header_timeout: Counter,
    pub header_timeout_reset: Counter,
    pub body_timeout: Counter,
    pub body_timeout_reset: Counter,
    pub idle_timeout: Counter,
    pub idle_timeout_reset: Counter,
    pub write_timeout: Counter,
    pub write_timeout_reset: Counter,
    pub min_body_rate: Counter,
    pub min_body_rate_reset: Counter,
    pub min_response_rate: Counter,
    pub min_response_rate_reset: Counter,
    pub peer_eof: Counter,
    pub peer_reset: Counter,
    pub protocol_error: Counter,
    pub protocol_error_400: Counter,
    pub protocol_error_413: Counter,
    pub protocol_error_414: Counter,
    pub protocol_error_431: Counter,
    pub protocol_error_501: Counter,
    pub protocol_error_505: Counter,
    pub connection_cap: Counter,
    pub per_ip_cap: Counter,
    pub body_budget: Counter,
    pub shutdown: Counter,
    pub shutdown_reset: Counter,
    pub completed: Counter,
    pub timer_submits: Counter,
    pub timer_updates: Counter,
    pub timer_fires: Counter,
    pub timer_early_fires: Counter,
    pub sq_full_retries: Counter,
    pub stale_completions: Counter,
    pub accept_errors: Counter,
    pub ring_enters: Counter,
    pub resets: Counter,
    pub turn_yields: Counter,
    pub output_budget_waits: Counter,
    pub cap_responses: Counter,
}

impl WorkerCounters {
    /// Counts a close once, under its reset name when `reset` (only
    /// deadline and shutdown closes have one; `reset` is ignored elsewhere).
    pub fn count_close(&self, reason: CloseReason, reset: bool) {
        let pick = |fin: &Counter, rst: &'_ Counter| if reset { rst.incr() } else { fin.incr() };
        match reason {
            CloseReason::HeaderTimeout => pick(&self.header_timeout, &self.header_timeout_reset),
            CloseReason::BodyTimeout => pick(&self.body_timeout, &self.body_timeout_reset),
            CloseReason::IdleTimeout => pick(&self.idle_timeout, &self.idle_timeout_reset),
            CloseReason::WriteTimeout => pick(&self.write_timeout, &self.write_timeout_reset),
            CloseReason::MinBodyRate => pick(&self.min_body_rate, &self.min_body_rate_reset),
            CloseReason::MinResponseRate => {
                pick(&self.min_response_rate, &self.min_response_rate_reset)
            }
            CloseReason::PeerEof => self.peer_eof.incr(),
            CloseReason::PeerReset => self.peer_reset.incr(),
            CloseReason::ProtocolError(status) => {
                self.protocol_error.incr();
                match status {
                    400 => self.protocol_error_400.incr(),
                    413 => self.protocol_error_413.incr(),
                    414 => self.protocol_error_414.incr(),
                    431 => self.protocol_error_431.incr(),
                    501 => self.protocol_error_501.incr(),
                    505 => self.protocol_error_505.incr(),
                    _ => {}
                }
            }
            CloseReason::ConnectionCap => self.connection_cap.incr(),
            CloseReason::PerIpCap => self.per_ip_cap.incr(),
            CloseReason::BodyBudget => self.body_budget.incr(),
            CloseReason::Shutdown => pick(&self.shutdown, &self.shutdown_reset),
            CloseReason::Completed => self.completed.incr(),
        }
    }

    pub fn add_to(&self, s: &mut Stats) {
        s.accepted += self.accepted.get();
        s.requests += self.requests.get();
        s.bytes_in += self.bytes_in.get();
        s.bytes_out += self.bytes_out.get();
        s.open_connections += self.open_connections.get();
        let c = &mut s.closes;
        c.header_timeout += self.header_timeout.get();
        c.header_timeout_reset += self.header_timeout_reset.get();
        c.body_timeout += self.body_timeout.get();
        c.body_timeout_reset += self.body_timeout_reset.get();
        c.idle_timeout += self.idle_timeout.get();
        c.idle_timeout_reset += self.idle_timeout_reset.get();
        c.write_timeout += self.write_timeout.get();
        c.write_timeout_reset += self.write_timeout_reset.get();
        c.min_body_rate += self.min_body_rate.get();
        c.min_body_rate_reset += self.min_body_rate_reset.get();
        c.min_response_rate += self.min_response_rate.get();
        c.min_response_rate_reset += self.min_response_rate_reset.get();
        c.peer_eof += self.peer_eof.get();
        c.peer_reset += self.peer_reset.get();
        c.protocol_error += self.protocol_error.get();
        c.protocol_error_400 += self.protocol_error_400.get();
        c.protocol_error_413 += self.protocol_error_413.get();
        c.protocol_error_414 += self.protocol_error_414.get();
        c.protocol_error_431 += self.protocol_error_431.get();
        c.protocol_error_501 += self.protocol_error_501.get();
        c.protocol_error_505 += self.protocol_error_505.get();
        c.connection_cap += self.connection_cap.get();
        c.per_ip_cap += self.per_ip_cap.get();
        c.body_budget += self.body_budget.get();
        c.shutdown += self.shutdown.get();
        c.shutdown_reset += self.shutdown_reset.get();
        c.completed += self.completed.get();
        s.timer_submits += self.timer_submits.get();
        s.timer_updates += self.timer_updates.get();
        s.timer_fires += self.timer_fires.get();
        s.timer_early_fires += self.timer_early_fires.get();
        s.sq_full_retries += self.sq_full_retries.get();
        s.stale_completions += self.stale_completions.get();
        s.accept_errors += self.accept_errors.get();
        s.ring_enters += self.ring_enters.get();
        s.resets += self.resets.get();
        s.turn_yields += self.turn_yields.get();
        s.output_budget_waits += self.output_budget_waits.get();
        s.cap_responses += self.cap_responses.get();
    }
}
