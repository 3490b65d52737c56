//! Plain-text renderings of load and attack results, for terminals and CI
//! logs.

use std::fmt::{self, Write as _};

use crate::attack::{AttackReport, AttackWithLoad};
use crate::load::{LoadConfig, LoadMode, LoadReport, RequestSpec};

/// `keep-alive`, `pipelined x16`, `churn`.
pub fn mode_name(mode: LoadMode) -> String {
    match mode {
        LoadMode::KeepAlive => "keep-alive".into(),
        LoadMode::Pipelined { depth } => format!("pipelined x{depth}"),
        LoadMode::Churn => "churn".into(),
    }
}

/// `GET / (expects Hello, World!)` and the like.
pub fn request_name(spec: &RequestSpec) -> String {
    match spec {
        RequestSpec::Hello => "GET / (expects 200 Hello, World!)".into(),
        RequestSpec::Bytes(n) => format!("GET /bytes/{n} (expects 200 and {n} bytes)"),
        RequestSpec::Echo(n) => format!("POST /echo {n} bytes (expects them echoed)"),
        RequestSpec::Get(path) => format!("GET {path} (expects 200, any framed body)"),
    }
}

/// One line naming the run: what, how hard, against whom.
pub fn describe_load(cfg: &LoadConfig) -> String {
    let mut s = format!(
        "load: {} c={} t={} for {} against {}, {}",
        mode_name(cfg.mode),
        cfg.connections,
        cfg.threads,
        ms_or_s(cfg.duration.as_secs_f64()),
        cfg.target,
        request_name(&cfg.request)
    );
    if let Some(max) = cfg.max_requests {
        let _ = write!(s, ", at most {max} requests");
    }
    if let Some(pace) = cfg.pace {
        let _ = write!(
            s,
            ", one batch per {} per connection",
            ms_or_s(pace.as_secs_f64())
        );
    }
    s
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        writeln!(
            f,
            "requests  {} checked in {:.2}s = {:.0} req/s",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests_per_sec()
        )?;
        writeln!(
            f,
            "latency   p50 {}  p90 {}  p99 {}  max {}  (mean {})",
            us(l.p50_us as f64),
            us(l.p90_us as f64),
            us(l.p99_us as f64),
            us(l.max_us as f64),
            us(l.mean_us)
        )?;
        writeln!(f, "errors    {} ({})", self.errors.total(), self.errors)?;
        write!(
            f,
            "connects  {}  bytes read {}",
            self.connects, self.bytes_read
        )
    }
}

/// Microseconds as `812us` or `1.25ms`.
pub fn us(v: f64) -> String {
    if v.abs() < 1000.0 {
        format!("{v:.0}us")
    } else {
        format!("{:.2}ms", v / 1000.0)
    }
}

/// Bytes as `812B`, `4.00KiB`, `12.50MiB`, `1.20GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

fn ms_or_s(secs: f64) -> String {
    if secs < 1.0 {
        format!("{:.0}ms", secs * 1000.0)
    } else {
        format!("{secs:.2}s")
    }
}

/// One row of the regression table: a mode's attack and its legit load.
pub struct ModeRow<'a> {
    pub mode: &'a str,
    pub attack: &'a AttackReport,
    pub legit: Option<&'a AttackWithLoad>,
}

/// The regression table, one row per mode.
pub fn attack_table(rows: &[ModeRow<'_>]) -> String {
    let header = [
        "mode",
        "conns",
        "opened",
        "closed",
        "hangs",
        "early",
        "FIN",
        "RST",
        "wfail",
        "over p50",
        "over p99",
        "over max",
        "false kills",
        "after deadline",
        "legit kept",
        "legit errors",
        "client lag p99",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let a = r.attack;
        let timed = a.overshoot.count > 0;
        let over = |v: f64| if timed { us(v) } else { "-".into() };
        let idle = r.mode == "idle";
        cells.push(vec![
            r.mode.to_string(),
            a.connections.to_string(),
            a.opened.to_string(),
            a.closed.to_string(),
            a.hangs.to_string(),
            a.early_closes.to_string(),
            a.fin_seen.to_string(),
            a.reset_seen.to_string(),
            a.write_failed_seen.to_string(),
            over(a.overshoot.p50_us),
            over(a.overshoot.p99_us),
            over(a.overshoot.max_us),
            if idle {
                a.false_kills.to_string()
            } else {
                "-".into()
            },
            a.slow_read
                .as_ref()
                .map_or("-".into(), |s| bytes(s.bytes_after_deadline_total)),
            r.legit
                .map_or("-".into(), |l| format!("{:.1}%", l.legit_kept_percent())),
            r.legit.map_or("-".into(), |l| {
                l.legit_under_attack.errors.total().to_string()
            }),
            us(a.client_lag.p99_us as f64),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(out, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(out, "  {cell:>w$}", w = widths[c]);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_switch_to_milliseconds_at_one_thousand() {
        assert_eq!(us(812.4), "812us");
        assert_eq!(us(1250.0), "1.25ms");
        assert_eq!(us(-300.0), "-300us");
    }

    #[test]
    fn bytes_switch_units_at_1024() {
        assert_eq!(bytes(812), "812B");
        assert_eq!(bytes(4096), "4.00KiB");
        assert_eq!(bytes(12 << 20), "12.00MiB");
        assert_eq!(bytes(3 << 30), "3.00GiB");
    }

    #[test]
    fn table_has_one_line_per_mode_plus_header() {
        let a = AttackReport {
            mode: "slowloris",
            connections: 10,
            opened: 10,
            closed: 10,
            ..AttackReport::default()
        };
        let t = attack_table(&[ModeRow {
            mode: "slowloris",
            attack: &a,
            legit: None,
        }]);
        assert_eq!(t.lines().count(), 2);
        assert!(t.lines().nth(1).unwrap().starts_with("slowloris"));
    }
}
