//! `user_data`: the 64-bit tag every SQE carries and every CQE returns.
//!
//! Layout (high to low): slot index (32 bits) | generation (24 bits) | tag (8 bits).
//! The generation makes a CQE that names a slot's previous occupant
//! recognisable, so it is dropped instead of being applied to the new
//! connection (a timer CQE for a closed connection must not close
//! its successor).

/// Which operation a completion belongs to. Every variant is handled in
/// exactly one place: `Worker::dispatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpTag {
    /// Multishot accept on the worker's listener (no slot).
    Accept = 1,
    /// Read on the worker's eventfd: shutdown was requested (no slot).
    Wake = 2,
    /// The worker's shutdown grace timer (no slot).
    ShutdownTimer = 3,
    /// Re-arm delay after an accept error such as EMFILE (no slot).
    AcceptBackoff = 4,
    /// Multishot recv on a connection.
    Recv = 5,
    /// Send of the connection's in-flight buffer.
    Send = 6,
    /// The connection's one kernel deadline timer.
    Timer = 7,
    /// `IORING_OP_TIMEOUT_REMOVE` with the update flag: move the timer earlier.
    TimerUpdate = 8,
    /// `IORING_OP_ASYNC_CANCEL` of one of the connection's operations (a
    /// paused recv, or everything in flight on close), or of a listener's
    /// accept at shutdown.
    Cancel = 9,
    /// The once-a-second check that frees an unused large-buffer pool (no
    /// slot); armed only while the pool holds something.
    PoolTimer = 10,
    /// `SO_LINGER {1, 0}` set through the ring before a reset close.
    Linger = 11,
    // 12 was `IORING_OP_SHUTDOWN`; FINs are sent by syscall now.
    /// `IORING_OP_TIMEOUT_REMOVE` of the connection's timer on close.
    TimerRemove = 13,
    /// Read on the worker's mailbox eventfd: deferred answers arrived (no
    /// slot).
    Mailbox = 14,
    /// `IORING_OP_CLOSE` of a released connection's socket, with
    /// `IOSQE_CQE_SKIP_SUCCESS`: only a failure completes (no slot: the
    /// slot was released when it was queued).
    Close = 15,
}

impl OpTag {
    fn from_u8(raw: u8) -> Option<OpTag> {
        Some(match raw {
            1 => OpTag::Accept,
            2 => OpTag::Wake,
            3 => OpTag::ShutdownTimer,
            4 => OpTag::AcceptBackoff,
            5 => OpTag::Recv,
            6 => OpTag::Send,
            7 => OpTag::Timer,
            8 => OpTag::TimerUpdate,
            9 => OpTag::Cancel,
            10 => OpTag::PoolTimer,
            11 => OpTag::Linger,
            13 => OpTag::TimerRemove,
            14 => OpTag::Mailbox,
            15 => OpTag::Close,
            _ => return None,
        })
    }
}

/// Slot index used by worker-level operations that name no connection.
pub(crate) const NO_SLOT: u32 = u32::MAX;
use crate::driver::GENERATION_MASK;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UserData {
    pub slot: u32,
    pub generation: u32,
    pub tag: OpTag,
}

impl UserData {
    pub fn new(slot: u32, generation: u32, tag: OpTag) -> UserData {
        UserData {
            slot,
            generation: generation & GENERATION_MASK,
            tag,
        }
    }

    pub fn worker(tag: OpTag) -> UserData {
        UserData::new(NO_SLOT, 0, tag)
    }

    pub fn encode(self) -> u64 {
        (u64::from(self.slot) << 32)
            | (u64::from(self.generation & GENERATION_MASK) << 8)
            | self.tag as u64
    }

    /// `None` for a value ringwall never submitted (a corrupted tag).
    pub fn decode(raw: u64) -> Option<UserData> {
        let tag = OpTag::from_u8((raw & 0xff) as u8)?;
        Some(UserData {
            slot: (raw >> 32) as u32,
            generation: ((raw >> 8) as u32) & GENERATION_MASK,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::next_generation;

    #[test]
    fn user_data_round_trips_every_tag() {
        for tag in [
            OpTag::Accept,
            OpTag::Wake,
            OpTag::ShutdownTimer,
            OpTag::AcceptBackoff,
            OpTag::Recv,
            OpTag::Send,
            OpTag::Timer,
            OpTag::TimerUpdate,
            OpTag::Cancel,
            OpTag::PoolTimer,
            OpTag::Linger,
            OpTag::TimerRemove,
        ] {
            let ud = UserData::new(0xdead_beef, 0x00ab_cdef, tag);
            assert_eq!(UserData::decode(ud.encode()), Some(ud));
        }
    }

    #[test]
    fn generation_wraps_within_its_field() {
        assert_eq!(next_generation(GENERATION_MASK), 0);
        let ud = UserData::new(1, GENERATION_MASK + 5, OpTag::Timer);
        assert_eq!(UserData::decode(ud.encode()).unwrap().generation, 4);
    }

    #[test]
    fn unknown_tag_is_rejected() {
        assert_eq!(UserData::decode(0xff), None);
        assert_eq!(UserData::decode(0), None);
    }
}
