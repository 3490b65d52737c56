//! `MonoTime`: an instant on CLOCK_MONOTONIC, in nanoseconds.

use std::time::Duration;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds on CLOCK_MONOTONIC (the clock io_uring's `IORING_TIMEOUT_ABS`
/// uses).
///
/// The model and the kernel timer name the same instants, so a deadline the
/// model computes is the instant the kernel fires at, to the nanosecond. The
/// crate never reads the clock: the engine reads it and passes it in.
///
/// Arithmetic saturates instead of wrapping: a deadline past the end of `u64`
/// nanoseconds (about 584 years of uptime) is "never", not "long ago".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(u64);

impl MonoTime {
    /// The instant `n` nanoseconds after the clock's origin (boot, for
    /// CLOCK_MONOTONIC).
    pub const fn from_nanos(n: u64) -> Self {
        MonoTime(n)
    }

    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, or the last representable instant if that overflows.
    ///
    /// Saturating, because a wrapped deadline would lie in the past and close
    /// the connection at once.
    pub fn saturating_add(self, d: Duration) -> Self {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        MonoTime(self.0.saturating_add(d))
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Whole seconds and the nanoseconds left over, for a `__kernel_timespec`
    /// (`tv_sec`, `tv_nsec`). The seconds fit `i64` for every `MonoTime`
    /// (`u64::MAX` ns is about 1.8e10 s); the nanoseconds are below 1e9.
    pub fn secs_nanos(self) -> (u64, u32) {
        let secs = self.0 / NANOS_PER_SEC;
        // Below 1e9, so it fits u32.
        let nanos = (self.0 % NANOS_PER_SEC) as u32;
        (secs, nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_add_adds() {
        let t = MonoTime::from_nanos(1_500);
        assert_eq!(t.saturating_add(Duration::from_micros(2)).as_nanos(), 3_500);
    }

    #[test]
    fn saturating_add_saturates_instead_of_wrapping() {
        let t = MonoTime::from_nanos(u64::MAX - 10);
        assert_eq!(
            t.saturating_add(Duration::from_nanos(11)).as_nanos(),
            u64::MAX
        );
        // A Duration larger than u64 nanoseconds saturates too.
        assert_eq!(
            MonoTime::from_nanos(0)
                .saturating_add(Duration::MAX)
                .as_nanos(),
            u64::MAX
        );
    }

    #[test]
    fn saturating_duration_since_measures_forward() {
        let a = MonoTime::from_nanos(1_000);
        let b = MonoTime::from_nanos(4_500);
        assert_eq!(b.saturating_duration_since(a), Duration::from_nanos(3_500));
    }

    #[test]
    fn saturating_duration_since_is_zero_for_a_later_instant() {
        let a = MonoTime::from_nanos(1_000);
        let b = MonoTime::from_nanos(4_500);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }

    #[test]
    fn secs_nanos_splits_for_kernel_timespec() {
        assert_eq!(MonoTime::from_nanos(0).secs_nanos(), (0, 0));
        assert_eq!(
            MonoTime::from_nanos(999_999_999).secs_nanos(),
            (0, 999_999_999)
        );
        assert_eq!(MonoTime::from_nanos(1_000_000_000).secs_nanos(), (1, 0));
        assert_eq!(
            MonoTime::from_nanos(12_345_000_000_678).secs_nanos(),
            (12_345, 678)
        );
        let (secs, nanos) = MonoTime::from_nanos(u64::MAX).secs_nanos();
        assert_eq!((secs, nanos), (18_446_744_073, 709_551_615));
        assert!(i64::try_from(secs).is_ok(), "tv_sec is an i64");
    }

    #[test]
    fn ordering_follows_nanoseconds() {
        assert!(MonoTime::from_nanos(1) < MonoTime::from_nanos(2));
        assert_eq!(
            MonoTime::from_nanos(7)
                .max(MonoTime::from_nanos(3))
                .as_nanos(),
            7
        );
    }
}
