//! A results table, printed aligned on a terminal and written as markdown.

/// Rows of cells under a header. The first `left` columns (names) are
/// left-aligned, the rest (numbers) right-aligned.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Table {
    pub fn new(header: &[&str], left: usize) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            left,
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn line(&self, cells: &[String], widths: &[usize], sep: &str) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c < self.left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        padded.join(sep)
    }

    /// Aligned plain text, for the terminal.
    pub fn text(&self) -> String {
        let widths = self.widths();
        let mut out = self.line(&self.header, &widths, "  ");
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in &self.rows {
            out.push_str(self.line(row, &widths, "  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// A GitHub-flavoured markdown table.
    pub fn markdown(&self) -> String {
        let widths = self.widths();
        let mut out = format!("| {} |\n", self.line(&self.header, &widths, " | "));
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(c, &w)| {
                let dashes = "-".repeat(w.max(3) - 1);
                if c < self.left {
                    format!("{dashes}-")
                } else {
                    format!("{dashes}:")
                }
            })
            .collect();
        out.push_str(&format!(
            "|{}|\n",
            rule.iter()
                .map(|r| format!(" {r} "))
                .collect::<Vec<_>>()
                .join("|")
        ));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", self.line(row, &widths, " | ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["server", "req/s"], 1);
        t.row(vec!["ringwall".into(), "123456".into()]);
        t.row(vec!["go".into(), "7".into()]);
        t
    }

    #[test]
    fn text_aligns_names_left_and_numbers_right() {
        let text = sample().text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "server     req/s");
        assert_eq!(lines[2], "ringwall  123456");
        assert_eq!(lines[3], "go             7");
    }

    #[test]
    fn markdown_has_a_header_rule_and_one_line_per_row() {
        let md = sample().markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].contains("---:"),
            "numbers right-aligned: {}",
            lines[1]
        );
        assert!(lines.iter().all(|l| l.starts_with('|') && l.ends_with('|')));
    }
}
