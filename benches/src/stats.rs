//! Distributions: request latency (microseconds, hdrhistogram) and close
//! overshoot (signed: a close may come before its deadline).

use hdrhistogram::Histogram;

/// Request latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// Records request latencies; one per load thread, merged at the end.
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    hist: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        // 1 µs .. 1 h at 3 significant figures; `saturating_record` clamps beyond.
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("static histogram bounds are valid");
        LatencyRecorder { hist }
    }

    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record((ns / 1_000).max(1));
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides: add cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            p50_us: self.hist.value_at_quantile(0.50),
            p90_us: self.hist.value_at_quantile(0.90),
            p99_us: self.hist.value_at_quantile(0.99),
            max_us: self.hist.max(),
            mean_us: self.hist.mean(),
        }
    }
}

/// Close overshoot percentiles in microseconds: how long after its deadline
/// the client saw a connection close. Negative values are closes before the
/// deadline (within the early-close tolerance).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OvershootSummary {
    pub count: usize,
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl OvershootSummary {
    /// Summarises signed overshoots in nanoseconds through an hdrhistogram of
    /// the values shifted by the minimum (so every value is non-negative),
    /// at 3 significant figures of the shifted value. Min, max and mean are
    /// exact.
    pub fn from_ns(values: &[i64]) -> OvershootSummary {
        let Some(&min) = values.iter().min() else {
            return OvershootSummary::default();
        };
        let max = *values.iter().max().expect("non-empty");
        let mut hist = Histogram::<u64>::new(3).expect("3 significant figures is valid");
        for &v in values {
            // Auto-resizing histogram: recording a non-negative value cannot fail.
            let _ = hist.record((v - min) as u64);
        }
        let q = |quantile: f64| {
            (hist.value_at_quantile(quantile) as i64 + min).min(max) as f64 / 1_000.0
        };
        let sum: i128 = values.iter().map(|&v| v as i128).sum();
        OvershootSummary {
            count: values.len(),
            min_us: min as f64 / 1_000.0,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: max as f64 / 1_000.0,
            mean_us: sum as f64 / values.len() as f64 / 1_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_come_from_recorded_values() {
        let mut r = LatencyRecorder::new();
        for us in 1..=1000u64 {
            r.record_ns(us * 1_000);
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!((499..=501).contains(&s.p50_us), "{s:?}");
        assert!((989..=991).contains(&s.p99_us), "{s:?}");
        assert_eq!(s.max_us, 1000);
    }

    #[test]
    fn merged_recorders_count_both() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        a.record_ns(10_000);
        b.record_ns(20_000);
        b.record_ns(30_000);
        a.merge(&b);
        assert_eq!(a.summary().count, 3);
        assert_eq!(a.summary().max_us, 30);
    }

    #[test]
    fn overshoot_keeps_sign_and_extremes() {
        let values: Vec<i64> = (0..100).map(|i| i * 1_000 - 2_000).collect();
        let s = OvershootSummary::from_ns(&values);
        assert_eq!(s.count, 100);
        assert_eq!(s.min_us, -2.0);
        assert_eq!(s.max_us, 97.0);
        assert!((s.p50_us - 47.0).abs() < 1.0, "{s:?}");
        assert!((s.mean_us - 47.5).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn empty_overshoot_is_all_zero() {
        assert_eq!(OvershootSummary::from_ns(&[]), OvershootSummary::default());
    }
}
