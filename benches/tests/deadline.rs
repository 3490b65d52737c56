//! `ringwall-bench deadline --rounds R`: every round runs every server, the
//! order reversed on every other round, and the table lists each round's
//! p99 beside the medians. Tiny N and a short deadline: this pins the
//! bookkeeping, not any server's precision.

use std::path::PathBuf;
use std::process::Command;

/// The cells of a markdown table row, trimmed, without the outer pipes.
fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(str::trim).collect()
}

/// The first table of a `deadline.md`, as cells.
struct Table<'a> {
    header: Vec<&'a str>,
    rows: Vec<Vec<&'a str>>,
}

impl<'a> Table<'a> {
    fn of(md: &'a str) -> Table<'a> {
        let header = cells(md.lines().find(|l| l.starts_with("| N ")).expect("a table"));
        let rows = md.lines().map(cells).filter(|row| row.len() > 2).collect();
        Table { header, rows }
    }

    fn column(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no `{name}` column in {:?}", self.header))
    }

    /// The row of `server` (each test runs one N).
    fn row(&self, server: &str) -> &[&'a str] {
        self.rows
            .iter()
            .find(|row| row[1] == server)
            .unwrap_or_else(|| panic!("no `{server}` row in {:?}", self.rows))
    }
}

fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringwall-bench-deadline-{test}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the deadline runner on tiny N with a short deadline, all at once,
/// with the closer and hyper (whose binaries this package builds), plus
/// `args`.
fn run_deadline(out_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args([
            "deadline",
            "--header-timeout",
            "300ms",
            "--interval",
            "50ms",
        ])
        // All at once: a zero window must work.
        .args(["--slack", "500ms", "--open-over", "0s", "--workers", "1"])
        .args([
            "--servers",
            "closer,hyper",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .args(args)
        .env("CLOSER_BIN", env!("CARGO_BIN_EXE_closer"))
        .env("HYPER_PEER_BIN", env!("CARGO_BIN_EXE_hyper-peer"))
        .output()
        .expect("ringwall-bench runs")
}

#[test]
fn rounds_alternate_the_server_order_and_list_each_rounds_p99() {
    let out_dir = out_dir("rounds");
    let out = run_deadline(
        &out_dir,
        &[
            "--connections",
            "20",
            "--load-connections",
            "2",
            "--rounds",
            "2",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The order the cells actually ran in, from the line each one prints.
    let ran = [
        "round 1 N=20 closer:",
        "round 1 N=20 hyper:",
        "round 2 N=20 hyper:",
        "round 2 N=20 closer:",
    ];
    let at: Vec<usize> = ran
        .iter()
        .map(|cell| {
            stdout
                .find(cell)
                .unwrap_or_else(|| panic!("no `{cell}` in:\n{stdout}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "ran out of order:\n{stdout}"
    );

    let md = std::fs::read_to_string(out_dir.join("deadline.md")).unwrap();
    assert!(
        md.contains("Server order by round: 1: closer, hyper; 2: hyper, closer."),
        "{md}"
    );
    let table = Table::of(&md);
    let column = |name: &str| table.column(name);
    for server in ["closer", "hyper"] {
        let row = table.row(server);
        assert_eq!(row[0], "20", "{server}: {row:?}");
        let per_round: Vec<&str> = row[column("p99 per round ms")].split(" / ").collect();
        assert_eq!(per_round.len(), 2, "{server}: {row:?}");
        for p99 in per_round {
            p99.parse::<f64>()
                .unwrap_or_else(|_| panic!("{server}: a round without a p99: {row:?}"));
        }
        // Counts are summed over the rounds: 20 connections twice.
        assert!(row[column("closed")].ends_with("/40"), "{server}: {row:?}");
    }
    let closer = table.row("closer");
    assert_eq!(closer[column("p99 vs closer")], "1.00x", "{closer:?}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn rows_pair_with_a_chosen_server_and_run_without_legit_load() {
    let out_dir = out_dir("paired");
    let out = run_deadline(
        &out_dir,
        &[
            "--connections",
            "10",
            "--load-connections",
            "0",
            "--paired-with",
            "hyper",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", out.status);
    let md = std::fs::read_to_string(out_dir.join("deadline.md")).unwrap();
    assert!(md.contains("no legit load"), "{md}");
    let table = Table::of(&md);
    let hyper = table.row("hyper");
    assert_eq!(hyper[table.column("p99 vs hyper")], "1.00x", "{hyper:?}");
    // No legit load ran beside hyper's attack either.
    assert_eq!(hyper[table.column("legit req/s alone")], "-", "{hyper:?}");

    // A reference that is not in the run is refused, naming the option.
    let refused = Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(["deadline", "--servers", "closer", "--paired-with", "nginx"])
        .args(["--out", out_dir.to_str().unwrap()])
        .env("CLOSER_BIN", env!("CARGO_BIN_EXE_closer"))
        .output()
        .expect("ringwall-bench runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--paired-with nginx"), "{stderr}");
    // Without the option, a run without the floor is not refused: its
    // ratio column reads `-`.
    let no_floor = Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(["deadline", "--servers", "hyper", "--connections", "5"])
        .args([
            "--header-timeout",
            "300ms",
            "--slack",
            "500ms",
            "--open-over",
            "0s",
        ])
        .args([
            "--load-connections",
            "0",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .env("HYPER_PEER_BIN", env!("CARGO_BIN_EXE_hyper-peer"))
        .output()
        .expect("ringwall-bench runs");
    assert!(
        no_floor.status.success(),
        "{}",
        String::from_utf8_lossy(&no_floor.stderr)
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
}
