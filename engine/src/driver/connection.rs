//! One connection's HTTP state, kept in a slab slot of its worker's
//! [`Driver`](super::Driver). What the backend keeps per connection (the
//! descriptor's operations in flight, the timer's timespecs) lives beside
//! it, in the backend.

use std::os::fd::RawFd;

use ringwall_h1::Decoder;
use ringwall_timers::ConnTimers;

use super::send_queue::SendQueue;
use crate::ops::stats::CloseReason;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading requests and answering them.
    Open,
    /// The last response left and `shutdown(SHUT_WR)` was sent; unread request
    /// bytes are discarded until the peer's EOF or the linger deadline, so a
    /// close with unread data does not turn into a reset that destroys the
    /// final response before the peer reads it (nginx's lingering close).
    Lingering,
    /// The close was decided and handed to the backend; the slot waits for
    /// the backend's `release` once nothing in flight names it.
    Closed,
}

/// A reason a connection is held: its socket is not read, or its input
/// not processed, until the reason is cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Hold {
    /// More output is queued than `OUTPUT_HIGH_WATER`: reading stops until
    /// the queue drains.
    OutputBackedUp = 1 << 0,
    /// The connection used its turn and waits in the driver's ready queue:
    /// its buffered requests resume next turn, behind timers and other
    /// connections. Reading goes on (up to `InputFull`).
    Yielded = 1 << 1,
    /// While held otherwise, more input arrived than `INPUT_HIGH_WATER`:
    /// reading stops until its turn comes.
    InputFull = 1 << 2,
    /// Waiting for the worker's output budget to drain before dispatching
    /// another request; reading stops.
    OutputBudget = 1 << 3,
    /// The streamed body's consumer is behind: reading stops until it
    /// catches up.
    BodyConsumer = 1 << 4,
}

/// The set of [`Hold`]s on a connection: one byte, where five flags were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Holds(u8);

impl Holds {
    /// Every hold but `Yielded` stops reading.
    const STOP_READING: u8 = Hold::OutputBackedUp as u8
        | Hold::InputFull as u8
        | Hold::OutputBudget as u8
        | Hold::BodyConsumer as u8;

    pub fn has(self, hold: Hold) -> bool {
        self.0 & hold as u8 != 0
    }

    /// Adds `hold`; false if it was there already.
    pub fn add(&mut self, hold: Hold) -> bool {
        let added = !self.has(hold);
        self.0 |= hold as u8;
        added
    }

    /// Removes `hold`; false if it was not there.
    pub fn remove(&mut self, hold: Hold) -> bool {
        let had = self.has(hold);
        self.0 &= !(hold as u8);
        had
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Some hold stops the socket being read.
    pub fn stop_reading(self) -> bool {
        self.0 & Self::STOP_READING != 0
    }
}

/// `Connection::ip_bucket` of a connection not counted per address.
pub(crate) const NO_IP_BUCKET: u16 = u16::MAX;

pub(crate) struct Connection {
    /// The socket, only to read the peer's address when a handler asks
    /// ([`crate::Request::peer_addr`]); the backend owns and closes it.
    pub fd: RawFd,
    /// Bumped each time the slot is taken: names in the ready and budget
    /// queues, and the backend's operation tags, tell occupants apart.
    pub generation: u32,
    pub phase: Phase,
    /// The request parser, from the worker's pool while a request is in
    /// progress: an idle keep-alive connection holds none (its 400-odd
    /// bytes and its buffers go back to the pool), which is most of what
    /// an idle connection would otherwise cost.
    pub decoder: Option<Box<Decoder>>,
    pub timers: ConnTimers,
    pub send: SendQueue,
    /// Why reading or processing is stopped, if it is: reading resumes
    /// only when no reason that stops it holds.
    pub holds: Holds,
    /// The decoder holds a complete request the handler has not seen yet
    /// (its turn or the output budget held it back).
    pub answer_pending: bool,
    /// The handler deferred its answer and it is not complete yet: no
    /// further request is dispatched (its state is in the driver's
    /// `exchanges`).
    pub in_exchange: bool,
    /// The current request's body goes to the handler as it arrives (or is
    /// discarded, once the handler has dropped its stream).
    pub body_to_handler: bool,
    /// A send has completed: only then can the kernel hold unacknowledged
    /// bytes of ours, so only then is a deadline close worth the SIOCOUTQ
    /// check that decides between FIN and RST.
    pub sent_any: bool,
    /// Input bytes parsed (heads, chunk framing) since the connection last
    /// yielded its turn or sat idle, saturating: against
    /// `TURN_BUDGET_INPUT_BYTES`.
    pub decoded_since_rest: u16,
    /// This connection's share of the worker's request-body budget (a
    /// connection buffers at most 4 GiB of body: more is refused as over
    /// budget).
    pub body_reserved: u32,
    /// This connection's share of the worker's partial-head budget: the
    /// bytes of its head not parsed yet, as last counted.
    pub head_reserved: u32,
    /// Queued output bytes this connection has added to the worker's total.
    pub output_accounted: usize,
    /// Its counter in the per-address table, or `NO_IP_BUCKET`.
    pub ip_bucket: u16,
    /// Stop reading requests; close once the queued responses have left.
    pub close_after_flush: bool,
    /// The peer sent EOF: nothing more will arrive.
    pub peer_eof: bool,
    /// Set by the first decision to close.
    pub close_reason: Option<CloseReason>,
    /// The close has been counted (a forced close is counted once the
    /// backend says whether it was a reset).
    pub close_counted: bool,
    /// The server takes a PROXY header first and it has not been read
    /// yet; its bytes so far wait in the driver's `proxy_headers`.
    pub awaiting_proxy_header: bool,
    /// The PROXY header carried a client address, kept in the driver's
    /// `proxied_peers` (outside the slot, which a server without the
    /// option would pay for); false: the socket's peer stands.
    pub has_proxied_peer: bool,
}

impl Connection {
    /// Whether the socket should be read: not paused for any reason, not
    /// at EOF, not closed.
    pub fn wants_input(&self) -> bool {
        self.phase != Phase::Closed && !self.holds.stop_reading() && !self.peer_eof
    }

    /// Whether its buffered input may be processed now: open, not
    /// closing, and neither waiting on a deferred answer nor held for any
    /// reason. The one place that says so.
    pub fn may_process(&self) -> bool {
        self.phase == Phase::Open
            && !self.close_after_flush
            && (!self.in_exchange || self.body_to_handler)
            && self.holds.is_empty()
    }

    /// Nothing is being read, answered or sent: the connection waits for
    /// its next request.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Open
            && self.send.is_empty()
            && self.decoder_is_idle()
            && !self.answer_pending
            && !self.in_exchange
    }

    /// No request in progress and nothing buffered.
    pub fn decoder_is_idle(&self) -> bool {
        self.decoder.as_ref().is_none_or(|d| d.is_idle())
    }

    /// Request bytes received and not parsed yet.
    pub fn buffered(&self) -> usize {
        self.decoder.as_ref().map_or(0, |d| d.buffered())
    }

    /// The parser of the request in progress.
    pub fn decoder(&mut self) -> &mut Decoder {
        self.decoder
            .as_mut()
            .expect("a request in progress has its decoder")
    }

    pub fn new(fd: RawFd, generation: u32, timers: ConnTimers) -> Connection {
        Connection {
            fd,
            generation,
            phase: Phase::Open,
            decoder: None,
            timers,
            send: SendQueue::default(),
            holds: Holds::default(),
            answer_pending: false,
            in_exchange: false,
            body_to_handler: false,
            sent_any: false,
            decoded_since_rest: 0,
            body_reserved: 0,
            head_reserved: 0,
            output_accounted: 0,
            ip_bucket: NO_IP_BUCKET,
            close_after_flush: false,
            peer_eof: false,
            close_reason: None,
            close_counted: false,
            awaiting_proxy_header: false,
            has_proxied_peer: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection's memory is its slot plus the backend's few
    /// bytes: its decoder and buffers go back to the worker's pool. Keep
    /// the slot well under the 0.5 KiB-per-idle-connection goal (it was
    /// 696 bytes with the decoder inline, and 248 with a copy of the
    /// timeouts and rates in every slot's timers).
    #[test]
    fn slot_stays_small() {
        let size = std::mem::size_of::<Connection>();
        eprintln!("size_of::<Connection>() = {size}");
        assert!(size <= 192, "Connection grew to {size} bytes");
    }
}
