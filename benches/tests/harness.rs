//! The attack beside legit load, and the `slowloris` command end to end.
//! The tests run one at a time: each is a timed attack, and on a shared
//! machine two at once would time each other.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use ringwall_bench::{
    run_attack_with_load, AttackConfig, AttackMode, LoadConfig, LoadMode, RequestSpec,
};

const HEADER: Duration = Duration::from_millis(300);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn legit_load_runs_alone_then_beside_the_attack() {
    let _serial = serial();
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

fn harness(target: SocketAddr, extra: &[&str]) -> Output {
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
        .args(extra)
        .output()
        .unwrap()
}

/// Slow read at a 300 ms write deadline, no legit load (the stalling
/// test servers answer nothing else).
fn slow_read_harness(target: SocketAddr, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(["slowloris", "--target", &target.to_string()])
        .args(["--expect-header-timeout", "1s"])
        .args(["--expect-write-timeout", "300ms"])
        .args(["--modes", "slow-read", "--slow-read-bytes", "4194304"])
        .args(["--connections", "10", "--slack", "500ms"])
        .args(["--open-over", "50ms", "--legit-connections", "0"])
        .args(extra)
        .output()
        .unwrap()
}

/// A file for the JSON report, removed when dropped.
struct TempJson(PathBuf);

impl TempJson {
    fn new(test: &str) -> TempJson {
        TempJson(
            std::env::temp_dir().join(format!("ringwall-bench-{test}-{}.json", std::process::id())),
        )
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8 here")
    }

    fn parse(&self) -> Value {
        let text = std::fs::read_to_string(&self.0).expect("the report was written");
        serde_json::from_str(&text).expect("the report is JSON")
    }
}

impl Drop for TempJson {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stdout then stderr, for assertions and their messages.
fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn slowloris_command_passes_a_server_that_keeps_its_deadlines() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(8),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    let out = harness(server.addr, &[]);
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
    let _serial = serial();
    // Seed 001: keep-alive idle killed by the header timeout.
    let server = common::spawn(
        Duration::from_secs(8),
        common::deadline_server(HEADER, HEADER),
    );
    let out = harness(server.addr, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL idle"), "{stdout}");
    assert!(!stdout.contains("FAIL slowloris"), "{stdout}");
}

#[test]
fn slowloris_command_fails_on_hangs() {
    let _serial = serial();
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

#[test]
fn slowloris_command_writes_a_json_report_ci_can_read() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(8),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    let json = TempJson::new("json-report");
    let out = harness(server.addr, &["--json", json.arg(), "--max-p99", "10s"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let v = json.parse();
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(v["target"], server.addr.to_string());
    assert_eq!(v["expected_timeouts_ms"]["header"], 300.0);
    assert_eq!(v["expected_timeouts_ms"]["idle"], 5000.0);
    assert_eq!(v["expected_timeouts_ms"]["write"], Value::Null);
    assert_eq!(v["settings"]["max_p99_ms"], 10_000.0);
    let modes = v["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(names, ["slowloris", "idle"]);
    let slowloris = &modes[0];
    assert_eq!(slowloris["verdict"], "pass");
    assert_eq!(slowloris["counts"]["connections"], 20);
    assert_eq!(slowloris["counts"]["closed"], 20);
    assert_eq!(slowloris["counts"]["hangs"], 0);
    assert_eq!(slowloris["overshoot"]["timed_closes"], 20);
    for p in ["p50_us", "p90_us", "p99_us", "max_us"] {
        assert!(slowloris["overshoot"][p].is_f64(), "{p}: {slowloris}");
    }
    assert!(
        slowloris["legit"]["under_attack"]["requests"].as_u64() > Some(0),
        "{slowloris}"
    );
    let idle = &modes[1];
    assert_eq!(idle["counts"]["false_kills"], 0);
    assert_eq!(idle["overshoot"]["p99_us"], Value::Null);
}

#[test]
fn max_p99_fails_a_mode_whose_overshoot_tail_exceeds_it() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(8),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    // No close is seen within a microsecond of its deadline over loopback.
    let out = harness(server.addr, &["--max-p99", "1us"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL slowloris: overshoot p99 "), "{text}");
    assert!(text.contains("exceeds --max-p99 1"), "{text}");
    // Idle closes nothing on time, so it has no p99 to hold to the limit.
    assert!(!text.contains("FAIL idle"), "{text}");
}

#[test]
fn slow_read_warns_when_the_server_fins_with_data_still_flowing() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(8),
        common::stall_then_close(Duration::from_millis(300), false),
    );
    let json = TempJson::new("slow-read-fin");
    let out = slow_read_harness(server.addr, &["--json", json.arg()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("slow-read: 10 connections FINed with data still flowing ("),
        "{text}"
    );
    assert!(
        text.contains("reset timed-out slow readers (SO_LINGER 0)"),
        "{text}"
    );
    let v = json.parse();
    let s = &v["modes"][0]["slow_read"];
    assert_eq!(s["fins"], 10, "{s}");
    assert_eq!(s["fins_with_bytes_after_deadline"], 10, "{s}");
    assert!(s["bytes_after_deadline_max"].as_u64() > Some(0), "{s}");
    assert_eq!(s["connections"].as_array().unwrap().len(), 10);
    assert_eq!(s["connections"][0]["end"], "fin_behind_data");
}

#[test]
fn require_reset_slow_read_fails_a_server_that_fins_with_data_still_flowing() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(8),
        common::stall_then_close(Duration::from_millis(300), false),
    );
    let out = slow_read_harness(server.addr, &["--require-reset-slow-read"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL slow-read: 10 connections FINed with data still flowing"),
        "{text}"
    );
}

#[test]
fn require_reset_slow_read_passes_a_server_that_resets() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(8),
        common::stall_then_close(Duration::from_millis(300), true),
    );
    let out = slow_read_harness(server.addr, &["--require-reset-slow-read"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FINed with data still flowing"), "{text}");
}
