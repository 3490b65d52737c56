//! The counters in Prometheus' text exposition format, version 0.0.4, for a
//! framework to serve on a route of its own (`ringwall serve --metrics-addr`
//! serves it on an address of its own).
//!
//! ```text
//! # HELP ringwall_requests_total Requests passed to the handler.
//! # TYPE ringwall_requests_total counter
//! ringwall_requests_total 401
//! # HELP ringwall_closes_total Connections closed, by reason ...
//! # TYPE ringwall_closes_total counter
//! ringwall_closes_total{reason="header_timeout"} 3
//! ...
//! ```
//!
//! Every family comes from the counter table in `stats.rs`: counters end in
//! `_total`, open connections are a gauge, closes are one family labelled by
//! `reason`, protocol errors one labelled by `status`.

use std::fmt::Write;

use crate::ops::stats::{CounterKind, CounterRow, Stats, COUNTERS};

/// The content type to serve [`Stats::to_prometheus`] with.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// One metric family: the `# HELP` and `# TYPE` lines and the samples under
/// them.
struct Family {
    name: &'static str,
    metric_type: &'static str,
    help: &'static str,
    /// The label that tells the family's samples apart, if it has several.
    label: Option<&'static str>,
}

const CLOSES: Family = Family {
    name: "ringwall_closes_total",
    metric_type: "counter",
    help: "Connections closed, each once, by reason; a reason ending in _reset was \
           closed with RST because response bytes were still unsent.",
    label: Some("reason"),
};

const PROTOCOL_ERRORS: Family = Family {
    name: "ringwall_protocol_errors_total",
    metric_type: "counter",
    help: "Malformed requests, answered with this status and a close \
           (they are also closes with reason protocol_error).",
    label: Some("status"),
};

fn family_of(row: &CounterRow) -> Family {
    let own = |name, metric_type| Family {
        name,
        metric_type,
        help: row.help.trim(),
        label: None,
    };
    match row.kind {
        CounterKind::Counter(name) | CounterKind::Timer(name) => own(name, "counter"),
        CounterKind::Gauge(name) => own(name, "gauge"),
        CounterKind::Reason => CLOSES,
        CounterKind::Status => PROTOCOL_ERRORS,
    }
}

/// `# HELP` text escapes backslash and newline (and nothing else).
fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

impl Stats {
    /// The counters in Prometheus' text exposition format, version 0.0.4:
    /// serve it with [`PROMETHEUS_CONTENT_TYPE`]. A framework can mount it
    /// on a route of its own, rendering [`ServerHandle::stats`] for each
    /// scrape, or [`StatsReader::stats`] from a thread (or handler) that
    /// does not hold the handle.
    ///
    /// [`ServerHandle::stats`]: crate::ServerHandle::stats
    /// [`StatsReader::stats`]: crate::metrics::StatsReader::stats
    pub fn to_prometheus(&self) -> String {
        let values = self.values();
        let mut out = String::with_capacity(8 * 1024);
        let mut written: Vec<&str> = Vec::new();
        for row in COUNTERS {
            let family = family_of(row);
            if written.contains(&family.name) {
                continue;
            }
            written.push(family.name);
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.metric_type);
            // A labelled family's rows are not all adjacent in the table
            // (the statuses sit among the closes), but its samples must be.
            for (member, value) in COUNTERS.iter().zip(values) {
                if family_of(member).name != family.name {
                    continue;
                }
                let _ = match family.label {
                    // Label values are the table's names: letters, digits
                    // and underscores, nothing to escape.
                    Some(label) => {
                        writeln!(
                            out,
                            "{}{{{label}=\"{}\"}} {value}",
                            family.name, member.name
                        )
                    }
                    None => writeln!(out, "{} {value}", family.name),
                };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::stats::WorkerCounters;

    /// Counter n of [`COUNTERS`] (from 0) holds n + 1.
    fn numbered_stats() -> Stats {
        let worker = WorkerCounters::default();
        for (index, counter) in worker.each().into_iter().enumerate() {
            counter.add(index as u64 + 1);
        }
        let mut stats = Stats::default();
        worker.add_to(&mut stats);
        stats
    }

    /// One sample line: its name, its labels in order, its value.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(name: &str) -> bool {
        is_metric_name(name) && !name.contains(':')
    }

    /// Reads `"value"` at the start of `text` (its escapes `\\`, `\"`, `\n`),
    /// returning the value and the rest.
    fn quoted(text: &str) -> Result<(String, &str), String> {
        let body = text
            .strip_prefix('"')
            .ok_or_else(|| format!("label value not quoted: {text}"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return Ok((value, &body[at + 1..])),
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text}")),
                },
                '\n' => return Err(format!("newline in label value: {text}")),
                c => value.push(c),
            }
        }
        Err(format!("unterminated label value: {text}"))
    }

    /// `name{label="value",...} value`, nothing more (no timestamp: this
    /// crate writes none).
    fn sample(line: &str) -> Result<Sample, String> {
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| format!("no value: {line}"))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("bad metric name `{name}`"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(mut inside) = rest.strip_prefix('{') {
            loop {
                let (label, after) = inside
                    .split_once('=')
                    .ok_or_else(|| format!("label without `=`: {line}"))?;
                if !is_label_name(label) || label.starts_with("__") {
                    return Err(format!("bad label name `{label}`"));
                }
                let (value, after) = quoted(after)?;
                labels.push((label.to_owned(), value));
                if let Some(more) = after.strip_prefix(',') {
                    inside = more;
                } else if let Some(end) = after.strip_prefix('}') {
                    rest = end;
                    break;
                } else {
                    return Err(format!("expected `,` or `}}` in {line}"));
                }
            }
        }
        let value_text = rest
            .strip_prefix(' ')
            .ok_or_else(|| format!("no space before the value: {line}"))?;
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => number
                .parse()
                .map_err(|_| format!("value `{number}` is not a number"))?,
        };
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// A strict reading of the text format, version 0.0.4: only `# HELP`
    /// and `# TYPE` comments, at most one of each per family and before its
    /// samples; every sample under the `# TYPE` of its own name (so a
    /// family's samples are together); counters named `..._total` with
    /// values that are numbers, not negative; no series twice.
    fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
        let body = text
            .strip_suffix('\n')
            .ok_or("the exposition does not end in a newline")?;
        let mut helped: Vec<&str> = Vec::new();
        let mut typed: Vec<&str> = Vec::new();
        let mut current: Option<(&str, &str)> = None;
        let mut samples: Vec<Sample> = Vec::new();
        for line in body.split('\n') {
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.splitn(4, ' ');
                let (Some(""), Some(keyword), Some(name)) =
                    (words.next(), words.next(), words.next())
                else {
                    return Err(format!("bad comment line: {line}"));
                };
                let text = words
                    .next()
                    .ok_or_else(|| format!("nothing after the name: {line}"))?;
                if !is_metric_name(name) {
                    return Err(format!("bad metric name `{name}` in: {line}"));
                }
                match keyword {
                    "HELP" => {
                        if helped.contains(&name) || typed.contains(&name) {
                            return Err(format!("HELP twice, or after TYPE, for {name}"));
                        }
                        if text.replace(r"\\", "").replace(r"\n", "").contains('\\') {
                            return Err(format!("bad escape in HELP of {name}"));
                        }
                        helped.push(name);
                    }
                    "TYPE" => {
                        if typed.contains(&name) {
                            return Err(format!("TYPE twice for {name}: its samples are split"));
                        }
                        if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&text)
                        {
                            return Err(format!("unknown type `{text}` for {name}"));
                        }
                        if text == "counter" && !name.ends_with("_total") {
                            return Err(format!("counter {name} does not end in _total"));
                        }
                        typed.push(name);
                        current = Some((name, text));
                    }
                    _ => return Err(format!("a comment other than HELP or TYPE: {line}")),
                }
                continue;
            }
            let sample = sample(line)?;
            let Some((family, metric_type)) = current.filter(|(family, _)| *family == sample.name)
            else {
                return Err(format!(
                    "sample without the TYPE of its family just before: {line}"
                ));
            };
            // NaN is not >= 0 either.
            if metric_type == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
                return Err(format!("counter {family} is not a number >= 0: {line}"));
            }
            let mut series = sample.labels.clone();
            series.sort();
            if samples.iter().any(|seen| {
                let mut seen_series = seen.labels.clone();
                seen_series.sort();
                seen.name == sample.name && seen_series == series
            }) {
                return Err(format!("series twice: {line}"));
            }
            samples.push(sample);
        }
        Ok(samples)
    }

    #[test]
    fn exposition_passes_a_strict_text_format_check() {
        let text = numbered_stats().to_prometheus();
        if let Err(e) = check_exposition(&text) {
            panic!("{e}\n{text}");
        }
    }

    #[test]
    fn every_counter_is_one_sample_holding_its_value() {
        let samples = check_exposition(&numbered_stats().to_prometheus()).unwrap();
        assert_eq!(samples.len(), COUNTERS.len());
        for (index, row) in COUNTERS.iter().enumerate() {
            let family = family_of(row);
            let labels: Vec<(String, String)> = family
                .label
                .map(|label| (label.to_owned(), row.name.to_owned()))
                .into_iter()
                .collect();
            let found = samples
                .iter()
                .find(|s| s.name == family.name && s.labels == labels);
            assert_eq!(
                found.map(|s| s.value),
                Some(index as f64 + 1.0),
                "{} {labels:?}",
                family.name
            );
        }
    }

    #[test]
    fn exposition_has_the_families_operators_query() {
        let text = numbered_stats().to_prometheus();
        for line in [
            "# TYPE ringwall_open_connections gauge",
            "ringwall_open_connections 5",
            "# TYPE ringwall_requests_total counter",
            "ringwall_requests_total 2",
            "ringwall_received_bytes_total 3",
            "ringwall_sent_bytes_total 4",
            "# TYPE ringwall_closes_total counter",
            "ringwall_closes_total{reason=\"header_timeout\"} 6",
            "ringwall_closes_total{reason=\"header_timeout_reset\"} 7",
            "ringwall_closes_total{reason=\"handler_timeout\"} 18",
            "ringwall_closes_total{reason=\"handler_timeout_reset\"} 19",
            "ringwall_closes_total{reason=\"protocol_error\"} 22",
            "ringwall_closes_total{reason=\"head_budget\"} 32",
            "ringwall_closes_total{reason=\"completed\"} 35",
            "ringwall_closes_total{reason=\"proxy_protocol_error\"} 36",
            "# TYPE ringwall_protocol_errors_total counter",
            "ringwall_protocol_errors_total{status=\"400\"} 23",
            "ringwall_protocol_errors_total{status=\"505\"} 28",
            "ringwall_timer_submits_total 38",
            "ringwall_timer_updates_total 39",
            "ringwall_timer_fires_total 40",
            "ringwall_ring_enters_total 45",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        // Statuses only split protocol_error: they are not close reasons.
        assert!(!text.contains("reason=\"400\""), "{text}");
    }

    #[test]
    fn every_family_has_help_text() {
        let text = numbered_stats().to_prometheus();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP ")).collect();
        assert_eq!(helps.len(), types, "{text}");
        for help in helps {
            let words = help.split(' ').count();
            assert!(words > 4, "help too thin: {help}");
        }
    }

    #[test]
    fn help_text_escapes_backslash_and_newline() {
        assert_eq!(escape_help("a\\b\nc"), r"a\\b\nc");
    }

    #[test]
    fn format_check_rejects_malformed_expositions() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n";
        assert!(check_exposition(good).is_ok());
        for bad in [
            // No newline at the end.
            "# TYPE a_total counter\na_total 1",
            // A sample with no TYPE before it.
            "a_total 1\n",
            // A sample under another family's TYPE.
            "# TYPE a_total counter\nb_total 1\n",
            // A counter not ending in _total.
            "# TYPE a counter\na 1\n",
            // A family split in two.
            "# TYPE a_total counter\na_total{x=\"1\"} 1\n# TYPE b gauge\nb 1\n\
             # TYPE a_total counter\na_total{x=\"2\"} 1\n",
            // The same series twice.
            "# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n",
            // A bad metric name, a bad label name, an unterminated label.
            "# TYPE 1a gauge\n1a 1\n",
            "# TYPE a gauge\na{1x=\"1\"} 1\n",
            "# TYPE a gauge\na{x=\"1} 1\n",
            // A value that is not a number; a negative counter.
            "# TYPE a gauge\na one\n",
            "# TYPE a_total counter\na_total -1\n",
            "# TYPE a_total counter\na_total NaN\n",
            // A comment that is neither HELP nor TYPE; an unknown type.
            "# hello there\n",
            "# TYPE a gauges\na 1\n",
            // A bad escape in HELP.
            "# HELP a x\\y\n# TYPE a gauge\na 1\n",
        ] {
            assert!(check_exposition(bad).is_err(), "accepted: {bad:?}");
        }
    }
}
