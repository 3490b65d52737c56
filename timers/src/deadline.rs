//! The four deadlines of a connection and their configured timeouts.

use std::time::Duration;

/// One of a connection's deadlines (DESIGN.md, "Deadlines").
///
/// | kind | starts | ends |
/// |---|---|---|
/// | `Header` | accept; the first byte after idle; or a head left incomplete by the bytes at hand | the head parses |
/// | `Body` | the head parses and a body is announced | the body is complete |
/// | `Idle` | the send queue drains on a keep-alive connection with no request in progress | the next request's first byte |
/// | `Write` | a response starts to send | the send queue is empty |
///
/// Every kind closes the connection on expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadlineKind {
    /// The request head must have arrived.
    Header,
    /// The announced request body must have arrived.
    Body,
    /// A keep-alive connection may wait this long for its next request.
    Idle,
    /// The queued response bytes must have left.
    Write,
}

impl DeadlineKind {
    /// Every kind, in the tie order: when two deadlines fall on the same
    /// instant, the one listed first is the one reported
    /// ([`ConnTimers::earliest`](crate::ConnTimers::earliest),
    /// [`FireOutcome::Expired`](crate::FireOutcome::Expired)).
    pub const ALL: [DeadlineKind; 4] = [
        DeadlineKind::Header,
        DeadlineKind::Body,
        DeadlineKind::Idle,
        DeadlineKind::Write,
    ];

    /// A short lower-case name, for logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Header => "header",
            DeadlineKind::Body => "body",
            DeadlineKind::Idle => "idle",
            DeadlineKind::Write => "write",
        }
    }

    /// Position in [`DeadlineKind::ALL`], and in the deadline table.
    pub(crate) const fn index(self) -> usize {
        match self {
            DeadlineKind::Header => 0,
            DeadlineKind::Body => 1,
            DeadlineKind::Idle => 2,
            DeadlineKind::Write => 3,
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
    /// From the start of a send until the send queue must be empty.
    pub write: Duration,
}

impl Timeouts {
    /// The timeout for `kind`.
    pub fn get(&self, kind: DeadlineKind) -> Duration {
        match kind {
            DeadlineKind::Header => self.header,
            DeadlineKind::Body => self.body,
            DeadlineKind::Idle => self.idle,
            DeadlineKind::Write => self.write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_position_in_all() {
        for (i, kind) in DeadlineKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{}", kind.name());
        }
    }

    #[test]
    fn names_are_distinct() {
        let names = DeadlineKind::ALL.map(DeadlineKind::name);
        assert_eq!(names, ["header", "body", "idle", "write"]);
    }

    #[test]
    fn get_returns_the_field_for_each_kind() {
        let t = Timeouts {
            header: Duration::from_secs(1),
            body: Duration::from_secs(2),
            idle: Duration::from_secs(3),
            write: Duration::from_secs(4),
        };
        let got = DeadlineKind::ALL.map(|k| t.get(k).as_secs());
        assert_eq!(got, [1, 2, 3, 4]);
    }
}
