//! The `--json` report of `soak`: every class's counts, the resources and
//! the verdict, for CI to read instead of scraping stdout.
//!
//! Units are in the key names (`_ms`, `_us`, `_bytes`). A figure that was
//! not measured (no exchange ended well, the server was gone, counters not
//! read) is `null`, never 0. Counts by reason are objects, `{"timeout": 3}`,
//! holding only the reasons seen. `format` changes only when a key changes
//! meaning or goes away; new keys may appear within a format.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::classes::{ClassReport, Tally};
use super::sampler::Peaks;
use super::verdict::{CounterCheck, Failure, Resources};

/// `format` of the report this module writes.
pub const FORMAT: &str = "ringwall-bench.soak.v1";

/// What the report is about.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub target: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub duration: Duration,
}

/// The whole report.
pub fn soak_report(
    run: &Run,
    classes: &[ClassReport],
    baseline: Resources,
    peaks: &Peaks,
    settled: Option<Resources>,
    counters: &CounterCheck,
    failures: &[Failure],
) -> Value {
    json!({
        "format": FORMAT,
        "target": run.target.to_string(),
        "metrics_target": run.metrics.map(|m| m.to_string()),
        "duration_ms": run.duration.as_millis() as u64,
        "verdict": if failures.is_empty() { "pass" } else { "fail" },
        "passed": failures.is_empty(),
        "failures": failures
            .iter()
            .map(|f| json!({ "check": f.check, "detail": f.detail }))
            .collect::<Vec<_>>(),
        "classes": classes.iter().map(class).collect::<Vec<_>>(),
        "resources": {
            "baseline": resources(baseline),
            "peak": {
                "fds": peaks.fds,
                "rss_bytes": peaks.rss,
                "send_q_bytes": peaks.send_q,
                "open": peaks.open,
                "closing": peaks.closing,
            },
            "settled": settled.map(resources),
        },
        "counters": match counters {
            CounterCheck::NotChecked => json!({ "read": false, "why": "the soak did not start the server" }),
            CounterCheck::Missing(why) => json!({ "read": false, "why": why }),
            CounterCheck::Read(c) => json!({
                "read": true,
                "accepted": c.accepted,
                "requests": c.requests,
                "open": c.open,
                "adds_up": c.add_up(),
                "closes": c.closes.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<Map<_, _>>(),
            }),
        },
    })
}

fn class(c: &ClassReport) -> Value {
    json!({
        "name": c.name,
        "started": c.started,
        "ok": c.ok,
        "ok_by": tally(&c.ok_by),
        "wrong": tally(&c.wrong),
        "hangs": tally(&c.hangs),
        "false_kills": tally(&c.false_kills),
        "untested": tally(&c.untested),
        "slowest_ok_us": c.slowest.map(|d| d.as_micros() as u64),
        "latest_close_us": c.latest_close.map(|d| d.as_micros() as u64),
    })
}

fn tally(t: &Tally) -> Value {
    Value::Object(
        t.iter()
            .map(|(why, n)| (why.to_string(), json!(n)))
            .collect(),
    )
}

fn resources(r: Resources) -> Value {
    json!({ "fds": r.fds, "rss_bytes": r.rss })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::exchanges::Outcome;

    #[test]
    fn a_class_and_a_failure_are_in_the_report() {
        let mut slow = ClassReport::new("slow-stream");
        slow.record(Outcome::Ok(Duration::from_millis(1500)));
        slow.record(Outcome::FalseKill("reset_mid_response"));
        let failure = Failure {
            check: "false-kills",
            detail: "slow-stream: 1 of 2".into(),
        };
        let base = Resources {
            fds: 10,
            rss: 1 << 20,
        };
        let report = soak_report(
            &Run {
                target: "127.0.0.1:1".parse().unwrap(),
                metrics: None,
                duration: Duration::from_secs(60),
            },
            &[slow],
            base,
            &Peaks::default(),
            None,
            &CounterCheck::NotChecked,
            &[failure],
        );
        assert_eq!(report["verdict"], "fail");
        assert_eq!(report["failures"][0]["check"], "false-kills");
        let c = &report["classes"][0];
        assert_eq!(
            (c["started"].as_u64(), c["ok"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(c["false_kills"]["reset_mid_response"], 1);
        assert_eq!(c["wrong"], json!({}));
        assert_eq!(c["slowest_ok_us"], 1_500_000);
        assert_eq!(c["latest_close_us"], Value::Null);
        assert_eq!(report["resources"]["settled"], Value::Null);
        assert_eq!(report["metrics_target"], Value::Null);
        assert_eq!(report["counters"]["read"], false);
    }
}
