//! The `--json` report of `slowloris`: the table, the verdict and the
//! setup, for CI to read instead of scraping stdout.
//!
//! Units are in the key names: `_ms` for configured durations, `_us` for
//! overshoot and lag (microseconds, fractional where measured in ns),
//! `_ns` for per-connection overshoot, `_bytes` for sizes. A figure that
//! was not measured (no timed close, no legit load, not slow read) is
//! `null`, never 0. `format` changes only when a key changes meaning or
//! goes away; new keys may appear within a format. The format is
//! described, key by key, by `schema/slowloris.v1.schema.json` (JSON Schema
//! 2020-12), which `tests/json_schema.rs` checks real reports against.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use std::{fs, io};

use serde_json::{json, Map, Value};

use crate::attack::{AttackMode, AttackPaths, AttackReport};
use crate::check::ErrorKind;
use crate::load::LoadReport;
use crate::slow_read::SlowReadSummary;
use crate::verdict::{ModeResult, Policy, Verdict};

/// `format` of the report this module writes.
pub const FORMAT: &str = "ringwall-bench.slowloris.v1";

/// The run's setup: what was attacked, how hard, and the deadlines the
/// server claims.
#[derive(Clone, Debug)]
pub struct Setup {
    pub target: SocketAddr,
    pub connections: usize,
    pub open_over: Duration,
    pub legit_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// The request targets the attack connections asked for.
    pub paths: AttackPaths,
}

/// The whole report. `modes` and `verdicts` are in step.
pub fn slowloris_report(
    setup: &Setup,
    policy: &Policy,
    modes: &[ModeResult],
    verdicts: &[Verdict],
) -> Value {
    assert_eq!(modes.len(), verdicts.len(), "one verdict per mode");
    let passed = verdicts.iter().all(Verdict::passed);
    let failures: Vec<String> = modes
        .iter()
        .zip(verdicts)
        .flat_map(|(m, v)| v.failures.iter().map(|f| format!("{}: {f}", m.name())))
        .collect();
    json!({
        "format": FORMAT,
        "target": setup.target.to_string(),
        "verdict": verdict_word(passed),
        "passed": passed,
        "failures": failures,
        "expected_timeouts_ms": {
            "header": ms(setup.header_timeout),
            "body": setup.body_timeout.map(ms),
            "write": setup.write_timeout.map(ms),
            "idle": setup.idle_timeout.map(ms),
        },
        "settings": {
            "connections_per_mode": setup.connections,
            "open_over_ms": ms(setup.open_over),
            "slack_ms": ms(policy.slack),
            "legit_connections": setup.legit_connections,
            "min_legit_kept_percent": policy.min_legit_kept,
            "max_p99_ms": policy.max_p99.map(ms),
            "require_reset_slow_read": policy.require_reset_slow_read,
            "paths": {
                "slowloris": setup.paths.slowloris,
                "slow_body": setup.paths.slow_body,
                "slow_read": setup.paths.slow_read,
                "idle": setup.paths.idle,
            },
        },
        "modes": modes.iter().zip(verdicts).map(|(m, v)| mode(m, v)).collect::<Vec<_>>(),
    })
}

/// Writes the report, pretty-printed, to `path`.
pub fn write(path: &Path, report: &Value) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(path, text)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

fn verdict_word(passed: bool) -> &'static str {
    if passed {
        "pass"
    } else {
        "fail"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mode(m: &ModeResult, v: &Verdict) -> Value {
    let a = &m.attack;
    let (interval, hold, response_bytes) = match m.mode {
        AttackMode::Slowloris { interval } | AttackMode::SlowBody { interval } => {
            (Some(interval), None, None)
        }
        AttackMode::SlowRead {
            response_bytes,
            interval,
        } => (Some(interval), None, Some(response_bytes)),
        AttackMode::Idle { hold } => (None, Some(hold), None),
    };
    json!({
        "mode": m.name(),
        "verdict": verdict_word(v.passed()),
        "passed": v.passed(),
        "failures": v.failures,
        "warnings": v.warnings,
        "deadline_ms": ms(m.deadline),
        "interval_ms": interval.map(ms),
        "idle_hold_ms": hold.map(ms),
        "response_bytes": response_bytes,
        "elapsed_ms": ms(a.elapsed),
        "counts": counts(a),
        "overshoot": overshoot(a, m.timed()),
        "client_lag": {
            "p50_us": a.client_lag.p50_us,
            "p99_us": a.client_lag.p99_us,
            "max_us": a.client_lag.max_us,
        },
        "legit": m.legit.as_ref().map(|l| json!({
            "kept_percent": l.legit_kept_percent(),
            "baseline": load(&l.legit_baseline),
            "under_attack": load(&l.legit_under_attack),
        })),
        "slow_read": a.slow_read.as_ref().map(slow_read),
    })
}

fn counts(a: &AttackReport) -> Value {
    json!({
        "connections": a.connections,
        "opened": a.opened,
        "connect_failed": a.connect_failed,
        "closed": a.closed,
        "hangs": a.hangs,
        "early_closes": a.early_closes,
        "fin_seen": a.fin_seen,
        "reset_seen": a.reset_seen,
        "write_failed_seen": a.write_failed_seen,
        "false_kills": a.false_kills,
        "responses_seen": a.responses_seen,
        "closed_behind_data": a.closed_behind_data,
        "whole_response_read": a.whole_response_read,
        "idle_unusable": a.idle_unusable,
    })
}

/// Percentiles of the timed closes that were not early; `null` when there
/// were none (idle mode never times a close).
fn overshoot(a: &AttackReport, timed: bool) -> Value {
    let o = &a.overshoot;
    let figure = |v: f64| (timed && o.count > 0).then_some(v);
    json!({
        "timed_closes": o.count,
        "min_us": figure(o.min_us),
        "p50_us": figure(o.p50_us),
        "p90_us": figure(o.p90_us),
        "p99_us": figure(o.p99_us),
        "max_us": figure(o.max_us),
        "mean_us": figure(o.mean_us),
    })
}

fn load(r: &LoadReport) -> Value {
    let mut errors = Map::new();
    for kind in ErrorKind::ALL {
        errors.insert(kind.name().to_string(), json!(r.errors.get(kind)));
    }
    json!({
        "requests": r.requests,
        "requests_per_sec": r.requests_per_sec(),
        "errors": r.errors.total(),
        "errors_by_kind": errors,
        "latency_p50_us": r.latency.p50_us,
        "latency_p99_us": r.latency.p99_us,
        "latency_max_us": r.latency.max_us,
    })
}

fn slow_read(s: &SlowReadSummary) -> Value {
    json!({
        "resets": s.resets,
        "fins": s.fins,
        "fins_with_bytes_after_deadline": s.fins_with_bytes_after_deadline,
        "fin_bytes_after_deadline": s.fin_bytes_after_deadline,
        "bytes_after_deadline_total": s.bytes_after_deadline_total,
        "bytes_after_deadline_max": s.bytes_after_deadline_max,
        "connections": s.connections.iter().map(|c| json!({
            "index": c.index,
            "end": c.end.name(),
            "overshoot_ns": c.overshoot_ns,
            "bytes_received": c.bytes_received,
            "bytes_after_deadline": c.bytes_after_deadline,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slow_read::{SlowReadConn, SlowReadEnd};
    use crate::stats::OvershootSummary;
    use crate::verdict::judge;

    const MS: Duration = Duration::from_millis(1);

    fn setup() -> Setup {
        Setup {
            target: "127.0.0.1:8080".parse().unwrap(),
            connections: 2,
            open_over: 200 * MS,
            legit_connections: 0,
            header_timeout: 1000 * MS,
            body_timeout: None,
            write_timeout: Some(2000 * MS),
            idle_timeout: Some(5000 * MS),
            paths: AttackPaths::default(),
        }
    }

    fn modes() -> Vec<ModeResult> {
        let slowloris = ModeResult {
            mode: AttackMode::Slowloris { interval: 100 * MS },
            deadline: 1000 * MS,
            window: 1000 * MS,
            attack: AttackReport {
                mode: "slowloris",
                connections: 2,
                opened: 2,
                closed: 2,
                fin_seen: 2,
                overshoot: OvershootSummary {
                    count: 2,
                    min_us: 100.0,
                    p50_us: 150.0,
                    p90_us: 180.0,
                    p99_us: 12_000.0,
                    max_us: 12_500.0,
                    mean_us: 6_000.0,
                },
                ..AttackReport::default()
            },
            legit: None,
        };
        let conns = vec![
            SlowReadConn {
                index: 0,
                end: SlowReadEnd::FinBehindData,
                overshoot_ns: None,
                bytes_received: 3_000_000,
                bytes_after_deadline: 2_990_000,
            },
            SlowReadConn {
                index: 1,
                end: SlowReadEnd::Reset,
                overshoot_ns: Some(250_000),
                bytes_received: 9_000,
                bytes_after_deadline: 0,
            },
        ];
        let slow_read = ModeResult {
            mode: AttackMode::SlowRead {
                response_bytes: 8 << 20,
                interval: 200 * MS,
            },
            deadline: 2000 * MS,
            window: 2000 * MS,
            attack: AttackReport {
                mode: "slow-read",
                connections: 2,
                opened: 2,
                closed: 1,
                fin_seen: 1,
                reset_seen: 1,
                closed_behind_data: 1,
                overshoot: OvershootSummary::from_ns(&[250_000]),
                slow_read: Some(SlowReadSummary::from_conns(conns)),
                ..AttackReport::default()
            },
            legit: None,
        };
        let idle = ModeResult {
            mode: AttackMode::Idle { hold: 1500 * MS },
            deadline: 5000 * MS,
            window: 1500 * MS,
            attack: AttackReport {
                mode: "idle",
                connections: 2,
                opened: 2,
                ..AttackReport::default()
            },
            legit: None,
        };
        vec![slowloris, slow_read, idle]
    }

    /// Serialises, writes and reads back the report of a run whose
    /// slowloris p99 breaks `--max-p99 10ms`.
    fn written_and_parsed() -> Value {
        let policy = Policy {
            slack: 500 * MS,
            max_p99: Some(10 * MS),
            ..Policy::default()
        };
        let modes = modes();
        let verdicts: Vec<Verdict> = modes.iter().map(|m| judge(m, &policy)).collect();
        let report = slowloris_report(&setup(), &policy, &modes, &verdicts);
        // One file per call: the tests of this module run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ringwall-bench-json-report-{}-{call}.json",
            std::process::id()
        ));
        write(&path, &report).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let _ = fs::remove_file(&path);
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn report_parses_and_carries_the_verdict_and_setup() {
        let v = written_and_parsed();
        assert_eq!(v["format"], FORMAT);
        assert_eq!(v["target"], "127.0.0.1:8080");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["passed"], false);
        let failures = v["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0]
                .as_str()
                .unwrap()
                .starts_with("slowloris: overshoot p99 12.00ms exceeds --max-p99 10ms"),
            "{failures:?}"
        );
        assert_eq!(v["expected_timeouts_ms"]["header"], 1000.0);
        assert_eq!(v["expected_timeouts_ms"]["body"], Value::Null);
        assert_eq!(v["expected_timeouts_ms"]["write"], 2000.0);
        assert_eq!(v["settings"]["max_p99_ms"], 10.0);
        assert_eq!(v["settings"]["slack_ms"], 500.0);
        assert_eq!(v["settings"]["paths"]["slow_body"], "/echo");
        assert_eq!(v["settings"]["paths"]["slow_read"], "/bytes/{bytes}");
    }

    #[test]
    fn report_carries_counts_overshoot_and_verdict_per_mode() {
        let v = written_and_parsed();
        let modes = v["modes"].as_array().unwrap();
        assert_eq!(modes.len(), 3);
        let s = &modes[0];
        assert_eq!(s["mode"], "slowloris");
        assert_eq!(s["verdict"], "fail");
        assert_eq!(s["deadline_ms"], 1000.0);
        assert_eq!(s["interval_ms"], 100.0);
        assert_eq!(s["counts"]["closed"], 2);
        assert_eq!(s["counts"]["fin_seen"], 2);
        for key in [
            "connections",
            "opened",
            "connect_failed",
            "hangs",
            "early_closes",
            "reset_seen",
            "write_failed_seen",
            "false_kills",
            "closed_behind_data",
        ] {
            assert!(s["counts"][key].is_u64(), "counts.{key}: {s}");
        }
        assert_eq!(s["overshoot"]["timed_closes"], 2);
        assert_eq!(s["overshoot"]["p50_us"], 150.0);
        assert_eq!(s["overshoot"]["p90_us"], 180.0);
        assert_eq!(s["overshoot"]["p99_us"], 12_000.0);
        assert_eq!(s["overshoot"]["max_us"], 12_500.0);
        assert_eq!(s["legit"], Value::Null);
        assert_eq!(s["slow_read"], Value::Null);
    }

    #[test]
    fn figures_not_measured_are_null_not_zero() {
        let v = written_and_parsed();
        let idle = &v["modes"][2];
        assert_eq!(idle["mode"], "idle");
        assert_eq!(idle["verdict"], "pass");
        assert_eq!(idle["overshoot"]["timed_closes"], 0);
        assert_eq!(idle["overshoot"]["p99_us"], Value::Null);
        assert_eq!(idle["interval_ms"], Value::Null);
        assert_eq!(idle["idle_hold_ms"], 1500.0);
        assert_eq!(idle["slow_read"], Value::Null);
    }

    #[test]
    fn report_carries_slow_read_closes_and_bytes_after_the_deadline() {
        let v = written_and_parsed();
        let r = &v["modes"][1];
        assert_eq!(r["mode"], "slow-read");
        // A warning, not a failure, without --require-reset-slow-read.
        assert_eq!(r["verdict"], "pass");
        let warnings = r["warnings"].as_array().unwrap();
        assert!(
            warnings.iter().any(|w| w
                .as_str()
                .unwrap()
                .contains("FINed with data still flowing")),
            "{warnings:?}"
        );
        assert_eq!(r["overshoot"]["p99_us"], 250.0);
        assert_eq!(r["response_bytes"], 8 << 20);
        let s = &r["slow_read"];
        assert_eq!(s["resets"], 1);
        assert_eq!(s["fins"], 1);
        assert_eq!(s["fins_with_bytes_after_deadline"], 1);
        assert_eq!(s["bytes_after_deadline_total"], 2_990_000);
        assert_eq!(s["bytes_after_deadline_max"], 2_990_000);
        let conns = s["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[0]["end"], "fin_behind_data");
        assert_eq!(conns[0]["overshoot_ns"], Value::Null);
        assert_eq!(conns[1]["end"], "reset");
        assert_eq!(conns[1]["overshoot_ns"], 250_000);
        assert_eq!(conns[1]["bytes_after_deadline"], 0);
    }
}
