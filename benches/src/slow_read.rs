//! Slow read, connection by connection: how the server ended each one (RST
//! or FIN, seen when it happened or only behind queued data) and how many
//! response bytes still arrived after the deadline.
//!
//! ```text
//!   server's write deadline ─► close(fd) with unsent bytes queued
//!        │
//!        ├─ RST (SO_LINGER {1,0}): the queue is dropped; the reader sees the
//!        │   reset at once and nothing more arrives
//!        └─ FIN: the socket lingers in FIN-WAIT-1 holding its send queue,
//!            and the kernel keeps delivering it as the reader's window opens:
//!            the deadline ended the server's interest, not the transfer
//! ```
//!
//! "Arrived" counts bytes in the client's kernel (read, or queued unread),
//! not bytes the client happened to read: what sat in the receive buffer at
//! the deadline had left the server before it.

/// How a slow-read connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowReadEnd {
    /// No connection: refused, timed out, or never started before the hard stop.
    ConnectFailed,
    /// An RST, seen when it happened.
    Reset,
    /// A FIN, seen when it happened.
    Fin,
    /// Writing the request failed.
    WriteFailed,
    /// A FIN found only by draining after deadline + slack: it was queued
    /// behind the unsent response.
    FinBehindData,
    /// An RST that came while draining after deadline + slack.
    ResetBehindData,
    /// Open at deadline + slack, and no close found by draining.
    Hang,
}

impl SlowReadEnd {
    /// The key used in reports.
    pub fn name(self) -> &'static str {
        match self {
            SlowReadEnd::ConnectFailed => "connect_failed",
            SlowReadEnd::Reset => "reset",
            SlowReadEnd::Fin => "fin",
            SlowReadEnd::WriteFailed => "write_failed",
            SlowReadEnd::FinBehindData => "fin_behind_data",
            SlowReadEnd::ResetBehindData => "reset_behind_data",
            SlowReadEnd::Hang => "hang",
        }
    }

    pub fn is_fin(self) -> bool {
        matches!(self, SlowReadEnd::Fin | SlowReadEnd::FinBehindData)
    }

    pub fn is_reset(self) -> bool {
        matches!(self, SlowReadEnd::Reset | SlowReadEnd::ResetBehindData)
    }
}

/// One slow-read connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowReadConn {
    /// The connection's number, in connect order.
    pub index: usize,
    pub end: SlowReadEnd,
    /// `seen - deadline` for a close seen when it happened.
    pub overshoot_ns: Option<i64>,
    /// Response bytes that arrived in all (read, or queued when the end was seen).
    pub bytes_received: u64,
    /// Of those, the ones that arrived after the deadline. Zero when the
    /// connection ended before it.
    pub bytes_after_deadline: u64,
}

/// A slow-read run, summed over its connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlowReadSummary {
    /// Ended by an RST, seen at once or while draining.
    pub resets: usize,
    /// Ended by a FIN, seen at once or while draining.
    pub fins: usize,
    /// FIN-closed connections on which bytes still arrived after the deadline.
    pub fins_with_bytes_after_deadline: usize,
    /// The bytes those received after the deadline.
    pub fin_bytes_after_deadline: u64,
    /// Bytes after the deadline, over every connection (hangs included).
    pub bytes_after_deadline_total: u64,
    /// The most one connection received after the deadline.
    pub bytes_after_deadline_max: u64,
    /// Every connection, by `index`.
    pub connections: Vec<SlowReadConn>,
}

impl SlowReadSummary {
    pub fn from_conns(mut connections: Vec<SlowReadConn>) -> SlowReadSummary {
        connections.sort_by_key(|c| c.index);
        let mut s = SlowReadSummary::default();
        for c in &connections {
            s.resets += usize::from(c.end.is_reset());
            s.fins += usize::from(c.end.is_fin());
            if c.end.is_fin() && c.bytes_after_deadline > 0 {
                s.fins_with_bytes_after_deadline += 1;
                s.fin_bytes_after_deadline += c.bytes_after_deadline;
            }
            s.bytes_after_deadline_total += c.bytes_after_deadline;
            s.bytes_after_deadline_max = s.bytes_after_deadline_max.max(c.bytes_after_deadline);
        }
        s.connections = connections;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(index: usize, end: SlowReadEnd, after: u64) -> SlowReadConn {
        SlowReadConn {
            index,
            end,
            overshoot_ns: None,
            bytes_received: 10_000 + after,
            bytes_after_deadline: after,
        }
    }

    #[test]
    fn only_fins_with_bytes_after_the_deadline_count_as_still_flowing() {
        let s = SlowReadSummary::from_conns(vec![
            conn(3, SlowReadEnd::FinBehindData, 2_000_000),
            conn(0, SlowReadEnd::Reset, 0),
            conn(1, SlowReadEnd::Fin, 0),
            conn(2, SlowReadEnd::Hang, 500),
            conn(4, SlowReadEnd::FinBehindData, 3_000_000),
        ]);
        assert_eq!((s.resets, s.fins), (1, 3));
        assert_eq!(s.fins_with_bytes_after_deadline, 2);
        assert_eq!(s.fin_bytes_after_deadline, 5_000_000);
        assert_eq!(s.bytes_after_deadline_total, 5_000_500);
        assert_eq!(s.bytes_after_deadline_max, 3_000_000);
        let order: Vec<usize> = s.connections.iter().map(|c| c.index).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}
