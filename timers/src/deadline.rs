//! The kinds of deadline a connection has and their configured timeouts.

use std::time::Duration;

/// One of a connection's deadlines (ARCHITECTURE.md, "Deadline rules").
///
/// | kind | starts | ends |
/// |---|---|---|
/// | `Header` | accept; the first byte after idle; or a head left incomplete by the bytes at hand | the head parses |
/// | `Body` | the head parses and a body is announced | the body is complete |
/// | `Idle` | the send queue drains on a keep-alive connection with no request in progress | the next request's first byte |
/// | `Write` | a response starts to send; moved to the instant of each send's progress | the send queue is empty |
/// | `BodyRate` | the head parses and a body is announced (and again when reading resumes after the server paused it) | the body is complete, or the server stops reading |
/// | `SendRate` | a response starts to send | the send queue is empty |
/// | `Handler` | a complete request is handed to a handler that defers its answer | the handler's response head arrives |
///
/// Every kind closes the connection on expiry (`Handler` after a 503, which
/// the engine queues). `Handler` does not cover a response body streamed
/// after its head: once bytes flow, the write and send-rate deadlines govern
/// them, so a long stream (server-sent events) is not cut off by it. The two rate kinds exist
/// only when a [`MinRate`] is configured; they move later as bytes make
/// progress (see [`MinRate`]), which the one-timer model absorbs like any
/// later deadline: the pending timer fires early and re-arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadlineKind {
    /// The request head must have arrived.
    Header,
    /// The announced request body must have arrived.
    Body,
    /// A keep-alive connection may wait this long for its next request.
    Idle,
    /// The queued response bytes must keep leaving: no send may go without
    /// progress for this long.
    Write,
    /// The request body must keep arriving at the minimum body rate.
    BodyRate,
    /// The response must keep leaving at the minimum response rate.
    SendRate,
    /// A handler that deferred its answer must produce the response head.
    Handler,
}

impl DeadlineKind {
    /// Every kind, in the tie order: when two deadlines fall on the same
    /// instant, the one listed first is the one reported
    /// ([`ConnTimers::earliest`](crate::ConnTimers::earliest),
    /// [`FireOutcome::Expired`](crate::FireOutcome::Expired)).
    ///
    /// `Handler` is last. While a request is with its handler the request
    /// deadlines (header, body, idle, body rate) are cleared, so it can tie
    /// only with a send deadline of an earlier response still leaving; that
    /// stall is the client's, it is the truer cause to report, and its close
    /// is the right one: a 503 queued behind bytes the client does not read
    /// would never arrive. Last also keeps every older kind's index.
    pub const ALL: [DeadlineKind; 7] = [
        DeadlineKind::Header,
        DeadlineKind::Body,
        DeadlineKind::Idle,
        DeadlineKind::Write,
        DeadlineKind::BodyRate,
        DeadlineKind::SendRate,
        DeadlineKind::Handler,
    ];

    /// A short lower-case name, for logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Header => "header",
            DeadlineKind::Body => "body",
            DeadlineKind::Idle => "idle",
            DeadlineKind::Write => "write",
            DeadlineKind::BodyRate => "body_rate",
            DeadlineKind::SendRate => "send_rate",
            DeadlineKind::Handler => "handler",
        }
    }

    /// Position in [`DeadlineKind::ALL`], and in the deadline table.
    pub(crate) const fn index(self) -> usize {
        match self {
            DeadlineKind::Header => 0,
            DeadlineKind::Body => 1,
            DeadlineKind::Idle => 2,
            DeadlineKind::Write => 3,
            DeadlineKind::BodyRate => 4,
            DeadlineKind::SendRate => 5,
            DeadlineKind::Handler => 6,
        }
    }
}

/// How long each deadline runs from the instant it is armed.
///
/// There is no "disabled": a timeout of `Duration::MAX` saturates to the last
/// representable instant, which never comes. A zero timeout expires at the
/// first timer fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept (or a started head) until the head must have parsed.
    pub header: Duration,
    /// From the parsed head until the announced body must be complete.
    pub body: Duration,
    /// From the drained send queue until the next request's first byte.
    pub idle: Duration,
    /// The longest a response may go without any send making progress
    /// (nginx's `send_timeout` is the same rule).
    pub write: Duration,
    /// From handing a complete request to a handler that defers its answer
    /// until the handler's response head arrives.
    pub handler: Duration,
}

impl Timeouts {
    /// Every timeout the same, `timeout`.
    pub const fn uniform(timeout: Duration) -> Timeouts {
        Timeouts {
            header: timeout,
            body: timeout,
            idle: timeout,
            write: timeout,
            handler: timeout,
        }
    }

    /// The timeout for `kind`.
    pub fn get(&self, kind: DeadlineKind) -> Duration {
        match kind {
            DeadlineKind::Header => self.header,
            DeadlineKind::Body => self.body,
            DeadlineKind::Idle => self.idle,
            DeadlineKind::Write => self.write,
            DeadlineKind::Handler => self.handler,
            // A rate deadline is armed with its grace period (see `MinRate`);
            // without a configured rate it is never armed.
            DeadlineKind::BodyRate | DeadlineKind::SendRate => Duration::MAX,
        }
    }
}

/// A minimum data rate with a grace period (Kestrel's
/// `MinRequestBodyDataRate` / `MinResponseDataRate`): it tells a slow-read or
/// slow-body attacker from a slow but honest client.
///
/// The rate deadline starts `grace` after the server begins waiting on the
/// client. Every byte of progress buys `1 / bytes_per_sec` seconds more, and
/// at most `grace` of earlier credit is kept beyond what the latest bytes
/// bought:
///
/// ```text
///   deadline = max(deadline, min(deadline + bytes / rate,
///                                progress_at + grace + bytes / rate))
/// ```
///
/// So a client keeping up with the rate never expires, however bursty it
/// is: a reader that takes a large burst and then pauses (curl's
/// `--limit-rate` does; a receive window reopens in steps of a sixteenth of
/// the peer's buffer) has paid for its pause with the burst. A client that
/// stalls expires at most `grace` plus its last burst's worth after that
/// burst; a client slower than the rate falls behind by `elapsed - bytes /
/// rate` and expires once that exceeds its banked time.
///
/// What counts as progress is the caller's to say, and it must be what the
/// client took, not what a buffer on the way swallowed: ringwall counts the
/// response bytes the peer acknowledged (the bytes a send moved into the
/// kernel less what the kernel still holds unacknowledged, SIOCOUTQ), so a
/// non-reader whose socket buffers take a few hundred KiB at once banks
/// nothing for them. An earlier rule capped the bank at `progress_at +
/// grace`, and reset honest readers at 20-50 KB/s whose visible progress
/// comes in bursts further apart than `grace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinRate {
    /// Bytes per second the client must sustain; more than zero.
    pub bytes_per_sec: u32,
    /// Time allowed before the rate is enforced, and the most earlier
    /// credit kept beyond what the latest progress bought.
    pub grace: Duration,
}

impl MinRate {
    /// `bytes_per_sec` after `grace`. Validated where it is configured
    /// (ringwall's `ServerBuilder::build`), not here, so it can be a const.
    pub const fn new(bytes_per_sec: u32, grace: Duration) -> MinRate {
        MinRate {
            bytes_per_sec,
            grace,
        }
    }

    /// How far `bytes` of progress moves a rate deadline, before the cap.
    pub fn credit(&self, bytes: u64) -> Duration {
        let rate = u64::from(self.bytes_per_sec.max(1));
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The minimum rates a connection is held to; `None` disables one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinRates {
    /// While the server reads an announced request body.
    pub body: Option<MinRate>,
    /// While the server sends a response.
    pub send: Option<MinRate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_bytes_over_rate() {
        let rate = MinRate {
            bytes_per_sec: 240,
            grace: Duration::from_secs(5),
        };
        assert_eq!(rate.credit(240), Duration::from_secs(1));
        assert_eq!(rate.credit(24), Duration::from_millis(100));
        assert_eq!(rate.credit(u64::MAX), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn index_is_position_in_all() {
        for (i, kind) in DeadlineKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{}", kind.name());
        }
    }

    #[test]
    fn names_are_distinct() {
        let names = DeadlineKind::ALL.map(DeadlineKind::name);
        assert_eq!(
            names,
            [
                "header",
                "body",
                "idle",
                "write",
                "body_rate",
                "send_rate",
                "handler"
            ]
        );
    }

    #[test]
    fn get_returns_the_field_for_each_kind() {
        let t = Timeouts {
            header: Duration::from_secs(1),
            body: Duration::from_secs(2),
            idle: Duration::from_secs(3),
            write: Duration::from_secs(4),
            handler: Duration::from_secs(5),
        };
        let got = DeadlineKind::ALL.map(|k| t.get(k).as_secs());
        let max = Duration::MAX.as_secs();
        assert_eq!(got, [1, 2, 3, 4, max, max, 5]);
    }
}
