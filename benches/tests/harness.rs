//! The attack beside legit load, and the `slowloris` command end to end.

mod common;

use std::process::Command;
use std::time::Duration;

use ringwall_bench::{
    run_attack_with_load, AttackConfig, AttackMode, LoadConfig, LoadMode, RequestSpec,
};

const HEADER: Duration = Duration::from_millis(300);

#[test]
fn legit_load_runs_alone_then_beside_the_attack() {
    let server = common::spawn(
        Duration::from_secs(5),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    let attack = AttackConfig {
        target: server.addr,
        mode: AttackMode::Slowloris {
            interval: Duration::from_millis(20),
        },
        connections: 20,
        open_over: Duration::from_millis(50),
        expected_timeout: HEADER,
        slack: Duration::from_millis(500),
    };
    let load = LoadConfig {
        target: server.addr,
        mode: LoadMode::KeepAlive,
        connections: 2,
        threads: 1,
        duration: Duration::from_millis(400),
        max_requests: None,
        pace: None,
        request: RequestSpec::Hello,
    };
    let r = run_attack_with_load(&attack, &load).unwrap();
    assert_eq!(r.attack.closed, 20, "{:?}", r.attack);
    assert_eq!(r.attack.failures(), 0, "{:?}", r.attack);
    assert!(r.legit_baseline.requests > 0, "{:?}", r.legit_baseline);
    assert!(
        r.legit_under_attack.requests > 0,
        "{:?}",
        r.legit_under_attack
    );
    assert_eq!(
        r.legit_under_attack.errors.total(),
        0,
        "{:?}",
        r.legit_under_attack
    );
    assert!(r.legit_kept_percent() > 0.0);
}

fn harness(target: std::net::SocketAddr) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(["slowloris", "--target", &target.to_string()])
        .args([
            "--expect-header-timeout",
            "300ms",
            "--expect-idle-timeout",
            "5s",
        ])
        .args([
            "--connections",
            "20",
            "--modes",
            "slowloris,idle",
            "--slack",
            "500ms",
            "--idle-hold",
            "600ms",
        ])
        .args([
            "--open-over",
            "50ms",
            "--legit-connections",
            "2",
            "--legit-expect",
            "hello",
        ])
        .output()
        .unwrap()
}

#[test]
fn slowloris_command_passes_a_server_that_keeps_its_deadlines() {
    let server = common::spawn(
        Duration::from_secs(8),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    let out = harness(server.addr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn slowloris_command_fails_when_idle_connections_get_the_header_deadline() {
    // Seed 001: keep-alive idle killed by the header timeout.
    let server = common::spawn(
        Duration::from_secs(8),
        common::deadline_server(HEADER, HEADER),
    );
    let out = harness(server.addr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL idle"), "{stdout}");
    assert!(!stdout.contains("FAIL slowloris"), "{stdout}");
}

#[test]
fn slowloris_command_fails_on_hangs() {
    let server = common::spawn(Duration::from_secs(8), common::never_close());
    let out = Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(["slowloris", "--target", &server.addr.to_string()])
        .args([
            "--expect-header-timeout",
            "300ms",
            "--connections",
            "10",
            "--modes",
            "slowloris",
        ])
        .args([
            "--slack",
            "500ms",
            "--open-over",
            "50ms",
            "--legit-connections",
            "0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL slowloris: 10 of 10 connections still open"),
        "{stdout}"
    );
}

#[test]
fn slowloris_command_names_a_missing_server() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args([
            "slowloris",
            "--target",
            &addr.to_string(),
            "--expect-header-timeout",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused: is the server running?"),
        "{stderr}"
    );
}
