//! The two clocks the engine reads: CLOCK_MONOTONIC for deadlines (the clock
//! `IORING_TIMEOUT_ABS` uses, so model and kernel agree to the nanosecond) and
//! CLOCK_REALTIME for the `Date` header.

use ringwall_timers::MonoTime;

fn read(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only it
    // and cannot fail for these clock ids.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

/// Now on CLOCK_MONOTONIC.
pub(crate) fn mono_now() -> MonoTime {
    let ts = read(libc::CLOCK_MONOTONIC);
    MonoTime::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Whole seconds since the Unix epoch, for the `Date` header.
pub(crate) fn unix_secs() -> u64 {
    read(libc::CLOCK_REALTIME_COARSE).tv_sec as u64
}
