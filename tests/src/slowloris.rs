//! Slowloris against a test server, through the benchmarks' attack client:
//! one driver for both, judged by the same early and late bounds as every
//! other close in these tests.

use std::net::SocketAddr;
use std::time::Duration;

use ringwall_bench::client::LATE_SLACK;
use ringwall_bench::{run_attack, AttackConfig, AttackMode, AttackReport};

/// Opens `connections` connections to `addr` at once; each sends a request
/// line and `Host`, then one header byte every `interval`, never ending the
/// head. Returns when the server has closed them all, or at `header` plus
/// [`LATE_SLACK`] after the last connect began (the rest are hangs).
///
/// In the report, a close more than [`ringwall_bench::client::EARLY_SLACK`]
/// before `header` (counted from just before `connect`) is in
/// `early_closes`; a connection still open [`LATE_SLACK`] after it is in
/// `hangs`.
#[track_caller]
pub fn slowloris(
    addr: SocketAddr,
    connections: usize,
    interval: Duration,
    header: Duration,
) -> AttackReport {
    let config = AttackConfig {
        target: addr,
        mode: AttackMode::Slowloris { interval },
        connections,
        open_over: Duration::ZERO,
        expected_timeout: header,
        slack: LATE_SLACK,
    };
    run_attack(&config).unwrap_or_else(|e| panic!("the slowloris client failed: {e}"))
}

/// One line for a failure message: the counts and the overshoot.
pub fn slowloris_summary(report: &AttackReport) -> String {
    let o = &report.overshoot;
    format!(
        "{} connections: {} closed ({} FIN, {} RST, {} failed writes), {} early, {} hangs, \
         {} connect failures, {} answered, fewest drips {:?}; overshoot p50={:.1}ms p99={:.1}ms max={:.1}ms",
        report.connections,
        report.closed,
        report.fin_seen,
        report.reset_seen,
        report.write_failed_seen,
        report.early_closes,
        report.hangs,
        report.connect_failed,
        report.responses_seen,
        report.fewest_drips,
        o.p50_us / 1e3,
        o.p99_us / 1e3,
        o.max_us / 1e3,
    )
}
