//! `--target NAME=HOST:PORT[,PID]`: a server the runner did not start is
//! measured in the same table as the ones it did, and bad forms are refused
//! before anything runs.

use std::process::{Command, Output};

use ringwall_bench::peers::{Peer, PeerConfig, ServerKind};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(args)
        .env("CANNED_BIN", env!("CARGO_BIN_EXE_canned"))
        .output()
        .expect("ringwall-bench runs")
}

/// The cells of the table row whose first two columns are `load` and `server`.
fn row(stdout: &str, load: &str, server: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|cells| cells.len() > 2 && cells[0] == load && cells[1] == server)
        .unwrap_or_else(|| panic!("no `{load} {server}` row in:\n{stdout}"))
}

#[test]
fn throughput_measures_an_external_target_with_its_cpu() {
    // The test starts the server, not the runner: the hyper peer binary.
    std::env::set_var("HYPER_PEER_BIN", env!("CARGO_BIN_EXE_hyper-peer"));
    let mine = Peer::start(
        ServerKind::Hyper,
        &PeerConfig {
            workers: 1,
            ..PeerConfig::default()
        },
    )
    .expect("hyper peer starts");
    let out_dir = tempdir();
    let target = format!("mine={},{}", mine.addr(), mine.pid());
    let out = bench(&[
        "throughput",
        "--servers",
        "canned",
        "--target",
        &target,
        "--duration",
        "300ms",
        "--syscall-duration",
        "300ms",
        "--rounds",
        "1",
        "--connections",
        "4",
        "--threads",
        "1",
        "--workers",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // load, server, req/s, vs ringwall, vs canned, p99, errors, CPU us/req, ...
    let keep_alive = row(&stdout, "keep-alive", "mine");
    let rps: f64 = keep_alive[2].parse().expect("req/s is a number");
    assert!(rps > 0.0, "{keep_alive:?}");
    assert_eq!(keep_alive[6], "0", "errors: {keep_alive:?}");
    let cpu: f64 = keep_alive[7].parse().expect("CPU us/req is a number");
    assert!(cpu >= 0.0, "{keep_alive:?}");
    // ..., user, sys, syscalls/req, vol cs/req, invol cs/req: a server that
    // answers requests enters the kernel to do it. Its threads may never
    // block while the load saturates them (a CI run read 0.00 voluntary
    // switches a request), so the switch columns need only be numbers.
    let per_request = |i: usize| -> f64 {
        keep_alive[i]
            .parse()
            .unwrap_or_else(|_| panic!("column {i} is a number: {keep_alive:?}"))
    };
    if stdout.contains("syscalls/req: skipped") {
        assert_eq!(keep_alive[10], "-", "{keep_alive:?}");
    } else {
        assert!(per_request(10) > 0.0, "{keep_alive:?}");
    }
    assert!(per_request(11) >= 0.0, "{keep_alive:?}");
    assert!(per_request(12) >= 0.0, "{keep_alive:?}");
    // The runner started canned beside it, and churn runs against mine too.
    row(&stdout, "keep-alive", "canned");
    row(&stdout, "churn", "mine");
    assert!(stdout.contains("not started or stopped by this run"));
    // It left the server it did not start running.
    assert!(ringwall_bench::peers::probe_hello(mine.addr()).is_ok());
    let md = std::fs::read_to_string(out_dir.join("throughput.md")).unwrap();
    assert!(md.contains("| mine"), "{md}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn a_target_without_a_pid_has_no_cpu_figures() {
    std::env::set_var("HYPER_PEER_BIN", env!("CARGO_BIN_EXE_hyper-peer"));
    let mine = Peer::start(ServerKind::Hyper, &PeerConfig::default()).expect("hyper peer starts");
    let out_dir = tempdir();
    let target = format!("mine={}", mine.addr());
    let out = bench(&[
        "throughput",
        "--servers",
        "canned",
        "--target",
        &target,
        "--duration",
        "200ms",
        "--syscall-duration",
        "200ms",
        "--rounds",
        "1",
        "--connections",
        "2",
        "--threads",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let keep_alive = row(&stdout, "keep-alive", "mine");
    assert!(
        keep_alive[2].parse::<f64>().unwrap() > 0.0,
        "{keep_alive:?}"
    );
    // No CPU, syscall or context-switch figures without a PID.
    assert_eq!(
        keep_alive[7..13],
        ["-", "-", "-", "-", "-", "-"],
        "{keep_alive:?}"
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn bad_targets_are_refused_with_exit_2_naming_the_argument() {
    for runner in ["throughput", "deadline"] {
        for bad in [
            "mine",
            "mine=127.0.0.1",
            "mine=nowhere:port",
            "mine=127.0.0.1:8080,pid",
            "mine=127.0.0.1:8080,2147483647",
        ] {
            let out = bench(&[runner, "--servers", "canned", "--target", bad]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{runner} {bad}: {stderr}");
            assert!(
                stderr.contains(&format!("`{bad}`")),
                "{runner} {bad}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "nothing ran: {bad}");
        }
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringwall-bench-targets-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn memory_measures_a_target_with_a_pid_and_refuses_one_without() {
    std::env::set_var("HYPER_PEER_BIN", env!("CARGO_BIN_EXE_hyper-peer"));
    let mine = Peer::start(ServerKind::Hyper, &PeerConfig::default()).expect("hyper peer starts");
    let without_pid = format!("mine={}", mine.addr());
    let out = bench(&["memory", "--servers", "canned", "--target", &without_pid]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("`{without_pid}`")), "{stderr}");
    assert!(stderr.contains("PID"), "{stderr}");

    let out_dir = tempdir();
    let target = format!("mine={},{}", mine.addr(), mine.pid());
    // No started server: canned is another runner's floor and sits out.
    let out = bench(&[
        "memory",
        "--servers",
        "canned",
        "--target",
        &target,
        "--connections",
        "20",
        "--settle",
        "100ms",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // connections, server, held, failed, RSS before, RSS after, ...
    for hold in ["idle keep-alive", "slowloris"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(hold) && l[hold.len()..].trim_start().starts_with("mine "))
            .unwrap_or_else(|| panic!("no `{hold} mine` row in:\n{stdout}"));
        let cells: Vec<&str> = line[hold.len()..].split_whitespace().collect();
        let rss_before: f64 = cells[3].parse().expect("RSS is a number");
        assert!(rss_before > 0.0, "{cells:?}");
    }
    assert!(ringwall_bench::peers::probe_hello(mine.addr()).is_ok());
    std::fs::remove_dir_all(&out_dir).unwrap();
}
