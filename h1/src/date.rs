//! The `Date` header value (RFC 9110 5.6.7), from a Unix timestamp.
//!
//! Pure arithmetic, no clock: the caller reads the time (once a second is
//! plenty) and passes it in.

use std::fmt;

/// An IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 5.6.7:
/// the only format a sender may generate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpDate([u8; 29]);

/// 9999-12-31 23:59:59 UTC: the last instant with a four-digit year.
const LAST_FOUR_DIGIT_YEAR_SECS: u64 = 253_402_300_799;

const DAY_NAMES: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

impl HttpDate {
    /// The date `secs` seconds after 1970-01-01 00:00:00 UTC. Times past the
    /// year 9999 are clamped to its last second: the format has four year
    /// digits.
    #[must_use]
    pub fn from_unix_secs(secs: u64) -> HttpDate {
        let secs = secs.min(LAST_FOUR_DIGIT_YEAR_SECS);
        let days = secs / 86_400;
        let of_day = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday.
        let weekday = (days + 4) % 7;

        let mut b = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        b[0..3].copy_from_slice(DAY_NAMES[weekday as usize]);
        put2(&mut b[5..7], day);
        b[8..11].copy_from_slice(MONTH_NAMES[(month - 1) as usize]);
        put2(&mut b[12..14], year / 100);
        put2(&mut b[14..16], year % 100);
        put2(&mut b[17..19], of_day / 3600);
        put2(&mut b[20..22], of_day / 60 % 60);
        put2(&mut b[23..25], of_day % 60);
        HttpDate(b)
    }

    /// The 29 bytes of the date, ASCII.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Two decimal digits of `n` (< 100).
fn put2(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>): shift the year
/// to start in March so the leap day is the year's last, then split into
/// 400-year eras of 146097 days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ASCII: built from the tables and digits above.
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("?"))
    }
}

impl fmt::Debug for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpDate({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(secs: u64) -> String {
        HttpDate::from_unix_secs(secs).to_string()
    }

    #[test]
    fn epoch_is_thursday_first_of_january_1970() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rfc_example_date() {
        // RFC 9110 5.6.7's example.
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn leap_day_of_a_leap_year() {
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    }

    #[test]
    fn century_non_leap_year_has_no_february_29() {
        // 2100 is divisible by 100 but not by 400: Feb 28 is followed by
        // Mar 1.
        assert_eq!(date(4_107_456_000), "Sun, 28 Feb 2100 00:00:00 GMT");
        assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
    }

    #[test]
    fn last_day_of_a_year() {
        assert_eq!(date(1_704_067_199), "Sun, 31 Dec 2023 23:59:59 GMT");
        assert_eq!(date(1_704_067_200), "Mon, 01 Jan 2024 00:00:00 GMT");
    }

    #[test]
    fn past_2038_the_32_bit_rollover() {
        assert_eq!(date(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(date(2_147_483_648), "Tue, 19 Jan 2038 03:14:08 GMT");
        assert_eq!(date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn beyond_year_9999_is_clamped() {
        assert_eq!(
            date(LAST_FOUR_DIGIT_YEAR_SECS),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn every_day_for_a_century_advances_by_one() {
        // Cross-checks civil_from_days against a naive day counter.
        let mut days_in_month = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..36_525u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            days_in_month[1] = if leap { 29 } else { 28 };
            d += 1;
            if d > days_in_month[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
