//! One connection's state, kept in a slab slot of its worker.

use std::os::fd::RawFd;

use io_uring::types::Timespec;
use ringwall_h1::Decoder;
use ringwall_timers::{ConnTimers, MonoTime};

use crate::send_queue::SendQueue;
use crate::stats::CloseReason;

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
    /// The socket is closed; the slot waits for its last CQE.
    Closed,
}

/// `Conn::ip_bucket` of a connection not counted per address.
pub(crate) const NO_IP_BUCKET: u16 = u16::MAX;

pub(crate) struct Conn {
    pub fd: RawFd,
    pub generation: u32,
    pub phase: Phase,
    pub decoder: Decoder,
    /// Whether `decoder` holds pooled buffers (an idle connection holds none).
    pub has_decode_buffers: bool,
    pub timers: ConnTimers,
    pub send: SendQueue,
    /// Read by the kernel when the timer SQE is submitted. It lives in the
    /// slot, not on a stack, because the SQE may wait in the backlog; slab
    /// slots never move (the slab is allocated at full capacity up front).
    pub timer_spec: Timespec,
    /// The same for the update SQE, kept apart so a queued timer SQE and a
    /// queued update never share a timespec.
    pub update_spec: Timespec,
    /// SQEs that name this slot and whose final CQE has not arrived. The slot
    /// (its buffers, its timespecs) is freed only when this is zero.
    pub inflight: u32,
    pub recv_armed: bool,
    /// Input processing stopped because too much output is queued; the recv
    /// was cancelled and is re-armed when the queue drains.
    pub paused: bool,
    /// The connection used up its budget for this loop turn and waits in
    /// the worker's ready queue; its buffered requests resume next turn,
    /// behind timers and other connections.
    pub yielded: bool,
    /// While yielded, more input arrived than `INPUT_HIGH_WATER`: the recv
    /// was cancelled and is re-armed when the connection's turn comes.
    pub input_paused: bool,
    /// Waiting for the worker's output budget to drain before dispatching
    /// another request; the recv was cancelled.
    pub budget_wait: bool,
    /// The decoder holds a complete request the handler has not seen yet
    /// (its turn or the output budget held it back).
    pub answer_pending: bool,
    /// A send has completed: only then can the kernel hold unacknowledged
    /// bytes of ours, so only then is a deadline close worth the SIOCOUTQ
    /// check that decides between FIN and RST.
    pub sent_any: bool,
    /// This connection's share of the worker's request-body budget.
    pub body_reserved: usize,
    /// Queued output bytes this connection has added to the worker's total.
    pub output_accounted: usize,
    /// Its counter in the per-address table, or `NO_IP_BUCKET`.
    pub ip_bucket: u16,
    /// Stop reading requests; close once the queued responses have left.
    pub close_after_flush: bool,
    /// The peer sent EOF: nothing more will arrive.
    pub peer_eof: bool,
    /// Set (and counted) once, by the first decision to close.
    pub close_reason: Option<CloseReason>,
    /// The server takes a PROXY header first and it has not been read
    /// yet; its bytes so far wait in the worker's `proxy_headers`.
    pub awaiting_proxy_header: bool,
    /// The PROXY header carried a client address, kept in the worker's
    /// `proxied_peers` (outside the slot, which a server without the
    /// option would pay for); false: the socket's peer stands.
    pub has_proxied_peer: bool,
}

impl Conn {
    /// Whether the socket should be read: not paused for any reason, not
    /// at EOF, not closed.
    pub fn wants_input(&self) -> bool {
        self.phase != Phase::Closed
            && !self.paused
            && !self.input_paused
            && !self.budget_wait
            && !self.peer_eof
    }

    pub fn new(fd: RawFd, generation: u32, decoder: Decoder, timers: ConnTimers) -> Conn {
        Conn {
            fd,
            generation,
            phase: Phase::Open,
            decoder,
            has_decode_buffers: false,
            timers,
            send: SendQueue::default(),
            timer_spec: Timespec::new(),
            update_spec: Timespec::new(),
            inflight: 0,
            recv_armed: false,
            paused: false,
            yielded: false,
            input_paused: false,
            budget_wait: false,
            answer_pending: false,
            sent_any: false,
            body_reserved: 0,
            output_accounted: 0,
            ip_bucket: NO_IP_BUCKET,
            close_after_flush: false,
            peer_eof: false,
            close_reason: None,
            awaiting_proxy_header: false,
            has_proxied_peer: false,
        }
    }
}

pub(crate) fn timespec_at(t: MonoTime) -> Timespec {
    let (secs, nanos) = t.secs_nanos();
    Timespec::new().sec(secs).nsec(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection's memory is its slot (its buffers go back to the
    /// worker's pool): keep the slot under the 1 KiB-per-connection goal with
    /// room for the allocator's and the kernel's share.
    #[test]
    fn slot_stays_small() {
        let size = std::mem::size_of::<Conn>();
        eprintln!("size_of::<Conn>() = {size}");
        assert!(size <= 768, "Conn grew to {size} bytes");
    }
}
