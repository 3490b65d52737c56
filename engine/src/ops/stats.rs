//! Counters: written by one worker each, summed on demand.
//!
//! Each worker owns one `WorkerCounters` on its own cache line
//! (`CachePadded`), so counting never bounces a line between cores. Only the
//! owning worker writes, so an increment is a relaxed load and store rather
//! than a locked read-modify-write.
//!
//! Every counter is one row of the `counters!` table below: its field, its
//! doc comment (which is also its help text), its name in the `Display` line
//! and how Prometheus sees it. The structs, the sum over workers, the
//! `Display` line and the Prometheus exposition (`prometheus.rs`) all come
//! from that one table.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// A handler that deferred its answer gave no response head within
    /// `handler_timeout`.
    HandlerTimeout,
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
    /// The worker's share of `max_buffered_head_bytes` could not hold the
    /// rest of a request head arriving in pieces (answered 503).
    HeadBudget,
    /// Graceful shutdown.
    Shutdown,
    /// The exchange ended normally without keep-alive (`Connection: close`,
    /// HTTP/1.0).
    Completed,
    /// A server with `proxy_protocol` on got a connection whose first bytes
    /// are not a valid PROXY header; closed without a response.
    ProxyProtocolError,
    /// A deferred answer's producer gave up, or broke its framing, after
    /// the head had left: reset, so the truncated body never looks
    /// complete.
    HandlerAborted,
}

/// How a counter is printed in the `Display` line and exported to
/// Prometheus (see `prometheus.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CounterKind {
    /// `name=N` at the top level; a Prometheus counter of its own, named here.
    Counter(&'static str),
    /// `name=N` at the top level; a Prometheus gauge of its own (a level,
    /// which falls as well as rises).
    Gauge(&'static str),
    /// `name=N` inside `timer[...]`; a Prometheus counter of its own.
    Timer(&'static str),
    /// A close reason: `name=N` inside `closes[...]`, and
    /// `ringwall_closes_total{reason="name"}`.
    Reason,
    /// A protocol error's status: `name=N` inside the `(...)` that follows
    /// `protocol_error`, and `ringwall_protocol_errors_total{status="name"}`.
    Status,
}

/// One counter: its name in the `Display` line (which is also its label
/// value when its Prometheus family is labelled), its kind, and its help
/// text (the field's doc comment).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CounterRow {
    pub name: &'static str,
    pub kind: CounterKind,
    pub help: &'static str,
}

/// Declares every counter once, as a row: its doc comment (also its help
/// text), its field, its name in the `Display` line and its
/// `CounterKind`. Rows before `closes { }` are `Stats` fields printed
/// before `closes[...]`, rows inside it are `CloseCounts` fields, rows after
/// it are `Stats` fields printed after it. From the rows come `Stats`,
/// `CloseCounts`, `WorkerCounters`, the sum over workers, and `COUNTERS`,
/// the table that `Display` and the Prometheus rendering walk; so a new
/// counter is one row here plus the code that counts it.
macro_rules! counters {
    (
        $( $(#[doc = $head_doc:literal])+
           $head:ident: $head_name:literal => $head_kind:ident $(($head_metric:literal))?; )*
        closes {
            $( $(#[doc = $close_doc:literal])+
               $close:ident: $close_name:literal => $close_kind:ident; )*
        }
        $( $(#[doc = $tail_doc:literal])+
           $tail:ident: $tail_name:literal => $tail_kind:ident $(($tail_metric:literal))?; )*
    ) => {
        /// Closes counted by reason: each connection once. A deadline close
        /// that found bytes still unsent (in the send queue or the kernel) is
        /// reset with RST instead of FIN and counted under its `*_reset` name
        /// instead.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct CloseCounts {
            $( $(#[doc = $close_doc])+ pub $close: u64, )*
        }

        impl CloseCounts {
            /// Connections closed: every reason once (the status breakdown
            /// only splits `protocol_error`, so it is not added again).
            pub fn total(&self) -> u64 {
                [$( (CounterKind::$close_kind, self.$close) ),*]
                    .into_iter()
                    .filter(|&(kind, _)| kind == CounterKind::Reason)
                    .map(|(_, count)| count)
                    .sum()
            }
        }

        /// A snapshot of the server's counters, summed over workers.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $( $(#[doc = $head_doc])+ pub $head: u64, )*
            /// Closes by reason.
            pub closes: CloseCounts,
            $( $(#[doc = $tail_doc])+ pub $tail: u64, )*
        }

        impl Stats {
            /// Every counter's value, in `COUNTERS` order.
            pub(crate) fn values(&self) -> [u64; COUNTERS.len()] {
                [$( self.$head, )* $( self.closes.$close, )* $( self.$tail, )*]
            }
        }

        /// Every counter, in `Display` order.
        pub(crate) const COUNTERS: &[CounterRow] = &[
            $( CounterRow {
                name: $head_name,
                kind: CounterKind::$head_kind $(($head_metric))?,
                help: concat!($($head_doc),+),
            }, )*
            $( CounterRow {
                name: $close_name,
                kind: CounterKind::$close_kind,
                help: concat!($($close_doc),+),
            }, )*
            $( CounterRow {
                name: $tail_name,
                kind: CounterKind::$tail_kind $(($tail_metric))?,
                help: concat!($($tail_doc),+),
            }, )*
        ];

        /// One worker's counters. It alone writes them; `ServerHandle`
        /// sums them on demand.
        #[derive(Debug, Default)]
        pub(crate) struct WorkerCounters {
            $( pub $head: Counter, )*
            $( pub $close: Counter, )*
            $( pub $tail: Counter, )*
        }

        impl WorkerCounters {
            pub fn add_to(&self, sum: &mut Stats) {
                $( sum.$head += self.$head.get(); )*
                $( sum.closes.$close += self.$close.get(); )*
                $( sum.$tail += self.$tail.get(); )*
            }

            /// Every counter, in `COUNTERS` order.
            #[cfg(test)]
            pub(crate) fn each(&self) -> [&Counter; COUNTERS.len()] {
                [$( &self.$head, )* $( &self.$close, )* $( &self.$tail, )*]
            }
        }
    };
}

counters! {
    /// Connections accepted.
    accepted: "accepted" => Counter("ringwall_connections_accepted_total");
    /// Requests passed to the handler.
    requests: "requests" => Counter("ringwall_requests_total");
    /// Bytes received from clients.
    bytes_in: "bytes_in" => Counter("ringwall_received_bytes_total");
    /// Bytes sent to clients.
    bytes_out: "bytes_out" => Counter("ringwall_sent_bytes_total");
    /// Connections holding a slot right now.
    open_connections: "open" => Gauge("ringwall_open_connections");
    closes {
        /// The request head did not arrive within `header_timeout`.
        header_timeout: "header_timeout" => Reason;
        /// `header_timeout`, reset because response bytes were unsent.
        header_timeout_reset: "header_timeout_reset" => Reason;
        /// The announced body did not arrive within `body_timeout`.
        body_timeout: "body_timeout" => Reason;
        /// `body_timeout`, reset because response bytes were unsent.
        body_timeout_reset: "body_timeout_reset" => Reason;
        /// A keep-alive connection sat idle past `idle_timeout`.
        idle_timeout: "idle_timeout" => Reason;
        /// `idle_timeout`, reset because response bytes were unsent.
        idle_timeout_reset: "idle_timeout_reset" => Reason;
        /// No send made progress within `write_timeout` (or a lingering
        /// close waited that long for the peer's EOF).
        write_timeout: "write_timeout" => Reason;
        /// `write_timeout`, reset because response bytes were unsent.
        write_timeout_reset: "write_timeout_reset" => Reason;
        /// An announced body arrived slower than `min_request_body_rate`.
        min_body_rate: "min_body_rate" => Reason;
        /// `min_body_rate`, reset because response bytes were unsent.
        min_body_rate_reset: "min_body_rate_reset" => Reason;
        /// A response left slower than `min_response_rate`.
        min_response_rate: "min_response_rate" => Reason;
        /// `min_response_rate`, reset because response bytes were unsent.
        min_response_rate_reset: "min_response_rate_reset" => Reason;
        /// A handler that deferred its answer gave no response head within
        /// `handler_timeout`.
        handler_timeout: "handler_timeout" => Reason;
        /// `handler_timeout`, reset because response bytes were unsent.
        handler_timeout_reset: "handler_timeout_reset" => Reason;
        /// The peer closed its side (read returned 0).
        peer_eof: "peer_eof" => Reason;
        /// The peer reset the connection, or a send failed.
        peer_reset: "peer_reset" => Reason;
        /// Malformed requests, all statuses: the status was sent, then the
        /// close.
        protocol_error: "protocol_error" => Reason;
        /// Protocol errors answered 400 Bad Request.
        protocol_error_400: "400" => Status;
        /// Protocol errors answered 413 Content Too Large.
        protocol_error_413: "413" => Status;
        /// Protocol errors answered 414 URI Too Long.
        protocol_error_414: "414" => Status;
        /// Protocol errors answered 431 Request Header Fields Too Large.
        protocol_error_431: "431" => Status;
        /// Protocol errors answered 501 Not Implemented.
        protocol_error_501: "501" => Status;
        /// Protocol errors answered 505 HTTP Version Not Supported.
        protocol_error_505: "505" => Status;
        /// The server was at `max_connections` (answered 503, best effort).
        connection_cap: "connection_cap" => Reason;
        /// The client's address was at `max_connections_per_ip` (503, best
        /// effort).
        per_ip_cap: "per_ip_cap" => Reason;
        /// The worker's share of `max_buffered_body_bytes` could not hold the
        /// announced body (answered 503).
        body_budget: "body_budget" => Reason;
        /// The worker's share of `max_buffered_head_bytes` could not hold
        /// the rest of a request head arriving in pieces (answered 503).
        head_budget: "head_budget" => Reason;
        /// Graceful shutdown.
        shutdown: "shutdown" => Reason;
        /// Graceful shutdown, reset because response bytes were unsent.
        shutdown_reset: "shutdown_reset" => Reason;
        /// The exchange ended normally without keep-alive (`Connection:
        /// close`, HTTP/1.0).
        completed: "completed" => Reason;
        /// A connection to a server with `proxy_protocol` on whose first
        /// bytes were not a valid PROXY header (closed without a response).
        proxy_protocol_error: "proxy_protocol_error" => Reason;
        /// A deferred answer's producer gave up (or broke its framing)
        /// after the head had left; the connection was reset.
        handler_aborted: "handler_aborted" => Reason;
    }
    /// Kernel timers submitted (`IORING_OP_TIMEOUT`, one per connection at a
    /// time).
    timer_submits: "submits" => Timer("ringwall_timer_submits_total");
    /// Pending kernel timers moved to a new deadline in place.
    timer_updates: "updates" => Timer("ringwall_timer_updates_total");
    /// Kernel timers that fired.
    timer_fires: "fires" => Timer("ringwall_timer_fires_total");
    /// Fires that found no expired deadline (cleared or moved later).
    timer_early_fires: "early_fires" => Timer("ringwall_timer_early_fires_total");
    /// Times the submission queue was full and the worker submitted to make
    /// room.
    sq_full_retries: "sq_full_retries" => Counter("ringwall_sq_full_retries_total");
    /// Completions dropped because they named a slot's previous occupant.
    stale_completions: "stale_completions" => Counter("ringwall_stale_completions_total");
    /// Accept errors (EMFILE, ENFILE, ...), after which accept backs off.
    accept_errors: "accept_errors" => Counter("ringwall_accept_errors_total");
    /// `io_uring_enter` calls (one per loop turn, plus any made to free SQ
    /// space): with `requests`, syscalls per request, a count that does not
    /// depend on machine speed.
    ring_enters: "ring_enters" => Counter("ringwall_ring_enters_total");
    /// Closes sent as RST because bytes were still unsent: every `*_reset`
    /// close, plus lingering closes whose FIN had gone but whose data had
    /// not when the linger ended.
    resets: "resets" => Counter("ringwall_resets_total");
    /// Times a connection used up its per-turn budget and yielded to the
    /// rest of its worker.
    turn_yields: "turn_yields" => Counter("ringwall_turn_yields_total");
    /// Times a request waited because its worker's output budget was used
    /// up.
    output_budget_waits: "output_budget_waits" => Counter("ringwall_output_budget_waits_total");
    /// Best-effort 503s written to connections refused by a cap.
    cap_responses: "cap_responses" => Counter("ringwall_cap_responses_total");
    /// Completions reaped from the ring (io_uring backend; 0 on epoll): with
    /// closes, CQEs per close, a count that does not depend on machine speed.
    completions: "completions" => Counter("ringwall_completions_total");
}

/// A group of counters printed as `open ... close` in the `Display` line.
#[derive(Debug, PartialEq, Eq)]
struct Group {
    open: &'static str,
    close: &'static str,
}

const CLOSES: Group = Group {
    open: "closes[",
    close: "]",
};
const STATUSES: Group = Group {
    open: "(",
    close: ")",
};
const TIMER: Group = Group {
    open: "timer[",
    close: "]",
};

impl CounterKind {
    /// The groups a counter of this kind is printed inside, outermost first.
    fn groups(self) -> &'static [Group] {
        match self {
            CounterKind::Counter(_) | CounterKind::Gauge(_) => &[],
            CounterKind::Timer(_) => &[TIMER],
            CounterKind::Reason => &[CLOSES],
            CounterKind::Status => &[CLOSES, STATUSES],
        }
    }
}

/// One line, `accepted=N requests=N ... closes[header_timeout=N ...
/// protocol_error=N (400=N ...) ... completed=N] timer[submits=N ...]
/// sq_full_retries=N ...`, in `COUNTERS` order. Tools parse it: its form
/// is pinned by a test.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut inside: &[Group] = &[];
        for (index, (row, value)) in COUNTERS.iter().zip(self.values()).enumerate() {
            let groups = row.kind.groups();
            let shared = inside
                .iter()
                .zip(groups)
                .take_while(|(a, b)| a == b)
                .count();
            for group in inside[shared..].iter().rev() {
                f.write_str(group.close)?;
            }
            if index > 0 {
                f.write_str(" ")?;
            }
            for group in &groups[shared..] {
                f.write_str(group.open)?;
            }
            write!(f, "{}={value}", row.name)?;
            inside = groups;
        }
        for group in inside.iter().rev() {
            f.write_str(group.close)?;
        }
        Ok(())
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
            CloseReason::HandlerTimeout => pick(&self.handler_timeout, &self.handler_timeout_reset),
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
            CloseReason::HeadBudget => self.head_budget.incr(),
            CloseReason::Shutdown => pick(&self.shutdown, &self.shutdown_reset),
            CloseReason::Completed => self.completed.incr(),
            CloseReason::ProxyProtocolError => self.proxy_protocol_error.incr(),
            CloseReason::HandlerAborted => self.handler_aborted.incr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter a different value, so a value printed under the wrong
    /// name shows.
    fn distinct_stats() -> Stats {
        Stats {
            accepted: 1,
            requests: 2,
            bytes_in: 3,
            bytes_out: 4,
            open_connections: 5,
            closes: CloseCounts {
                header_timeout: 6,
                header_timeout_reset: 7,
                body_timeout: 8,
                body_timeout_reset: 9,
                idle_timeout: 10,
                idle_timeout_reset: 11,
                write_timeout: 12,
                write_timeout_reset: 13,
                min_body_rate: 14,
                min_body_rate_reset: 15,
                min_response_rate: 16,
                min_response_rate_reset: 17,
                handler_timeout: 18,
                handler_timeout_reset: 19,
                peer_eof: 20,
                peer_reset: 21,
                protocol_error: 22,
                protocol_error_400: 23,
                protocol_error_413: 24,
                protocol_error_414: 25,
                protocol_error_431: 26,
                protocol_error_501: 27,
                protocol_error_505: 28,
                connection_cap: 29,
                per_ip_cap: 30,
                body_budget: 31,
                head_budget: 32,
                shutdown: 33,
                shutdown_reset: 34,
                completed: 35,
                proxy_protocol_error: 36,
                handler_aborted: 37,
            },
            timer_submits: 38,
            timer_updates: 39,
            timer_fires: 40,
            timer_early_fires: 41,
            sq_full_retries: 42,
            stale_completions: 43,
            accept_errors: 44,
            ring_enters: 45,
            resets: 46,
            turn_yields: 47,
            output_budget_waits: 48,
            cap_responses: 49,
            completions: 50,
        }
    }

    /// The line `ringwall serve` prints on exit, which benches/ (soak) and
    /// other tools parse: its form must not change by accident.
    const DISTINCT_LINE: &str = "accepted=1 requests=2 bytes_in=3 bytes_out=4 open=5 \
        closes[header_timeout=6 header_timeout_reset=7 body_timeout=8 body_timeout_reset=9 \
        idle_timeout=10 idle_timeout_reset=11 write_timeout=12 write_timeout_reset=13 \
        min_body_rate=14 min_body_rate_reset=15 min_response_rate=16 min_response_rate_reset=17 \
        handler_timeout=18 handler_timeout_reset=19 \
        peer_eof=20 peer_reset=21 protocol_error=22 (400=23 413=24 414=25 431=26 501=27 505=28) \
        connection_cap=29 per_ip_cap=30 body_budget=31 head_budget=32 shutdown=33 shutdown_reset=34 completed=35 proxy_protocol_error=36 handler_aborted=37] \
        timer[submits=38 updates=39 fires=40 early_fires=41] sq_full_retries=42 \
        stale_completions=43 accept_errors=44 ring_enters=45 resets=46 turn_yields=47 \
        output_budget_waits=48 cap_responses=49 completions=50";

    #[test]
    fn display_line_keeps_its_format() {
        assert_eq!(distinct_stats().to_string(), DISTINCT_LINE);
    }

    #[test]
    fn every_counter_is_summed_into_its_own_field_over_workers() {
        let workers = [WorkerCounters::default(), WorkerCounters::default()];
        for (worker, scale) in workers.iter().zip([1, 100]) {
            for (index, counter) in worker.each().into_iter().enumerate() {
                counter.add(scale * (index as u64 + 1));
            }
        }
        let mut sum = Stats::default();
        for worker in &workers {
            worker.add_to(&mut sum);
        }
        // `distinct_stats` numbers the fields by name, in line order: the
        // worker's n-th counter must land in the field numbered n.
        let expected = distinct_stats().values().map(|n| 101 * n);
        assert_eq!(sum.values(), expected, "{sum}");
    }

    #[test]
    fn counter_names_in_the_line_are_unique() {
        for (index, row) in COUNTERS.iter().enumerate() {
            let same = COUNTERS[index + 1..]
                .iter()
                .find(|other| other.name == row.name);
            assert!(same.is_none(), "`{}` is printed twice", row.name);
        }
    }

    #[test]
    fn deadline_close_with_unsent_bytes_counts_under_its_reset_name() {
        let worker = WorkerCounters::default();
        worker.count_close(CloseReason::WriteTimeout, true);
        worker.count_close(CloseReason::WriteTimeout, false);
        worker.count_close(CloseReason::WriteTimeout, false);
        let mut stats = Stats::default();
        worker.add_to(&mut stats);
        assert_eq!(stats.closes.write_timeout, 2, "{stats}");
        assert_eq!(stats.closes.write_timeout_reset, 1, "{stats}");
        assert_eq!(stats.closes.total(), 3, "{stats}");
    }

    #[test]
    fn handler_timeout_counts_under_its_own_fin_and_reset_names() {
        let worker = WorkerCounters::default();
        worker.count_close(CloseReason::HandlerTimeout, false);
        worker.count_close(CloseReason::HandlerTimeout, true);
        worker.count_close(CloseReason::HandlerTimeout, true);
        let mut stats = Stats::default();
        worker.add_to(&mut stats);
        assert_eq!(stats.closes.handler_timeout, 1, "{stats}");
        assert_eq!(stats.closes.handler_timeout_reset, 2, "{stats}");
        assert_eq!(stats.closes.total(), 3, "{stats}");
    }

    #[test]
    fn reset_flag_is_ignored_for_reasons_without_a_reset_name() {
        let worker = WorkerCounters::default();
        worker.count_close(CloseReason::PeerEof, true);
        let mut stats = Stats::default();
        worker.add_to(&mut stats);
        assert_eq!(stats.closes.peer_eof, 1, "{stats}");
        assert_eq!(stats.closes.total(), 1, "{stats}");
    }

    #[test]
    fn protocol_error_counts_once_in_total_and_once_under_its_status() {
        let worker = WorkerCounters::default();
        worker.count_close(CloseReason::ProtocolError(431), false);
        worker.count_close(CloseReason::ProtocolError(400), false);
        worker.count_close(CloseReason::ProtocolError(400), false);
        let mut stats = Stats::default();
        worker.add_to(&mut stats);
        let closes = stats.closes;
        assert_eq!(closes.protocol_error, 3, "{stats}");
        assert_eq!(closes.protocol_error_400, 2, "{stats}");
        assert_eq!(closes.protocol_error_431, 1, "{stats}");
        assert_eq!(closes.total(), 3, "{stats}");
    }
}
