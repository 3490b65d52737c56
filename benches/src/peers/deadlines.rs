//! The four deadlines every peer is given, and how they are spelled on a
//! command line.

use std::fmt;
use std::time::Duration;

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `250us`: the spelling `ringwall serve`
/// accepts (the same crate parses it there), so one string means the same to
/// every binary in a run.
pub use humantime::parse_duration;

/// The deadlines a server enforces on each connection (ARCHITECTURE.md,
/// "Deadlines"). Every peer in a run gets the same four values; how each
/// server maps them onto its own knobs is said in its module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// accept (or a keep-alive request's first byte) to the end of the head.
    pub header: Duration,
    /// The head parsed to the end of the announced body.
    pub body: Duration,
    /// The last response byte sent to the next request's first byte.
    pub idle: Duration,
    /// A response starts to leave to the send queue being empty.
    pub write: Duration,
}

impl Default for Deadlines {
    /// The values the benchmark runners use unless told otherwise.
    fn default() -> Self {
        Deadlines {
            header: Duration::from_secs(2),
            body: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(10),
        }
    }
}

impl fmt::Display for Deadlines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "header {} body {} idle {} write {}",
            format_duration(self.header),
            format_duration(self.body),
            format_duration(self.idle),
            format_duration(self.write)
        )
    }
}

/// Spells a duration so that `ringwall`, nginx and Go all read it back the
/// same: whole seconds as `2s`, anything else in whole milliseconds.
/// (nginx has no unit below a millisecond.)
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_durations_parse_back_to_the_same_value() {
        for d in [
            Duration::from_secs(2),
            Duration::from_millis(500),
            Duration::from_millis(1500),
            Duration::from_secs(60),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
    }
}
