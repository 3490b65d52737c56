//! A hand-written SVG plot: the cumulative distribution of one measurement,
//! one line per server, on a symmetric-log x axis.
//!
//! Close overshoots span microseconds (a kernel timer) to a second (a sweep
//! that runs once a second), and some servers close a little BEFORE their
//! deadline (a timer armed from a cached clock). A linear axis would flatten
//! the interesting end and a log axis cannot show negatives, so x is
//! `sign(v) * log10(1 + |v| / LINEAR)`: linear within ±[`LINEAR`], a decade
//! per step beyond, with zero (the deadline) marked.

use std::fmt::Write as _;

/// One line of the plot.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// What the plot is about: title and axis labels (with units).
#[derive(Clone, Debug)]
pub struct PlotLabels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Where the x axis turns from linear to logarithmic, in the plot's unit
/// (ms): ten microseconds.
pub const LINEAR: f64 = 0.01;
/// Points per line: quantiles, so a line of 50 000 closes stays small.
const POINTS: usize = 400;
const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn symlog(v: f64) -> f64 {
    v.signum() * (1.0 + v.abs() / LINEAR).log10()
}

/// The decade exponents of the ticks on each side of zero: `(negative,
/// positive)`, each the exponents k with 10^k from LINEAR up to the first
/// decade at or beyond the data. No negative ticks when nothing is below 0.
fn tick_decades(series: &[Series]) -> (Vec<i32>, Vec<i32>) {
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
    };
    let lowest = finite().fold(0.0f64, f64::min);
    let highest = finite().fold(LINEAR * 10.0, f64::max);
    let first = LINEAR.log10().round() as i32;
    let up_to = |v: f64| -> Vec<i32> {
        let last = (v.log10().ceil() as i32).max(first + 1);
        (first..=last).collect()
    };
    let negative = if lowest < 0.0 {
        up_to(-lowest)
    } else {
        Vec::new()
    };
    (negative, up_to(highest))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The label of the tick at ±10^decade; none at ±LINEAR, which sits too
/// close to 0 for a label of its own.
fn tick_label(decade: i32, negative: bool) -> String {
    if decade == LINEAR.log10().round() as i32 {
        return String::new();
    }
    let v = 10f64.powi(decade);
    let text = if decade >= 0 {
        format!("{v:.0}")
    } else {
        format!("{v:.*}", (-decade) as usize)
    };
    if negative {
        format!("-{text}")
    } else {
        text
    }
}

/// The CDF plot as a complete SVG document.
pub fn cdf_plot(labels: &PlotLabels<'_>, series: &[Series]) -> String {
    let (negative, positive) = tick_decades(series);
    let t_lo = negative.last().map_or(0.0, |&k| symlog(-(10f64.powi(k))));
    let t_hi = positive.last().map_or(1.0, |&k| symlog(10f64.powi(k)));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |v: f64| LEFT + (symlog(v) - t_lo) / (t_hi - t_lo) * plot_w;
    let y_of = |f: f64| TOP + (1.0 - f) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(labels.title)
    );
    // Grid and ticks: zero and decades on each side on x, tenths on y.
    let ticks = negative
        .iter()
        .map(|&k| (-(10f64.powi(k)), tick_label(k, true)))
        .chain([(0.0, "0".to_string())])
        .chain(
            positive
                .iter()
                .map(|&k| (10f64.powi(k), tick_label(k, false))),
        );
    for (v, label) in ticks {
        let x = x_of(v);
        let stroke = if v == 0.0 { "#888" } else { "#ddd" };
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{stroke}"/>"#,
            TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="start" fill="#888">deadline</text>"##,
        x_of(0.0) + 3.0,
        TOP + 12.0
    );
    for tenth in 0..=10 {
        let f = f64::from(tenth) / 10.0;
        let y = y_of(f);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{f:.1}</text>"#,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0,
        escape(labels.x)
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(labels.y)
    );

    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let legend_y = TOP + 10.0 + 20.0 * i as f64;
        let legend_x = LEFT + plot_w + 15.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="2"/>"#,
            legend_x + 20.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{} (n={})</text>"#,
            legend_x + 26.0,
            legend_y + 4.0,
            escape(&s.name),
            s.values.len()
        );
        let mut sorted: Vec<f64> = s.values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            continue;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        // A step CDF through quantiles: at each point, the fraction of values
        // at or below it.
        let mut points = format!("{:.1},{:.1}", x_of(sorted[0]), y_of(0.0));
        let steps = n.min(POINTS);
        for k in 1..=steps {
            let rank = (k * n).div_ceil(steps);
            let v = sorted[rank - 1];
            let _ = write!(
                points,
                " {:.1},{:.1}",
                x_of(v),
                y_of(rank as f64 / n as f64)
            );
        }
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"><title>{}</title></polyline>"#,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every element opened is closed in order: the document is
    /// well-formed XML as far as elements go.
    fn assert_well_formed(doc: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = doc;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("tag ends") + open;
            let tag = &rest[open + 1..close];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name.to_string());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn labels() -> PlotLabels<'static> {
        PlotLabels {
            title: "Close overshoot, N=1000",
            x: "overshoot past the deadline (ms, symmetric log scale)",
            y: "fraction of connections",
        }
    }

    #[test]
    fn plot_is_well_formed_with_one_line_per_server() {
        let series = vec![
            Series {
                name: "ringwall".into(),
                values: (1..=1000).map(|i| f64::from(i) * 1e-3).collect(),
            },
            Series {
                name: "nginx".into(),
                values: vec![0.5, 3.0, 900.0],
            },
            Series {
                name: "go <net/http>".into(),
                values: vec![-2.0, 12.0],
            },
        ];
        let doc = cdf_plot(&labels(), &series);
        assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(doc.trim_end().ends_with("</svg>"));
        assert_well_formed(&doc);
        assert_eq!(doc.matches("<polyline").count(), 3);
        assert!(doc.contains("ringwall (n=1000)"));
        assert!(doc.contains("go &lt;net/http&gt;"), "names are escaped");
        assert!(doc.contains("overshoot past the deadline (ms, symmetric log scale)"));
    }

    #[test]
    fn axis_covers_the_decades_of_the_data_on_both_sides_of_zero() {
        let series = vec![Series {
            name: "a".into(),
            values: vec![-0.5, 0.02, 300.0],
        }];
        assert_eq!(
            tick_decades(&series),
            (vec![-2, -1, 0], vec![-2, -1, 0, 1, 2, 3])
        );
        let late_only = vec![Series {
            name: "b".into(),
            values: vec![0.2, 3.0],
        }];
        assert_eq!(tick_decades(&late_only), (vec![], vec![-2, -1, 0, 1]));
    }

    #[test]
    fn symlog_is_odd_and_monotonic() {
        assert_eq!(symlog(0.0), 0.0);
        assert_eq!(symlog(-1.0), -symlog(1.0));
        let xs = [-100.0, -1.0, -0.001, 0.0, 0.001, 1.0, 100.0];
        assert!(xs.windows(2).all(|w| symlog(w[0]) < symlog(w[1])));
    }

    #[test]
    fn a_server_with_no_timed_close_still_gets_a_legend_entry() {
        let empty = vec![Series {
            name: "hangs only".into(),
            values: vec![],
        }];
        let doc = cdf_plot(&labels(), &empty);
        assert_well_formed(&doc);
        assert_eq!(doc.matches("<polyline").count(), 0);
        assert!(doc.contains("hangs only (n=0)"));
    }
}
